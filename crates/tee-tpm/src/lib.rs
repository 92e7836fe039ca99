//! Lamina's TPM 2.0 platform: evidence is a TPM quote, the sealing root is sealed to the TPM.
//!
//! - **Identity.** The endorsement key (EK) comes from the TCG EK Credential Profile template
//!   whose certificate the TPM holds in NV (ECC P-256 at 0x01c0000a preferred, then ECC P-384
//!   at 0x01c00016, then RSA 2048 at 0x01c00002). The attestation key (AK) is an ECC P-256
//!   restricted signing key, a primary key of the endorsement hierarchy (see [`TpmPlatform`]).
//! - **Enrolment.** A verifier makes a credential for the EK and the AK's name
//!   (`lamina_attest::tpm::credential`); [`TpmPlatform::activate_credential`] recovers its
//!   secret, which the TPM releases only if it holds both keys.
//! - **Evidence.** [`TpmPlatform::extend_module`] extends a module's hash into
//!   [`MODULE_PCR`]; [`Platform::evidence`](lamina_tee::Platform::evidence) quotes PCRs 0-7 and
//!   the module PCR (SHA-256 bank) with the report data as qualifying data, and reads their
//!   values. The format is in [`evidence`]; the endorsements are the EK certificate and any
//!   configured chain.
//! - **How 64 bytes of report data fit.** The qualifying data is a `TPM2B_DATA`, whose buffer
//!   holds a `TPMT_HA`: 2 bytes more than the largest digest the TPM implements. A TPM with
//!   SHA-512 (swtpm's libtpms, many firmware TPMs) takes all 64 bytes. One whose largest digest
//!   is SHA-384 or SHA-256 takes the first 48 or 32 bytes (a truncated SHA-512, still
//!   collision-resistant at 192 or 128 bits); the evidence always carries the full 64 bytes, and
//!   the verifier accepts them when the quote's qualifying data is their prefix of at least 32.
//! - **Sealing.** A random 32-byte root sealed under the storage root key to PCR 7
//!   ([`SEALING_PCRS`]), stored in `<state>/tpm/sealing-root.cbor` (mode 0600).
//! - **Tests.** [`swtpm::Swtpm`] runs a throwaway software TPM with EK certificates.
//!
//! Why PCR 23 for modules: the PC Client profile leaves PCR 23 to applications, and lets any
//! locality reset and extend it, so Lamina can start it afresh (zeros) and extend each module
//! it loads; PCR 16 is the debug PCR. Being resettable, it records what Lamina reports rather
//! than what firmware measured: it is as trustworthy as the OS that runs Lamina, which PCRs
//! 0-7 (and the policy over them) vouch for.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod device;
mod error;
pub mod evidence;
mod platform;
pub mod swtpm;
mod templates;

pub use device::QUOTED_PCRS;
pub use error::TpmError;
pub use platform::{SEALING_PCRS, TpmOptions, TpmPlatform};
pub use templates::EkKind;

/// The PCR (SHA-256 bank) module hashes are extended into.
pub const MODULE_PCR: u8 = 23;
