//! The linter: mistakes in KMS key policies and identity policies, each with a stable code, a
//! severity, the statement, and how to fix it.

use super::actions::{KMS_ACTIONS, is_alias_action, is_cross_account, is_multivalued};
use super::condition::check_operators;
use super::document::{ConditionBlock, PolicyDocument, Principal, PrincipalKind, Statement};
use super::matching::{Arn, action_matches};
use super::{Effect, OneOrMany};
use serde::Serialize;

/// Which kind of policy a document is: it decides which rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// A KMS key policy (resource policy: has Principal).
    KeyPolicy,
    /// An IAM identity policy (attached to a role or user: no Principal).
    IdentityPolicy,
    /// A role's trust policy (Principal, and only `sts:` actions).
    TrustPolicy,
}

impl PolicyKind {
    /// A key policy names principals; so does a trust policy, whose actions are all `sts:`;
    /// an identity policy names none.
    pub fn guess(doc: &PolicyDocument) -> PolicyKind {
        let names_principals =
            doc.statements().any(|s| s.principal.is_some() || s.not_principal.is_some());
        let only_sts = doc.statements().all(|s| {
            s.action
                .iter()
                .flat_map(OneOrMany::iter)
                .all(|a| a.to_ascii_lowercase().starts_with("sts:"))
                && s.action.is_some()
        });
        match (names_principals, only_sts) {
            (true, true) => PolicyKind::TrustPolicy,
            (true, false) => PolicyKind::KeyPolicy,
            (false, _) => PolicyKind::IdentityPolicy,
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy does not do what it is meant to, or is dangerous: `lint` exits 1.
    Error,
    /// Probably not what was meant.
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, e.g. `alias-arn-in-resource`.
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// Sid, `#index`, or `-` for the whole document.
    pub statement: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn finding(code: &'static str, severity: Severity, statement: &str, message: String) -> Finding {
    Finding { code, severity, statement: statement.to_string(), message }
}

/// The KMS actions a statement covers (with `kms:` prefix), from Action or NotAction.
fn kms_actions_covered(s: &Statement) -> Vec<String> {
    let all = KMS_ACTIONS.iter().map(|a| format!("kms:{a}"));
    match (&s.action, &s.not_action) {
        (Some(a), _) => all.filter(|k| a.iter().any(|p| action_matches(p, k))).collect(),
        (None, Some(na)) => all.filter(|k| !na.iter().any(|p| action_matches(p, k))).collect(),
        _ => Vec::new(),
    }
}

fn principal_accounts(p: &Principal) -> Vec<String> {
    match p {
        Principal::Wildcard(_) => vec!["*".into()],
        Principal::Typed(map) => map
            .get(&PrincipalKind::Aws)
            .map(|v| {
                v.iter()
                    .map(|s| match Arn::parse(s) {
                        Some(a) => a.account.to_string(),
                        None => s.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn is_account_root(value: &str) -> Option<String> {
    if value.len() == 12 && value.chars().all(|c| c.is_ascii_digit()) {
        return Some(value.to_string());
    }
    Arn::parse(value)
        .filter(|a| a.service == "iam" && a.resource == "root")
        .map(|a| a.account.to_string())
}

/// The account that manages the key: given, or the account whose root an Allow statement grants
/// kms:* (AWS's default key policy statement).
fn owner_account(doc: &PolicyDocument, given: Option<&str>) -> Option<String> {
    if let Some(g) = given {
        return Some(g.to_string());
    }
    doc.statements()
        .filter(|s| s.effect == Effect::Allow)
        .filter(|s| kms_actions_covered(s).len() == KMS_ACTIONS.len())
        .flat_map(|s| s.principal_values())
        .find_map(|v| is_account_root(&v))
}

/// Lints a document as a `kind` policy. `owner` is the account that owns the key, when known.
pub fn lint(doc: &PolicyDocument, kind: PolicyKind, owner: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    let owner = owner_account(doc, owner);
    for (i, s) in doc.statements().enumerate() {
        let name = s.sid.clone().unwrap_or_else(|| format!("#{i}"));
        lint_statement(s, &name, kind, owner.as_deref(), &mut out);
    }
    if kind == PolicyKind::KeyPolicy {
        let manages = |s: &Statement| {
            s.effect == Effect::Allow
                && kms_actions_covered(s).iter().any(|a| a == "kms:PutKeyPolicy")
                && s.principal_values().iter().any(|v| {
                    is_account_root(v)
                        .is_some_and(|acct| owner.as_deref().is_none_or(|o| o == acct))
                })
        };
        if !doc.statements().any(manages) {
            out.push(finding(
                "owner-lockout",
                Severity::Error,
                "-",
                format!(
                    "no statement lets {} manage the key (kms:* or at least kms:PutKeyPolicy for its root): the key could become unmanageable; keep AWS's default statement {{\"Sid\": \"Enable IAM User Permissions\", \"Effect\": \"Allow\", \"Principal\": {{\"AWS\": \"arn:aws:iam::OWNER:root\"}}, \"Action\": \"kms:*\", \"Resource\": \"*\"}}",
                    owner
                        .as_deref()
                        .map(|o| format!("the owner account {o}"))
                        .unwrap_or_else(|| "any account".into())
                ),
            ));
        }
    }
    out
}

fn lint_statement(
    s: &Statement,
    name: &str,
    kind: PolicyKind,
    owner: Option<&str>,
    out: &mut Vec<Finding>,
) {
    lint_actions(s, name, out);
    let covered = kms_actions_covered(s);
    lint_alias_resource(s, name, &covered, out);
    if let Some(block) = &s.condition {
        if let Err(e) = check_operators(block) {
            out.push(finding("unknown-operator", Severity::Error, name, e.0));
        }
        for (op, keys) in block {
            for (key, values) in keys {
                let texts: Vec<String> = values.iter().map(|v| v.as_text()).collect();
                let at = ConditionAt { s, name, block, op, key };
                lint_condition(&at, &texts, kind, out);
            }
        }
    }
    if s.effect != Effect::Allow {
        return;
    }
    lint_wildcard_principal(s, name, out);
    lint_broad_cross_account(s, name, kind, owner, &covered, out);
}

/// unknown-action: an action pattern that is not SERVICE:ACTION, or matches no KMS action.
fn lint_actions(s: &Statement, name: &str, out: &mut Vec<Finding>) {
    // unknown-action
    for pattern in s.action.iter().chain(s.not_action.iter()).flat_map(OneOrMany::iter) {
        let Some((service, action)) = pattern.split_once(':') else {
            if pattern != "*" {
                out.push(finding(
                    "unknown-action",
                    Severity::Error,
                    name,
                    format!(
                        "'{pattern}' is not an action: write SERVICE:ACTION, such as kms:Encrypt"
                    ),
                ));
            }
            continue;
        };
        if !service.eq_ignore_ascii_case("kms") {
            continue;
        }
        if !KMS_ACTIONS.iter().any(|k| action_matches(pattern, &format!("kms:{k}"))) {
            let closest = KMS_ACTIONS
                .iter()
                .min_by_key(|k| {
                    strsim::levenshtein(&k.to_ascii_lowercase(), &action.to_ascii_lowercase())
                })
                .map(|k| format!(" (did you mean kms:{k}?)"))
                .unwrap_or_default();
            out.push(finding(
                "unknown-action",
                Severity::Error,
                name,
                format!("'{pattern}' matches no KMS action{closest}"),
            ));
        }
    }
}

/// alias-arn-in-resource: an alias ARN in Resource authorises no key operation.
fn lint_alias_resource(s: &Statement, name: &str, covered: &[String], out: &mut Vec<Finding>) {
    if let Some(resources) = &s.resource {
        let key_ops: Vec<&String> = covered.iter().filter(|a| !is_alias_action(a)).collect();
        for r in resources.iter() {
            let is_alias_arn = Arn::parse(r)
                .is_some_and(|a| a.service == "kms" && a.resource.starts_with("alias/"));
            if is_alias_arn && !key_ops.is_empty() {
                let alias = Arn::parse(r).map(|a| a.resource.to_string()).unwrap_or_default();
                let keys = r.replacen(&alias, "key/*", 1);
                out.push(finding(
                    "alias-arn-in-resource",
                    Severity::Error,
                    name,
                    format!(
                        "Resource {r} is an alias ARN, but {} authorised against the key ARN, so this grants nothing for them; use \"Resource\": \"{keys}\" with \"Condition\": {{\"ForAnyValue:StringLike\": {{\"kms:ResourceAliases\": \"{alias}\"}}}}",
                        if key_ops.len() > 3 {
                            format!("{} and {} more KMS actions are", key_ops[0], key_ops.len() - 1)
                        } else {
                            format!(
                                "{} {}",
                                key_ops.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                                if key_ops.len() == 1 { "is" } else { "are" }
                            )
                        }
                    ),
                ));
            }
        }
    }
}

/// One condition key of one statement, as the condition rules see it.
struct ConditionAt<'a> {
    s: &'a Statement,
    name: &'a str,
    block: &'a ConditionBlock,
    op: &'a str,
    key: &'a str,
}

/// The rules on one condition key: missing-set-operator, alias-arn-in-condition,
/// resource-aliases-in-key-policy, wildcard-without-like, forallvalues-vacuous.
fn lint_condition(
    at: &ConditionAt<'_>,
    texts: &[String],
    kind: PolicyKind,
    out: &mut Vec<Finding>,
) {
    let ConditionAt { s, name, block, op, key } = *at;
    let set = op.starts_with("ForAnyValue:") || op.starts_with("ForAllValues:");
    let base = op.split_once(':').map(|x| x.1).unwrap_or(op);
    if is_multivalued(key) && !set && base != "Null" {
        out.push(finding(
            "missing-set-operator",
            Severity::Error,
            name,
            format!(
                "{key} is multivalued (a key can have several aliases), so {op} needs a set operator: write \"ForAnyValue:{op}\""
            ),
        ));
    }
    let alias_key = key.eq_ignore_ascii_case("kms:ResourceAliases")
        || key.eq_ignore_ascii_case("kms:RequestAlias");
    if alias_key {
        for t in texts.iter().filter(|t| t.starts_with("arn:")) {
            let short = Arn::parse(t).map(|a| a.resource.to_string()).unwrap_or_default();
            out.push(finding(
                "alias-arn-in-condition",
                Severity::Error,
                name,
                format!("{key} holds alias names, never ARNs: replace {t} with {short}"),
            ));
        }
    }
    if kind == PolicyKind::KeyPolicy && key.eq_ignore_ascii_case("kms:ResourceAliases") {
        out.push(finding(
            "resource-aliases-in-key-policy",
            Severity::Error,
            name,
            "kms:ResourceAliases is evaluated only in IAM policies, never in a key policy: move this condition to the user role's policy, or use kms:RequestAlias here".into(),
        ));
    }
    if (base.starts_with("StringEquals") || base.starts_with("StringNotEquals"))
        && let Some(t) = texts.iter().find(|t| t.contains('*') || t.contains('?'))
    {
        let like = base
            .replace("StringEquals", "StringLike")
            .replace("StringNotEquals", "StringNotLike")
            .replace("IgnoreCase", "");
        out.push(finding(
                "wildcard-without-like",
                Severity::Warning,
                name,
                format!("{op} compares {key} with '{t}' literally, wildcard included; use {like} for a pattern"),
            ));
    }
    if op.starts_with("ForAllValues:") && s.effect == Effect::Allow {
        let guarded = block.get("Null").is_some_and(|n| {
            n.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case(key)
                    && v.iter().any(|x| x.as_text().eq_ignore_ascii_case("false"))
            })
        });
        if !guarded {
            out.push(finding(
                "forallvalues-vacuous",
                Severity::Warning,
                name,
                format!("{op} on {key} is true when the request has no {key} at all, so this Allow also matches such requests; use ForAnyValue, or add \"Null\": {{\"{key}\": \"false\"}}"),
            ));
        }
    }
}

/// Condition keys that bound who the principal is: its organisation, account or ARN.
const PRINCIPAL_BOUNDS: [&str; 6] = [
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "kms:calleraccount",
    "aws:userid",
];

/// Whether a condition bounds the principal: a key of [`PRINCIPAL_BOUNDS`] under an operator
/// that requires it (not negated, not `...IfExists`, not `Null`).
fn bounds_principal(s: &Statement) -> bool {
    s.condition.iter().flatten().any(|(operator, keys)| {
        let op = operator.to_ascii_lowercase();
        let requires = !op.contains("not") && !op.ends_with("ifexists") && op != "null";
        requires && keys.keys().any(|k| PRINCIPAL_BOUNDS.contains(&k.to_ascii_lowercase().as_str()))
    })
}

/// wildcard-principal: an Allow to every principal that no condition bounds to an
/// organisation, account or principal.
fn lint_wildcard_principal(s: &Statement, name: &str, out: &mut Vec<Finding>) {
    if s.principal.is_some() {
        // A bare "*" and {"AWS": "*"} alike.
        let everyone = s.principal_values().iter().any(|v| v == "*");
        if everyone && !bounds_principal(s) {
            out.push(finding(
                "wildcard-principal",
                Severity::Warning,
                name,
                "Principal \"*\" with no condition on the principal's organisation, account or ARN allows every AWS principal of every account (subject to their own policies); name the accounts, or restrict with aws:PrincipalOrgID, aws:PrincipalOrgPaths or kms:CallerAccount".into(),
            ));
        }
    }
}

/// broad-cross-account: a key policy granting another account more than using the key.
fn lint_broad_cross_account(
    s: &Statement,
    name: &str,
    kind: PolicyKind,
    owner: Option<&str>,
    covered: &[String],
    out: &mut Vec<Finding>,
) {
    if kind == PolicyKind::KeyPolicy
        && let (Some(owner), Some(p)) = (owner, &s.principal)
    {
        let foreign: Vec<String> =
            principal_accounts(p).into_iter().filter(|a| a != owner && a != "*").collect();
        let management: Vec<&String> = covered.iter().filter(|a| !is_cross_account(a)).collect();
        if !foreign.is_empty() && !management.is_empty() {
            out.push(finding(
                    "broad-cross-account",
                    Severity::Warning,
                    name,
                    format!(
                        "grants account {} {} beyond using the key ({}{}); grant another account only what it uses, such as kms:Encrypt and kms:Decrypt",
                        foreign.join(", "),
                        if covered.len() == KMS_ACTIONS.len() { "kms:*, management included," } else { "actions" },
                        management.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                        if management.len() > 3 { ", ..." } else { "" }
                    ),
                ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IAM: an account is named by its 12-digit id or its root ARN; roles and users are not roots.
    #[test]
    fn account_roots_are_twelve_digits_or_the_root_arn() {
        assert_eq!(is_account_root("111111111111").as_deref(), Some("111111111111"));
        assert_eq!(
            is_account_root("arn:aws:iam::111111111111:root").as_deref(),
            Some("111111111111")
        );
        for not in [
            "11111111111",
            "11111111111a",
            "1111111111111",
            "arn:aws:iam::111111111111:role/r",
            "arn:aws:sts::111111111111:root",
        ] {
            assert_eq!(is_account_root(not), None, "{not}");
        }
    }

    // KMS "Default key policy": the account whose root is allowed kms:* manages the key; a Deny,
    // or a statement allowing less, says nothing about the owner.
    #[test]
    fn the_owner_is_the_root_allowed_everything() {
        let doc = |v: serde_json::Value| PolicyDocument::parse(&v.to_string()).unwrap();
        let root = |acct: &str| format!("arn:aws:iam::{acct}:root");
        let p = doc(serde_json::json!({"Statement": [
            {"Effect": "Deny", "Principal": {"AWS": root("333333333333")}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": root("222222222222")}, "Action": "kms:Decrypt", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": root("111111111111")}, "Action": "kms:*", "Resource": "*"}]}));
        assert_eq!(owner_account(&p, None).as_deref(), Some("111111111111"));
        assert_eq!(owner_account(&p, Some("444444444444")).as_deref(), Some("444444444444"));
    }

    fn codes(v: serde_json::Value, kind: PolicyKind) -> Vec<&'static str> {
        let doc = PolicyDocument::parse(&v.to_string()).unwrap();
        lint(&doc, kind, Some("111111111111")).iter().map(|f| f.code).collect()
    }

    // KMS "Default key policy": only the owner account's root allowed to manage the key keeps
    // it manageable; a role allowed kms:* is not enough.
    #[test]
    fn a_key_managed_only_by_a_role_is_an_owner_lockout() {
        let role = serde_json::json!({"Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111111111111:role/admin"}, "Action": "kms:*", "Resource": "*"}]});
        assert!(codes(role, PolicyKind::KeyPolicy).contains(&"owner-lockout"));
    }

    // IAM "Single-valued vs multivalued context keys": a Null guard protects ForAllValues only on
    // the same key.
    #[test]
    fn a_null_guard_on_another_key_does_not_make_for_all_values_safe() {
        let other = serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {"ForAllValues:StringLike": {"kms:ResourceAliases": "alias/data"},
                          "Null": {"kms:RequestAlias": "false"}}}]});
        assert!(codes(other, PolicyKind::IdentityPolicy).contains(&"forallvalues-vacuous"));
        let same = serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {"ForAllValues:StringLike": {"kms:ResourceAliases": "alias/data"},
                          "Null": {"kms:ResourceAliases": "false"}}}]});
        assert!(!codes(same, PolicyKind::IdentityPolicy).contains(&"forallvalues-vacuous"));
    }

    #[test]
    fn not_action_covers_every_kms_action_but_those_it_names() {
        let s = Statement {
            not_action: Some(OneOrMany::One("kms:Encrypt".into())),
            ..Statement::new(Effect::Allow)
        };
        let covered = kms_actions_covered(&s);
        assert_eq!(covered.len(), KMS_ACTIONS.len() - 1);
        assert!(
            !covered.contains(&"kms:Encrypt".to_string())
                && covered.contains(&"kms:Decrypt".to_string())
        );
    }
}
