//! User-side operations: the role, its trust policy and its inline policy in the account that uses
//! the key, and acting as that role.

use crate::aws::Session;
use crate::error::{Error, Result};
use crate::output::Change;
use crate::plan::{RoleState, UserPlan, UserTeardown};
use crate::policy::PolicyDocument;
use crate::policy::build::ROLE_POLICY_NAME;
use aws_sdk_iam::types::Tag;

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
                role_policy(s, role_name).await,
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
        tags: role
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
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
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_no_such_entity_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(s.error("iam:GetRole", e)),
    }
}

/// IAM returns policy documents URL-encoded.
fn parse_iam_document(encoded: &str, what: &str) -> Result<PolicyDocument> {
    let text = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    PolicyDocument::parse(&text).map_err(|e| Error::Aws {
        what: what.to_string(),
        detail: e.0,
    })
}

async fn role_policy(s: &Session, role_name: &str) -> Result<Option<PolicyDocument>> {
    match s
        .iam
        .get_role_policy()
        .role_name(role_name)
        .policy_name(ROLE_POLICY_NAME)
        .send()
        .await
    {
        Ok(out) => parse_iam_document(
            out.policy_document(),
            &format!("inline policy {ROLE_POLICY_NAME} of role {role_name}"),
        )
        .map(Some),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_no_such_entity_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(s.error("iam:GetRolePolicy", e)),
    }
}

async fn inline_policy_names(s: &Session, role_name: &str) -> Result<Vec<String>> {
    s.iam
        .list_role_policies()
        .role_name(role_name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| s.error("iam:ListRolePolicies", e))
}

async fn attached_policy_arns(s: &Session, role_name: &str) -> Result<Vec<String>> {
    let attached = s
        .iam
        .list_attached_role_policies()
        .role_name(role_name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| s.error("iam:ListAttachedRolePolicies", e))?;
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
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Aws {
                what: "iam:CreateRole".into(),
                detail: e.to_string(),
            })?;
        let out = s
            .iam
            .create_role()
            .role_name(role_name)
            .assume_role_policy_document(trust.render())
            .description("kmsxacct: uses a KMS key of another account through its alias")
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| s.error("iam:CreateRole", e))?;
        let arn = out.role().map(|r| r.arn().to_string()).unwrap_or_default();
        tracing::info!(arn = %arn, account = %s.account(), "created role");
        role_created(&arn)?;
        changes.push(Change::new(s, "created", "role", &arn));
        arn
    } else {
        let arn = plan.existing_arn.clone().unwrap_or_default();
        changes.push(Change::new(s, "unchanged", "role", &arn));
        arn
    };
    if let Some(trust) = &plan.update_trust {
        s.iam
            .update_assume_role_policy()
            .role_name(role_name)
            .policy_document(trust.render())
            .send()
            .await
            .map_err(|e| s.error("iam:UpdateAssumeRolePolicy", e))?;
        tracing::info!(arn = %arn, account = %s.account(), "updated trust policy");
        changes.push(Change::new(s, "updated", "trust-policy", &arn));
    }
    let policy_id = format!("{arn}/{ROLE_POLICY_NAME}");
    if let Some(policy) = &plan.put_policy {
        s.iam
            .put_role_policy()
            .role_name(role_name)
            .policy_name(ROLE_POLICY_NAME)
            .policy_document(policy.render())
            .send()
            .await
            .map_err(|e| s.error("iam:PutRolePolicy", e))?;
        tracing::info!(arn = %arn, policy = ROLE_POLICY_NAME, account = %s.account(), "put role policy");
        let action = if plan.create_role.is_some() {
            "created"
        } else {
            "updated"
        };
        changes.push(Change::new(s, action, "role-policy", &policy_id));
    } else {
        changes.push(Change::new(s, "unchanged", "role-policy", &policy_id));
    }
    Ok(arn)
}

/// Deletes kmsxacct's inline policy (when present) and then the role. Gone already counts as done.
pub async fn delete_role(
    s: &Session,
    role_name: &str,
    role_arn: &str,
    with_policy: bool,
    changes: &mut Vec<Change>,
) -> Result<()> {
    if with_policy {
        match s
            .iam
            .delete_role_policy()
            .role_name(role_name)
            .policy_name(ROLE_POLICY_NAME)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(arn = role_arn, policy = ROLE_POLICY_NAME, account = %s.account(), "deleted role policy");
                changes.push(Change::new(
                    s,
                    "deleted",
                    "role-policy",
                    &format!("{role_arn}/{ROLE_POLICY_NAME}"),
                ));
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) => {}
            Err(e) => return Err(s.error("iam:DeleteRolePolicy", e)),
        }
    }
    match s.iam.delete_role().role_name(role_name).send().await {
        Ok(_) => {
            tracing::info!(arn = role_arn, account = %s.account(), "deleted role");
            changes.push(Change::new(s, "deleted", "role", role_arn));
            Ok(())
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_no_such_entity_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(s.error("iam:DeleteRole", e)),
    }
}

/// Carries out a user account's teardown plan; returns its outcome and what it changed.
pub async fn apply_teardown(
    s: &Session,
    role_name: &str,
    plan: &UserTeardown,
) -> (Result<()>, Vec<Change>) {
    let mut changes = Vec::new();
    let result = match &plan.delete_role {
        Some(arn) => delete_role(s, role_name, arn, plan.delete_role_policy, &mut changes).await,
        None => Ok(()),
    };
    (result, changes)
}

/// Assumes the role with the session's own credentials; returns the role's temporary credentials.
pub async fn assume_role(s: &Session, role_arn: &str) -> Result<aws_credential_types::Credentials> {
    let out = s
        .sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("kmsxacct-verify")
        .duration_seconds(900)
        .send()
        .await
        .map_err(|e| s.error("sts:AssumeRole", e))?;
    let c = out.credentials().ok_or_else(|| Error::Aws {
        what: "sts:AssumeRole".into(),
        detail: "the answer holds no credentials".into(),
    })?;
    Ok(aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        std::time::SystemTime::try_from(*c.expiration()).ok(),
        "kmsxacct-assumed-role",
    ))
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
}

impl RoleDocuments {
    /// kmsxacct's own inline policy, if present.
    pub fn access_policy(&self) -> Option<&PolicyDocument> {
        let name = format!("inline:{ROLE_POLICY_NAME}");
        self.policies
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d)
    }
}

/// Reads the role's [`RoleDocuments`].
pub async fn role_documents(s: &Session, role_name: &str) -> Result<RoleDocuments> {
    // Each policy is read as soon as its listing names it, all of them at once.
    let inline = async {
        let names = inline_policy_names(s, role_name).await?;
        futures_util::future::try_join_all(names.into_iter().map(|name| async move {
            let doc = s
                .iam
                .get_role_policy()
                .role_name(role_name)
                .policy_name(&name)
                .send()
                .await
                .map_err(|e| s.error("iam:GetRolePolicy", e))?;
            let what = format!("inline policy {name} of role {role_name}");
            Ok::<_, Error>((
                format!("inline:{name}"),
                parse_iam_document(doc.policy_document(), &what)?,
            ))
        }))
        .await
    };
    let attached = async {
        let arns = attached_policy_arns(s, role_name).await?;
        futures_util::future::try_join_all(arns.into_iter().map(|arn| async move {
            let policy = s
                .iam
                .get_policy()
                .policy_arn(&arn)
                .send()
                .await
                .map_err(|e| s.error("iam:GetPolicy", e))?;
            let version = policy
                .policy()
                .and_then(|p| p.default_version_id())
                .unwrap_or("v1")
                .to_string();
            let doc = s
                .iam
                .get_policy_version()
                .policy_arn(&arn)
                .version_id(&version)
                .send()
                .await
                .map_err(|e| s.error("iam:GetPolicyVersion", e))?;
            let text = doc
                .policy_version()
                .and_then(|v| v.document())
                .unwrap_or_default();
            Ok::<_, Error>((
                format!("attached:{arn}"),
                parse_iam_document(text, &format!("managed policy {arn}"))?,
            ))
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
    Ok(RoleDocuments {
        arn: Some(role.arn),
        trust: Some(trust),
        policies,
    })
}
