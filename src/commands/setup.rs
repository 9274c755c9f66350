//! `kmsxacct setup`: create or converge the deployment in both accounts, then record it.

use super::{Context, DEFAULT_ALIAS, existing_record, open, role_name};
use crate::error::{Error, Result};
use crate::names::{AliasName, PendingWindow, Region, RoleName};
use crate::output::Change;
use crate::owner::KeyReads;
use crate::plan::{self, deployment_tags};
use crate::record::Deployment;
use crate::{owner, user};
use serde::Serialize;
use std::sync::Mutex;

/// Flags of `setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    /// AWS profile of the account that owns the key.
    #[arg(long, value_name = "PROFILE")]
    pub owner: String,
    /// AWS profile of the account that uses the key.
    #[arg(long, value_name = "PROFILE")]
    pub user: String,
    /// Alias of the key, `NAME` or `alias/NAME` (1 to 250 of a-z A-Z 0-9 / _ -, not under alias/aws/).
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: AliasName,
    /// Role to create in the user account [default: kmsxacct-<alias name with / as ->, cut to 64].
    #[arg(long)]
    pub role: Option<RoleName>,
    /// Region of the key [default: the owner profile's region].
    #[arg(long)]
    pub region: Option<Region>,
    /// Days teardown asks KMS to wait before deleting the key, 7 to 30 (recorded for teardown).
    #[arg(long, value_name = "DAYS", default_value = "7")]
    pub pending_window_days: PendingWindow,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    changed: bool,
    owner_account: String,
    user_account: String,
    key_arn: &'a str,
    role_arn: &'a str,
    alias_arn: String,
    record: String,
    changes: &'a [Change],
}

/// Runs setup.
pub async fn run(ctx: &Context, args: &SetupArgs) -> Result<()> {
    let previous = existing_record(&ctx.config)?;
    let role = role_name(args.role.as_ref(), &args.alias);
    if let Some(prev) = &previous {
        let p = &prev.raw;
        if p.alias != args.alias.as_str()
            || p.owner_profile != args.owner
            || p.user_profile != args.user
            || p.role_name != role.as_str()
        {
            return Err(Error::Input(format!(
                "'{}' records another deployment ({} from profile {} to profile {}, role {}); pass --config PATH to keep this one apart",
                ctx.config.display(),
                p.alias,
                p.owner_profile,
                p.user_profile,
                p.role_name
            )));
        }
    }
    let sides = open(ctx, &args.owner, &args.user, args.region.as_ref()).await?;
    let recorded_key = previous
        .as_ref()
        .map(|r| r.raw.key_arn.clone())
        .filter(|arn| !arn.is_empty());

    // Learn both accounts and read both accounts at once (the reads need no account id); plan
    // both, and stop before any change if either side is in conflict.
    let (spec, owner_state, role_state) = tokio::join!(
        sides.identify(&args.alias),
        async {
            let at_alias =
                owner::read_key(&sides.owner, args.alias.as_str(), KeyReads::SETUP).await?;
            let recorded = match (&at_alias, &recorded_key) {
                (None, Some(arn)) => owner::read_key(&sides.owner, arn, KeyReads::SETUP).await?,
                _ => None,
            };
            Ok::<_, Error>((at_alias, recorded))
        },
        user::read_role(&sides.user, role.as_str(), false),
    );
    let spec = &spec?;
    let (at_alias, recorded) = owner_state?;
    let role_state = role_state?;
    // A key recorded for another owner account is not ours to reuse.
    let recorded = recorded.filter(|_| {
        previous
            .as_ref()
            .is_some_and(|r| r.owner_account == spec.owner)
    });
    // A previous run that stopped between CreateKey and recording its answer may have left a
    // key: find it by its tags rather than create a second one.
    let found = if previous
        .as_ref()
        .is_some_and(|r| r.raw.key_creation_pending)
    {
        ctx.printer
            .note("a previous setup stopped while creating the key; looking for it by its tags");
        owner::find_deployment_keys(&sides.owner, spec).await?
    } else {
        Vec::new()
    };
    let owner_plan = plan::plan_owner_setup(spec, at_alias.as_ref(), recorded.as_ref(), &found);
    let user_plan = plan::plan_user_setup(spec, role.as_str(), role_state.as_ref());
    let (owner_plan, user_plan) = match (owner_plan, user_plan) {
        (Ok(o), Ok(u)) => (o, u),
        (o, u) => {
            let conflicts: Vec<String> = [o.err(), u.err()].into_iter().flatten().collect();
            return Err(Error::Conflict(format!(
                "setup changed nothing: {}",
                conflicts.join("; ")
            )));
        }
    };

    // Record the deployment before changing anything, and each new ARN the moment it exists,
    // so that a failed or interrupted run leaves nothing the next run cannot find.
    let record = Mutex::new(Deployment {
        owner_profile: args.owner.clone(),
        user_profile: args.user.clone(),
        owner_account: spec.owner.to_string(),
        user_account: spec.user.to_string(),
        region: spec.region.to_string(),
        alias: spec.alias.to_string(),
        role_name: role.to_string(),
        key_arn: match &owner_plan.key {
            plan::KeyPlan::Existing { arn, .. } => arn.clone(),
            plan::KeyPlan::Create { .. } => String::new(),
        },
        role_arn: user_plan.existing_arn.clone().unwrap_or_default(),
        pending_window_days: args.pending_window_days.days() as u8,
        key_creation_pending: false,
    });
    let save = |update: &dyn Fn(&mut Deployment)| -> Result<()> {
        let mut r = record
            .lock()
            .map_err(|_| Error::Failed("record lock poisoned".into()))?;
        update(&mut r);
        r.save(&ctx.config).map_err(Error::from)
    };
    save(&|_| {})?;

    let tags = deployment_tags(spec);
    let key_creating = || save(&|r| r.key_creation_pending = true);
    let key_created = |arn: &str| {
        save(&|r| {
            r.key_arn = arn.to_string();
            r.key_creation_pending = false;
        })
    };
    let mut owner_changes = Vec::new();
    let mut user_changes = Vec::new();
    let (key_arn, role_arn) = tokio::join!(
        owner::apply_setup(
            &sides.owner,
            spec.alias.as_str(),
            &owner_plan,
            &tags,
            args.pending_window_days,
            owner::KeyJournal {
                creating: &key_creating,
                created: &key_created,
            },
            &mut owner_changes,
        ),
        user::apply_setup(
            &sides.user,
            role.as_str(),
            &user_plan,
            &tags,
            |arn| save(&|r| r.role_arn = arn.to_string()),
            &mut user_changes,
        ),
    );
    let changes: Vec<Change> = owner_changes.into_iter().chain(user_changes).collect();
    let (key_arn, role_arn) = match (key_arn, role_arn) {
        (Ok(k), Ok(r)) => (k, r),
        (k, r) => {
            ctx.printer.changes(&changes);
            let errors: Vec<String> = [k.err(), r.err()]
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .collect();
            return Err(Error::Failed(format!(
                "setup did not finish ({}); run it again to converge",
                errors.join("; ")
            )));
        }
    };
    save(&|r| {
        r.key_arn = key_arn.clone();
        r.role_arn = role_arn.clone();
    })?;

    let changed = changes.iter().any(Change::is_change);
    ctx.printer.changes(&changes);
    if changed {
        ctx.printer.line(format!(
            "setup complete: {} reached through {}; recorded in {}",
            key_arn,
            spec.alias.arn(&spec.region, &spec.owner),
            ctx.config.display()
        ));
    } else {
        ctx.printer
            .line("setup: nothing to change; the deployment is already as it should be");
    }
    ctx.printer.json(
        &Report {
            command: "setup",
            changed,
            owner_account: spec.owner.to_string(),
            user_account: spec.user.to_string(),
            key_arn: &key_arn,
            role_arn: &role_arn,
            alias_arn: spec.alias.arn(&spec.region, &spec.owner),
            record: ctx.config.display().to_string(),
            changes: &changes,
        },
        ctx.calls.snapshot(),
    );
    Ok(())
}
