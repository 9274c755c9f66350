//! User-side operations: the role, its trust policy and its inline policy in the account that uses
//! the key, and acting as that role. Reads are here; every write goes through [`crate::writes`].

use crate::aws::Session;
use crate::error::{Error, Result};
use crate::output::{Change, Resource};
use crate::plan::{RoleState, UserPlan, UserTeardown};
use crate::policy::PolicyDocument;
use crate::policy::build::ROLE_POLICY_NAME;
use crate::writes::{self, Output, Write, apply_to};
use futures_util::future::try_join_all;

/// Reads the role with its trust policy, tags and kmsxacct's inline policy; with `all_policies`
/// the names of every inline and attached policy instead of that policy's text (teardown needs
/// the names). `None`: no role.
/// With `all_policies` every read starts at once (the role is expected to exist); without, the
/// policy is read only once GetRole has found the role, so a fresh setup makes one call less.
pub async fn read_role(
    s: &Session,
    role_name: &str,
    all_policies: bool,
) -> Result<Option<RoleState>> {
    let get_role = get_role(s, role_name);
    let (role, access_policy, inline, attached) = if all_policies {
        // Teardown: the names say whether kmsxacct's policy is there; its text is not needed.
        let (role, inline, attached) = tokio::join!(
            get_role,
            inline_policy_names(s, role_name),
            attached_policy_arns(s, role_name)
        );
        (role, Ok(None), inline, attached)
    } else {
        match get_role.await? {
            None => return Ok(None),
            Some(role) => (
                Ok(Some(role)),
                inline_policy(s, role_name, ROLE_POLICY_NAME).await,
                Ok(Vec::new()),
                Ok(Vec::new()),
            ),
        }
    };
    let Some(role) = role? else { return Ok(None) };
    let trust = parse_iam_document(
        role.assume_role_policy_document().unwrap_or_default(),
        &format!("trust policy of role {role_name}"),
    )?;
    Ok(Some(RoleState {
        tags: role.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
        arn: role.arn,
        trust,
        access_policy: access_policy?,
        inline_policy_names: inline?,
        attached_policy_arns: attached?,
    }))
}

/// The role, or None when there is no such role.
async fn get_role(s: &Session, role_name: &str) -> Result<Option<aws_sdk_iam::types::Role>> {
    match s.iam.get_role().role_name(role_name).send().await {
        Ok(out) => Ok(out.role),
        Err(e) => s.iam_error("iam:GetRole", e).none_if_not_found(),
    }
}

/// After CreateRole answered "already exists": the role is accepted only when it carries every
/// one of `tags` and exactly `trust` (the role a lost answer made), else it is a conflict.
pub async fn confirm_role(
    s: &Session,
    name: &str,
    trust: &PolicyDocument,
    tags: &[(String, String)],
) -> Result<Output> {
    let Some(role) = get_role(s, name).await? else {
        return Err(Error::Conflict(format!(
            "iam:CreateRole answered that role {name} exists in account {}, but it cannot be read",
            s.account()
        )));
    };
    let has_tags =
        tags.iter().all(|(k, v)| role.tags().iter().any(|t| t.key() == k && t.value() == v));
    let live_trust = parse_iam_document(
        role.assume_role_policy_document().unwrap_or_default(),
        &format!("trust policy of role {name}"),
    )?;
    if has_tags && live_trust.same_as(trust) {
        Ok(Output::Role(role.arn))
    } else {
        Err(Error::Conflict(format!(
            "role {name} already exists in account {} but is not the one kmsxacct asked for (other tags or trust policy); nothing more was changed",
            s.account()
        )))
    }
}

/// IAM returns policy documents URL-encoded.
pub(crate) fn parse_iam_document(encoded: &str, what: &str) -> Result<PolicyDocument> {
    let text = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    PolicyDocument::parse(&text).map_err(|e| Error::Failed(format!("{what}: {}", e.0)))
}

/// The role's inline policy `name`, or None when it has none of that name.
async fn inline_policy(s: &Session, role: &str, name: &str) -> Result<Option<PolicyDocument>> {
    match s.iam.get_role_policy().role_name(role).policy_name(name).send().await {
        Ok(out) => {
            let what = format!("inline policy {name} of role {role}");
            parse_iam_document(out.policy_document(), &what).map(Some)
        }
        Err(e) => s.iam_error("iam:GetRolePolicy", e).none_if_not_found(),
    }
}

/// The default version of the managed policy at `arn`.
pub(crate) async fn managed_policy(s: &Session, arn: &str) -> Result<PolicyDocument> {
    let policy = s.iam.get_policy().policy_arn(arn).send().await;
    let policy = policy.map_err(|e| s.iam_error("iam:GetPolicy", e))?;
    let version = policy.policy().and_then(|p| p.default_version_id()).unwrap_or("v1");
    let doc = s.iam.get_policy_version().policy_arn(arn).version_id(version).send().await;
    let doc = doc.map_err(|e| s.iam_error("iam:GetPolicyVersion", e))?;
    let text = doc.policy_version().and_then(|v| v.document()).unwrap_or_default();
    parse_iam_document(text, &format!("managed policy {arn}"))
}

async fn inline_policy_names(s: &Session, role_name: &str) -> Result<Vec<String>> {
    let items = s.iam.list_role_policies().role_name(role_name).into_paginator().items().send();
    s.iam_all("iam:ListRolePolicies", items).await
}

async fn attached_policy_arns(s: &Session, role_name: &str) -> Result<Vec<String>> {
    let listing = s.iam.list_attached_role_policies().role_name(role_name).into_paginator();
    let attached = s.iam_all("iam:ListAttachedRolePolicies", listing.items().send()).await?;
    Ok(attached.into_iter().filter_map(|p| p.policy_arn).collect())
}

/// Carries out the user side of setup; returns the role ARN. `role_created` is told the new
/// role's ARN as soon as it exists.
pub async fn apply_setup(
    s: &Session,
    role_name: &str,
    plan: &UserPlan,
    tags: &[(String, String)],
    role_created: impl Fn(&str) -> Result<()>,
    changes: &mut Vec<Change>,
) -> Result<String> {
    let arn = if let Some(trust) = &plan.create_role {
        let write = Write::CreateRole { name: role_name, trust, tags };
        let done = writes::apply(s, &write, None).await?;
        let arn = done.role_arn().unwrap_or_default().to_string();
        role_created(&arn)?;
        changes.push(done.change);
        arn
    } else {
        let arn = plan.existing_arn.clone().unwrap_or_default();
        changes.push(Change::unchanged(s, Resource::Role, &arn));
        arn
    };
    if let Some(trust) = &plan.update_trust {
        let write = Write::UpdateTrust { name: role_name, role_arn: &arn, trust };
        apply_to(changes, s, write).await?;
    }
    if let Some(policy) = &plan.put_policy {
        let write = Write::PutRolePolicy {
            role: role_name,
            role_arn: &arn,
            name: ROLE_POLICY_NAME,
            policy,
            new_role: plan.create_role.is_some(),
        };
        apply_to(changes, s, write).await?;
    } else {
        let id = format!("{arn}/{ROLE_POLICY_NAME}");
        changes.push(Change::unchanged(s, Resource::RolePolicy, &id));
    }
    Ok(arn)
}

/// Carries out a user account's teardown plan: kmsxacct's inline policy (when present), then
/// the role. Returns its outcome and what it changed.
pub async fn apply_teardown(
    s: &Session,
    role_name: &str,
    plan: &UserTeardown,
) -> (Result<()>, Vec<Change>) {
    let mut changes = Vec::new();
    let Some(role_arn) = &plan.delete_role else {
        return (Ok(()), changes);
    };
    let mut result = Ok(());
    if plan.delete_role_policy {
        let write = Write::DeleteRolePolicy { role: role_name, role_arn, name: ROLE_POLICY_NAME };
        result = apply_to(&mut changes, s, write).await.map(drop);
    }
    if result.is_ok() {
        let write = Write::DeleteRole { name: role_name, role_arn };
        result = apply_to(&mut changes, s, write).await.map(drop);
    }
    (result, changes)
}

/// Assumes the role with the session's own credentials; returns the role's temporary credentials.
pub async fn assume_role(s: &Session, role_arn: &str) -> Result<aws_credential_types::Credentials> {
    assume_role_session(s, role_arn).await.map(|(c, _)| c)
}

/// Assumes the role; returns its temporary credentials and the session's ARN
/// (`arn:...:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
pub async fn assume_role_session(
    s: &Session,
    role_arn: &str,
) -> Result<(aws_credential_types::Credentials, String)> {
    assume_with(s, &s.sts, role_arn).await
}

/// Assumes the role through `sts` (a client with other credentials, for role chaining); errors
/// are classified as `s`'s. Returns the credentials and the session's ARN.
pub async fn assume_with(
    s: &Session,
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
) -> Result<(aws_credential_types::Credentials, String)> {
    let out = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("kmsxacct-verify")
        .duration_seconds(900)
        .send()
        .await
        .map_err(|e| s.sts_error("sts:AssumeRole", e))?;
    let c = out
        .credentials()
        .ok_or_else(|| Error::Failed("sts:AssumeRole: the answer holds no credentials".into()))?;
    let session = out.assumed_role_user().map(|u| u.arn().to_string()).unwrap_or_default();
    let credentials = aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        std::time::SystemTime::try_from(*c.expiration()).ok(),
        "kmsxacct-assumed-role",
    );
    Ok((credentials, session))
}

/// The role's documents as they are: its trust policy, and every identity policy (inline ones
/// and the default version of each attached managed policy, named `inline:NAME` and
/// `attached:ARN`). `trust` is None when the role does not exist.
#[derive(Debug, Clone, Default)]
pub struct RoleDocuments {
    /// The role's ARN.
    pub arn: Option<String>,
    /// The trust policy.
    pub trust: Option<PolicyDocument>,
    /// Every identity policy.
    pub policies: Vec<(String, PolicyDocument)>,
    /// The permissions boundary (`boundary:ARN`) and its document, if the role has one.
    pub boundary: Option<(String, PolicyDocument)>,
}

impl RoleDocuments {
    /// kmsxacct's own inline policy, if present.
    pub fn access_policy(&self) -> Option<&PolicyDocument> {
        let name = format!("inline:{ROLE_POLICY_NAME}");
        self.policies.iter().find(|(n, _)| *n == name).map(|(_, d)| d)
    }
}

/// Reads the role's [`RoleDocuments`].
pub async fn role_documents(s: &Session, role_name: &str) -> Result<RoleDocuments> {
    // Each policy is read as soon as its listing names it, all of them at once.
    let inline = async {
        let names = inline_policy_names(s, role_name).await?;
        let docs = try_join_all(names.into_iter().map(|name| async move {
            let doc = inline_policy(s, role_name, &name).await?;
            Ok::<_, Error>(doc.map(|d| (format!("inline:{name}"), d)))
        }));
        Ok::<_, Error>(docs.await?.into_iter().flatten().collect::<Vec<_>>())
    };
    let attached = async {
        let arns = attached_policy_arns(s, role_name).await?;
        try_join_all(arns.into_iter().map(|arn| async move {
            Ok::<_, Error>((format!("attached:{arn}"), managed_policy(s, &arn).await?))
        }))
        .await
    };
    let (role, inline, attached) = tokio::join!(get_role(s, role_name), inline, attached);
    // A missing role makes the listings fail too; it is not an error here.
    let Some(role) = role? else {
        return Ok(RoleDocuments::default());
    };
    let trust = parse_iam_document(
        role.assume_role_policy_document().unwrap_or_default(),
        &format!("trust policy of role {role_name}"),
    )?;
    let mut policies = inline?;
    policies.extend(attached?);
    let boundary = match role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()) {
        Some(arn) => Some((format!("boundary:{arn}"), managed_policy(s, arn).await?)),
        None => None,
    };
    Ok(RoleDocuments { arn: Some(role.arn), trust: Some(trust), policies, boundary })
}
