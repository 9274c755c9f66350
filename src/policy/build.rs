//! The policy documents kmsxacct writes, each built by a function named for what it grants.

use super::document::{Effect, PolicyDocument, Statement};
use crate::names::{AccountId, AliasName, OrgScope, Partition, Region, RoleName};
use serde::{Deserialize, Serialize};

/// Sid of the owner account's admin statement in a key policy kmsxacct creates (AWS's default
/// key policy statement, which lets the owner account's IAM policies manage the key).
pub const OWNER_ADMIN_SID: &str = "Enable IAM User Permissions";

/// Sid of the statement kmsxacct adds to the key policy; setup finds and converges it by this Sid.
pub const USER_GRANT_SID: &str = "KmsxacctCrossAccountUse";

/// Sid of the statement in the user role's inline policy.
pub const ROLE_USE_SID: &str = "KmsxacctUseKeyThroughAlias";

/// Name of the inline policy kmsxacct puts on the user role.
pub const ROLE_POLICY_NAME: &str = "kmsxacct-kms-access";

/// What a user account may do with the key (`--actions`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAction {
    /// kms:Encrypt.
    Encrypt,
    /// kms:Decrypt.
    Decrypt,
    /// kms:GenerateDataKey.
    GenerateDataKey,
    /// kms:GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyWithoutPlaintext,
    /// kms:ReEncryptFrom and kms:ReEncryptTo.
    ReEncrypt,
    /// kms:DescribeKey.
    DescribeKey,
}

impl KeyAction {
    /// The default grant: encrypt and decrypt.
    pub const DEFAULT: [KeyAction; 2] = [KeyAction::Encrypt, KeyAction::Decrypt];

    /// The IAM actions this grants.
    pub fn iam_actions(self) -> &'static [&'static str] {
        match self {
            KeyAction::Encrypt => &["kms:Encrypt"],
            KeyAction::Decrypt => &["kms:Decrypt"],
            KeyAction::GenerateDataKey => &["kms:GenerateDataKey"],
            KeyAction::GenerateDataKeyWithoutPlaintext => &["kms:GenerateDataKeyWithoutPlaintext"],
            KeyAction::ReEncrypt => &["kms:ReEncryptFrom", "kms:ReEncryptTo"],
            KeyAction::DescribeKey => &["kms:DescribeKey"],
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KeyAction::Encrypt => "encrypt",
            KeyAction::Decrypt => "decrypt",
            KeyAction::GenerateDataKey => "generate-data-key",
            KeyAction::GenerateDataKeyWithoutPlaintext => "generate-data-key-without-plaintext",
            KeyAction::ReEncrypt => "re-encrypt",
            KeyAction::DescribeKey => "describe-key",
        }
    }
}

/// Whom the key policy names (`--grant-to`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GrantTo {
    /// The user account's root: the account's IAM policies decide which of its principals.
    #[default]
    Account,
    /// The role itself (least privilege; the role must exist before the key policy names it).
    Role,
}

/// Which alias condition the role policy uses (`--condition`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AliasCondition {
    /// `kms:ResourceAliases`: the key carries the alias, however the request names the key.
    #[default]
    ResourceAliases,
    /// `kms:RequestAlias`: the request names the key by the alias.
    RequestAlias,
}

/// What a deployment's policies are built from.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    /// The ARN partition of every account (read from the caller's identity).
    pub partition: Partition,
    /// Region of the key (of the primary key, for a multi-Region key).
    pub region: Region,
    /// Regions of the replicas of a multi-Region key (none: a one-Region key).
    pub replica_regions: Vec<Region>,
    /// The organisation the key policy grants instead of listing the user accounts.
    pub org: Option<OrgScope>,
    /// Account that owns the key.
    pub owner: AccountId,
    /// Accounts whose role uses the key (sorted, distinct).
    pub users: Vec<AccountId>,
    /// The alias the user accounts go through.
    pub alias: AliasName,
    /// The role's name in every user account.
    pub role: RoleName,
    /// Whom the key policy names.
    pub grant_to: GrantTo,
    /// What the users may do.
    pub actions: Vec<KeyAction>,
    /// Which alias condition the role policy uses.
    pub condition: AliasCondition,
    /// Principals allowed to assume the role (each in its own user account); none: the account.
    pub trust: Vec<String>,
}

impl GrantSpec {
    /// The unit tests' spec: owner 111111111111 in us-east-1, `alias/data`, role `kmsxacct-data`,
    /// and these user accounts.
    #[cfg(test)]
    pub fn example(users: &[&str]) -> GrantSpec {
        GrantSpec::new(
            "us-east-1".parse().unwrap(),
            "111111111111".parse().unwrap(),
            users.iter().map(|u| u.parse().unwrap()).collect(),
            "alias/data".parse().unwrap(),
            "kmsxacct-data".parse().unwrap(),
        )
    }

    /// A spec with the defaults: grant to accounts, encrypt and decrypt, `kms:ResourceAliases`,
    /// role trusted by its whole account.
    pub fn new(
        region: Region,
        owner: AccountId,
        users: Vec<AccountId>,
        alias: AliasName,
        role: RoleName,
    ) -> GrantSpec {
        let mut users = users;
        users.sort();
        users.dedup();
        GrantSpec {
            partition: Partition::aws(),
            region,
            replica_regions: Vec::new(),
            org: None,
            owner,
            users,
            alias,
            role,
            grant_to: GrantTo::Account,
            actions: KeyAction::DEFAULT.to_vec(),
            condition: AliasCondition::ResourceAliases,
            trust: Vec::new(),
        }
    }

    /// Every region with a key of the deployment: the primary's first, then the replicas'.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        std::iter::once(&self.region).chain(&self.replica_regions)
    }

    /// The request context of a user account's principal beyond the usual keys: its
    /// organisation, when the key policy grants one (membership is assumed).
    pub fn principal_context(&self) -> Vec<(String, String)> {
        self.org.iter().map(OrgScope::context).collect()
    }

    /// Whether the key is multi-Region.
    pub fn multi_region(&self) -> bool {
        !self.replica_regions.is_empty()
    }

    /// The IAM actions granted, in a stable order.
    pub fn iam_actions(&self) -> Vec<&'static str> {
        let mut actions: Vec<KeyAction> = self.actions.clone();
        actions.sort();
        actions.dedup();
        actions.iter().flat_map(|a| a.iam_actions()).copied().collect()
    }

    /// The role's ARN in `user`.
    pub fn role_arn(&self, user: &AccountId) -> String {
        self.role.arn(&self.partition, user)
    }
}

/// The owner's admin statement: `kms:*` for the owner account root, which delegates key
/// management to the owner account's IAM policies (and keeps the key from being locked out).
pub fn owner_admin_statement(spec: &GrantSpec) -> Statement {
    Statement::new(Effect::Allow)
        .sid(OWNER_ADMIN_SID)
        .aws_principals(vec![spec.owner.root_arn(&spec.partition)])
        .actions(&["kms:*"])
        .resources(vec!["*".into()])
}

/// The key policy statement that lets the user accounts (their roots, so that each account's IAM
/// policies decide which of its principals; or, with `--grant-to role`, the roles themselves)
/// use the key.
pub fn key_policy_grant(spec: &GrantSpec) -> Statement {
    if let Some(org) = &spec.org {
        // Everyone, bounded by the organisation: the user accounts' own IAM policies decide.
        let (operator, key, value) = org.condition();
        return Statement::new(Effect::Allow)
            .sid(USER_GRANT_SID)
            .aws_principals(vec!["*".into()])
            .actions(&spec.iam_actions())
            .resources(vec!["*".into()])
            .condition(operator, key, vec![value]);
    }
    let principals = spec
        .users
        .iter()
        .map(|u| match spec.grant_to {
            GrantTo::Account => u.root_arn(&spec.partition),
            GrantTo::Role => spec.role_arn(u),
        })
        .collect();
    Statement::new(Effect::Allow)
        .sid(USER_GRANT_SID)
        .aws_principals(principals)
        .actions(&spec.iam_actions())
        .resources(vec!["*".into()])
}

/// The key policy of a key kmsxacct creates: the owner's admin statement plus the grant.
pub fn key_policy(spec: &GrantSpec) -> PolicyDocument {
    let mut doc = PolicyDocument::new(vec![owner_admin_statement(spec), key_policy_grant(spec)]);
    doc.id = Some("kmsxacct-key-policy".into());
    doc
}

/// The role's trust policy in `user`: principals of that account may assume it (their own IAM
/// policies must still allow `sts:AssumeRole`), or only the `--trust` principals of that account.
pub fn role_trust_policy(spec: &GrantSpec, user: &AccountId) -> PolicyDocument {
    let mut trusted: Vec<String> = spec
        .trust
        .iter()
        .filter(|arn| arn.split(':').nth(4) == Some(user.as_str()))
        .cloned()
        .collect();
    if trusted.is_empty() {
        trusted.push(user.root_arn(&spec.partition));
    }
    PolicyDocument::new(vec![
        Statement::new(Effect::Allow)
            .sid("KmsxacctTrustUserAccount")
            .aws_principals(trusted)
            .actions(&["sts:AssumeRole"]),
    ])
}

/// The role's inline policy: the granted actions on any key of the owner account, but only a key
/// reached through the alias. Key operations are authorised against the key ARN, so the
/// `Resource` is `key/*` and the alias goes in a condition; an alias ARN in `Resource` would grant
/// nothing for them.
pub fn role_access_policy(spec: &GrantSpec) -> PolicyDocument {
    // Every region's keys, each named: never `*` for the region.
    let keys = spec
        .regions()
        .map(|region| format!("arn:{}:kms:{region}:{}:key/*", spec.partition, spec.owner))
        .collect();
    let statement = Statement::new(Effect::Allow)
        .sid(ROLE_USE_SID)
        .actions(&spec.iam_actions())
        .resources(keys);
    // The alias, and the retirement aliases `kmsxacct rotate` leaves on earlier keys, so that
    // data encrypted before a rotation stays readable once the alias has moved on.
    let aliases = vec![spec.alias.to_string(), retired_alias_pattern(&spec.alias)];
    let statement = match spec.condition {
        AliasCondition::ResourceAliases => {
            statement.condition("ForAnyValue:StringLike", "kms:ResourceAliases", aliases)
        }
        AliasCondition::RequestAlias => {
            statement.condition("StringLike", "kms:RequestAlias", aliases)
        }
    };
    PolicyDocument::new(vec![statement])
}

/// The alias `kmsxacct rotate` gives the key it retires: `alias/NAME/retired/<first 8 of key id>`.
pub fn retired_alias(alias: &AliasName, key_id: &str) -> String {
    let short: String = key_id.chars().take(8).collect();
    format!("{alias}/retired/{short}")
}

/// The pattern covering every retirement alias of `alias`.
pub fn retired_alias_pattern(alias: &AliasName) -> String {
    format!("{alias}/retired/*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn action_names_are_the_command_line_values_and_retired_aliases_are_short() {
        use clap::ValueEnum;
        for a in KeyAction::value_variants() {
            let name = a.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(a.name(), name);
        }
        let alias: AliasName = "data".parse().unwrap();
        assert_eq!(retired_alias(&alias, "1234abcd-5678"), "alias/data/retired/1234abcd");
        assert_eq!(retired_alias_pattern(&alias), "alias/data/retired/*");
    }

    fn spec() -> GrantSpec {
        GrantSpec::new(
            "us-east-1".parse().unwrap(),
            "111111111111".parse().unwrap(),
            vec!["222222222222".parse().unwrap()],
            "production-data-key".parse().unwrap(),
            "kmsxacct-production-data-key".parse().unwrap(),
        )
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
                    "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": [
                        "alias/production-data-key", "alias/production-data-key/retired/*"]}}
                }]
            })
        );
    }

    #[test]
    fn multi_region_role_policy_names_each_region_and_no_other() {
        let mut s = spec();
        s.replica_regions = vec!["eu-west-1".parse().unwrap(), "ap-southeast-2".parse().unwrap()];
        let doc: Value = serde_json::from_str(&role_access_policy(&s).render()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Resource"],
            json!([
                "arn:aws:kms:us-east-1:111111111111:key/*",
                "arn:aws:kms:eu-west-1:111111111111:key/*",
                "arn:aws:kms:ap-southeast-2:111111111111:key/*"
            ])
        );
        assert!(s.multi_region() && !spec().multi_region());
    }

    #[test]
    fn an_organisation_grant_allows_its_members_and_no_one_else() {
        use crate::policy::eval::{Decision, NamedPolicy, Request, evaluate};
        let mut s = spec();
        assert!(s.principal_context().is_empty());
        s.org = Some(OrgScope::id("o-a1b2c3d4e5").unwrap());
        assert_eq!(
            s.principal_context(),
            vec![("aws:PrincipalOrgID".to_string(), "o-a1b2c3d4e5".to_string())]
        );
        let grant: Value = serde_json::to_value(key_policy_grant(&s)).unwrap();
        assert_eq!(grant["Principal"], json!({"AWS": "*"}));
        assert_eq!(
            grant["Condition"],
            json!({"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}})
        );
        let role = role_access_policy(&s);
        let identity = [NamedPolicy { name: "role", document: &role }];
        let decide = |extra: Vec<(String, String)>| {
            let request = Request {
                principal: "arn:aws:sts::222222222222:assumed-role/kmsxacct-production-data-key/s"
                    .into(),
                action: "kms:Decrypt".into(),
                key_arn: "arn:aws:kms:us-east-1:111111111111:key/k".into(),
                key_aliases: vec!["alias/production-data-key".into()],
                request_alias: None,
                alias_arn: None,
                extra,
            };
            evaluate(&request, &key_policy(&s), &identity).unwrap().decision
        };
        assert_eq!(decide(s.principal_context()), Decision::Allow);
        assert_eq!(decide(vec![]), Decision::ImplicitDeny);
        assert_eq!(
            decide(vec![("aws:PrincipalOrgID".into(), "o-zzzzzzzzzz".into())]),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn request_alias_condition_and_more_actions() {
        let mut s = spec();
        s.condition = AliasCondition::RequestAlias;
        s.actions = vec![KeyAction::ReEncrypt, KeyAction::Encrypt, KeyAction::DescribeKey];
        let doc: Value = serde_json::from_str(&role_access_policy(&s).render()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Condition"],
            json!({"StringLike": {"kms:RequestAlias": [
                "alias/production-data-key", "alias/production-data-key/retired/*"]}})
        );
        assert_eq!(
            doc["Statement"][0]["Action"],
            json!(["kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey"])
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
        assert!(PolicyDocument::parse(&doc.render()).unwrap().same_as(&doc));
    }

    #[test]
    fn several_users_and_grant_to_role() {
        let mut s = spec();
        s.users = vec!["333333333333".parse().unwrap(), "222222222222".parse().unwrap()];
        s.users.sort();
        s.grant_to = GrantTo::Role;
        let grant = serde_json::to_value(key_policy_grant(&s)).unwrap();
        assert_eq!(
            grant["Principal"]["AWS"],
            json!([
                "arn:aws:iam::222222222222:role/kmsxacct-production-data-key",
                "arn:aws:iam::333333333333:role/kmsxacct-production-data-key"
            ])
        );
    }

    #[test]
    fn trust_policy_names_user_account_or_the_trusted_principals() {
        let user: AccountId = "222222222222".parse().unwrap();
        let doc: Value = serde_json::from_str(&role_trust_policy(&spec(), &user).render()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Principal"],
            json!({"AWS": "arn:aws:iam::222222222222:root"})
        );
        assert_eq!(doc["Statement"][0]["Action"], json!("sts:AssumeRole"));
        let mut s = spec();
        s.trust = vec![
            "arn:aws:iam::222222222222:role/app".into(),
            "arn:aws:iam::333333333333:role/other".into(),
        ];
        let doc: Value = serde_json::from_str(&role_trust_policy(&s, &user).render()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Principal"],
            json!({"AWS": "arn:aws:iam::222222222222:role/app"})
        );
    }
}
