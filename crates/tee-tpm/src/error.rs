//! Why the TPM platform could not do what was asked.

use std::path::PathBuf;

use lamina_tee::TeeError;
use tss_esapi::constants::Tss2ResponseCodeKind;

/// A TPM platform error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TpmError {
    /// The TCTI string does not parse, or the TPM cannot be reached through it.
    #[error("cannot reach the TPM through {tcti:?}: {source}")]
    Connect {
        /// The TCTI string.
        tcti: String,
        /// The TSS's error.
        source: tss_esapi::Error,
    },
    /// A TPM command failed.
    #[error("the TPM failed to {action}: {source}")]
    Command {
        /// What was being done.
        action: &'static str,
        /// The TSS's or TPM's error.
        source: tss_esapi::Error,
    },
    /// The endorsement key cannot be found or does not match its certificate.
    #[error("the TPM's endorsement key: {0}")]
    Ek(String),
    /// The TPM answered something Lamina does not expect.
    #[error("unexpected answer from the TPM: {0}")]
    Unexpected(String),
    /// PCRs kept changing between the quote and reading their values.
    #[error("the quoted PCRs kept changing while quoting; try again")]
    PcrsChanging,
    /// The report data does not fit the TPM's qualifying data.
    #[error("this TPM's qualifying data holds {capacity} bytes; Lamina binds at least 32")]
    QualifyingDataTooSmall {
        /// What the TPM holds.
        capacity: usize,
    },
    /// The sealing root is sealed to PCR values the platform no longer has.
    #[error(
        "the sealing root in {} is sealed to other values of PCRs {pcrs:?} (a firmware, boot or Secure Boot change?); it cannot be unsealed in this state",
        path.display()
    )]
    PolicyMismatch {
        /// The sealed blob.
        path: PathBuf,
        /// The PCRs it is sealed to.
        pcrs: Vec<u8>,
    },
    /// A state file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A state file is damaged.
    #[error("the TPM state in {} is damaged: {reason}", path.display())]
    CorruptState {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The thread that owns the TPM connection is gone (it panicked).
    #[error("the TPM connection's thread has stopped")]
    WorkerGone,
}

impl TpmError {
    pub(crate) fn command(action: &'static str) -> impl FnOnce(tss_esapi::Error) -> Self {
        move |source| Self::Command { action, source }
    }

    /// The kind of TPM response code, for a TPM command that failed.
    pub(crate) fn response_kind(&self) -> Option<Tss2ResponseCodeKind> {
        match self {
            Self::Command { source: tss_esapi::Error::Tss2Error(rc), .. } => rc.kind(),
            _ => None,
        }
    }

    /// As the platform layer's error; `tcti` says which TPM.
    pub(crate) fn into_tee(self, tcti: &str) -> TeeError {
        match self {
            Self::Io { action, path, source } => TeeError::Io { action, path, source },
            Self::CorruptState { path, reason } => TeeError::CorruptState { path, reason },
            // The platform layer has no variant for device errors yet; an I/O error naming the
            // TCTI keeps the message whole.
            other => TeeError::Io { action: "use the TPM at", path: tcti.into(), source: std::io::Error::other(other) },
        }
    }
}
