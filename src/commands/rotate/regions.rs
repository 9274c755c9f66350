//! rotate in the replica regions of a multi-Region key: the new primary is replicated into each
//! region (with that region's old key policy), the old replica there keeps the retirement alias
//! and the alias moves to the new replica. `rotate --multi-region` makes the first replicas of a
//! deployment whose old key was one-Region: there the alias is simply created.

use super::super::{Context, Sides};
use crate::aws::Session;
use crate::error::Result;
use crate::names::{AccountId, Region};
use crate::output::{Change, Printer};
use crate::owner::{self, KeyReads};
use crate::plan::replica_arn;
use crate::plan::{KeyState, deployment_tags};
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec};
use crate::writes::{self, Propagation, Write, apply_to};
use std::time::Instant;

/// The old key's replica in each of `regions` that has one.
pub(super) async fn read_old(
    owner: &Session,
    old: &KeyState,
    regions: &[Region],
) -> Result<Vec<(Region, KeyState)>> {
    let reads = regions.iter().map(|region| async move {
        let regional = owner.in_region(region);
        let arn = replica_arn(&old.arn, region);
        let replica = owner::read_key(&regional, &arn, KeyReads::SETUP).await?;
        Ok::<_, crate::error::Error>(replica.map(|k| (region.clone(), k)))
    });
    let found = futures_util::future::try_join_all(reads).await?;
    Ok(found.into_iter().flatten().collect())
}

/// What the regional steps of rotate work with.
pub(super) struct Moves<'a> {
    pub spec: &'a GrantSpec,
    /// The old key's replicas, by region.
    pub old_replicas: &'a [(Region, KeyState)],
    /// The new primary key.
    pub new_arn: &'a str,
    pub retired_alias: &'a str,
    /// The old primary's key policy: the new replicas' where the old key had none.
    pub key_policy: &'a PolicyDocument,
    /// Until when a key policy naming principals KMS does not see yet is retried.
    pub wait_until: Instant,
    pub printer: &'a Printer,
}

impl Moves<'_> {
    fn old_replica(&self, region: &Region) -> Option<&KeyState> {
        self.old_replicas.iter().find(|(r, _)| r == region).map(|(_, k)| k)
    }

    /// Replicates the new primary into every replica region.
    pub(super) async fn replicate(&self, owner: &Session, changes: &mut Vec<Change>) -> Result<()> {
        let tags = deployment_tags(self.spec);
        let wait = Propagation { until: self.wait_until, printer: self.printer };
        for region in &self.spec.replica_regions {
            let policy = self.old_replica(region).and_then(|k| k.policy.as_ref());
            let write = Write::ReplicateKey {
                key_arn: self.new_arn,
                region,
                policy: policy.unwrap_or(self.key_policy),
                tags: &tags,
            };
            changes.push(writes::apply(owner, &write, Some(wait)).await?.change);
        }
        Ok(())
    }

    /// In every replica region: the retirement alias on the old replica, and the alias moved to
    /// the new one (created, where the old key had no replica).
    pub(super) async fn move_aliases(
        &self,
        owner: &Session,
        changes: &mut Vec<Change>,
    ) -> Result<()> {
        let alias = self.spec.alias.as_str();
        for region in &self.spec.replica_regions {
            let regional = owner.in_region(region);
            let new_replica = replica_arn(self.new_arn, region);
            match self.old_replica(region) {
                Some(old) => {
                    let retire =
                        Write::CreateAlias { alias: self.retired_alias, key_arn: &old.arn };
                    apply_to(changes, &regional, retire).await?;
                    let update = Write::UpdateAlias { alias, key_arn: &new_replica };
                    apply_to(changes, &regional, update).await?;
                }
                None => {
                    let create = Write::CreateAlias { alias, key_arn: &new_replica };
                    apply_to(changes, &regional, create).await?;
                }
            }
        }
        Ok(())
    }
}

/// Puts the role policy of every user account, as setup writes it for the new regions.
pub(super) async fn widen_role_policies(
    ctx: &Context,
    sides: &Sides,
    users: &[AccountId],
    spec: &GrantSpec,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let policy = build::role_access_policy(spec);
    let work = sides
        .users
        .iter()
        .zip(users)
        .map(|(session, account)| {
            let policy = &policy;
            async move {
                let role_arn = spec.role_arn(account);
                let write = Write::PutRolePolicy {
                    role: spec.role.as_str(),
                    role_arn: &role_arn,
                    name: build::ROLE_POLICY_NAME,
                    policy,
                    new_role: false,
                };
                let mut made = Vec::new();
                let done = apply_to(&mut made, session, write).await;
                done.map(|_| made)
            }
        })
        .collect();
    for made in ctx.bounded(work).await {
        changes.extend(made?);
    }
    Ok(())
}
