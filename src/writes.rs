//! The mutation layer: every AWS write kmsxacct makes, each declared once.
//!
//! A [`Write`] says what it sends, which answers may mean "already so" (done by an earlier run,
//! or by this call's own first attempt whose answer was lost and which the SDK then retried),
//! what is read back before accepting that, and which answers are waited out. [`apply`] is the
//! one place that sends a write, logs it at info level and makes its [`Change`] line; the SDK
//! interceptor records the call for `--output json`. Commands only say which writes a plan needs.

use crate::aws::error::AwsErrorKind;
use crate::aws::{MAX_ATTEMPTS, Session};
use crate::error::{Error, Result};
use crate::names::{AccountId, Region};
use crate::output::{Action, Change, Printer, Resource};
use crate::plan::{key_description, replica_arn};
use crate::policy::PolicyDocument;
use aws_config::retry::RetryConfig;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::{Duration, Instant};

mod stackset;

/// The only key policy name KMS has.
pub const KEY_POLICY_NAME: &str = "default";

/// One AWS write and what it needs; each variant is named for its operation.
#[derive(Debug, Clone, Copy, strum::IntoStaticStr)]
pub enum Write<'a> {
    /// kms:CreateKey, a symmetric encrypt/decrypt key. Not idempotent: never retried after an
    /// answer that does not prove nothing was made (the caller journals it; see `setup`).
    #[strum(serialize = "kms:CreateKey")]
    CreateKey {
        /// The alias it is made for (its description).
        alias: &'a str,
        /// Its whole key policy.
        policy: &'a PolicyDocument,
        /// Its tags.
        tags: &'a [(String, String)],
        /// A multi-Region primary key (`mrk-` id), which replicas can share.
        multi_region: bool,
    },
    /// kms:ReplicateKey, sent in the primary's region. "Already exists" is accepted once the
    /// replica is read back in its region.
    #[strum(serialize = "kms:ReplicateKey")]
    ReplicateKey {
        /// The primary key's ARN.
        key_arn: &'a str,
        /// The replica's region.
        region: &'a Region,
        /// The replica's key policy (each replica has its own).
        policy: &'a PolicyDocument,
        /// Its tags.
        tags: &'a [(String, String)],
    },
    /// kms:PutKeyPolicy. Idempotent.
    #[strum(serialize = "kms:PutKeyPolicy")]
    PutKeyPolicy {
        /// The key's ARN.
        key_arn: &'a str,
        /// The whole new policy.
        policy: &'a PolicyDocument,
        /// What the change line says about it, if anything.
        note: Option<&'a str>,
    },
    /// kms:CreateAlias. "Already exists" is accepted only when the alias points at this key.
    #[strum(serialize = "kms:CreateAlias")]
    CreateAlias {
        /// `alias/NAME`.
        alias: &'a str,
        /// The key's ARN.
        key_arn: &'a str,
    },
    /// kms:UpdateAlias. Idempotent.
    #[strum(serialize = "kms:UpdateAlias")]
    UpdateAlias {
        /// `alias/NAME`.
        alias: &'a str,
        /// The new target key's ARN.
        key_arn: &'a str,
    },
    /// kms:DeleteAlias. "Not found" is what we want.
    #[strum(serialize = "kms:DeleteAlias")]
    DeleteAlias {
        /// `alias/NAME`.
        alias: &'a str,
    },
    /// kms:ScheduleKeyDeletion. "Invalid state" is accepted when the key is pending deletion.
    #[strum(serialize = "kms:ScheduleKeyDeletion")]
    ScheduleKeyDeletion {
        /// The key's ARN.
        key_arn: &'a str,
        /// Days KMS waits, 7 to 30.
        days: i32,
    },
    /// kms:CancelKeyDeletion. "Invalid state" is accepted when the key is no longer pending
    /// deletion.
    #[strum(serialize = "kms:CancelKeyDeletion")]
    CancelKeyDeletion {
        /// The key's ARN.
        key_arn: &'a str,
    },
    /// kms:EnableKey (a key whose deletion was cancelled is Disabled). Idempotent.
    #[strum(serialize = "kms:EnableKey")]
    EnableKey {
        /// The key's ARN.
        key_arn: &'a str,
    },
    /// kms:EnableKeyRotation. Idempotent.
    #[strum(serialize = "kms:EnableKeyRotation")]
    EnableKeyRotation {
        /// The key's ARN.
        key_arn: &'a str,
        /// Days between rotations.
        period_days: i32,
    },
    /// iam:CreateRole. "Already exists" is accepted only for a role with our tags and trust.
    #[strum(serialize = "iam:CreateRole")]
    CreateRole {
        /// The role name.
        name: &'a str,
        /// Its trust policy.
        trust: &'a PolicyDocument,
        /// Its tags.
        tags: &'a [(String, String)],
    },
    /// iam:UpdateAssumeRolePolicy. Idempotent.
    #[strum(serialize = "iam:UpdateAssumeRolePolicy")]
    UpdateTrust {
        /// The role name.
        name: &'a str,
        /// The role's ARN.
        role_arn: &'a str,
        /// The new trust policy.
        trust: &'a PolicyDocument,
    },
    /// iam:PutRolePolicy. Idempotent.
    #[strum(serialize = "iam:PutRolePolicy")]
    PutRolePolicy {
        /// The role name.
        role: &'a str,
        /// The role's ARN.
        role_arn: &'a str,
        /// The inline policy's name.
        name: &'a str,
        /// Its document.
        policy: &'a PolicyDocument,
        /// Whether the role was made by this run (the change line says created, not updated).
        new_role: bool,
    },
    /// iam:DeleteRolePolicy. "No such entity" is what we want.
    #[strum(serialize = "iam:DeleteRolePolicy")]
    DeleteRolePolicy {
        /// The role name.
        role: &'a str,
        /// The role's ARN.
        role_arn: &'a str,
        /// The inline policy's name.
        name: &'a str,
    },
    /// iam:DeleteRole. "No such entity" is what we want.
    #[strum(serialize = "iam:DeleteRole")]
    DeleteRole {
        /// The role name.
        name: &'a str,
        /// The role's ARN.
        role_arn: &'a str,
    },
    /// cloudformation:CreateStackSet, self-managed permissions, with a client request token so
    /// that the SDK's retry of a call whose answer was lost makes no second set. "Name already
    /// exists" is accepted once the set is read back with these tags.
    #[strum(serialize = "cloudformation:CreateStackSet")]
    CreateStackSet {
        /// Its name.
        name: &'a str,
        /// The template every instance deploys.
        template: &'a str,
        /// Its tags (CloudFormation passes them on to each instance's resources).
        tags: &'a [(String, String)],
        /// The idempotency token.
        token: &'a str,
    },
    /// cloudformation:UpdateStackSet: the new template, to every instance. The operation id
    /// makes a retry the same operation; "operation id already exists" is that operation.
    #[strum(serialize = "cloudformation:UpdateStackSet")]
    UpdateStackSet {
        /// The stack set's name.
        name: &'a str,
        /// The new template.
        template: &'a str,
        /// Its tags.
        tags: &'a [(String, String)],
        /// The operation id, our idempotency token.
        operation_id: &'a str,
    },
    /// cloudformation:CreateStackInstances in one region; idempotent by operation id.
    #[strum(serialize = "cloudformation:CreateStackInstances")]
    CreateStackInstances {
        /// The stack set's name.
        name: &'a str,
        /// The accounts.
        accounts: &'a [AccountId],
        /// The region of the instances.
        region: &'a Region,
        /// The operation id, our idempotency token.
        operation_id: &'a str,
    },
    /// cloudformation:DeleteStackInstances (their stacks and roles too) in one region;
    /// idempotent by operation id; "stack set not found" is what we want.
    #[strum(serialize = "cloudformation:DeleteStackInstances")]
    DeleteStackInstances {
        /// The stack set's name.
        name: &'a str,
        /// The accounts.
        accounts: &'a [AccountId],
        /// The region of the instances.
        region: &'a Region,
        /// The operation id, our idempotency token.
        operation_id: &'a str,
    },
    /// cloudformation:DeleteStackSet (it must hold no instance). "Not found" is what we want.
    #[strum(serialize = "cloudformation:DeleteStackSet")]
    DeleteStackSet {
        /// Its name.
        name: &'a str,
    },
}

/// What a write gave back besides its change line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Nothing more.
    Nothing,
    /// A new key.
    Key {
        /// Key id.
        id: String,
        /// Key ARN.
        arn: String,
    },
    /// A new role's ARN.
    Role(String),
    /// When KMS will delete the key (RFC 3339).
    DeletionDate(String),
    /// A new stack set's id.
    StackSet(String),
    /// The id of a StackSet operation under way (wait for it with `admin::wait_operation`).
    Operation(String),
}

/// A write carried out.
#[derive(Debug, Clone)]
pub struct Done {
    /// Its line in the command's report.
    pub change: Change,
    /// What it gave back.
    pub output: Output,
}

impl Done {
    /// The new key's id and ARN (CreateKey).
    pub fn key(&self) -> Option<(&str, &str)> {
        match &self.output {
            Output::Key { id, arn } => Some((id, arn)),
            _ => None,
        }
    }

    /// The new role's ARN (CreateRole).
    pub fn role_arn(&self) -> Option<&str> {
        match &self.output {
            Output::Role(arn) => Some(arn),
            _ => None,
        }
    }

    /// The key's deletion date (ScheduleKeyDeletion).
    pub fn deletion_date(&self) -> Option<&str> {
        match &self.output {
            Output::DeletionDate(date) => Some(date),
            _ => None,
        }
    }
}

/// How long a write that names new principals may wait for IAM to show them to KMS, and where
/// to say so.
#[derive(Debug, Clone, Copy)]
pub struct Propagation<'a> {
    /// Give up then.
    pub until: Instant,
    /// Where to say what it waits for.
    pub printer: &'a Printer,
}

/// Sends `w` in `s`'s account until it is done, accepting an "already so" answer only once
/// read back; with `wait`, a policy naming principals KMS does not see yet is retried until
/// `wait.until`.
pub async fn apply(s: &Session, w: &Write<'_>, wait: Option<Propagation<'_>>) -> Result<Done> {
    let mut waiting = wait.map(Waiting::new);
    let mut attempt = 1;
    let mut backoff = Duration::from_millis(200);
    let (output, already) = loop {
        let err = match w.send(s).await {
            Ok(output) => break (output, None),
            Err(Error::Aws(e)) => e,
            Err(other) => return Err(other),
        };
        if w.may_be_done(err.kind) {
            break (w.confirm(s, &err).await?, Some(err.detail));
        }
        let waited = match &mut waiting {
            Some(waiting) if err.kind == AwsErrorKind::MalformedPolicy && w.names_principals() => {
                waiting.again(w.operation(), &err.detail).await
            }
            _ => false,
        };
        if waited {
            continue;
        }
        // Only CreateKey runs without the SDK's retries; throttling proves nothing was made.
        if w.retried_here() && err.kind == AwsErrorKind::Throttled && attempt < MAX_ATTEMPTS {
            tracing::debug!(attempt, operation = w.operation(), "throttled; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
            continue;
        }
        return Err(err.into());
    };
    let mut change = w.change(s, &output);
    tracing::info!(
        operation = w.operation(),
        account = %s.account(),
        resource = %change.id,
        "{} {}",
        change.action.name(),
        change.resource.name()
    );
    if let Some(answer) = already {
        let note = format!("already so: AWS answered {answer}");
        change.detail = Some(match change.detail.take() {
            Some(d) => format!("{d}; {note}"),
            None => note,
        });
    }
    Ok(Done { change, output })
}

/// [`apply`] without a propagation wait, adding the change line to `changes`.
pub async fn apply_to(changes: &mut Vec<Change>, s: &Session, w: Write<'_>) -> Result<Done> {
    let done = apply(s, &w, None).await?;
    changes.push(done.change.clone());
    Ok(done)
}

impl Write<'_> {
    /// The AWS operation, e.g. `kms:CreateAlias`.
    pub fn operation(&self) -> &'static str {
        self.into()
    }

    /// Answers after which the work may already be done: [`Write::confirm`] decides.
    fn may_be_done(&self, kind: AwsErrorKind) -> bool {
        use AwsErrorKind::*;
        match self {
            Write::CreateAlias { .. } | Write::CreateRole { .. } | Write::ReplicateKey { .. } => {
                kind == AlreadyExists
            }
            Write::CreateStackSet { .. }
            | Write::UpdateStackSet { .. }
            | Write::CreateStackInstances { .. } => kind == AlreadyExists,
            Write::DeleteStackInstances { .. } => matches!(kind, AlreadyExists | NotFound),
            Write::DeleteAlias { .. }
            | Write::DeleteRolePolicy { .. }
            | Write::DeleteRole { .. }
            | Write::DeleteStackSet { .. } => kind == NotFound,
            Write::ScheduleKeyDeletion { .. } => kind == Conflict,
            // AWS answers KMSInvalidStateException for a key not pending deletion; LocalStack
            // answers DisabledException, which the operation's model lacks. The read decides.
            Write::CancelKeyDeletion { .. } => matches!(kind, Conflict | InvalidInput),
            _ => false,
        }
    }

    /// Writes whose policy names principals: KMS refuses them until IAM shows it new roles.
    fn names_principals(&self) -> bool {
        matches!(
            self,
            Write::CreateKey { .. } | Write::ReplicateKey { .. } | Write::PutKeyPolicy { .. }
        )
    }

    /// Writes sent without the SDK's retries, retried here only on proof nothing was done.
    fn retried_here(&self) -> bool {
        matches!(self, Write::CreateKey { .. })
    }

    /// Reads back after an "already so" answer: the output when the state is exactly what this
    /// write wanted, else a conflict (or the original error when the read shows nothing).
    async fn confirm(&self, s: &Session, err: &crate::aws::error::AwsError) -> Result<Output> {
        match *self {
            Write::CreateAlias { alias, key_arn } => {
                let at = crate::owner::alias_target(s, alias).await?;
                match at {
                    Some(arn) if arn == key_arn => Ok(Output::Nothing),
                    Some(arn) => Err(Error::Conflict(format!(
                        "{alias} in account {} already points at {arn}, not {key_arn}; nothing more was changed",
                        s.account()
                    ))),
                    None => Err(err.clone().into()),
                }
            }
            Write::ScheduleKeyDeletion { key_arn, .. } => {
                match crate::owner::deletion_date(s, key_arn).await? {
                    Some(date) => Ok(Output::DeletionDate(date)),
                    None => Err(err.clone().into()),
                }
            }
            Write::CancelKeyDeletion { key_arn } => match crate::owner::key_state(s, key_arn)
                .await?
            {
                Some(state) if state != crate::plan::KEY_PENDING_DELETION => Ok(Output::Nothing),
                _ => Err(err.clone().into()),
            },
            Write::CreateRole { name, trust, tags } => {
                crate::user::confirm_role(s, name, trust, tags).await
            }
            Write::CreateStackSet { name, tags, .. } => {
                stackset::confirm_created(s, name, tags, err).await
            }
            Write::UpdateStackSet { operation_id, .. }
            | Write::CreateStackInstances { operation_id, .. } => {
                Ok(Output::Operation(operation_id.to_string()))
            }
            Write::DeleteStackInstances { operation_id, .. } => Ok(match err.kind {
                AwsErrorKind::NotFound => Output::Nothing,
                _ => Output::Operation(operation_id.to_string()),
            }),
            Write::ReplicateKey { key_arn, region, .. } => {
                let replica = replica_arn(key_arn, region);
                match crate::owner::key_state(&s.in_region(region), &replica).await? {
                    Some(_) => Ok(Output::Key { id: key_id(&replica).to_string(), arn: replica }),
                    None => Err(err.clone().into()),
                }
            }
            _ => Ok(Output::Nothing),
        }
    }

    /// The change line for a write that is done.
    fn change(&self, s: &Session, output: &Output) -> Change {
        let (action, resource, id, detail) = match *self {
            Write::CreateKey { .. } | Write::CreateRole { .. } => {
                let (resource, id) = match output {
                    Output::Key { arn, .. } => (Resource::Key, arn.clone()),
                    Output::Role(arn) => (Resource::Role, arn.clone()),
                    _ => (Resource::Key, String::new()),
                };
                (Action::Created, resource, id, None)
            }
            Write::ReplicateKey { key_arn, region, .. } => (
                Action::Created,
                Resource::Key,
                replica_arn(key_arn, region),
                Some(format!("replica of {key_arn}")),
            ),
            Write::PutKeyPolicy { key_arn, note, .. } => {
                (Action::Updated, Resource::KeyPolicy, key_arn.to_string(), note.map(String::from))
            }
            Write::CreateAlias { alias, key_arn } | Write::UpdateAlias { alias, key_arn } => (
                if matches!(self, Write::CreateAlias { .. }) {
                    Action::Created
                } else {
                    Action::Updated
                },
                Resource::Alias,
                alias.to_string(),
                Some(format!("-> {key_arn}")),
            ),
            Write::DeleteAlias { alias } => (Action::Deleted, Resource::Alias, alias.into(), None),
            Write::ScheduleKeyDeletion { key_arn, .. } => (
                Action::ScheduledDeletion,
                Resource::Key,
                key_arn.to_string(),
                match output {
                    Output::DeletionDate(date) => Some(format!("deleted on {date}")),
                    _ => None,
                },
            ),
            Write::CancelKeyDeletion { key_arn } => (
                Action::Updated,
                Resource::Key,
                key_arn.to_string(),
                Some("deletion cancelled".into()),
            ),
            Write::EnableKey { key_arn } => {
                (Action::Updated, Resource::Key, key_arn.to_string(), Some("enabled".into()))
            }
            Write::EnableKeyRotation { key_arn, period_days } => (
                Action::Updated,
                Resource::KeyRotation,
                key_arn.to_string(),
                Some(format!("automatic rotation every {period_days} days")),
            ),
            Write::UpdateTrust { role_arn, .. } => {
                (Action::Updated, Resource::TrustPolicy, role_arn.to_string(), None)
            }
            Write::PutRolePolicy { role_arn, name, new_role, .. } => (
                if new_role { Action::Created } else { Action::Updated },
                Resource::RolePolicy,
                format!("{role_arn}/{name}"),
                None,
            ),
            Write::DeleteRolePolicy { role_arn, name, .. } => {
                (Action::Deleted, Resource::RolePolicy, format!("{role_arn}/{name}"), None)
            }
            Write::DeleteRole { role_arn, .. } => {
                (Action::Deleted, Resource::Role, role_arn.into(), None)
            }
            _ => stackset::change(self),
        };
        let mut change = Change::new(s, action, resource, &id);
        if let Write::ReplicateKey { region, .. } = self {
            change.region = Some(region.to_string());
        }
        match detail {
            Some(d) => change.detail(d),
            None => change,
        }
    }

    /// Sends the write once (the SDK retries it, except CreateKey).
    async fn send(&self, s: &Session) -> Result<Output> {
        let (op, kms) = (self.operation(), &s.kms);
        match *self {
            Write::CreateKey { .. } => self.send_create_key(s).await,
            Write::ReplicateKey { key_arn, region, policy, tags } => {
                let call = kms
                    .replicate_key()
                    .key_id(key_arn)
                    .replica_region(region.as_str())
                    .policy(policy.render())
                    .set_tags(Some(kms_tags(op, tags)?));
                let out = call.send().await.map_err(|e| s.kms_error(op, e))?;
                let meta = out.replica_key_metadata().ok_or_else(|| {
                    Error::Failed(format!("{op}: the answer holds no key metadata"))
                })?;
                Ok(Output::Key {
                    id: meta.key_id().to_string(),
                    arn: meta.arn().unwrap_or_default().to_string(),
                })
            }
            Write::PutKeyPolicy { key_arn, policy, .. } => {
                let call = kms.put_key_policy().key_id(key_arn).policy_name(KEY_POLICY_NAME);
                kms_answer(s, op, call.policy(policy.render()).send().await)
            }
            Write::CreateAlias { alias, key_arn } => {
                let call = kms.create_alias().alias_name(alias).target_key_id(key_id(key_arn));
                kms_answer(s, op, call.send().await)
            }
            // Aliases are pointed by key id (AWS takes an ARN too; LocalStack mis-stores one on
            // UpdateAlias).
            Write::UpdateAlias { alias, key_arn } => {
                let call = kms.update_alias().alias_name(alias).target_key_id(key_id(key_arn));
                kms_answer(s, op, call.send().await)
            }
            Write::DeleteAlias { alias } => {
                kms_answer(s, op, kms.delete_alias().alias_name(alias).send().await)
            }
            Write::ScheduleKeyDeletion { key_arn, days } => {
                let call = kms.schedule_key_deletion().key_id(key_arn).pending_window_in_days(days);
                let out = call.send().await.map_err(|e| s.kms_error(op, e))?;
                let date = out.deletion_date().map(rfc3339);
                Ok(Output::DeletionDate(date.unwrap_or_else(|| format!("in {days} days"))))
            }
            Write::CancelKeyDeletion { key_arn } => {
                kms_answer(s, op, kms.cancel_key_deletion().key_id(key_arn).send().await)
            }
            Write::EnableKey { key_arn } => {
                kms_answer(s, op, kms.enable_key().key_id(key_arn).send().await)
            }
            Write::EnableKeyRotation { key_arn, period_days } => {
                let call = kms.enable_key_rotation().key_id(key_arn);
                kms_answer(s, op, call.rotation_period_in_days(period_days).send().await)
            }
            Write::CreateStackSet { .. }
            | Write::UpdateStackSet { .. }
            | Write::CreateStackInstances { .. }
            | Write::DeleteStackInstances { .. }
            | Write::DeleteStackSet { .. } => stackset::send(self, s).await,
            _ => self.send_iam(s).await,
        }
    }

    async fn send_create_key(&self, s: &Session) -> Result<Output> {
        let Write::CreateKey { alias, policy, tags, multi_region } = *self else {
            return Err(Error::Failed(format!("{}: not CreateKey", self.operation())));
        };
        let tags = kms_tags(self.operation(), tags)?;
        let out = s
            .kms
            .create_key()
            .multi_region(multi_region)
            .key_spec(KeySpec::SymmetricDefault)
            .key_usage(KeyUsageType::EncryptDecrypt)
            .description(key_description(alias))
            .policy(policy.render())
            .set_tags(Some(tags))
            .customize()
            .config_override(
                aws_sdk_kms::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| s.kms_error(self.operation(), e))?;
        let meta = out.key_metadata().ok_or_else(|| {
            Error::Failed("kms:CreateKey: the answer holds no key metadata".into())
        })?;
        Ok(Output::Key {
            id: meta.key_id().to_string(),
            arn: meta.arn().unwrap_or_default().to_string(),
        })
    }

    async fn send_iam(&self, s: &Session) -> Result<Output> {
        let (op, iam) = (self.operation(), &s.iam);
        match *self {
            Write::CreateRole { name, trust, tags } => {
                let tags = tags
                    .iter()
                    .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::Failed(format!("{op}: {e}")))?;
                let call = iam.create_role().role_name(name).set_tags(Some(tags));
                let out = call
                    .assume_role_policy_document(trust.render())
                    .description("kmsxacct: uses a KMS key of another account through its alias")
                    .send()
                    .await
                    .map_err(|e| s.iam_error(op, e))?;
                Ok(Output::Role(out.role().map(|r| r.arn().to_string()).unwrap_or_default()))
            }
            Write::UpdateTrust { name, trust, .. } => {
                let call = iam.update_assume_role_policy().role_name(name);
                iam_answer(s, op, call.policy_document(trust.render()).send().await)
            }
            Write::PutRolePolicy { role, name, policy, .. } => {
                let call = iam.put_role_policy().role_name(role).policy_name(name);
                iam_answer(s, op, call.policy_document(policy.render()).send().await)
            }
            Write::DeleteRolePolicy { role, name, .. } => {
                let call = iam.delete_role_policy().role_name(role).policy_name(name);
                iam_answer(s, op, call.send().await)
            }
            Write::DeleteRole { name, .. } => {
                iam_answer(s, op, iam.delete_role().role_name(name).send().await)
            }
            _ => Err(Error::Failed(format!("{op}: not an IAM write"))),
        }
    }
}

/// A KMS write's answer as [`Output::Nothing`], or its error classified.
fn kms_answer<O, E>(s: &Session, op: &str, answer: SdkResult<O, E>) -> Result<Output>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    aws_sdk_kms::Error: From<E>,
{
    answer.map(|_| Output::Nothing).map_err(|e| s.kms_error(op, e))
}

/// An IAM write's answer as [`Output::Nothing`], or its error classified.
fn iam_answer<O, E>(s: &Session, op: &str, answer: SdkResult<O, E>) -> Result<Output>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    aws_sdk_iam::Error: From<E>,
{
    answer.map(|_| Output::Nothing).map_err(|e| s.iam_error(op, e))
}

/// What an SDK call answers.
type SdkResult<O, E> = std::result::Result<O, SdkError<E, HttpResponse>>;

/// The key id at the end of a key ARN (or the argument itself when it is an id).
fn key_id(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Tags as KMS takes them.
fn kms_tags(op: &str, tags: &[(String, String)]) -> Result<Vec<aws_sdk_kms::types::Tag>> {
    tags.iter()
        .map(|(k, v)| aws_sdk_kms::types::Tag::builder().tag_key(k).tag_value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Failed(format!("{op}: {e}")))
}

/// Now, as RFC 3339.
pub fn now() -> String {
    rfc3339(&aws_smithy_types::DateTime::from(std::time::SystemTime::now()))
}

/// An AWS timestamp as RFC 3339.
pub fn rfc3339(t: &aws_smithy_types::DateTime) -> String {
    t.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default()
}

/// The pause between two attempts while waiting: 250 ms, doubling, at most a second by default,
/// so that a wait for propagation ends within about a second of the change becoming visible.
#[derive(Debug, Clone, Copy)]
pub struct PollDelay {
    next: Duration,
    most: Duration,
}

impl Default for PollDelay {
    fn default() -> Self {
        PollDelay { next: Duration::from_millis(250), most: Duration::from_secs(1) }
    }
}

impl PollDelay {
    /// The same, growing to at most `most` (for waits that take minutes, such as a StackSet
    /// operation, polled less often).
    pub fn up_to(most: Duration) -> PollDelay {
        PollDelay { most, ..PollDelay::default() }
    }

    /// The next pause.
    pub fn current(self) -> Duration {
        self.next
    }

    /// Sleeps the current pause, then lengthens the next one.
    pub async fn sleep(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.most);
    }
}

/// Bounded waiting for IAM changes to reach KMS: polls at most once a second until a deadline,
/// saying once what it waits for.
struct Waiting<'a> {
    until: Instant,
    printer: &'a Printer,
    delay: PollDelay,
    said: bool,
}

impl<'a> Waiting<'a> {
    fn new(p: Propagation<'a>) -> Waiting<'a> {
        Waiting { until: p.until, printer: p.printer, delay: PollDelay::default(), said: false }
    }

    /// Sleeps before another attempt; false once the deadline is past.
    async fn again(&mut self, operation: &str, error: &str) -> bool {
        if Instant::now() + self.delay.current() >= self.until {
            return false;
        }
        if !self.said {
            self.printer.note(format!(
                "waiting up to {} s for IAM propagation: {operation} does not see the new roles yet ({error})",
                self.until.saturating_duration_since(Instant::now()).as_secs()
            ));
            self.said = true;
        }
        self.delay.sleep().await;
        true
    }
}
