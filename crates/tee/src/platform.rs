//! The platform interface every backend implements.

use lamina_types::{Claims, PlatformKind};
use zeroize::Zeroizing;

use crate::Envelope;
use crate::counter::{CounterId, MonotonicCounter};

/// A platform's native evidence for some report data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The native bytes: a quote, a report, a token, a signature.
    pub native: Vec<u8>,
    /// Endorsements a verifier needs besides its trust anchors (certificates, keys).
    pub endorsements: Vec<Vec<u8>>,
}

/// What a platform says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformInfo {
    /// Which kind.
    pub kind: PlatformKind,
    /// One line for people: what protects workloads here, and how strongly.
    pub description: String,
    /// Whether a hardware root protects keys and evidence (false for `sim`).
    pub hardware_backed: bool,
}

/// The root of a platform's sealing key hierarchy: 32 secret bytes, wiped on drop.
pub struct SealingRoot(pub Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealingRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingRoot(..)")
    }
}

/// Why a platform could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TeeError {
    /// The platform's state could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Stored state is damaged or was tampered with.
    #[error("the platform state in {} is damaged: {reason}; remove it to start afresh (its keys are lost)", path.display())]
    CorruptState {
        /// The file concerned.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The claims could not be encoded.
    #[error(transparent)]
    Claims(#[from] lamina_types::ClaimsError),
    /// The platform's interface is not present on this machine.
    #[error("{platform} not found at {}; {hint}", path.display())]
    NotFound {
        /// The interface, e.g. `configfs-tsm`.
        platform: &'static str,
        /// Where it was looked for.
        path: std::path::PathBuf,
        /// What its absence probably means.
        hint: &'static str,
    },
    /// The platform's interface answered, but not as it should.
    #[error("{platform} at {}: {reason}", path.display())]
    Device {
        /// The interface, e.g. `configfs-tsm`.
        platform: &'static str,
        /// The file concerned.
        path: std::path::PathBuf,
        /// What is wrong, and what to do where it helps.
        reason: String,
    },
    /// The platform cannot do this at all.
    #[error("{platform} has no {what}: {hint}")]
    Unsupported {
        /// The platform, e.g. `tdx`.
        platform: &'static str,
        /// What it lacks, e.g. `hardware sealing key`.
        what: &'static str,
        /// What provides it instead.
        hint: &'static str,
    },
}

/// A source of evidence and sealing keys.
pub trait Platform {
    /// What this platform is.
    fn info(&self) -> PlatformInfo;

    /// Native evidence binding exactly these 64 bytes of report data.
    ///
    /// # Errors
    /// When the platform cannot produce evidence now.
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, TeeError>;

    /// The root of the sealing key hierarchy on this platform.
    ///
    /// # Errors
    /// When the platform has no sealing key or cannot reach it.
    fn sealing_root(&self) -> Result<SealingRoot, TeeError>;

    /// Creates a new monotonic counter, starting at zero or above, and says how to find it
    /// again.
    ///
    /// # Errors
    /// [`TeeError::Unsupported`] when the platform keeps no counters (the control plane keeps
    /// them instead), or when it cannot create one now.
    fn create_counter(&self) -> Result<(CounterId, Box<dyn MonotonicCounter>), TeeError> {
        Err(TeeError::Unsupported {
            platform: self.info().kind.name(),
            what: "monotonic counter",
            hint: "run with --platform tpm for hardware rollback protection, or sim for development",
        })
    }

    /// Opens a counter made by [`Platform::create_counter`].
    ///
    /// # Errors
    /// When the counter does not exist on this platform, or as [`Platform::create_counter`].
    fn open_counter(&self, id: &CounterId) -> Result<Box<dyn MonotonicCounter>, TeeError> {
        let _ = id;
        self.create_counter().map(|(_, counter)| counter)
    }
}

/// Produces an envelope for the claims: their report data, bound into the platform's evidence.
///
/// # Errors
/// When the claims are invalid (nonce length) or the platform fails.
pub fn attest(platform: &dyn Platform, claims: &Claims) -> Result<Envelope, TeeError> {
    let kind = platform.info().kind;
    if claims.platform != kind {
        return Err(TeeError::Claims(lamina_types::ClaimsError::Malformed {
            name: "platform",
            reason: format!("the claims say {} but the platform is {kind}", claims.platform),
        }));
    }
    let encoded = claims.to_cbor()?;
    let evidence = platform.evidence(&lamina_types::report_data_of(&encoded))?;
    Ok(Envelope { platform: kind, claims: encoded, evidence: evidence.native, endorsements: evidence.endorsements })
}

/// Checks that a backend's interface directory exists: [`TeeError::NotFound`] with `hint` when
/// it does not, [`TeeError::Device`] when it is not a directory.
pub(crate) fn require_dir(platform: &'static str, root: &std::path::Path, hint: &'static str) -> Result<(), TeeError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(TeeError::Device { platform, path: root.into(), reason: "it is not a directory".into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(TeeError::NotFound { platform, path: root.into(), hint })
        }
        Err(source) => Err(TeeError::Io { action: "open", path: root.into(), source }),
    }
}
