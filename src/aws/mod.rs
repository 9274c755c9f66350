//! Connections to AWS: one [`Session`] per account side, built from an AWS profile.
//!
//! Profiles resolve through the standard aws-config chain (config and credentials files, SSO,
//! `credential_process`, `role_arn` chains, environment). The endpoint comes from the profile's
//! `endpoint_url` or `AWS_ENDPOINT_URL`, which is how LocalStack is reached: there is no special case.

pub mod calls;
pub mod error;
pub mod http;
pub mod quota;

use crate::error::{Error, Result};
use crate::names::{AccountId, Partition, Region};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use calls::{CallInterceptor, CallLog};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Attempts per AWS call (the first and two retries), with the SDK's standard backoff: throttling,
/// 5xx answers and transient network errors are retried.
pub const MAX_ATTEMPTS: u32 = 3;

/// The items of a paginated listing, as the SDK's paginators stream them.
pub type Listing<T, E> = aws_smithy_async::future::pagination_stream::PaginationStream<
    std::result::Result<T, SdkError<E, HttpResponse>>,
>;

/// Which account a session acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The account that owns the key.
    Owner,
    /// The account that uses the key through a role.
    User,
    /// The account that administers the StackSet rolling the user roles out (`--stackset-admin`).
    Admin,
}

impl Side {
    /// `owner` or `user`.
    pub fn label(self) -> &'static str {
        match self {
            Side::Owner => "owner",
            Side::User => "user",
            Side::Admin => "admin",
        }
    }
}

/// One account side: its profile, its account id and its service clients.
#[derive(Debug, Clone)]
pub struct Session {
    /// Owner or user.
    pub side: Side,
    /// The AWS profile it was built from.
    pub profile: String,
    /// The key's region, where every KMS call goes (STS and IAM use the profile's own).
    pub region: Region,
    /// Whether this session is the owner's in a replica's region (see [`Session::in_region`]).
    pub replica_region: bool,
    /// The account, once `sts:GetCallerIdentity` has answered (see [`Session::identify`]).
    account: Arc<OnceLock<AccountId>>,
    /// The ARN partition, learnt with the account.
    partition: Arc<OnceLock<Partition>>,
    /// KMS client.
    pub kms: aws_sdk_kms::Client,
    /// IAM client.
    pub iam: aws_sdk_iam::Client,
    /// STS client.
    pub sts: aws_sdk_sts::Client,
    /// CloudFormation client, built on first use (only a StackSet administrator needs one).
    cfn: Arc<OnceLock<aws_sdk_cloudformation::Client>>,
    config: aws_config::SdkConfig,
    interceptor: CallInterceptor,
}

/// Checks that every named profile exists in the AWS config or credentials file, so that a typo
/// is bad input (exit 2) rather than a confusing credentials error later.
pub async fn check_profiles(names: &[&str]) -> Result<()> {
    use aws_types::os_shim_internal::{Env, Fs};
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let set = aws_config::profile::load(&Fs::real(), &Env::real(), &files, None)
        .await
        .map_err(|e| Error::Input(format!("cannot read the AWS config files: {e}")))?;
    for name in names {
        if set.get_profile(name).is_none() {
            let mut known: Vec<&str> = set.profiles().collect();
            known.sort();
            return Err(Error::Input(format!(
                "unknown profile '{name}' (profiles in the AWS config and credentials files: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
    }
    Ok(())
}

impl Session {
    /// Loads the profile and builds the clients on `http` (see [`http::client`]); no network
    /// call. `region` is the key's region (default: the profile's). Call [`Session::identify`] to
    /// learn the account.
    pub async fn open(
        side: Side,
        profile: &str,
        region: Option<&Region>,
        http: &SharedHttpClient,
        log: &CallLog,
    ) -> Result<Session> {
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http.clone())
            .profile_name(profile)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(8))
                    .operation_timeout(Duration::from_secs(25))
                    .build(),
            );
        let config = loader.load().await;
        let region: Region = match (region, config.region()) {
            (Some(key_region), _) => key_region.clone(),
            (None, Some(r)) => r.as_ref().parse()?,
            (None, None) => {
                return Err(Error::Input(format!(
                    "profile '{profile}' sets no region: add `region = ...` to it or pass --region"
                )));
            }
        };
        // STS and IAM answer in the profile's own region (an account may not have enabled the
        // key's region); only KMS calls go to the key's region.
        let key_region = region.clone();
        let config = match config.region() {
            Some(_) => config,
            None => config.to_builder().region(aws_config::Region::new(region.to_string())).build(),
        };
        let interceptor = CallInterceptor {
            log: log.clone(),
            side: side.label(),
            account: Arc::new(OnceLock::new()),
        };
        Ok(Session {
            side,
            profile: profile.to_string(),
            region,
            replica_region: false,
            account: Arc::new(OnceLock::new()),
            partition: Arc::new(OnceLock::new()),
            kms: kms_client(&config, &interceptor, &key_region),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&config)
                    .interceptor(interceptor.clone())
                    .retry_classifier(quota::QuotaIsFinal)
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&config)
                    .interceptor(interceptor.clone())
                    .build(),
            ),
            cfn: Arc::default(),
            config,
            interceptor,
        })
    }

    /// The same account and credentials, with KMS calls going to `region` (a replica's).
    pub fn in_region(&self, region: &Region) -> Session {
        Session {
            region: region.clone(),
            replica_region: true,
            kms: kms_client(&self.config, &self.interceptor, region),
            cfn: Arc::default(),
            ..self.clone()
        }
    }

    /// Asks STS which account the profile is in, and remembers it.
    pub async fn identify(&self) -> Result<AccountId> {
        let identity = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| self.sts_error("sts:GetCallerIdentity", e))?;
        let text = identity.account().unwrap_or_default();
        let account: AccountId = text.parse().map_err(|_| {
            Error::Failed(format!(
                "profile '{}': STS answered an account id that is not 12 digits: '{text}'",
                self.profile
            ))
        })?;
        self.learn_account(account.clone(), identity.arn().unwrap_or_default());
        Ok(account)
    }

    /// The account, from the ARN of a resource this session read in its own account (a key an
    /// alias resolved to, a role), else asked of STS: one call fewer on the common path.
    pub async fn account_from(&self, arn: Option<&str>) -> Result<AccountId> {
        let known = arn
            .and_then(crate::policy::matching::Arn::parse)
            .and_then(|a| a.account.parse::<AccountId>().ok());
        match known {
            Some(account) => {
                self.learn_account(account.clone(), arn.unwrap_or_default());
                Ok(account)
            }
            None => self.identify().await,
        }
    }

    /// Remembers the account, and the partition of the ARN it was read from.
    fn learn_account(&self, account: AccountId, arn: &str) {
        let _ = self.interceptor.account.set(account.to_string());
        let _ = self.account.set(account);
        if let Some(partition) = Partition::of_arn(arn) {
            let _ = self.partition.set(partition);
        }
    }

    /// The ARN partition of the account, once learnt (`aws` before).
    pub fn partition(&self) -> Partition {
        self.partition.get().cloned().unwrap_or_default()
    }

    /// The account, or `unknown` before [`Session::identify`] has answered.
    pub fn account(&self) -> String {
        self.account.get().map(|a| a.to_string()).unwrap_or_else(|| "unknown".into())
    }

    /// A KMS client in this session's region that acts with other credentials (an assumed role's).
    pub fn kms_with_credentials(
        &self,
        credentials: aws_credential_types::Credentials,
    ) -> aws_sdk_kms::Client {
        let config = kms_config(&self.config, &self.interceptor, &self.region);
        aws_sdk_kms::Client::from_conf(config.credentials_provider(credentials).build())
    }

    /// The CloudFormation client, in the key's region (where a StackSet administers its
    /// instances).
    pub fn cfn(&self) -> &aws_sdk_cloudformation::Client {
        self.cfn.get_or_init(|| {
            aws_sdk_cloudformation::Client::from_conf(
                aws_sdk_cloudformation::config::Builder::from(&self.config)
                    .region(aws_config::Region::new(self.region.to_string()))
                    .interceptor(self.interceptor.clone())
                    .build(),
            )
        })
    }

    /// An STS client that acts with other credentials (an assumed role's), for role chaining.
    pub fn sts_with_credentials(
        &self,
        credentials: aws_credential_types::Credentials,
    ) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.config)
                .interceptor(self.interceptor.clone())
                .credentials_provider(credentials)
                .build(),
        )
    }

    /// Classifies a failed KMS call `operation` (e.g. `kms:CreateAlias`) of this session.
    pub fn kms_error<E>(&self, operation: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        aws_sdk_kms::Error: From<E>,
    {
        error::classify::<aws_sdk_kms::Error, E>(&self.site(operation), err).into()
    }

    /// Classifies a failed IAM call of this session (see [`Session::kms_error`]).
    pub fn iam_error<E>(&self, operation: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        aws_sdk_iam::Error: From<E>,
    {
        error::classify::<aws_sdk_iam::Error, E>(&self.site(operation), err).into()
    }

    /// Classifies a failed STS call of this session (see [`Session::kms_error`]).
    pub fn sts_error<E>(&self, operation: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        aws_sdk_sts::Error: From<E>,
    {
        error::classify::<aws_sdk_sts::Error, E>(&self.site(operation), err).into()
    }

    /// Classifies a failed CloudFormation call of this session (see [`Session::kms_error`]).
    pub fn cfn_error<E>(&self, operation: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        aws_sdk_cloudformation::Error: From<E>,
    {
        error::classify::<aws_sdk_cloudformation::Error, E>(&self.site(operation), err).into()
    }

    /// Every item of a KMS listing (all pages), or the first error classified.
    pub async fn kms_all<T, E>(&self, operation: &str, items: Listing<T, E>) -> Result<Vec<T>>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        aws_sdk_kms::Error: From<E>,
    {
        items.try_collect().await.map_err(|e| self.kms_error(operation, e))
    }

    /// Every item of an IAM listing (all pages), or the first error classified.
    pub async fn iam_all<T, E>(&self, operation: &str, items: Listing<T, E>) -> Result<Vec<T>>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        aws_sdk_iam::Error: From<E>,
    {
        items.try_collect().await.map_err(|e| self.iam_error(operation, e))
    }

    /// Every item of a CloudFormation listing (all pages), or the first error classified.
    pub async fn cfn_all<T, E>(&self, operation: &str, items: Listing<T, E>) -> Result<Vec<T>>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        aws_sdk_cloudformation::Error: From<E>,
    {
        items.try_collect().await.map_err(|e| self.cfn_error(operation, e))
    }

    fn site<'a>(&'a self, operation: &'a str) -> error::CallSite<'a> {
        error::CallSite {
            operation,
            side: self.side.label(),
            profile: &self.profile,
            endpoint: self.config.endpoint_url(),
        }
    }
}

/// A KMS client in the key's region.
fn kms_client(
    config: &aws_config::SdkConfig,
    interceptor: &CallInterceptor,
    region: &Region,
) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(kms_config(config, interceptor, region).build())
}

fn kms_config(
    config: &aws_config::SdkConfig,
    interceptor: &CallInterceptor,
    region: &Region,
) -> aws_sdk_kms::config::Builder {
    aws_sdk_kms::config::Builder::from(config)
        .region(aws_config::Region::new(region.to_string()))
        .interceptor(interceptor.clone())
        .retry_classifier(quota::QuotaIsFinal)
}
