//! `kmsxacct setup`: create or converge the deployment in every account, then record it.

use super::plan::PlanView;
use super::{
    Context, DEFAULT_ALIAS, GrantArgs, Sides, existing_record, open, open_fleet, role_name,
    spec_from,
};
use crate::error::{Error, Result};
use crate::names::{AccountId, AliasName, PendingWindow, Region, RoleName};
use crate::output::Change;
use crate::owner::{KeyJournal, KeyReads, OwnerApply, RegionApply, read_regions};
use crate::plan::{
    self, DeploymentKeys, KeyPlan, KeyState, RegionDrop, RegionPlan, RegionSeen, RoleState,
    SetupPlan, SetupSeen, deployment_tags,
};
use crate::policy::build::{GrantSpec, GrantTo};
use crate::policy::matching::Arn;
use crate::record::{CheckedDeployment, Deployment, Journal, UserRecord};
use crate::writes::Propagation;
use crate::{owner, user};
use serde::Serialize;

mod stackset;
use std::time::{Duration, Instant};

/// Flags of `setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    /// AWS profile of the account that owns the key.
    #[arg(long, value_name = "PROFILE")]
    pub owner: String,
    /// AWS profile of an account that uses the key; repeat for several accounts. A user account
    /// dropped since the last setup loses its grant and its role.
    #[arg(long = "user", value_name = "PROFILE", required_unless_present = "stackset_admin")]
    pub users: Vec<String>,
    /// Roll the roles out to a fleet with a CloudFormation StackSet (self-managed permissions)
    /// administered from this profile's account, instead of one --user profile per account.
    /// Needs --org-id or --org-path, and --accounts or --accounts-file.
    #[arg(long, value_name = "PROFILE", conflicts_with_all = ["users", "trust", "adopt"])]
    pub stackset_admin: Option<String>,
    /// The StackSet's user accounts, comma-separated 12-digit ids. An account dropped since the
    /// last setup loses its instance (and its role).
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        requires = "stackset_admin",
        conflicts_with = "accounts_file"
    )]
    pub accounts: Vec<AccountId>,
    /// A file of the StackSet's user accounts: one id per line, `#` starts a comment.
    #[arg(long, value_name = "FILE", requires = "stackset_admin")]
    pub accounts_file: Option<std::path::PathBuf>,
    /// Seconds to wait for each StackSet operation; past that it goes on in AWS and a re-run
    /// converges.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::admin::OPERATION_TIMEOUT_SECS, requires = "stackset_admin")]
    pub operation_timeout: u64,
    /// Alias of the key, `NAME` or `alias/NAME` (1 to 250 of a-z A-Z 0-9 / _ -, not under alias/aws/).
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: AliasName,
    /// Role to create in each user account [default: kmsxacct-<alias name with / as ->, cut to 64].
    #[arg(long)]
    pub role: Option<RoleName>,
    /// Region of the key [default: the owner profile's region].
    #[arg(long, conflicts_with = "regions")]
    pub region: Option<Region>,
    /// A multi-Region key: its primary in the first region, a replica in each other, the alias
    /// in every one (comma-separated, e.g. us-east-1,eu-west-1). A region dropped since the
    /// last setup loses its alias and replica.
    #[arg(long, value_name = "R1,R2,...", value_delimiter = ',', num_args = 1..)]
    pub regions: Vec<Region>,
    /// Days teardown asks KMS to wait before deleting the key, 7 to 30 (recorded for teardown;
    /// `restore` can undo a teardown until then). 30 is AWS's own default.
    #[arg(long, value_name = "DAYS", default_value = "30")]
    pub pending_window_days: PendingWindow,
    /// How the grant is shaped.
    #[command(flatten)]
    pub grant: GrantArgs,
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

impl SetupArgs {
    /// The key's region (the primary's, with --regions), when given.
    pub fn key_region(&self) -> Option<&Region> {
        self.regions.first().or(self.region.as_ref())
    }

    /// The spec these flags describe for the accounts learnt, in the partition and region of
    /// `sides`, with `trust` as the role's trusted principals.
    pub fn spec(
        &self,
        sides: &Sides,
        (owner, users): (AccountId, Vec<AccountId>),
        role: RoleName,
        trust: &[String],
    ) -> Result<GrantSpec> {
        let settings = self.grant.settings(trust);
        let mut spec = spec_from(sides.region(), owner, users, self.alias.clone(), role, &settings);
        spec.partition = sides.owner.partition();
        spec.replica_regions = self.replica_regions()?;
        Ok(spec)
    }

    /// The replica regions of --regions: every region after the first, each once.
    pub fn replica_regions(&self) -> Result<Vec<Region>> {
        let mut seen: Vec<&Region> = Vec::new();
        for r in &self.regions {
            if seen.contains(&r) {
                return Err(Error::Input(format!(
                    "--regions names {r} twice (allowed: each region once, the primary's first)"
                )));
            }
            seen.push(r);
        }
        Ok(self.regions.iter().skip(1).cloned().collect())
    }
}

/// Checks `--trust`: each must be an IAM principal ARN in one of the user accounts, and every
/// user account must be named by one (else its role would silently trust the whole account).
fn check_trust(trust: &[String], users: &[AccountId]) -> Result<()> {
    let accounts = || users.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ");
    let account_of = |t: &str| {
        Arn::parse(t)
            .filter(|a| {
                a.service == "iam"
                    && (a.resource == "root"
                        || a.resource.starts_with("role/")
                        || a.resource.starts_with("user/"))
            })
            .and_then(|a| users.iter().find(|u| u.as_str() == a.account))
    };
    for t in trust {
        if account_of(t).is_none() {
            return Err(Error::Input(format!(
                "invalid --trust '{t}' (expected an IAM role, user or root ARN in one of the user accounts: {})",
                accounts()
            )));
        }
    }
    let uncovered = users.iter().find(|u| !trust.iter().any(|t| account_of(t) == Some(*u)));
    match uncovered {
        Some(u) if !trust.is_empty() => Err(Error::Input(format!(
            "--trust names no principal in user account {u}: its role would trust the whole account; add a --trust ARN in {u} (or give none, to trust every user account as a whole)"
        ))),
        _ => Ok(()),
    }
}

/// Runs setup: resolve → read → plan → apply → report.
pub async fn run(ctx: &Context, args: &SetupArgs) -> Result<()> {
    let started = Instant::now();
    let target = resolve(ctx, args)?;
    ctx.printer.step("reading the owner and user accounts");
    let (mut seen, fleet, sides) = open_and_read(ctx, args, &target).await?;
    let plan = plan::plan_setup(&seen.spec, &seen.view(target.adopt(args)))
        .map_err(|c| Error::Conflict(format!("setup changed nothing: {}", c.join("; "))))?;
    let stack_set = match &fleet {
        Some(f) => Some(target.same_admin(f).and_then(|()| f.plan(&seen.spec))?),
        None => None,
    };
    let primary_arn = match &plan.owner.key {
        KeyPlan::Existing { arn, .. } => Some(arn.as_str()),
        KeyPlan::Create { .. } => None,
    };
    let dropped = target.dropped_regions(&seen.spec);
    seen.regions = read_regions(
        &sides.owner,
        seen.spec.alias.as_str(),
        primary_arn,
        (&seen.spec.replica_regions, &dropped),
    )
    .await?;
    let regions = plan::plan_regions(&seen.spec, primary_arn, &seen.regions.0, &seen.regions.1)
        .map_err(|c| Error::Conflict(format!("setup changed nothing: {}", c.join("; "))))?;
    if args.dry_run {
        let mut view = plan_view(&sides, &seen, &plan, &regions);
        view.stack_set = sides.admin.as_ref().zip(stack_set.as_ref());
        return super::plan::show(ctx, &view);
    }
    ctx.printer.step("applying changes in every account");
    let mut record = first_record(args, &target, &seen, &plan);
    record.stack_set = fleet
        .as_ref()
        .zip(args.stackset_admin.as_deref())
        .map(|(f, admin)| f.record(admin, target.previous.as_ref().map(|p| &p.raw)));
    let journal = Journal::start(record, &ctx.config)?;
    let stage = Apply {
        ctx,
        args,
        sides: &sides,
        seen: &seen,
        plan: &plan,
        regions: &regions,
        journal: &journal,
    };
    let mut applied = stage.run(started).await?;
    if let Some(stack_set) = &stack_set {
        roll_out(ctx, args, (&sides, &seen), stack_set, &journal, &mut applied).await?;
    }
    journal.update(|r| {
        r.key_arn = applied.key_arn.clone();
        r.replica_regions = seen.spec.replica_regions.iter().map(|r| r.to_string()).collect();
        for (u, arn) in r.users.iter_mut().zip(&applied.role_arns) {
            u.role_arn = arn.clone();
        }
    })?;
    report(ctx, &seen, &applied);
    Ok(())
}

/// Opens every side and reads it: the user profiles, or for a StackSet rollout the administrator
/// account and its stack set (the spec's users are then the accounts given).
async fn open_and_read(
    ctx: &Context,
    args: &SetupArgs,
    target: &Resolved,
) -> Result<(Seen, Option<stackset::Fleet>, Sides)> {
    let Some(admin) = &args.stackset_admin else {
        let sides = open(ctx, &args.owner, &target.profiles(args), args.key_region()).await?;
        return Ok((read(ctx, args, target, &sides).await?, None, sides));
    };
    let accounts = stackset::accounts(args)?;
    let sides = open_fleet(ctx, &args.owner, admin, args.key_region()).await?;
    let (seen, fleet) = tokio::join!(
        read(ctx, args, target, &sides),
        stackset::read(&sides, accounts, &target.role)
    );
    let (mut seen, fleet) = (seen?, fleet?);
    seen.spec.users = fleet.accounts.clone();
    Ok((seen, Some(fleet), sides))
}

/// The StackSet rollout, after the owner side; on failure, what changed so far is printed.
async fn roll_out(
    ctx: &Context,
    args: &SetupArgs,
    (sides, seen): (&Sides, &Seen),
    stack_set: &plan::StackSetPlan,
    journal: &Journal<'_>,
    applied: &mut Applied,
) -> Result<()> {
    let tags = deployment_tags(&seen.spec);
    let rollout = (tags.as_slice(), args.operation_timeout);
    let result =
        stackset::apply(sides, stack_set, rollout, journal, &ctx.printer, &mut applied.changes)
            .await;
    if let Err(e) = result {
        ctx.printer.changes(&applied.changes);
        return Err(Error::Failed(format!("setup did not finish ({e}); run it again to converge")));
    }
    applied.role_arns = seen.spec.users.iter().map(|u| seen.spec.role_arn(u)).collect();
    Ok(())
}

/// What setup is asked to do, checked against an earlier record in the same place.
struct Resolved {
    /// The record of an earlier setup of this deployment.
    previous: Option<CheckedDeployment>,
    /// The role name.
    role: RoleName,
    /// Recorded user accounts no longer given: their grant and role go.
    leaving: Vec<UserRecord>,
}

impl Resolved {
    /// Every profile to open: the users given, then those leaving.
    fn profiles(&self, args: &SetupArgs) -> Vec<String> {
        let leaving = self.leaving.iter().map(|u| u.profile.clone());
        args.users.iter().cloned().chain(leaving).collect()
    }

    /// Regions of the last setup's replicas that are not replica regions now: their aliases and
    /// replicas go.
    fn dropped_regions(&self, spec: &GrantSpec) -> Vec<Region> {
        let recorded = self.previous.iter().flat_map(|p| p.raw.replica_regions.iter());
        recorded
            .filter_map(|r| r.parse::<Region>().ok())
            .filter(|r| !spec.regions().any(|k| k == r))
            .collect()
    }

    /// Refuses a StackSet administrator account other than the recorded one: its stack set and
    /// instances would be left behind.
    fn same_admin(&self, fleet: &stackset::Fleet) -> Result<()> {
        let recorded = self.previous.as_ref().and_then(|p| p.raw.stack_set.as_ref());
        match recorded {
            Some(r) if r.admin_account != fleet.admin_account.as_str() => {
                Err(Error::Input(format!(
                    "the record's StackSet {} is administered from account {}, but --stackset-admin is account {}; use that profile, or tear down first",
                    r.name, r.admin_account, fleet.admin_account
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether this deployment uses a key kmsxacct did not create.
    fn adopt(&self, args: &SetupArgs) -> bool {
        args.adopt || self.previous.as_ref().is_some_and(|r| r.raw.adopted)
    }
}

/// Refuses a record of another deployment, and finds the user accounts that leave.
fn resolve(ctx: &Context, args: &SetupArgs) -> Result<Resolved> {
    // A record of a deployment torn down completely is history: a new setup starts afresh.
    let previous = existing_record(&ctx.config)?.filter(|r| r.raw.torn_down.is_none());
    let role = role_name(args.role.as_ref(), &args.alias);
    if let Some(p) = previous.as_ref().map(|p| &p.raw)
        && (p.alias != args.alias.as_str()
            || p.owner_profile != args.owner
            || p.role_name != role.as_str())
    {
        return Err(Error::Input(format!(
            "'{}' records another deployment ({} from profile {}, role {}); pass --config PATH to keep this one apart",
            ctx.config.display(),
            p.alias,
            p.owner_profile,
            p.role_name
        )));
    }
    if let Some(p) = previous.as_ref().map(|p| &p.raw)
        && p.stack_set.is_some() != args.stackset_admin.is_some()
    {
        let (was, is) = match p.stack_set {
            Some(_) => ("a StackSet rollout", "--user profiles"),
            None => ("--user profiles", "a StackSet rollout (--stackset-admin)"),
        };
        return Err(Error::Input(format!(
            "'{}' records a deployment by {was}; it cannot become {is}: tear it down first, or pass --config PATH to keep the two apart",
            ctx.config.display()
        )));
    }
    let leaving = previous
        .iter()
        .flat_map(|p| p.raw.users.iter())
        .filter(|u| !args.users.contains(&u.profile))
        .cloned()
        .collect();
    Ok(Resolved { previous, role, leaving })
}

/// Everything setup read, and the spec built from the accounts it learnt.
struct Seen {
    spec: GrantSpec,
    keys: DeploymentKeys,
    found: Vec<KeyState>,
    users: Vec<(AccountId, Option<RoleState>)>,
    leaving: Vec<(AccountId, Option<RoleState>)>,
    /// The replica regions, then the regions dropped, as read.
    regions: (Vec<RegionSeen>, Vec<RegionSeen>),
}

impl Seen {
    fn view(&self, adopt: bool) -> SetupSeen<'_> {
        SetupSeen {
            keys: &self.keys,
            found: &self.found,
            users: &self.users,
            leaving: &self.leaving,
            adopt,
        }
    }
}

/// Learns every account and reads every account at once (the reads need no account id).
async fn read(ctx: &Context, args: &SetupArgs, target: &Resolved, sides: &Sides) -> Result<Seen> {
    let kept = args.users.len();
    let recorded_arn =
        target.previous.as_ref().map(|r| r.raw.key_arn.clone()).filter(|arn| !arn.is_empty());
    let role_reads = sides
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| user::read_role(u, target.role.as_str(), i >= kept))
        .collect();
    let (ids, keys, roles) = tokio::join!(
        sides.identify(ctx),
        owner::read_deployment_keys(
            &sides.owner,
            args.alias.as_str(),
            recorded_arn.as_deref(),
            KeyReads::SETUP
        ),
        ctx.bounded(role_reads),
    );
    let (owner, accounts) = ids?;
    let mut keys = keys?;
    let roles: Vec<Option<RoleState>> = roles.into_iter().collect::<Result<_>>()?;
    for (u, now) in target.leaving.iter().zip(&accounts[kept..]) {
        if u.account != now.as_str() {
            return Err(Error::Input(format!(
                "the record says profile '{}' is account {}, but it is now account {now}; fix the profile or pass --config for another record",
                u.profile, u.account
            )));
        }
    }
    check_trust(&args.trust, &accounts[..kept])?;
    let users = accounts[..kept].to_vec();
    let spec = args.spec(sides, (owner, users), target.role.clone(), &args.trust)?;
    let previous = target.previous.as_ref();
    // A key recorded for another owner account is not ours to reuse.
    if previous.is_none_or(|r| r.owner_account != spec.owner) {
        keys.recorded = None;
    }
    // A previous run that stopped between CreateKey and recording its answer may have left a
    // key: find it by its tags rather than create a second one.
    let found = if previous.is_some_and(|r| r.raw.key_creation_pending) {
        ctx.printer
            .note("a previous setup stopped while creating the key; looking for it by its tags");
        owner::find_deployment_keys(&sides.owner, &spec).await?
    } else {
        Vec::new()
    };
    let mut pairs = accounts.into_iter().zip(roles);
    Ok(Seen {
        spec,
        keys,
        found,
        users: pairs.by_ref().take(kept).collect(),
        leaving: pairs.collect(),
        regions: Default::default(),
    })
}

/// What `plan` shows.
fn plan_view<'a>(
    sides: &'a Sides,
    seen: &'a Seen,
    plan: &'a SetupPlan,
    regions: &'a (Vec<RegionPlan>, Vec<RegionDrop>),
) -> PlanView<'a> {
    PlanView {
        regions,
        regions_seen: &seen.regions.0,
        stack_set: None,
        spec: &seen.spec,
        owner: &sides.owner,
        key_now: seen.keys.at_alias.as_ref(),
        owner_plan: &plan.owner,
        users: sides
            .users
            .iter()
            .zip(&seen.users)
            .zip(&plan.users)
            .map(|((s, (a, r)), p)| (s, a, r.as_ref(), p))
            .collect(),
        removals: sides.users[seen.users.len()..].iter().zip(&plan.leaving).collect(),
    }
}

/// The record written before the first change: what exists already, and the grant settings.
fn first_record(args: &SetupArgs, target: &Resolved, seen: &Seen, plan: &SetupPlan) -> Deployment {
    let spec = &seen.spec;
    let previous = target.previous.as_ref().map(|r| &r.raw);
    let settings = args.grant.settings(&args.trust);
    Deployment {
        owner_profile: args.owner.clone(),
        owner_account: spec.owner.to_string(),
        partition: spec.partition.to_string(),
        region: spec.region.to_string(),
        alias: spec.alias.to_string(),
        role_name: target.role.to_string(),
        grant_to: settings.grant_to,
        actions: settings.actions,
        condition: settings.condition,
        trust: settings.trust,
        key_arn: match &plan.owner.key {
            KeyPlan::Existing { arn, .. } => arn.clone(),
            KeyPlan::Create { .. } => String::new(),
        },
        pending_window_days: args.pending_window_days.days() as u8,
        key_creation_pending: false,
        users: args
            .users
            .iter()
            .zip(&seen.users)
            .zip(&plan.users)
            .map(|((profile, (account, _)), plan)| UserRecord {
                profile: profile.clone(),
                account: account.to_string(),
                role_arn: plan.existing_arn.clone().unwrap_or_default(),
            })
            .collect(),
        adopted: target.adopt(args)
            && seen.keys.at_alias.as_ref().is_some_and(|k| !plan::is_ours(&k.tags, spec)),
        last_verify: previous.and_then(|r| r.last_verify.clone()),
        previous_keys: previous.map(|r| r.previous_keys.clone()).unwrap_or_default(),
        torn_down: None,
        org_id: match &settings.org {
            Some(crate::names::OrgScope::Id(id)) => Some(id.clone()),
            _ => None,
        },
        org_path: match &settings.org {
            Some(crate::names::OrgScope::Path(path)) => Some(path.clone()),
            _ => None,
        },
        // Those of the last setup and those to make: a run that stops midway leaves no replica
        // the record does not name. Once setup is done, those of the deployment alone.
        replica_regions: {
            let mut regions = previous.map(|r| r.replica_regions.clone()).unwrap_or_default();
            crate::record::add_missing(&mut regions, &spec.replica_regions);
            regions
        },
        stack_set: None,
    }
}

/// What apply made.
struct Applied {
    key_arn: String,
    role_arns: Vec<String>,
    changes: Vec<Change>,
}

/// The apply stage: what it works with.
struct Apply<'a> {
    ctx: &'a Context,
    args: &'a SetupArgs,
    sides: &'a Sides,
    seen: &'a Seen,
    plan: &'a SetupPlan,
    regions: &'a (Vec<RegionPlan>, Vec<RegionDrop>),
    journal: &'a Journal<'a>,
}

impl Apply<'_> {
    /// Carries out the plan: both sides at once, or the roles first when the key policy names them;
    /// then the roles of user accounts that left. Every new ARN is journaled the moment it exists.
    async fn run(&self, started: Instant) -> Result<Applied> {
        let tags = deployment_tags(&self.seen.spec);
        let owner = self.owner(&tags, started);
        let users = self.users(&tags);
        let ((key_arn, mut changes), user_results) = match self.seen.spec.grant_to {
            GrantTo::Role => {
                let users = users.await;
                let owner = if users.iter().all(|(r, _)| r.is_ok()) {
                    owner.await
                } else {
                    let not_all = Error::Failed("the roles were not all created".into());
                    (Err(not_all), Vec::new())
                };
                (owner, users)
            }
            GrantTo::Account => tokio::join!(owner, users),
        };
        let mut errors: Vec<String> = Vec::new();
        let mut role_arns = Vec::new();
        for (result, user_changes) in user_results {
            changes.extend(user_changes);
            match result {
                Ok(arn) => role_arns.push(arn),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let mut key_arn = key_arn.map_err(|e| errors.push(e.to_string())).ok();
        // The replicas follow their primary, and take the same key policy.
        if let Some(primary) = key_arn.as_deref()
            && errors.is_empty()
            && let Err(e) = self.regions(primary, &tags, started, &mut changes).await
        {
            errors.push(e.to_string());
            key_arn = None;
        }
        // Users dropped from the deployment: their roles go once the key policy no longer names them.
        if errors.is_empty() {
            errors.extend(self.remove_leaving(&mut changes).await);
        }
        match key_arn {
            Some(key_arn) if errors.is_empty() => Ok(Applied { key_arn, role_arns, changes }),
            _ => {
                self.ctx.printer.changes(&changes);
                Err(Error::Failed(format!(
                    "setup did not finish ({}); run it again to converge",
                    errors.join("; ")
                )))
            }
        }
    }

    /// The owner side: key, alias, key policy, then rotation when asked. Returns the key ARN.
    async fn owner(
        &self,
        tags: &[(String, String)],
        started: Instant,
    ) -> (Result<String>, Vec<Change>) {
        let Apply { ctx, args, sides, seen, plan, journal, .. } = *self;
        let mut changes = Vec::new();
        let creating = || Ok(journal.update(|r| r.key_creation_pending = true)?);
        let created = |arn: &str| {
            Ok(journal.update(|r| {
                r.key_arn = arn.to_string();
                r.key_creation_pending = false;
            })?)
        };
        let opts = OwnerApply {
            alias: seen.spec.alias.as_str(),
            tags,
            retire_window: args.pending_window_days,
            wait_until: started + Duration::from_secs(args.wait),
            printer: &ctx.printer,
        };
        let journal = KeyJournal { creating: &creating, created: &created };
        let mut arn =
            owner::apply_setup(&sides.owner, &plan.owner, opts, journal, &mut changes).await;
        if let (Ok(key), true) = (&arn, args.enable_key_rotation) {
            let days = i32::from(args.rotation_period_days.unwrap_or(365));
            let rotation = owner::ensure_key_rotation(&sides.owner, key, days, &mut changes).await;
            if let Err(e) = rotation {
                arn = Err(e);
            }
        }
        (arn, changes)
    }

    /// Every replica region (replica, alias, key policy), then every dropped region.
    async fn regions(
        &self,
        primary: &str,
        tags: &[(String, String)],
        started: Instant,
        changes: &mut Vec<Change>,
    ) -> Result<()> {
        let Apply { ctx, args, sides, seen, regions, .. } = *self;
        let opts = RegionApply {
            alias: seen.spec.alias.as_str(),
            tags,
            window: args.pending_window_days,
            wait: Propagation {
                until: started + Duration::from_secs(args.wait),
                printer: &ctx.printer,
            },
        };
        owner::apply_regions(&sides.owner, primary, regions, opts, changes).await.map(drop)
    }

    /// Each user side: role, trust, role policy. Returns each role's ARN.
    async fn users(&self, tags: &[(String, String)]) -> Vec<(Result<String>, Vec<Change>)> {
        let Apply { ctx, sides, seen, plan, journal, .. } = *self;
        let role = seen.spec.role.as_str();
        let work = sides
            .users
            .iter()
            .zip(&plan.users)
            .enumerate()
            .map(|(i, (session, plan))| async move {
                let mut changes = Vec::new();
                let created =
                    |arn: &str| Ok(journal.update(|r| r.users[i].role_arn = arn.to_string())?);
                let arn = user::apply_setup(session, role, plan, tags, created, &mut changes).await;
                (arn, changes)
            })
            .collect();
        ctx.bounded(work).await
    }

    /// Removes the roles of the user accounts that left; returns the errors.
    async fn remove_leaving(&self, changes: &mut Vec<Change>) -> Vec<String> {
        let Apply { ctx, sides, seen, plan, .. } = *self;
        let role = seen.spec.role.as_str();
        let work = sides.users[seen.users.len()..]
            .iter()
            .zip(&plan.leaving)
            .map(|(session, plan)| user::apply_teardown(session, role, plan))
            .collect();
        let mut errors = Vec::new();
        for (result, c) in ctx.bounded(work).await {
            changes.extend(c);
            if let Err(e) = result {
                errors.push(e.to_string());
            }
        }
        errors
    }
}

/// Prints what changed, and the JSON report.
fn report(ctx: &Context, seen: &Seen, applied: &Applied) {
    let spec = &seen.spec;
    let changed = applied.changes.iter().any(Change::is_change);
    ctx.printer.changes(&applied.changes);
    let alias_arn = spec.alias.arn(&spec.partition, &spec.region, &spec.owner);
    if changed {
        ctx.printer.line(format!(
            "setup complete: {} reached through {alias_arn} by {} user account(s); recorded in {}",
            applied.key_arn,
            spec.users.len(),
            ctx.config.display()
        ));
    } else {
        ctx.printer.line("setup: nothing to change; the deployment is already as it should be");
    }
    ctx.printer.json(
        &Report {
            command: "setup",
            changed,
            owner_account: spec.owner.to_string(),
            user_accounts: spec.users.iter().map(|u| u.to_string()).collect(),
            key_arn: &applied.key_arn,
            role_arns: &applied.role_arns,
            alias_arn,
            record: ctx.config.display().to_string(),
            changes: &applied.changes,
        },
        ctx.calls.snapshot(),
    );
}
