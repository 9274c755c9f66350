//! Owner-side operations: the key, its alias and its key policy, in the account that owns the key.
//! Reads are here; every write goes through [`crate::writes`].

use crate::aws::Session;
use crate::error::{Error, Result};
use crate::names::{PendingWindow, Region};
use crate::output::{Change, Printer, Resource};
use crate::plan::{
    DeploymentKeys, KEY_PENDING_DELETION, KeyPlan, KeyState, OwnerPlan, RegionDrop, RegionPlan,
    RegionSeen, is_ours,
};
use crate::policy::PolicyDocument;
use crate::policy::build::GrantSpec;
use crate::policy::eval::Grant;
use crate::writes::{self, KEY_POLICY_NAME, Propagation, Write, apply_to};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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
    pub const SETUP: KeyReads = KeyReads { tags: true, policy: true, aliases: false };
    /// Teardown: ownership and the aliases that would go with the key.
    pub const TEARDOWN: KeyReads = KeyReads { tags: true, policy: false, aliases: true };
    /// Verify: the policy and aliases to evaluate; tags only when no record names the key.
    pub fn verify(with_tags: bool) -> KeyReads {
        KeyReads { tags: with_tags, policy: true, aliases: true }
    }
}

/// Reads a key (by id, ARN, alias name or alias ARN) with the details `reads` asks for. `None`
/// when no such key or alias exists.
pub async fn read_key(s: &Session, key: &str, reads: KeyReads) -> Result<Option<KeyState>> {
    let Some(meta) = describe_key(s, key).await? else {
        return Ok(None);
    };
    let key_id = meta.key_id().to_string();
    let (tags, policy, aliases) = tokio::try_join!(
        async { if reads.tags { key_tags(s, &key_id).await } else { Ok(Vec::new()) } },
        async { if reads.policy { key_policy(s, &key_id).await.map(Some) } else { Ok(None) } },
        async { if reads.aliases { key_aliases(s, &key_id).await } else { Ok(Vec::new()) } },
    )?;
    Ok(Some(KeyState {
        arn: meta.arn().unwrap_or_default().to_string(),
        state: meta.key_state().map(|k| k.as_str().to_string()).unwrap_or_default(),
        deletion_date: meta.deletion_date().map(writes::rfc3339),
        multi_region: meta.multi_region().unwrap_or(false),
        key_id,
        tags,
        policy,
        aliases,
    }))
}

/// A key as `diagnose` weighs it: its metadata, aliases, policy and grants.
#[derive(Debug, Clone)]
pub struct KeyFacts {
    /// Key ARN.
    pub arn: String,
    /// Key state.
    pub state: String,
    /// Key usage, e.g. `ENCRYPT_DECRYPT`.
    pub usage: String,
    /// When KMS deletes it, if scheduled.
    pub deletion_date: Option<String>,
    /// Every alias of the key.
    pub aliases: Vec<String>,
    /// Its key policy.
    pub policy: PolicyDocument,
    /// Its grants.
    pub grants: Vec<Grant>,
}

/// Reads a key's [`KeyFacts`] (`key`: id, ARN, alias name or alias ARN); None when there is no
/// such key or alias.
pub async fn key_facts(s: &Session, key: &str) -> Result<Option<KeyFacts>> {
    let Some(meta) = describe_key(s, key).await? else { return Ok(None) };
    let id = meta.key_id();
    let (policy, aliases, grants) =
        tokio::try_join!(key_policy(s, id), key_aliases(s, id), key_grants(s, id))?;
    Ok(Some(KeyFacts {
        arn: meta.arn().unwrap_or_default().to_string(),
        state: meta.key_state().map(|k| k.as_str().to_string()).unwrap_or_default(),
        usage: meta.key_usage().map(|u| u.as_str().to_string()).unwrap_or_default(),
        deletion_date: meta.deletion_date().map(writes::rfc3339),
        aliases,
        policy,
        grants,
    }))
}

/// The key's grants, as the policy engine weighs them.
async fn key_grants(s: &Session, key_id: &str) -> Result<Vec<Grant>> {
    let items = s.kms.list_grants().key_id(key_id).into_paginator().items().send();
    let grants = s.kms_all("kms:ListGrants", items).await?;
    let pairs = |m: Option<&std::collections::HashMap<String, String>>| {
        m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    };
    Ok(grants
        .into_iter()
        .map(|g| Grant {
            id: g.grant_id().unwrap_or_default().to_string(),
            grantee: g.grantee_principal().unwrap_or_default().to_string(),
            operations: g.operations().iter().map(|o| o.as_str().to_string()).collect(),
            context_subset: pairs(g.constraints().and_then(|c| c.encryption_context_subset())),
            context_equals: pairs(g.constraints().and_then(|c| c.encryption_context_equals())),
        })
        .collect())
}

/// The key behind `alias`, and the key at `recorded` (an ARN) when the alias leads to none.
pub async fn read_deployment_keys(
    s: &Session,
    alias: &str,
    recorded: Option<&str>,
    reads: KeyReads,
) -> Result<DeploymentKeys> {
    let at_alias = read_key(s, alias, reads).await?;
    let recorded = match (&at_alias, recorded) {
        (None, Some(arn)) => read_key(s, arn, reads).await?,
        _ => None,
    };
    Ok(DeploymentKeys { at_alias, recorded })
}

/// DescribeKey: the key's metadata, or None when no such key or alias exists.
async fn describe_key(s: &Session, key: &str) -> Result<Option<aws_sdk_kms::types::KeyMetadata>> {
    match s.kms.describe_key().key_id(key).send().await {
        Ok(out) => Ok(out.key_metadata),
        Err(e) => s.kms_error("kms:DescribeKey", e).none_if_not_found(),
    }
}

/// The ARN of the key `alias` points at, or None when there is no such alias.
pub async fn alias_target(s: &Session, alias: &str) -> Result<Option<String>> {
    Ok(describe_key(s, alias).await?.and_then(|m| m.arn))
}

/// The key's state (`Enabled`, `PendingDeletion`, ...), or None when there is no such key.
pub async fn key_state(s: &Session, key: &str) -> Result<Option<String>> {
    let meta = describe_key(s, key).await?;
    Ok(meta.and_then(|m| m.key_state().map(|k| k.as_str().to_string())))
}

/// The key's deletion date when its deletion is scheduled, else None.
pub async fn deletion_date(s: &Session, key: &str) -> Result<Option<String>> {
    Ok(describe_key(s, key).await?.and_then(|m| {
        (m.key_state().map(|k| k.as_str()) == Some(KEY_PENDING_DELETION))
            .then(|| m.deletion_date().map(writes::rfc3339).unwrap_or_default())
    }))
}

async fn key_tags(s: &Session, key_id: &str) -> Result<Vec<(String, String)>> {
    let items = s.kms.list_resource_tags().key_id(key_id).into_paginator().items().send();
    let tags = s.kms_all("kms:ListResourceTags", items).await?;
    Ok(tags.into_iter().map(|t| (t.tag_key, t.tag_value)).collect())
}

/// The key's policy, parsed.
pub async fn key_policy(s: &Session, key_id: &str) -> Result<PolicyDocument> {
    let out = s
        .kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name(KEY_POLICY_NAME)
        .send()
        .await
        .map_err(|e| s.kms_error("kms:GetKeyPolicy", e))?;
    PolicyDocument::parse(out.policy().unwrap_or_default())
        .map_err(|e| Error::Failed(format!("key policy of {key_id}: {}", e.0)))
}

async fn key_aliases(s: &Session, key_id: &str) -> Result<Vec<String>> {
    let items = s.kms.list_aliases().key_id(key_id).into_paginator().items().send();
    let aliases = s.kms_all("kms:ListAliases", items).await?;
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
    let wait = Propagation { until: opts.wait_until, printer: opts.printer };
    let arn = match &plan.key {
        KeyPlan::Existing { arn, .. } => {
            changes.push(Change::unchanged(s, Resource::Key, arn));
            arn.clone()
        }
        KeyPlan::Create { policy, multi_region } => {
            (journal.creating)()?;
            let multi_region = *multi_region;
            let write =
                Write::CreateKey { alias: opts.alias, policy, tags: opts.tags, multi_region };
            let done = writes::apply(s, &write, Some(wait)).await?;
            let arn = done.key().map(|(_, arn)| arn.to_string()).unwrap_or_default();
            (journal.created)(&arn)?;
            changes.push(done.change);
            arn
        }
    };
    if plan.create_alias {
        let write = Write::CreateAlias { alias: opts.alias, key_arn: &arn };
        apply_to(changes, s, write).await?;
    } else {
        changes.push(Change::unchanged(s, Resource::Alias, opts.alias));
    }
    for orphan in &plan.retire {
        let write = Write::ScheduleKeyDeletion { key_arn: orphan, days: opts.retire_window.days() };
        apply_to(changes, s, write).await?;
    }
    if let Some(policy) = &plan.put_policy {
        let write = Write::PutKeyPolicy { key_arn: &arn, policy, note: None };
        changes.push(writes::apply(s, &write, Some(wait)).await?.change);
    } else if matches!(plan.key, KeyPlan::Existing { .. }) {
        changes.push(Change::unchanged(s, Resource::KeyPolicy, &arn));
    }
    Ok(arn)
}

/// Every key of this deployment in the owner account (a scan: ListKeys, then ListResourceTags
/// for each key, 8 at a time). Used only to recover from a CreateKey whose answer a previous run
/// never recorded.
pub async fn find_deployment_keys(s: &Session, spec: &GrantSpec) -> Result<Vec<KeyState>> {
    let keys = s.kms_all("kms:ListKeys", s.kms.list_keys().into_paginator().items().send()).await?;
    let ids: Vec<String> = keys.into_iter().filter_map(|k| k.key_id).collect();
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
        .map_err(|e| s.kms_error("kms:GetKeyRotationStatus", e))?;
    if status.key_rotation_enabled() && status.rotation_period_in_days() == Some(period_days) {
        changes.push(
            Change::unchanged(s, Resource::KeyRotation, key_arn)
                .detail(format!("every {period_days} days")),
        );
        return Ok(());
    }
    let write = Write::EnableKeyRotation { key_arn, period_days };
    apply_to(changes, s, write).await.map(drop)
}

/// Reads the replica regions `kept` and the regions `dropped`: the key `alias` points at there
/// and, once the primary exists, its replica there.
pub async fn read_regions(
    s: &Session,
    alias: &str,
    primary: Option<&str>,
    (kept, dropped): (&[Region], &[Region]),
) -> Result<(Vec<RegionSeen>, Vec<RegionSeen>)> {
    let read = |region: Region| async move {
        let regional = s.in_region(&region);
        let replica = primary.map(|p| crate::plan::replica_arn(p, &region));
        let (at_alias, replica) =
            tokio::try_join!(read_key(&regional, alias, KeyReads::SETUP), async {
                match &replica {
                    Some(arn) => read_key(&regional, arn, KeyReads::SETUP).await,
                    None => Ok(None),
                }
            },)?;
        Ok::<_, Error>(RegionSeen { region, at_alias, replica })
    };
    let (kept, gone) = tokio::try_join!(
        futures_util::future::try_join_all(kept.iter().cloned().map(read)),
        futures_util::future::try_join_all(dropped.iter().cloned().map(read)),
    )?;
    Ok((kept, gone))
}

/// What the region step of setup works with besides its plans.
pub struct RegionApply<'a> {
    /// The alias, `alias/NAME`, made in every region.
    pub alias: &'a str,
    /// The deployment's tags, for each replica.
    pub tags: &'a [(String, String)],
    /// Pending window for the replicas of dropped regions.
    pub window: PendingWindow,
    /// How long a key policy naming new principals is retried.
    pub wait: Propagation<'a>,
}

/// Carries out the region plans in order: in each replica region, ReplicateKey (sent in the
/// primary's region), CreateAlias and PutKeyPolicy there; in each dropped region, DeleteAlias and
/// ScheduleKeyDeletion of the replica. Returns each replica deletion: its ARN and date.
pub async fn apply_regions(
    s: &Session,
    primary: &str,
    (plans, drops): &(Vec<RegionPlan>, Vec<RegionDrop>),
    opts: RegionApply<'_>,
    changes: &mut Vec<Change>,
) -> Result<Vec<(String, String)>> {
    let mut deletions = Vec::new();
    for plan in plans {
        let regional = s.in_region(&plan.region);
        let replica = crate::plan::replica_arn(primary, &plan.region);
        match &plan.replicate {
            Some(policy) => {
                let write = Write::ReplicateKey {
                    key_arn: primary,
                    region: &plan.region,
                    policy,
                    tags: opts.tags,
                };
                changes.push(writes::apply(s, &write, Some(opts.wait)).await?.change);
            }
            None => changes.push(Change::unchanged(&regional, Resource::Key, &replica)),
        }
        if plan.create_alias {
            let write = Write::CreateAlias { alias: opts.alias, key_arn: &replica };
            apply_to(changes, &regional, write).await?;
        } else {
            changes.push(Change::unchanged(&regional, Resource::Alias, opts.alias));
        }
        match &plan.put_policy {
            Some(policy) => {
                let write = Write::PutKeyPolicy { key_arn: &replica, policy, note: None };
                changes.push(writes::apply(&regional, &write, Some(opts.wait)).await?.change);
            }
            None if plan.replicate.is_none() => {
                changes.push(Change::unchanged(&regional, Resource::KeyPolicy, &replica));
            }
            None => {}
        }
    }
    for drop in drops {
        let regional = s.in_region(&drop.region);
        if drop.delete_alias {
            apply_to(changes, &regional, Write::DeleteAlias { alias: opts.alias }).await?;
        }
        if let Some(replica) = &drop.schedule_deletion {
            let write = Write::ScheduleKeyDeletion { key_arn: replica, days: opts.window.days() };
            let done = apply_to(changes, &regional, write).await?;
            if let Some(date) = done.deletion_date() {
                deletions.push((replica.clone(), date.to_string()));
            }
        }
    }
    Ok(deletions)
}
