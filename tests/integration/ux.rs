//! Plan and drift, completions and the man page.

use crate::proxy::FaultProxy;
use crate::support::{Sandbox, endpoint, json, stderr, stdout};
use serde_json::json;

const MUTATING: [&str; 9] =
    ["Create", "Put", "Delete", "Update", "Schedule", "Tag", "Untag", "Enable", "Disable"];

#[test]
fn plan_shows_changes_with_diffs_and_makes_no_mutating_call() {
    let p = FaultProxy::start(&endpoint());
    let sb = Sandbox::via(&p.url());
    let out = sb.cmd().arg("plan").args(sb.target()).args(["--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&stdout(&out));
    let actions: Vec<(String, String)> = report["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["action"].as_str().unwrap().to_string(), p["resource"].as_str().unwrap().to_string())
        })
        .collect();
    for wanted in
        [("create", "key"), ("create", "alias"), ("create", "role"), ("create", "role-policy")]
    {
        assert!(actions.contains(&(wanted.0.into(), wanted.1.into())), "{actions:?}");
    }
    let key =
        report["plan"].as_array().unwrap().iter().find(|p| p["resource"] == json!("key")).unwrap();
    assert!(key["diff"].as_str().unwrap().contains("+  \"Id\": \"kmsxacct-key-policy\""), "{key}");
    // Nothing was made, nothing recorded, and only reads went out.
    assert!(sb.keys(&sb.owner.account).is_empty());
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()));
    assert!(!sb.record().exists());
    let writes: Vec<String> = p
        .seen()
        .iter()
        .map(|s| s.operation.clone())
        .filter(|op| MUTATING.iter().any(|m| op.starts_with(m)))
        .collect();
    assert!(writes.is_empty(), "plan made mutating calls: {writes:?}");

    // After setup: nothing to change. After a change behind kmsxacct's back: the diff, and
    // setup --dry-run says the same without fixing it.
    sb.setup(&[]).assert().success();
    let out = sb.setup(&["--dry-run"]).output().unwrap();
    assert!(stdout(&out).contains("plan: nothing to change"), "{}", stdout(&out));
    let narrower = json!({"Version": "2012-10-17", "Statement": [{"Sid": "KmsxacctUseKeyThroughAlias",
        "Effect": "Allow", "Action": "kms:Decrypt",
        "Resource": format!("arn:aws:kms:us-east-1:{}:key/*", sb.owner.account),
        "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": sb.alias}}}]});
    sb.put_role_policy(&narrower);
    let before = p.seen().len();
    let out = sb.setup(&["--dry-run"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success());
    assert!(text.contains("update") && text.contains("role-policy"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("+") && l.contains("kms:Encrypt")),
        "{text}"
    );
    assert!(!text.contains("\u{1b}["), "colour in a pipe: {text}");
    let writes: Vec<String> = p.seen()[before..]
        .iter()
        .map(|s| s.operation.clone())
        .filter(|op| MUTATING.iter().any(|m| op.starts_with(m)))
        .collect();
    assert!(writes.is_empty(), "--dry-run made mutating calls: {writes:?}");
    assert_eq!(sb.role_policy(&sb.user.account)["Statement"][0]["Action"], json!("kms:Decrypt"));
}

#[test]
fn verify_reports_drift_with_a_diff_and_setup_converges_it() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let iam = sb.iam(&sb.user.account);
    let other_trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:role/someone", sb.user.account)},
        "Action": "sts:AssumeRole"}]});
    sb.block_on(
        iam.update_assume_role_policy()
            .role_name(sb.role_name())
            .policy_document(other_trust.to_string())
            .send(),
    )
    .unwrap();
    sb.put_key_policy(&sb.admin_only_key_policy());

    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for name in ["drift-trust-policy", "drift-key-policy"] {
        assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains(name)), "{name}: {text}");
    }
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("-") && l.contains("role/someone")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("+") && l.contains("KmsxacctCrossAccountUse")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("PASS") && l.contains("drift-role-policy")),
        "{text}"
    );

    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("trust-policy") && stdout(&out).contains("key-policy"),
        "{}",
        stdout(&out)
    );
    // Read back: the trust names the user account again, and the grant is in the key policy.
    let role = sb.block_on(iam.get_role().role_name(sb.role_name()).send()).unwrap();
    let trust = crate::support::json(role.role().unwrap().assume_role_policy_document().unwrap());
    let root = format!("arn:aws:iam::{}:root", sb.user.account);
    assert_eq!(trust["Statement"][0]["Principal"]["AWS"], json!(root));
    let sids: Vec<serde_json::Value> =
        sb.key_policy()["Statement"].as_array().unwrap().iter().map(|s| s["Sid"].clone()).collect();
    assert!(sids.contains(&json!("KmsxacctCrossAccountUse")), "{sids:?}");
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(!stdout(&out).contains("FAIL"));
}

#[test]
fn completions_and_man_page_come_from_the_same_definitions() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("kmsxacct") && text.contains("--pending-window-days"),
        "{}",
        &text[..200.min(text.len())]
    );
    let out = sb.cmd().args(["completions", "zsh"]).output().unwrap();
    assert!(out.status.success() && stdout(&out).contains("#compdef kmsxacct"));
    let out = sb.cmd().arg("man").output().unwrap();
    assert!(out.status.success());
    let man = stdout(&out);
    assert!(
        man.contains(".TH kmsxacct") && man.contains("cross\\-account"),
        "{}",
        &man[..200.min(man.len())]
    );
    let out = sb.cmd().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'tcsh'"));
}

#[test]
fn status_shows_both_accounts_and_the_last_verify() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let out = sb.cmd().arg("status").output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("Enabled") && text.contains("last verify: none recorded"), "{text}");
    sb.cmd().args(["verify", "--wait", "0"]).assert().success();
    let out = sb.cmd().args(["status", "--output", "json"]).output().unwrap();
    let report = json(&stdout(&out));
    assert_eq!(report["key"]["state"], json!("Enabled"));
    assert_eq!(report["key"]["is_recorded_key"], json!(true));
    assert_eq!(report["users"][0]["account"], json!(sb.user.account));
    assert_eq!(report["users"][0]["role_policy"], json!(true));
    assert_eq!(report["last_verify"]["ok"], json!(true));
    // A failed verify is remembered with what failed.
    let iam = sb.iam(&sb.user.account);
    sb.block_on(
        iam.delete_role_policy()
            .role_name(sb.role_name())
            .policy_name("kmsxacct-kms-access")
            .send(),
    )
    .unwrap();
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = sb.cmd().arg("status").output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("last verify: FAILED") && text.contains("policy is missing"), "{text}");
}
