//! The one error type commands return, and the exit code each kind of error maps to.
//!
//! Exit codes (documented in the README and `--help`): 0 success; 1 a check failed, AWS refused or
//! failed, or something exists that kmsxacct did not create; 2 bad input (flags, names, profiles,
//! record, credentials); 130 interrupted.

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
    /// An AWS call failed.
    #[error("{what}: {detail}")]
    Aws {
        /// Which call, in which account.
        what: String,
        /// What AWS (or the network) said.
        detail: String,
    },
    /// AWS refused the call for lack of permission (AccessDenied). Right after IAM or KMS
    /// changes this can be propagation delay rather than a wrong policy.
    #[error("{what}: {detail}")]
    Denied {
        /// Which call, in which account.
        what: String,
        /// What AWS said.
        detail: String,
    },
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
            Error::Conflict(_) | Error::Aws { .. } | Error::Denied { .. } | Error::Failed(_) => {
                EXIT_FAILED
            }
            Error::Interrupted => EXIT_INTERRUPTED,
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
