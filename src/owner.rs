//! Owner-side operations: the key, its alias and its key policy, in the account that owns the key.

use crate::aws::MAX_ATTEMPTS;
use crate::aws::Session;
use crate::error::{Error, Result};
use crate::names::PendingWindow;
use crate::output::Change;
use crate::output::Printer;
use crate::plan::{KeyPlan, KeyState, OwnerPlan, is_ours};
use crate::policy::PolicyDocument;
use crate::policy::build::GrantSpec;
use aws_config::retry::RetryConfig;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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
    let tags = s
        .kms
        .list_resource_tags()
        .key_id(key_id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| s.error("kms:ListResourceTags", e))?;
    Ok(tags.into_iter().map(|t| (t.tag_key, t.tag_value)).collect())
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
    let aliases = s
        .kms
        .list_aliases()
        .key_id(key_id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| s.error("kms:ListAliases", e))?;
    Ok(aliases.into_iter().filter_map(|a| a.alias_name).collect())
}

/// Where apply_setup reports key creation: told just before CreateKey, and the new key's ARN the
/// moment it exists, so that the record always says whether a key may exist.
pub struct KeyJournal<'a> {
    /// Called just before CreateKey.
    pub creating: &'a dyn Fn() -> Result<()>,
    /// Called with the new key's ARN.
    pub created: &'a dyn Fn(&str) -> Result<()>,
}

/// What the owner side of setup works with besides its plan.
pub struct OwnerApply<'a> {
    /// The alias, `alias/NAME`.
    pub alias: &'a str,
    /// The deployment's tags, for a new key.
    pub tags: &'a [(String, String)],
    /// Pending window for keys left by an interrupted run.
    pub retire_window: PendingWindow,
    /// Until when to retry a key policy that names principals KMS does not see yet.
    pub wait_until: Instant,
    /// Where to say what it waits for.
    pub printer: &'a Printer,
}

/// Carries out the owner side of setup (see [`KeyJournal`]). Returns the key ARN.
pub async fn apply_setup(
    s: &Session,
    plan: &OwnerPlan,
    opts: OwnerApply<'_>,
    journal: KeyJournal<'_>,
    changes: &mut Vec<Change>,
) -> Result<String> {
    let OwnerApply {
        alias,
        tags,
        retire_window,
        wait_until,
        printer,
    } = opts;
    let (key_id, arn) = match &plan.key {
        KeyPlan::Existing { key_id, arn } => {
            changes.push(Change::new(s, "unchanged", "key", arn));
            (key_id.clone(), arn.clone())
        }
        KeyPlan::Create { policy } => {
            (journal.creating)()?;
            let out = create_key(s, alias, policy, tags, wait_until, printer).await?;
            let meta = out.key_metadata().ok_or_else(|| Error::Aws {
                what: "kms:CreateKey".into(),
                detail: "the answer holds no key metadata".into(),
            })?;
            let arn = meta.arn().unwrap_or_default().to_string();
            tracing::info!(arn = %arn, account = %s.account(), "created key");
            (journal.created)(&arn)?;
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
    for orphan in &plan.retire {
        schedule_deletion(s, orphan, retire_window.days(), changes).await?;
    }
    if let Some(policy) = &plan.put_policy {
        let mut waiting = Waiting::new(wait_until, printer);
        loop {
            let result = s
                .kms
                .put_key_policy()
                .key_id(&key_id)
                .policy_name(POLICY_NAME)
                .policy(policy.render())
                .send()
                .await;
            match result {
                Ok(_) => break,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|x| x.is_malformed_policy_document_exception())
                        && waiting.again("kms:PutKeyPolicy", &e).await => {}
                Err(e) => return Err(s.error("kms:PutKeyPolicy", e)),
            }
        }
        tracing::info!(key = %arn, account = %s.account(), "updated key policy");
        changes.push(Change::new(s, "updated", "key-policy", &arn));
    } else if matches!(plan.key, KeyPlan::Existing { .. }) {
        changes.push(Change::new(s, "unchanged", "key-policy", &arn));
    }
    Ok(arn)
}

/// CreateKey is not idempotent: a retry after a lost answer makes a second key. So the SDK does
/// not retry it; this retries only answers that prove nothing was created (throttling, KMS
/// internal errors), and leaves a lost answer to the journal (`key_creation_pending`).
async fn create_key(
    s: &Session,
    alias: &str,
    policy: &PolicyDocument,
    tags: &[(String, String)],
    wait_until: Instant,
    printer: &Printer,
) -> Result<aws_sdk_kms::operation::create_key::CreateKeyOutput> {
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Aws {
            what: "kms:CreateKey".into(),
            detail: e.to_string(),
        })?;
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    let mut waiting = Waiting::new(wait_until, printer);
    loop {
        let result = s
            .kms
            .create_key()
            .key_spec(KeySpec::SymmetricDefault)
            .key_usage(KeyUsageType::EncryptDecrypt)
            .description(format!(
                "kmsxacct: shared with other accounts through {alias}"
            ))
            .policy(policy.render())
            .set_tags(Some(tags.clone()))
            .customize()
            .config_override(
                aws_sdk_kms::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await;
        match result {
            Ok(out) => return Ok(out),
            // The key policy names roles KMS does not see yet: nothing was created; wait.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_malformed_policy_document_exception())
                    && waiting.again("kms:CreateKey", &e).await => {}
            Err(e) if attempt < MAX_ATTEMPTS && nothing_created(&e) => {
                tracing::debug!(
                    attempt,
                    "kms:CreateKey refused before creating anything; retrying"
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(s.error("kms:CreateKey", e)),
        }
    }
}

/// Bounded waiting for IAM changes to reach KMS: polls at most once a second until a deadline,
/// saying once what it waits for.
struct Waiting<'a> {
    until: Instant,
    printer: &'a Printer,
    delay: Duration,
    said: bool,
}

impl<'a> Waiting<'a> {
    fn new(until: Instant, printer: &'a Printer) -> Waiting<'a> {
        Waiting {
            until,
            printer,
            delay: Duration::from_millis(250),
            said: false,
        }
    }

    /// Sleeps before another attempt; false once the deadline is past.
    async fn again(&mut self, operation: &str, error: &dyn std::fmt::Display) -> bool {
        if Instant::now() + self.delay >= self.until {
            return false;
        }
        if !self.said {
            self.printer.note(format!(
                "waiting up to {} s for IAM propagation: {operation} does not see the new roles yet ({error})",
                self.until.saturating_duration_since(Instant::now()).as_secs()
            ));
            self.said = true;
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(1));
        true
    }
}

/// Whether a CreateKey error proves no key was made: the service answered with throttling or an
/// internal error. Network failures and time-outs prove nothing.
fn nothing_created<R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_kms::operation::create_key::CreateKeyError,
        R,
    >,
) -> bool {
    e.as_service_error().is_some_and(|se| {
        matches!(
            se.code(),
            Some("ThrottlingException" | "KMSInternalException" | "DependencyTimeoutException")
        )
    })
}

/// Every key of this deployment in the owner account (a scan: ListKeys, then ListResourceTags
/// for each key, 8 at a time). Used only to recover from a CreateKey whose answer a previous run
/// never recorded.
pub async fn find_deployment_keys(s: &Session, spec: &GrantSpec) -> Result<Vec<KeyState>> {
    let ids: Vec<String> = s
        .kms
        .list_keys()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| s.error("kms:ListKeys", e))?
        .into_iter()
        .filter_map(|k| k.key_id)
        .collect();
    let limit = Arc::new(Semaphore::new(8));
    let mut tasks = JoinSet::new();
    for id in ids {
        let (s, spec, limit) = (s.clone(), spec.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let tags = key_tags(&s, &id).await?;
            if !is_ours(&tags, &spec) {
                return Ok(None);
            }
            read_key(&s, &id, KeyReads::TEARDOWN).await
        });
    }
    let mut found = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let key = joined.map_err(|e| Error::Failed(format!("key scan task failed: {e}")))??;
        found.extend(key);
    }
    found.sort_by(|a, b| a.arn.cmp(&b.arn));
    Ok(found)
}

/// Replaces the key policy (teardown of an adopted key: the policy without kmsxacct's statement).
pub async fn put_policy(
    s: &Session,
    key_arn: &str,
    policy: &PolicyDocument,
    changes: &mut Vec<Change>,
) -> Result<()> {
    s.kms
        .put_key_policy()
        .key_id(key_arn)
        .policy_name(POLICY_NAME)
        .policy(policy.render())
        .send()
        .await
        .map_err(|e| s.error("kms:PutKeyPolicy", e))?;
    tracing::info!(key = key_arn, account = %s.account(), "removed kmsxacct's statement from the key policy");
    changes.push(
        Change::new(s, "updated", "key-policy", key_arn)
            .detail("kmsxacct's statement removed; the adopted key and alias stay".into()),
    );
    Ok(())
}

/// Turns on automatic rotation of the key material every `period_days`, unless it already is.
pub async fn ensure_key_rotation(
    s: &Session,
    key_arn: &str,
    period_days: i32,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let status = s
        .kms
        .get_key_rotation_status()
        .key_id(key_arn)
        .send()
        .await
        .map_err(|e| s.error("kms:GetKeyRotationStatus", e))?;
    if status.key_rotation_enabled() && status.rotation_period_in_days() == Some(period_days) {
        changes.push(
            Change::new(s, "unchanged", "key-rotation", key_arn)
                .detail(format!("every {period_days} days")),
        );
        return Ok(());
    }
    s.kms
        .enable_key_rotation()
        .key_id(key_arn)
        .rotation_period_in_days(period_days)
        .send()
        .await
        .map_err(|e| s.error("kms:EnableKeyRotation", e))?;
    tracing::info!(key = key_arn, period_days, account = %s.account(), "enabled key rotation");
    changes.push(
        Change::new(s, "updated", "key-rotation", key_arn)
            .detail(format!("automatic rotation every {period_days} days")),
    );
    Ok(())
}

/// Points a new alias at a key; an alias already pointing there counts as done.
pub async fn create_alias(
    s: &Session,
    alias: &str,
    key_arn: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    match s
        .kms
        .create_alias()
        .alias_name(alias)
        .target_key_id(key_arn)
        .send()
        .await
    {
        Ok(_) => {
            tracing::info!(alias, key = key_arn, account = %s.account(), "created alias");
            changes.push(Change::new(s, "created", "alias", alias).detail(format!("-> {key_arn}")));
            Ok(())
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|x| x.is_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(s.error("kms:CreateAlias", e)),
    }
}

/// Re-points an alias at another key (UpdateAlias).
pub async fn update_alias(
    s: &Session,
    alias: &str,
    key_arn: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    s.kms
        .update_alias()
        .alias_name(alias)
        .target_key_id(key_arn)
        .send()
        .await
        .map_err(|e| s.error("kms:UpdateAlias", e))?;
    tracing::info!(alias, key = key_arn, account = %s.account(), "moved alias");
    changes.push(Change::new(s, "updated", "alias", alias).detail(format!("-> {key_arn}")));
    Ok(())
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
