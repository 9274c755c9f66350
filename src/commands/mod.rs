//! One module per subcommand, and what they share: naming the deployment and connecting to it.

pub mod explain;
pub mod lint;
pub mod policies;
pub mod setup;
pub mod teardown;
pub mod verify;

use crate::aws::calls::CallLog;
use crate::aws::{Session, Side, check_profiles};
use crate::error::{Error, Result};
use crate::names::{AliasName, Region, RoleName};
use crate::output::Printer;
use crate::policy::build::GrantSpec;
use crate::record::{CheckedDeployment, Deployment, RecordError};
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
}

/// Flags that name a deployment without a record (verify and teardown).
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// AWS profile of the account that owns the key (with --user: ignore the record).
    #[arg(long, value_name = "PROFILE", requires = "user")]
    pub owner: Option<String>,
    /// AWS profile of the account that uses the key (with --owner: ignore the record).
    #[arg(long, value_name = "PROFILE", requires = "owner")]
    pub user: Option<String>,
    /// Alias, `NAME` or `alias/NAME`, when not read from the record [default: alias/production-data-key].
    #[arg(long, requires = "owner")]
    pub alias: Option<AliasName>,
    /// Role in the user account, when not read from the record [default: kmsxacct-<alias name>].
    #[arg(long, requires = "owner")]
    pub role: Option<RoleName>,
    /// Region, when not read from the record [default: the owner profile's region].
    #[arg(long, requires = "owner")]
    pub region: Option<Region>,
}

/// The default alias.
pub const DEFAULT_ALIAS: &str = "alias/production-data-key";

/// A deployment to act on, from flags or from the record.
#[derive(Debug, Clone)]
pub struct Target {
    /// Owner profile.
    pub owner_profile: String,
    /// User profile.
    pub user_profile: String,
    /// Region override (the record's region, or --region).
    pub region: Option<Region>,
    /// Alias.
    pub alias: AliasName,
    /// Role name, if given (else derived from the alias).
    pub role: Option<RoleName>,
    /// The record, when the target came from it.
    pub record: Option<CheckedDeployment>,
}

impl Target {
    /// Flags when `--owner`/`--user` are given, else the record at `config` (which must exist).
    pub fn resolve(args: &TargetArgs, config: &Path) -> Result<Target> {
        if let (Some(owner), Some(user)) = (&args.owner, &args.user) {
            return Ok(Target {
                owner_profile: owner.clone(),
                user_profile: user.clone(),
                region: args.region.clone(),
                alias: match &args.alias {
                    Some(a) => a.clone(),
                    None => DEFAULT_ALIAS.parse()?,
                },
                role: args.role.clone(),
                record: None,
            });
        }
        let record = Deployment::load(config)?;
        Ok(Target {
            owner_profile: record.raw.owner_profile.clone(),
            user_profile: record.raw.user_profile.clone(),
            region: Some(record.region.clone()),
            alias: record.alias.clone(),
            role: Some(record.role_name.clone()),
            record: Some(record),
        })
    }

    /// The recorded key ARN, when the record holds one for this owner account.
    pub fn recorded_key(&self, spec: &GrantSpec) -> Option<&str> {
        self.record
            .as_ref()
            .filter(|r| r.owner_account == spec.owner && !r.raw.key_arn.is_empty())
            .map(|r| r.raw.key_arn.as_str())
    }

    /// Refuses to act when the record's profiles now lead to other accounts than it recorded:
    /// its ARNs would point at the wrong accounts.
    pub fn check_accounts(&self, spec: &GrantSpec) -> Result<()> {
        let Some(r) = &self.record else { return Ok(()) };
        for (what, profile, recorded, now) in [
            ("owner", &r.raw.owner_profile, &r.owner_account, &spec.owner),
            ("user", &r.raw.user_profile, &r.user_account, &spec.user),
        ] {
            if recorded != now {
                return Err(Error::Input(format!(
                    "the record says the {what} account is {recorded}, but profile '{profile}' is now account {now}; fix the profile or pass --config for another record"
                )));
            }
        }
        Ok(())
    }
}

/// Both account sides of a deployment, opened (clients built, nothing asked yet).
#[derive(Debug)]
pub struct Sides {
    /// The owner account.
    pub owner: Session,
    /// The user account.
    pub user: Session,
}

/// Checks both profiles and resolves the region once, then builds both sides' clients. No AWS
/// call: commands start their reads alongside [`Sides::identify`].
pub async fn open(
    ctx: &Context,
    owner_profile: &str,
    user_profile: &str,
    region: Option<&Region>,
) -> Result<Sides> {
    check_profiles(&[owner_profile, user_profile]).await?;
    let region = match region {
        Some(r) => r.clone(),
        None => profile_region(owner_profile).await?,
    };
    let (owner, user) = tokio::try_join!(
        Session::open(Side::Owner, owner_profile, Some(&region), &ctx.calls),
        Session::open(Side::User, user_profile, Some(&region), &ctx.calls),
    )?;
    Ok(Sides { owner, user })
}

impl Sides {
    /// Learns both accounts concurrently and refuses two profiles in one account.
    pub async fn identify(&self, alias: &AliasName) -> Result<GrantSpec> {
        let (owner, user) = tokio::try_join!(self.owner.identify(), self.user.identify())?;
        if owner == user {
            return Err(Error::Input(format!(
                "--owner {} and --user {} are both account {owner}; cross-account access needs two different accounts",
                self.owner.profile, self.user.profile
            )));
        }
        Ok(GrantSpec {
            region: self.owner.region.clone(),
            owner,
            user,
            alias: alias.clone(),
        })
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
    role.cloned()
        .unwrap_or_else(|| RoleName::default_for(alias))
}

/// Loads the record at `path` if there is one; a missing record is not an error here.
pub fn existing_record(path: &Path) -> Result<Option<CheckedDeployment>> {
    match Deployment::load(path) {
        Ok(r) => Ok(Some(r)),
        Err(RecordError::Missing(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
