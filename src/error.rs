//! The one error type commands return, and the exit code each kind of error maps to.
//!
//! Exit codes (documented in the README and `--help`): 0 success; 1 a check failed, AWS refused or
//! failed, or something exists that kmsxacct did not create; 2 bad input (flags, names, profiles,
//! record, credentials); 130 interrupted.

use crate::aws::error::{AwsError, AwsErrorKind};
use crate::names::InputError;
use crate::record::RecordError;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for a failed check, an AWS failure or a refusal to touch what is not ours.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for bad input.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user gave something we cannot use; nothing was changed.
    #[error("{0}")]
    Input(String),
    /// Something exists that kmsxacct did not create, or is in a state we will not touch.
    #[error("{0}")]
    Conflict(String),
    /// An AWS call failed; its kind decides the exit code.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A check did not pass (verify).
    #[error("{0}")]
    Failed(String),
    /// The deployment record could not be used.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Ctrl-C.
    #[error("interrupted; run the same command again to converge")]
    Interrupted,
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => EXIT_BAD_INPUT,
            Error::Record(RecordError::Missing(_) | RecordError::Malformed { .. }) => {
                EXIT_BAD_INPUT
            }
            Error::Record(RecordError::Io { .. }) => EXIT_FAILED,
            Error::Aws(e) if e.kind == AwsErrorKind::Credentials => EXIT_BAD_INPUT,
            Error::Conflict(_) | Error::Aws(_) | Error::Failed(_) => EXIT_FAILED,
            Error::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

impl Error {
    /// Whether AWS refused a call for lack of permission (AccessDenied). Right after IAM or KMS
    /// changes this can be propagation delay rather than a wrong policy.
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::Aws(e) if e.is_denied())
    }

    /// A "not found" AWS answer as `Ok(None)`, any other error as it is: for reads of what may
    /// not exist.
    pub fn none_if_not_found<T>(self) -> Result<Option<T>> {
        match self {
            Error::Aws(e) if e.kind == AwsErrorKind::NotFound => Ok(None),
            e => Err(e),
        }
    }
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Self {
        Error::Input(e.0)
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
