//! Owner-side operations: the key, its alias and its key policy, in the account that owns the key.

use crate::aws::Session;
use crate::error::{Error, Result};
use crate::output::Change;
use crate::plan::{KeyPlan, KeyState, OwnerPlan};
use crate::policy::PolicyDocument;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};

/// The only key policy name KMS has.
const POLICY_NAME: &str = "default";

/// Which of a key's details [`read_key`] fetches besides its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyReads {
    /// Its tags (ownership).
    pub tags: bool,
    /// Its key policy.
    pub policy: bool,
    /// Every alias pointing at it.
    pub aliases: bool,
}

impl KeyReads {
    /// Setup: ownership and the policy to converge.
    pub const SETUP: KeyReads = KeyReads {
        tags: true,
        policy: true,
        aliases: false,
    };
    /// Teardown: ownership and the aliases that would go with the key.
    pub const TEARDOWN: KeyReads = KeyReads {
        tags: true,
        policy: false,
        aliases: true,
    };
    /// Verify: the policy and aliases to evaluate; tags only when no record names the key.
    pub fn verify(with_tags: bool) -> KeyReads {
        KeyReads {
            tags: with_tags,
            policy: true,
            aliases: true,
        }
    }
}

/// Reads a key (by id, ARN, alias name or alias ARN) with the details `reads` asks for. `None`
/// when no such key or alias exists.
pub async fn read_key(s: &Session, key: &str, reads: KeyReads) -> Result<Option<KeyState>> {
    let described = match s.kms.describe_key().key_id(key).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(s.error("kms:DescribeKey", e)),
    };
    let Some(meta) = described.key_metadata() else {
        return Ok(None);
    };
    let key_id = meta.key_id().to_string();
    let (tags, policy, aliases) = tokio::try_join!(
        async {
            if reads.tags {
                key_tags(s, &key_id).await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if reads.policy {
                key_policy(s, &key_id).await.map(Some)
            } else {
                Ok(None)
            }
        },
        async {
            if reads.aliases {
                key_aliases(s, &key_id).await
            } else {
                Ok(Vec::new())
            }
        },
    )?;
    Ok(Some(KeyState {
        arn: meta.arn().unwrap_or_default().to_string(),
        state: meta
            .key_state()
            .map(|k| k.as_str().to_string())
            .unwrap_or_default(),
        key_id,
        tags,
        policy,
        aliases,
    }))
}

async fn key_tags(s: &Session, key_id: &str) -> Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    let mut marker = None;
    loop {
        let out = s
            .kms
            .list_resource_tags()
            .key_id(key_id)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| s.error("kms:ListResourceTags", e))?;
        tags.extend(
            out.tags()
                .iter()
                .map(|t| (t.tag_key().to_string(), t.tag_value().to_string())),
        );
        match out.next_marker() {
            Some(m) if out.truncated() => marker = Some(m.to_string()),
            _ => return Ok(tags),
        }
    }
}

/// The key's policy, parsed.
pub async fn key_policy(s: &Session, key_id: &str) -> Result<PolicyDocument> {
    let out = s
        .kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name(POLICY_NAME)
        .send()
        .await
        .map_err(|e| s.error("kms:GetKeyPolicy", e))?;
    PolicyDocument::parse(out.policy().unwrap_or_default()).map_err(|e| Error::Aws {
        what: format!("key policy of {key_id}"),
        detail: e.0,
    })
}

async fn key_aliases(s: &Session, key_id: &str) -> Result<Vec<String>> {
    let mut aliases = Vec::new();
    let mut marker = None;
    loop {
        let out = s
            .kms
            .list_aliases()
            .key_id(key_id)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| s.error("kms:ListAliases", e))?;
        aliases.extend(
            out.aliases()
                .iter()
                .filter_map(|a| a.alias_name().map(String::from)),
        );
        match out.next_marker() {
            Some(m) if out.truncated() => marker = Some(m.to_string()),
            _ => return Ok(aliases),
        }
    }
}

/// Carries out the owner side of setup. `key_created` is told the new key's ARN the moment it
/// exists, so that it is recorded before anything else can fail. Returns the key ARN.
pub async fn apply_setup(
    s: &Session,
    alias: &str,
    plan: &OwnerPlan,
    tags: &[(String, String)],
    key_created: impl Fn(&str) -> Result<()>,
    changes: &mut Vec<Change>,
) -> Result<String> {
    let (key_id, arn) = match &plan.key {
        KeyPlan::Existing { key_id, arn } => {
            changes.push(Change::new(s, "unchanged", "key", arn));
            (key_id.clone(), arn.clone())
        }
        KeyPlan::Create { policy } => {
            let tags = tags
                .iter()
                .map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Aws {
                    what: "kms:CreateKey".into(),
                    detail: e.to_string(),
                })?;
            let out = s
                .kms
                .create_key()
                .key_spec(KeySpec::SymmetricDefault)
                .key_usage(KeyUsageType::EncryptDecrypt)
                .description(format!(
                    "kmsxacct: shared with other accounts through {alias}"
                ))
                .policy(policy.render())
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| s.error("kms:CreateKey", e))?;
            let meta = out.key_metadata().ok_or_else(|| Error::Aws {
                what: "kms:CreateKey".into(),
                detail: "the answer holds no key metadata".into(),
            })?;
            let arn = meta.arn().unwrap_or_default().to_string();
            tracing::info!(arn = %arn, account = %s.account(), "created key");
            key_created(&arn)?;
            changes.push(Change::new(s, "created", "key", &arn));
            (meta.key_id().to_string(), arn)
        }
    };
    if plan.create_alias {
        s.kms
            .create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await
            .map_err(|e| s.error("kms:CreateAlias", e))?;
        tracing::info!(alias, key = %arn, account = %s.account(), "created alias");
        changes.push(Change::new(s, "created", "alias", alias).detail(format!("-> {arn}")));
    } else {
        changes.push(Change::new(s, "unchanged", "alias", alias));
    }
    if let Some(policy) = &plan.put_policy {
        s.kms
            .put_key_policy()
            .key_id(&key_id)
            .policy_name(POLICY_NAME)
            .policy(policy.render())
            .send()
            .await
            .map_err(|e| s.error("kms:PutKeyPolicy", e))?;
        tracing::info!(key = %arn, account = %s.account(), "updated key policy");
        changes.push(Change::new(s, "updated", "key-policy", &arn));
    } else if matches!(plan.key, KeyPlan::Existing { .. }) {
        changes.push(Change::new(s, "unchanged", "key-policy", &arn));
    }
    Ok(arn)
}

/// Deletes the alias. Gone already counts as done (a re-run after a partial teardown).
pub async fn delete_alias(s: &Session, alias: &str, changes: &mut Vec<Change>) -> Result<()> {
    match s.kms.delete_alias().alias_name(alias).send().await {
        Ok(_) => {
            tracing::info!(alias, account = %s.account(), "deleted alias");
            changes.push(Change::new(s, "deleted", "alias", alias));
            Ok(())
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(s.error("kms:DeleteAlias", e)),
    }
}

/// Schedules the key's deletion after `days`; returns the deletion date (RFC 3339).
pub async fn schedule_deletion(
    s: &Session,
    key_arn: &str,
    days: i32,
    changes: &mut Vec<Change>,
) -> Result<String> {
    let out = s
        .kms
        .schedule_key_deletion()
        .key_id(key_arn)
        .pending_window_in_days(days)
        .send()
        .await
        .map_err(|e| s.error("kms:ScheduleKeyDeletion", e))?;
    let date = out
        .deletion_date()
        .and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
        .unwrap_or_else(|| format!("in {days} days"));
    tracing::info!(key = key_arn, account = %s.account(), deletion_date = %date, "scheduled key deletion");
    changes.push(
        Change::new(s, "scheduled-deletion", "key", key_arn).detail(format!("deleted on {date}")),
    );
    Ok(date)
}
