//! The caller's side of a request someone else set up (`diagnose`): who calls, and every
//! identity policy that applies to it — a role's, or an IAM user's and its groups' — with its
//! permissions boundary.

use crate::aws::Session;
use crate::error::{Error, Result};
use crate::names::AccountId;
use crate::policy::PolicyDocument;
use crate::policy::matching::Arn;
use crate::user::{self, managed_policy, parse_iam_document};
use futures_util::future::try_join_all;

/// Who makes the call, and what applies to it.
#[derive(Debug, Clone)]
pub struct CallerView {
    /// The principal as AWS sees the request: a role session, an IAM user, or an account root.
    pub principal: String,
    /// Its account.
    pub account: AccountId,
    /// Every identity policy that applies (inline, attached, and a user's groups'), named.
    pub policies: Vec<(String, PolicyDocument)>,
    /// The permissions boundary, if any.
    pub boundary: Option<(String, PolicyDocument)>,
    /// Whether its identity policies could be read (a role of another account cannot be).
    pub policies_seen: bool,
    /// The role session's credentials, when the caller assumed a role.
    pub credentials: Option<aws_credential_types::Credentials>,
}

/// Reads the caller: the profile's identity, or the role it assumes first (`as_role`).
pub async fn read(s: &Session, as_role: Option<&str>) -> Result<CallerView> {
    if let Some(role_arn) = as_role {
        let (credentials, session) = user::assume_role_session(s, role_arn).await?;
        let mut view = from_arn(s, role_arn).await?;
        view.principal = session;
        view.credentials = Some(credentials);
        return Ok(view);
    }
    let identity = s.sts.get_caller_identity().send().await;
    let identity = identity.map_err(|e| s.sts_error("sts:GetCallerIdentity", e))?;
    from_arn(s, identity.arn().unwrap_or_default()).await
}

/// The policies of the principal at `arn`, read with `s`'s credentials in its own account.
async fn from_arn(s: &Session, arn: &str) -> Result<CallerView> {
    let parsed =
        Arn::parse(arn).ok_or_else(|| Error::Input(format!("'{arn}' is not a principal ARN")))?;
    let account: AccountId = parsed.account.parse()?;
    let own = s.account_from(Some(arn)).await.is_ok_and(|a| a == account);
    let mut view = CallerView {
        principal: arn.to_string(),
        account: account.clone(),
        policies: Vec::new(),
        boundary: None,
        policies_seen: own,
        credentials: None,
    };
    let resource = parsed.resource;
    if let Some(rest) = resource.strip_prefix("assumed-role/").or(resource.strip_prefix("role/")) {
        let role = rest.split('/').next().unwrap_or_default();
        if own {
            let docs = user::role_documents(s, role).await?;
            view.policies = docs.policies;
            view.boundary = docs.boundary;
        }
    } else if let Some(name) = resource.strip_prefix("user/") {
        if own {
            (view.policies, view.boundary) = user_documents(s, name).await?;
        }
    } else if resource == "root" {
        // The account root has every permission in its own account.
        let all = PolicyDocument::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .map_err(|e| Error::Failed(e.0))?;
        view.policies = vec![("account-root".into(), all)];
        view.policies_seen = true;
    }
    Ok(view)
}

type Named = (String, PolicyDocument);

/// An IAM user's inline and attached policies, its groups' too, and its boundary.
async fn user_documents(s: &Session, name: &str) -> Result<(Vec<Named>, Option<Named>)> {
    let iam = &s.iam;
    let inline = s.iam_all(
        "iam:ListUserPolicies",
        iam.list_user_policies().user_name(name).into_paginator().items().send(),
    );
    let attached = s.iam_all(
        "iam:ListAttachedUserPolicies",
        iam.list_attached_user_policies().user_name(name).into_paginator().items().send(),
    );
    let groups = s.iam_all(
        "iam:ListGroupsForUser",
        iam.list_groups_for_user().user_name(name).into_paginator().items().send(),
    );
    let user = iam.get_user().user_name(name).send();
    let (inline, attached, groups, user) = tokio::join!(inline, attached, groups, user);
    let mut policies = Vec::new();
    for policy in inline? {
        let doc = iam.get_user_policy().user_name(name).policy_name(&policy).send().await;
        let doc = doc.map_err(|e| s.iam_error("iam:GetUserPolicy", e))?;
        let what = format!("inline policy {policy} of user {name}");
        policies
            .push((format!("inline:{policy}"), parse_iam_document(doc.policy_document(), &what)?));
    }
    let arns: Vec<String> = attached?.into_iter().filter_map(|p| p.policy_arn).collect();
    policies.extend(managed(s, arns).await?);
    for group in groups? {
        policies.extend(group_documents(s, group.group_name()).await?);
    }
    let user = user.map_err(|e| s.iam_error("iam:GetUser", e))?;
    let boundary = match user
        .user()
        .and_then(|u| u.permissions_boundary())
        .and_then(|b| b.permissions_boundary_arn())
    {
        Some(arn) => Some((format!("boundary:{arn}"), managed_policy(s, arn).await?)),
        None => None,
    };
    Ok((policies, boundary))
}

/// A group's inline and attached policies.
async fn group_documents(s: &Session, group: &str) -> Result<Vec<Named>> {
    let iam = &s.iam;
    let names = s
        .iam_all(
            "iam:ListGroupPolicies",
            iam.list_group_policies().group_name(group).into_paginator().items().send(),
        )
        .await?;
    let mut policies = Vec::new();
    for policy in names {
        let doc = iam.get_group_policy().group_name(group).policy_name(&policy).send().await;
        let doc = doc.map_err(|e| s.iam_error("iam:GetGroupPolicy", e))?;
        let what = format!("inline policy {policy} of group {group}");
        policies.push((
            format!("group:{group}:{policy}"),
            parse_iam_document(doc.policy_document(), &what)?,
        ));
    }
    let attached = s.iam_all(
        "iam:ListAttachedGroupPolicies",
        iam.list_attached_group_policies().group_name(group).into_paginator().items().send(),
    );
    let arns: Vec<String> = attached.await?.into_iter().filter_map(|p| p.policy_arn).collect();
    policies.extend(managed(s, arns).await?);
    Ok(policies)
}

/// Managed policies' default versions, named `attached:ARN`.
async fn managed(s: &Session, arns: Vec<String>) -> Result<Vec<Named>> {
    try_join_all(arns.into_iter().map(|arn| async move {
        Ok::<_, Error>((format!("attached:{arn}"), managed_policy(s, &arn).await?))
    }))
    .await
}
