//! Does principal P may call action A on key K (through alias X)? AWS's documented logic for KMS,
//! with the reasons for the answer. LocalStack never denies anything; this is what does.
//!
//! Rules encoded (KMS developer guide, "Key policies", "Allowing users in other accounts to use a
//! KMS key"; IAM user guide, "Policy evaluation logic"):
//! - an explicit Deny in any policy wins;
//! - the key policy must allow: either the principal itself, or its account (root / account id),
//!   which delegates to that account's IAM policies, which must then allow too;
//! - across accounts, an identity policy in the caller's account must allow as well, always;
//! - only the operations KMS allows across accounts can succeed across accounts;
//! - the request's resource is the key ARN: an alias ARN in `Resource` never matches a key operation;
//! - `kms:ResourceAliases` is in the context of identity policies only; `kms:RequestAlias` only when
//!   the request names an alias.

use super::actions::{is_alias_action, is_cross_account, names_key_by_alias};
use super::condition::{self, RequestContext};
use super::document::{PolicyDocument, PolicyError, Principal, PrincipalKind, Statement};
use super::matching::{Arn, action_matches, resource_matches};
use super::{Effect, OneOrMany};
use serde::Serialize;
use std::borrow::Cow;

mod layers;
pub use layers::{Blocker, Grant, Layer, Layers, Verdict, decide};

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Every policy that must allow, allows, and nothing denies.
    Allow,
    /// Nothing denies explicitly, but something that must allow does not.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
}

impl Decision {
    /// `allow`, `implicit_deny` or `explicit_deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::ImplicitDeny => "implicit_deny",
            Decision::ExplicitDeny => "explicit_deny",
        }
    }
}

/// Why: which statement of which policy decided, or came close and what did not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// `key-policy`, the identity policy's name, or `kms` for a rule of the service itself.
    pub policy: String,
    /// Sid, or `#index` when the statement has none; empty for service rules.
    pub statement: String,
    /// `deny` (an explicit deny matched), `allow` (an allow matched), `near-miss` (the action
    /// matched but something else did not), `missing` (what would have been needed), or `rule`.
    pub kind: &'static str,
    /// Plain words.
    pub message: String,
}

/// The decision and its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// The outcome.
    pub decision: Decision,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// A request to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Role ARN, user ARN, account root ARN, or assumed-role session ARN.
    pub principal: String,
    /// `kms:Encrypt` and so on.
    pub action: String,
    /// The key ARN (never an alias ARN: KMS authorises key operations against the key).
    pub key_arn: String,
    /// Every alias of the key, `alias/NAME`.
    pub key_aliases: Vec<String>,
    /// The alias the request names, if any (`alias/NAME` or its ARN).
    pub request_alias: Option<String>,
    /// For CreateAlias, UpdateAlias and DeleteAlias: the alias ARN they act on (authorised by
    /// IAM policies), besides the key in `key_arn` (authorised by the key policy).
    pub alias_arn: Option<String>,
    /// More context keys.
    pub extra: Vec<(String, String)>,
}

/// A policy with a name to cite in reasons.
#[derive(Debug, Clone, Copy)]
pub struct NamedPolicy<'a> {
    /// How reasons name it.
    pub name: &'a str,
    /// The document.
    pub document: &'a PolicyDocument,
}

/// Who is calling, as far as policies are concerned; borrowed from the request's principal.
#[derive(Debug, Clone)]
struct Caller<'a> {
    account: &'a str,
    /// `aws:PrincipalArn`: for a role session, the role's ARN.
    principal_arn: Cow<'a, str>,
    /// The session ARN, for an assumed-role principal.
    session_arn: Option<&'a str>,
    /// The account's root ARN, which names the account in a Principal.
    root: String,
}

fn parse_caller(principal: &str) -> Result<Caller<'_>, PolicyError> {
    let bad = || {
        PolicyError(format!(
            "invalid principal '{principal}' (expected a role, user, root or assumed-role session ARN such as arn:aws:iam::222222222222:role/NAME)"
        ))
    };
    let arn = Arn::parse(principal).ok_or_else(bad)?;
    if arn.account.len() != 12 || !arn.account.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let (principal_arn, session_arn) = match arn.service {
        "sts" => {
            let mut parts = arn.resource.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("assumed-role"), Some(role), Some(_session)) if !role.is_empty() => (
                    Cow::Owned(format!("arn:{}:iam::{}:role/{}", arn.partition, arn.account, role)),
                    Some(principal),
                ),
                _ => return Err(bad()),
            }
        }
        "iam"
            if arn.resource == "root"
                || arn.resource.starts_with("role/")
                || arn.resource.starts_with("user/") =>
        {
            (Cow::Borrowed(principal), None)
        }
        _ => return Err(bad()),
    };
    Ok(Caller {
        account: arn.account,
        principal_arn,
        session_arn,
        root: format!("arn:{}:iam::{}:root", arn.partition, arn.account),
    })
}

/// How a key policy statement's principal relates to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalMatch {
    /// Not this caller.
    No,
    /// The caller's account (root or account id): delegates to the account's IAM policies.
    Account,
    /// The caller itself, or everyone (`*`).
    Direct,
}

fn principal_match(p: &Principal, caller: &Caller) -> PrincipalMatch {
    let values = match p {
        Principal::Wildcard(_) => return PrincipalMatch::Direct,
        Principal::Typed(map) => match map.get(&PrincipalKind::Aws) {
            Some(v) => v,
            None => return PrincipalMatch::No,
        },
    };
    let mut best = PrincipalMatch::No;
    for v in values.iter() {
        if v == "*" || *v == caller.principal_arn || caller.session_arn == Some(v.as_str()) {
            return PrincipalMatch::Direct;
        }
        if *v == caller.account || *v == caller.root {
            best = PrincipalMatch::Account;
        }
    }
    best
}

/// What matched and what did not, for one statement; the words for a miss are written only
/// when a reason needs them.
struct Match<'a> {
    action: bool,
    resource: Result<(), ResourceMiss<'a>>,
    principal: PrincipalMatch,
    condition: Result<(), condition::ConditionMiss<'a>>,
}

/// Why a statement's `Resource` or `NotResource` leaves the key out.
enum ResourceMiss<'a> {
    /// `Resource` lists these, none of which matches the key.
    Unmatched(&'a OneOrMany<String>),
    /// `NotResource` matches the key.
    Excluded,
    /// The statement has neither.
    Absent,
}

impl ResourceMiss<'_> {
    fn message(&self, req: &Request) -> String {
        match self {
            ResourceMiss::Unmatched(listed) => {
                let alias_arn = listed.iter().find(|p| {
                    Arn::parse(p)
                        .is_some_and(|a| a.service == "kms" && a.resource.starts_with("alias/"))
                });
                match alias_arn {
                    Some(a) if !is_alias_action(&req.action) => format!(
                        "Resource {a} is an alias ARN: {} is authorised against the key ARN ({}), so an alias ARN never matches it; use arn:...:key/* with a kms:ResourceAliases condition",
                        req.action, req.key_arn
                    ),
                    _ => format!(
                        "Resource {} does not match the key {}",
                        listed.iter().map(String::as_str).collect::<Vec<_>>().join(", "),
                        req.key_arn
                    ),
                }
            }
            ResourceMiss::Excluded => format!("NotResource excludes the key {}", req.key_arn),
            ResourceMiss::Absent => "the statement has no Resource".into(),
        }
    }
}

impl Match<'_> {
    fn matched(&self) -> bool {
        self.action
            && self.resource.is_ok()
            && self.principal != PrincipalMatch::No
            && self.condition.is_ok()
    }

    /// What did not match, when the action did.
    fn miss(&self, req: &Request) -> Option<String> {
        if !self.action {
            return None;
        }
        let mut why = Vec::new();
        if let Err(r) = &self.resource {
            why.push(r.message(req));
        }
        if self.principal == PrincipalMatch::No {
            why.push("its Principal does not name the caller or the caller's account".to_string());
        }
        if let Err(c) = &self.condition {
            why.push(c.to_string());
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

fn any_matches(values: &OneOrMany<String>, f: impl Fn(&str) -> bool) -> bool {
    values.iter().any(|v| f(v))
}

fn match_statement<'a>(
    s: &'a Statement,
    req: &Request,
    caller: &Caller,
    ctx: &RequestContext,
    with_principal: bool,
) -> Result<Match<'a>, PolicyError> {
    let action = match (&s.action, &s.not_action) {
        (Some(a), _) => any_matches(a, |p| action_matches(p, &req.action)),
        (None, Some(na)) => !any_matches(na, |p| action_matches(p, &req.action)),
        (None, None) => false,
    };
    let resource = match (&s.resource, &s.not_resource) {
        (Some(r), _) if any_matches(r, |p| resource_matches(p, &req.key_arn)) => Ok(()),
        (Some(r), _) => Err(ResourceMiss::Unmatched(r)),
        (None, Some(nr)) if !any_matches(nr, |p| resource_matches(p, &req.key_arn)) => Ok(()),
        (None, Some(_)) => Err(ResourceMiss::Excluded),
        (None, None) => Err(ResourceMiss::Absent),
    };
    let principal = if with_principal {
        match (&s.principal, &s.not_principal) {
            (Some(p), _) => principal_match(p, caller),
            (None, Some(np)) if principal_match(np, caller) == PrincipalMatch::No => {
                PrincipalMatch::Direct
            }
            _ => PrincipalMatch::No,
        }
    } else {
        PrincipalMatch::Direct
    };
    let condition = match &s.condition {
        None => Ok(()),
        Some(block) => match condition::evaluate(block, ctx)? {
            None => Ok(()),
            Some(miss) => Err(miss),
        },
    };
    Ok(Match { action, resource, principal, condition })
}

fn statement_name(s: &Statement, index: usize) -> String {
    s.sid.clone().unwrap_or_else(|| format!("#{index}"))
}

/// `alias/NAME`, `NAME` or an alias ARN as `alias/NAME`, borrowed when it can be.
fn alias_name(alias: &str) -> Cow<'_, str> {
    let tail = Arn::parse(alias).map_or(alias, |a| a.resource);
    if tail.starts_with("alias/") {
        Cow::Borrowed(tail)
    } else {
        Cow::Owned(format!("alias/{tail}"))
    }
}

/// Evaluates `req` against the key policy and the caller's identity policies, each action against
/// its real resource (see [`decide`] for SCPs, permissions boundaries and grants too).
/// Errors are bad input: a principal or key that is not an ARN of the right kind, an unknown KMS
/// action, a Principal in an identity policy, an unknown condition operator.
pub fn evaluate(
    req: &Request,
    key_policy: &PolicyDocument,
    identity: &[NamedPolicy<'_>],
) -> Result<Evaluation, PolicyError> {
    let layers = Layers { key_policy: Some(key_policy), identity, ..Layers::default() };
    decide(req, &layers).map(|v| Evaluation { decision: v.decision, reasons: v.reasons })
}

/// The key side of a request: key policy and identity policies, as KMS decides it. Also says
/// whether the identity policies had to allow (across accounts, or through a delegation to the
/// caller's account), which is where a permissions boundary applies.
fn evaluate_key(
    req: &Request,
    caller: &Caller,
    key_policy: &PolicyDocument,
    identity: &[NamedPolicy<'_>],
) -> Result<(Evaluation, bool), PolicyError> {
    let key_account = key_account(req)?;
    let scan = scan(req, caller, key_policy, identity)?;
    let cross_account = caller.account != key_account;
    let direct = scan.key_allow.as_ref().is_some_and(|(_, pm)| *pm == PrincipalMatch::Direct);
    let needs_identity = cross_account || !direct;
    if !scan.denies.is_empty() {
        let denied = Evaluation { decision: Decision::ExplicitDeny, reasons: scan.denies };
        return Ok((denied, needs_identity));
    }
    if cross_account && !is_cross_account(&req.action) {
        let rule = Evaluation {
            decision: Decision::ImplicitDeny,
            reasons: vec![Reason {
                policy: "kms".into(),
                statement: String::new(),
                kind: "rule",
                message: format!(
                    "{} cannot be called from another account: KMS allows only its cryptographic operations and a few reads (DescribeKey, GetPublicKey, grants) across accounts",
                    req.action
                ),
            }],
        };
        return Ok((rule, needs_identity));
    }
    Ok((decide_key(req, caller, key_account, scan), needs_identity))
}

/// The key's account, once the key is checked to be a key ARN.
fn key_account(req: &Request) -> Result<&str, PolicyError> {
    let key = Arn::parse(&req.key_arn)
        .filter(|k| k.service == "kms" && k.resource.starts_with("key/"))
        .ok_or_else(|| {
            PolicyError(format!(
                "invalid key '{}' (expected a key ARN such as arn:aws:kms:us-east-1:111111111111:key/ID: KMS authorises key operations against the key, not an alias)",
                req.key_arn
            ))
        })?;
    // The principal, the action, and Principals in identity policies are checked by `decide`.
    Ok(key.account)
}

/// The request context of the key policy, and that of identity policies, which alone carry
/// `kms:ResourceAliases`.
fn contexts<'r>(
    req: &'r Request,
    caller: &'r Caller<'_>,
) -> (RequestContext<'r>, RequestContext<'r>) {
    let mut base = RequestContext::default();
    base.set("aws:PrincipalArn", vec![Cow::Borrowed(caller.principal_arn.as_ref())]);
    base.set("aws:PrincipalAccount", vec![Cow::Borrowed(caller.account)]);
    base.set("kms:CallerAccount", vec![Cow::Borrowed(caller.account)]);
    // Only operations that take an alias in KeyId carry kms:RequestAlias; for the others the
    // request cannot name one, whatever the caller's code says.
    if let Some(alias) = req.request_alias.as_ref().filter(|_| names_key_by_alias(&req.action)) {
        base.set("kms:RequestAlias", vec![alias_name(alias)]);
    }
    for (k, v) in &req.extra {
        base.add(k, Cow::Borrowed(v.as_str()));
    }
    let key_ctx = base.clone();
    let mut identity_ctx = base;
    if !req.extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("kms:ResourceAliases")) {
        identity_ctx
            .set("kms:ResourceAliases", req.key_aliases.iter().map(|a| alias_name(a)).collect());
    }
    (key_ctx, identity_ctx)
}

/// What the statements of every policy said about the request.
#[derive(Default)]
struct Scan<'a> {
    denies: Vec<Reason>,
    key_allow: Option<(Reason, PrincipalMatch)>,
    identity_allow: Option<Reason>,
    /// Statements whose action matched but something else did not; their words are written only
    /// for an implicit deny, the one answer that reports them.
    near: Vec<Near<'a>>,
}

/// A statement that came close.
struct Near<'a> {
    policy: &'a str,
    index: usize,
    statement: &'a Statement,
    found: Match<'a>,
}

/// The near misses, as reasons.
fn near_reasons<'b>(near: &'b [Near<'_>], req: &'b Request) -> impl Iterator<Item = Reason> + 'b {
    near.iter().filter_map(move |n| {
        let miss = n.found.miss(req)?;
        Some(Reason {
            policy: n.policy.to_string(),
            statement: statement_name(n.statement, n.index),
            kind: "near-miss",
            message: format!("{:?} for {} but {miss}", n.statement.effect, req.action),
        })
    })
}

/// Matches every statement of the key policy and of each identity policy.
fn scan<'a>(
    req: &Request,
    caller: &Caller,
    key_policy: &'a PolicyDocument,
    identity: &[NamedPolicy<'a>],
) -> Result<Scan<'a>, PolicyError> {
    let (key_ctx, identity_ctx) = contexts(req, caller);
    let mut scan = Scan::default();
    for (i, s) in key_policy.statements().enumerate() {
        let m = match_statement(s, req, caller, &key_ctx, true)?;
        if !m.matched() {
            scan.near_miss("key-policy", i, s, m);
            continue;
        }
        let reason = || matched_reason(req, caller, "key-policy", i, s, m.principal, true);
        match s.effect {
            Effect::Deny => scan.denies.push(reason()),
            // Prefer a direct grant over a delegation when both exist.
            Effect::Allow
                if scan.key_allow.as_ref().is_none_or(|(_, p)| *p != PrincipalMatch::Direct) =>
            {
                scan.key_allow = Some((reason(), m.principal));
            }
            Effect::Allow => {}
        }
    }
    for p in identity {
        for (i, s) in p.document.statements().enumerate() {
            let m = match_statement(s, req, caller, &identity_ctx, false)?;
            if !m.matched() {
                scan.near_miss(p.name, i, s, m);
                continue;
            }
            let reason = || matched_reason(req, caller, p.name, i, s, m.principal, false);
            match s.effect {
                Effect::Deny => scan.denies.push(reason()),
                Effect::Allow if scan.identity_allow.is_none() => {
                    scan.identity_allow = Some(reason());
                }
                Effect::Allow => {}
            }
        }
    }
    Ok(scan)
}

impl<'a> Scan<'a> {
    /// Keeps a statement that did not match when its action did: a near miss.
    fn near_miss(&mut self, policy: &'a str, index: usize, statement: &'a Statement, m: Match<'a>) {
        if m.action {
            self.near.push(Near { policy, index, statement, found: m });
        }
    }
}

/// The reason a matching statement gives.
fn matched_reason(
    req: &Request,
    caller: &Caller,
    policy: &str,
    i: usize,
    s: &Statement,
    principal: PrincipalMatch,
    is_key: bool,
) -> Reason {
    let message = match (s.effect, is_key, principal) {
        (Effect::Deny, _, _) => format!("explicitly denies {}", req.action),
        (Effect::Allow, true, PrincipalMatch::Account) => format!(
            "allows {} to account {} (its root), which delegates to that account's IAM policies",
            req.action, caller.account
        ),
        (Effect::Allow, true, _) => format!("allows {} to {} directly", req.action, req.principal),
        (Effect::Allow, false, _) => format!("allows {} on {}", req.action, req.key_arn),
    };
    Reason {
        policy: policy.to_string(),
        statement: statement_name(s, i),
        kind: if s.effect == Effect::Deny { "deny" } else { "allow" },
        message,
    }
}

/// The decision when nothing denies: the key policy must allow, and across accounts (or
/// through a delegation to the account) an identity policy must allow too.
fn decide_key(req: &Request, caller: &Caller, key_account: &str, scan: Scan) -> Evaluation {
    let cross_account = caller.account != key_account;
    let key_ok = scan.key_allow.as_ref().map(|(_, pm)| *pm);
    let allowed = match (key_ok, &scan.identity_allow) {
        (Some(PrincipalMatch::Direct), _) if !cross_account => true,
        (Some(_), Some(_)) => true,
        _ => false,
    };
    let mut reasons: Vec<Reason> =
        scan.key_allow.map(|(r, _)| r).into_iter().chain(scan.identity_allow.clone()).collect();
    if allowed {
        return Evaluation { decision: Decision::Allow, reasons };
    }
    let missing = match (key_ok, &scan.identity_allow) {
        (None, _) => format!(
            "no key policy statement allows {} for {} (the key policy must always allow, directly or through the caller's account)",
            req.action, req.principal
        ),
        (Some(_), None) if cross_account => format!(
            "the key is in account {key_account} and the caller in account {}: a cross-account request also needs an identity policy of account {} that allows {} on the key, and none does",
            caller.account, caller.account, req.action
        ),
        (Some(_), _) => format!(
            "the key policy allows account {} (its root), which delegates to its IAM policies, but no identity policy allows {} on the key",
            caller.account, req.action
        ),
    };
    reasons.push(Reason {
        policy: if key_ok.is_none() { "key-policy".into() } else { "identity".into() },
        statement: String::new(),
        kind: "missing",
        message: missing,
    });
    reasons.extend(near_reasons(&scan.near, req));
    Evaluation { decision: Decision::ImplicitDeny, reasons }
}
