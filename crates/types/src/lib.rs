//! Lamina's shared data model.
//!
//! Everything here is plain data with parsing and formatting: module identities, byte sizes,
//! durations, target triples, device profiles, attestation claims, the evidence envelope and the sim
//! evidence format. No IO happens in this crate, so every other
//! crate (including the pure verifier) can depend on it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cbor;
mod chain;
mod claims;
pub mod deploy;
mod envelope;
mod hash;
pub mod ingress;
mod mount;
mod names;
pub mod network;
mod profile;
pub mod sim_evidence;
mod size;
mod target;
mod token;
pub mod topic;
pub mod tpm_evidence;

pub use chain::error_chain;
pub use claims::{Claims, ClaimsError, EAT_PROFILE, MAX_CLAIMS_LEN, PlatformKind, REPORT_DATA_TAG, report_data_of};
pub use deploy::{Constraints, Deployment, ManifestError, ModuleRef, WorkloadSpec};
pub use envelope::{Envelope, EnvelopeError, MAX_ENVELOPE_LEN};
pub use hash::{ModuleHash, ParseHashError};
pub use mount::{DirMount, ParseMountError};
pub use names::{SecretName, SecretNameError, WorkloadName, WorkloadNameError};
pub use network::{NetworkRules, OutboundRule, RuleError, SocketProtocol};
pub use profile::{ParseProfileError, Profile};
pub use size::{ByteSize, MAX_DURATION, MAX_SIZE, ParseDurationError, ParseSizeError, parse_duration};
pub use target::{ParseTargetError, Target};
pub use token::{JoinToken, MAX_ADDRESS as MAX_CONTROL_ADDRESS, TokenError};
