//! Evidence about this workload, for its own protocols.

use crate::bindings::lamina::attestation::attest;

/// The most user data evidence can carry.
pub const MAX_USER_DATA: usize = 64;

/// What the platform produced.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The evidence envelope (CBOR), for `lamina verify` or any relying party.
    pub envelope: Vec<u8>,
    /// `sim`, `tpm`, `sgx`, `tdx`, `snp` or `cca`.
    pub platform: String,
    /// Whether the platform is a hardware TEE.
    pub hardware_backed: bool,
    /// The verifier's signed attestation result (an EAR JWT), when the node has a verifier.
    pub result: Option<String>,
}

/// Why there is no evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestError {
    /// More than [`MAX_USER_DATA`] bytes of user data.
    UserDataTooLong(usize),
    /// The node cannot attest this workload; the text says why.
    Unavailable(String),
}

impl std::fmt::Display for AttestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttestError::UserDataTooLong(n) => write!(f, "{n} bytes of user data; the most is {MAX_USER_DATA}"),
            AttestError::Unavailable(why) => write!(f, "attestation unavailable: {why}"),
        }
    }
}

impl std::error::Error for AttestError {}

/// Evidence over this workload's claims and `user_data` (the claims' nonce, zero-padded to 8
/// bytes when shorter).
///
/// # Errors
/// [`AttestError`].
pub fn attest(user_data: &[u8]) -> Result<Evidence, AttestError> {
    match attest::attest(user_data) {
        Ok(e) => Ok(Evidence {
            envelope: e.envelope,
            platform: e.platform,
            hardware_backed: e.hardware_backed,
            result: e.attestation_result,
        }),
        Err(attest::Error::UserDataTooLong(n)) => Err(AttestError::UserDataTooLong(n as usize)),
        Err(attest::Error::Unavailable(why)) => Err(AttestError::Unavailable(why)),
    }
}

/// This workload's module hash (SHA-256 of its `.wasm`); empty when the run offers no
/// attestation.
pub fn module_hash() -> Vec<u8> {
    attest::module_hash()
}
