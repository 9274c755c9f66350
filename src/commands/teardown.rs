//! `kmsxacct teardown`: remove what setup made, and only that.

use super::{Context, Target, TargetArgs, open, role_name};
use crate::error::{Error, Result};
use crate::names::PendingWindow;
use crate::output::Change;
use crate::owner::KeyReads;
use crate::plan::plan_teardown;
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
    let sides = open(
        ctx,
        &target.owner_profile,
        &target.user_profile,
        target.region.as_ref(),
    )
    .await?;
    let role = role_name(target.role.as_ref(), &target.alias);
    let recorded_key = target
        .record
        .as_ref()
        .map(|r| r.raw.key_arn.clone())
        .filter(|arn| !arn.is_empty());

    // Learn the accounts and read both sides at once; plan; refuse before any change.
    let (spec, keys, role_state) = tokio::join!(
        sides.identify(&target.alias),
        async {
            let at_alias =
                owner::read_key(&sides.owner, target.alias.as_str(), KeyReads::TEARDOWN).await?;
            let recorded = match (&at_alias, &recorded_key) {
                (None, Some(arn)) => owner::read_key(&sides.owner, arn, KeyReads::TEARDOWN).await?,
                _ => None,
            };
            Ok::<_, Error>((at_alias, recorded))
        },
        user::read_role(&sides.user, role.as_str(), true),
    );
    let spec = &spec?;
    let keys = keys?;
    let role_state = role_state?;
    target.check_accounts(spec)?;
    let plan = plan_teardown(
        spec,
        role.as_str(),
        keys.0.as_ref(),
        keys.1.as_ref(),
        role_state.as_ref(),
    )
    .map_err(|conflicts| {
        Error::Conflict(format!(
            "teardown changed nothing: {}",
            conflicts.join("; ")
        ))
    })?;

    if plan.is_noop() {
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

    // The alias and the key are independent: delete one and schedule the other at once.
    let mut alias_changes = Vec::new();
    let mut key_changes = Vec::new();
    let mut user_changes = Vec::new();
    let (alias_result, key_result, user_result) = tokio::join!(
        async {
            if plan.delete_alias {
                owner::delete_alias(&sides.owner, spec.alias.as_str(), &mut alias_changes).await
            } else {
                Ok(())
            }
        },
        async {
            match &plan.schedule_key_deletion {
                Some(arn) => {
                    owner::schedule_deletion(&sides.owner, arn, window.days(), &mut key_changes)
                        .await
                        .map(Some)
                }
                None => Ok(None),
            }
        },
        async {
            match &plan.delete_role {
                Some(arn) => {
                    user::delete_role(
                        &sides.user,
                        role.as_str(),
                        arn,
                        plan.delete_role_policy,
                        &mut user_changes,
                    )
                    .await
                }
                None => Ok(()),
            }
        },
    );
    let owner_changes: Vec<Change> = alias_changes.into_iter().chain(key_changes).collect();
    let owner_result = alias_result.and(key_result);
    let changes: Vec<Change> = owner_changes.into_iter().chain(user_changes).collect();
    ctx.printer.changes(&changes);
    let deletion_date = match (owner_result, user_result) {
        (Ok(date), Ok(())) => date,
        (o, u) => {
            let errors: Vec<String> = [o.err(), u.err()]
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .collect();
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
