//! Multi-Region keys: one alias in every region, one deployment, read back region by region.

use crate::support::{Sandbox, json, stderr, stdout};

const PRIMARY: &str = "us-east-1";
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];

impl Sandbox {
    /// The key the alias points at in `region` of the owner account: (ARN, state, multi-Region).
    fn alias_in(&self, region: &str) -> Option<(String, String, bool)> {
        let kms = self.kms_in(&self.owner.account, region);
        self.block_on(async {
            match kms.describe_key().key_id(&self.alias).send().await {
                Ok(out) => {
                    let m = out.key_metadata().unwrap();
                    Some((
                        m.arn().unwrap().to_string(),
                        m.key_state().unwrap().as_str().to_string(),
                        m.multi_region().unwrap_or(false),
                    ))
                }
                Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found_exception()) => None,
                Err(e) => panic!("DescribeKey in {region}: {e:?}"),
            }
        })
    }

    /// The state of `key` (ARN) in its region.
    fn key_state_in(&self, region: &str, key: &str) -> String {
        let kms = self.kms_in(&self.owner.account, region);
        let out = self.block_on(kms.describe_key().key_id(key).send()).expect("DescribeKey");
        out.key_metadata().unwrap().key_state().unwrap().as_str().to_string()
    }

    /// The key policy of `key` (ARN) in its region.
    fn policy_in(&self, region: &str, key: &str) -> serde_json::Value {
        let kms = self.kms_in(&self.owner.account, region);
        let out = self
            .block_on(kms.get_key_policy().key_id(key).policy_name("default").send())
            .expect("GetKeyPolicy");
        json(out.policy().unwrap_or_default())
    }
}

fn replica(primary: &str, region: &str) -> String {
    primary.replacen(PRIMARY, region, 1)
}

/// The grant statement's principals in a key policy.
fn grantees(policy: &serde_json::Value) -> serde_json::Value {
    let statements = policy["Statement"].as_array().unwrap();
    let grant = statements.iter().find(|s| s["Sid"] == "KmsxacctCrossAccountUse").unwrap();
    grant["Principal"]["AWS"].clone()
}

#[test]
fn setup_in_three_regions_makes_a_primary_replicas_and_the_alias_in_each() {
    let sb = Sandbox::new();
    let out = sb.setup(&["--regions", &REGIONS.join(",")]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (primary, state, multi) = sb.alias_in(PRIMARY).expect("alias in the primary region");
    assert!(primary.contains(":key/mrk-"), "{primary}");
    assert_eq!((state.as_str(), multi), ("Enabled", true));
    let user_root = format!("arn:aws:iam::{}:root", sb.user.account);
    for region in &REGIONS[1..] {
        let (arn, state, multi) = sb.alias_in(region).expect("alias in the replica region");
        assert_eq!(
            (arn.as_str(), state.as_str(), multi),
            (replica(&primary, region).as_str(), "Enabled", true)
        );
        assert_eq!(grantees(&sb.policy_in(region, &arn)), serde_json::json!(user_root));
    }
    // The role policy covers exactly the three regions' keys.
    let resources = sb.role_policy(&sb.user.account)["Statement"][0]["Resource"].clone();
    let expected: Vec<String> =
        REGIONS.iter().map(|r| format!("arn:aws:kms:{r}:{}:key/*", sb.owner.account)).collect();
    assert_eq!(resources, serde_json::json!(expected));
    // The record names the replica regions.
    let record = std::fs::read_to_string(sb.record()).unwrap();
    assert!(record.contains(r#"replica_regions = ["eu-west-1", "ap-southeast-2"]"#), "{record}");
    // Again: nothing to change.
    let again = sb.setup(&["--regions", &REGIONS.join(",")]).output().unwrap();
    assert!(stdout(&again).contains("nothing to change"), "{}{}", stdout(&again), stderr(&again));
}

#[test]
fn a_region_added_gets_a_replica_and_a_region_dropped_loses_it() {
    let sb = Sandbox::new();
    let two = "us-east-1,eu-west-1";
    let out = sb.setup(&["--regions", two]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (primary, ..) = sb.alias_in(PRIMARY).unwrap();
    assert_eq!(sb.alias_in("ap-southeast-2"), None);
    // Added: plan shows it, setup makes it.
    let three = REGIONS.join(",");
    let plan = sb
        .cmd()
        .args([
            "plan",
            "--owner",
            &sb.owner.name,
            "--user",
            &sb.user.name,
            "--alias",
            &sb.alias,
            "--regions",
            &three,
        ])
        .output()
        .unwrap();
    let text = stdout(&plan);
    assert!(
        text.contains(&format!(
            "create             key          {}  (in ap-southeast-2)",
            replica(&primary, "ap-southeast-2")
        )),
        "{text}"
    );
    let out = sb.setup(&["--regions", &three]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let added = replica(&primary, "ap-southeast-2");
    assert_eq!(sb.alias_in("ap-southeast-2").map(|a| a.0), Some(added.clone()));
    // Dropped: plan shows the scheduled deletion; setup applies it.
    let plan = sb
        .cmd()
        .args([
            "plan",
            "--owner",
            &sb.owner.name,
            "--user",
            &sb.user.name,
            "--alias",
            &sb.alias,
            "--regions",
            "us-east-1,ap-southeast-2",
        ])
        .output()
        .unwrap();
    let text = stdout(&plan);
    let gone = replica(&primary, "eu-west-1");
    assert!(
        text.contains(&format!("schedule-deletion  key          {gone}  (in eu-west-1)")),
        "{text}"
    );
    assert_eq!(sb.key_state_in("eu-west-1", &gone), "Enabled", "plan changed nothing");
    let out = sb.setup(&["--regions", "us-east-1,ap-southeast-2"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(sb.key_state_in("eu-west-1", &gone), "PendingDeletion");
    assert_eq!(sb.alias_in("eu-west-1"), None);
    assert_eq!(sb.key_state_in("ap-southeast-2", &added), "Enabled");
    let resources = sb.role_policy(&sb.user.account)["Statement"][0]["Resource"].clone();
    assert_eq!(
        resources,
        serde_json::json!([
            format!("arn:aws:kms:us-east-1:{}:key/*", sb.owner.account),
            format!("arn:aws:kms:ap-southeast-2:{}:key/*", sb.owner.account)
        ])
    );
}

#[test]
fn teardown_schedules_every_replica_before_the_primary() {
    let sb = Sandbox::new();
    let out = sb.setup(&["--regions", &REGIONS.join(",")]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (primary, ..) = sb.alias_in(PRIMARY).unwrap();
    let out = sb.cmd().args(["teardown"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let first_replica = text
        .find(&replica(&primary, "eu-west-1"))
        .unwrap_or_else(|| panic!("replica deleted: {text}{}", stderr(&out)));
    let primary_at = text
        .find(&format!("scheduled-deletion key {primary}"))
        .or_else(|| text.rfind(&primary))
        .unwrap();
    assert!(first_replica < primary_at, "{text}");
    // AWS shows the primary as PendingReplicaDeletion until its replicas are gone; LocalStack
    // shows PendingDeletion for every one of them.
    for region in REGIONS {
        assert_eq!(sb.alias_in(region), None, "alias left in {region}");
        assert_eq!(
            sb.key_state_in(region, &replica(&primary, region)),
            "PendingDeletion",
            "{region}"
        );
    }
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()));
}
