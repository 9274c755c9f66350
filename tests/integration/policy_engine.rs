//! The policy engine from the command line: explain, lint, policies, and verify's static checks.

use crate::support::{Sandbox, json, stderr, stdout};
use serde_json::json;

const KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/abc";

fn write(sb: &Sandbox, name: &str, value: &serde_json::Value) -> String {
    let path = sb.path().join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

fn setup_policies(sb: &Sandbox) -> serde_json::Value {
    let out = sb
        .cmd()
        .args([
            "policies",
            "--owner-account",
            "111111111111",
            "--user-account",
            "222222222222",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    json(&stdout(&out))
}

#[test]
fn explain_allows_setups_policies_and_denies_the_classic_mistake() {
    let sb = Sandbox::new();
    let p = setup_policies(&sb);
    let kp = write(&sb, "kp.json", &p["key_policy"]);
    let good = write(&sb, "good.json", &p["role_policy"]);
    let bad = write(
        &sb,
        "bad.json",
        &json!({"Version": "2012-10-17", "Statement": [{"Sid": "Use", "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt"],
            "Resource": "arn:aws:kms:us-east-1:111111111111:alias/production-data-key"}]}),
    );
    let explain = |identity: &str| {
        let mut cmd = sb.cmd();
        cmd.args([
            "explain",
            "--key-policy",
            &kp,
            "--identity-policy",
            identity,
            "--principal",
            "arn:aws:sts::222222222222:assumed-role/kmsxacct-production-data-key/s",
            "--action",
            "kms:Decrypt",
            "--key",
            KEY,
            "--key-alias",
            "alias/production-data-key",
            "--output",
            "json",
        ]);
        cmd.output().unwrap()
    };
    let out = explain(&good);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&stdout(&out));
    assert_eq!(report["decision"], json!("allow"));
    assert!(!report["reasons"].as_array().unwrap().is_empty());

    let out = explain(&bad);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&stdout(&out));
    assert_eq!(report["decision"], json!("implicit_deny"));
    assert!(report["reasons"].to_string().contains("alias ARN"), "{report}");

    // Bad input: exit 2, one line naming the value.
    let out = sb
        .cmd()
        .args([
            "explain",
            "--key-policy",
            &kp,
            "--principal",
            "nobody",
            "--action",
            "kms:Encrypt",
            "--key",
            KEY,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'nobody'"), "{}", stderr(&out));
    let not_a_policy = write(&sb, "np.json", &json!({"hello": "world"}));
    let out = sb
        .cmd()
        .args([
            "explain",
            "--key-policy",
            &not_a_policy,
            "--principal",
            "arn:aws:iam::222222222222:role/r",
            "--action",
            "kms:Encrypt",
            "--key",
            KEY,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("np.json"), "{}", stderr(&out));
}

#[test]
fn lint_flags_the_mistakes_with_codes_and_passes_what_setup_writes() {
    let sb = Sandbox::new();
    let p = setup_policies(&sb);
    let kp = write(&sb, "kp.json", &p["key_policy"]);
    let rp = write(&sb, "rp.json", &p["role_policy"]);
    let out = sb.cmd().args(["lint", &kp, &rp]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("0 error(s), 0 warning(s)"));

    let bad = write(
        &sb,
        "bad.json",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Use", "Effect": "Allow", "Action": ["kms:Encrypt"],
             "Resource": "arn:aws:kms:us-east-1:111111111111:alias/production-data-key"},
            {"Sid": "Cond", "Effect": "Allow", "Action": ["kms:Decrypt"],
             "Resource": "arn:aws:kms:us-east-1:111111111111:key/*",
             "Condition": {"StringLike": {"kms:ResourceAliases": "arn:aws:kms:us-east-1:111111111111:alias/x"}}}
        ]}),
    );
    let out = sb.cmd().args(["lint", &bad, "--output", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json(&stdout(&out));
    let mut codes: Vec<String> = report["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}",
                f["code"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
                f["statement"].as_str().unwrap()
            )
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "alias-arn-in-condition:error:Cond",
            "alias-arn-in-resource:error:Use",
            "missing-set-operator:error:Cond"
        ]
    );
}

#[test]
fn live_policies_written_by_setup_lint_clean_and_match_the_policies_command() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let (key_arn, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let iam = sb.iam(&sb.user.account);
    let kp = sb.key_policy_of(&key_arn);
    let rp = sb.role_policy(&sb.user.account);
    let role = sb.block_on(iam.get_role().role_name(sb.role_name()).send()).unwrap();
    let trust = json(role.role().unwrap().assume_role_policy_document().unwrap());
    let kp_file = write(&sb, "live-kp.json", &kp);
    let rp_file = write(&sb, "live-rp.json", &rp);
    let trust_file = write(&sb, "live-trust.json", &trust);
    let out = sb
        .cmd()
        .args(["lint", &kp_file, &rp_file, &trust_file, "--owner-account", &sb.owner.account])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));

    let out = sb
        .cmd()
        .args([
            "policies",
            "--owner-account",
            &sb.owner.account,
            "--user-account",
            &sb.user.account,
            "--alias",
            &sb.alias,
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let printed = json(&stdout(&out));
    assert_eq!(printed["role_policy"], rp);
    assert_eq!(printed["key_policy"], kp);
    assert_eq!(printed["role_name"], json!(sb.role_name()));
}

#[test]
fn verify_fails_and_names_the_mistake_when_the_role_policy_uses_the_alias_arn() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let wrong = sb.alias_arn_role_policy();
    sb.put_role_policy(&wrong);
    let out = sb.cmd().arg("verify").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for check in ["policy-encrypt", "policy-decrypt"] {
        let line = text
            .lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("no {check} line: {text}"));
        assert!(line.starts_with("FAIL") && line.contains("alias ARN"), "{line}");
    }
    // LocalStack itself let the round trip through: only the policy engine caught it.
    assert!(text.lines().any(|l| l.starts_with("PASS") && l.contains("decrypt ")), "{text}");

    // setup converges it back (read back: the key ARN pattern and the alias condition), and
    // verify passes again.
    sb.setup(&[]).assert().success();
    let policy = sb.role_policy(&sb.user.account);
    let statement = &policy["Statement"][0];
    let keys = format!("arn:aws:kms:us-east-1:{}:key/*", sb.owner.account);
    assert_eq!(statement["Resource"], serde_json::json!(keys), "{policy}");
    let condition = &statement["Condition"]["ForAnyValue:StringLike"]["kms:ResourceAliases"];
    assert!(condition.to_string().contains(&sb.alias), "{policy}");
    sb.cmd().arg("verify").assert().success();
}

#[test]
fn verify_evaluates_every_inline_and_attached_policy_of_the_role() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    let iam = sb.iam(&sb.user.account);
    let deny = |action: &str| {
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "NoUse", "Effect": "Deny",
            "Action": action, "Resource": "*"}]})
        .to_string()
    };
    sb.block_on(async {
        iam.put_role_policy()
            .role_name(sb.role_name())
            .policy_name("extra-inline")
            .policy_document(deny("kms:Encrypt"))
            .send()
            .await
            .expect("PutRolePolicy");
        let managed = iam
            .create_policy()
            .policy_name(format!("deny-decrypt-{}", sb.role_name()))
            .policy_document(deny("kms:Decrypt"))
            .send()
            .await
            .expect("CreatePolicy");
        iam.attach_role_policy()
            .role_name(sb.role_name())
            .policy_arn(managed.policy().unwrap().arn().unwrap())
            .send()
            .await
            .expect("AttachRolePolicy");
    });
    let out = sb.cmd().arg("verify").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for (check, source) in [("policy-encrypt", "extra-inline"), ("policy-decrypt", "deny-decrypt-")]
    {
        let line = text
            .lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("no {check} line: {text}"));
        assert!(line.starts_with("FAIL") && line.contains(source), "{line}");
    }
}

#[test]
fn explain_decides_each_action_against_its_real_resource() {
    let sb = Sandbox::new();
    let kp = write(&sb, "kp.json", &json!({"Statement": []}));
    let id = write(
        &sb,
        "id.json",
        &json!({"Statement": [{"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*"}]}),
    );
    let principal = "arn:aws:iam::222222222222:role/r";
    let out = sb
        .cmd()
        .args(["explain", "--key-policy", &kp, "--identity-policy", &id, "--principal", principal])
        .args(["--action", "kms:ListKeys"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // An alias action's resource is the alias ARN: expressible, and decided on alias and key.
    let out = sb
        .cmd()
        .args(["explain", "--key-policy", &kp, "--identity-policy", &id, "--principal", principal])
        .args(["--action", "kms:CreateAlias", "--key", "arn:aws:kms:us-east-1:222222222222:key/k"])
        .args(["--alias-arn", "arn:aws:kms:us-east-1:222222222222:alias/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("alias/x"), "{}", stdout(&out));
}

#[test]
fn explain_batch_answers_a_whole_matrix_in_one_call() {
    let sb = Sandbox::new();
    let key = "arn:aws:kms:us-east-1:111111111111:key/k1";
    let key_policy = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": "kms:Decrypt", "Resource": "*"}]});
    let role = json!({"Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "arn:aws:kms:us-east-1:111111111111:key/*"}]});
    let lines: Vec<String> = ["kms:Encrypt", "kms:Decrypt"]
        .iter()
        .enumerate()
        .map(|(i, action)| {
            json!({"id": i, "principal": "arn:aws:iam::222222222222:role/app", "action": action, "key": key,
                "key_policy": key_policy, "identity_policies": [role]})
            .to_string()
        })
        .chain(std::iter::once(r#"{"id": 9, "principal": "nobody", "action": "kms:Decrypt", "key_policy": {"Statement": []}}"#.to_string()))
        .collect();
    let batch = sb.path().join("batch.jsonl");
    std::fs::write(&batch, lines.join("\n")).unwrap();
    let out = sb.cmd().args(["explain", "--batch"]).arg(&batch).output().unwrap();
    let answers: Vec<serde_json::Value> = stdout(&out).lines().map(json).collect();
    assert_eq!(answers.len(), 3, "{}", stdout(&out));
    assert_eq!(answers[0]["decision"], json!("implicit_deny"));
    assert_eq!(answers[0]["blocking"][0]["layer"], json!("key-policy"));
    assert_eq!(answers[1]["decision"], json!("allow"));
    assert!(answers[2]["error"].as_str().unwrap().contains("'nobody'"));
    assert_eq!(out.status.code(), Some(2), "a bad line is bad input");
}

/// Lines are decided in parallel, a chunk at a time: answers still come in the order of their
/// lines, across chunks, and every bad line is counted.
#[test]
fn explain_batch_answers_in_line_order_across_chunks() {
    let sb = Sandbox::new();
    let key = "arn:aws:kms:us-east-1:111111111111:key/k1";
    let key_policy = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/app"}, "Action": "kms:Encrypt", "Resource": "*"}]});
    let lines: Vec<String> = (0..5000)
        .map(|i| match i % 1000 {
            // Bad input: a line that is not JSON, and one naming no ARN, in each thousand.
            7 => "{not json".to_string(),
            500 => json!({"id": i, "principal": "nobody", "action": "kms:Encrypt", "key": key, "key_policy": key_policy}).to_string(),
            _ => {
                let action = if i % 2 == 0 { "kms:Encrypt" } else { "kms:Decrypt" };
                json!({"id": i, "principal": "arn:aws:iam::111111111111:role/app", "action": action, "key": key, "key_policy": key_policy}).to_string()
            }
        })
        .collect();
    let batch = sb.path().join("batch.jsonl");
    std::fs::write(&batch, lines.join("\n\n")).unwrap();
    let out = sb.cmd().args(["explain", "--batch"]).arg(&batch).output().unwrap();
    let answers: Vec<serde_json::Value> = stdout(&out).lines().map(json).collect();
    assert_eq!(answers.len(), 5000);
    for (i, a) in answers.iter().enumerate() {
        let expected = match i % 1000 {
            7 => {
                json!({"id": null, "error": format!("line {}: key must be a string at line 1 column 2", 2 * i + 1)})
            }
            500 => json!(i),
            _ if i % 2 == 0 => json!("allow"),
            _ => json!("implicit_deny"),
        };
        match i % 1000 {
            7 => assert_eq!(a, &expected),
            500 => {
                assert_eq!(a["id"], expected, "{a}");
                assert!(a["error"].as_str().unwrap().contains("'nobody'"), "{a}");
            }
            _ => assert_eq!((&a["id"], &a["decision"]), (&json!(i), &expected)),
        }
    }
    assert!(stderr(&out).contains("10 batch line(s) were bad input"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(2));
}
