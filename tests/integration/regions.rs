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

/// A deployment set up in the three regions, and its primary key's ARN.
fn deployed_in_three_regions() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let out = sb.setup(&["--regions", &REGIONS.join(",")]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (primary, ..) = sb.alias_in(PRIMARY).expect("alias in the primary region");
    (sb, primary)
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
    let plan = sb.cmd().arg("plan").args(sb.target()).args(["--regions", &three]).output().unwrap();
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
        .arg("plan")
        .args(sb.target())
        .args(["--regions", "us-east-1,ap-southeast-2"])
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
    let (sb, primary) = deployed_in_three_regions();
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

/// KMS clients acting as the deployment's role in the user account, in `regions`.
fn as_role(sb: &Sandbox, regions: &[&str]) -> Vec<aws_sdk_kms::Client> {
    use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(crate::support::endpoint())
            .credentials_provider(Credentials::new(&sb.user.account, "test", None, None, "test"))
            .build(),
    );
    let role_arn = format!("arn:aws:iam::{}:role/{}", sb.user.account, sb.role_name());
    let out = sb
        .block_on(sts.assume_role().role_arn(role_arn).role_session_name("it").send())
        .expect("AssumeRole");
    let c = out.credentials().unwrap();
    regions
        .iter()
        .map(|r| {
            aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new(r.to_string()))
                    .endpoint_url(crate::support::endpoint())
                    .credentials_provider(Credentials::new(
                        c.access_key_id(),
                        c.secret_access_key(),
                        Some(c.session_token().to_string()),
                        None,
                        "role",
                    ))
                    .build(),
            )
        })
        .collect()
}

#[test]
fn verify_proves_every_region_and_decrypts_across_regions() {
    let (sb, _) = deployed_in_three_regions();
    let out = sb.cmd().args(["--output", "json", "verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = json(&stdout(&out));
    let passed: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == true)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for region in &REGIONS[1..] {
        for name in [
            "alias-target",
            "key-enabled",
            "drift-key-policy",
            "policy-encrypt",
            "policy-decrypt",
            "encrypt",
            "decrypt",
            "cross-region-decrypt",
        ] {
            let wanted = format!("{name}@{region}");
            assert!(passed.contains(&wanted), "{wanted} not passed: {report}");
        }
    }
    // By flags, where setup's record is: the same deployment, every region.
    let out = sb.cmd().args(["verify", "--wait", "0"]).args(sb.target()).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("PASS  cross-region-decrypt@ap-southeast-2"), "{}", stdout(&out));
    // Read back with the SDK as the role: ciphertext made through the primary region's alias
    // decrypts through each replica region's alias.
    let clients = as_role(&sb, &REGIONS);
    let alias_arn = |r: &str| format!("arn:aws:kms:{r}:{}:{}", sb.owner.account, sb.alias);
    let sealed = sb
        .block_on(
            clients[0]
                .encrypt()
                .key_id(alias_arn(PRIMARY))
                .plaintext(aws_sdk_kms::primitives::Blob::new(b"multi-region".to_vec()))
                .send(),
        )
        .expect("Encrypt as the role");
    for (client, region) in clients.iter().zip(REGIONS).skip(1) {
        let opened = sb
            .block_on(
                client
                    .decrypt()
                    .key_id(alias_arn(region))
                    .ciphertext_blob(sealed.ciphertext_blob().unwrap().clone())
                    .send(),
            )
            .unwrap_or_else(|e| panic!("Decrypt in {region}: {e:?}"));
        assert_eq!(opened.plaintext().unwrap().as_ref(), b"multi-region", "{region}");
    }
}

#[test]
fn verify_fails_a_region_whose_replica_lost_the_grant() {
    let (sb, primary) = deployed_in_three_regions();
    let region = "ap-southeast-2";
    let kms = sb.kms_in(&sb.owner.account, region);
    let admin_only = serde_json::json!({"Version": "2012-10-17", "Statement": [sb.policy_in(region, &replica(&primary, region))["Statement"][0].clone()]});
    sb.block_on(
        kms.put_key_policy()
            .key_id(replica(&primary, region))
            .policy_name("default")
            .policy(admin_only.to_string())
            .send(),
    )
    .unwrap();
    let out = sb.cmd().args(["--output", "json", "verify", "--wait", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let report = json(&stdout(&out));
    let mut failed: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        vec![
            format!("drift-key-policy@{region}"),
            format!("policy-decrypt@{region}"),
            format!("policy-encrypt@{region}"),
        ],
        "{report}"
    );
}

#[test]
fn bad_region_lists_change_nothing() {
    let sb = Sandbox::new();
    for (args, message) in [
        (vec!["--regions", "us-east-1,eu-west-1,us-east-1"], "--regions names us-east-1 twice"),
        (vec!["--regions", "us-east-1,eu-west-1", "--region", "us-east-1"], "cannot be used with"),
        (vec!["--regions", "us-east-1,moon-1"], "moon-1"),
    ] {
        let out = sb.setup(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(sb.alias_in(PRIMARY), None);
    assert!(!sb.record().exists());
}

#[test]
fn a_one_region_key_is_not_made_multi_region_and_status_shows_every_region() {
    let sb = Sandbox::new();
    assert!(sb.setup(&[]).output().unwrap().status.success());
    let (key, ..) = sb.alias_in(PRIMARY).unwrap();
    let out = sb.setup(&["--regions", "us-east-1,eu-west-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a conflict: {}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("one-Region key"), "{}", stderr(&out));
    assert_eq!(sb.alias_in("eu-west-1"), None);
    assert_eq!(sb.alias_in(PRIMARY).map(|a| a.0), Some(key));

    let multi = Sandbox::new();
    assert!(multi.setup(&["--regions", "us-east-1,eu-west-1"]).output().unwrap().status.success());
    let (primary, ..) = multi.alias_in(PRIMARY).unwrap();
    // status shows every region.
    let out = multi.cmd().args(["status"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "{}  Enabled  (replica in eu-west-1, behind the alias)",
            replica(&primary, "eu-west-1")
        )),
        "{text}"
    );
}

/// The checks of a JSON report that passed, by name.
fn passed(report: &serde_json::Value) -> Vec<String> {
    let checks = report["checks"].as_array().unwrap();
    checks.iter().filter(|c| c["ok"] == true).map(|c| c["name"].as_str().unwrap().into()).collect()
}

#[test]
fn rotate_in_three_regions_moves_every_alias_and_keeps_old_data_readable() {
    let (sb, old) = deployed_in_three_regions();
    let out = sb.cmd().args(["--output", "json", "rotate", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = json(&stdout(&out));
    let (new, _, multi) = sb.alias_in(PRIMARY).unwrap();
    assert!(new != old && multi && new.contains(":key/mrk-"), "{new}");
    let short: String = old.rsplit('/').next().unwrap().chars().take(8).collect();
    let retired = format!("{}/retired/{short}", sb.alias);
    let passed = passed(&report);
    for region in REGIONS {
        let (arn, state, _) = sb.alias_in(region).unwrap();
        assert_eq!((arn, state.as_str()), (replica(&new, region), "Enabled"), "{region}");
        let kms = sb.kms_in(&sb.owner.account, region);
        let retired_target = sb.block_on(kms.describe_key().key_id(&retired).send()).unwrap();
        assert_eq!(
            retired_target.key_metadata().unwrap().arn(),
            Some(replica(&old, region).as_str()),
            "{region}"
        );
        let suffix = if region == PRIMARY { String::new() } else { format!("@{region}") };
        for name in
            ["policy-decrypt-old", "policy-encrypt-new", "encrypt-new-key", "decrypt-old-data"]
        {
            assert!(passed.contains(&format!("{name}{suffix}")), "{name}{suffix}: {report}");
        }
    }
    // verify passes afterwards, and teardown leaves no alias, and every key pending deletion.
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = sb.cmd().args(["teardown"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for region in REGIONS {
        assert_eq!(sb.alias_in(region), None, "{region}");
        for key in [&old, &new] {
            assert_eq!(
                sb.key_state_in(region, &replica(key, region)),
                "PendingDeletion",
                "{region}"
            );
        }
        let kms = sb.kms_in(&sb.owner.account, region);
        assert!(
            sb.block_on(kms.describe_key().key_id(&retired).send()).is_err(),
            "{retired} left in {region}"
        );
    }
}

#[test]
fn rotate_multi_region_moves_a_one_region_deployment_to_replicated_keys() {
    let sb = Sandbox::new();
    assert!(sb.setup(&[]).output().unwrap().status.success());
    let (old, _, multi) = sb.alias_in(PRIMARY).unwrap();
    assert!(!multi);
    let out = sb
        .cmd()
        .args([
            "--output",
            "json",
            "rotate",
            "--wait",
            "0",
            "--multi-region",
            "eu-west-1,ap-southeast-2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let passed = passed(&json(&stdout(&out)));
    let (new, _, multi) = sb.alias_in(PRIMARY).unwrap();
    assert!(multi && new != old, "{new}");
    for region in &REGIONS[1..] {
        assert_eq!(sb.alias_in(region).map(|a| a.0), Some(replica(&new, region)));
        assert!(passed.contains(&format!("encrypt-new-key@{region}")), "{passed:?}");
        // The old key was one-Region: there is no old data to read in the other regions.
        assert!(!passed.iter().any(|p| p == &format!("decrypt-old-data@{region}")), "{passed:?}");
    }
    assert!(passed.contains(&"decrypt-old-data".to_string()), "{passed:?}");
    let record = std::fs::read_to_string(sb.record()).unwrap();
    assert!(record.contains(r#"replica_regions = ["eu-west-1", "ap-southeast-2"]"#), "{record}");
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // Once multi-Region, regions change with setup --regions, not rotate --multi-region.
    let out = sb.cmd().args(["rotate", "--multi-region", "eu-central-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(sb.alias_in(PRIMARY).map(|a| a.0), Some(new));
}

/// A lost answer to ReplicateKey: the replica was made, the SDK asked again and heard "already
/// exists"; setup reads the replica back in its region and goes on. Exactly one replica, the
/// alias on it.
#[test]
fn setup_survives_a_lost_replicate_key_answer() {
    use crate::proxy::{Fault, FaultProxy, Rule};
    let p = FaultProxy::start(&crate::support::endpoint());
    let sb = Sandbox::via(&p.url());
    p.add(Rule::on("kms", "ReplicateKey", Fault::ResetAfterForward).times(1));
    let out = sb.setup(&["--regions", "us-east-1,eu-west-1"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(p.injected("ReplicateKey"), 1, "no answer was lost");
    assert!(stdout(&out).contains("already so"), "{}", stdout(&out));
    let (primary, ..) = sb.alias_in(PRIMARY).unwrap();
    assert_eq!(sb.alias_in("eu-west-1").map(|a| a.0), Some(replica(&primary, "eu-west-1")));
    let kms = sb.kms_in(&sb.owner.account, "eu-west-1");
    let keys = sb.block_on(kms.list_keys().send()).unwrap();
    assert_eq!(keys.keys().len(), 1, "one replica in eu-west-1: {keys:?}");
}

#[test]
fn restore_brings_back_every_region() {
    let (sb, primary) = deployed_in_three_regions();
    let out = sb.cmd().args(["teardown"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("`kmsxacct restore` undoes this teardown"), "{}", stdout(&out));
    let record = std::fs::read_to_string(sb.record()).unwrap();
    for region in REGIONS {
        assert!(
            record.contains(&replica(&primary, region)),
            "deletion of {region} recorded: {record}"
        );
    }
    let out = sb.cmd().args(["restore", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for region in REGIONS {
        let (arn, state, _) = sb.alias_in(region).unwrap_or_else(|| panic!("alias in {region}"));
        assert_eq!((arn, state.as_str()), (replica(&primary, region), "Enabled"), "{region}");
    }
    assert!(sb.role_exists(&sb.user.account, &sb.role_name()));
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
