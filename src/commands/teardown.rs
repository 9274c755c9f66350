//! `kmsxacct teardown`: remove what setup made, and only that.

use super::{Context, Target, TargetArgs};
use crate::error::{Error, Result};
use crate::names::PendingWindow;
use crate::output::Change;
use crate::owner::KeyReads;
use crate::plan::{
    OwnerTeardown, UserTeardown, plan_owner_teardown, plan_retired_teardown, plan_user_teardown,
};
use crate::writes::{Write, apply_to};
use crate::{owner, user};
use serde::Serialize;

/// Flags of `teardown`.
#[derive(Debug, Clone, clap::Args)]
pub struct TeardownArgs {
    /// Which deployment; without these flags, the record (--config) says.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Days KMS waits before deleting the key, 7 to 30 [default: the record's, else 7].
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

/// Runs teardown.
pub async fn run(ctx: &Context, args: &TeardownArgs) -> Result<()> {
    let target = Target::resolve(&args.target, &ctx.config)?;
    let window = args
        .pending_window_days
        .or(target.record.as_ref().map(|r| r.pending_window))
        .unwrap_or(PendingWindow::DEFAULT);
    let sides = target.open(ctx).await?;
    ctx.printer
        .step("reading what this deployment left in every account");
    let recorded_key = target.recorded_key().map(String::from);
    let adopted = target.record.as_ref().is_some_and(|r| r.raw.adopted);
    let key_reads = KeyReads {
        policy: adopted,
        ..KeyReads::TEARDOWN
    };

    // Learn the accounts and read every side at once; plan; refuse before any change.
    let role_reads = sides
        .users
        .iter()
        .map(|u| user::read_role(u, target.role.as_str(), true))
        .collect();
    let (keys, roles) = tokio::join!(
        async {
            let at_alias = owner::read_key(&sides.owner, target.alias.as_str(), key_reads).await?;
            let recorded = match (&at_alias, &recorded_key) {
                (None, Some(arn)) => owner::read_key(&sides.owner, arn, key_reads).await?,
                (Some(k), Some(arn)) if adopted && k.arn == *arn => Some(k.clone()),
                _ => None,
            };
            // Keys an earlier rotate retired (still readable, not yet scheduled for deletion).
            let mut retired = Vec::new();
            for r in target
                .record
                .iter()
                .flat_map(|r| r.raw.previous_keys.iter())
                .filter(|k| k.deletion_scheduled.is_none())
            {
                if let Some(k) = owner::read_key(&sides.owner, &r.arn, KeyReads::TEARDOWN).await? {
                    retired.push((r.alias.clone(), k));
                }
            }
            Ok::<_, Error>((at_alias, recorded, retired))
        },
        ctx.bounded(role_reads),
    );
    let keys = keys?;
    let roles: Vec<_> = roles.into_iter().collect::<Result<_>>()?;
    let role_arns: Vec<Option<&str>> = roles
        .iter()
        .map(|r| r.as_ref().map(|r| r.arn.as_str()))
        .collect();
    let users = sides.user_accounts(ctx, &role_arns).await?;
    let owner_account = sides.owner_account(keys.0.as_ref()).await?;
    sides.check_distinct(&owner_account, &users)?;
    target.check_accounts(&owner_account, &users)?;
    let spec = &target.spec(owner_account, users.clone(), sides.region());

    let mut conflicts = Vec::new();
    let owner_plan = plan_owner_teardown(spec, keys.0.as_ref(), keys.1.as_ref(), adopted)
        .map_err(|c| conflicts.push(c))
        .unwrap_or_default();
    let retired_plans: Vec<(Option<String>, Option<String>)> = keys
        .2
        .iter()
        .filter_map(|(alias, k)| match plan_retired_teardown(spec, alias, k) {
            Ok(p) => Some(p),
            Err(c) => {
                conflicts.push(c);
                None
            }
        })
        .collect();
    let user_plans: Vec<UserTeardown> = users
        .iter()
        .zip(&roles)
        .map(|(u, r)| {
            plan_user_teardown(spec, u, r.as_ref())
                .map_err(|c| conflicts.push(c))
                .unwrap_or_default()
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(Error::Conflict(format!(
            "teardown changed nothing: {}",
            conflicts.join("; ")
        )));
    }

    if owner_plan == OwnerTeardown::default()
        && user_plans.iter().all(|p| *p == UserTeardown::default())
        && retired_plans
            .iter()
            .all(|(a, k)| a.is_none() && k.is_none())
    {
        ctx.printer
            .line("teardown: nothing to do; no role, alias or key of this deployment is left");
        ctx.printer.json(
            &Report {
                command: "teardown",
                changed: false,
                key_deletion_date: None,
                changes: &[],
            },
            ctx.calls.snapshot(),
        );
        return Ok(());
    }

    ctx.printer
        .step("removing the roles, the alias and the key");
    // The alias, the key and each role are independent: remove them all at once.
    let mut alias_changes = Vec::new();
    let mut key_changes = Vec::new();
    let user_work = sides
        .users
        .iter()
        .zip(&user_plans)
        .map(|(session, plan)| user::apply_teardown(session, target.role.as_str(), plan))
        .collect();
    let (alias_result, key_result, user_results) = tokio::join!(
        async {
            if owner_plan.delete_alias {
                let write = Write::DeleteAlias {
                    alias: spec.alias.as_str(),
                };
                apply_to(&mut alias_changes, &sides.owner, write)
                    .await
                    .map(drop)
            } else if let Some((arn, policy)) = &owner_plan.strip_grant {
                let write = Write::PutKeyPolicy {
                    key_arn: arn,
                    policy,
                    note: Some("kmsxacct's statement removed; the adopted key and alias stay"),
                };
                apply_to(&mut alias_changes, &sides.owner, write)
                    .await
                    .map(drop)
            } else {
                Ok(())
            }
        },
        async {
            match &owner_plan.schedule_key_deletion {
                Some(arn) => {
                    let write = Write::ScheduleKeyDeletion {
                        key_arn: arn,
                        days: window.days(),
                    };
                    apply_to(&mut key_changes, &sides.owner, write)
                        .await
                        .map(|d| d.deletion_date().map(String::from))
                }
                None => Ok(None),
            }
        },
        ctx.bounded(user_work),
    );
    let mut changes: Vec<Change> = alias_changes.into_iter().chain(key_changes).collect();
    let mut errors: Vec<String> = Vec::new();
    // Keys retired by rotate: their retirement alias, then the key.
    for (alias, key) in &retired_plans {
        if let Some(a) = alias
            && let Err(e) =
                apply_to(&mut changes, &sides.owner, Write::DeleteAlias { alias: a }).await
        {
            errors.push(e.to_string());
        }
        if let Some(k) = key {
            let write = Write::ScheduleKeyDeletion {
                key_arn: k,
                days: window.days(),
            };
            if let Err(e) = apply_to(&mut changes, &sides.owner, write).await {
                errors.push(e.to_string());
            }
        }
    }
    for (result, c) in user_results {
        changes.extend(c);
        if let Err(e) = result {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = &alias_result {
        errors.push(e.to_string());
    }
    ctx.printer.changes(&changes);
    let deletion_date = match key_result {
        Ok(date) if errors.is_empty() => date,
        other => {
            if let Err(e) = other {
                errors.push(e.to_string());
            }
            return Err(Error::Failed(format!(
                "teardown did not finish ({}); run it again to finish",
                errors.join("; ")
            )));
        }
    };
    match &deletion_date {
        Some(date) => ctx.printer.line(format!(
            "teardown complete: the key will be deleted on {date} (cancel with kms:CancelKeyDeletion until then)"
        )),
        None => ctx.printer.line("teardown complete"),
    }
    ctx.printer.json(
        &Report {
            command: "teardown",
            changed: true,
            key_deletion_date: deletion_date.as_deref(),
            changes: &changes,
        },
        ctx.calls.snapshot(),
    );
    Ok(())
}
