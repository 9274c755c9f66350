//! The smallest fix for what blocks a request: the one document to change, as a diff, or the
//! one call to make. Never a wildcard principal; never `"Resource": "*"` on the identity side
//! when `key/*` with a `kms:ResourceAliases` condition will do.

use super::actions::{ActionResource, action_resource};
use super::eval::{Blocker, Layer, Request};
use super::{Effect, PolicyDocument, Statement};
use serde::Serialize;

/// What the fixes are built from.
#[derive(Debug, Clone, Copy)]
pub struct FixInput<'a> {
    /// The request.
    pub req: &'a Request,
    /// The caller's account.
    pub caller_account: &'a str,
    /// The caller's role ARN, when it calls as a role session.
    pub caller_role: Option<&'a str>,
    /// The key's account, partition and region.
    pub key_account: &'a str,
    /// The partition.
    pub partition: &'a str,
    /// The key's region.
    pub region: &'a str,
    /// The alias the caller names the key by (`alias/NAME`), if it does.
    pub alias: Option<&'a str>,
    /// The key policy.
    pub key_policy: Option<&'a PolicyDocument>,
    /// The caller's identity policies, named.
    pub identity: &'a [(String, PolicyDocument)],
    /// The caller's permissions boundary.
    pub boundary: Option<&'a (String, PolicyDocument)>,
    /// The SCP files.
    pub scps: &'a [(String, PolicyDocument)],
}

/// One fix.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    /// The layer it unblocks.
    pub layer: Layer,
    /// The document (or resource) to change.
    pub document: String,
    /// What to do, in a sentence.
    pub change: String,
    /// The document after the change, when a document changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<serde_json::Value>,
    /// The change as a line diff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The whole document goes (its only statement is the one that denies).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
}

impl Fix {
    fn call(layer: Layer, document: &str, change: String) -> Fix {
        Fix { layer, document: document.into(), change, policy: None, diff: None, delete: false }
    }

    fn edit(
        layer: Layer,
        document: &str,
        change: String,
        before: &PolicyDocument,
        after: PolicyDocument,
    ) -> Fix {
        let diff = crate::output::diff(&before.render(), &after.render());
        let policy = serde_json::from_str(&after.render()).ok();
        Fix { layer, document: document.into(), change, policy, diff: Some(diff), delete: false }
    }
}

/// The smallest fix for `b`.
pub fn smallest_fix(b: &Blocker, input: &FixInput<'_>) -> Fix {
    let action = &input.req.action;
    match b.layer {
        Layer::KeyPolicy => key_policy_fix(b, input),
        Layer::IdentityPolicy => {
            let (name, doc) = named(input.identity, &b.policy)
                .or_else(|| input.identity.first().map(|(n, d)| (n.as_str(), d)))
                .unwrap_or(("a new inline policy", &EMPTY));
            policy_fix(b, Layer::IdentityPolicy, name, doc, identity_statement(input))
        }
        Layer::PermissionsBoundary => match input.boundary {
            Some((name, doc)) => policy_fix(b, b.layer, name, doc, identity_statement(input)),
            None => Fix::call(
                b.layer,
                "permissions boundary",
                format!("allow {action} in the role's permissions boundary"),
            ),
        },
        Layer::Scp => {
            let (name, doc) = named(input.scps, &b.policy).unwrap_or(("the SCP", &EMPTY));
            let allow = Statement::new(Effect::Allow)
                .actions(&[action.as_str()])
                .resources(vec!["*".into()]);
            policy_fix(b, b.layer, name, doc, allow)
        }
        Layer::KeyState => Fix::call(b.layer, &input.req.key_arn, state_fix(&b.message)),
        Layer::KeyUsage => Fix::call(
            b.layer,
            &input.req.key_arn,
            format!(
                "{action} needs a key whose KeyUsage allows it: use such a key (KMS cannot change a key's usage)"
            ),
        ),
        Layer::NameResolution | Layer::AliasNotFound | Layer::Region | Layer::Grant => {
            Fix::call(b.layer, "the caller's code", name_fix(b.layer, input))
        }
    }
}

static EMPTY: std::sync::LazyLock<PolicyDocument> =
    std::sync::LazyLock::new(|| PolicyDocument::new(Vec::new()));

fn named<'a>(
    docs: &'a [(String, PolicyDocument)],
    name: &str,
) -> Option<(&'a str, &'a PolicyDocument)> {
    docs.iter().find(|(n, _)| n == name).map(|(n, d)| (n.as_str(), d))
}

/// A denying statement is taken out; otherwise the allowing statement is added.
fn policy_fix(
    b: &Blocker,
    layer: Layer,
    name: &str,
    doc: &PolicyDocument,
    allow: Statement,
) -> Fix {
    let mut after = doc.clone();
    if !b.statement.is_empty() && after.remove_named(&b.statement) {
        if after.statements().next().is_none() {
            let change =
                format!("delete {name}: its only statement, {}, denies the request", b.statement);
            let diff = crate::output::diff(&doc.render(), "");
            return Fix { diff: Some(diff), delete: true, ..Fix::call(layer, name, change) };
        }
        let change =
            format!("remove statement {} of {name}, which denies the request", b.statement);
        return Fix::edit(layer, name, change, doc, after);
    }
    after.push_statement(allow);
    let change = format!("add a statement to {name} that allows the request");
    Fix::edit(layer, name, change, doc, after)
}

/// The key policy names the caller's account root across accounts (its IAM policies then
/// decide), or the caller's role in the key's own account.
fn key_policy_fix(b: &Blocker, input: &FixInput<'_>) -> Fix {
    let Some(doc) = input.key_policy else {
        return Fix::call(
            Layer::KeyPolicy,
            "key policy",
            format!("allow {} in the key policy", input.req.action),
        );
    };
    let principal = if input.caller_account == input.key_account {
        input.caller_role.map(String::from).unwrap_or_else(|| input.req.principal.clone())
    } else {
        format!("arn:{}:iam::{}:root", input.partition, input.caller_account)
    };
    let action = input.req.action.as_str();
    let sid = format!("Allow{}", action.trim_start_matches("kms:"));
    let allow = Statement::new(Effect::Allow)
        .sid(&sid)
        .aws_principals(vec![principal])
        .actions(&[action])
        .resources(vec!["*".into()]);
    policy_fix(b, Layer::KeyPolicy, "key policy", doc, allow)
}

/// What the identity side needs: the action on the key's ARN pattern with the alias condition
/// when the caller names the key by alias, else on the key ARN; on the alias for alias actions;
/// on `*` only for actions that have no resource.
fn identity_statement(input: &FixInput<'_>) -> Statement {
    let req = input.req;
    let allow = Statement::new(Effect::Allow).actions(&[req.action.as_str()]);
    match action_resource(&req.action) {
        ActionResource::None => allow.resources(vec!["*".into()]),
        ActionResource::Alias => {
            let alias = req.alias_arn.clone().unwrap_or_default();
            allow.resources(vec![alias, req.key_arn.clone()])
        }
        ActionResource::Key => match input.alias {
            Some(alias) => {
                let keys = format!(
                    "arn:{}:kms:{}:{}:key/*",
                    input.partition, input.region, input.key_account
                );
                allow.resources(vec![keys]).condition(
                    "ForAnyValue:StringLike",
                    "kms:ResourceAliases",
                    vec![alias.to_string()],
                )
            }
            None => allow.resources(vec![req.key_arn.clone()]),
        },
    }
}

fn state_fix(message: &str) -> String {
    if message.contains("PendingDeletion") {
        "cancel the key's deletion (kms:CancelKeyDeletion), then enable it (kms:EnableKey)".into()
    } else {
        "enable the key (kms:EnableKey)".into()
    }
}

fn name_fix(layer: Layer, input: &FixInput<'_>) -> String {
    let alias = input.alias.unwrap_or("alias/NAME");
    let alias_arn =
        format!("arn:{}:kms:{}:{}:{alias}", input.partition, input.region, input.key_account);
    match layer {
        Layer::Region => format!(
            "call KMS in {} (where the key is): a KMS client is bound to one region",
            input.region
        ),
        Layer::AliasNotFound => format!(
            "create {alias} in account {} (kms:CreateAlias), or name the key by its key ARN",
            input.key_account
        ),
        _ => format!(
            "name the key by its ARN ({alias_arn}, or the key ARN): a short name or key id is looked up in the caller's own account"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        req: &'a Request,
        kp: &'a PolicyDocument,
        id: &'a [(String, PolicyDocument)],
    ) -> FixInput<'a> {
        FixInput {
            req,
            caller_account: "222222222222",
            caller_role: Some("arn:aws:iam::222222222222:role/app"),
            key_account: "111111111111",
            partition: "aws",
            region: "us-east-1",
            alias: Some("alias/data"),
            key_policy: Some(kp),
            identity: id,
            boundary: None,
            scps: &[],
        }
    }

    fn blocker(layer: Layer, policy: &str, statement: &str) -> Blocker {
        Blocker {
            layer,
            source: policy.into(),
            message: String::new(),
            policy: policy.into(),
            statement: statement.into(),
        }
    }

    // KMS "Allowing users in other accounts": the key policy names the other account (its root),
    // whose IAM policies then decide; never a wildcard principal.
    #[test]
    fn a_missing_key_policy_grant_names_the_callers_account_root() {
        let req = Request {
            action: "kms:Decrypt".into(),
            key_arn: "arn:aws:kms:us-east-1:111111111111:key/k".into(),
            ..Request::default()
        };
        let kp = PolicyDocument::new(vec![]);
        let fix =
            smallest_fix(&blocker(Layer::KeyPolicy, "key-policy", ""), &input(&req, &kp, &[]));
        let text = fix.diff.unwrap();
        assert!(text.contains("+") && text.contains("arn:aws:iam::222222222222:root"), "{text}");
        assert!(!text.contains("\"*\"\n") || !text.contains("\"AWS\": \"*\""), "{text}");
    }

    // The alias condition, not the alias ARN in Resource and not "*".
    #[test]
    fn a_missing_identity_grant_uses_key_star_and_the_alias_condition() {
        let req = Request {
            action: "kms:Decrypt".into(),
            key_arn: "arn:aws:kms:us-east-1:111111111111:key/k".into(),
            ..Request::default()
        };
        let kp = PolicyDocument::new(vec![]);
        let id = vec![("inline:app".to_string(), PolicyDocument::new(vec![]))];
        let fix =
            smallest_fix(&blocker(Layer::IdentityPolicy, "identity", ""), &input(&req, &kp, &id));
        let after = fix.policy.unwrap().to_string();
        assert!(after.contains("arn:aws:kms:us-east-1:111111111111:key/*"), "{after}");
        assert!(after.contains("kms:ResourceAliases") && after.contains("alias/data"), "{after}");
        assert_eq!(fix.document, "inline:app");
    }

    #[test]
    fn facts_get_the_one_call_or_name_that_fixes_them() {
        let req = Request {
            action: "kms:Decrypt".into(),
            key_arn: "arn:aws:kms:us-east-1:111111111111:key/k".into(),
            ..Request::default()
        };
        let kp = PolicyDocument::new(vec![]);
        let fix = |layer: Layer, message: &str| {
            let b = Blocker { message: message.into(), ..blocker(layer, "", "") };
            smallest_fix(&b, &input(&req, &kp, &[])).change
        };
        assert!(
            fix(Layer::KeyState, "the key is PendingDeletion").contains("kms:CancelKeyDeletion")
        );
        assert_eq!(fix(Layer::KeyState, "the key is Disabled"), "enable the key (kms:EnableKey)");
        assert!(fix(Layer::Region, "").starts_with("call KMS in us-east-1"));
        assert!(
            fix(Layer::AliasNotFound, "").starts_with("create alias/data in account 111111111111")
        );
        assert!(
            fix(Layer::NameResolution, "")
                .contains("arn:aws:kms:us-east-1:111111111111:alias/data")
        );
    }

    #[test]
    fn the_fix_goes_to_the_policy_that_blocks() {
        let req = Request { action: "kms:Decrypt".into(), ..Request::default() };
        let kp = PolicyDocument::new(vec![]);
        let deny = |sid: &str| {
            PolicyDocument::new(vec![
                Statement::new(Effect::Deny)
                    .sid(sid)
                    .actions(&["kms:Decrypt"])
                    .resources(vec!["*".into()]),
                Statement::new(Effect::Allow).actions(&["kms:Encrypt"]).resources(vec!["*".into()]),
            ])
        };
        let id = vec![("inline:a".to_string(), deny("A")), ("inline:b".to_string(), deny("B"))];
        let fix =
            smallest_fix(&blocker(Layer::IdentityPolicy, "inline:b", "B"), &input(&req, &kp, &id));
        assert_eq!(fix.document, "inline:b");
        assert!(fix.change.contains("remove statement B"), "{}", fix.change);
    }

    #[test]
    fn an_explicit_deny_is_removed_from_its_own_policy() {
        let req = Request { action: "kms:Decrypt".into(), ..Request::default() };
        let kp = PolicyDocument::new(vec![]);
        let deny = PolicyDocument::new(vec![
            Statement::new(Effect::Deny)
                .sid("NoDecrypt")
                .actions(&["kms:Decrypt"])
                .resources(vec!["*".into()]),
        ]);
        let id = vec![("inline:deny".to_string(), deny)];
        let fix = smallest_fix(
            &blocker(Layer::IdentityPolicy, "inline:deny", "NoDecrypt"),
            &input(&req, &kp, &id),
        );
        assert!(fix.change.contains("delete inline:deny") && fix.delete, "{}", fix.change);
        assert!(fix.diff.unwrap().contains("-      \"Sid\": \"NoDecrypt\""));
    }
}
