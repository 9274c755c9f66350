//! setup → verify → teardown, as a user runs them, checked account by account.

use crate::proxy::FaultProxy;
use crate::support::{Sandbox, endpoint, json, stderr, stdout};
use serde_json::json;

#[test]
fn setup_creates_key_alias_grant_and_role_in_the_right_accounts() {
    let sb = Sandbox::new();
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "setup failed: {}", stderr(&out));
    assert!(stdout(&out).contains("setup complete"), "{}", stdout(&out));

    // Owner account: a symmetric encrypt/decrypt key behind the alias.
    let (key_arn, state) = sb.alias_target(&sb.owner.account, &sb.alias).expect("alias exists");
    assert_eq!(state, "Enabled");
    assert!(key_arn.starts_with(&format!("arn:aws:kms:us-east-1:{}:key/", sb.owner.account)));
    let kms = sb.kms(&sb.owner.account);
    let (meta, policy, tags) = sb.block_on(async {
        let meta = kms.describe_key().key_id(&key_arn).send().await.unwrap();
        let policy =
            kms.get_key_policy().key_id(&key_arn).policy_name("default").send().await.unwrap();
        let tags = kms.list_resource_tags().key_id(&key_arn).send().await.unwrap();
        (meta, policy, tags)
    });
    let meta = meta.key_metadata().unwrap();
    assert_eq!(meta.key_spec().unwrap().as_str(), "SYMMETRIC_DEFAULT");
    assert_eq!(meta.key_usage().unwrap().as_str(), "ENCRYPT_DECRYPT");

    // Key policy: the owner's admin statement kept, one grant to the user account root.
    let policy = json(policy.policy().unwrap());
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{policy}");
    let admin =
        statements.iter().find(|s| s["Action"] == json!("kms:*")).expect("owner admin statement");
    assert_eq!(admin["Principal"]["AWS"], json!(format!("arn:aws:iam::{}:root", sb.owner.account)));
    let grant = statements
        .iter()
        .find(|s| s["Sid"] == json!("KmsxacctCrossAccountUse"))
        .expect("grant statement");
    assert_eq!(grant["Principal"]["AWS"], json!(format!("arn:aws:iam::{}:root", sb.user.account)));
    assert_eq!(grant["Action"], json!(["kms:Encrypt", "kms:Decrypt"]));
    assert_eq!(grant["Effect"], json!("Allow"));

    let tags: Vec<(String, String)> =
        tags.tags().iter().map(|t| (t.tag_key().to_string(), t.tag_value().to_string())).collect();
    for wanted in [
        ("kmsxacct:managed-by", "kmsxacct"),
        ("kmsxacct:owner-account", sb.owner.account.as_str()),
        ("kmsxacct:alias", sb.alias.as_str()),
    ] {
        assert!(
            tags.iter().any(|(k, v)| k == wanted.0 && v == wanted.1),
            "key tag {wanted:?} missing from {tags:?}"
        );
    }

    // User account: the role, its trust policy, its inline policy, its tags.
    let role = sb.role_name();
    let iam = sb.iam(&sb.user.account);
    let (got_role, role_policy, role_tags) = sb.block_on(async {
        let r = iam.get_role().role_name(&role).send().await.unwrap();
        let p = iam
            .get_role_policy()
            .role_name(&role)
            .policy_name("kmsxacct-kms-access")
            .send()
            .await
            .unwrap();
        let t = iam.list_role_tags().role_name(&role).send().await.unwrap();
        (r, p, t)
    });
    let got_role = got_role.role().unwrap();
    assert_eq!(got_role.arn(), format!("arn:aws:iam::{}:role/{role}", sb.user.account));
    let trust = json(got_role.assume_role_policy_document().unwrap());
    assert_eq!(
        trust["Statement"][0]["Principal"]["AWS"],
        json!(format!("arn:aws:iam::{}:root", sb.user.account))
    );
    assert_eq!(trust["Statement"][0]["Action"], json!("sts:AssumeRole"));
    let access = json(role_policy.policy_document());
    assert_eq!(
        access["Statement"][0],
        json!({
            "Sid": "KmsxacctUseKeyThroughAlias",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt"],
            "Resource": format!("arn:aws:kms:us-east-1:{}:key/*", sb.owner.account),
            "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": [
                sb.alias.clone(), format!("{}/retired/*", sb.alias)]}}
        })
    );
    assert!(
        role_tags
            .tags()
            .iter()
            .any(|t| t.key() == "kmsxacct:managed-by" && t.value() == "kmsxacct")
    );

    // Nothing landed in the wrong account.
    assert!(sb.alias_target(&sb.user.account, &sb.alias).is_none());
    assert!(sb.keys(&sb.user.account).is_empty());
    assert!(!sb.role_exists(&sb.owner.account, &role));

    // The record names everything verify and teardown need.
    let record = std::fs::read_to_string(sb.record()).unwrap();
    for needle in [
        sb.owner.name.as_str(),
        sb.user.name.as_str(),
        sb.owner.account.as_str(),
        sb.user.account.as_str(),
        key_arn.as_str(),
        sb.alias.as_str(),
        role.as_str(),
    ] {
        assert!(record.contains(needle), "record lacks {needle}: {record}");
    }
}

#[test]
fn second_setup_creates_nothing_and_converges_what_is_missing() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let keys_before = sb.keys(&sb.owner.account);
    assert_eq!(keys_before.len(), 1);

    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing to change"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("created"), "{}", stdout(&out));
    assert_eq!(sb.keys(&sb.owner.account), keys_before, "a second key was created");

    // Delete the role policy behind kmsxacct's back: setup puts it back, and only it.
    let iam = sb.iam(&sb.user.account);
    let role = sb.role_name();
    sb.block_on(
        iam.delete_role_policy().role_name(&role).policy_name("kmsxacct-kms-access").send(),
    )
    .unwrap();
    let out = sb.setup(&["--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&stdout(&out));
    assert_eq!(report["changed"], json!(true));
    let changed: Vec<&serde_json::Value> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != json!("unchanged"))
        .collect();
    assert_eq!(changed.len(), 1, "{report}");
    assert_eq!(changed[0]["resource"], json!("role-policy"));
    let policy = sb
        .block_on(iam.get_role_policy().role_name(&role).policy_name("kmsxacct-kms-access").send());
    assert!(policy.is_ok(), "role policy was not put back");
    assert_eq!(sb.keys(&sb.owner.account), keys_before);
}

#[test]
fn key_policy_grant_removed_out_of_band_is_put_back_keeping_other_statements() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let foreign = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{}:root", sb.owner.account)},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Auditors", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{}:root", sb.owner.account)},
             "Action": "kms:DescribeKey", "Resource": "*"}
        ]
    });
    sb.put_key_policy(&foreign);
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("key-policy"), "{}", stdout(&out));
    let policy = sb.key_policy();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["Enable IAM User Permissions", "Auditors", "KmsxacctCrossAccountUse"]);
}

#[test]
fn verify_round_trips_through_the_alias_and_fails_when_the_alias_is_gone() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();

    let out = sb.cmd().arg("verify").output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for check in ["alias-target", "key-enabled", "assume-role", "encrypt", "decrypt"] {
        assert!(
            text.lines().any(|l| l.starts_with("PASS") && l.contains(check)),
            "no PASS line for {check}: {text}"
        );
    }

    let out = sb.cmd().args(["verify", "--output", "json"]).output().unwrap();
    assert!(out.status.success());
    let report = json(&stdout(&out));
    assert_eq!(report["ok"], json!(true));
    assert_eq!(
        report["alias_arn"],
        json!(format!("arn:aws:kms:us-east-1:{}:{}", sb.owner.account, sb.alias))
    );
    let calls = report["calls"].as_array().unwrap();
    for op in ["AssumeRole", "Encrypt", "Decrypt"] {
        assert!(
            calls.iter().any(|c| c["operation"] == json!(op)
                && c["side"] == json!("user")
                && c["ok"] == json!(true)),
            "no successful user-side {op} in {calls:?}"
        );
    }

    // Move the alias away behind kmsxacct's back: verify fails, exit 1.
    let kms = sb.kms(&sb.owner.account);
    sb.block_on(kms.delete_alias().alias_name(&sb.alias).send()).unwrap();
    let out = sb.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).lines().any(|l| l.starts_with("FAIL") && l.contains("alias-target")));
    assert!(stderr(&out).contains("checks failed"), "{}", stderr(&out));
}

#[test]
fn verify_fails_when_the_key_is_disabled() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let (key_arn, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let kms = sb.kms(&sb.owner.account);
    sb.block_on(kms.disable_key().key_id(&key_arn).send()).unwrap();
    let out = sb.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("key-enabled") && l.contains("Disabled")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn teardown_removes_everything_and_a_second_teardown_has_nothing_to_do() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let (key_arn, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();

    let out = sb.cmd().args(["teardown", "--pending-window-days", "9"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("will be deleted on"), "{text}");

    assert!(sb.alias_target(&sb.owner.account, &sb.alias).is_none(), "alias still there");
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()), "role still there");
    let keys = sb.keys(&sb.owner.account);
    assert_eq!(
        keys,
        vec![(key_arn.rsplit('/').next().unwrap().to_string(), "PendingDeletion".to_string())]
    );
    let kms = sb.kms(&sb.owner.account);
    let meta = sb.block_on(kms.describe_key().key_id(&key_arn).send()).unwrap();
    let deletion = meta.key_metadata().unwrap().deletion_date().unwrap().secs();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let days = (deletion - now) as f64 / 86400.0;
    assert!((8.9..9.1).contains(&days), "deletion in {days} days, wanted 9");

    let out = sb.cmd().arg("teardown").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));

    let out = sb.cmd().args(["teardown", "--output", "json"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(json(&stdout(&out))["changed"], json!(false));
}

#[test]
fn teardown_then_setup_again_makes_a_fresh_key() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    sb.cmd().arg("teardown").assert().success();
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let states: Vec<String> = sb.keys(&sb.owner.account).into_iter().map(|k| k.1).collect();
    let mut sorted = states.clone();
    sorted.sort();
    assert_eq!(sorted, ["Enabled", "PendingDeletion"], "{states:?}");
    sb.cmd().arg("verify").assert().success();
}

#[test]
fn verify_and_teardown_work_from_flags_without_a_record() {
    let sb = Sandbox::new();
    sb.setup(&["--config", "elsewhere.toml"]).assert().success();
    assert!(!sb.record().exists());
    let target = [
        "--owner",
        sb.owner.name.as_str(),
        "--user",
        sb.user.name.as_str(),
        "--alias",
        sb.alias.trim_start_matches("alias/"),
    ];
    let out = sb.cmd().arg("verify").args(target).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = sb.cmd().arg("teardown").args(target).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sb.alias_target(&sb.owner.account, &sb.alias).is_none());
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()));
}

#[test]
fn trace_logs_carry_no_credentials_or_plaintext() {
    // The proxy sees every secret that crosses the wire: the session tokens and secret keys of
    // the role, and the random plaintext verify and rotate encrypt (base64, as on the wire).
    let p = FaultProxy::start(&endpoint());
    let sb = Sandbox::via(&p.url());
    let mut all = String::new();
    for args in [vec!["setup"], vec!["verify"], vec!["rotate"], vec!["teardown"]] {
        let mut cmd = if args[0] == "setup" { sb.setup(&[]) } else { sb.cmd() };
        if args[0] != "setup" {
            cmd.args(&args);
        }
        // The most a user can ask for: RUST_LOG=trace, -vvv, and the SDK asked to log signed bodies.
        let out = cmd
            .arg("-vvv")
            .env("RUST_LOG", "trace")
            .env("LOG_SIGNABLE_BODY", "true")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        all.push_str(&stdout(&out));
        all.push_str(&stderr(&out));
    }
    // The run was traced for real: every AWS call shows up at debug level, and the SDK's
    // wire-level logs (the canonical requests it signs) are there.
    assert!(all.contains("aws call"), "no call logs in trace output");
    assert!(all.contains("canonical_request"), "no wire-level logs in trace output");
    assert!(all.contains("Encrypt") && all.contains("AssumeRole"));
    let secrets = p.secrets();
    for kind in ["session-token", "secret-key", "plaintext"] {
        assert!(secrets.iter().any(|(k, _)| *k == kind), "no {kind} crossed the wire");
    }
    for (kind, secret) in &secrets {
        assert!(!all.contains(secret.as_str()), "a {kind} is in the logs");
        if *kind == "plaintext" {
            // The random bytes themselves, as hex or as a Debug list of bytes.
            let bytes = aws_smithy_types::base64::decode(secret).unwrap();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let list = format!("{:?}", &bytes[..8.min(bytes.len())]);
            let list = list.trim_end_matches(']');
            assert!(!all.contains(&hex) && !all.contains(list), "plaintext bytes in the logs");
        }
    }
    for secret in
        [format!("test-secret-{}", sb.owner.account), format!("test-secret-{}", sb.user.account)]
    {
        assert!(!all.contains(&secret), "secret access key in the logs");
    }
}
