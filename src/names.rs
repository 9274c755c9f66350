//! Validated names the user gives us: aliases, role names, regions, account ids, pending windows.
//!
//! Each type can only be built through its parser, so code further in never sees a value AWS would
//! reject. Parsers return [`InputError`], whose message names the bad value and what is allowed.

use std::fmt;
use std::str::FromStr;

/// A rejected input value: one line naming the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// A KMS alias name in its full form, `alias/NAME`.
///
/// AWS rules: `alias/` followed by 1 to 250 characters of `[a-zA-Z0-9/_-]`, 256 characters in all,
/// and nothing under `alias/aws/`, which is reserved for AWS managed keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AliasName(String);

impl AliasName {
    /// The full name, `alias/NAME`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without the `alias/` prefix.
    pub fn short(&self) -> &str {
        &self.0["alias/".len()..]
    }

    /// The alias ARN, `arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME`.
    pub fn arn(&self, partition: &Partition, region: &Region, account: &AccountId) -> String {
        format!("arn:{partition}:kms:{region}:{account}:{}", self.0)
    }
}

impl FromStr for AliasName {
    type Err = InputError;

    /// Accepts `NAME` or `alias/NAME`.
    fn from_str(input: &str) -> Result<Self, InputError> {
        let full =
            if input.starts_with("alias/") { input.to_string() } else { format!("alias/{input}") };
        let short = &full["alias/".len()..];
        let bad = |why: &str| {
            Err(InputError(format!(
                "invalid alias '{input}': {why} (allowed: alias/ followed by 1 to 250 of a-z A-Z 0-9 / _ -, not under alias/aws/)"
            )))
        };
        if short.is_empty() {
            return bad("the name after alias/ is empty");
        }
        if short.len() > 250 {
            return bad(&format!("the name after alias/ is {} characters long", short.len()));
        }
        if let Some(c) =
            short.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-')))
        {
            return bad(&format!("character {c:?} is not allowed"));
        }
        if short.starts_with("aws/") {
            return bad("alias/aws/ is reserved for AWS managed keys");
        }
        Ok(AliasName(full))
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IAM role name: 1 to 64 characters of `[a-zA-Z0-9+=,.@_-]` (IAM's rule for role names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// The name as IAM knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default role for an alias: `kmsxacct-` + the alias name with `/` turned into `-`,
    /// cut to IAM's 64-character limit.
    pub fn default_for(alias: &AliasName) -> RoleName {
        let mut name = format!("kmsxacct-{}", alias.short().replace('/', "-"));
        name.truncate(64);
        RoleName(name)
    }

    /// The role ARN in `account`. Roles created by kmsxacct live at path `/`.
    pub fn arn(&self, partition: &Partition, account: &AccountId) -> String {
        format!("arn:{partition}:iam::{account}:role/{}", self.0)
    }
}

impl FromStr for RoleName {
    type Err = InputError;

    fn from_str(input: &str) -> Result<Self, InputError> {
        let bad = |why: String| {
            Err(InputError(format!(
                "invalid role name '{input}': {why} (allowed: 1 to 64 of a-z A-Z 0-9 + = , . @ _ -)"
            )))
        };
        if input.is_empty() {
            return bad("it is empty".into());
        }
        if input.chars().count() > 64 {
            return bad(format!("it is {} characters long", input.chars().count()));
        }
        if let Some(c) = input.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | ',' | '.' | '@' | '_' | '-'))
        }) {
            return bad(format!("character {c:?} is not allowed"));
        }
        Ok(RoleName(input.to_string()))
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS region code such as `us-east-1` or `us-gov-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region(String);

impl Region {
    /// The region code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = InputError;

    /// Accepts the shape of every AWS region code: lowercase words joined by `-`, the first of
    /// 2 to 4 letters (`us`, `cn`, `eusc`), ending in a number (`us-gov-west-1`, `cn-north-1`,
    /// `us-iso-east-1`, `eusc-de-east-1`).
    fn from_str(input: &str) -> Result<Self, InputError> {
        let parts: Vec<&str> = input.split('-').collect();
        let shaped = parts.len() >= 3
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            && (2..=4).contains(&parts[0].len())
            && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty();
        if shaped {
            Ok(Region(input.to_string()))
        } else {
            Err(InputError(format!(
                "unknown region '{input}' (expected a region code such as us-east-1 or eu-west-2)"
            )))
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ARN partition: `aws`, `aws-cn`, `aws-us-gov`, `aws-iso`, ... It is read from the ARN of
/// the caller's identity (or of a role), never guessed from a region's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition(String);

impl Partition {
    /// The commercial partition, `aws`.
    pub fn aws() -> Partition {
        Partition("aws".into())
    }

    /// The partition an ARN names, if it is an ARN.
    pub fn of_arn(arn: &str) -> Option<Partition> {
        arn.strip_prefix("arn:")?.split(':').next()?.parse().ok()
    }

    /// The partition's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Partition {
    fn default() -> Self {
        Partition::aws()
    }
}

impl FromStr for Partition {
    type Err = InputError;

    /// Accepts `aws` and `aws-` followed by lowercase words joined by `-`.
    fn from_str(input: &str) -> Result<Self, InputError> {
        let shaped = input == "aws"
            || input.strip_prefix("aws-").is_some_and(|rest| {
                rest.split('-').all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
            });
        if shaped {
            Ok(Partition(input.to_string()))
        } else {
            Err(InputError(format!(
                "unknown partition '{input}' (expected aws, aws-cn, aws-us-gov, aws-iso, ...)"
            )))
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The account's root principal, `arn:PARTITION:iam::ACCOUNT:root`, which in a key policy
    /// delegates to that account's IAM policies.
    pub fn root_arn(&self, partition: &Partition) -> String {
        format!("arn:{partition}:iam::{}:root", self.0)
    }
}

impl FromStr for AccountId {
    type Err = InputError;

    fn from_str(input: &str) -> Result<Self, InputError> {
        if input.len() == 12 && input.chars().all(|c| c.is_ascii_digit()) {
            Ok(AccountId(input.to_string()))
        } else {
            Err(InputError(format!("invalid account id '{input}' (expected 12 digits)")))
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Days KMS waits before deleting a key scheduled for deletion: 7 to 30 (KMS's own bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingWindow(u8);

impl PendingWindow {
    /// AWS's (and Terraform's) default, the longest KMS allows: the most time to `restore`.
    pub const DEFAULT: PendingWindow = PendingWindow(30);

    /// The window in days.
    pub fn days(self) -> i32 {
        i32::from(self.0)
    }
}

impl FromStr for PendingWindow {
    type Err = InputError;

    fn from_str(input: &str) -> Result<Self, InputError> {
        match input.trim().parse::<u8>() {
            Ok(n) if (7..=30).contains(&n) => Ok(PendingWindow(n)),
            _ => Err(InputError(format!(
                "invalid pending window '{input}' (allowed: a whole number of days from 7 to 30)"
            ))),
        }
    }
}

impl fmt::Display for PendingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_accepts_both_forms() {
        let a: AliasName = "production-data-key".parse().unwrap();
        let b: AliasName = "alias/production-data-key".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "alias/production-data-key");
        assert_eq!(a.short(), "production-data-key");
    }

    #[test]
    fn alias_length_limits() {
        assert!(format!("alias/{}", "a".repeat(250)).parse::<AliasName>().is_ok());
        let err = format!("alias/{}", "a".repeat(251)).parse::<AliasName>().unwrap_err();
        assert!(err.0.contains("251 characters"), "{err}");
        assert!("alias/".parse::<AliasName>().is_err());
        assert!("".parse::<AliasName>().is_err());
    }

    #[test]
    fn alias_rejects_bad_characters_and_reserved_prefix() {
        for bad in
            ["has space", "alias/dot.name", "alias/ünïcode", "x:y", "alias/aws/foo", "aws/foo"]
        {
            let err = bad.parse::<AliasName>().unwrap_err();
            assert!(err.0.contains(bad), "message must name '{bad}': {err}");
        }
        assert!("alias/aws-like/ok".parse::<AliasName>().is_ok());
        assert!("alias/team/sub_key-1".parse::<AliasName>().is_ok());
    }

    #[test]
    fn every_arn_is_built_in_the_partition_given() {
        let a: AliasName = "k".parse().unwrap();
        let role: RoleName = "r".parse().unwrap();
        let acct: AccountId = "111111111111".parse().unwrap();
        for (partition, region) in
            [("aws", "us-east-1"), ("aws-cn", "cn-north-1"), ("aws-us-gov", "us-gov-west-1")]
        {
            let p: Partition = partition.parse().unwrap();
            let r: Region = region.parse().unwrap();
            assert_eq!(
                a.arn(&p, &r, &acct),
                format!("arn:{partition}:kms:{region}:111111111111:alias/k")
            );
            assert_eq!(role.arn(&p, &acct), format!("arn:{partition}:iam::111111111111:role/r"));
            assert_eq!(acct.root_arn(&p), format!("arn:{partition}:iam::111111111111:root"));
        }
    }

    #[test]
    fn partitions_come_from_arns() {
        let of = |arn: &str| Partition::of_arn(arn).map(|p| p.to_string());
        assert_eq!(of("arn:aws-us-gov:iam::111111111111:root").as_deref(), Some("aws-us-gov"));
        assert_eq!(of("arn:aws-cn:sts::111111111111:assumed-role/r/s").as_deref(), Some("aws-cn"));
        assert_eq!(of("arn:aws-iso-b:iam::111111111111:role/r").as_deref(), Some("aws-iso-b"));
        assert_eq!(of("not-an-arn"), None);
        assert!("gcp".parse::<Partition>().is_err());
    }

    #[test]
    fn role_names() {
        assert!("kmsxacct-prod+x=y,z.w@v_u-t".parse::<RoleName>().is_ok());
        assert!("a".repeat(64).parse::<RoleName>().is_ok());
        assert!("a".repeat(65).parse::<RoleName>().is_err());
        assert!("".parse::<RoleName>().is_err());
        let err = "bad/name".parse::<RoleName>().unwrap_err();
        assert!(err.0.contains("'bad/name'") && err.0.contains("'/'"), "{err}");
    }

    #[test]
    fn default_role_name_is_valid_and_bounded() {
        let a: AliasName = "team/production-data-key".parse().unwrap();
        assert_eq!(RoleName::default_for(&a).as_str(), "kmsxacct-team-production-data-key");
        let long: AliasName = "x".repeat(250).parse().unwrap();
        let role = RoleName::default_for(&long);
        assert_eq!(role.as_str().len(), 64);
        assert!(role.as_str().parse::<RoleName>().is_ok());
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-west-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "cn-north-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eusc-de-east-1",
        ] {
            assert!(ok.parse::<Region>().is_ok(), "{ok}");
        }
        for bad in ["", "us-east", "US-EAST-1", "useast1", "us-east-1a", "mars", "europe-west-1"] {
            let err = bad.parse::<Region>().unwrap_err();
            assert!(err.0.contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn accounts_and_windows() {
        assert!("123456789012".parse::<AccountId>().is_ok());
        assert!("12345678901".parse::<AccountId>().is_err());
        assert!("12345678901a".parse::<AccountId>().is_err());
        assert_eq!("7".parse::<PendingWindow>().unwrap().days(), 7);
        assert_eq!("30".parse::<PendingWindow>().unwrap().days(), 30);
        for bad in ["6", "31", "0", "-7", "seven", "300"] {
            let err = bad.parse::<PendingWindow>().unwrap_err();
            assert!(err.0.contains(&format!("'{bad}'")), "{err}");
        }
    }
}

/// Which organisation (or part of one) a key policy grants, instead of listing accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgScope {
    /// `o-` and 10 to 32 of a-z 0-9: every account of the organisation (`aws:PrincipalOrgID`).
    Id(String),
    /// `o-.../r-.../ou-.../`: the accounts under that root or OU (`aws:PrincipalOrgPaths`).
    Path(String),
}

impl OrgScope {
    /// Parses `--org-id`.
    pub fn id(input: &str) -> Result<OrgScope, InputError> {
        if org_part(input, "o-", 10, 32) {
            Ok(OrgScope::Id(input.to_string()))
        } else {
            Err(InputError(format!(
                "invalid --org-id '{input}' (expected o- and 10 to 32 of a-z 0-9, e.g. o-a1b2c3d4e5)"
            )))
        }
    }

    /// Parses `--org-path`: the organisation, its root, then any OUs, each ending in `/`.
    pub fn path(input: &str) -> Result<OrgScope, InputError> {
        let bad = || {
            InputError(format!(
                "invalid --org-path '{input}' (expected o-ID/r-ID/ and any ou-ID/ after it, ending in /, e.g. o-a1b2c3d4e5/r-ab12/ou-ab12-cdef3456/)"
            ))
        };
        let body = input.strip_suffix('/').ok_or_else(bad)?;
        let parts: Vec<&str> = body.split('/').collect();
        let shaped = parts.len() >= 2
            && org_part(parts[0], "o-", 10, 32)
            && org_part(parts[1], "r-", 4, 32)
            && parts[2..].iter().all(|ou| {
                ou.strip_prefix("ou-")
                    .and_then(|rest| rest.split_once('-'))
                    .is_some_and(|(root, id)| org_chars(root, 4, 32) && org_chars(id, 8, 32))
            });
        if shaped { Ok(OrgScope::Path(input.to_string())) } else { Err(bad()) }
    }

    /// The value as written.
    pub fn as_str(&self) -> &str {
        match self {
            OrgScope::Id(v) | OrgScope::Path(v) => v,
        }
    }

    /// The condition operator and key that bound a key policy statement to the scope, and the
    /// value (a path covers the accounts under it).
    pub fn condition(&self) -> (&'static str, &'static str, String) {
        match self {
            OrgScope::Id(id) => ("StringEquals", "aws:PrincipalOrgID", id.clone()),
            OrgScope::Path(path) => {
                ("ForAnyValue:StringLike", "aws:PrincipalOrgPaths", format!("{path}*"))
            }
        }
    }

    /// The request context a principal of the scope carries (for the policy engine: membership
    /// is assumed, and a wrong organisation shows as a live failure).
    pub fn context(&self) -> (String, String) {
        match self {
            OrgScope::Id(id) => ("aws:PrincipalOrgID".into(), id.clone()),
            OrgScope::Path(path) => ("aws:PrincipalOrgPaths".into(), path.clone()),
        }
    }
}

/// `prefix` then `min` to `max` of a-z 0-9.
fn org_part(text: &str, prefix: &str, min: usize, max: usize) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| org_chars(rest, min, max))
}

/// `min` to `max` of a-z 0-9.
fn org_chars(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod org_tests {
    use super::*;

    #[test]
    fn organisation_ids_and_paths() {
        assert_eq!(OrgScope::id("o-a1b2c3d4e5").unwrap(), OrgScope::Id("o-a1b2c3d4e5".into()));
        for bad in ["o-short", "a1b2c3d4e5", "o-A1B2C3D4E5", &format!("o-{}", "a".repeat(33))] {
            assert!(OrgScope::id(bad).unwrap_err().0.contains(bad), "{bad}");
        }
        assert!(OrgScope::id(&format!("o-{}", "a".repeat(32))).is_ok());
        for good in
            ["o-a1b2c3d4e5/r-ab12/", "o-a1b2c3d4e5/r-ab12/ou-ab12-cdef3456/ou-ab12-99999999/"]
        {
            assert_eq!(OrgScope::path(good).unwrap().as_str(), good);
        }
        for bad in [
            "o-a1b2c3d4e5/r-ab12",
            "o-a1b2c3d4e5/",
            "o-a1b2c3d4e5/r-a/",
            "o-a1b2c3d4e5/r-ab12/ou-ab12/",
            "o-a1b2c3d4e5/r-ab12/ou-ab12-short/",
            "o-a1b2c3d4e5/r-ab12/x-ab12-cdef3456/",
        ] {
            assert!(OrgScope::path(bad).unwrap_err().0.contains(bad), "{bad}");
        }
        let path = OrgScope::path("o-a1b2c3d4e5/r-ab12/").unwrap();
        assert_eq!(
            path.condition(),
            ("ForAnyValue:StringLike", "aws:PrincipalOrgPaths", "o-a1b2c3d4e5/r-ab12/*".into())
        );
        assert_eq!(path.context(), ("aws:PrincipalOrgPaths".into(), "o-a1b2c3d4e5/r-ab12/".into()));
        let id = OrgScope::id("o-a1b2c3d4e5").unwrap();
        assert_eq!(id.condition(), ("StringEquals", "aws:PrincipalOrgID", "o-a1b2c3d4e5".into()));
        assert_eq!(id.context(), ("aws:PrincipalOrgID".into(), "o-a1b2c3d4e5".into()));
    }
}
