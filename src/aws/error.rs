//! AWS failures, classified once from the SDK's typed errors into the few kinds a command acts
//! on, keeping the service's own code and message for the user.
//!
//! Codes are compared as text only where the service model has no typed error for them:
//! AccessDenied, throttling (the SDK's own list) and rejected credentials.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What kind of failure an AWS call met; each command decides from this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// AccessDenied: no policy allows the call (or a change has not propagated yet).
    Denied,
    /// The named key, alias, role or policy does not exist.
    NotFound,
    /// The alias or role to create exists already.
    AlreadyExists,
    /// The resource is in a state that forbids the call (e.g. a key pending deletion).
    Conflict,
    /// The service asked to slow down.
    Throttled,
    /// A service quota is used up (too many keys, aliases or roles).
    Quota,
    /// A policy document was refused; for a key policy often because it names principals IAM
    /// does not show KMS yet.
    MalformedPolicy,
    /// The service refused the request's input.
    InvalidInput,
    /// The service failed (5xx, internal errors, dependency time-outs).
    ServiceFault,
    /// No answer: the endpoint could not be reached, or the call timed out.
    Transport,
    /// The profile has no usable credentials, or AWS rejected them (bad input, exit 2).
    Credentials,
}

/// One failed AWS call: what was asked, in which account side, and what came back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {detail}")]
pub struct AwsError {
    /// How the command should treat it.
    pub kind: AwsErrorKind,
    /// The call and where it was made, e.g. `kms:CreateAlias in the owner side (profile a)`.
    pub context: String,
    /// What AWS (or the network) said, one line: `Code: message` for a service answer.
    pub detail: String,
}

impl AwsError {
    /// Whether AWS refused the call for lack of permission.
    pub fn is_denied(&self) -> bool {
        self.kind == AwsErrorKind::Denied
    }
}

/// A service's error enum, mapped to [`AwsErrorKind`] by its typed variants.
pub trait ServiceError: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {
    /// The kind of a modelled error; None for one the service model does not name.
    fn typed_kind(&self) -> Option<AwsErrorKind>;
}

impl ServiceError for aws_sdk_kms::Error {
    fn typed_kind(&self) -> Option<AwsErrorKind> {
        use AwsErrorKind::*;
        use aws_sdk_kms::Error as E;
        Some(match self {
            E::NotFoundException(_) => NotFound,
            E::AlreadyExistsException(_) => AlreadyExists,
            E::KmsInvalidStateException(_) | E::DisabledException(_) | E::ConflictException(_) => {
                Conflict
            }
            E::LimitExceededException(_) => Quota,
            E::MalformedPolicyDocumentException(_) => MalformedPolicy,
            E::KmsInternalException(_)
            | E::DependencyTimeoutException(_)
            | E::KeyUnavailableException(_) => ServiceFault,
            E::InvalidArnException(_)
            | E::InvalidAliasNameException(_)
            | E::InvalidKeyUsageException(_)
            | E::InvalidCiphertextException(_)
            | E::IncorrectKeyException(_)
            | E::InvalidMarkerException(_)
            | E::TagException(_)
            | E::UnsupportedOperationException(_) => InvalidInput,
            _ => return None,
        })
    }
}

impl ServiceError for aws_sdk_iam::Error {
    fn typed_kind(&self) -> Option<AwsErrorKind> {
        use AwsErrorKind::*;
        use aws_sdk_iam::Error as E;
        Some(match self {
            E::NoSuchEntityException(_) => NotFound,
            E::EntityAlreadyExistsException(_) => AlreadyExists,
            E::ConcurrentModificationException(_)
            | E::DeleteConflictException(_)
            | E::EntityTemporarilyUnmodifiableException(_)
            | E::UnmodifiableEntityException(_) => Conflict,
            E::LimitExceededException(_) => Quota,
            E::MalformedPolicyDocumentException(_) => MalformedPolicy,
            E::ServiceFailureException(_) => ServiceFault,
            E::InvalidInputException(_) => InvalidInput,
            _ => return None,
        })
    }
}

impl ServiceError for aws_sdk_sts::Error {
    fn typed_kind(&self) -> Option<AwsErrorKind> {
        use AwsErrorKind::*;
        use aws_sdk_sts::Error as E;
        Some(match self {
            E::ExpiredTokenException(_) => Credentials,
            E::MalformedPolicyDocumentException(_) | E::PackedPolicyTooLargeException(_) => {
                MalformedPolicy
            }
            E::RegionDisabledException(_) => InvalidInput,
            _ => return None,
        })
    }
}

impl ServiceError for aws_sdk_cloudformation::Error {
    fn typed_kind(&self) -> Option<AwsErrorKind> {
        use AwsErrorKind::*;
        use aws_sdk_cloudformation::Error as E;
        Some(match self {
            E::StackSetNotFoundException(_)
            | E::StackInstanceNotFoundException(_)
            | E::OperationNotFoundException(_) => NotFound,
            E::NameAlreadyExistsException(_)
            | E::OperationIdAlreadyExistsException(_)
            | E::AlreadyExistsException(_) => AlreadyExists,
            E::OperationInProgressException(_)
            | E::StaleRequestException(_)
            | E::StackSetNotEmptyException(_)
            | E::ConcurrentResourcesLimitExceededException(_) => Conflict,
            E::LimitExceededException(_) => Quota,
            E::InvalidOperationException(_) | E::CreatedButModifiedException(_) => InvalidInput,
            _ => return None,
        })
    }
}

/// Codes AWS answers for credentials it does not accept.
const REJECTED_CREDENTIALS: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
];

/// Where a call was made, for the messages.
pub struct CallSite<'a> {
    /// The call, e.g. `kms:CreateAlias`.
    pub operation: &'a str,
    /// `owner` or `user`.
    pub side: &'a str,
    /// The AWS profile.
    pub profile: &'a str,
    /// The endpoint, when one is configured (LocalStack, a proxy).
    pub endpoint: Option<&'a str>,
}

/// Classifies an SDK error through the service's typed error `S`. The whole error chain is
/// logged at info level (`-v`); what the user reads is one plain sentence.
pub fn classify<S, E>(site: &CallSite<'_>, err: SdkError<E, HttpResponse>) -> AwsError
where
    S: ServiceError + From<E>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    tracing::info!(operation = site.operation, side = site.side, error = %DisplayErrorContext(&err), "aws call failed");
    let context =
        format!("{} in the {} side (profile {})", site.operation, site.side, site.profile);
    if let Some(cause) = credentials_cause(&err) {
        return AwsError {
            kind: AwsErrorKind::Credentials,
            context: format!("profile '{}' has no usable credentials", site.profile),
            detail: cause,
        };
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (kind, detail) = match err {
        SdkError::ServiceError(service) => {
            let e = S::from(service.into_err());
            let code = e.code().unwrap_or("UnknownError").to_string();
            let kind = kind_of(&e, &code, status);
            let mut detail = format!("{code}: {}", e.message().unwrap_or(""));
            if kind == AwsErrorKind::Quota {
                detail = format!("{} ({detail})", quota_name(site.operation));
            }
            (kind, detail)
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => (
            AwsErrorKind::Transport,
            format!(
                "cannot reach the AWS endpoint{}: {}",
                site.endpoint.map(|e| format!(" {e}")).unwrap_or_default(),
                plain_chain(&err)
            ),
        ),
        other => (AwsErrorKind::Transport, plain_chain(&other)),
    };
    if kind == AwsErrorKind::Credentials {
        return AwsError {
            kind,
            context: format!("the credentials of profile '{}' were rejected", site.profile),
            detail,
        };
    }
    AwsError { kind, context, detail }
}

/// The kind of a service answer: typed first, then the codes no model names, then the status.
fn kind_of<S: ServiceError>(e: &S, code: &str, status: Option<u16>) -> AwsErrorKind {
    if let Some(kind) = e.typed_kind() {
        return kind;
    }
    if code.starts_with("AccessDenied") {
        AwsErrorKind::Denied
    } else if aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code) {
        AwsErrorKind::Throttled
    } else if REJECTED_CREDENTIALS.contains(&code) {
        AwsErrorKind::Credentials
    } else if status.is_some_and(|s| s >= 500) {
        AwsErrorKind::ServiceFault
    } else {
        AwsErrorKind::InvalidInput
    }
}

/// Which quota an operation's "limit exceeded" answer is about, as AWS documents them.
fn quota_name(operation: &str) -> String {
    let which = match operation {
        "kms:CreateKey" | "kms:ReplicateKey" => "the KMS quota of keys per Region",
        "kms:CreateAlias" => "the KMS quota of aliases per Region",
        o if o.starts_with("kms:") => "a KMS quota (request rate, keys or aliases per Region)",
        "iam:CreateRole" => "the IAM quota of roles per account",
        "iam:PutRolePolicy" => "the IAM quota of inline policy size per role",
        o if o.starts_with("cloudformation:") => {
            "a CloudFormation StackSets quota (stack sets, instances or concurrent operations)"
        }
        _ => "an AWS quota",
    };
    format!(
        "{which} is used up: waiting will not help; raise it in Service Quotas or remove unused resources"
    )
}

/// The first line of a credentials-provider failure in the chain, if that is the cause.
fn credentials_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>().is_some() {
            return Some(e.to_string().lines().next().unwrap_or_default().to_string());
        }
        source = e.source();
    }
    None
}

/// The messages of an error and its sources, joined with `: `, each said once: no Debug dump.
pub fn plain_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        let text = text.lines().next().unwrap_or_default().trim().to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_map_to_their_kind() {
        let e = aws_sdk_kms::Error::AlreadyExistsException(
            aws_sdk_kms::types::error::AlreadyExistsException::builder().build(),
        );
        assert_eq!(e.typed_kind(), Some(AwsErrorKind::AlreadyExists));
        let e = aws_sdk_iam::Error::NoSuchEntityException(
            aws_sdk_iam::types::error::NoSuchEntityException::builder().build(),
        );
        assert_eq!(e.typed_kind(), Some(AwsErrorKind::NotFound));
        let e = aws_sdk_kms::Error::LimitExceededException(
            aws_sdk_kms::types::error::LimitExceededException::builder().build(),
        );
        assert_eq!(e.typed_kind(), Some(AwsErrorKind::Quota));
    }

    #[test]
    fn unmodelled_codes_fall_back_to_the_sdk_lists_and_status() {
        let unhandled = |code: &str| {
            aws_sdk_kms::Error::from(
                aws_sdk_kms::operation::describe_key::DescribeKeyError::generic(
                    aws_smithy_types::error::ErrorMetadata::builder().code(code).build(),
                ),
            )
        };
        let kind = |code: &str, status| kind_of(&unhandled(code), code, status);
        assert_eq!(kind("AccessDeniedException", Some(400)), AwsErrorKind::Denied);
        assert_eq!(kind("ThrottlingException", Some(400)), AwsErrorKind::Throttled);
        assert_eq!(kind("ExpiredToken", Some(400)), AwsErrorKind::Credentials);
        assert_eq!(kind("InternalFailure", Some(500)), AwsErrorKind::ServiceFault);
        assert_eq!(kind("Whatever", Some(400)), AwsErrorKind::InvalidInput);
    }

    #[test]
    fn a_chain_is_one_line_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("dispatch failure")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        ));
        assert_eq!(plain_chain(&e), "dispatch failure: Connection refused (os error 111)");
    }
}
