//! `kmsxacct status`: what the recorded deployment looks like now in every account.

use super::{Context, Sides, Target, TargetArgs};
use crate::error::Result;
use crate::owner::KeyReads;
use crate::record::{LastVerify, TornDown};
use crate::{owner, user};
use serde::Serialize;

/// Flags of `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Which deployment; without these flags, the record (--config) says.
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Serialize)]
struct KeyStatus {
    arn: String,
    state: String,
    aliases: Vec<String>,
    is_recorded_key: Option<bool>,
}

#[derive(Serialize)]
struct UserStatus {
    profile: String,
    account: String,
    role_arn: Option<String>,
    role_policy: bool,
}

#[derive(Serialize)]
struct ReplicaStatus {
    region: String,
    /// The key the alias leads to in the region (none: no alias there).
    arn: Option<String>,
    state: Option<String>,
}

/// A StackSet rollout's stack set as it is now.
#[derive(Serialize)]
struct StackSetStatus {
    name: String,
    admin_account: String,
    /// Whether it exists.
    exists: bool,
    /// The accounts holding an instance.
    accounts: Vec<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    alias: &'a str,
    owner_account: String,
    region: String,
    key: Option<KeyStatus>,
    /// Each replica region of a multi-Region key: the key its alias leads to there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    replicas: Vec<ReplicaStatus>,
    users: Vec<UserStatus>,
    /// The stack set of a StackSet rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    stack_set: Option<StackSetStatus>,
    last_verify: Option<&'a LastVerify>,
    torn_down: Option<&'a TornDown>,
}

/// Runs status: reads only; exit 0 whatever it finds (verify is the check).
pub async fn run(ctx: &Context, args: &StatusArgs) -> Result<()> {
    let target = Target::resolve(&args.target, &ctx.config)?;
    let sides = target.open(ctx).await?;
    let report = read(ctx, &target, &sides).await?;
    print_text(ctx, &target, &report);
    ctx.printer.json(&report, ctx.calls.snapshot());
    Ok(())
}

/// Learns the accounts and reads the alias's key and every role at once.
async fn read<'a>(ctx: &Context, target: &'a Target, sides: &Sides) -> Result<Report<'a>> {
    let role_reads =
        sides.users.iter().map(|u| user::read_role(u, target.role.as_str(), false)).collect();
    let reads = KeyReads { tags: false, policy: false, aliases: true };
    let replica_reads = target.replica_regions().into_iter().map(|region| async move {
        let regional = sides.owner.in_region(&region);
        let key = owner::read_key(&regional, target.alias.as_str(), reads).await?;
        Ok::<_, crate::error::Error>(ReplicaStatus {
            region: region.to_string(),
            state: key.as_ref().map(|k| k.state.clone()),
            arn: key.map(|k| k.arn),
        })
    });
    let stack_set = async {
        let Some(set) = target.stack_set() else { return Ok(None) };
        let now = target.read_stack_set(sides).await?;
        Ok::<_, crate::error::Error>(Some(StackSetStatus {
            name: set.name.clone(),
            admin_account: set.admin_account.clone(),
            exists: now.is_some(),
            accounts: now.iter().flat_map(|n| &n.accounts).map(|a| a.to_string()).collect(),
        }))
    };
    let (ids, key, roles, replicas, stack_set) = tokio::join!(
        sides.identify(ctx),
        owner::read_key(&sides.owner, target.alias.as_str(), reads),
        ctx.bounded(role_reads),
        futures_util::future::try_join_all(replica_reads),
        stack_set,
    );
    let (owner_account, users) = ids?;
    target.check_accounts(&owner_account, &users)?;
    let key = key?.map(|k| KeyStatus {
        is_recorded_key: target.recorded_key().map(|r| r == k.arn),
        arn: k.arn,
        state: k.state,
        aliases: k.aliases,
    });
    let mut user_status = Vec::new();
    for ((profile, account), role) in target.user_profiles.iter().zip(&users).zip(roles) {
        let role = role?;
        user_status.push(UserStatus {
            profile: profile.clone(),
            account: account.to_string(),
            role_policy: role.as_ref().is_some_and(|r| r.access_policy.is_some()),
            role_arn: role.map(|r| r.arn),
        });
    }
    Ok(Report {
        command: "status",
        alias: target.alias.as_str(),
        owner_account: owner_account.to_string(),
        region: sides.region().to_string(),
        key,
        replicas: replicas?,
        users: user_status,
        stack_set: stack_set?,
        last_verify: target.record.as_ref().and_then(|r| r.raw.last_verify.as_ref()),
        torn_down: target.record.as_ref().and_then(|r| r.raw.torn_down.as_ref()),
    })
}

/// One line for the deployment, the key, the alias, each role and the last verify.
fn print_text(ctx: &Context, target: &Target, report: &Report<'_>) {
    let owner = &report.owner_account;
    let record = match target.record {
        Some(_) => format!(" (record {})", ctx.config.display()),
        None => String::new(),
    };
    let p = &ctx.printer;
    p.line(format!("deployment {} of account {owner} in {}{record}", target.alias, report.region));
    match &report.key {
        Some(k) => {
            let not_recorded = match k.is_recorded_key {
                Some(false) => "  (not the recorded key!)",
                _ => "",
            };
            p.line(format!("owner {owner}  key    {}  {}{not_recorded}", k.arn, k.state));
            p.line(format!(
                "owner {owner}  alias  {} -> the key; its aliases: {}",
                target.alias,
                k.aliases.join(", ")
            ));
        }
        None => p.line(format!("owner {owner}  alias  {} does not exist", target.alias)),
    }
    for r in &report.replicas {
        p.line(match (&r.arn, &r.state) {
            (Some(arn), Some(state)) => {
                format!(
                    "owner {owner}  key    {arn}  {state}  (replica in {}, behind the alias)",
                    r.region
                )
            }
            _ => format!("owner {owner}  alias  {} does not exist in {}", target.alias, r.region),
        });
    }
    for u in &report.users {
        p.line(match &u.role_arn {
            Some(arn) if u.role_policy => format!("user  {}  role   {arn}", u.account),
            Some(arn) => {
                format!("user  {}  role   {arn}  (its kmsxacct policy is missing)", u.account)
            }
            None => format!("user  {}  role   {} does not exist", u.account, target.role),
        });
    }
    if let Some(set) = &report.stack_set {
        let admin = &set.admin_account;
        p.line(match set.exists {
            true => format!(
                "admin {admin}  stack-set {}  instances in {} account(s)",
                set.name,
                set.accounts.len()
            ),
            false => format!("admin {admin}  stack-set {} does not exist", set.name),
        });
    }
    if let Some(t) = report.torn_down {
        p.line(match t.first_deletion() {
            Some(date) => format!(
                "torn down at {}; key deletion on {date} (`kmsxacct restore` undoes the teardown until then)",
                t.at
            ),
            None => format!("torn down at {}", t.at),
        });
    }
    p.line(match report.last_verify {
        Some(v) => format!("last verify: {} at {}", if v.ok { "passed" } else { "FAILED" }, v.at),
        None => "last verify: none recorded".to_string(),
    });
}
