//! Rotate: a new key behind the alias, old data still readable, proven by the policy engine too.

use crate::support::{Sandbox, stderr, stdout};
use serde_json::json;

#[test]
fn rotate_moves_the_alias_keeps_old_data_readable_and_teardown_removes_every_key() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let (old_key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();

    let out = sb.cmd().arg("rotate").output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for check in ["policy-decrypt-old", "policy-encrypt-new", "encrypt-new-key", "decrypt-old-data"]
    {
        assert!(
            text.lines().any(|l| l.starts_with("PASS") && l.contains(check)),
            "{check}: {text}"
        );
    }
    let (new_key, state) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(state, "Enabled");
    let old_id = old_key.rsplit('/').next().unwrap();
    let retired = format!("{}/retired/{}", sb.alias, &old_id[..8]);
    assert_eq!(
        sb.alias_target(&sb.owner.account, &retired),
        Some((old_key.clone(), "Enabled".into()))
    );
    let record = std::fs::read_to_string(sb.record()).unwrap();
    assert!(
        record.contains(&new_key)
            && record.contains("[[previous_keys]]")
            && record.contains(&old_key),
        "{record}"
    );

    // verify proves, with the policy engine, that the retired key stays readable.
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).lines().any(|l| l.starts_with("PASS") && l.contains("policy-decrypt-retired"))
    );

    // The trap: a role policy conditioned on the alias alone. LocalStack would still decrypt;
    // the policy engine says the old data is lost.
    let alias_only = json!({"Version": "2012-10-17", "Statement": [{"Sid": "KmsxacctUseKeyThroughAlias",
        "Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
        "Resource": format!("arn:aws:kms:us-east-1:{}:key/*", sb.owner.account),
        "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": sb.alias}}}]});
    sb.put_role_policy(&alias_only);
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).lines().any(|l| l.starts_with("FAIL") && l.contains("policy-decrypt-retired")),
        "{}",
        stdout(&out)
    );
    sb.setup(&[]).assert().success();

    // Rotate again, retiring the previous key once the proof passes.
    let out = sb.cmd().args(["rotate", "--retire-old"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let keys = sb.deployment_keys();
    let mut states: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    states.sort();
    assert_eq!(states, ["Enabled", "Enabled", "PendingDeletion"], "{keys:?}");
    assert!(sb.alias_target(&sb.owner.account, &retired).is_some());

    let out = sb.cmd().arg("teardown").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        sb.deployment_keys().iter().all(|k| k.1 == "PendingDeletion"),
        "{:?}",
        sb.deployment_keys()
    );
    assert!(sb.alias_target(&sb.owner.account, &sb.alias).is_none());
    assert!(
        sb.alias_target(&sb.owner.account, &retired).is_none(),
        "the retirement alias was left"
    );
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()));
}

#[test]
fn rotate_needs_a_record() {
    let sb = Sandbox::new();
    let out = sb.cmd().arg("rotate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no deployment record"), "{}", stderr(&out));
}

#[test]
fn automatic_key_rotation_is_enabled_with_its_period_and_converged() {
    let sb = Sandbox::new();
    let out =
        sb.setup(&["--enable-key-rotation", "--rotation-period-days", "180"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (key_arn, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let kms = sb.kms(&sb.owner.account);
    let status = sb.block_on(kms.get_key_rotation_status().key_id(&key_arn).send()).unwrap();
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(180));
    let out =
        sb.setup(&["--enable-key-rotation", "--rotation-period-days", "180"]).output().unwrap();
    assert!(stdout(&out).contains("nothing to change"), "{}", stdout(&out));
    let out =
        sb.setup(&["--enable-key-rotation", "--rotation-period-days", "30"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("30"), "{}", stderr(&out));
}

#[test]
fn verify_checks_every_retired_key_after_two_rotations() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    for _ in 0..2 {
        let out = sb.cmd().arg("rotate").output().unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let retired: Vec<&str> =
        text.lines().filter(|l| l.contains("policy-decrypt-retired")).collect();
    assert_eq!(retired.len(), 2, "{text}");
    assert!(retired.iter().all(|l| l.starts_with("PASS")), "{text}");
}
