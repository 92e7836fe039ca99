//! Lamina's verifier: appraises evidence from every platform against a policy.
//!
//! Pure by design: no hardware access and no network at verification time, so the control plane
//! and any relying party can link it. Every platform verifier fills one [`Appraisal`]: the
//! measurements and report data it read, and a list of named [`Check`]s, each passed or failed
//! with a detail. A rejection always names the check or policy rule that failed.
//!
//! - [`sim`]: Lamina's development platform (rejected unless the policy allows sim);
//! - [`dcap`]: Intel SGX and TDX quotes, offline from collateral files;
//! - [`snp`]: AMD SEV-SNP reports (VCEK and VLEK chains, TCB, debug policy);
//! - [`tpm`]: TPM 2.0 quotes (AK signature, qualifying data, PCR digest, EK chain);
//! - [`cca`]: Arm CCA tokens;
//! - [`policy`]: the operator's TOML policy of reference values;
//! - [`Verifier`]: Lamina envelopes: evidence, claims binding, nonce, freshness, policy;
//! - [`results`]: signed EAR attestation results;
//! - [`ratls`]: attested TLS certificates and rustls verifiers.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod appraisal;
#[cfg(feature = "cca")]
pub mod cca;
mod certs;
pub use certs::{der_certificates, is_self_signed};
pub mod dcap;
pub mod policy;
pub mod ratls;
#[cfg(feature = "ear")]
pub mod results;
pub mod sim;
pub mod snp;
pub mod tpm;
mod verifier;

pub use appraisal::{Appraisal, Check, Inputs, TrustAnchors};
pub use policy::{Policy, PolicyError};
#[cfg(feature = "ear")]
pub use results::{ResultError, issue_ear};
pub use verifier::{Expect, MAX_CLOCK_SKEW, NO_POLICY, Verifier};
