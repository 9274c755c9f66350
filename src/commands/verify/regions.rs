//! verify in each replica region of a multi-Region key: the alias leads to the primary's
//! replica, its key policy holds the grant, the policies allow every granted action there, the
//! role's live round trip there, and the multi-Region promise itself: bytes encrypted through
//! the primary region's alias decrypt through the replica region's alias.

use super::live::{self, exercise};
use super::{drift_check, policy_checks};
use crate::aws::Session;
use crate::error::Result;
use crate::names::{AccountId, Region};
use crate::output::Check;
use crate::owner::{self, KeyReads};
use crate::plan::replica_arn;
use crate::plan::{KEY_ENABLED, KeyState, converge_key_policy};
use crate::policy::PolicyDocument;
use crate::policy::build::{GrantSpec, KeyAction};

/// One replica region: its alias ARN, and the key the alias leads to there.
pub(super) struct RegionKey {
    region: Region,
    alias_arn: String,
    key: Result<Option<KeyState>>,
}

/// Reads the key behind the alias in every replica region, all at once.
pub(super) async fn read(owner: &Session, spec: &GrantSpec) -> Vec<RegionKey> {
    let reads = spec.replica_regions.iter().map(|region| async move {
        let regional = owner.in_region(region);
        RegionKey {
            region: region.clone(),
            alias_arn: spec.alias.arn(&spec.partition, region, &spec.owner),
            key: owner::read_key(&regional, spec.alias.as_str(), KeyReads::verify(false)).await,
        }
    });
    futures_util::future::join_all(reads).await
}

/// A check about one region.
fn in_region(c: Check, region: &Region) -> Check {
    Check { name: format!("{}@{region}", c.name), ..c }
}

/// The owner's side in each region: the alias leads to the primary's replica, Enabled, and its
/// key policy holds the grant.
pub(super) fn owner_checks(
    keys: &[RegionKey],
    spec: &GrantSpec,
    primary: Option<&str>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for rk in keys {
        let wanted = primary.map(|p| replica_arn(p, &rk.region));
        let found = match &rk.key {
            Ok(Some(k)) => k,
            Ok(None) => {
                let missing = format!("{} does not exist in {}", spec.alias, rk.region);
                checks.push(in_region(Check::new("alias-target", false, missing), &rk.region));
                continue;
            }
            Err(e) => {
                checks
                    .push(in_region(Check::new("alias-target", false, e.to_string()), &rk.region));
                continue;
            }
        };
        let target = match &wanted {
            Some(w) if *w == found.arn => Check::new(
                "alias-target",
                true,
                format!("{} points at {}, the replica of the primary key", spec.alias, found.arn),
            ),
            _ => Check::new(
                "alias-target",
                false,
                format!(
                    "{} points at {}, not at the replica {}",
                    spec.alias,
                    found.arn,
                    wanted.as_deref().unwrap_or("(no primary key)")
                ),
            ),
        };
        let enabled = Check::new(
            "key-enabled",
            found.state == KEY_ENABLED,
            format!("key {} is {}", found.arn, found.state),
        );
        let wanted_policy = converge_key_policy(spec, found);
        let drift = drift_check("drift-key-policy", found.policy.as_ref(), wanted_policy.as_ref());
        checks.extend([target, enabled, drift].into_iter().map(|c| in_region(c, &rk.region)));
    }
    checks
}

/// One user account in every replica region: the policy engine, the live round trip, and
/// ciphertext from the primary region's alias decrypted through the region's alias.
#[allow(clippy::too_many_arguments)]
pub(super) async fn user_checks(
    keys: &[RegionKey],
    spec: &GrantSpec,
    user: &Session,
    owner: &Session,
    account: &AccountId,
    role_arn: &str,
    policies: Option<Vec<(String, PolicyDocument)>>,
    primary_alias_arn: &str,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for rk in keys {
        let key = rk.key.as_ref().ok().and_then(Option::as_ref);
        let role_policies = policies.clone().ok_or_else(|| {
            crate::error::Error::Failed("the role's policies could not be read".into())
        });
        let engine = policy_checks(key, role_policies, role_arn, account, spec);
        let (regional_user, regional_owner) =
            (user.in_region(&rk.region), owner.in_region(&rk.region));
        let trip =
            exercise(&regional_user, &regional_owner, role_arn, &rk.alias_arn, &spec.actions).await;
        checks.extend(engine.into_iter().chain(trip.checks).map(|c| in_region(c, &rk.region)));
        if spec.actions.contains(&KeyAction::Encrypt) && spec.actions.contains(&KeyAction::Decrypt)
        {
            let from = (user, primary_alias_arn);
            let cross = live::cross_region(from, (&regional_user, &rk.alias_arn), role_arn).await;
            checks.push(in_region(cross, &rk.region));
        }
    }
    checks.into_iter().map(|c| c.in_account(account.as_str())).collect()
}
