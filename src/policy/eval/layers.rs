//! The layered decision over every policy that governs a KMS request, each action authorised
//! against its real resource: service control policies, the permissions boundary, grants, the
//! key policy and identity policies. Which layer blocks, and why, is what `diagnose` reports.
//!
//! Rules encoded (IAM user guide, "Policy evaluation logic"; KMS developer guide, "Key policies",
//! "Grants in AWS KMS", "Alias access"):
//! - an explicit Deny in any policy (SCP, boundary, identity, key policy) wins;
//! - every SCP above the account must allow the action;
//! - a permissions boundary caps what identity policies grant: where the identity policies must
//!   allow, the boundary must allow too;
//! - a grant allows its grantee its operations on the key, as an alternative to the key policy,
//!   within its encryption-context constraints;
//! - CreateAlias, UpdateAlias and DeleteAlias need permission on the alias (IAM policies) and on
//!   each affected key; actions with no resource (ListKeys, CreateKey, GenerateRandom, ...) are
//!   decided by IAM policies alone.

use super::{
    Caller, Decision, NamedPolicy, Reason, Request, evaluate_key, near_reasons, parse_caller, scan,
};
use crate::policy::actions::{ActionResource, action_resource, is_known_kms_action};
use crate::policy::document::{PolicyDocument, PolicyError};
use crate::policy::matching::Arn;
use serde::Serialize;

/// Where a request is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// The key policy.
    KeyPolicy,
    /// The caller's identity (IAM) policies.
    IdentityPolicy,
    /// The caller's permissions boundary.
    PermissionsBoundary,
    /// A grant on the key.
    Grant,
    /// A service control policy.
    Scp,
    /// The key's state (disabled, pending deletion).
    KeyState,
    /// The key's usage or spec (e.g. Encrypt with a signing key).
    KeyUsage,
    /// The key name resolves to another key, or to none, in the caller's account.
    NameResolution,
    /// The key is in another region than the one the call goes to.
    Region,
    /// The alias does not exist.
    AliasNotFound,
}

impl Layer {
    /// The name used in JSON and text, e.g. `key-policy`.
    pub fn name(self) -> &'static str {
        match self {
            Layer::KeyPolicy => "key-policy",
            Layer::IdentityPolicy => "identity-policy",
            Layer::PermissionsBoundary => "permissions-boundary",
            Layer::Grant => "grant",
            Layer::Scp => "scp",
            Layer::KeyState => "key-state",
            Layer::KeyUsage => "key-usage",
            Layer::NameResolution => "name-resolution",
            Layer::Region => "region",
            Layer::AliasNotFound => "alias-not-found",
        }
    }
}

/// What blocks a request: the layer, the document or fact, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// The layer.
    pub layer: Layer,
    /// The policy (and statement), grant or fact.
    pub source: String,
    /// Plain words.
    pub message: String,
    /// The policy that blocks, as reasons name it (empty for facts).
    #[serde(skip)]
    pub policy: String,
    /// The statement that denies (empty when nothing allows).
    #[serde(skip)]
    pub statement: String,
}

impl Blocker {
    /// A blocker that is a fact about the key or its name, not a policy.
    pub fn fact(layer: Layer, source: impl Into<String>, message: impl Into<String>) -> Blocker {
        let (source, message) = (source.into(), message.into());
        Blocker { layer, source, message, policy: String::new(), statement: String::new() }
    }
}

/// A grant on a key, as ListGrants answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Its id.
    pub id: String,
    /// Who may use it.
    pub grantee: String,
    /// The operations it allows, e.g. `Decrypt`.
    pub operations: Vec<String>,
    /// Encryption context pairs the request must include (EncryptionContextSubset).
    pub context_subset: Vec<(String, String)>,
    /// The exact encryption context the request must have (EncryptionContextEquals).
    pub context_equals: Vec<(String, String)>,
}

/// Every policy that governs a request. `key_policy: None` means it could not be read: the key
/// side is then judged by the identity policies alone and reported as unseen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layers<'a> {
    /// The key policy.
    pub key_policy: Option<&'a PolicyDocument>,
    /// The caller's identity policies.
    pub identity: &'a [NamedPolicy<'a>],
    /// The caller's permissions boundary.
    pub boundary: Option<NamedPolicy<'a>>,
    /// Service control policies above the caller's account, each of which must allow.
    pub scps: &'a [NamedPolicy<'a>],
    /// The key's grants.
    pub grants: &'a [Grant],
}

/// The decision, its reasons, and what blocks.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The outcome.
    pub decision: Decision,
    /// Why, statement by statement.
    pub reasons: Vec<Reason>,
    /// Each blocking layer.
    pub blocking: Vec<Blocker>,
    /// Layers that could not be read.
    pub unseen: Vec<Layer>,
}

impl Verdict {
    fn deny(&mut self, layer: Layer, reason: Reason) {
        self.decision = Decision::ExplicitDeny;
        self.blocking.push(blocker(layer, &reason));
        self.reasons.push(reason);
    }

    fn block(&mut self, layer: Layer, reason: Reason) {
        if self.decision == Decision::Allow {
            self.decision = Decision::ImplicitDeny;
        }
        self.blocking.push(blocker(layer, &reason));
        self.reasons.push(reason);
    }
}

fn blocker(layer: Layer, r: &Reason) -> Blocker {
    let source = if r.statement.is_empty() {
        r.policy.clone()
    } else {
        format!("{} statement {}", r.policy, r.statement)
    };
    Blocker {
        layer,
        source,
        message: r.message.clone(),
        policy: r.policy.clone(),
        statement: if r.kind == "deny" { r.statement.clone() } else { String::new() },
    }
}

fn missing(policy: &str, message: String) -> Reason {
    Reason { policy: policy.into(), statement: String::new(), kind: "missing", message }
}

/// Decides `req` over every layer. Errors are bad input, as for [`super::evaluate`].
pub fn decide(req: &Request, layers: &Layers<'_>) -> Result<Verdict, PolicyError> {
    let caller = parse_caller(&req.principal)?;
    if !req.action.contains(':') || is_known_kms_action(&req.action) == Some(false) {
        return Err(PolicyError(format!(
            "unknown action '{}' (expected a KMS action such as kms:Encrypt)",
            req.action
        )));
    }
    no_principals(layers)?;
    let mut v = Verdict {
        decision: Decision::Allow,
        reasons: Vec::new(),
        blocking: Vec::new(),
        unseen: Vec::new(),
    };
    let resource = match action_resource(&req.action) {
        ActionResource::None => {
            identity_side(&on(req, "*"), &caller, layers, &mut v)?;
            "*".to_string()
        }
        ActionResource::Alias => {
            let alias = alias_resource(req)?;
            identity_side(&on(req, &alias), &caller, layers, &mut v)?;
            key_side(req, &caller, layers, &mut v)?;
            req.key_arn.clone()
        }
        ActionResource::Key => {
            key_side(req, &caller, layers, &mut v)?;
            req.key_arn.clone()
        }
    };
    for scp in layers.scps {
        scp_side(&on(req, &resource), &caller, *scp, &mut v)?;
    }
    Ok(v)
}

/// The request against another resource (an alias ARN, or `*`), which carries no key aliases.
fn on(req: &Request, resource: &str) -> Request {
    Request { key_arn: resource.to_string(), key_aliases: Vec::new(), ..req.clone() }
}

/// The alias ARN an alias action acts on.
fn alias_resource(req: &Request) -> Result<String, PolicyError> {
    let alias = req.alias_arn.as_deref().unwrap_or_default();
    match Arn::parse(alias) {
        Some(a) if a.service == "kms" && a.resource.starts_with("alias/") => Ok(alias.into()),
        _ => Err(PolicyError(format!(
            "{} is authorised against the alias and the key: give the alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME), not '{alias}'",
            req.action
        ))),
    }
}

/// SCPs and boundaries, like identity policies, apply to whoever they are attached to.
fn no_principals(layers: &Layers<'_>) -> Result<(), PolicyError> {
    let all = layers.identity.iter().chain(layers.boundary.iter()).chain(layers.scps);
    for p in all {
        if p.document.statements().any(|s| s.principal.is_some() || s.not_principal.is_some()) {
            return Err(PolicyError(format!(
                "policy {} has a Principal; identity policies, boundaries and SCPs apply to whoever they are attached to and cannot name one",
                p.name
            )));
        }
    }
    Ok(())
}

/// One set of identity-like policies (identity policies, the boundary, one SCP) weighed on its
/// own: its denies, or else `why` when nothing in it allows. Returns whether it allows.
fn weigh(
    req: &Request,
    caller: &Caller,
    docs: &[NamedPolicy<'_>],
    layer: Layer,
    why: impl FnOnce() -> Reason,
    v: &mut Verdict,
) -> Result<bool, PolicyError> {
    let no_key_policy = PolicyDocument::new(Vec::new());
    let s = scan(req, caller, &no_key_policy, docs)?;
    if !s.denies.is_empty() {
        s.denies.into_iter().for_each(|d| v.deny(layer, d));
        return Ok(false);
    }
    match s.identity_allow {
        Some(allow) => {
            v.reasons.push(allow);
            Ok(true)
        }
        None => {
            v.block(layer, why());
            v.reasons.extend(near_reasons(&s.near, req));
            Ok(false)
        }
    }
}

/// The identity policies must allow (and the boundary with them).
fn identity_side(
    req: &Request,
    caller: &Caller,
    layers: &Layers<'_>,
    v: &mut Verdict,
) -> Result<(), PolicyError> {
    let why = || {
        let message = format!(
            "no identity policy allows {} on {} (only IAM policies decide it: no key policy speaks for it)",
            req.action, req.key_arn
        );
        missing("identity", message)
    };
    if weigh(req, caller, layers.identity, Layer::IdentityPolicy, why, v)? {
        boundary_side(req, caller, layers, v)?;
    }
    Ok(())
}

/// A permissions boundary caps what identity policies can grant.
fn boundary_side(
    req: &Request,
    caller: &Caller,
    layers: &Layers<'_>,
    v: &mut Verdict,
) -> Result<(), PolicyError> {
    let Some(boundary) = layers.boundary else { return Ok(()) };
    let why = || {
        let message = format!(
            "the permissions boundary {} does not allow {} on {}: it caps what identity policies can grant",
            boundary.name, req.action, req.key_arn
        );
        missing(boundary.name, message)
    };
    weigh(req, caller, &[boundary], Layer::PermissionsBoundary, why, v).map(drop)
}

/// The key policy (or a grant) and, where needed, the identity policies and boundary.
fn key_side(
    req: &Request,
    caller: &Caller,
    layers: &Layers<'_>,
    v: &mut Verdict,
) -> Result<(), PolicyError> {
    let Some(key_policy) = layers.key_policy else {
        v.unseen.extend([Layer::KeyPolicy, Layer::Grant]);
        return identity_side(req, caller, layers, v);
    };
    let (e, needs_identity) = evaluate_key(req, caller, key_policy, layers.identity)?;
    match e.decision {
        Decision::ExplicitDeny => {
            e.reasons.into_iter().for_each(|r| v.deny(layer_of(&r), r));
        }
        Decision::ImplicitDeny => match grant_allowing(req, caller, layers.grants) {
            Some(g) => v.reasons.push(Reason {
                policy: "grant".into(),
                statement: g.id.clone(),
                kind: "allow",
                message: format!("grant {} gives {} {}", g.id, g.grantee, req.action),
            }),
            None => {
                for r in e.reasons {
                    match r.kind {
                        "missing" | "rule" => v.block(layer_of(&r), r),
                        _ => v.reasons.push(r),
                    }
                }
            }
        },
        Decision::Allow => {
            v.reasons.extend(e.reasons);
            if needs_identity {
                boundary_side(req, caller, layers, v)?;
            }
        }
    }
    Ok(())
}

/// The layer a reason of the key side speaks for.
fn layer_of(r: &Reason) -> Layer {
    match r.policy.as_str() {
        "key-policy" | "kms" => Layer::KeyPolicy,
        _ => Layer::IdentityPolicy,
    }
}

/// A grant whose grantee is the caller (its role or session, or its account) and whose
/// operations and encryption-context constraints cover the request.
fn grant_allowing<'a>(req: &Request, caller: &Caller, grants: &'a [Grant]) -> Option<&'a Grant> {
    let operation = req.action.split_once(':').map(|(_, n)| n).unwrap_or(&req.action);
    let context: Vec<(String, String)> = req
        .extra
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("kms:EncryptionContext:")?;
            Some((key.to_string(), v.clone()))
        })
        .collect();
    grants.iter().find(|g| {
        let grantee = g.grantee == caller.principal_arn
            || caller.session_arn == Some(g.grantee.as_str())
            || g.grantee == caller.root
            || g.grantee == caller.account;
        let operations = g.operations.iter().any(|o| o.eq_ignore_ascii_case(operation));
        let subset = g.context_subset.iter().all(|pair| context.contains(pair));
        let equals = g.context_equals.is_empty()
            || (g.context_equals.len() == context.len()
                && g.context_equals.iter().all(|pair| context.contains(pair)));
        grantee && operations && subset && equals
    })
}

/// Every SCP above the caller's account must allow, and none may deny.
fn scp_side(
    req: &Request,
    caller: &Caller,
    scp: NamedPolicy<'_>,
    v: &mut Verdict,
) -> Result<(), PolicyError> {
    let why = || {
        let message = format!(
            "the service control policy {} allows no {}: every SCP above the account must allow it",
            scp.name, req.action
        );
        missing(scp.name, message)
    };
    weigh(req, caller, &[scp], Layer::Scp, why, v).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyDocument;
    use serde_json::{Value, json};

    const OWNER: &str = "111111111111";
    const KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/k1";
    const ALIAS_ARN: &str = "arn:aws:kms:us-east-1:111111111111:alias/data";
    const ROLE: &str = "arn:aws:iam::222222222222:role/app";

    fn doc(v: Value) -> PolicyDocument {
        PolicyDocument::parse(&v.to_string()).unwrap()
    }

    fn allow(action: &str, resource: &str) -> PolicyDocument {
        doc(json!({"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]}))
    }

    fn key_policy_for(principal: &str, action: &str) -> PolicyDocument {
        doc(json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OWNER}:root")}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": action, "Resource": "*"}]}))
    }

    fn req(principal: &str, action: &str) -> Request {
        Request {
            principal: principal.into(),
            action: action.into(),
            key_arn: KEY.into(),
            ..Request::default()
        }
    }

    fn layers<'a>(kp: Option<&'a PolicyDocument>, id: &'a [NamedPolicy<'a>]) -> Layers<'a> {
        Layers { key_policy: kp, identity: id, ..Layers::default() }
    }

    fn layer(v: &Verdict) -> Vec<Layer> {
        v.blocking.iter().map(|b| b.layer).collect()
    }

    // SAR for KMS: ListKeys, CreateKey, GenerateRandom have no resource type; IAM alone decides.
    #[test]
    fn actions_with_no_resource_are_decided_by_identity_policies_alone() {
        let star = allow("kms:ListKeys", "*");
        let id = [NamedPolicy { name: "p", document: &star }];
        let empty = PolicyDocument::new(vec![]);
        let v = decide(&req(ROLE, "kms:ListKeys"), &layers(Some(&empty), &id)).unwrap();
        assert_eq!(v.decision, Decision::Allow, "{v:?}");
        let keys = allow("kms:ListKeys", "arn:aws:kms:us-east-1:222222222222:key/*");
        let id = [NamedPolicy { name: "p", document: &keys }];
        let v = decide(&req(ROLE, "kms:ListKeys"), &layers(Some(&empty), &id)).unwrap();
        assert_eq!((v.decision, layer(&v)), (Decision::ImplicitDeny, vec![Layer::IdentityPolicy]));
    }

    // KMS "Controlling access to aliases": CreateAlias needs kms:CreateAlias on the alias (IAM
    // policy) and on the key (key policy, or IAM policy where the key policy delegates).
    #[test]
    fn alias_actions_need_the_alias_and_the_key() {
        let kp = key_policy_for(&format!("arn:aws:iam::{OWNER}:root"), "kms:*");
        let me = format!("arn:aws:iam::{OWNER}:role/admin");
        let both = doc(
            json!({"Statement": [{"Effect": "Allow", "Action": "kms:CreateAlias", "Resource": [ALIAS_ARN, KEY]}]}),
        );
        let alias_only = allow("kms:CreateAlias", ALIAS_ARN);
        let r = Request { alias_arn: Some(ALIAS_ARN.into()), ..req(&me, "kms:CreateAlias") };
        let id = [NamedPolicy { name: "p", document: &both }];
        assert_eq!(decide(&r, &layers(Some(&kp), &id)).unwrap().decision, Decision::Allow);
        let id = [NamedPolicy { name: "p", document: &alias_only }];
        let v = decide(&r, &layers(Some(&kp), &id)).unwrap();
        assert_eq!((v.decision, layer(&v)), (Decision::ImplicitDeny, vec![Layer::IdentityPolicy]));
        let no_alias = req(&me, "kms:CreateAlias");
        assert!(decide(&no_alias, &layers(Some(&kp), &id)).is_err());
    }

    // IAM "Permissions boundaries": the effective permissions are the intersection of identity
    // policies and the boundary; an explicit deny in the boundary wins.
    #[test]
    fn a_permissions_boundary_caps_identity_policies() {
        let kp = key_policy_for("arn:aws:iam::222222222222:root", "kms:Decrypt");
        let role = allow("kms:Decrypt", KEY);
        let id = [NamedPolicy { name: "role", document: &role }];
        let narrow = allow("kms:Encrypt", "*");
        let mut l = layers(Some(&kp), &id);
        l.boundary = Some(NamedPolicy { name: "boundary", document: &narrow });
        let v = decide(&req(ROLE, "kms:Decrypt"), &l).unwrap();
        assert_eq!(
            (v.decision, layer(&v)),
            (Decision::ImplicitDeny, vec![Layer::PermissionsBoundary])
        );
        let wide = allow("kms:*", "*");
        l.boundary = Some(NamedPolicy { name: "boundary", document: &wide });
        assert_eq!(decide(&req(ROLE, "kms:Decrypt"), &l).unwrap().decision, Decision::Allow);
        let deny =
            doc(json!({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]}));
        l.boundary = Some(NamedPolicy { name: "boundary", document: &deny });
        let v = decide(&req(ROLE, "kms:Decrypt"), &l).unwrap();
        assert_eq!(
            (v.decision, layer(&v)),
            (Decision::ExplicitDeny, vec![Layer::PermissionsBoundary])
        );
    }

    // IAM: a resource-based policy naming the role itself in the same account grants on its own;
    // the boundary limits only what identity policies grant.
    #[test]
    fn a_direct_key_policy_grant_in_the_same_account_is_not_capped_by_the_boundary() {
        let me = format!("arn:aws:iam::{OWNER}:role/app");
        let kp = key_policy_for(&me, "kms:Decrypt");
        let narrow = allow("kms:Encrypt", "*");
        let l = Layers {
            key_policy: Some(&kp),
            boundary: Some(NamedPolicy { name: "b", document: &narrow }),
            ..Layers::default()
        };
        assert_eq!(decide(&req(&me, "kms:Decrypt"), &l).unwrap().decision, Decision::Allow);
    }

    // Organizations "SCP evaluation": every SCP from the root to the account must allow; an
    // explicit deny in any SCP wins.
    #[test]
    fn every_scp_must_allow_and_none_may_deny() {
        let kp = key_policy_for("arn:aws:iam::222222222222:root", "kms:Decrypt");
        let role = allow("kms:Decrypt", KEY);
        let id = [NamedPolicy { name: "role", document: &role }];
        let full = allow("*", "*");
        let other = allow("s3:*", "*");
        let deny = doc(json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]}));
        let check = |scps: &[NamedPolicy<'_>]| {
            let l = Layers { scps, ..layers(Some(&kp), &id) };
            let v = decide(&req(ROLE, "kms:Decrypt"), &l).unwrap();
            (v.decision, layer(&v))
        };
        assert_eq!(check(&[NamedPolicy { name: "root", document: &full }]).0, Decision::Allow);
        assert_eq!(
            check(&[
                NamedPolicy { name: "root", document: &full },
                NamedPolicy { name: "ou", document: &other }
            ]),
            (Decision::ImplicitDeny, vec![Layer::Scp])
        );
        assert_eq!(
            check(&[NamedPolicy { name: "ou", document: &deny }]),
            (Decision::ExplicitDeny, vec![Layer::Scp])
        );
    }

    // KMS "Grants in AWS KMS": a grant allows its grantee its operations, as an alternative to
    // the key policy, within its encryption-context constraints.
    #[test]
    fn a_grant_allows_its_operations_within_its_constraints() {
        let kp = key_policy_for(&format!("arn:aws:iam::{OWNER}:root"), "kms:*");
        let role = allow("kms:Decrypt", KEY);
        let id = [NamedPolicy { name: "role", document: &role }];
        let grant = Grant {
            id: "g1".into(),
            grantee: ROLE.into(),
            operations: vec!["Decrypt".into()],
            context_subset: vec![("app".into(), "billing".into())],
            ..Grant::default()
        };
        let grants = [grant];
        let l = Layers { grants: &grants, ..layers(Some(&kp), &id) };
        let with_context = Request {
            extra: vec![("kms:EncryptionContext:app".into(), "billing".into())],
            ..req(ROLE, "kms:Decrypt")
        };
        let v = decide(&with_context, &l).unwrap();
        assert_eq!(v.decision, Decision::Allow, "{v:?}");
        assert!(v.reasons.iter().any(|r| r.policy == "grant"));
        let v = decide(&req(ROLE, "kms:Decrypt"), &l).unwrap();
        assert_eq!((v.decision, layer(&v)), (Decision::ImplicitDeny, vec![Layer::KeyPolicy]));
        let encrypt = Request { action: "kms:Encrypt".into(), ..with_context };
        assert_eq!(decide(&encrypt, &l).unwrap().decision, Decision::ImplicitDeny);
    }

    // KMS "kms:RequestAlias": only cryptographic operations, DescribeKey and GetPublicKey take an
    // alias in KeyId; other requests never carry the key.
    #[test]
    fn request_alias_is_absent_for_operations_that_cannot_name_an_alias() {
        let me = format!("arn:aws:iam::{OWNER}:role/admin");
        let kp = doc(json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": me.clone()},
            "Action": "kms:*", "Resource": "*", "Condition": {"Null": {"kms:RequestAlias": "true"}}}]}));
        let named =
            |action: &str| Request { request_alias: Some("alias/data".into()), ..req(&me, action) };
        let l = layers(Some(&kp), &[]);
        assert_eq!(decide(&named("kms:PutKeyPolicy"), &l).unwrap().decision, Decision::Allow);
        assert_eq!(decide(&named("kms:Decrypt"), &l).unwrap().decision, Decision::ImplicitDeny);
    }

    // IAM "Permissions boundaries": in the key's own account too, a key policy that delegates to
    // the account leaves the decision to identity policies, which the boundary caps.
    #[test]
    fn a_delegating_key_policy_in_the_same_account_is_capped_by_the_boundary() {
        let me = format!("arn:aws:iam::{OWNER}:role/app");
        let kp = key_policy_for(&format!("arn:aws:iam::{OWNER}:root"), "kms:Decrypt");
        let role = allow("kms:Decrypt", KEY);
        let id = [NamedPolicy { name: "role", document: &role }];
        let narrow = allow("kms:Encrypt", "*");
        let l = Layers {
            boundary: Some(NamedPolicy { name: "b", document: &narrow }),
            ..layers(Some(&kp), &id)
        };
        let v = decide(&req(&me, "kms:Decrypt"), &l).unwrap();
        assert_eq!(
            (v.decision, layer(&v)),
            (Decision::ImplicitDeny, vec![Layer::PermissionsBoundary])
        );
    }

    // KMS "Key policies": a statement naming the principal itself grants directly, whatever other
    // statement also delegates to its account.
    #[test]
    fn a_direct_grant_wins_over_a_delegation_whatever_the_order() {
        let me = format!("arn:aws:iam::{OWNER}:role/app");
        let kp = doc(json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": me.clone()}, "Action": "kms:Decrypt", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OWNER}:root")}, "Action": "kms:*", "Resource": "*"}]}));
        let v = decide(&req(&me, "kms:Decrypt"), &layers(Some(&kp), &[])).unwrap();
        assert_eq!(v.decision, Decision::Allow, "{v:?}");
        assert!(v.reasons.iter().all(|r| r.kind == "allow"));
    }

    // IAM "NotPrincipal": the statement applies to everyone but the principals it names.
    #[test]
    fn not_principal_excludes_whom_it_names() {
        let me = format!("arn:aws:iam::{OWNER}:role/app");
        let except = |who: &str| {
            doc(
                json!({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": who}, "Action": "kms:Decrypt", "Resource": "*"}]}),
            )
        };
        let kp = except(&me);
        assert_eq!(
            decide(&req(&me, "kms:Decrypt"), &layers(Some(&kp), &[])).unwrap().decision,
            Decision::ImplicitDeny
        );
        let kp = except(&format!("arn:aws:iam::{OWNER}:role/other"));
        assert_eq!(
            decide(&req(&me, "kms:Decrypt"), &layers(Some(&kp), &[])).unwrap().decision,
            Decision::Allow
        );
        let deny = doc(
            json!({"Statement": [{"Sid": "D", "Effect": "Deny", "Principal": {"AWS": me.clone()}, "Action": "kms:Decrypt", "Resource": "*"}]}),
        );
        let v = decide(&req(&me, "kms:Decrypt"), &layers(Some(&deny), &[])).unwrap();
        assert_eq!(v.reasons[0].kind, "deny");
    }

    // An alias ARN in Resource is only a mistake for key operations: for alias actions it is the
    // resource, and a different alias simply does not match.
    #[test]
    fn an_alias_arn_is_named_a_mistake_only_for_key_operations() {
        let me = format!("arn:aws:iam::{OWNER}:role/admin");
        let kp = key_policy_for(&format!("arn:aws:iam::{OWNER}:root"), "kms:*");
        let other = allow("kms:*", "arn:aws:kms:us-east-1:111111111111:alias/other");
        let id = [NamedPolicy { name: "p", document: &other }];
        let r = Request { alias_arn: Some(ALIAS_ARN.into()), ..req(&me, "kms:CreateAlias") };
        let v = decide(&r, &layers(Some(&kp), &id)).unwrap();
        let text = serde_json::to_string(&v.reasons).unwrap();
        assert!(text.contains("does not match") && !text.contains("is an alias ARN"), "{text}");
        let v = decide(&req(&me, "kms:Decrypt"), &layers(Some(&kp), &id)).unwrap();
        assert!(serde_json::to_string(&v.reasons).unwrap().contains("is an alias ARN"));
    }

    #[test]
    fn an_unread_key_policy_is_reported_unseen_and_the_identity_side_still_decides() {
        let role = allow("kms:Decrypt", KEY);
        let id = [NamedPolicy { name: "role", document: &role }];
        let v = decide(&req(ROLE, "kms:Decrypt"), &layers(None, &id)).unwrap();
        assert_eq!(v.decision, Decision::Allow);
        assert_eq!(v.unseen, vec![Layer::KeyPolicy, Layer::Grant]);
    }
}
