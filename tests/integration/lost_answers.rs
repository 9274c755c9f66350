//! Every write survives a lost answer: the call reached AWS and did its work, its answer never
//! came back, and the SDK sent it again. Table-driven over every write of setup, rotate and
//! teardown; each outcome is read back with the SDK. Also: an "already exists" that is not ours
//! is a conflict, and a used-up quota fails at once.

use crate::proxy::{Fault, FaultProxy, Rule};
use crate::support::{Sandbox, endpoint, stderr, stdout};

fn proxy() -> FaultProxy {
    FaultProxy::start(&endpoint())
}

/// Loses the answer of the next `op` call.
fn lose(p: &FaultProxy, service: &'static str, op: &'static str) {
    p.add(Rule::on(service, op, Fault::ResetAfterForward).times(1));
}

/// The role's trust policy principals, read back.
fn trusted(sb: &Sandbox) -> serde_json::Value {
    let iam = sb.iam(&sb.user.account);
    let role = sb.block_on(iam.get_role().role_name(sb.role_name()).send()).unwrap();
    let trust = crate::support::json(role.role().unwrap().assume_role_policy_document().unwrap());
    trust["Statement"][0]["Principal"]["AWS"].clone()
}

#[test]
fn setup_survives_a_lost_answer_to_each_write_it_makes() {
    for (service, op) in [("kms", "CreateAlias"), ("iam", "CreateRole"), ("iam", "PutRolePolicy")] {
        let p = proxy();
        let sb = Sandbox::via(&p.url());
        lose(&p, service, op);
        let out = sb.setup(&[]).output().unwrap();
        assert!(out.status.success(), "{op}: {}", stderr(&out));
        assert_eq!(p.injected(op), 1, "{op}: no answer was lost");
        sb.assert_deployed();
    }
}

#[test]
fn a_converging_setup_survives_a_lost_answer_to_each_update() {
    // PutKeyPolicy: the key policy lost kmsxacct's statement.
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    sb.setup(&[]).assert().success();
    sb.put_key_policy(&sb.admin_only_key_policy());
    lose(&p, "kms", "PutKeyPolicy");
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.injected("PutKeyPolicy"), 1);
    sb.assert_deployed();

    // UpdateAssumeRolePolicy: a narrower trust.
    let trust = format!("arn:aws:iam::{}:role/ci", sb.user.account);
    lose(&p, "iam", "UpdateAssumeRolePolicy");
    let out = sb.setup(&["--trust", &trust]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.injected("UpdateAssumeRolePolicy"), 1);
    assert_eq!(trusted(&sb), serde_json::json!(trust));

    // EnableKeyRotation.
    lose(&p, "kms", "EnableKeyRotation");
    let out = sb.setup(&["--trust", &trust, "--enable-key-rotation"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.injected("EnableKeyRotation"), 1);
    let (key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let kms = sb.kms(&sb.owner.account);
    let status = sb.block_on(kms.get_key_rotation_status().key_id(&key).send()).unwrap();
    assert!(status.key_rotation_enabled());
}

/// After rotate: the alias on one key, the retirement alias on the other, and no third key.
fn assert_rotated(sb: &Sandbox, old_key: &str, old_state: &str) {
    let keys = sb.deployment_keys();
    assert_eq!(keys.len(), 2, "keys of the deployment: {keys:?}");
    let (new_key, state) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    assert_eq!(state, "Enabled");
    assert!(!new_key.ends_with(old_key), "the alias still points at the old key");
    let old = keys.iter().find(|(id, _)| old_key.ends_with(id.as_str())).expect("old key");
    assert_eq!(old.1, old_state);
    let retired = format!("{}/retired/{}", sb.alias, &old.0[..8]);
    let (at_retired, _) = sb.alias_target(&sb.owner.account, &retired).expect("retired alias");
    assert!(at_retired.ends_with(&old.0), "{retired} points at {at_retired}");
}

#[test]
fn rotate_survives_a_lost_answer_to_each_write_it_makes() {
    for (op, args, old_state) in [
        ("CreateAlias", &[][..], "Enabled"),
        ("UpdateAlias", &[][..], "Enabled"),
        ("ScheduleKeyDeletion", &["--retire-old"][..], "PendingDeletion"),
    ] {
        let p = proxy();
        let sb = Sandbox::via(&p.url());
        sb.setup(&[]).assert().success();
        let (old_key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
        lose(&p, "kms", op);
        let out = sb.cmd().arg("rotate").args(args).output().unwrap();
        assert!(out.status.success(), "{op}: {}{}", stdout(&out), stderr(&out));
        assert_eq!(p.injected(op), 1, "{op}: no answer was lost");
        assert_rotated(&sb, &old_key, old_state);
    }
}

#[test]
fn a_rotate_whose_create_key_answer_was_lost_reuses_that_key_next_time() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    sb.setup(&[]).assert().success();
    let (old_key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    lose(&p, "kms", "CreateKey");
    let out = sb.cmd().arg("rotate").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(sb.deployment_keys().len(), 2, "the lost CreateKey made no key");
    let out = sb.cmd().arg("rotate").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("looking for it by its tags"), "{}", stderr(&out));
    assert_eq!(p.count("CreateKey"), 2, "setup's and the lost one: no third CreateKey");
    assert_rotated(&sb, &old_key, "Enabled");
}

#[test]
fn teardown_survives_a_lost_answer_to_each_write_it_makes() {
    for (service, op) in [
        ("kms", "DeleteAlias"),
        ("kms", "ScheduleKeyDeletion"),
        ("iam", "DeleteRolePolicy"),
        ("iam", "DeleteRole"),
    ] {
        let p = proxy();
        let sb = Sandbox::via(&p.url());
        sb.setup(&[]).assert().success();
        let (key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
        lose(&p, service, op);
        let out = sb.cmd().arg("teardown").output().unwrap();
        assert!(out.status.success(), "{op}: {}", stderr(&out));
        assert_eq!(p.injected(op), 1, "{op}: no answer was lost");
        assert!(sb.alias_target(&sb.owner.account, &sb.alias).is_none(), "{op}: alias left");
        let keys = sb.deployment_keys();
        assert_eq!(keys.len(), 1, "{op}: {keys:?}");
        assert!(key.ends_with(&keys[0].0) && keys[0].1 == "PendingDeletion", "{op}: {keys:?}");
        assert!(!sb.role_exists(&sb.user.account, &sb.role_name()), "{op}: role left");
    }
}

#[test]
fn an_alias_created_meanwhile_on_another_key_is_a_conflict_not_done() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    let foreign = sb.foreign_key_behind_alias(None);
    // setup's read does not see the alias yet; CreateAlias then meets it.
    p.add(Rule::on("kms", "DescribeKey", Fault::NotFound).times(1));
    let out = sb.setup(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already points at"), "{}", stderr(&out));
    let (at, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    assert!(at.ends_with(&foreign), "the alias was moved to {at}");
}

#[test]
fn a_role_created_meanwhile_by_someone_else_is_a_conflict_not_done() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    let iam = sb.iam(&sb.user.account);
    let trust = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:root"}},"Action":"sts:AssumeRole"}}]}}"#,
        sb.user.account
    );
    sb.block_on(
        iam.create_role().role_name(sb.role_name()).assume_role_policy_document(trust).send(),
    )
    .unwrap();
    p.add(Rule::on("iam", "GetRole", Fault::NotFound).times(1));
    let out = sb.setup(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not the one kmsxacct asked for"), "{}", stderr(&out));
    let role = sb.block_on(iam.get_role().role_name(sb.role_name()).send()).unwrap();
    assert!(role.role().unwrap().tags().is_empty(), "the foreign role was changed");
}

#[test]
fn a_used_up_quota_fails_at_once_and_names_the_quota() {
    for (service, op, quota) in [
        ("kms", "CreateKey", "keys per Region"),
        ("kms", "CreateAlias", "aliases per Region"),
        ("iam", "CreateRole", "roles per account"),
    ] {
        let p = proxy();
        let sb = Sandbox::via(&p.url());
        p.add(Rule::on(service, op, Fault::Quota));
        let out = sb.setup(&[]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{op}: {}", stderr(&out));
        assert!(stderr(&out).contains(quota), "{op}: {}", stderr(&out));
        assert_eq!(p.injected(op), 1, "{op}: a used-up quota was retried");
    }
}
