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
