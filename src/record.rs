//! The deployment record, `kmsxacct.toml`: what setup made, so that verify and teardown need no flags.

use crate::names::{AccountId, AliasName, Partition, PendingWindow, Region, RoleName};
use crate::policy::build::{AliasCondition, GrantTo, KeyAction};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The record's file name when `--config` is not given.
pub const DEFAULT_PATH: &str = "kmsxacct.toml";

/// One deployment: a key reached through an alias in the owner account, and a role in each
/// user account allowed to use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Profile that acts in the owner account.
    pub owner_profile: String,
    /// Account that owns the key.
    pub owner_account: String,
    /// ARN partition of the accounts (from the caller's identity).
    #[serde(default = "default_partition")]
    pub partition: String,
    /// Region of the key.
    pub region: String,
    /// Alias, `alias/NAME`.
    pub alias: String,
    /// Role name in every user account.
    pub role_name: String,
    /// Whom the key policy names.
    #[serde(default)]
    pub grant_to: GrantTo,
    /// What the users may do.
    #[serde(default = "default_actions")]
    pub actions: Vec<KeyAction>,
    /// Which alias condition the role policy uses.
    #[serde(default)]
    pub condition: AliasCondition,
    /// Principals allowed to assume the role; empty: the whole user account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust: Vec<String>,
    /// ARN of the key; empty until the key exists.
    #[serde(default)]
    pub key_arn: String,
    /// Days teardown asks KMS to wait before deleting the key.
    pub pending_window_days: u8,
    /// Set just before CreateKey and cleared when its answer is recorded: a run that stopped in
    /// between may have left a key, which the next setup finds by its tags.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_creation_pending: bool,
    /// The user accounts.
    #[serde(default)]
    pub users: Vec<UserRecord>,
    /// The key was adopted (`setup --adopt`): neither it nor its alias is kmsxacct's, only the
    /// grant statement in its policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// The last verify of this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verify: Option<LastVerify>,
    /// Keys the alias pointed at before `kmsxacct rotate`, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_keys: Vec<RetiredKey>,
    /// Set by a complete teardown; `kmsxacct restore` undoes it within the pending window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_down: Option<TornDown>,
    /// Regions of the replicas of a multi-Region key (its primary is in `region`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_regions: Vec<String>,
    /// The organisation the key policy grants (`--org-id`), instead of listing accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The organization path the key policy grants (`--org-path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_path: Option<String>,
    /// The StackSet that rolls the roles out to the user accounts (`setup --stackset-admin`);
    /// such a deployment has no `users`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_set: Option<StackSetRecord>,
}

/// A StackSet of a deployment, in its administrator account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSetRecord {
    /// Profile that acts in the administrator account.
    pub admin_profile: String,
    /// The administrator account.
    pub admin_account: String,
    /// The stack set's name.
    pub name: String,
    /// Its id; empty until CreateStackSet answered.
    #[serde(default)]
    pub id: String,
    /// The user accounts with an instance, or about to get one: a run that stops midway leaves
    /// no instance the record does not name.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// A complete teardown: when, and when KMS deletes each key of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TornDown {
    /// When teardown finished (RFC 3339).
    pub at: String,
    /// Each key whose deletion is scheduled, with its deletion date.
    pub deletions: Vec<KeyDeletion>,
}

/// A key KMS will delete, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDeletion {
    /// The key's ARN.
    pub arn: String,
    /// When KMS deletes it (RFC 3339).
    pub date: String,
}

impl TornDown {
    /// The earliest deletion date: until then, everything can be restored.
    pub fn first_deletion(&self) -> Option<&str> {
        self.deletions.iter().map(|d| d.date.as_str()).min()
    }
}

fn default_partition() -> String {
    "aws".into()
}

/// A key the alias no longer points at: it keeps a retirement alias so that data encrypted under
/// it stays readable through the role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredKey {
    /// The key's ARN.
    pub arn: String,
    /// Its retirement alias, `alias/NAME/retired/...`.
    pub alias: String,
    /// When the alias moved off it (RFC 3339).
    pub retired_at: String,
    /// When its deletion was scheduled (`rotate --retire-old`), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_scheduled: Option<String>,
}

/// When verify last ran on a recorded deployment, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastVerify {
    /// RFC 3339 time.
    pub at: String,
    /// Whether every check passed.
    pub ok: bool,
    /// The names of the checks that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

fn default_actions() -> Vec<KeyAction> {
    KeyAction::DEFAULT.to_vec()
}

/// One user account of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Profile that acts in this user account.
    pub profile: String,
    /// The account.
    pub account: String,
    /// ARN of its role; empty until the role exists.
    #[serde(default)]
    pub role_arn: String,
}

/// A record read back and checked: every field is a valid value again.
#[derive(Debug, Clone)]
pub struct CheckedDeployment {
    /// The record as stored.
    pub raw: Deployment,
    /// Owner account id.
    pub owner_account: AccountId,
    /// User account ids, in the record's order.
    pub user_accounts: Vec<AccountId>,
    /// ARN partition.
    pub partition: Partition,
    /// Region.
    pub region: Region,
    /// Alias.
    pub alias: AliasName,
    /// Role name.
    pub role_name: RoleName,
    /// Pending window for teardown.
    pub pending_window: PendingWindow,
}

/// A record that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No record at the path.
    #[error(
        "no deployment record at '{0}': run `kmsxacct setup` first, pass --config PATH, or give --owner and --user"
    )]
    Missing(String),
    /// The record exists but is not a valid record.
    #[error("deployment record '{path}' is not valid: {why}")]
    Malformed {
        /// Path of the record.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// Reading or writing failed.
    #[error("cannot {action} deployment record '{path}': {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// Path of the record.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Adds to a recorded list each item it does not hold yet, in order.
pub fn add_missing(list: &mut Vec<String>, items: impl IntoIterator<Item = impl ToString>) {
    for item in items {
        let item = item.to_string();
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

impl StackSetRecord {
    /// Adds each account not named yet, in order.
    pub fn add_accounts<'a>(&mut self, accounts: impl IntoIterator<Item = &'a AccountId>) {
        add_missing(&mut self.accounts, accounts);
    }
}

impl Deployment {
    /// The organisation scope the record names, if any (one that no longer parses is ignored).
    pub fn org_scope(&self) -> Option<crate::names::OrgScope> {
        let id = self.org_id.as_deref().and_then(|v| crate::names::OrgScope::id(v).ok());
        id.or_else(|| self.org_path.as_deref().and_then(|v| crate::names::OrgScope::path(v).ok()))
    }

    /// Reads and checks the record at `path`.
    pub fn load(path: &Path) -> Result<CheckedDeployment, RecordError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RecordError::Missing(shown));
            }
            Err(source) => {
                return Err(RecordError::Io { action: "read", path: shown, source });
            }
        };
        Deployment::parse(&text).map_err(|why| RecordError::Malformed { path: shown, why })
    }

    /// Parses and checks a record's text.
    pub fn parse(text: &str) -> Result<CheckedDeployment, String> {
        let raw: Deployment = toml::from_str(text).map_err(|e| e.message().to_string())?;
        raw.check()
    }

    /// Checks every field, turning the record into validated values.
    pub fn check(self) -> Result<CheckedDeployment, String> {
        let e = |field: &str, err: crate::names::InputError| format!("{field}: {err}");
        if self.users.is_empty() && self.stack_set.is_none() {
            return Err("users: the record names no user account".into());
        }
        if let Some(set) = &self.stack_set {
            set.admin_account.parse::<AccountId>().map_err(|x| e("stack_set.admin_account", x))?;
            for a in &set.accounts {
                a.parse::<AccountId>().map_err(|x| e("stack_set.accounts", x))?;
            }
        }
        Ok(CheckedDeployment {
            owner_account: self.owner_account.parse().map_err(|x| e("owner_account", x))?,
            user_accounts: self
                .users
                .iter()
                .map(|u| u.account.parse().map_err(|x| e("users.account", x)))
                .collect::<Result<_, _>>()?,
            partition: self.partition.parse().map_err(|x| e("partition", x))?,
            region: self.region.parse().map_err(|x| e("region", x))?,
            alias: self.alias.parse().map_err(|x| e("alias", x))?,
            role_name: self.role_name.parse().map_err(|x| e("role_name", x))?,
            pending_window: self
                .pending_window_days
                .to_string()
                .parse()
                .map_err(|x| e("pending_window_days", x))?,
            raw: self,
        })
    }

    /// Writes the record atomically (temporary file, then rename), so that an interrupted write
    /// never leaves half a record.
    pub fn save(&self, path: &Path) -> Result<(), RecordError> {
        let io =
            |source| RecordError::Io { action: "write", path: path.display().to_string(), source };
        let text = format!(
            "# kmsxacct deployment record: written by `kmsxacct setup`, read by verify and teardown.\n{}",
            toml::to_string(self).expect("a deployment record always serialises")
        );
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// The record while a command changes AWS: saved at once and after every update, so that a run
/// that stops anywhere leaves what the next run needs to find what it made.
#[derive(Debug)]
pub struct Journal<'a> {
    record: std::sync::Mutex<Deployment>,
    path: &'a Path,
}

impl<'a> Journal<'a> {
    /// Saves `record` at `path` and keeps it for updates.
    pub fn start(record: Deployment, path: &'a Path) -> Result<Journal<'a>, RecordError> {
        record.save(path)?;
        Ok(Journal { record: std::sync::Mutex::new(record), path })
    }

    /// Reads from the record as it stands.
    pub fn read<T>(&self, read: impl FnOnce(&Deployment) -> T) -> T {
        read(&self.record.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Changes the record and saves it.
    pub fn update(&self, change: impl FnOnce(&mut Deployment)) -> Result<(), RecordError> {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut record);
        record.save(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Deployment {
        Deployment {
            owner_profile: "A".into(),
            owner_account: "111111111111".into(),
            partition: "aws-us-gov".into(),
            region: "us-east-1".into(),
            alias: "alias/production-data-key".into(),
            role_name: "kmsxacct-production-data-key".into(),
            grant_to: GrantTo::Account,
            actions: KeyAction::DEFAULT.to_vec(),
            condition: AliasCondition::ResourceAliases,
            trust: vec![],
            key_arn: "arn:aws:kms:us-east-1:111111111111:key/abc".into(),
            pending_window_days: 7,
            key_creation_pending: false,
            users: vec![UserRecord {
                profile: "B".into(),
                account: "222222222222".into(),
                role_arn: "arn:aws:iam::222222222222:role/kmsxacct-production-data-key".into(),
            }],
            adopted: false,
            last_verify: None,
            previous_keys: vec![],
            replica_regions: vec![],
            org_id: None,
            org_path: None,
            stack_set: None,
            torn_down: Some(TornDown {
                at: "2026-11-29T00:00:00Z".into(),
                deletions: vec![KeyDeletion {
                    arn: "arn:aws:kms:us-east-1:111111111111:key/abc".into(),
                    date: "2026-12-29T00:00:00Z".into(),
                }],
            }),
        }
    }

    #[test]
    fn a_stack_set_deployment_needs_no_users_but_valid_accounts() {
        let mut d = sample();
        d.users.clear();
        assert!(d.clone().check().is_err(), "no users and no stack set");
        d.stack_set = Some(StackSetRecord {
            admin_profile: "ADMIN".into(),
            admin_account: "999999999999".into(),
            name: "kmsxacct-production-data-key".into(),
            id: String::new(),
            accounts: vec!["222222222222".into()],
        });
        let text = toml::to_string(&d).unwrap();
        assert_eq!(Deployment::parse(&text).unwrap().raw, d);
        d.stack_set.as_mut().unwrap().accounts.push("12".into());
        let e = d.check().unwrap_err();
        assert!(e.starts_with("stack_set.accounts:"), "{e}");
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        sample().save(&path).unwrap();
        let back = Deployment::load(&path).unwrap();
        assert_eq!(back.raw, sample());
        assert_eq!(back.alias.as_str(), "alias/production-data-key");
        assert!(!dir.path().join("k.toml.tmp").exists());
    }

    #[test]
    fn missing_and_malformed_records_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.toml");
        let err = Deployment::load(&path).unwrap_err();
        assert!(matches!(err, RecordError::Missing(_)));
        assert!(err.to_string().contains("none.toml"));

        std::fs::write(&path, "owner_profile = ").unwrap();
        assert!(matches!(Deployment::load(&path).unwrap_err(), RecordError::Malformed { .. }));

        let mut bad = sample();
        bad.alias = "alias/aws/x".into();
        std::fs::write(&path, toml::to_string(&bad).unwrap()).unwrap();
        let err = Deployment::load(&path).unwrap_err().to_string();
        assert!(err.contains("alias") && err.contains("alias/aws/x"), "{err}");
    }
}
