//! `kmsxacct teardown`: remove what setup made, and only that.

use super::{Context, Sides, Target, TargetArgs};
use crate::aws::Session;
use crate::error::{Error, Result};
use crate::names::{AccountId, PendingWindow};
use crate::output::Change;
use crate::owner::{KeyReads, RegionApply};
use crate::plan::{
    DeploymentKeys, KeyState, OwnerTeardown, RegionDrop, RegionSeen, RoleState, StackSetState,
    StackSetTeardown, TeardownPlan, TeardownSeen, plan_regions, plan_stack_set_teardown,
    plan_teardown,
};
use crate::policy::build::GrantSpec;
use crate::record::{KeyDeletion, TornDown};
use crate::writes::{Done, Propagation, Write, apply_to};
use crate::{admin, owner, user};
use serde::Serialize;

/// Flags of `teardown`.
#[derive(Debug, Clone, clap::Args)]
pub struct TeardownArgs {
    /// Which deployment; without these flags, the record (--config) says.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Days KMS waits before deleting the key, 7 to 30 [default: the record's, else 30].
    #[arg(long, value_name = "DAYS")]
    pub pending_window_days: Option<PendingWindow>,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    changed: bool,
    key_deletion_date: Option<&'a str>,
    changes: &'a [Change],
}

/// Runs teardown: resolve → read → plan → apply → report.
pub async fn run(ctx: &Context, args: &TeardownArgs) -> Result<()> {
    let target = Target::resolve(&args.target, &ctx.config)?;
    let window = args
        .pending_window_days
        .or(target.record.as_ref().map(|r| r.pending_window))
        .unwrap_or(PendingWindow::DEFAULT);
    let sides = target.open(ctx).await?;
    ctx.printer.step("reading what this deployment left in every account");
    let seen = read(ctx, &target, &sides).await?;
    let plan = plan_teardown(&seen.spec, &seen.view(target.adopted()))
        .map_err(|c| Error::Conflict(format!("teardown changed nothing: {}", c.join("; "))))?;
    let replicas = plan_replicas(&seen)?;
    let replicas_left = replicas
        .iter()
        .flat_map(|(_, drops)| drops)
        .any(|d| d.delete_alias || d.schedule_deletion.is_some());
    let stack_set = plan_stack_set(&target, &seen)?;
    let fleet_left = stack_set.as_ref().is_some_and(|(_, p)| p.delete_set);
    if plan.is_empty() && !replicas_left && !fleet_left {
        ctx.printer
            .line("teardown: nothing to do; no role, alias or key of this deployment is left");
        mark_torn_down(ctx, &target, &seen, Vec::new())?;
        report(ctx, false, None, &[]);
        return Ok(());
    }
    let mut changes = Vec::new();
    if let (Some((name, plan)), Some(admin)) = (&stack_set, &sides.admin) {
        ctx.printer.step(format!("removing StackSet {name} and its instances"));
        let done = remove_stack_set(ctx, admin, (name, plan), &mut changes).await;
        if let Err(e) = done {
            ctx.printer.changes(&changes);
            return Err(Error::Failed(format!(
                "teardown did not finish ({e}); run it again to finish"
            )));
        }
    }
    let mut replica_deletions = Vec::new();
    if replicas_left {
        ctx.printer.step("removing the replicas and their aliases");
        let done = apply_replicas(ctx, &sides.owner, replicas, window, &mut changes).await;
        ctx.printer.changes(&changes);
        match done {
            Ok(d) => replica_deletions = d,
            Err(e) => {
                return Err(Error::Failed(format!(
                    "teardown did not finish ({e}); run it again to finish"
                )));
            }
        }
    }
    ctx.printer.step("removing the roles, the alias and the key");
    let (mut deletions, more) = apply(ctx, &sides, &seen.spec, &plan, window).await?;
    changes.extend(more);
    deletions.extend(replica_deletions);
    let key = plan.owner.schedule_key_deletion.as_deref();
    let deletion_date =
        deletions.iter().find(|d| Some(d.arn.as_str()) == key).map(|d| d.date.clone());
    mark_torn_down(ctx, &target, &seen, deletions)?;
    match &deletion_date {
        Some(date) => ctx.printer.line(format!(
            "teardown complete: the key will be deleted on {date}; until then `kmsxacct restore` undoes this teardown"
        )),
        None => ctx.printer.line("teardown complete"),
    }
    report(ctx, true, deletion_date.as_deref(), &changes);
    Ok(())
}

/// The recorded StackSet's teardown: its instances, then the set. None for a deployment
/// without one.
fn plan_stack_set<'a>(
    target: &'a Target,
    seen: &Seen,
) -> Result<Option<(&'a str, StackSetTeardown)>> {
    let Some(set) = target.stack_set() else { return Ok(None) };
    let planned = plan_stack_set_teardown(&seen.spec, &set.name, seen.stack_set.as_ref());
    planned
        .map(|p| Some((set.name.as_str(), p)))
        .map_err(|c| Error::Conflict(format!("teardown changed nothing: {c}")))
}

/// Removes the stack set's instances, then the set; prints what changed.
async fn remove_stack_set(
    ctx: &Context,
    admin: &Session,
    (name, plan): (&str, &StackSetTeardown),
    changes: &mut Vec<Change>,
) -> Result<()> {
    let region = admin.region.clone();
    let none = |_: &[AccountId]| Ok(());
    let opts = admin::StackSetApply {
        region: &region,
        tags: &[],
        wait: admin::OperationWait {
            timeout: std::time::Duration::from_secs(admin::OPERATION_TIMEOUT_SECS),
            printer: &ctx.printer,
        },
        adding: &none,
        removed: &none,
    };
    admin::apply_teardown(admin, name, plan, opts, changes).await
}

/// Every replica goes before its primary (AWS deletes a primary only once it has none): those
/// of the key, and those of the keys rotate retired.
fn plan_replicas(seen: &Seen) -> Result<Vec<(&ReplicaSet, Vec<RegionDrop>)>> {
    let conflict =
        |c: Vec<String>| Error::Conflict(format!("teardown changed nothing: {}", c.join("; ")));
    seen.replicas
        .iter()
        .map(|set| {
            let planned = plan_regions(&seen.spec, set.primary.as_deref(), &[], &set.regions);
            Ok((set, planned.map_err(conflict)?.1))
        })
        .collect()
}

/// Removes each replica set's aliases and replicas; stops at the first error. Returns each
/// replica's deletion.
async fn apply_replicas(
    ctx: &Context,
    owner: &Session,
    replicas: Vec<(&ReplicaSet, Vec<RegionDrop>)>,
    window: PendingWindow,
    changes: &mut Vec<Change>,
) -> Result<Vec<KeyDeletion>> {
    let mut deletions = Vec::new();
    for (set, drops) in replicas {
        let opts = RegionApply {
            alias: &set.alias,
            tags: &[],
            window,
            wait: Propagation { until: std::time::Instant::now(), printer: &ctx.printer },
        };
        let primary = set.primary.as_deref().unwrap_or_default();
        let done =
            owner::apply_regions(owner, primary, &(Vec::new(), drops), opts, changes).await?;
        deletions.extend(done.into_iter().map(|(arn, date)| KeyDeletion { arn, date }));
    }
    Ok(deletions)
}

/// Marks the record torn down, keeping when KMS deletes each key (scheduled by this run, or
/// found pending deletion), so that `restore` can undo it and a new setup can start afresh.
fn mark_torn_down(
    ctx: &Context,
    target: &Target,
    seen: &Seen,
    mut deletions: Vec<KeyDeletion>,
) -> Result<()> {
    let Some(record) = &target.record else {
        return Ok(());
    };
    let read = [seen.keys.at_alias.as_ref(), seen.keys.recorded.as_ref()]
        .into_iter()
        .flatten()
        .chain(seen.retired.iter().map(|(_, k)| k));
    for key in read {
        if let Some(date) = &key.deletion_date
            && !deletions.iter().any(|d| d.arn == key.arn)
        {
            deletions.push(KeyDeletion { arn: key.arn.clone(), date: date.clone() });
        }
    }
    let mut raw = record.raw.clone();
    raw.torn_down = Some(TornDown { at: crate::writes::now(), deletions });
    Ok(raw.save(&ctx.config)?)
}

impl Target {
    /// Whether the recorded deployment adopted a key kmsxacct did not create.
    fn adopted(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.raw.adopted)
    }
}

/// Everything teardown read, and the spec built from the accounts it learnt.
struct Seen {
    spec: GrantSpec,
    keys: DeploymentKeys,
    /// The replicas of the key, then those of each key rotate retired.
    replicas: Vec<ReplicaSet>,
    retired: Vec<(String, KeyState)>,
    users: Vec<(AccountId, Option<RoleState>)>,
    /// The recorded StackSet as read in the administrator account.
    stack_set: Option<StackSetState>,
}

/// A multi-Region key's replica regions as read: the alias that leads to it and its replica in
/// each.
struct ReplicaSet {
    alias: String,
    primary: Option<String>,
    regions: Vec<RegionSeen>,
}

impl Seen {
    fn view(&self, adopted: bool) -> TeardownSeen<'_> {
        TeardownSeen { keys: &self.keys, retired: &self.retired, users: &self.users, adopted }
    }
}

/// Reads every side at once, then learns the accounts from what it read (STS only for what is
/// missing).
async fn read(ctx: &Context, target: &Target, sides: &Sides) -> Result<Seen> {
    let role_reads =
        sides.users.iter().map(|u| user::read_role(u, target.role.as_str(), true)).collect();
    let (keys, retired, roles, stack_set) = tokio::join!(
        read_keys(target, &sides.owner),
        read_retired(target, &sides.owner),
        ctx.bounded(role_reads),
        target.read_stack_set(sides),
    );
    let keys = keys?;
    let roles: Vec<Option<RoleState>> = roles.into_iter().collect::<Result<_>>()?;
    let role_arns: Vec<Option<&str>> =
        roles.iter().map(|r| r.as_ref().map(|r| r.arn.as_str())).collect();
    let users = sides.user_accounts(ctx, &role_arns).await?;
    let owner_account = sides.owner_account(keys.at_alias.as_ref()).await?;
    sides.check_distinct(&owner_account, &users)?;
    target.check_accounts(&owner_account, &users)?;
    let spec = match target.stack_set() {
        Some(_) => target.spec(sides, owner_account, target.fleet_accounts()),
        None => target.spec(sides, owner_account, users.clone()),
    };
    let primary = keys.at_alias.as_ref().or(keys.recorded.as_ref()).map(|k| k.arn.clone());
    let sets = std::iter::once((spec.alias.to_string(), primary))
        .chain(target.retired_keys().map(|r| (r.alias.clone(), Some(r.arn.clone()))))
        .map(|(alias, primary)| async {
            let regions = (&[][..], &spec.replica_regions[..]);
            let seen = owner::read_regions(&sides.owner, &alias, primary.as_deref(), regions);
            Ok::<_, Error>(ReplicaSet { regions: seen.await?.1, alias, primary })
        });
    let replicas = futures_util::future::try_join_all(sets).await?;
    Ok(Seen {
        spec,
        replicas,
        keys,
        retired: retired?,
        users: users.into_iter().zip(roles).collect(),
        stack_set: stack_set?,
    })
}

/// The key behind the alias, and the recorded key when the alias is gone (or when it is the
/// adopted key the alias still points at).
async fn read_keys(target: &Target, owner: &Session) -> Result<DeploymentKeys> {
    let adopted = target.adopted();
    let reads = KeyReads { policy: adopted, ..KeyReads::TEARDOWN };
    let recorded = target.recorded_key();
    let mut keys =
        owner::read_deployment_keys(owner, target.alias.as_str(), recorded, reads).await?;
    if adopted && keys.at_alias.as_ref().is_some_and(|k| Some(k.arn.as_str()) == recorded) {
        keys.recorded = keys.at_alias.clone();
    }
    Ok(keys)
}

/// Keys an earlier rotate retired (still readable, not yet scheduled for deletion), all at once.
async fn read_retired(target: &Target, owner: &Session) -> Result<Vec<(String, KeyState)>> {
    let reads = target.retired_keys().map(|r| async move {
        let key = owner::read_key(owner, &r.arn, KeyReads::TEARDOWN).await?;
        Ok::<_, Error>(key.map(|k| (r.alias.clone(), k)))
    });
    let keys = futures_util::future::try_join_all(reads).await?;
    Ok(keys.into_iter().flatten().collect())
}

/// Carries out the plan: the alias, the key and each role at once (they are independent), then
/// the retired keys. Returns the key's deletion date and what changed.
async fn apply(
    ctx: &Context,
    sides: &Sides,
    spec: &GrantSpec,
    plan: &TeardownPlan,
    window: PendingWindow,
) -> Result<(Vec<KeyDeletion>, Vec<Change>)> {
    let owner = &sides.owner;
    let user_work = sides
        .users
        .iter()
        .zip(&plan.users)
        .map(|(session, plan)| user::apply_teardown(session, spec.role.as_str(), plan))
        .collect();
    let (alias, key, user_results) = tokio::join!(
        apply_alias(owner, spec, &plan.owner),
        apply_key(owner, &plan.owner, window),
        ctx.bounded(user_work),
    );
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut collect = |(result, c): (Result<()>, Vec<Change>)| {
        changes.extend(c);
        if let Err(e) = result {
            errors.push(e.to_string());
        }
    };
    let mut deletions = Vec::new();
    let (date, key_changes) = key;
    let key_result = date.map(|d| deletions.extend(d));
    collect(alias);
    collect((key_result, key_changes));
    collect(apply_retired(owner, &plan.retired, window, &mut deletions).await);
    user_results.into_iter().for_each(collect);
    ctx.printer.changes(&changes);
    if errors.is_empty() {
        Ok((deletions, changes))
    } else {
        Err(Error::Failed(format!(
            "teardown did not finish ({}); run it again to finish",
            errors.join("; ")
        )))
    }
}

/// Deletes the alias, or for an adopted key takes kmsxacct's statement out of its policy.
async fn apply_alias(
    owner: &Session,
    spec: &GrantSpec,
    plan: &OwnerTeardown,
) -> (Result<()>, Vec<Change>) {
    let mut changes = Vec::new();
    let write = if plan.delete_alias {
        Write::DeleteAlias { alias: spec.alias.as_str() }
    } else if let Some((arn, policy)) = &plan.strip_grant {
        Write::PutKeyPolicy {
            key_arn: arn,
            policy,
            note: Some("kmsxacct's statement removed; the adopted key and alias stay"),
        }
    } else {
        return (Ok(()), changes);
    };
    let result = apply_to(&mut changes, owner, write).await.map(drop);
    (result, changes)
}

/// Schedules the key's deletion; returns its deletion date.
async fn apply_key(
    owner: &Session,
    plan: &OwnerTeardown,
    window: PendingWindow,
) -> (Result<Option<KeyDeletion>>, Vec<Change>) {
    let mut changes = Vec::new();
    let Some(key_arn) = &plan.schedule_key_deletion else {
        return (Ok(None), changes);
    };
    let write = Write::ScheduleKeyDeletion { key_arn, days: window.days() };
    let result = apply_to(&mut changes, owner, write).await;
    (result.map(|d| deletion(key_arn, &d)), changes)
}

/// The deletion a ScheduleKeyDeletion made.
fn deletion(key_arn: &str, done: &Done) -> Option<KeyDeletion> {
    let date = done.deletion_date()?.to_string();
    Some(KeyDeletion { arn: key_arn.to_string(), date })
}

/// Keys retired by rotate: their retirement alias, then the key. Stops at the first error.
async fn apply_retired(
    owner: &Session,
    retired: &[(Option<String>, Option<String>)],
    window: PendingWindow,
    deletions: &mut Vec<KeyDeletion>,
) -> (Result<()>, Vec<Change>) {
    let mut changes = Vec::new();
    for (alias, key) in retired {
        let writes = alias.iter().map(|a| Write::DeleteAlias { alias: a }).chain(
            key.iter().map(|k| Write::ScheduleKeyDeletion { key_arn: k, days: window.days() }),
        );
        for write in writes {
            match apply_to(&mut changes, owner, write).await {
                Ok(done) => deletions.extend(key.as_deref().and_then(|k| deletion(k, &done))),
                Err(e) => return (Err(e), changes),
            }
        }
    }
    (Ok(()), changes)
}

/// The JSON report.
fn report(ctx: &Context, changed: bool, key_deletion_date: Option<&str>, changes: &[Change]) {
    ctx.printer.json(
        &Report { command: "teardown", changed, key_deletion_date, changes },
        ctx.calls.snapshot(),
    );
}
