//! Test support: a sandbox of AWS profiles on LocalStack, the binary to run in it, and SDK clients
//! that read the outcome back independently of kmsxacct's own code.

use assert_cmd::Command;
use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// LocalStack's endpoint: `KMSXACCT_TEST_ENDPOINT`, else the harness default.
pub fn endpoint() -> String {
    std::env::var("KMSXACCT_TEST_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

/// A random lowercase word, for names no other test uses.
pub fn random_word(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| (b'a' + b % 26) as char).collect()
}

/// A random 12-digit account id that LocalStack will treat as its own account.
pub fn random_account() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("randomness");
    let mut id: String = bytes.iter().map(|b| (b'0' + b % 10) as char).collect();
    id.replace_range(0..1, "9");
    id
}

/// One AWS profile in the sandbox.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Profile name (random, to prove nothing depends on A/B).
    pub name: String,
    /// Its account id (= its access key id on LocalStack).
    pub account: String,
}

/// A temporary directory holding an AWS config and credentials file with fresh profiles, used
/// as the working directory of every command run in it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub owner: Profile,
    pub user: Profile,
    /// Every user profile, `user` first.
    pub users: Vec<Profile>,
    pub alias: String,
    rt: tokio::runtime::Runtime,
}

impl Sandbox {
    /// Two profiles in two fresh accounts, and a fresh alias name.
    pub fn new() -> Sandbox {
        let owner =
            Profile { name: format!("owner-{}", random_word(6)), account: random_account() };
        let user = Profile { name: format!("user.{}", random_word(6)), account: random_account() };
        Sandbox::with_profiles(owner, user, &[])
    }

    /// Two fresh accounts whose profiles reach AWS through `endpoint` (the fault proxy).
    pub fn via(endpoint: &str) -> Sandbox {
        let owner =
            Profile { name: format!("owner-{}", random_word(6)), account: random_account() };
        let user = Profile { name: format!("user-{}", random_word(6)), account: random_account() };
        Sandbox::build(owner, user, &[], endpoint)
    }

    /// A sandbox with the given profiles plus `extra` raw profile sections appended to the config.
    pub fn with_profiles(owner: Profile, user: Profile, extra: &[&str]) -> Sandbox {
        Sandbox::build(owner, user, extra, &endpoint())
    }

    /// An owner and `n` user accounts, reached through `endpoint`.
    pub fn with_users(n: usize, endpoint: &str) -> Sandbox {
        let owner =
            Profile { name: format!("owner-{}", random_word(6)), account: random_account() };
        let users: Vec<Profile> = (0..n)
            .map(|i| Profile {
                name: format!("user{i}-{}", random_word(6)),
                account: random_account(),
            })
            .collect();
        Sandbox::build_many(owner, users, &[], endpoint)
    }

    fn build(owner: Profile, user: Profile, extra: &[&str], endpoint: &str) -> Sandbox {
        Sandbox::build_many(owner, vec![user], extra, endpoint)
    }

    fn build_many(owner: Profile, users: Vec<Profile>, extra: &[&str], endpoint: &str) -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = String::new();
        let mut credentials = String::new();
        for p in std::iter::once(&owner).chain(&users) {
            config.push_str(&format!(
                "[profile {}]\nregion = us-east-1\nendpoint_url = {}\n\n",
                p.name, endpoint
            ));
            credentials.push_str(&format!(
                "[{}]\naws_access_key_id = {}\naws_secret_access_key = test-secret-{}\n\n",
                p.name, p.account, p.account
            ));
        }
        for section in extra {
            config.push_str(section);
            config.push('\n');
        }
        std::fs::write(dir.path().join("aws-config"), config).unwrap();
        std::fs::write(dir.path().join("aws-credentials"), credentials).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Sandbox {
            dir,
            owner,
            user: users[0].clone(),
            users,
            alias: format!("alias/it/{}", random_word(10)),
            rt,
        }
    }

    /// The working directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default record path.
    pub fn record(&self) -> PathBuf {
        self.path().join("kmsxacct.toml")
    }

    /// The kmsxacct binary, set up to use only this sandbox's profiles.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::from_std(self.std_cmd());
        cmd.timeout(Duration::from_secs(60));
        cmd
    }

    /// The same, as a plain `std::process::Command` (to spawn and signal it), without the timeout.
    pub fn std_cmd(&self) -> std::process::Command {
        self.command(assert_cmd::cargo::cargo_bin("kmsxacct"))
    }

    /// `program` run in this sandbox (its directory, profiles and nothing else of the caller's
    /// environment), e.g. a benchmark's timer around a release binary.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("AWS_CONFIG_FILE", self.path().join("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.path().join("aws-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_PROXY", "127.0.0.1,localhost");
        cmd
    }

    /// `kmsxacct setup` for this sandbox's profiles and alias, plus `args`.
    pub fn setup(&self, args: &[&str]) -> Command {
        let mut cmd = self.cmd();
        cmd.args([
            "setup",
            "--owner",
            &self.owner.name,
            "--user",
            &self.user.name,
            "--alias",
            &self.alias,
        ])
        .args(args);
        cmd
    }

    /// The role name setup derives from this sandbox's alias.
    pub fn role_name(&self) -> String {
        format!("kmsxacct-{}", self.alias.trim_start_matches("alias/").replace('/', "-"))
    }

    /// Runs a future on this sandbox's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A KMS client acting in `account`, built without any kmsxacct code.
    pub fn kms(&self, account: &str) -> aws_sdk_kms::Client {
        self.kms_in(account, "us-east-1")
    }

    /// A KMS client acting in `account` in `region`.
    pub fn kms_in(&self, account: &str, region: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.to_string()))
                .endpoint_url(endpoint())
                .credentials_provider(Credentials::new(account, "test", None, None, "test"))
                .build(),
        )
    }

    /// An IAM client acting in `account`.
    pub fn iam(&self, account: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(endpoint())
                .credentials_provider(Credentials::new(account, "test", None, None, "test"))
                .build(),
        )
    }

    /// Keys in `account` that carry kmsxacct's tags for this sandbox's alias: (key id, state).
    pub fn deployment_keys(&self) -> Vec<(String, String)> {
        let kms = self.kms(&self.owner.account);
        let keys = self.keys(&self.owner.account);
        self.block_on(async {
            let mut ours = Vec::new();
            for (id, state) in keys {
                let tags = kms.list_resource_tags().key_id(&id).send().await.unwrap();
                if tags
                    .tags()
                    .iter()
                    .any(|t| t.tag_key() == "kmsxacct:alias" && t.tag_value() == self.alias)
                {
                    ours.push((id, state));
                }
            }
            ours
        })
    }

    /// The key policy of `key` (id or ARN) in the owner account.
    pub fn key_policy_of(&self, key: &str) -> serde_json::Value {
        let kms = self.kms(&self.owner.account);
        let out = self
            .block_on(kms.get_key_policy().key_id(key).policy_name("default").send())
            .expect("GetKeyPolicy");
        json(out.policy().unwrap_or_default())
    }

    /// The key policy of the key behind this sandbox's alias.
    pub fn key_policy(&self) -> serde_json::Value {
        let (key_arn, _) =
            self.alias_target(&self.owner.account, &self.alias).expect("the alias exists");
        self.key_policy_of(&key_arn)
    }

    /// Replaces the key policy of the key behind this sandbox's alias, behind kmsxacct's back.
    pub fn put_key_policy(&self, document: &serde_json::Value) {
        let (key_arn, _) =
            self.alias_target(&self.owner.account, &self.alias).expect("the alias exists");
        let kms = self.kms(&self.owner.account);
        self.block_on(
            kms.put_key_policy()
                .key_id(&key_arn)
                .policy_name("default")
                .policy(document.to_string())
                .send(),
        )
        .expect("PutKeyPolicy");
    }

    /// A key policy with only the owner account's admin statement (the user grant taken out).
    pub fn admin_only_key_policy(&self) -> serde_json::Value {
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "Enable IAM User Permissions",
            "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", self.owner.account)},
            "Action": "kms:*", "Resource": "*"}]})
    }

    /// kmsxacct's inline policy of the role in `account`.
    pub fn role_policy(&self, account: &str) -> serde_json::Value {
        let iam = self.iam(account);
        let out = self
            .block_on(
                iam.get_role_policy()
                    .role_name(self.role_name())
                    .policy_name("kmsxacct-kms-access")
                    .send(),
            )
            .expect("GetRolePolicy");
        json(out.policy_document())
    }

    /// A key kmsxacct did not create (with `policy`, else KMS's default), behind this sandbox's
    /// alias; returns its key id.
    pub fn foreign_key_behind_alias(&self, policy: Option<&serde_json::Value>) -> String {
        let kms = self.kms(&self.owner.account);
        self.block_on(async {
            let key = kms
                .create_key()
                .set_policy(policy.map(|p| p.to_string()))
                .send()
                .await
                .expect("CreateKey");
            let id = key.key_metadata().unwrap().key_id().to_string();
            kms.create_alias()
                .alias_name(&self.alias)
                .target_key_id(&id)
                .send()
                .await
                .expect("CreateAlias");
            id
        })
    }

    /// Replaces kmsxacct's inline policy on the role behind kmsxacct's back.
    pub fn put_role_policy(&self, document: &serde_json::Value) {
        let iam = self.iam(&self.user.account);
        self.block_on(
            iam.put_role_policy()
                .role_name(self.role_name())
                .policy_name("kmsxacct-kms-access")
                .policy_document(document.to_string())
                .send(),
        )
        .expect("PutRolePolicy");
    }

    /// The classic mistake: a role policy whose `Resource` is the alias ARN.
    pub fn alias_arn_role_policy(&self) -> serde_json::Value {
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt"],
            "Resource": format!("arn:aws:kms:us-east-1:{}:{}", self.owner.account, self.alias)}]})
    }

    /// Every key id in `account`, with its state.
    pub fn keys(&self, account: &str) -> Vec<(String, String)> {
        let kms = self.kms(account);
        self.block_on(async {
            let list = kms
                .list_keys()
                .limit(1000)
                .send()
                .await
                .expect("ListKeys (is LocalStack running?)");
            let mut keys = Vec::new();
            for k in list.keys() {
                let id = k.key_id().unwrap().to_string();
                let meta = kms.describe_key().key_id(&id).send().await.unwrap();
                let state = meta.key_metadata().unwrap().key_state().unwrap().as_str().to_string();
                keys.push((id, state));
            }
            keys
        })
    }

    /// The key the alias points at in `account`, if any: (key ARN, state).
    pub fn alias_target(&self, account: &str, alias: &str) -> Option<(String, String)> {
        let kms = self.kms(account);
        self.block_on(async {
            match kms.describe_key().key_id(alias).send().await {
                Ok(out) => {
                    let m = out.key_metadata().unwrap();
                    Some((
                        m.arn().unwrap().to_string(),
                        m.key_state().unwrap().as_str().to_string(),
                    ))
                }
                Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found_exception()) => None,
                Err(e) => panic!("DescribeKey {alias}: {e:?}"),
            }
        })
    }

    /// `--owner`, `--user` and `--alias` naming this sandbox's deployment by flags.
    pub fn target(&self) -> [&str; 6] {
        ["--owner", &self.owner.name, "--user", &self.user.name, "--alias", &self.alias]
    }

    /// The intended deployment, exactly: one key of ours, Enabled, behind the alias; the role
    /// with its policy; and verify passes.
    pub fn assert_deployed(&self) {
        let keys = self.deployment_keys();
        let enabled: Vec<_> = keys.iter().filter(|k| k.1 == "Enabled").collect();
        assert_eq!(enabled.len(), 1, "keys of the deployment: {keys:?}");
        let (arn, state) = self.alias_target(&self.owner.account, &self.alias).expect("alias");
        assert_eq!(state, "Enabled");
        assert!(arn.ends_with(&enabled[0].0), "alias points at {arn}, not {}", enabled[0].0);
        assert!(self.role_exists(&self.user.account, &self.role_name()));
        let iam = self.iam(&self.user.account);
        let policy = self.block_on(
            iam.get_role_policy()
                .role_name(self.role_name())
                .policy_name("kmsxacct-kms-access")
                .send(),
        );
        assert!(policy.is_ok(), "role policy missing");
        let out = self.cmd().args(["verify", "--wait", "0"]).output().unwrap();
        assert!(out.status.success(), "verify: {}{}", stdout(&out), stderr(&out));
    }

    /// Whether the role exists in `account`.
    pub fn role_exists(&self, account: &str, role: &str) -> bool {
        let iam = self.iam(account);
        self.block_on(async {
            match iam.get_role().role_name(role).send().await {
                Ok(_) => true,
                Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_entity_exception()) => {
                    false
                }
                Err(e) => panic!("GetRole {role}: {e:?}"),
            }
        })
    }
}

/// Parses JSON, decoding IAM's URL encoding first when present.
pub fn json(text: &str) -> serde_json::Value {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// stdout of a finished command, as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr of a finished command, as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
