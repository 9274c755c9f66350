//! Planning the replicas of a multi-Region key: in each replica region, the primary's replica
//! (the same key id), the alias pointing at it and the key policy; in each region dropped since
//! the last setup, the alias and the replica go. Pure code.

use super::{KEY_ENABLED, KEY_PENDING_DELETION, KeyState, converge_key_policy, is_ours};
use crate::names::Region;
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec};
use crate::policy::matching::Arn;

/// One region other than the primary's, as read.
#[derive(Debug, Clone)]
pub struct RegionSeen {
    /// The region.
    pub region: Region,
    /// The key the alias points at there.
    pub at_alias: Option<KeyState>,
    /// The primary's replica there (read by its ARN), when the primary exists.
    pub replica: Option<KeyState>,
}

/// What setup does in one replica region.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionPlan {
    /// The region.
    pub region: Region,
    /// Replicate the primary into the region with this key policy.
    pub replicate: Option<PolicyDocument>,
    /// Create the alias there, pointing at the replica.
    pub create_alias: bool,
    /// The replica's new key policy, when an existing replica's must change.
    pub put_policy: Option<PolicyDocument>,
}

/// What setup undoes in a region dropped from the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionDrop {
    /// The region.
    pub region: Region,
    /// Delete the alias there (it points at our replica).
    pub delete_alias: bool,
    /// The replica whose deletion is scheduled.
    pub schedule_deletion: Option<String>,
}

/// The ARN of a multi-Region key's replica in `region`: the same key id, that region's ARN.
pub fn replica_arn(primary_arn: &str, region: &Region) -> String {
    match Arn::parse(primary_arn) {
        Some(a) => {
            format!("arn:{}:{}:{region}:{}:{}", a.partition, a.service, a.account, a.resource)
        }
        None => primary_arn.to_string(),
    }
}

/// Plans every replica region (`kept`, in the order of `spec.replica_regions`) and every region
/// dropped since the last setup (`dropped`). `primary_arn` is the primary key's ARN, `None` when
/// setup is to create it. A conflict anywhere plans nothing.
pub fn plan_regions(
    spec: &GrantSpec,
    primary_arn: Option<&str>,
    kept: &[RegionSeen],
    dropped: &[RegionSeen],
) -> Result<(Vec<RegionPlan>, Vec<RegionDrop>), Vec<String>> {
    let mut conflicts = Vec::new();
    let mut plans = Vec::new();
    for seen in kept {
        match plan_region(spec, primary_arn, seen) {
            Ok(p) => plans.push(p),
            Err(c) => conflicts.push(c),
        }
    }
    let drops = dropped.iter().map(|seen| plan_drop(spec, primary_arn, seen)).collect();
    if conflicts.is_empty() { Ok((plans, drops)) } else { Err(conflicts) }
}

fn plan_region(
    spec: &GrantSpec,
    primary_arn: Option<&str>,
    seen: &RegionSeen,
) -> Result<RegionPlan, String> {
    let region = &seen.region;
    let wanted = primary_arn.map(|p| replica_arn(p, region));
    if let Some(k) = &seen.at_alias
        && Some(&k.arn) != wanted.as_ref()
    {
        return Err(format!(
            "{} in {region} already points at key {}, not at a replica of this deployment's key; choose another --alias, or drop {region} from --regions",
            spec.alias, k.arn
        ));
    }
    let replica = seen.replica.as_ref().or(seen.at_alias.as_ref());
    match replica {
        None => Ok(RegionPlan {
            region: region.clone(),
            replicate: Some(build::key_policy(spec)),
            create_alias: true,
            put_policy: None,
        }),
        Some(r) if !is_ours(&r.tags, spec) => Err(format!(
            "the replica {} in {region} lacks this deployment's tags; it was not made by kmsxacct for {}",
            r.arn, spec.alias
        )),
        Some(r) if r.state != KEY_ENABLED => Err(format!(
            "the replica {} in {region} is {} (not Enabled); `kmsxacct restore` or cancel its deletion first",
            r.arn, r.state
        )),
        Some(r) => Ok(RegionPlan {
            region: region.clone(),
            replicate: None,
            create_alias: seen.at_alias.is_none(),
            put_policy: converge_key_policy(spec, r),
        }),
    }
}

fn plan_drop(spec: &GrantSpec, primary_arn: Option<&str>, seen: &RegionSeen) -> RegionDrop {
    let ours = |k: &KeyState| {
        is_ours(&k.tags, spec) && primary_arn.is_some_and(|p| k.arn == replica_arn(p, &seen.region))
    };
    RegionDrop {
        region: seen.region.clone(),
        delete_alias: seen.at_alias.as_ref().is_some_and(ours),
        schedule_deletion: seen
            .replica
            .as_ref()
            .filter(|r| ours(r) && r.state != KEY_PENDING_DELETION)
            .map(|r| r.arn.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::deployment_tags;

    const PRIMARY: &str = "arn:aws:kms:us-east-1:111111111111:key/mrk-1";

    fn spec() -> GrantSpec {
        let mut s = GrantSpec::example(&["222222222222"]);
        s.replica_regions = vec![region("eu-west-1"), region("ap-southeast-2")];
        s
    }

    fn region(r: &str) -> Region {
        r.parse().unwrap()
    }

    fn replica(r: &str, tags: Vec<(String, String)>, state: &str) -> KeyState {
        KeyState {
            key_id: "mrk-1".into(),
            arn: replica_arn(PRIMARY, &region(r)),
            state: state.into(),
            deletion_date: None,
            tags,
            policy: Some(build::key_policy(&spec())),
            aliases: Vec::new(),
            multi_region: true,
        }
    }

    fn seen(r: &str, at_alias: Option<KeyState>, replica: Option<KeyState>) -> RegionSeen {
        RegionSeen { region: region(r), at_alias, replica }
    }

    #[test]
    fn replica_arns_keep_the_key_id_and_change_the_region() {
        assert_eq!(
            replica_arn(PRIMARY, &region("eu-west-1")),
            "arn:aws:kms:eu-west-1:111111111111:key/mrk-1"
        );
    }

    #[test]
    fn a_new_region_gets_a_replica_with_the_grant_and_an_alias() {
        let (plans, drops) =
            plan_regions(&spec(), Some(PRIMARY), &[seen("eu-west-1", None, None)], &[]).unwrap();
        assert_eq!(
            plans,
            vec![RegionPlan {
                region: region("eu-west-1"),
                replicate: Some(build::key_policy(&spec())),
                create_alias: true,
                put_policy: None,
            }]
        );
        assert!(drops.is_empty());
    }

    #[test]
    fn a_converged_region_changes_nothing_and_a_replica_without_its_alias_gets_one() {
        let tags = deployment_tags(&spec());
        let r = replica("eu-west-1", tags.clone(), KEY_ENABLED);
        let (plans, _) = plan_regions(
            &spec(),
            Some(PRIMARY),
            &[
                seen("eu-west-1", Some(r.clone()), Some(r.clone())),
                seen("ap-southeast-2", None, Some(replica("ap-southeast-2", tags, KEY_ENABLED))),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            (plans[0].replicate.is_some(), plans[0].create_alias, plans[0].put_policy.is_some()),
            (false, false, false)
        );
        assert_eq!((plans[1].replicate.is_some(), plans[1].create_alias), (false, true));
    }

    #[test]
    fn a_replica_whose_policy_drifted_gets_the_grant_back() {
        let mut r = replica("eu-west-1", deployment_tags(&spec()), KEY_ENABLED);
        r.policy = Some(PolicyDocument::new(vec![
            build::key_policy(&spec()).statements().next().unwrap().clone(),
        ]));
        let (plans, _) = plan_regions(
            &spec(),
            Some(PRIMARY),
            &[seen("eu-west-1", Some(r.clone()), Some(r))],
            &[],
        )
        .unwrap();
        assert!(
            plans[0].put_policy.as_ref().unwrap().statement_by_sid(build::USER_GRANT_SID).is_some()
        );
    }

    #[test]
    fn conflicts_in_any_region_plan_nothing() {
        let tags = deployment_tags(&spec());
        let foreign = KeyState {
            arn: "arn:aws:kms:eu-west-1:111111111111:key/other".into(),
            ..replica("eu-west-1", tags.clone(), KEY_ENABLED)
        };
        let untagged = replica("eu-west-1", vec![], KEY_ENABLED);
        let pending = replica("eu-west-1", tags, KEY_PENDING_DELETION);
        for (case, s) in [
            ("alias elsewhere", seen("eu-west-1", Some(foreign.clone()), None)),
            ("untagged replica", seen("eu-west-1", None, Some(untagged))),
            ("pending replica", seen("eu-west-1", None, Some(pending))),
        ] {
            let e = plan_regions(&spec(), Some(PRIMARY), &[s], &[]).unwrap_err();
            assert_eq!(e.len(), 1, "{case}");
            assert!(e[0].contains("eu-west-1"), "{case}: {e:?}");
        }
        // Before the primary exists, an alias in a replica region is in the way.
        assert!(
            plan_regions(&spec(), None, &[seen("eu-west-1", Some(foreign), None)], &[]).is_err()
        );
    }

    #[test]
    fn a_dropped_region_loses_our_alias_and_replica_only() {
        let tags = deployment_tags(&spec());
        let r = replica("eu-west-1", tags.clone(), KEY_ENABLED);
        let (_, drops) = plan_regions(
            &spec(),
            Some(PRIMARY),
            &[],
            &[seen("eu-west-1", Some(r.clone()), Some(r))],
        )
        .unwrap();
        assert_eq!(
            drops,
            vec![RegionDrop {
                region: region("eu-west-1"),
                delete_alias: true,
                schedule_deletion: Some("arn:aws:kms:eu-west-1:111111111111:key/mrk-1".into()),
            }]
        );
        let foreign = KeyState {
            arn: "arn:aws:kms:eu-west-1:111111111111:key/other".into(),
            ..replica("eu-west-1", tags.clone(), KEY_ENABLED)
        };
        let pending = replica("eu-west-1", tags, KEY_PENDING_DELETION);
        let (_, drops) = plan_regions(
            &spec(),
            Some(PRIMARY),
            &[],
            &[seen("eu-west-1", Some(foreign), Some(pending))],
        )
        .unwrap();
        assert_eq!((drops[0].delete_alias, drops[0].schedule_deletion.clone()), (false, None));
    }
}
