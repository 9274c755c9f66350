//! `kmsxacct restore`: undo a complete teardown within the keys' pending window: cancel the
//! key deletions, enable the keys, put back the aliases (retired ones too) and the roles. After
//! the window it says what is gone. No IaC tool can undo a destroy; the record lets us.

use super::{Context, Sides, Target, TargetArgs};
use crate::aws::Session;
use crate::error::{Error, Result};
use crate::names::AccountId;
use crate::output::Change;
use crate::owner::{self, KeyReads};
use crate::plan::{KeyLeft, RestorePlan, RoleState, deployment_tags, plan_restore, replica_arn};
use crate::policy::build::GrantSpec;
use crate::policy::matching::Arn;
use crate::record::{CheckedDeployment, Journal, TornDown};
use crate::user;
use crate::writes::{self, Propagation, Write, apply_to};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Flags of `restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// Seconds to keep retrying while KMS does not yet see a re-created role (--grant-to role).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub wait: u64,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    changes: &'a [Change],
    gone: Vec<&'a str>,
}

/// Runs restore: resolve → read → plan → apply → report.
pub async fn run(ctx: &Context, args: &RestoreArgs) -> Result<()> {
    let started = Instant::now();
    let target = Target::resolve(&TargetArgs::default(), &ctx.config)?;
    let (record, torn) = torn_down(&target, ctx)?;
    let sides = target.open(ctx).await?;
    ctx.printer.step("reading what is left of the deployment");
    let (spec, keys, users) = read(ctx, &target, &sides, record, torn).await?;
    let plan = plan_restore(&spec, &keys, &users)
        .map_err(|c| Error::Conflict(format!("restore changed nothing: {}", c.join("; "))))?;
    ctx.printer.step("cancelling the key deletions, putting back aliases and roles");
    let journal = Journal::start(record.raw.clone(), &ctx.config)?;
    let wait =
        Propagation { until: started + Duration::from_secs(args.wait), printer: &ctx.printer };
    let changes = apply(ctx, &sides, &spec, &plan, &journal, wait).await?;
    journal.update(|r| {
        r.torn_down = None;
        for k in r.previous_keys.iter_mut().filter(|k| plan.enable.contains(&k.arn)) {
            k.deletion_scheduled = None;
        }
    })?;
    report(ctx, &plan, &changes);
    Ok(())
}

/// The record, which must say the deployment was torn down.
fn torn_down<'a>(
    target: &'a Target,
    ctx: &Context,
) -> Result<(&'a CheckedDeployment, &'a TornDown)> {
    let record =
        target.record.as_ref().ok_or_else(|| Error::Input("restore needs the record".into()))?;
    if record.raw.stack_set.is_some() {
        return Err(Error::Input(
            "restore does not yet bring back a StackSet rollout; `kmsxacct setup` with the same flags makes it anew".into(),
        ));
    }
    match &record.raw.torn_down {
        Some(t) => Ok((record, t)),
        None => Err(Error::Input(format!(
            "'{}' records a deployment that is not torn down: nothing to restore",
            ctx.config.display()
        ))),
    }
}

/// Learns the accounts, and reads every key of the deployment with its alias, and every role.
async fn read(
    ctx: &Context,
    target: &Target,
    sides: &Sides,
    record: &CheckedDeployment,
    torn: &TornDown,
) -> Result<(GrantSpec, Vec<KeyLeft>, Vec<(AccountId, Option<RoleState>)>)> {
    let main = std::iter::once((record.alias.to_string(), record.raw.key_arn.clone()));
    let retired = record.raw.previous_keys.iter().map(|k| (k.alias.clone(), k.arn.clone()));
    let primaries: Vec<(String, String)> = main.chain(retired).collect();
    // Then the replicas of each, in every replica region, each with the same alias there.
    let replicas = target.replica_regions().into_iter().flat_map(|region| {
        let primaries = primaries.clone();
        primaries.into_iter().map(move |(alias, arn)| (alias, replica_arn(&arn, &region)))
    });
    let wanted: Vec<(String, String, String)> = primaries
        .clone()
        .into_iter()
        .chain(replicas)
        .filter_map(|(alias, arn)| {
            let date = torn.deletions.iter().find(|d| d.arn == arn)?.date.clone();
            Some((alias, arn, date))
        })
        .collect();
    let key_reads = wanted.iter().enumerate().map(|(i, (alias, arn, date))| async move {
        let reads = KeyReads { tags: true, policy: i == 0, aliases: false };
        let s = regional(&sides.owner, arn);
        let (key, at) =
            tokio::try_join!(owner::read_key(&s, arn, reads), owner::alias_target(&s, alias))?;
        Ok::<_, Error>(KeyLeft {
            alias: alias.clone(),
            arn: arn.clone(),
            deletion_date: date.clone(),
            key,
            alias_target: at,
        })
    });
    let role_reads =
        sides.users.iter().map(|u| user::read_role(u, target.role.as_str(), false)).collect();
    let (ids, keys, roles) = tokio::join!(
        sides.identify(ctx),
        futures_util::future::try_join_all(key_reads),
        ctx.bounded(role_reads)
    );
    let (owner_account, accounts) = ids?;
    target.check_accounts(&owner_account, &accounts)?;
    let roles: Vec<Option<RoleState>> = roles.into_iter().collect::<Result<_>>()?;
    let spec = target.spec(sides, owner_account, accounts.clone());
    Ok((spec, keys?, accounts.into_iter().zip(roles).collect()))
}

/// Keys first (cancel, enable), then the roles, then the key policy (it may name the roles)
/// and the aliases.
async fn apply(
    ctx: &Context,
    sides: &Sides,
    spec: &GrantSpec,
    plan: &RestorePlan,
    journal: &Journal<'_>,
    wait: Propagation<'_>,
) -> Result<Vec<Change>> {
    let owner = &sides.owner;
    let mut changes = Vec::new();
    let cancel = plan.cancel.iter().map(|k| Write::CancelKeyDeletion { key_arn: k });
    let enable = plan.enable.iter().map(|k| Write::EnableKey { key_arn: k });
    for (arn, write) in plan.cancel.iter().zip(cancel).chain(plan.enable.iter().zip(enable)) {
        apply_to(&mut changes, &regional(owner, arn), write).await?;
    }
    let tags = deployment_tags(spec);
    let work = sides
        .users
        .iter()
        .zip(&plan.users)
        .enumerate()
        .map(|(i, (session, plan))| {
            let tags = &tags;
            async move {
                let mut changes = Vec::new();
                let created =
                    |arn: &str| Ok(journal.update(|r| r.users[i].role_arn = arn.to_string())?);
                let role = spec.role.as_str();
                let arn = user::apply_setup(session, role, plan, tags, created, &mut changes).await;
                (arn, changes)
            }
        })
        .collect();
    for (arn, user_changes) in ctx.bounded(work).await {
        changes.extend(user_changes.into_iter().filter(Change::is_change));
        arn?;
    }
    if let Some((key_arn, policy)) = &plan.put_policy {
        let write = Write::PutKeyPolicy { key_arn, policy, note: None };
        changes.push(writes::apply(owner, &write, Some(wait)).await?.change);
    }
    for (alias, key_arn) in &plan.aliases {
        let write = Write::CreateAlias { alias, key_arn };
        apply_to(&mut changes, &regional(owner, key_arn), write).await?;
    }
    Ok(changes)
}

/// The owner's session for a key: in the key's region (a replica's, for a multi-Region key).
fn regional(owner: &Session, key_arn: &str) -> Session {
    let region = Arn::parse(key_arn).map(|a| a.region).filter(|r| *r != owner.region.as_str());
    match region.map(str::parse) {
        Some(Ok(r)) => owner.in_region(&r),
        _ => owner.clone(),
    }
}

/// Prints what changed and what is gone, and the JSON report.
fn report(ctx: &Context, plan: &RestorePlan, changes: &[Change]) {
    ctx.printer.changes(changes);
    for g in &plan.gone {
        ctx.printer.note(format!(
            "retired key {} was deleted on {}: data only it encrypted cannot be decrypted any more",
            g.arn, g.deletion_date
        ));
    }
    ctx.printer.line("restore complete: the deployment is back; `kmsxacct verify` proves it");
    let gone = plan.gone.iter().map(|g| g.arn.as_str()).collect();
    ctx.printer.json(&Report { command: "restore", changes, gone }, ctx.calls.snapshot());
}
