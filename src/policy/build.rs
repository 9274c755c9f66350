//! The policy documents kmsxacct writes, each built by a function named for what it grants.

use super::document::{Effect, PolicyDocument, Statement};
use crate::names::{AccountId, AliasName, Region};

/// Sid of the owner account's admin statement in a key policy kmsxacct creates (AWS's default
/// key policy statement, which lets the owner account's IAM policies manage the key).
pub const OWNER_ADMIN_SID: &str = "Enable IAM User Permissions";

/// Sid of the statement kmsxacct adds to the key policy; setup finds and converges it by this Sid.
pub const USER_GRANT_SID: &str = "KmsxacctCrossAccountUse";

/// Sid of the statement in the user role's inline policy.
pub const ROLE_USE_SID: &str = "KmsxacctUseKeyThroughAlias";

/// Name of the inline policy kmsxacct puts on the user role.
pub const ROLE_POLICY_NAME: &str = "kmsxacct-kms-access";

/// The actions the cross-account grant covers.
pub const GRANTED_ACTIONS: [&str; 2] = ["kms:Encrypt", "kms:Decrypt"];

/// What a deployment's policies are built from.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    /// Region of the key.
    pub region: Region,
    /// Account that owns the key.
    pub owner: AccountId,
    /// Account whose role uses the key.
    pub user: AccountId,
    /// The alias the user account goes through.
    pub alias: AliasName,
}

/// The owner's admin statement: `kms:*` for the owner account root, which delegates key
/// management to the owner account's IAM policies (and keeps the key from being locked out).
pub fn owner_admin_statement(spec: &GrantSpec) -> Statement {
    Statement::new(Effect::Allow)
        .sid(OWNER_ADMIN_SID)
        .aws_principals(vec![spec.owner.root_arn(&spec.region)])
        .actions(&["kms:*"])
        .resources(vec!["*".into()])
}

/// The key policy statement that lets the user account (its root, so that the user account's
/// IAM policies decide which of its principals) call Encrypt and Decrypt on this key.
pub fn key_policy_grant(spec: &GrantSpec) -> Statement {
    Statement::new(Effect::Allow)
        .sid(USER_GRANT_SID)
        .aws_principals(vec![spec.user.root_arn(&spec.region)])
        .actions(&GRANTED_ACTIONS)
        .resources(vec!["*".into()])
}

/// The key policy of a key kmsxacct creates: the owner's admin statement plus the grant.
pub fn key_policy(spec: &GrantSpec) -> PolicyDocument {
    let mut doc = PolicyDocument::new(vec![owner_admin_statement(spec), key_policy_grant(spec)]);
    doc.id = Some("kmsxacct-key-policy".into());
    doc
}

/// The user role's trust policy: principals of the user account may assume it (their own IAM
/// policies must still allow `sts:AssumeRole`).
pub fn role_trust_policy(spec: &GrantSpec) -> PolicyDocument {
    PolicyDocument::new(vec![
        Statement::new(Effect::Allow)
            .sid("KmsxacctTrustUserAccount")
            .aws_principals(vec![spec.user.root_arn(&spec.region)])
            .actions(&["sts:AssumeRole"]),
    ])
}

/// The user role's inline policy: Encrypt and Decrypt on any key of the owner account, but only
/// a key that carries the alias. Encrypt and Decrypt are authorised against the key ARN, so the
/// `Resource` is `key/*` and the alias goes in the `kms:ResourceAliases` condition; an alias ARN in
/// `Resource` would grant nothing for them.
pub fn role_access_policy(spec: &GrantSpec) -> PolicyDocument {
    let keys = format!(
        "arn:{}:kms:{}:{}:key/*",
        spec.region.partition(),
        spec.region,
        spec.owner
    );
    PolicyDocument::new(vec![
        Statement::new(Effect::Allow)
            .sid(ROLE_USE_SID)
            .actions(&GRANTED_ACTIONS)
            .resources(vec![keys])
            .condition(
                "ForAnyValue:StringLike",
                "kms:ResourceAliases",
                vec![spec.alias.to_string()],
            ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn spec() -> GrantSpec {
        GrantSpec {
            region: "us-east-1".parse().unwrap(),
            owner: "111111111111".parse().unwrap(),
            user: "222222222222".parse().unwrap(),
            alias: "production-data-key".parse().unwrap(),
        }
    }

    #[test]
    fn role_policy_uses_key_arns_and_the_alias_condition() {
        let doc: Value = serde_json::from_str(&role_access_policy(&spec()).render()).unwrap();
        assert_eq!(
            doc,
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "KmsxacctUseKeyThroughAlias",
                    "Effect": "Allow",
                    "Action": ["kms:Encrypt", "kms:Decrypt"],
                    "Resource": "arn:aws:kms:us-east-1:111111111111:key/*",
                    "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/production-data-key"}}
                }]
            })
        );
    }

    #[test]
    fn key_policy_keeps_owner_admin_and_grants_user_root() {
        let doc = key_policy(&spec());
        let admin = doc.statement_by_sid(OWNER_ADMIN_SID).unwrap();
        assert_eq!(
            serde_json::to_value(admin.principal.as_ref().unwrap()).unwrap(),
            json!({"AWS": "arn:aws:iam::111111111111:root"})
        );
        let grant = doc.statement_by_sid(USER_GRANT_SID).unwrap();
        assert_eq!(
            serde_json::to_value(grant).unwrap(),
            json!({
                "Sid": "KmsxacctCrossAccountUse",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*"
            })
        );
        // What we render, we parse back to the same meaning.
        assert!(PolicyDocument::parse(&doc.render()).unwrap().same_as(&doc));
    }

    #[test]
    fn trust_policy_names_user_account() {
        let doc: Value = serde_json::from_str(&role_trust_policy(&spec()).render()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Principal"],
            json!({"AWS": "arn:aws:iam::222222222222:root"})
        );
        assert_eq!(doc["Statement"][0]["Action"], json!("sts:AssumeRole"));
    }
}
