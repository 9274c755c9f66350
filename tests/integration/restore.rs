//! After teardown: the record says what was torn down and when the keys go; status shows it; a
//! new setup starts afresh; `restore` undoes the teardown within the pending window, and after
//! it says what is gone.

use crate::proxy::{Fault, FaultProxy, Rule};
use crate::support::{Sandbox, endpoint, stderr, stdout};

/// The key state of `key` in the owner account, read directly.
fn state(sb: &Sandbox, key: &str) -> String {
    let kms = sb.kms(&sb.owner.account);
    let meta = sb.block_on(kms.describe_key().key_id(key).send()).unwrap();
    meta.key_metadata().unwrap().key_state().unwrap().as_str().to_string()
}

fn record(sb: &Sandbox) -> toml::Value {
    toml::from_str(&std::fs::read_to_string(sb.record()).unwrap()).unwrap()
}

#[test]
fn teardown_is_recorded_and_restore_brings_keys_aliases_and_roles_back() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let (old_key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    sb.cmd().arg("rotate").assert().success();
    let (key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let out = sb.cmd().arg("teardown").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let torn = record(&sb)["torn_down"].clone();
    let deletions = torn["deletions"].as_array().expect("deletions recorded");
    let arns: Vec<&str> = deletions.iter().map(|d| d["arn"].as_str().unwrap()).collect();
    assert_eq!(arns.len(), 2, "{torn:?}");
    assert!(arns.contains(&key.as_str()) && arns.contains(&old_key.as_str()), "{torn:?}");
    let date = deletions[0]["date"].as_str().unwrap().to_string();
    let out = sb.cmd().arg("status").output().unwrap();
    assert!(stdout(&out).contains("torn down at"), "{}", stdout(&out));
    assert!(stdout(&out).contains("key deletion on"), "{}", stdout(&out));

    let out = sb.cmd().arg("restore").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(state(&sb, &key), "Enabled");
    assert_eq!(state(&sb, &old_key), "Enabled");
    let (at, _) = sb.alias_target(&sb.owner.account, &sb.alias).expect("alias back");
    assert_eq!(at, key);
    let retired = format!("{}/retired/{}", sb.alias, &old_key.rsplit('/').next().unwrap()[..8]);
    let (at, _) = sb.alias_target(&sb.owner.account, &retired).expect("retired alias back");
    assert_eq!(at, old_key);
    assert!(sb.role_exists(&sb.user.account, &sb.role_name()));
    assert!(record(&sb).get("torn_down").is_none(), "the record still says torn down");
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!date.is_empty());
}

#[test]
fn a_new_setup_after_a_complete_teardown_starts_afresh() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let (first, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    sb.cmd().arg("teardown").assert().success();
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (second, state) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    assert_ne!(first, second, "the torn-down key was reused");
    assert_eq!(state, "Enabled");
    assert!(record(&sb).get("torn_down").is_none());
}

#[test]
fn restore_after_the_pending_window_says_what_is_gone_and_changes_nothing() {
    let p = FaultProxy::start(&endpoint());
    let sb = Sandbox::via(&p.url());
    sb.setup(&[]).assert().success();
    let (key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    sb.cmd().arg("teardown").assert().success();
    // KMS has deleted the key: DescribeKey no longer finds it.
    p.add(Rule::on("kms", "DescribeKey", Fault::NotFound));
    let roles_created = p.count("CreateRole");
    let out = sb.cmd().arg("restore").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("key {key} was deleted")), "{}", stderr(&out));
    assert_eq!(p.count("CancelKeyDeletion"), 0, "restore cancelled a deletion");
    assert_eq!(p.count("CreateRole"), roles_created, "restore created a role");
    assert_eq!(state(&sb, &key), "PendingDeletion");
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()));
}

#[test]
fn restore_survives_a_lost_answer_to_each_write_it_makes() {
    for (service, op) in [
        ("kms", "CancelKeyDeletion"),
        ("kms", "EnableKey"),
        ("kms", "CreateAlias"),
        ("iam", "CreateRole"),
        ("iam", "PutRolePolicy"),
    ] {
        let p = FaultProxy::start(&endpoint());
        let sb = Sandbox::via(&p.url());
        sb.setup(&[]).assert().success();
        sb.cmd().arg("teardown").assert().success();
        p.add(Rule::on(service, op, Fault::ResetAfterForward).times(1));
        let out = sb.cmd().arg("restore").output().unwrap();
        assert!(out.status.success(), "{op}: {}{}", stdout(&out), stderr(&out));
        assert_eq!(p.injected(op), 1, "{op}: no answer was lost");
        sb.assert_deployed();
    }
}

#[test]
fn restore_refuses_a_deployment_that_is_not_torn_down() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let out = sb.cmd().arg("restore").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not torn down"), "{}", stderr(&out));
}
