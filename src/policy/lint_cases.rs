//! Lint cases: every code, once where it must fire and once where it must not.

use super::PolicyDocument;
use super::build::{self, GrantSpec};
use super::lint::{PolicyKind, Severity, lint};
use serde_json::{Value, json};

const OWNER: &str = "111111111111";

fn admin() -> Value {
    json!({"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OWNER}:root")},
           "Action": "kms:*", "Resource": "*"})
}

fn codes(doc: Value, kind: PolicyKind) -> Vec<&'static str> {
    let doc = PolicyDocument::parse(&doc.to_string()).unwrap();
    lint(&doc, kind, Some(OWNER)).iter().map(|f| f.code).collect()
}

fn identity(statement: Value) -> Vec<&'static str> {
    codes(json!({"Version": "2012-10-17", "Statement": [statement]}), PolicyKind::IdentityPolicy)
}

fn key_policy(statements: Vec<Value>) -> Vec<&'static str> {
    codes(json!({"Version": "2012-10-17", "Statement": statements}), PolicyKind::KeyPolicy)
}

fn keys_with(condition: Value) -> Value {
    json!({"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
           "Resource": "arn:aws:kms:us-east-1:111111111111:key/*", "Condition": condition})
}

#[test]
fn what_setup_writes_has_no_findings() {
    let spec = GrantSpec::new(
        "us-east-1".parse().unwrap(),
        OWNER.parse().unwrap(),
        vec!["222222222222".parse().unwrap()],
        "production-data-key".parse().unwrap(),
        "kmsxacct-production-data-key".parse().unwrap(),
    );
    let role = build::role_access_policy(&spec);
    assert!(lint(&role, PolicyKind::IdentityPolicy, None).is_empty());
    assert_eq!(PolicyKind::guess(&role), PolicyKind::IdentityPolicy);
    let key = build::key_policy(&spec);
    assert_eq!(PolicyKind::guess(&key), PolicyKind::KeyPolicy);
    assert!(lint(&key, PolicyKind::KeyPolicy, None).is_empty());
    assert!(lint(&key, PolicyKind::KeyPolicy, Some(OWNER)).is_empty());
    let trust = build::role_trust_policy(&spec, &"222222222222".parse().unwrap());
    assert_eq!(PolicyKind::guess(&trust), PolicyKind::TrustPolicy);
    assert!(lint(&trust, PolicyKind::TrustPolicy, None).is_empty());
}

#[test]
fn unknown_operator() {
    assert_eq!(
        identity(keys_with(json!({"StringMaybe": {"kms:RequestAlias": "alias/x"}}))),
        ["unknown-operator"]
    );
    assert!(
        identity(keys_with(json!({"StringEqualsIfExists": {"kms:RequestAlias": "alias/x"}})))
            .is_empty()
    );
}

#[test]
fn alias_arn_in_resource() {
    let bad = identity(json!({"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
        "Resource": "arn:aws:kms:us-east-1:111111111111:alias/production-data-key"}));
    assert_eq!(bad, ["alias-arn-in-resource"]);
    // Alias operations are authorised against the alias ARN: no finding.
    let ok = identity(json!({"Effect": "Allow", "Action": ["kms:CreateAlias", "kms:UpdateAlias"],
        "Resource": "arn:aws:kms:us-east-1:111111111111:alias/production-data-key"}));
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn the_alias_arn_message_says_how_to_fix_it() {
    let doc = PolicyDocument::parse(
        &json!({"Statement": [{"Sid": "Use", "Effect": "Allow", "Action": "kms:Encrypt",
        "Resource": "arn:aws:kms:us-east-1:111111111111:alias/x"}]})
        .to_string(),
    )
    .unwrap();
    let f = &lint(&doc, PolicyKind::IdentityPolicy, None)[0];
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.statement, "Use");
    assert!(f.message.contains("arn:aws:kms:us-east-1:111111111111:key/*"), "{}", f.message);
    assert!(
        f.message.contains("kms:ResourceAliases") && f.message.contains("alias/x"),
        "{}",
        f.message
    );
}

#[test]
fn missing_set_operator() {
    assert_eq!(
        identity(keys_with(json!({"StringLike": {"kms:ResourceAliases": "alias/x"}}))),
        ["missing-set-operator"]
    );
    assert!(
        identity(keys_with(json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/x"}})))
            .is_empty()
    );
    // kms:RequestAlias is single-valued: no set operator needed.
    assert!(
        identity(keys_with(json!({"StringEquals": {"kms:RequestAlias": "alias/x"}}))).is_empty()
    );
}

#[test]
fn alias_arn_in_condition() {
    assert_eq!(
        identity(keys_with(
            json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": "arn:aws:kms:us-east-1:111111111111:alias/x"}})
        )),
        ["alias-arn-in-condition"]
    );
    assert_eq!(
        identity(keys_with(
            json!({"StringEquals": {"kms:RequestAlias": "arn:aws:kms:us-east-1:111111111111:alias/x"}})
        )),
        ["alias-arn-in-condition"]
    );
    assert!(
        identity(keys_with(json!({"StringEquals": {"kms:RequestAlias": "alias/x"}}))).is_empty()
    );
}

#[test]
fn resource_aliases_in_key_policy() {
    let stmt = |cond: Value| {
        json!({"Effect": "Allow", "Principal": {"AWS": "222222222222"},
        "Action": "kms:Encrypt", "Resource": "*", "Condition": cond})
    };
    assert_eq!(
        key_policy(vec![
            admin(),
            stmt(json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/x"}}))
        ]),
        ["resource-aliases-in-key-policy"]
    );
    assert!(
        key_policy(vec![admin(), stmt(json!({"StringEquals": {"kms:RequestAlias": "alias/x"}}))])
            .is_empty()
    );
}

#[test]
fn wildcard_without_like() {
    assert_eq!(
        identity(keys_with(
            json!({"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/prod-*"}})
        )),
        ["wildcard-without-like"]
    );
    assert!(
        identity(keys_with(
            json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/prod-*"}})
        ))
        .is_empty()
    );
}

#[test]
fn forallvalues_vacuous() {
    assert_eq!(
        identity(keys_with(json!({"ForAllValues:StringLike": {"kms:ResourceAliases": "alias/x"}}))),
        ["forallvalues-vacuous"]
    );
    assert!(
        identity(keys_with(json!({"ForAllValues:StringLike": {"kms:ResourceAliases": "alias/x"},
        "Null": {"kms:ResourceAliases": "false"}})))
        .is_empty()
    );
    // In a Deny, ForAllValues is not a widening.
    let deny = json!({"Effect": "Deny", "Action": "kms:*", "Resource": "*",
        "Condition": {"ForAllValues:StringLike": {"kms:ResourceAliases": "alias/x"}}});
    assert!(identity(deny).is_empty());
}

#[test]
fn owner_lockout() {
    let grant = json!({"Effect": "Allow", "Principal": {"AWS": "222222222222"}, "Action": "kms:Encrypt", "Resource": "*"});
    assert_eq!(key_policy(vec![grant.clone()]), ["owner-lockout"]);
    assert!(key_policy(vec![admin(), grant.clone()]).is_empty());
    let put_only = json!({"Effect": "Allow", "Principal": {"AWS": OWNER}, "Action": "kms:PutKeyPolicy", "Resource": "*"});
    assert!(key_policy(vec![put_only, grant]).is_empty());
}

#[test]
fn wildcard_principal() {
    let open =
        json!({"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"});
    assert_eq!(key_policy(vec![admin(), open]), ["wildcard-principal"]);
    let narrowed = json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*",
        "Condition": {"StringEquals": {"kms:CallerAccount": "222222222222"}}});
    assert!(key_policy(vec![admin(), narrowed]).is_empty());
    // The organisation, by id or path, bounds it; a condition on something else does not, nor
    // a negated or IfExists one.
    for (condition, quiet) in [
        (json!({"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}), true),
        (
            json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-a1b2c3d4e5/r-ab12/*"}}),
            true,
        ),
        (json!({"StringEquals": {"AWS:PRINCIPALACCOUNT": "222222222222"}}), true),
        (json!({"StringEquals": {"kms:EncryptionContext:app": "billing"}}), false),
        (json!({"StringNotEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}), false),
        (json!({"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}), false),
        (json!({"Null": {"aws:PrincipalOrgID": "false"}}), false),
    ] {
        let statement = json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*", "Condition": condition});
        let found = key_policy(vec![admin(), statement]);
        let expected: &[&str] = if quiet { &[] } else { &["wildcard-principal"] };
        assert_eq!(found, expected, "{condition}");
    }
}

#[test]
fn broad_cross_account() {
    let everything = json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
        "Action": "kms:*", "Resource": "*"});
    assert_eq!(key_policy(vec![admin(), everything]), ["broad-cross-account"]);
    let manage = json!({"Effect": "Allow", "Principal": {"AWS": "222222222222"},
        "Action": ["kms:Encrypt", "kms:ScheduleKeyDeletion"], "Resource": "*"});
    assert_eq!(key_policy(vec![admin(), manage]), ["broad-cross-account"]);
    let use_only = json!({"Effect": "Allow", "Principal": {"AWS": "222222222222"},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"});
    assert!(key_policy(vec![admin(), use_only]).is_empty());
}

#[test]
fn unknown_action() {
    assert_eq!(
        identity(json!({"Effect": "Allow", "Action": "kms:Encrpyt", "Resource": "*"})),
        ["unknown-action"]
    );
    assert_eq!(
        identity(json!({"Effect": "Allow", "Action": "kms:Zap*", "Resource": "*"})),
        ["unknown-action"]
    );
    assert!(identity(json!({"Effect": "Allow", "Action": ["kms:Generate*", "s3:GetObject", "*"], "Resource": "*"})).is_empty());
    let doc = PolicyDocument::parse(
        r#"{"Statement":[{"Effect":"Allow","Action":"kms:Encrpyt","Resource":"*"}]}"#,
    )
    .unwrap();
    assert!(lint(&doc, PolicyKind::IdentityPolicy, None)[0].message.contains("kms:Encrypt"));
}

mod round_trip {
    use super::super::PolicyDocument;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn one_or_many() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[a-z]{1,6}:[A-Za-z*?]{1,10}".prop_map(Value::from),
            prop::collection::vec("[a-z]{1,6}:[A-Za-z*?]{1,10}", 0..4).prop_map(|v| json!(v)),
        ]
    }

    fn condition() -> impl Strategy<Value = Value> {
        let op = prop_oneof![
            Just("StringEquals"),
            Just("ForAnyValue:StringLike"),
            Just("ForAllValues:StringEquals"),
            Just("NumericLessThanIfExists"),
            Just("Bool"),
        ];
        let value = prop_oneof![
            "[ -~]{0,12}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            prop::collection::vec("[a-z/]{1,8}", 1..3).prop_map(|v| json!(v)),
        ];
        prop::collection::btree_map(
            op,
            prop::collection::btree_map("[a-zA-Z:]{1,12}", value, 1..3),
            1..3,
        )
        .prop_map(|m| json!(m))
    }

    fn statement() -> impl Strategy<Value = Value> {
        (
            prop::option::of("[A-Za-z0-9]{1,8}"),
            any::<bool>(),
            one_or_many(),
            any::<bool>(),
            prop::option::of(prop_oneof![
                Just(json!("*")),
                "[0-9]{12}".prop_map(|a| json!({"AWS": format!("arn:aws:iam::{a}:root")})),
                prop::collection::vec("[0-9]{12}", 1..3)
                    .prop_map(|v| json!({"AWS": v, "Service": "kms.amazonaws.com"})),
            ]),
            prop::option::of(condition()),
        )
            .prop_map(|(sid, allow, actions, not, principal, cond)| {
                let mut s =
                    json!({"Effect": if allow { "Allow" } else { "Deny" }, "Resource": "*"});
                s[if not { "NotAction" } else { "Action" }] = actions;
                if let Some(sid) = sid {
                    s["Sid"] = json!(sid);
                }
                if let Some(p) = principal {
                    s["Principal"] = p;
                }
                if let Some(c) = cond {
                    s["Condition"] = c;
                }
                s
            })
    }

    proptest! {
        #[test]
        fn parse_render_parse_is_identity(statements in prop::collection::vec(statement(), 1..4), as_object in any::<bool>()) {
            let statement = if as_object && statements.len() == 1 { statements[0].clone() } else { json!(statements) };
            let text = json!({"Version": "2012-10-17", "Statement": statement}).to_string();
            let doc = PolicyDocument::parse(&text).unwrap();
            let rendered = doc.render();
            // Nothing lost: the rendered JSON equals the input JSON, and parses to the same value.
            prop_assert_eq!(serde_json::from_str::<Value>(&rendered).unwrap(), serde_json::from_str::<Value>(&text).unwrap());
            let again = PolicyDocument::parse(&rendered).unwrap();
            prop_assert!(again.same_as(&doc));
            prop_assert_eq!(again, doc);
        }
    }
}
