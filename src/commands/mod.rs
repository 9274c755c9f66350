//! One module per subcommand, and what they share: naming the deployment and connecting to it.

pub mod completions;
pub mod diagnose;
pub mod explain;
pub mod export;
pub mod lint;
pub mod plan;
pub mod policies;
pub mod restore;
pub mod rotate;
pub mod setup;
pub mod status;
pub mod teardown;
pub mod verify;
pub mod wait;

use crate::aws::calls::CallLog;
use crate::aws::{Session, Side, check_profiles};
use crate::error::{Error, Result};
use crate::names::{AccountId, AliasName, OrgScope, Region, RoleName};
use crate::output::Printer;
use crate::plan::KeyState;
use crate::policy::build::{AliasCondition, GrantSpec, GrantTo, KeyAction};
use crate::record::{CheckedDeployment, Deployment, RecordError};
use futures_util::StreamExt;
use std::future::Future;
use std::path::{Path, PathBuf};

/// What every command gets besides its own flags.
#[derive(Debug, Clone)]
pub struct Context {
    /// Deployment record path.
    pub config: PathBuf,
    /// Where results go.
    pub printer: Printer,
    /// Every AWS call made.
    pub calls: CallLog,
    /// At most this many user accounts are worked on at once.
    pub concurrency: usize,
}

impl Context {
    /// Runs `futures` at most [`Context::concurrency`] at a time, starting the next as soon as
    /// any one ends (a slow one does not hold the others back); results in input order.
    pub async fn bounded<T, F: Future<Output = T>>(&self, futures: Vec<F>) -> Vec<T> {
        let mut results: Vec<Option<T>> = futures.iter().map(|_| None).collect();
        let mut running = futures_util::stream::iter(
            futures.into_iter().enumerate().map(|(i, f)| async move { (i, f.await) }),
        )
        .buffer_unordered(self.concurrency.max(1));
        while let Some((i, result)) = running.next().await {
            results[i] = Some(result);
        }
        results.into_iter().flatten().collect()
    }
}

/// Flags that name a deployment without a record (verify and teardown).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// AWS profile of the account that owns the key (with --user: name the deployment by flags;
    /// a record of the same deployment in --config still gives the grant's shape).
    #[arg(long, value_name = "PROFILE", requires = "user")]
    pub owner: Option<String>,
    /// AWS profile of a user account (repeat for each; with --owner: name the deployment by flags).
    #[arg(long, value_name = "PROFILE", requires = "owner")]
    pub user: Vec<String>,
    /// Alias, `NAME` or `alias/NAME`, when not read from the record [default: alias/production-data-key].
    #[arg(long, requires = "owner")]
    pub alias: Option<AliasName>,
    /// Role in the user accounts, when not read from the record [default: kmsxacct-<alias name>].
    #[arg(long, requires = "owner")]
    pub role: Option<RoleName>,
    /// Region, when not read from the record [default: the owner profile's region].
    #[arg(long, requires = "owner")]
    pub region: Option<Region>,
}

/// The default alias.
pub const DEFAULT_ALIAS: &str = "alias/production-data-key";

/// Flags that shape the grant, shared by `setup`, `plan` and `policies`.
#[derive(Debug, Clone, clap::Args)]
pub struct GrantArgs {
    /// Whom the key policy names: the user account's root (its IAM policies decide), or the role
    /// itself (least privilege; setup creates the role first).
    #[arg(long, value_enum, default_value_t = GrantTo::Account)]
    pub grant_to: GrantTo,
    /// What the user accounts may do, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = KeyAction::DEFAULT)]
    pub actions: Vec<KeyAction>,
    /// The role policy's alias condition: kms:ResourceAliases (the key carries the alias) or
    /// kms:RequestAlias (the request names the alias).
    #[arg(long, value_enum, default_value_t = AliasCondition::ResourceAliases)]
    pub condition: AliasCondition,
    /// Grant every account of this AWS Organization (`o-...`) in the key policy, by
    /// aws:PrincipalOrgID, instead of listing the user accounts (which a 32 KB key policy caps).
    #[arg(long, value_name = "ID", value_parser = OrgScope::id, conflicts_with = "org_path")]
    pub org_id: Option<OrgScope>,
    /// Grant the accounts under this organization path (`o-.../r-.../ou-.../`), by
    /// aws:PrincipalOrgPaths, instead of listing the user accounts.
    #[arg(long, value_name = "PATH", value_parser = OrgScope::path)]
    pub org_path: Option<OrgScope>,
}

impl GrantArgs {
    /// The grant settings these flags ask for, with `trust` as the role's trusted principals.
    pub fn settings(&self, trust: &[String]) -> GrantSettings {
        GrantSettings {
            grant_to: self.grant_to,
            actions: self.actions.clone(),
            condition: self.condition,
            trust: trust.to_vec(),
            org: self.org_id.clone().or(self.org_path.clone()),
        }
    }
}

/// How the grant is shaped: what setup was asked for, or what the record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSettings {
    /// Whom the key policy names.
    pub grant_to: GrantTo,
    /// What the users may do.
    pub actions: Vec<KeyAction>,
    /// Which alias condition the role policy uses.
    pub condition: AliasCondition,
    /// Principals allowed to assume the role.
    pub trust: Vec<String>,
    /// The organisation the key policy grants, instead of listing accounts.
    pub org: Option<OrgScope>,
}

impl Default for GrantSettings {
    fn default() -> Self {
        GrantSettings {
            grant_to: GrantTo::Account,
            actions: KeyAction::DEFAULT.to_vec(),
            condition: AliasCondition::ResourceAliases,
            trust: Vec::new(),
            org: None,
        }
    }
}

/// A deployment to act on, from flags or from the record.
#[derive(Debug, Clone)]
pub struct Target {
    /// Owner profile.
    pub owner_profile: String,
    /// User profiles.
    pub user_profiles: Vec<String>,
    /// Region override (the record's region, or --region).
    pub region: Option<Region>,
    /// Alias.
    pub alias: AliasName,
    /// Role name.
    pub role: RoleName,
    /// The grant's shape.
    pub settings: GrantSettings,
    /// Whether a record said the grant's shape (else it is the default, assumed).
    pub settings_known: bool,
    /// The replica regions of a multi-Region key, as the record of this deployment says.
    pub replicas: Vec<Region>,
    /// The record, when the target came from it.
    pub record: Option<CheckedDeployment>,
}

impl Target {
    /// Flags when `--owner`/`--user` are given, else the record at `config` (which must exist).
    pub fn resolve(args: &TargetArgs, config: &Path) -> Result<Target> {
        if let Some(owner) = &args.owner {
            let alias = match &args.alias {
                Some(a) => a.clone(),
                None => DEFAULT_ALIAS.parse()?,
            };
            let role = role_name(args.role.as_ref(), &alias);
            // The grant's shape is what the record of this deployment says, if there is one.
            // (An unreadable record does not stop a command named by flags.)
            let matching = existing_record(config).ok().flatten().filter(|r| {
                r.raw.owner_profile == *owner && r.alias == alias && r.role_name == role
            });
            return Ok(Target {
                owner_profile: owner.clone(),
                user_profiles: args.user.clone(),
                region: args.region.clone(),
                role,
                alias,
                settings: matching.as_ref().map(recorded_settings).unwrap_or_default(),
                settings_known: matching.is_some(),
                replicas: matching.as_ref().map(recorded_replicas).unwrap_or_default(),
                record: None,
            });
        }
        let record = Deployment::load(config)?;
        Ok(Target {
            owner_profile: record.raw.owner_profile.clone(),
            user_profiles: record.raw.users.iter().map(|u| u.profile.clone()).collect(),
            region: Some(record.region.clone()),
            alias: record.alias.clone(),
            role: record.role_name.clone(),
            settings: recorded_settings(&record),
            settings_known: true,
            replicas: recorded_replicas(&record),
            record: Some(record),
        })
    }

    /// Opens every side of this deployment (see [`open`]): for a StackSet rollout, the owner
    /// and the administrator.
    pub async fn open(&self, ctx: &Context) -> Result<Sides> {
        match self.stack_set() {
            Some(set) => {
                open_fleet(ctx, &self.owner_profile, &set.admin_profile, self.region.as_ref()).await
            }
            None => open(ctx, &self.owner_profile, &self.user_profiles, self.region.as_ref()).await,
        }
    }

    /// The recorded StackSet that rolls the roles out, for a fleet deployment.
    pub fn stack_set(&self) -> Option<&crate::record::StackSetRecord> {
        self.record.as_ref().and_then(|r| r.raw.stack_set.as_ref())
    }

    /// The recorded stack set as it is now in the administrator account (None: the deployment
    /// has none, or it is gone).
    pub async fn read_stack_set(
        &self,
        sides: &Sides,
    ) -> Result<Option<crate::plan::StackSetState>> {
        match (self.stack_set(), &sides.admin) {
            (Some(set), Some(admin)) => {
                crate::admin::read_stack_set(admin, &set.name, &admin.region).await
            }
            _ => Ok(None),
        }
    }

    /// The user accounts of a fleet deployment, as recorded.
    pub fn fleet_accounts(&self) -> Vec<AccountId> {
        let accounts = self.stack_set().into_iter().flat_map(|s| s.accounts.iter());
        accounts.filter_map(|a| a.parse().ok()).collect()
    }

    /// The recorded key ARN, if any.
    pub fn recorded_key(&self) -> Option<&str> {
        self.record.as_ref().map(|r| r.raw.key_arn.as_str()).filter(|k| !k.is_empty())
    }

    /// The recorded role ARN of the `i`th user, if any.
    pub fn recorded_role(&self, i: usize) -> Option<&str> {
        self.record
            .as_ref()
            .and_then(|r| r.raw.users.get(i))
            .map(|u| u.role_arn.as_str())
            .filter(|a| !a.is_empty())
    }

    /// Keys an earlier rotate retired whose deletion is not scheduled yet: still readable
    /// through their retirement alias.
    pub fn retired_keys(&self) -> impl Iterator<Item = &crate::record::RetiredKey> {
        let keys = self.record.iter().flat_map(|r| r.raw.previous_keys.iter());
        keys.filter(|k| k.deletion_scheduled.is_none())
    }

    /// The spec for the identified accounts, in the partition and region of `sides`.
    pub fn spec(&self, sides: &Sides, owner: AccountId, users: Vec<AccountId>) -> GrantSpec {
        let mut spec = spec_from(
            sides.region(),
            owner,
            users,
            self.alias.clone(),
            self.role.clone(),
            &self.settings,
        );
        spec.partition = sides.owner.partition();
        spec.replica_regions = self.replica_regions();
        spec
    }

    /// The replica regions of a multi-Region key (none without a record of this deployment).
    pub fn replica_regions(&self) -> Vec<Region> {
        self.replicas.clone()
    }

    /// Refuses to act when the record's profiles now lead to other accounts than it recorded:
    /// its ARNs would point at the wrong accounts.
    pub fn check_accounts(&self, owner: &AccountId, users: &[AccountId]) -> Result<()> {
        let Some(r) = &self.record else { return Ok(()) };
        let recorded = std::iter::once((&r.raw.owner_profile, &r.owner_account, owner)).chain(
            r.raw
                .users
                .iter()
                .zip(&r.user_accounts)
                .zip(users)
                .map(|((u, rec), now)| (&u.profile, rec, now)),
        );
        for (profile, recorded, now) in recorded {
            if recorded != now {
                return Err(Error::Input(format!(
                    "the record says profile '{profile}' is account {recorded}, but it is now account {now}; fix the profile or pass --config for another record"
                )));
            }
        }
        Ok(())
    }
}

/// The grant settings a record holds.
/// The replica regions a record names.
fn recorded_replicas(record: &CheckedDeployment) -> Vec<Region> {
    record.raw.replica_regions.iter().filter_map(|r| r.parse().ok()).collect()
}

fn recorded_settings(record: &CheckedDeployment) -> GrantSettings {
    let raw = &record.raw;
    GrantSettings {
        grant_to: raw.grant_to,
        actions: raw.actions.clone(),
        condition: raw.condition,
        trust: raw.trust.clone(),
        org: raw.org_scope(),
    }
}

/// Builds a spec from its parts and the grant settings.
pub fn spec_from(
    region: Region,
    owner: AccountId,
    users: Vec<AccountId>,
    alias: AliasName,
    role: RoleName,
    settings: &GrantSettings,
) -> GrantSpec {
    let mut spec = GrantSpec::new(region, owner, users, alias, role);
    spec.grant_to = settings.grant_to;
    spec.actions = settings.actions.clone();
    spec.condition = settings.condition;
    spec.trust = settings.trust.clone();
    spec.org = settings.org.clone();
    spec
}

/// The owner side and each user side of a deployment, opened (clients built, nothing asked).
#[derive(Debug)]
pub struct Sides {
    /// The owner account.
    pub owner: Session,
    /// The user accounts, in the order given.
    pub users: Vec<Session>,
    /// The StackSet administrator account of a fleet deployment (which has no user sides).
    pub admin: Option<Session>,
}

/// Checks the profiles and resolves the region once, then builds every side's clients. No AWS
/// call: commands start their reads alongside [`Sides::identify`].
pub async fn open(
    ctx: &Context,
    owner_profile: &str,
    user_profiles: &[String],
    region: Option<&Region>,
) -> Result<Sides> {
    if user_profiles.is_empty() {
        return Err(Error::Input("no user account: give at least one --user PROFILE".into()));
    }
    open_sides(ctx, owner_profile, user_profiles, None, region).await
}

/// Opens the owner side and the StackSet administrator side of a fleet deployment.
pub async fn open_fleet(
    ctx: &Context,
    owner_profile: &str,
    admin_profile: &str,
    region: Option<&Region>,
) -> Result<Sides> {
    open_sides(ctx, owner_profile, &[], Some(admin_profile), region).await
}

async fn open_sides(
    ctx: &Context,
    owner_profile: &str,
    user_profiles: &[String],
    admin_profile: Option<&str>,
    region: Option<&Region>,
) -> Result<Sides> {
    let mut names: Vec<&str> = vec![owner_profile];
    names.extend(user_profiles.iter().map(String::as_str));
    names.extend(admin_profile);
    check_profiles(&names).await?;
    let region = match region {
        Some(r) => r.clone(),
        None => profile_region(owner_profile).await?,
    };
    let http = crate::aws::http::client();
    let owner = Session::open(Side::Owner, owner_profile, Some(&region), &http, &ctx.calls).await?;
    let mut users = Vec::with_capacity(user_profiles.len());
    for p in user_profiles {
        users.push(Session::open(Side::User, p, Some(&region), &http, &ctx.calls).await?);
    }
    let admin = match admin_profile {
        Some(p) => Some(Session::open(Side::Admin, p, Some(&region), &http, &ctx.calls).await?),
        None => None,
    };
    Ok(Sides { owner, users, admin })
}

impl Sides {
    /// Learns every account concurrently; refuses a user profile in the owner's account and two
    /// user profiles in one account.
    pub async fn identify(&self, ctx: &Context) -> Result<(AccountId, Vec<AccountId>)> {
        let (owner, users) = tokio::join!(self.owner.identify(), self.identify_users(ctx));
        let (owner, users) = (owner?, users?);
        self.check_distinct(&owner, &users)?;
        Ok((owner, users))
    }

    /// Learns the user accounts concurrently (the owner's may come from elsewhere, see
    /// [`Sides::owner_account`]).
    pub async fn identify_users(&self, ctx: &Context) -> Result<Vec<AccountId>> {
        let users = ctx.bounded(self.users.iter().map(|u| u.identify()).collect()).await;
        users.into_iter().collect()
    }

    /// The user accounts, each from its role's ARN when the role was found (a role is read in the
    /// caller's own account, so its ARN names that account), else asked of STS.
    pub async fn user_accounts(
        &self,
        ctx: &Context,
        role_arns: &[Option<&str>],
    ) -> Result<Vec<AccountId>> {
        let work = self
            .users
            .iter()
            .zip(role_arns)
            .map(|(session, arn)| session.account_from(*arn))
            .collect();
        ctx.bounded(work).await.into_iter().collect()
    }

    /// The owner account, from the key the alias resolved to when there is one (an alias is
    /// resolved in the caller's own account, so its key's ARN names that account), else asked of
    /// STS: one call fewer on the common path.
    pub async fn owner_account(&self, alias_key: Option<&KeyState>) -> Result<AccountId> {
        self.owner.account_from(alias_key.map(|k| k.arn.as_str())).await
    }

    /// Refuses a user profile in the owner's account and two user profiles in one account.
    pub fn check_distinct(&self, owner: &AccountId, users: &[AccountId]) -> Result<()> {
        for (session, account) in self.users.iter().zip(users) {
            if account == owner {
                return Err(Error::Input(format!(
                    "--owner {} and --user {} are both account {owner}; cross-account access needs two different accounts",
                    self.owner.profile, session.profile
                )));
            }
        }
        for (i, a) in users.iter().enumerate() {
            if let Some(j) = users[..i].iter().position(|b| b == a) {
                return Err(Error::Input(format!(
                    "--user {} and --user {} are both account {a}; give each user account once",
                    self.users[j].profile, self.users[i].profile
                )));
            }
        }
        Ok(())
    }

    /// The StackSet administrator side, which a fleet deployment opens.
    pub fn admin_side(&self) -> Result<&Session> {
        self.admin.as_ref().ok_or_else(|| Error::Failed("no StackSet administrator side".into()))
    }

    /// The region every session uses.
    pub fn region(&self) -> Region {
        self.owner.region.clone()
    }
}

/// The region the owner profile names (or AWS_REGION), for when --region is not given.
async fn profile_region(profile: &str) -> Result<Region> {
    let region = aws_config::default_provider::region::DefaultRegionChain::builder()
        .profile_name(profile)
        .build()
        .region()
        .await;
    match region {
        Some(r) => Ok(r.as_ref().parse()?),
        None => Err(Error::Input(format!(
            "profile '{profile}' sets no region: add `region = ...` to it or pass --region"
        ))),
    }
}

/// The role name for a deployment: the given one, or the default derived from the alias.
pub fn role_name(role: Option<&RoleName>, alias: &AliasName) -> RoleName {
    role.cloned().unwrap_or_else(|| RoleName::default_for(alias))
}

/// Loads the record at `path` if there is one; a missing record is not an error here.
pub fn existing_record(path: &Path) -> Result<Option<CheckedDeployment>> {
    match Deployment::load(path) {
        Ok(r) => Ok(Some(r)),
        Err(RecordError::Missing(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputFormat;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn bounded_keeps_input_order_and_does_not_wait_on_a_slow_one() {
        let ctx = Context {
            config: PathBuf::from("unused.toml"),
            printer: Printer::new(OutputFormat::Json, true, false),
            calls: CallLog::default(),
            concurrency: 3,
        };
        let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let last_started = AtomicBool::new(false);
        let n = 8;
        // The first future only ends once the last one has started: an ordered buffer, which
        // holds finished slots until the first ends, would never start the last one.
        let work = (0..n)
            .map(|i| {
                let (running, peak, last_started) = (&running, &peak, &last_started);
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    if i == n - 1 {
                        last_started.store(true, Ordering::SeqCst);
                    }
                    while i == 0 && !last_started.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                }
            })
            .collect();
        let order = tokio::time::timeout(Duration::from_secs(10), ctx.bounded(work))
            .await
            .expect("the slow first future held the others back");
        assert_eq!(order, (0..n).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}
