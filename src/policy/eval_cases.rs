//! The evaluator's corpus: each case cites the AWS documentation rule it encodes.
//!
//! KMS-KP: KMS developer guide, "Key policies in AWS KMS" / "Default key policy".
//! KMS-XA: KMS developer guide, "Allowing users in other accounts to use a KMS key".
//! KMS-ALIAS: KMS developer guide, "Use aliases to control access to KMS keys" (kms:ResourceAliases,
//!            kms:RequestAlias) and "Controlling access to aliases".
//! KMS-CK: KMS developer guide, "Condition keys for AWS KMS" (kms:CallerAccount).
//! IAM-EVAL: IAM user guide, "Policy evaluation logic" (explicit deny wins; implicit deny).
//! IAM-ACT/IAM-RES/IAM-PRIN: IAM JSON reference, Action/NotAction, Resource/NotResource,
//!            Principal/NotPrincipal (wildcards; actions case-insensitive).
//! IAM-COND: IAM JSON reference, "Condition operators" (OR across values, AND across keys,
//!            negated operators and missing keys, IfExists, Null).
//! IAM-SET: IAM user guide, "Single-valued vs. multivalued context keys" (ForAnyValue false and
//!            ForAllValues true on a missing or empty key).
//! IAM-GCK: IAM user guide, "AWS global condition context keys" (aws:PrincipalArn is the role ARN
//!            for a role session; aws:PrincipalAccount).

use super::PolicyDocument;
use super::eval::{Decision, NamedPolicy, Request, evaluate};
use serde_json::{Value, json};

const OWNER: &str = "111111111111";
const USER: &str = "222222222222";
const KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/1234abcd";
const ROLE: &str = "arn:aws:iam::222222222222:role/app";
const SESSION: &str = "arn:aws:sts::222222222222:assumed-role/app/session-1";
const SAME_ROLE: &str = "arn:aws:iam::111111111111:role/local";
const ALIAS: &str = "alias/production-data-key";

fn admin() -> Value {
    json!({"Sid": "Enable IAM User Permissions", "Effect": "Allow",
           "Principal": {"AWS": format!("arn:aws:iam::{OWNER}:root")}, "Action": "kms:*", "Resource": "*"})
}

fn grant(principal: Value) -> Value {
    json!({"Sid": "Grant", "Effect": "Allow", "Principal": {"AWS": principal},
           "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*"})
}

fn key_policy(extra: Vec<Value>) -> Value {
    let mut statements = vec![admin()];
    statements.extend(extra);
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The key policy setup writes: admin + grant to the user account root.
fn setup_key_policy() -> Value {
    key_policy(vec![grant(json!(format!("arn:aws:iam::{USER}:root")))])
}

fn identity(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn allow_keys(condition: Option<Value>) -> Value {
    let mut s = json!({"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                       "Resource": format!("arn:aws:kms:us-east-1:{OWNER}:key/*")});
    if let Some(c) = condition {
        s["Condition"] = c;
    }
    s
}

/// The role policy setup writes.
fn setup_role_policy() -> Value {
    identity(vec![allow_keys(Some(
        json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": ALIAS}}),
    ))])
}

struct Case {
    name: &'static str,
    rule: &'static str,
    key_policy: Value,
    identity: Vec<Value>,
    principal: &'static str,
    action: &'static str,
    aliases: Vec<&'static str>,
    request_alias: Option<&'static str>,
    extra: Vec<(&'static str, &'static str)>,
    expect: Decision,
    reason: Option<&'static str>,
}

fn case(name: &'static str, rule: &'static str) -> Case {
    Case {
        name,
        rule,
        key_policy: setup_key_policy(),
        identity: vec![setup_role_policy()],
        principal: ROLE,
        action: "kms:Encrypt",
        aliases: vec![ALIAS],
        request_alias: Some(ALIAS),
        extra: vec![],
        expect: Decision::Allow,
        reason: None,
    }
}

impl Case {
    fn kp(mut self, v: Value) -> Self {
        self.key_policy = v;
        self
    }
    fn id(mut self, v: Vec<Value>) -> Self {
        self.identity = v;
        self
    }
    fn principal(mut self, p: &'static str) -> Self {
        self.principal = p;
        self
    }
    fn action(mut self, a: &'static str) -> Self {
        self.action = a;
        self
    }
    fn aliases(mut self, a: Vec<&'static str>) -> Self {
        self.aliases = a;
        self
    }
    fn request_alias(mut self, a: Option<&'static str>) -> Self {
        self.request_alias = a;
        self
    }
    fn extra(mut self, e: Vec<(&'static str, &'static str)>) -> Self {
        self.extra = e;
        self
    }
    fn expect(mut self, d: Decision, reason: &'static str) -> Self {
        self.expect = d;
        self.reason = (!reason.is_empty()).then_some(reason);
        self
    }
}

fn cases() -> Vec<Case> {
    use Decision::*;
    let alias_cond = |op: &str, key: &str, v: Value| json!({ op: { key: v } });
    vec![
        case("setup policies allow Encrypt through the alias", "KMS-XA, KMS-ALIAS"),
        case("setup policies allow Decrypt", "KMS-XA").action("kms:Decrypt"),
        case("an assumed-role session is its role", "IAM-GCK").principal(SESSION),
        case("alias ARN in Resource grants nothing for Encrypt", "KMS-ALIAS")
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": format!("arn:aws:kms:us-east-1:{OWNER}:{ALIAS}")})])])
            .expect(ImplicitDeny, "alias ARN"),
        case("key policy must allow: identity policy alone is not enough", "KMS-KP, KMS-XA")
            .kp(key_policy(vec![]))
            .expect(ImplicitDeny, "no key policy statement"),
        case("cross-account: key policy grant without identity policy", "KMS-XA")
            .id(vec![])
            .expect(ImplicitDeny, "cross-account"),
        case("cross-account: role named directly still needs an identity policy", "KMS-XA")
            .kp(key_policy(vec![grant(json!(ROLE))]))
            .id(vec![])
            .expect(ImplicitDeny, "identity policy"),
        case("cross-account: role named directly plus identity policy", "KMS-XA")
            .kp(key_policy(vec![grant(json!(ROLE))])),
        case("same account: key policy naming the role is enough", "KMS-KP")
            .kp(key_policy(vec![grant(json!(SAME_ROLE))]))
            .principal(SAME_ROLE)
            .id(vec![]),
        case("same account: root delegation needs an IAM policy", "KMS-KP")
            .principal(SAME_ROLE)
            .kp(key_policy(vec![]))
            .id(vec![])
            .expect(ImplicitDeny, "delegates"),
        case("same account: root delegation plus IAM policy", "KMS-KP")
            .principal(SAME_ROLE)
            .kp(key_policy(vec![]))
            .id(vec![identity(vec![allow_keys(None)])]),
        case("explicit deny in the key policy wins", "IAM-EVAL")
            .kp(key_policy(vec![
                grant(json!(format!("arn:aws:iam::{USER}:root"))),
                json!({"Sid": "NoUser", "Effect": "Deny", "Principal": {"AWS": format!("arn:aws:iam::{USER}:root")},
                       "Action": "kms:Encrypt", "Resource": "*"}),
            ]))
            .expect(ExplicitDeny, "NoUser"),
        case("explicit deny in an identity policy wins", "IAM-EVAL")
            .id(vec![
                setup_role_policy(),
                identity(vec![json!({"Sid": "Stop", "Effect": "Deny", "Action": "kms:*", "Resource": "*"})]),
            ])
            .expect(ExplicitDeny, "Stop"),
        case("a deny whose condition does not hold does not apply", "IAM-EVAL, IAM-COND").id(vec![
            setup_role_policy(),
            identity(vec![json!({"Effect": "Deny", "Action": "kms:*", "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": "999999999999"}}})]),
        ]),
        case("management operations cannot cross accounts", "KMS-XA")
            .action("kms:PutKeyPolicy")
            .kp(key_policy(vec![json!({"Effect": "Allow", "Principal": {"AWS": USER}, "Action": "kms:*", "Resource": "*"})]))
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})])])
            .expect(ImplicitDeny, "another account"),
        case("ScheduleKeyDeletion cannot cross accounts", "KMS-XA")
            .action("kms:ScheduleKeyDeletion")
            .expect(ImplicitDeny, "another account"),
        case("DescribeKey may cross accounts", "KMS-XA").action("kms:DescribeKey"),
        case("ResourceAliases must contain the alias", "KMS-ALIAS")
            .aliases(vec!["alias/other"])
            .expect(ImplicitDeny, "kms:ResourceAliases"),
        case("ResourceAliases is not in a key policy's context", "KMS-ALIAS")
            .kp(key_policy(vec![json!({"Effect": "Allow", "Principal": {"AWS": USER},
                "Action": "kms:Encrypt", "Resource": "*",
                "Condition": alias_cond("ForAnyValue:StringLike", "kms:ResourceAliases", json!(ALIAS))})]))
            .expect(ImplicitDeny, "no key policy statement"),
        case("RequestAlias matches when the request names the alias", "KMS-ALIAS").id(vec![identity(vec![
            allow_keys(Some(alias_cond("StringEquals", "kms:RequestAlias", json!(ALIAS)))),
        ])]),
        case("RequestAlias is absent when the request uses the key id", "KMS-ALIAS")
            .request_alias(None)
            .id(vec![identity(vec![allow_keys(Some(alias_cond("StringEquals", "kms:RequestAlias", json!(ALIAS))))])])
            .expect(ImplicitDeny, "kms:RequestAlias"),
        case("an alias ARN in the request is normalised to alias/NAME", "KMS-ALIAS")
            .request_alias(Some("arn:aws:kms:us-east-1:111111111111:alias/production-data-key"))
            .id(vec![identity(vec![allow_keys(Some(alias_cond("StringEquals", "kms:RequestAlias", json!(ALIAS))))])]),
        case("an alias ARN as RequestAlias condition value never matches", "KMS-ALIAS")
            .id(vec![identity(vec![allow_keys(Some(alias_cond("StringEquals", "kms:RequestAlias",
                json!(format!("arn:aws:kms:us-east-1:{OWNER}:{ALIAS}")))))])])
            .expect(ImplicitDeny, "kms:RequestAlias"),
        case("ForAllValues is vacuously true for a key with no aliases", "IAM-SET")
            .aliases(vec![])
            .id(vec![identity(vec![allow_keys(Some(alias_cond("ForAllValues:StringLike", "kms:ResourceAliases", json!(ALIAS))))])]),
        case("ForAnyValue is false for a key with no aliases", "IAM-SET")
            .aliases(vec![])
            .expect(ImplicitDeny, "kms:ResourceAliases"),
        case("ForAllValues fails when one alias is not listed", "IAM-SET")
            .aliases(vec![ALIAS, "alias/other"])
            .id(vec![identity(vec![allow_keys(Some(alias_cond("ForAllValues:StringLike", "kms:ResourceAliases", json!(ALIAS))))])])
            .expect(ImplicitDeny, "alias/other"),
        case("ForAnyValue holds when one of several aliases matches", "IAM-SET")
            .aliases(vec!["alias/other", ALIAS]),
        case("StringLike takes wildcards", "IAM-COND")
            .id(vec![identity(vec![allow_keys(Some(alias_cond("ForAnyValue:StringLike", "kms:ResourceAliases", json!("alias/production-*"))))])]),
        case("StringEquals compares a wildcard literally", "IAM-COND")
            .id(vec![identity(vec![allow_keys(Some(alias_cond("ForAnyValue:StringEquals", "kms:ResourceAliases", json!("alias/production-*"))))])])
            .expect(ImplicitDeny, "kms:ResourceAliases"),
        case("several values are OR-ed", "IAM-COND")
            .id(vec![identity(vec![allow_keys(Some(alias_cond("ForAnyValue:StringEquals", "kms:ResourceAliases", json!(["alias/a", ALIAS]))))])]),
        case("action wildcard kms:*", "IAM-ACT")
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": "kms:*", "Resource": format!("arn:aws:kms:*:{OWNER}:key/*")})])]),
        case("actions match case-insensitively", "IAM-ACT")
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": "KMS:encrypt", "Resource": "*"})])]),
        case("? matches one character in an action", "IAM-ACT")
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": "kms:?ncrypt", "Resource": "*"})])]),
        case("NotAction allows everything else", "IAM-ACT")
            .id(vec![identity(vec![json!({"Effect": "Allow", "NotAction": "kms:Decrypt", "Resource": "*"})])]),
        case("NotAction excludes the listed action", "IAM-ACT")
            .id(vec![identity(vec![json!({"Effect": "Allow", "NotAction": "kms:Encrypt", "Resource": "*"})])])
            .expect(ImplicitDeny, "identity policy"),
        case("NotResource excluding the key", "IAM-RES")
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": "kms:Encrypt", "NotResource": KEY})])])
            .expect(ImplicitDeny, "NotResource"),
        case("NotResource excluding other keys", "IAM-RES")
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": "kms:Encrypt",
                "NotResource": "arn:aws:kms:us-east-1:111111111111:key/other"})])]),
        case("a Deny with NotAction denies everything but the listed action", "IAM-ACT, IAM-EVAL")
            .id(vec![setup_role_policy(), identity(vec![json!({"Effect": "Deny", "NotAction": "kms:Decrypt", "Resource": "*"})])])
            .expect(ExplicitDeny, ""),
        case("Deny with NotPrincipal denies everyone not listed", "IAM-PRIN")
            .kp(key_policy(vec![
                grant(json!(format!("arn:aws:iam::{USER}:root"))),
                json!({"Sid": "OnlyOwner", "Effect": "Deny", "NotPrincipal": {"AWS": format!("arn:aws:iam::{OWNER}:root")},
                       "Action": "kms:*", "Resource": "*"}),
            ]))
            .expect(ExplicitDeny, "OnlyOwner"),
        case("kms:CallerAccount is the caller's account", "KMS-CK")
            .kp(key_policy(vec![json!({"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": USER}}})])),
        case("kms:CallerAccount of another account does not match", "KMS-CK")
            .kp(key_policy(vec![json!({"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": "333333333333"}}})]))
            .expect(ImplicitDeny, "kms:CallerAccount"),
        case("aws:PrincipalArn of a session is its role ARN", "IAM-GCK")
            .principal(SESSION)
            .kp(key_policy(vec![json!({"Effect": "Allow", "Principal": {"AWS": USER}, "Action": "kms:Encrypt", "Resource": "*",
                "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::222222222222:role/app"}}})])),
        case("aws:PrincipalArn never equals the session ARN", "IAM-GCK")
            .principal(SESSION)
            .kp(key_policy(vec![json!({"Effect": "Allow", "Principal": {"AWS": USER}, "Action": "kms:Encrypt", "Resource": "*",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": SESSION}}})]))
            .expect(ImplicitDeny, "aws:PrincipalArn"),
        case("aws:PrincipalAccount is the caller's account", "IAM-GCK")
            .kp(key_policy(vec![json!({"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalAccount": USER}}})])),
        case("a bare account id principal is the account root", "IAM-PRIN")
            .kp(key_policy(vec![grant(json!(USER))])),
        case("Principal of a third account does not match", "IAM-PRIN")
            .kp(key_policy(vec![grant(json!("arn:aws:iam::333333333333:root"))]))
            .expect(ImplicitDeny, "Principal"),
        case("a negated operator holds when the key is missing", "IAM-COND")
            .id(vec![identity(vec![allow_keys(Some(json!({"StringNotEquals": {"kms:EncryptionContext:tenant": "blocked"}})))])]),
        case("IfExists makes a Deny apply when the key is missing", "IAM-COND, IAM-EVAL")
            .id(vec![setup_role_policy(), identity(vec![json!({"Sid": "NeedMfa", "Effect": "Deny", "Action": "kms:*", "Resource": "*",
                "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}})])])
            .expect(ExplicitDeny, "NeedMfa"),
        case("Null false requires the key", "IAM-COND")
            .request_alias(None)
            .id(vec![identity(vec![allow_keys(Some(json!({"Null": {"kms:RequestAlias": "false"}})))])])
            .expect(ImplicitDeny, "Null"),
        case("extra context keys take part", "IAM-COND")
            .extra(vec![("aws:SecureTransport", "true")])
            .id(vec![identity(vec![allow_keys(Some(json!({"Bool": {"aws:SecureTransport": "true"},
                "ForAnyValue:StringLike": {"kms:ResourceAliases": ALIAS}})))])]),
        case("conditions on different keys are AND-ed", "IAM-COND")
            .id(vec![identity(vec![allow_keys(Some(json!({"Bool": {"aws:SecureTransport": "true"},
                "ForAnyValue:StringLike": {"kms:ResourceAliases": ALIAS}})))])])
            .expect(ImplicitDeny, "aws:SecureTransport"),
        case("key/* of another account does not match", "IAM-RES")
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": "kms:Encrypt",
                "Resource": "arn:aws:kms:us-east-1:333333333333:key/*"})])])
            .expect(ImplicitDeny, "does not match the key"),
        case("the exact key ARN matches", "IAM-RES")
            .id(vec![identity(vec![json!({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": KEY})])]),
    ]
}

fn run(c: &Case) -> super::eval::Evaluation {
    let kp = PolicyDocument::parse(&c.key_policy.to_string())
        .unwrap_or_else(|e| panic!("{}: key policy: {e}", c.name));
    let ids: Vec<PolicyDocument> =
        c.identity.iter().map(|v| PolicyDocument::parse(&v.to_string()).unwrap()).collect();
    let names: Vec<String> = (0..ids.len()).map(|i| format!("identity-{i}")).collect();
    let named: Vec<NamedPolicy<'_>> =
        ids.iter().zip(&names).map(|(d, n)| NamedPolicy { name: n, document: d }).collect();
    let req = Request {
        principal: c.principal.into(),
        action: c.action.into(),
        key_arn: KEY.into(),
        key_aliases: c.aliases.iter().map(|s| s.to_string()).collect(),
        request_alias: c.request_alias.map(String::from),
        alias_arn: None,
        extra: c.extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    evaluate(&req, &kp, &named).unwrap_or_else(|e| panic!("{}: {e}", c.name))
}

#[test]
fn corpus() {
    let all = cases();
    assert!(all.len() >= 40, "the corpus has {} cases", all.len());
    let mut failures = Vec::new();
    for c in &all {
        assert!(!c.rule.is_empty());
        let got = run(c);
        let text = serde_json::to_string(&got.reasons).unwrap();
        if got.decision != c.expect {
            failures.push(format!(
                "{} [{}]: expected {:?}, got {:?}: {text}",
                c.name, c.rule, c.expect, got.decision
            ));
        } else if let Some(r) = c.reason
            && !text.contains(r)
        {
            failures.push(format!("{} [{}]: reasons lack {r:?}: {text}", c.name, c.rule));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// IAM "IAM identifiers": a principal is an account root, a role, a user, or an assumed-role
// session (`assumed-role/ROLE/SESSION`) in a 12-digit account; anything else is bad input.
#[test]
fn principals_are_the_arns_iam_issues_and_nothing_else() {
    let kp = PolicyDocument::parse(&setup_key_policy().to_string()).unwrap();
    let id = PolicyDocument::parse(&setup_role_policy().to_string()).unwrap();
    let named = [NamedPolicy { name: "role", document: &id }];
    let with = |principal: &str| Request {
        principal: principal.into(),
        action: "kms:Encrypt".into(),
        key_arn: KEY.into(),
        ..Request::default()
    };
    for ok in [
        format!("arn:aws:iam::{USER}:root"),
        format!("arn:aws:iam::{USER}:user/dev"),
        format!("arn:aws:iam::{USER}:role/app"),
        format!("arn:aws:sts::{USER}:assumed-role/app/session"),
    ] {
        assert!(evaluate(&with(&ok), &kp, &named).is_ok(), "{ok}");
    }
    for bad in [
        format!("arn:aws:iam::{USER}:group/devs"),
        format!("arn:aws:iam::{USER}:policy/p"),
        format!("arn:aws:sts::{USER}:assumed-role//session"),
        format!("arn:aws:sts::{USER}:federated-user/x"),
        "arn:aws:iam::12345678901:root".to_string(),
        "arn:aws:iam::12345678901x:root".to_string(),
        format!("arn:aws:s3::{USER}:root"),
    ] {
        assert!(evaluate(&with(&bad), &kp, &named).is_err(), "{bad}");
    }
}

// KMS "Key policies": in the key's own account, a key policy that allows the account root
// delegates to IAM policies; the reason says so rather than speaking of another account.
#[test]
fn a_same_account_delegation_without_an_identity_policy_says_so() {
    let kp = PolicyDocument::parse(&setup_key_policy().to_string()).unwrap();
    let me = Request {
        principal: format!("arn:aws:iam::{OWNER}:role/admin"),
        action: "kms:Encrypt".into(),
        key_arn: KEY.into(),
        ..Request::default()
    };
    let e = evaluate(&me, &kp, &[]).unwrap();
    let text = serde_json::to_string(&e.reasons).unwrap();
    assert!(
        text.contains("delegates to its IAM policies") && !text.contains("cross-account"),
        "{text}"
    );
}

// IAM "Policy evaluation logic": one allow is enough. The answer cites the first statement that
// allows, in the order the policies were given, as `explain` lists them.
#[test]
fn the_first_allowing_statement_is_the_one_cited() {
    let kp = PolicyDocument::parse(&setup_key_policy().to_string()).unwrap();
    let first = PolicyDocument::parse(
        &identity(vec![
            json!({"Sid": "First", "Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}),
        ])
        .to_string(),
    )
    .unwrap();
    let second = PolicyDocument::parse(
        &identity(vec![
            json!({"Sid": "Second", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}),
        ])
        .to_string(),
    )
    .unwrap();
    let named = [
        NamedPolicy { name: "one", document: &first },
        NamedPolicy { name: "two", document: &second },
    ];
    let req = Request {
        principal: ROLE.into(),
        action: "kms:Encrypt".into(),
        key_arn: KEY.into(),
        ..Request::default()
    };
    let e = evaluate(&req, &kp, &named).unwrap();
    assert_eq!(e.decision, Decision::Allow);
    let cited: Vec<(&str, &str)> =
        e.reasons.iter().map(|r| (r.policy.as_str(), r.statement.as_str())).collect();
    assert_eq!(cited, [("key-policy", "Grant"), ("one", "First")]);
}

#[test]
fn decisions_are_named_as_the_json_reports_them() {
    assert_eq!(Decision::Allow.as_str(), "allow");
    assert_eq!(Decision::ImplicitDeny.as_str(), "implicit_deny");
    assert_eq!(Decision::ExplicitDeny.as_str(), "explicit_deny");
}

#[test]
fn bad_requests_are_errors_not_decisions() {
    let kp = PolicyDocument::parse(&setup_key_policy().to_string()).unwrap();
    let id = PolicyDocument::parse(&setup_role_policy().to_string()).unwrap();
    let named = [NamedPolicy { name: "role", document: &id }];
    let base = Request {
        principal: ROLE.into(),
        action: "kms:Encrypt".into(),
        key_arn: KEY.into(),
        ..Request::default()
    };
    let alias_as_key =
        Request { key_arn: format!("arn:aws:kms:us-east-1:{OWNER}:{ALIAS}"), ..base.clone() };
    assert!(evaluate(&alias_as_key, &kp, &named).unwrap_err().0.contains("key ARN"));
    let bad_action = Request { action: "kms:Encrpyt".into(), ..base.clone() };
    assert!(evaluate(&bad_action, &kp, &named).unwrap_err().0.contains("kms:Encrpyt"));
    let bad_principal = Request { principal: "app".into(), ..base.clone() };
    assert!(evaluate(&bad_principal, &kp, &named).is_err());
    let with_principal = PolicyDocument::parse(
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#,
    )
    .unwrap();
    let named = [NamedPolicy { name: "odd", document: &with_principal }];
    assert!(evaluate(&base, &kp, &named).unwrap_err().0.contains("Principal"));
    let unknown_op = PolicyDocument::parse(
        r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"StringMaybe":{"a":"b"}}}]}"#,
    )
    .unwrap();
    let named = [NamedPolicy { name: "odd", document: &unknown_op }];
    assert!(evaluate(&base, &kp, &named).unwrap_err().0.contains("StringMaybe"));
}
