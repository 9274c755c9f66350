//! kmsxacct touches only what it created: conflicts stop a command before any change.

use crate::support::{Sandbox, stderr, stdout};

fn trust_policy(account: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "sts:AssumeRole"}]
    })
    .to_string()
}

#[test]
fn setup_refuses_an_alias_it_did_not_create_and_changes_nothing() {
    let sb = Sandbox::new();
    let key_id = sb.foreign_key_behind_alias(None);
    let out = sb.setup(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&sb.alias) && err.contains("did not create"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(sb.keys(&sb.owner.account).len(), 1, "a key was created");
    assert!(sb.alias_target(&sb.owner.account, &sb.alias).unwrap().0.ends_with(&key_id));
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()), "the role was created");
    assert!(!sb.record().exists());
}

#[test]
fn setup_refuses_a_role_it_did_not_create_and_changes_nothing() {
    let sb = Sandbox::new();
    let iam = sb.iam(&sb.user.account);
    sb.block_on(
        iam.create_role()
            .role_name(sb.role_name())
            .assume_role_policy_document(trust_policy(&sb.user.account))
            .send(),
    )
    .unwrap();
    let out = sb.setup(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("role {}", sb.role_name())), "{}", stderr(&out));
    assert!(sb.keys(&sb.owner.account).is_empty(), "a key was created");
    let policies = sb.block_on(iam.list_role_policies().role_name(sb.role_name()).send()).unwrap();
    assert!(policies.policy_names().is_empty(), "the foreign role was given a policy");
}

#[test]
fn teardown_leaves_an_untagged_role_and_everything_else_in_place() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let iam = sb.iam(&sb.user.account);
    sb.block_on(iam.untag_role().role_name(sb.role_name()).tag_keys("kmsxacct:managed-by").send())
        .unwrap();
    let out = sb.cmd().arg("teardown").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("left in place"), "{}", stderr(&out));
    assert!(sb.role_exists(&sb.user.account, &sb.role_name()));
    let (_, state) = sb.alias_target(&sb.owner.account, &sb.alias).expect("alias kept");
    assert_eq!(state, "Enabled");
}

#[test]
fn teardown_leaves_an_untagged_key_and_its_alias() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let (key_arn, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let kms = sb.kms(&sb.owner.account);
    sb.block_on(kms.untag_resource().key_id(&key_arn).tag_keys("kmsxacct:alias").send()).unwrap();
    let out = sb.cmd().arg("teardown").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&key_arn), "{}", stderr(&out));
    assert_eq!(sb.alias_target(&sb.owner.account, &sb.alias).unwrap(), (key_arn, "Enabled".into()));
    // Nothing else was removed either: a refusal changes nothing.
    assert!(sb.role_exists(&sb.user.account, &sb.role_name()));
}

#[test]
fn teardown_will_not_delete_a_key_that_carries_someone_elses_alias() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let (key_arn, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let kms = sb.kms(&sb.owner.account);
    let other = format!("{}-someone-else", sb.alias);
    sb.block_on(kms.create_alias().alias_name(&other).target_key_id(&key_arn).send()).unwrap();
    let out = sb.cmd().arg("teardown").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&other), "{}", stderr(&out));
    assert_eq!(sb.alias_target(&sb.owner.account, &other).unwrap().1, "Enabled");
    assert!(sb.alias_target(&sb.owner.account, &sb.alias).is_some());
}

#[test]
fn teardown_leaves_a_role_that_carries_policies_it_did_not_put_there() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let iam = sb.iam(&sb.user.account);
    sb.block_on(
        iam.put_role_policy()
            .role_name(sb.role_name())
            .policy_name("someone-elses")
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
            )
            .send(),
    )
    .unwrap();
    let out = sb.cmd().arg("teardown").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("someone-elses"), "{}", stderr(&out));
    assert!(sb.role_exists(&sb.user.account, &sb.role_name()));
}

#[test]
fn adoption_is_refused_by_default_then_grants_and_takes_back_only_the_statement() {
    let sb = Sandbox::new();
    let kms = sb.kms(&sb.owner.account);
    let admin = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admins", "Effect": "Allow",
         "Principal": {"AWS": format!("arn:aws:iam::{}:root", sb.owner.account)},
         "Action": "kms:*", "Resource": "*"}]});
    let key_id = sb.foreign_key_behind_alias(Some(&admin));
    let out = sb.setup(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--adopt"), "{}", stderr(&out));

    let out = sb.setup(&["--adopt"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sids: Vec<String> = sb.key_policy_of(&key_id)["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(sids, ["Admins", "KmsxacctCrossAccountUse"]);
    let tags = sb.block_on(kms.list_resource_tags().key_id(&key_id).send()).unwrap();
    assert!(tags.tags().is_empty(), "the adopted key was tagged");
    assert_eq!(sb.keys(&sb.owner.account).len(), 1, "a key was created");
    sb.cmd().args(["verify", "--wait", "0"]).assert().success();
    // A re-run converges without --adopt: the record remembers.
    sb.setup(&[]).assert().success();

    let out = sb.cmd().arg("teardown").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sb.alias_target(&sb.owner.account, &sb.alias).map(|t| t.1),
        Some("Enabled".to_string()),
        "the adopted alias or key was removed"
    );
    let sids: Vec<String> = sb.key_policy_of(&key_id)["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(sids, ["Admins"]);
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()));
    let out = sb.cmd().arg("teardown").output().unwrap();
    assert!(out.status.success() && stdout(&out).contains("nothing to do"), "{}", stdout(&out));
}
