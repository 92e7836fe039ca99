//! Lamina's node agent (`lamina node`).
//!
//! It enrols once with a join token: it answers the control plane's challenge with evidence
//! from its platform and gets a credential, which it keeps in its state directory with the
//! control plane's address, certificate fingerprint and artifact key. Then it loops: a
//! heartbeat that reports its instances and returns what it must run; fresh evidence every
//! re-attestation interval; and reconciliation: it fetches each assigned module's artifact,
//! compiled for its target and signed by the control plane, checks the signature, and runs it
//! under the runtime crate, restarting failed instances with a growing delay and stopping those
//! no longer assigned. While the control plane is out of reach it keeps running what it last
//! received (saved in its state directory), and reconciles when the link returns.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod agent;
mod identity;

pub use agent::{Agent, AgentError, NodeOptions};
pub use identity::{Identity, enrol};
