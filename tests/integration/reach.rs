//! Reach: several user accounts, grants to roles, more actions, the other alias condition, and a
//! narrower trust policy.

use crate::proxy::FaultProxy;
use crate::support::{Sandbox, endpoint, json, stderr, stdout};
use serde_json::{Value, json};
use std::time::Duration;

fn grant(policy: &Value) -> Value {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == json!("KmsxacctCrossAccountUse"))
        .cloned()
        .expect("grant statement")
}

fn setup_with(sb: &Sandbox, users: &[&str], args: &[&str]) -> std::process::Output {
    let mut cmd = sb.cmd();
    cmd.args(["setup", "--owner", &sb.owner.name, "--alias", &sb.alias]);
    for u in users {
        cmd.args(["--user", u]);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn two_user_accounts_then_one_removed_converges_without_touching_the_rest() {
    let sb = Sandbox::with_users(2, &endpoint());
    let (u0, u1) = (&sb.users[0], &sb.users[1]);
    let out = setup_with(&sb, &[&u0.name, &u1.name], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut roots = vec![
        format!("arn:aws:iam::{}:root", u0.account),
        format!("arn:aws:iam::{}:root", u1.account),
    ];
    roots.sort();
    assert_eq!(grant(&sb.key_policy())["Principal"]["AWS"], json!(roots));
    assert!(sb.role_exists(&u0.account, &sb.role_name()));
    assert!(sb.role_exists(&u1.account, &sb.role_name()));
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for u in [u0, u1] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS") && l.contains("decrypt") && l.contains(&u.account)),
            "no decrypt check for {}: {text}",
            u.account
        );
    }

    // A statement of someone else's in the key policy survives the convergence.
    let (key_arn, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let kms = sb.kms(&sb.owner.account);
    let mut policy = sb.key_policy();
    policy["Statement"].as_array_mut().unwrap().push(json!({"Sid": "Auditors", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", sb.owner.account)},
        "Action": "kms:DescribeKey", "Resource": "*"}));
    sb.block_on(
        kms.put_key_policy()
            .key_id(&key_arn)
            .policy_name("default")
            .policy(policy.to_string())
            .send(),
    )
    .unwrap();

    // Drop the first user account.
    let out = setup_with(&sb, &[&u1.name], &["--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&stdout(&out));
    assert_eq!(report["user_accounts"], json!([u1.account]));
    let policy = sb.key_policy();
    assert_eq!(
        grant(&policy)["Principal"]["AWS"],
        json!(format!("arn:aws:iam::{}:root", u1.account))
    );
    assert!(
        policy["Statement"].as_array().unwrap().iter().any(|s| s["Sid"] == json!("Auditors")),
        "a foreign statement was dropped: {policy}"
    );
    assert!(!sb.role_exists(&u0.account, &sb.role_name()), "the dropped account kept its role");
    assert!(sb.role_exists(&u1.account, &sb.role_name()));
    assert_eq!(sb.deployment_keys().len(), 1);
    sb.cmd().args(["verify", "--wait", "0"]).assert().success();
    sb.cmd().arg("teardown").assert().success();
    assert!(!sb.role_exists(&u1.account, &sb.role_name()));
}

#[test]
fn grant_to_role_names_the_roles_and_waits_until_kms_sees_them() {
    let p = FaultProxy::start(&endpoint());
    let sb = Sandbox::via(&p.url());
    p.eventual_consistency(Duration::from_secs(3));
    let out = sb.setup(&["--grant-to", "role"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("waiting up to"), "{}", stderr(&out));
    assert!(
        p.seen().iter().any(|s| s.operation == "CreateKey" && s.injected && s.status == 400),
        "KMS never refused the new role: the wait was not exercised"
    );
    assert_eq!(
        p.count("CreateKey") - 1,
        p.seen().iter().filter(|s| s.operation == "CreateKey" && s.injected).count()
    );
    let role_arn = format!("arn:aws:iam::{}:role/{}", sb.user.account, sb.role_name());
    assert_eq!(grant(&sb.key_policy())["Principal"]["AWS"], json!(role_arn));
    assert_eq!(sb.deployment_keys().len(), 1);
    let out = sb.cmd().arg("verify").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn every_action_can_be_granted_and_verify_exercises_each() {
    let sb = Sandbox::new();
    // re-encrypt has a test of its own: LocalStack 4.8.1 cannot re-encrypt across accounts.
    let all = "encrypt,decrypt,generate-data-key,generate-data-key-without-plaintext,describe-key";
    let out = sb.setup(&["--actions", all]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = json!([
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:DescribeKey"
    ]);
    assert_eq!(sb.role_policy(&sb.user.account)["Statement"][0]["Action"], expected);
    assert_eq!(grant(&sb.key_policy())["Action"], expected);
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for check in [
        "encrypt",
        "decrypt",
        "generate-data-key ",
        "generate-data-key-without-plaintext",
        "describe-key",
        "policy-generatedatakeywithoutplaintext",
        "policy-describekey",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with("PASS") && l.contains(check)),
            "no PASS for {check}: {text}"
        );
    }

    // Decrypt alone: the ciphertext comes from the owner, and Encrypt is neither granted nor tried.
    let sb = Sandbox::new();
    sb.setup(&["--actions", "decrypt"]).assert().success();
    assert_eq!(sb.role_policy(&sb.user.account)["Statement"][0]["Action"], json!("kms:Decrypt"));
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.lines().any(|l| l.starts_with("PASS") && l.contains("decrypt")));
    assert!(!text.lines().any(|l| l.contains(" encrypt ")), "{text}");

    let out = sb.setup(&["--actions", "encrypt,sign"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'sign'"), "{}", stderr(&out));
}

#[test]
fn request_alias_condition_is_written_and_verified() {
    let sb = Sandbox::new();
    sb.setup(&["--condition", "request-alias"]).assert().success();
    assert_eq!(
        sb.role_policy(&sb.user.account)["Statement"][0]["Condition"],
        json!({"StringLike": {"kms:RequestAlias": [sb.alias.clone(), format!("{}/retired/*", sb.alias)]}})
    );
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).lines().any(|l| l.starts_with("PASS  policy-decrypt")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn trust_narrows_who_may_assume_the_role() {
    let sb = Sandbox::new();
    let app = format!("arn:aws:iam::{}:role/app", sb.user.account);
    sb.setup(&["--trust", &app]).assert().success();
    let iam = sb.iam(&sb.user.account);
    let role = sb.block_on(iam.get_role().role_name(sb.role_name()).send()).unwrap();
    let trust = json(role.role().unwrap().assume_role_policy_document().unwrap());
    assert_eq!(trust["Statement"][0]["Principal"]["AWS"], json!(app));

    let elsewhere = "arn:aws:iam::123456789012:role/app";
    let out = sb.setup(&["--trust", elsewhere]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(elsewhere), "{}", stderr(&out));
}

#[test]
fn trust_must_name_a_principal_in_every_user_account() {
    let sb = Sandbox::with_users(2, &endpoint());
    let (u0, u1) = (&sb.users[0], &sb.users[1]);
    let app = format!("arn:aws:iam::{}:role/app", u0.account);
    let out = setup_with(&sb, &[&u0.name, &u1.name], &["--trust", &app]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("no principal in user account {}", u1.account)));
    assert!(!sb.role_exists(&u0.account, &sb.role_name()), "a refused setup made a role");
    assert!(sb.keys(&sb.owner.account).is_empty(), "a refused setup made a key");

    let other = format!("arn:aws:iam::{}:role/app", u1.account);
    let out = setup_with(&sb, &[&u0.name, &u1.name], &["--trust", &app, "--trust", &other]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn re_encrypt_is_granted_evaluated_and_called_through_the_alias() {
    let p = FaultProxy::start(&endpoint());
    p.cross_account_reencrypt();
    let sb = Sandbox::via(&p.url());
    sb.setup(&["--actions", "encrypt,re-encrypt"]).assert().success();
    assert_eq!(
        sb.role_policy(&sb.user.account)["Statement"][0]["Action"],
        json!(["kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo"])
    );
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    let text = stdout(&out);
    for check in ["policy-reencryptfrom", "policy-reencryptto", "encrypt "] {
        assert!(
            text.lines().any(|l| l.starts_with("PASS") && l.contains(check)),
            "no PASS for {check}: {text}"
        );
    }
    // The role really called ReEncrypt, with the alias ARN as destination.
    assert_eq!(p.count("ReEncrypt"), 1, "{text}");
    // The proxy makes LocalStack re-encrypt across accounts as KMS does.
    let line = text.lines().find(|l| l.contains("re-encrypt ")).expect("a re-encrypt check");
    assert!(line.starts_with("PASS"), "{line}");
    assert!(out.status.success(), "{text}");
}

#[test]
fn a_non_default_deployment_verifies_from_flags_by_its_record_and_is_named_without_one() {
    let sb = Sandbox::new();
    let app = format!("arn:aws:iam::{}:role/app", sb.user.account);
    let shape =
        ["--grant-to", "role", "--actions", "encrypt,decrypt,describe-key", "--trust", &app];
    sb.setup(&shape).assert().success();
    let verify = |extra: &[&std::ffi::OsStr]| {
        sb.cmd().arg("verify").args(sb.target()).args(["--wait", "0"]).args(extra).output().unwrap()
    };
    let out = verify(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).lines().any(|l| l.starts_with("PASS  describe-key")), "{}", stdout(&out));

    // Without the record verify cannot tell those settings from drift, and says so.
    let elsewhere = sb.path().join("elsewhere.toml");
    let out = verify(&["--config".as_ref(), elsewhere.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    let said = format!(
        "--grant-to role --actions encrypt,decrypt,describe-key --condition resource-aliases --trust {app}"
    );
    assert!(stderr(&out).contains(&said), "{}", stderr(&out));
    assert!(!stdout(&out).contains("drift"), "{}", stdout(&out));
}

#[test]
fn a_user_account_is_asked_in_its_own_region_and_kms_in_the_keys() {
    let p = FaultProxy::start(&endpoint());
    let sb = Sandbox::via(&p.url());
    let config = sb.path().join("aws-config");
    let text = std::fs::read_to_string(&config).unwrap();
    let user_section = format!("[profile {}]\nregion = us-east-1", sb.user.name);
    let moved = format!("[profile {}]\nregion = eu-west-1", sb.user.name);
    assert!(text.contains(&user_section));
    std::fs::write(&config, text.replace(&user_section, &moved)).unwrap();
    sb.setup(&[]).assert().success();
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let seen = p.seen();
    let user_calls: Vec<_> = seen.iter().filter(|s| s.access_key == sb.user.account).collect();
    for s in &user_calls {
        let expected = if s.service == "kms" { "us-east-1" } else { "eu-west-1" };
        assert_eq!(s.region, expected, "{} {} signed for {}", s.service, s.operation, s.region);
    }
    assert!(user_calls.iter().any(|s| s.service == "sts"), "no STS call of the user side");
    assert!(user_calls.iter().any(|s| s.service == "iam"), "no IAM call of the user side");
    let (key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    assert!(key.starts_with("arn:aws:kms:us-east-1:"), "{key}");
}
