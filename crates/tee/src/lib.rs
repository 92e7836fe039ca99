//! Lamina's platform layer: the one place that produces evidence.
//!
//! A [`Platform`] binds caller-given 64-byte report data into its native evidence and offers a
//! sealing root. [`attest`] turns [`Claims`](lamina_types::Claims) into an [`Envelope`]: the
//! claims' domain-separated hash is the report data, so the evidence proves which module ran on
//! which platform with which key, fresh for which nonce. Verification lives elsewhere (the
//! pure `attest` crate), so that relying parties never link hardware code.
//!
//! Backends: [`sim::SimPlatform`] (development; no hardware protection, and its evidence says
//! so); [`tsm::TsmPlatform`] (Linux configfs-tsm: TDX, SEV-SNP, CCA guests);
//! [`sgx::SgxPlatform`] (SGX enclaves under Gramine). [`detect::detect`] says which of them this
//! machine can use, and why.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod counter;
pub mod detect;
mod platform;
pub mod sgx;
pub mod sim;
pub mod tsm;

pub use counter::{CounterId, MonotonicCounter};
pub use detect::{DetectOptions, Detection, detect};
pub use lamina_types::{Envelope, EnvelopeError, MAX_ENVELOPE_LEN};
pub use platform::{Evidence, Platform, PlatformInfo, SealingRoot, TeeError, attest};
pub use sgx::SgxPlatform;
pub use tsm::TsmPlatform;

/// SHA-256 of the running program's binary: what claims call the runtime measurement. Read
/// once per process (the binary does not change under a running process).
///
/// # Errors
/// When the running binary cannot be found or read.
pub fn runtime_measurement() -> std::io::Result<Vec<u8>> {
    use sha2::Digest as _;
    static MEASURED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if let Some(m) = MEASURED.get() {
        return Ok(m.clone());
    }
    let bytes = std::fs::read(std::env::current_exe()?)?;
    Ok(MEASURED.get_or_init(|| sha2::Sha256::digest(&bytes).to_vec()).clone())
}
