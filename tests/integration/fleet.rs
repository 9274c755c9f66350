//! Fleet scale: the key policy grants an organisation (or a part of it) instead of listing
//! accounts. LocalStack does not model Organizations, so membership is what the policy engine
//! assumes from the record, and the outcomes read back are the documents.

use crate::support::{Sandbox, json, stderr, stdout};
use serde_json::json;

const ORG: &str = "o-a1b2c3d4e5";

/// The grant statement of the live key policy.
fn grant(sb: &Sandbox) -> serde_json::Value {
    let policy = sb.key_policy();
    let statements = policy["Statement"].as_array().unwrap();
    statements.iter().find(|s| s["Sid"] == "KmsxacctCrossAccountUse").unwrap().clone()
}

#[test]
fn setup_org_id_grants_the_organisation_and_verify_passes() {
    let sb = Sandbox::new();
    let out = sb.setup(&["--org-id", ORG]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        grant(&sb),
        json!({"Sid": "KmsxacctCrossAccountUse", "Effect": "Allow", "Principal": {"AWS": "*"},
            "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG}}})
    );
    let record = std::fs::read_to_string(sb.record()).unwrap();
    assert!(record.contains(&format!("org_id = \"{ORG}\"")), "{record}");
    let out = sb.cmd().args(["--output", "json", "verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // lint is quiet on what setup wrote: the wildcard principal is bounded.
    let kp = sb.path().join("kp.json");
    std::fs::write(&kp, sb.key_policy().to_string()).unwrap();
    let out = sb.cmd().args(["lint"]).arg(&kp).output().unwrap();
    assert!(stdout(&out).contains("0 error(s), 0 warning(s)"), "{}{}", stdout(&out), stderr(&out));
    // The engine: a principal of another organisation is denied, one of this one allowed.
    let rp = sb.path().join("rp.json");
    std::fs::write(&rp, sb.role_policy(&sb.user.account).to_string()).unwrap();
    let explain = |org: &str| {
        let principal =
            format!("arn:aws:sts::{}:assumed-role/{}/s", sb.user.account, sb.role_name());
        let key = sb.alias_target(&sb.owner.account, &sb.alias).unwrap().0;
        let context = format!("aws:PrincipalOrgID={org}");
        let args = [
            "explain",
            "--principal",
            &principal,
            "--action",
            "kms:Decrypt",
            "--key",
            &key,
            "--key-alias",
            &sb.alias,
            "--context",
            &context,
            "--output",
            "json",
        ];
        let out = sb
            .cmd()
            .args(args)
            .arg("--key-policy")
            .arg(&kp)
            .arg("--identity-policy")
            .arg(&rp)
            .output()
            .unwrap();
        json(&stdout(&out))["decision"].clone()
    };
    assert_eq!(explain(ORG), json!("allow"));
    assert_eq!(explain("o-zzzzzzzzzz"), json!("implicit_deny"));
    // Back to listing the accounts: setup converges the statement.
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        grant(&sb)["Principal"],
        json!({"AWS": format!("arn:aws:iam::{}:root", sb.user.account)})
    );
    assert!(grant(&sb).get("Condition").is_none());
}

#[test]
fn setup_org_path_grants_the_accounts_under_it() {
    let sb = Sandbox::new();
    let path = format!("{ORG}/r-ab12/ou-ab12-cdef3456/");
    let out = sb.setup(&["--org-path", &path]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        grant(&sb)["Condition"],
        json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": format!("{path}*")}})
    );
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn bad_organisations_are_bad_input_and_change_nothing() {
    let sb = Sandbox::new();
    for (args, message) in [
        (vec!["--org-id", "o-short"], "invalid --org-id 'o-short'"),
        (vec!["--org-path", "o-a1b2c3d4e5/r-ab12"], "invalid --org-path 'o-a1b2c3d4e5/r-ab12'"),
        (vec!["--org-id", ORG, "--org-path", "o-a1b2c3d4e5/r-ab12/"], "cannot be used with"),
    ] {
        let out = sb.setup(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(sb.alias_target(&sb.owner.account, &sb.alias), None);
    assert!(!sb.record().exists());
}

/// A CloudFormation client acting in `account`.
fn cloudformation(account: &str) -> aws_sdk_cloudformation::Client {
    use aws_sdk_cloudformation::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(crate::support::endpoint())
            .credentials_provider(Credentials::new(account, "test", None, None, "test"))
            .build(),
    )
}

/// Deploys `template` as a stack in `account` and waits for it; the final status.
fn deploy(sb: &Sandbox, account: &str, name: &str, template: &str) -> String {
    let cf = cloudformation(account);
    sb.block_on(async {
        cf.create_stack()
            .stack_name(name)
            .template_body(template)
            .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
            .send()
            .await
            .expect("CreateStack");
        for _ in 0..120 {
            let out = cf.describe_stacks().stack_name(name).send().await.expect("DescribeStacks");
            let status = out.stacks()[0].stack_status().unwrap().as_str().to_string();
            if !status.ends_with("IN_PROGRESS") {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        "TIMED_OUT".to_string()
    })
}

#[test]
fn exported_cloudformation_lints_deploys_and_verifies() {
    let sb = Sandbox::new();
    let dir = sb.path().join("cfn");
    let out = sb
        .cmd()
        .args(["export", "--format", "cloudformation", "--out-dir"])
        .arg(&dir)
        .args(["--owner", &sb.owner.name, "--user", &sb.user.name, "--alias", &sb.alias])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // Export changed nothing, and wrote no record.
    assert_eq!(sb.alias_target(&sb.owner.account, &sb.alias), None);
    assert!(!sb.record().exists());
    let cfn_lint = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cfn-lint.sh");
    for file in ["owner.template.json", "user.template.json"] {
        let lint = std::process::Command::new(cfn_lint).arg(dir.join(file)).output().unwrap();
        assert!(lint.status.success(), "cfn-lint {file}: {}{}", stdout(&lint), stderr(&lint));
    }
    let text = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    // The user side first: the key policy names the account, whose role then uses the key.
    assert_eq!(
        deploy(&sb, &sb.user.account, "kmsxacct-user", &text("user.template.json")),
        "CREATE_COMPLETE"
    );
    assert_eq!(
        deploy(&sb, &sb.owner.account, "kmsxacct-owner", &text("owner.template.json")),
        "CREATE_COMPLETE"
    );
    let (key, state) =
        sb.alias_target(&sb.owner.account, &sb.alias).expect("the alias CloudFormation made");
    assert_eq!(state, "Enabled");
    assert!(sb.role_exists(&sb.user.account, &sb.role_name()));
    // What CloudFormation made is what setup would have made: verify passes by flags.
    let out = sb
        .cmd()
        .args(["--output", "json", "verify", "--wait", "0"])
        .args(["--owner", &sb.owner.name, "--user", &sb.user.name, "--alias", &sb.alias])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = json(&stdout(&out));
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{report}");
    assert!(report.to_string().contains(&key), "{report}");
}

#[test]
fn exported_terraform_parses_back_with_a_provider_per_account() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["export", "--format", "terraform", "--regions", "us-east-1,eu-west-1"])
        .args(["--owner", &sb.owner.name, "--user", &sb.user.name, "--alias", &sb.alias])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let hcl_text = text.strip_prefix("# main.tf\n").expect("one file");
    let body: hcl::Body = hcl::from_str(hcl_text).unwrap_or_else(|e| panic!("{e}: {hcl_text}"));
    let providers: Vec<(String, String)> = body
        .blocks()
        .filter(|b| b.identifier() == "provider")
        .map(|b| {
            let attr =
                |k: &str| b.body().attributes().find(|a| a.key() == k).unwrap().expr().to_string();
            (attr("alias"), attr("profile"))
        })
        .collect();
    assert_eq!(
        providers,
        [
            ("\"owner\"".to_string(), format!("\"{}\"", sb.owner.name)),
            ("\"owner_eu_west_1\"".to_string(), format!("\"{}\"", sb.owner.name)),
            (format!("\"user_{}\"", sb.user.account), format!("\"{}\"", sb.user.name)),
        ]
    );
    let resources = body.blocks().filter(|b| b.identifier() == "resource").count();
    assert_eq!(resources, 6, "key, alias, replica, its alias, role, role policy: {hcl_text}");
}

#[test]
fn exported_multi_region_templates_lint_clean_one_per_region() {
    let sb = Sandbox::new();
    let dir = sb.path().join("cfn");
    let out = sb
        .cmd()
        .args([
            "export",
            "--format",
            "cloudformation",
            "--regions",
            "us-east-1,eu-west-1,ap-southeast-2",
            "--out-dir",
        ])
        .arg(&dir)
        .args(["--owner", &sb.owner.name, "--user", &sb.user.name, "--alias", &sb.alias])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "owner-ap-southeast-2.template.json",
            "owner-eu-west-1.template.json",
            "owner.template.json",
            "user.template.json"
        ]
    );
    let cfn_lint = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cfn-lint.sh");
    for file in &files {
        let lint = std::process::Command::new(cfn_lint).arg(dir.join(file)).output().unwrap();
        assert!(lint.status.success(), "cfn-lint {file}: {}{}", stdout(&lint), stderr(&lint));
    }
    let owner = json(&std::fs::read_to_string(dir.join("owner.template.json")).unwrap());
    assert_eq!(owner["Resources"]["Key"]["Properties"]["MultiRegion"], json!(true));
    let user = json(&std::fs::read_to_string(dir.join("user.template.json")).unwrap());
    let resources = &user["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        [0]["Resource"];
    assert_eq!(resources.as_array().unwrap().len(), 3, "{resources}");
}
