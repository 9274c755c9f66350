//! `kmsxacct setup`: create or converge the deployment in every account, then record it.

use super::{Context, DEFAULT_ALIAS, GrantSettings, existing_record, open, role_name, spec_from};
use crate::error::{Error, Result};
use crate::names::{AccountId, AliasName, PendingWindow, Region, RoleName};
use crate::output::Change;
use crate::owner::{KeyJournal, KeyReads, OwnerApply};
use crate::plan::{self, deployment_tags};
use crate::policy::build::{AliasCondition, GrantTo, KeyAction};
use crate::policy::matching::Arn;
use crate::record::{Deployment, UserRecord};
use crate::{owner, user};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Flags of `setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    /// AWS profile of the account that owns the key.
    #[arg(long, value_name = "PROFILE")]
    pub owner: String,
    /// AWS profile of an account that uses the key; repeat for several accounts. A user account
    /// dropped since the last setup loses its grant and its role.
    #[arg(long = "user", value_name = "PROFILE", required = true)]
    pub users: Vec<String>,
    /// Alias of the key, `NAME` or `alias/NAME` (1 to 250 of a-z A-Z 0-9 / _ -, not under alias/aws/).
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: AliasName,
    /// Role to create in each user account [default: kmsxacct-<alias name with / as ->, cut to 64].
    #[arg(long)]
    pub role: Option<RoleName>,
    /// Region of the key [default: the owner profile's region].
    #[arg(long)]
    pub region: Option<Region>,
    /// Days teardown asks KMS to wait before deleting the key, 7 to 30 (recorded for teardown).
    #[arg(long, value_name = "DAYS", default_value = "7")]
    pub pending_window_days: PendingWindow,
    /// Whom the key policy names: the user account's root (its IAM policies decide), or the role
    /// itself (least privilege; the role is created first).
    #[arg(long, value_enum, default_value_t = GrantTo::Account)]
    pub grant_to: GrantTo,
    /// What the user accounts may do, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = KeyAction::DEFAULT)]
    pub actions: Vec<KeyAction>,
    /// The role policy's alias condition: kms:ResourceAliases (the key carries the alias) or
    /// kms:RequestAlias (the request names the alias).
    #[arg(long, value_enum, default_value_t = AliasCondition::ResourceAliases)]
    pub condition: AliasCondition,
    /// A principal ARN of a user account allowed to assume the role there; repeat. Default: any
    /// principal of the user account that its IAM policies allow.
    #[arg(long = "trust", value_name = "ARN")]
    pub trust: Vec<String>,
    /// Seconds to keep retrying while KMS does not yet see a just-created role (--grant-to role).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub wait: u64,
    /// Show what would change (as `kmsxacct plan` does) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Turn on KMS's automatic yearly (or --rotation-period-days) rotation of the key material.
    #[arg(long)]
    pub enable_key_rotation: bool,
    /// Days between automatic rotations, 90 to 2560 (KMS's bounds) [default: 365].
    #[arg(long, value_name = "DAYS", requires = "enable_key_rotation", value_parser = clap::value_parser!(u16).range(90..=2560))]
    pub rotation_period_days: Option<u16>,
    /// Use an alias (and its key) that kmsxacct did not create: add the grant statement to the
    /// key's policy and tag nothing; teardown then takes back only what kmsxacct added.
    #[arg(long)]
    pub adopt: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    changed: bool,
    owner_account: String,
    user_accounts: Vec<String>,
    key_arn: &'a str,
    role_arns: &'a [String],
    alias_arn: String,
    record: String,
    changes: &'a [Change],
}

/// Checks `--trust`: each must be an IAM principal ARN in one of the user accounts.
fn check_trust(trust: &[String], users: &[AccountId]) -> Result<()> {
    for t in trust {
        let ok = Arn::parse(t).is_some_and(|a| {
            a.service == "iam"
                && (a.resource == "root"
                    || a.resource.starts_with("role/")
                    || a.resource.starts_with("user/"))
                && users.iter().any(|u| u.as_str() == a.account)
        });
        if !ok {
            return Err(Error::Input(format!(
                "invalid --trust '{t}' (expected an IAM role, user or root ARN in one of the user accounts: {})",
                users
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// Runs setup.
pub async fn run(ctx: &Context, args: &SetupArgs) -> Result<()> {
    let started = Instant::now();
    let previous = existing_record(&ctx.config)?;
    let role = role_name(args.role.as_ref(), &args.alias);
    if let Some(prev) = &previous {
        let p = &prev.raw;
        if p.alias != args.alias.as_str()
            || p.owner_profile != args.owner
            || p.role_name != role.as_str()
        {
            return Err(Error::Input(format!(
                "'{}' records another deployment ({} from profile {}, role {}); pass --config PATH to keep this one apart",
                ctx.config.display(),
                p.alias,
                p.owner_profile,
                p.role_name
            )));
        }
    }
    // User accounts recorded before but not given now: their grant and role go.
    let removed: Vec<UserRecord> = previous
        .iter()
        .flat_map(|p| p.raw.users.iter())
        .filter(|u| !args.users.contains(&u.profile))
        .cloned()
        .collect();
    let all_profiles: Vec<String> = args
        .users
        .iter()
        .cloned()
        .chain(removed.iter().map(|u| u.profile.clone()))
        .collect();
    ctx.printer.step("reading the owner and user accounts");
    let sides = open(ctx, &args.owner, &all_profiles, args.region.as_ref()).await?;
    let recorded_key = previous
        .as_ref()
        .map(|r| r.raw.key_arn.clone())
        .filter(|arn| !arn.is_empty());
    let kept = args.users.len();

    // Learn every account and read every account at once (the reads need no account id); plan
    // everything, and stop before any change if anything is in conflict.
    let role_reads = sides
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| user::read_role(u, role.as_str(), i >= kept))
        .collect();
    let (ids, owner_state, roles) = tokio::join!(
        sides.identify(ctx),
        async {
            let at_alias =
                owner::read_key(&sides.owner, args.alias.as_str(), KeyReads::SETUP).await?;
            let recorded = match (&at_alias, &recorded_key) {
                (None, Some(arn)) => owner::read_key(&sides.owner, arn, KeyReads::SETUP).await?,
                _ => None,
            };
            Ok::<_, Error>((at_alias, recorded))
        },
        ctx.bounded(role_reads),
    );
    let (owner_account, accounts) = ids?;
    let (at_alias, recorded) = owner_state?;
    let roles: Vec<_> = roles.into_iter().collect::<Result<_>>()?;
    for (u, now) in removed.iter().zip(&accounts[kept..]) {
        if u.account != now.as_str() {
            return Err(Error::Input(format!(
                "the record says profile '{}' is account {}, but it is now account {now}; fix the profile or pass --config for another record",
                u.profile, u.account
            )));
        }
    }
    let users: Vec<AccountId> = accounts[..kept].to_vec();
    check_trust(&args.trust, &users)?;
    let settings = GrantSettings {
        grant_to: args.grant_to,
        actions: args.actions.clone(),
        condition: args.condition,
        trust: args.trust.clone(),
    };
    let spec = &spec_from(
        sides.region(),
        owner_account.clone(),
        users.clone(),
        args.alias.clone(),
        role.clone(),
        &settings,
    );
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

    let adopt = args.adopt || previous.as_ref().is_some_and(|r| r.raw.adopted);
    let owner_plan =
        plan::plan_owner_setup(spec, at_alias.as_ref(), recorded.as_ref(), &found, adopt);
    let mut conflicts: Vec<String> = owner_plan.as_ref().err().cloned().into_iter().collect();
    let mut user_plans = Vec::new();
    for (account, role_state) in users.iter().zip(&roles[..kept]) {
        match plan::plan_user_setup(spec, account, role_state.as_ref()) {
            Ok(p) => user_plans.push(p),
            Err(c) => conflicts.push(c),
        }
    }
    let mut removals = Vec::new();
    for (account, role_state) in accounts[kept..].iter().zip(&roles[kept..]) {
        match plan::plan_user_teardown(spec, account, role_state.as_ref()) {
            Ok(p) => removals.push(p),
            Err(c) => conflicts.push(c),
        }
    }
    let owner_plan = match owner_plan {
        Ok(p) if conflicts.is_empty() => p,
        _ => {
            return Err(Error::Conflict(format!(
                "setup changed nothing: {}",
                conflicts.join("; ")
            )));
        }
    };

    if args.dry_run {
        return super::plan::show(
            ctx,
            &super::plan::PlanView {
                spec,
                owner: &sides.owner,
                key_now: at_alias.as_ref(),
                owner_plan: &owner_plan,
                users: sides.users[..kept]
                    .iter()
                    .zip(&users)
                    .zip(&roles[..kept])
                    .zip(&user_plans)
                    .map(|(((s, a), r), p)| (s, a, r.as_ref(), p))
                    .collect(),
                removals: sides.users[kept..].iter().zip(&removals).collect(),
            },
        );
    }

    // Record the deployment before changing anything, and each new ARN the moment it exists,
    // so that a failed or interrupted run leaves nothing the next run cannot find.
    let record = Mutex::new(Deployment {
        owner_profile: args.owner.clone(),
        owner_account: spec.owner.to_string(),
        region: spec.region.to_string(),
        alias: spec.alias.to_string(),
        role_name: role.to_string(),
        grant_to: args.grant_to,
        actions: args.actions.clone(),
        condition: args.condition,
        trust: args.trust.clone(),
        key_arn: match &owner_plan.key {
            plan::KeyPlan::Existing { arn, .. } => arn.clone(),
            plan::KeyPlan::Create { .. } => String::new(),
        },
        pending_window_days: args.pending_window_days.days() as u8,
        key_creation_pending: false,
        users: args
            .users
            .iter()
            .zip(&users)
            .zip(&user_plans)
            .map(|((profile, account), plan)| UserRecord {
                profile: profile.clone(),
                account: account.to_string(),
                role_arn: plan.existing_arn.clone().unwrap_or_default(),
            })
            .collect(),
        adopted: adopt
            && at_alias
                .as_ref()
                .is_some_and(|k| !plan::is_ours(&k.tags, spec)),
        last_verify: previous.as_ref().and_then(|r| r.raw.last_verify.clone()),
        previous_keys: previous
            .as_ref()
            .map(|r| r.raw.previous_keys.clone())
            .unwrap_or_default(),
    });
    let save = |update: &dyn Fn(&mut Deployment)| -> Result<()> {
        let mut r = record
            .lock()
            .map_err(|_| Error::Failed("record lock poisoned".into()))?;
        update(&mut r);
        r.save(&ctx.config).map_err(Error::from)
    };
    save(&|_| {})?;

    ctx.printer.step("applying changes in every account");
    let tags = deployment_tags(spec);
    let key_creating = || save(&|r| r.key_creation_pending = true);
    let key_created = |arn: &str| {
        save(&|r| {
            r.key_arn = arn.to_string();
            r.key_creation_pending = false;
        })
    };
    let apply_users = async {
        let work = sides
            .users
            .iter()
            .zip(&user_plans)
            .enumerate()
            .map(|(i, (session, plan))| {
                let tags = &tags;
                let role = &role;
                let save = &save;
                async move {
                    let mut changes = Vec::new();
                    let arn = user::apply_setup(
                        session,
                        role.as_str(),
                        plan,
                        tags,
                        |arn| save(&|r| r.users[i].role_arn = arn.to_string()),
                        &mut changes,
                    )
                    .await;
                    (arn, changes)
                }
            })
            .collect();
        ctx.bounded(work).await
    };
    let apply_owner = async {
        let mut changes = Vec::new();
        let arn = owner::apply_setup(
            &sides.owner,
            &owner_plan,
            OwnerApply {
                alias: spec.alias.as_str(),
                tags: &tags,
                retire_window: args.pending_window_days,
                wait_until: started + Duration::from_secs(args.wait),
                printer: &ctx.printer,
            },
            KeyJournal {
                creating: &key_creating,
                created: &key_created,
            },
            &mut changes,
        )
        .await;
        (arn, changes)
    };
    // A key policy that names the roles needs them to exist first; otherwise both sides at once.
    let apply_owner = async {
        let (arn, mut changes) = apply_owner.await;
        let arn = match (arn, args.enable_key_rotation) {
            (Ok(arn), true) => owner::ensure_key_rotation(
                &sides.owner,
                &arn,
                i32::from(args.rotation_period_days.unwrap_or(365)),
                &mut changes,
            )
            .await
            .map(|()| arn),
            (arn, _) => arn,
        };
        (arn, changes)
    };
    let ((key_arn, owner_changes), user_results) = match spec.grant_to {
        GrantTo::Role => {
            let users = apply_users.await;
            let owner = if users.iter().all(|(r, _)| r.is_ok()) {
                apply_owner.await
            } else {
                (
                    Err(Error::Failed("the roles were not all created".into())),
                    Vec::new(),
                )
            };
            (owner, users)
        }
        GrantTo::Account => tokio::join!(apply_owner, apply_users),
    };
    let mut changes: Vec<Change> = owner_changes;
    let mut errors: Vec<String> = Vec::new();
    let mut role_arns = Vec::new();
    for (result, user_changes) in user_results {
        changes.extend(user_changes);
        match result {
            Ok(arn) => role_arns.push(arn),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let key_arn = key_arn.map_err(|e| errors.push(e.to_string())).ok();
    // Users dropped from the deployment: their roles go once the key policy no longer names them.
    if errors.is_empty() {
        let work = sides.users[kept..]
            .iter()
            .zip(&removals)
            .map(|(session, plan)| user::apply_teardown(session, role.as_str(), plan))
            .collect();
        for (result, c) in ctx.bounded(work).await {
            changes.extend(c);
            if let Err(e) = result {
                errors.push(e.to_string());
            }
        }
    }
    let key_arn = match key_arn {
        Some(k) if errors.is_empty() => k,
        _ => {
            ctx.printer.changes(&changes);
            return Err(Error::Failed(format!(
                "setup did not finish ({}); run it again to converge",
                errors.join("; ")
            )));
        }
    };
    save(&|r| {
        r.key_arn = key_arn.clone();
        for (u, arn) in r.users.iter_mut().zip(&role_arns) {
            u.role_arn = arn.clone();
        }
    })?;

    let changed = changes.iter().any(Change::is_change);
    ctx.printer.changes(&changes);
    let alias_arn = spec.alias.arn(&spec.region, &spec.owner);
    if changed {
        ctx.printer.line(format!(
            "setup complete: {key_arn} reached through {alias_arn} by {} user account(s); recorded in {}",
            users.len(),
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
            user_accounts: users.iter().map(|u| u.to_string()).collect(),
            key_arn: &key_arn,
            role_arns: &role_arns,
            alias_arn,
            record: ctx.config.display().to_string(),
            changes: &changes,
        },
        ctx.calls.snapshot(),
    );
    Ok(())
}
