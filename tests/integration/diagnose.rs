//! diagnose against setups built by hand with the SDK (not by kmsxacct): each broken setup is
//! diagnosed with the right decision and blocking layer, and for each policy layer the fix
//! diagnose proposes, applied with the SDK, turns the next diagnose into "allow".

use crate::support::{Sandbox, json, stderr, stdout};
use serde_json::{Value, json};

/// One hand-made setup: a key (with its policy and alias) in the owner account, a role (with its
/// policies and boundary) in the user account.
struct Case {
    sb: Sandbox,
    key_arn: String,
    alias: String,
    role_arn: String,
}

const ROLE: &str = "app";

fn owner_admin(sb: &Sandbox) -> Value {
    json!({"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", sb.owner.account)}, "Action": "kms:*", "Resource": "*"})
}

fn user_grant(sb: &Sandbox, actions: Value) -> Value {
    json!({"Sid": "UserUse", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", sb.user.account)}, "Action": actions, "Resource": "*"})
}

fn good_key_policy(sb: &Sandbox) -> Value {
    json!({"Version": "2012-10-17", "Statement": [owner_admin(sb), user_grant(sb, json!(["kms:Encrypt", "kms:Decrypt"]))]})
}

fn good_role_policy(sb: &Sandbox) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
        "Resource": format!("arn:aws:kms:us-east-1:{}:key/*", sb.owner.account),
        "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": sb.alias.clone()}}}]})
}

impl Case {
    /// A key with `key_policy` behind the sandbox's alias, and a role with `role_policy`.
    fn new(key_policy: impl Fn(&Sandbox) -> Value, role_policy: Option<Value>) -> Case {
        let sb = Sandbox::new();
        let (kms, iam) = (sb.kms(&sb.owner.account), sb.iam(&sb.user.account));
        let policy = key_policy(&sb).to_string();
        let key = sb.block_on(kms.create_key().policy(policy).send()).unwrap();
        let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
        let key_id = key.key_metadata().unwrap().key_id().to_string();
        sb.block_on(kms.create_alias().alias_name(&sb.alias).target_key_id(&key_id).send())
            .unwrap();
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", sb.user.account)}, "Action": "sts:AssumeRole"}]});
        let role = sb
            .block_on(
                iam.create_role()
                    .role_name(ROLE)
                    .assume_role_policy_document(trust.to_string())
                    .send(),
            )
            .unwrap();
        let role_arn = role.role().unwrap().arn().to_string();
        if let Some(p) =
            role_policy.or_else(|| Some(good_role_policy(&sb))).filter(|p| !p.is_null())
        {
            sb.block_on(
                iam.put_role_policy()
                    .role_name(ROLE)
                    .policy_name("use")
                    .policy_document(p.to_string())
                    .send(),
            )
            .unwrap();
        }
        let alias = sb.alias.clone();
        Case { sb, key_arn, alias, role_arn }
    }

    /// Decrypt through the alias ARN: blocked as said, then allowed once the fix is applied.
    fn decrypt_broken_then_fixed(&self, decision: &str, layer: &str) {
        broken_then_fixed(self, &self.alias_arn(), "kms:Decrypt", decision, layer, &[], None);
    }

    /// Puts an inline policy on the role, behind anyone's back.
    fn put_role_policy(&self, name: &str, policy: &Value) {
        let iam = self.sb.iam(&self.sb.user.account);
        let put = iam.put_role_policy().role_name(ROLE).policy_name(name);
        self.sb.block_on(put.policy_document(policy.to_string()).send()).unwrap();
    }

    fn alias_arn(&self) -> String {
        format!("arn:aws:kms:us-east-1:{}:{}", self.sb.owner.account, self.alias)
    }

    /// diagnose as the role, `key` as named, `action`; its JSON report and exit code.
    fn diagnose(&self, key: &str, action: &str, extra: &[&str]) -> (Value, Option<i32>) {
        let sb = &self.sb;
        let out = sb
            .cmd()
            .args([
                "diagnose",
                "--caller",
                &sb.user.name,
                "--as-role",
                &self.role_arn,
                "--key",
                key,
            ])
            .args(["--action", action, "--owner", &sb.owner.name, "--output", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!stdout(&out).is_empty(), "no report: {}", stderr(&out));
        (json(&stdout(&out)), out.status.code())
    }

    /// Applies each fix that changes a document, with the SDK.
    fn apply(&self, report: &Value, scp: Option<&std::path::Path>) {
        let sb = &self.sb;
        for fix in report["fix"].as_array().unwrap() {
            if fix["delete"] == json!(true) && fix["layer"] == json!("identity-policy") {
                let name = fix["document"].as_str().unwrap().trim_start_matches("inline:");
                let iam = sb.iam(&sb.user.account);
                sb.block_on(iam.delete_role_policy().role_name(ROLE).policy_name(name).send())
                    .unwrap();
                continue;
            }
            let Some(policy) = fix.get("policy") else { continue };
            let text = policy.to_string();
            match fix["layer"].as_str().unwrap() {
                "key-policy" => sb.put_key_policy(policy),
                "identity-policy" => {
                    let document = fix["document"].as_str().unwrap();
                    let name = document.strip_prefix("inline:").unwrap_or("diagnose-fix");
                    let iam = sb.iam(&sb.user.account);
                    sb.block_on(
                        iam.put_role_policy()
                            .role_name(ROLE)
                            .policy_name(name)
                            .policy_document(text)
                            .send(),
                    )
                    .unwrap();
                }
                "permissions-boundary" => {
                    let iam = sb.iam(&sb.user.account);
                    let created = sb
                        .block_on(
                            iam.create_policy()
                                .policy_name("boundary-fixed")
                                .policy_document(text)
                                .send(),
                        )
                        .unwrap();
                    let arn = created.policy().unwrap().arn().unwrap().to_string();
                    sb.block_on(
                        iam.put_role_permissions_boundary()
                            .role_name(ROLE)
                            .permissions_boundary(arn)
                            .send(),
                    )
                    .unwrap();
                }
                "scp" => std::fs::write(scp.unwrap(), text).unwrap(),
                other => panic!("no document fix expected for {other}"),
            }
        }
    }
}

fn layers(report: &Value) -> Vec<String> {
    report["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["layer"].as_str().unwrap().to_string())
        .collect()
}

/// Diagnoses, checks decision and layer, applies the fix, and checks the next diagnose allows.
fn broken_then_fixed(
    c: &Case,
    key: &str,
    action: &str,
    decision: &str,
    layer: &str,
    extra: &[&str],
    scp: Option<&std::path::Path>,
) {
    let (report, code) = c.diagnose(key, action, extra);
    assert_eq!(report["decision"], json!(decision), "{report:#}");
    assert_eq!(layers(&report), vec![layer.to_string()], "{report:#}");
    assert_eq!(code, Some(1));
    c.apply(&report, scp);
    let (after, code) = c.diagnose(key, action, extra);
    assert_eq!(after["decision"], json!("allow"), "after the fix: {after:#}");
    assert_eq!(code, Some(0));
}

#[test]
fn the_right_setup_is_allowed() {
    let c = Case::new(good_key_policy, None);
    let (report, code) = c.diagnose(&c.alias_arn(), "kms:Decrypt", &[]);
    assert_eq!((report["decision"].clone(), code), (json!("allow"), Some(0)), "{report:#}");
    assert!(layers(&report).is_empty());
}

#[test]
fn an_alias_arn_in_the_role_policy_resource_is_the_identity_layer() {
    let c = Case::new(good_key_policy, Some(Value::Null));
    let wrong = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": c.alias_arn()}]});
    c.put_role_policy("use", &wrong);
    let (report, _) = c.diagnose(&c.alias_arn(), "kms:Decrypt", &[]);
    assert!(report.to_string().contains("alias ARN"), "{report:#}");
    let fix = report["fix"][0]["policy"].to_string();
    assert!(fix.contains("key/*") && fix.contains("kms:ResourceAliases"), "{fix}");
    c.decrypt_broken_then_fixed("implicit_deny", "identity-policy");
}

#[test]
fn no_key_policy_grant_is_the_key_policy_layer() {
    let c = Case::new(|sb| json!({"Version": "2012-10-17", "Statement": [owner_admin(sb)]}), None);
    c.decrypt_broken_then_fixed("implicit_deny", "key-policy");
}

#[test]
fn a_key_policy_granting_only_encrypt_blocks_decrypt() {
    let c = Case::new(
        |sb| json!({"Version": "2012-10-17", "Statement": [owner_admin(sb), user_grant(sb, json!("kms:Encrypt"))]}),
        None,
    );
    c.decrypt_broken_then_fixed("implicit_deny", "key-policy");
}

#[test]
fn no_identity_policy_is_the_identity_layer() {
    let c = Case::new(good_key_policy, Some(Value::Null));
    c.decrypt_broken_then_fixed("implicit_deny", "identity-policy");
}

#[test]
fn an_explicit_deny_is_named_and_its_removal_fixes_it() {
    let c = Case::new(good_key_policy, None);
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Sid": "NoDecrypt", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]});
    c.put_role_policy("guard", &deny);
    c.decrypt_broken_then_fixed("explicit_deny", "identity-policy");
}

#[test]
fn for_all_values_on_a_key_with_two_aliases_is_the_identity_layer() {
    let c = Case::new(good_key_policy, None);
    let kms = c.sb.kms(&c.sb.owner.account);
    let second = format!("{}-second", c.alias);
    c.sb.block_on(kms.create_alias().alias_name(&second).target_key_id(&c.key_arn).send()).unwrap();
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt",
        "Resource": format!("arn:aws:kms:us-east-1:{}:key/*", c.sb.owner.account),
        "Condition": {"ForAllValues:StringLike": {"kms:ResourceAliases": c.alias.clone()}}}]});
    c.put_role_policy("use", &all);
    c.decrypt_broken_then_fixed("implicit_deny", "identity-policy");
}

#[test]
fn a_request_alias_condition_with_the_key_named_by_arn_is_the_identity_layer() {
    let c = Case::new(good_key_policy, None);
    let by_alias = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt",
        "Resource": format!("arn:aws:kms:us-east-1:{}:key/*", c.sb.owner.account),
        "Condition": {"StringEquals": {"kms:RequestAlias": c.alias.clone()}}}]});
    c.put_role_policy("use", &by_alias);
    let key = c.key_arn.clone();
    broken_then_fixed(&c, &key, "kms:Decrypt", "implicit_deny", "identity-policy", &[], None);
}

#[test]
fn a_permissions_boundary_that_leaves_out_decrypt_is_the_boundary_layer() {
    let c = Case::new(good_key_policy, None);
    let iam = c.sb.iam(&c.sb.user.account);
    let narrow = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]});
    let created =
        c.sb.block_on(
            iam.create_policy().policy_name("boundary").policy_document(narrow.to_string()).send(),
        )
        .unwrap();
    let arn = created.policy().unwrap().arn().unwrap().to_string();
    c.sb.block_on(
        iam.put_role_permissions_boundary().role_name(ROLE).permissions_boundary(arn).send(),
    )
    .unwrap();
    c.decrypt_broken_then_fixed("implicit_deny", "permissions-boundary");
}

#[test]
fn an_scp_with_an_explicit_deny_is_the_scp_layer() {
    let c = Case::new(good_key_policy, None);
    let scp = c.sb.path().join("scp.json");
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Sid": "AllowAll", "Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Sid": "NoKmsDecrypt", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]});
    std::fs::write(&scp, deny.to_string()).unwrap();
    let path = scp.to_str().unwrap().to_string();
    broken_then_fixed(
        &c,
        &c.alias_arn(),
        "kms:Decrypt",
        "explicit_deny",
        "scp",
        &["--scp", &path],
        Some(&scp),
    );
}

#[test]
fn access_through_a_grant_only_is_allowed() {
    let c = Case::new(|sb| json!({"Version": "2012-10-17", "Statement": [owner_admin(sb)]}), None);
    let kms = c.sb.kms(&c.sb.owner.account);
    let grant = kms
        .create_grant()
        .key_id(&c.key_arn)
        .grantee_principal(&c.role_arn)
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt);
    c.sb.block_on(grant.send()).unwrap();
    let (report, code) = c.diagnose(&c.alias_arn(), "kms:Decrypt", &[]);
    assert_eq!((report["decision"].clone(), code), (json!("allow"), Some(0)), "{report:#}");
    let (report, _) = c.diagnose(&c.alias_arn(), "kms:Encrypt", &[]);
    assert_eq!(layers(&report), vec!["key-policy"], "{report:#}");
}

#[test]
fn a_disabled_key_is_the_key_state_layer() {
    let c = Case::new(good_key_policy, None);
    let kms = c.sb.kms(&c.sb.owner.account);
    c.sb.block_on(kms.disable_key().key_id(&c.key_arn).send()).unwrap();
    let (report, code) = c.diagnose(&c.alias_arn(), "kms:Decrypt", &[]);
    assert_eq!((report["decision"].clone(), code), (json!("implicit_deny"), Some(1)));
    assert_eq!(layers(&report), vec!["key-state"], "{report:#}");
    assert!(report["fix"][0]["change"].as_str().unwrap().contains("EnableKey"));
}

#[test]
fn a_key_pending_deletion_is_the_key_state_layer() {
    let c = Case::new(good_key_policy, None);
    let kms = c.sb.kms(&c.sb.owner.account);
    c.sb.block_on(kms.schedule_key_deletion().key_id(&c.key_arn).pending_window_in_days(7).send())
        .unwrap();
    let (report, _) = c.diagnose(&c.alias_arn(), "kms:Decrypt", &[]);
    assert_eq!(layers(&report), vec!["key-state"], "{report:#}");
    assert!(report["blocking"][0]["message"].as_str().unwrap().contains("PendingDeletion"));
    assert!(report["fix"][0]["change"].as_str().unwrap().contains("CancelKeyDeletion"));
}

#[test]
fn a_short_alias_name_used_across_accounts_is_the_name_resolution_layer() {
    let c = Case::new(good_key_policy, None);
    let (report, code) = c.diagnose(&c.alias, "kms:Decrypt", &[]);
    assert_eq!((report["decision"].clone(), code), (json!("implicit_deny"), Some(1)));
    assert_eq!(layers(&report), vec!["name-resolution"], "{report:#}");
    assert!(report["fix"][0]["change"].as_str().unwrap().contains(&c.alias_arn()), "{report:#}");
}

#[test]
fn encrypt_with_a_signing_key_is_the_key_usage_layer() {
    let c = Case::new(good_key_policy, None);
    let kms = c.sb.kms(&c.sb.owner.account);
    let signing =
        c.sb.block_on(
            kms.create_key()
                .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
                .key_spec(aws_sdk_kms::types::KeySpec::Rsa2048)
                .policy(good_key_policy(&c.sb).to_string())
                .send(),
        )
        .unwrap();
    let signing_id = signing.key_metadata().unwrap().key_id().to_string();
    c.sb.block_on(kms.update_alias().alias_name(&c.alias).target_key_id(&signing_id).send())
        .unwrap();
    let (report, _) = c.diagnose(&c.alias_arn(), "kms:Encrypt", &[]);
    assert_eq!(layers(&report), vec!["key-usage"], "{report:#}");
}

#[test]
fn an_alias_that_does_not_exist_is_named() {
    let c = Case::new(good_key_policy, None);
    let missing =
        format!("arn:aws:kms:us-east-1:{}:alias/it/none-{}", c.sb.owner.account, &c.alias[9..]);
    let (report, _) = c.diagnose(&missing, "kms:Decrypt", &[]);
    assert!(layers(&report).contains(&"alias-not-found".to_string()), "{report:#}");
}

#[test]
fn the_error_message_and_a_probe_are_checked_against_the_verdict() {
    let c = Case::new(|sb| json!({"Version": "2012-10-17", "Statement": [owner_admin(sb)]}), None);
    let message = format!(
        "User: {} is not authorized to perform: kms:Decrypt on resource: {} because no resource-based policy allows the kms:Decrypt action",
        c.role_arn, c.key_arn
    );
    let (report, _) = c.diagnose(&c.alias_arn(), "kms:Decrypt", &["--error", &message, "--probe"]);
    assert!(report["error_check"].as_str().unwrap().starts_with("agrees"), "{report:#}");
    // LocalStack does not enforce key policies: the probe shows AWS (here) allowed it.
    assert_eq!(report["probe"], json!("AWS allowed the call"), "{report:#}");
}

#[test]
fn an_iam_user_is_judged_by_its_own_and_its_groups_policies() {
    let c = Case::new(good_key_policy, Some(Value::Null));
    let sb = &c.sb;
    let iam = sb.iam(&sb.user.account);
    sb.block_on(iam.create_user().user_name("dev").send()).unwrap();
    sb.block_on(iam.create_group().group_name("devs").send()).unwrap();
    sb.block_on(iam.add_user_to_group().group_name("devs").user_name("dev").send()).unwrap();
    let keys = sb.block_on(iam.create_access_key().user_name("dev").send()).unwrap();
    let key = keys.access_key().unwrap();
    let profile = format!("dev-{}", &sb.user.name);
    let config = sb.path().join("aws-config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[profile {profile}]\nregion = us-east-1\nendpoint_url = {}\n",
        crate::support::endpoint()
    ));
    std::fs::write(&config, text).unwrap();
    let credentials = sb.path().join("aws-credentials");
    let mut text = std::fs::read_to_string(&credentials).unwrap();
    text.push_str(&format!(
        "\n[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        key.access_key_id(),
        key.secret_access_key()
    ));
    std::fs::write(&credentials, text).unwrap();
    let diagnose = || {
        let out = sb
            .cmd()
            .args([
                "diagnose",
                "--caller",
                &profile,
                "--key",
                &c.alias_arn(),
                "--action",
                "kms:Decrypt",
            ])
            .args(["--owner", &sb.owner.name, "--output", "json"])
            .output()
            .unwrap();
        json(&stdout(&out))
    };
    let report = diagnose();
    assert!(report["principal"].as_str().unwrap().ends_with(":user/dev"), "{report:#}");
    assert_eq!(layers(&report), vec!["identity-policy"], "{report:#}");
    let group_policy = good_role_policy(sb);
    sb.block_on(
        iam.put_group_policy()
            .group_name("devs")
            .policy_name("use")
            .policy_document(group_policy.to_string())
            .send(),
    )
    .unwrap();
    assert_eq!(diagnose()["decision"], json!("allow"));
}
