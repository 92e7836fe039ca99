//! Lamina's node agent (`lamina node`).
//!
//! It enrols once with a join token, over mutually attested TLS: it checks the control plane's
//! evidence (its RA-TLS certificate) and the key pinned by the token, presents a certificate
//! for its own key, and answers the control plane's challenge with evidence that binds that key,
//! which it keeps in its state directory with the control plane's address, key fingerprint and
//! artifact key. Then it loops: a
//! heartbeat that reports its instances and returns what it must run; fresh evidence every
//! re-attestation interval; and reconciliation: it fetches each assigned module's artifact,
//! compiled for its target and signed by the control plane, checks the signature, and runs it
//! under the runtime crate, restarting failed instances with a growing delay and stopping those
//! no longer assigned. An instance with secrets or sealed directories attests itself (its module
//! and a fresh key) and the control plane releases its secrets and sealing root encrypted to
//! that key; the node caches them sealed to its own platform. While the control plane is out of
//! reach it keeps running what it last received (a copy signed by the control plane, saved in
//! its state directory), restarting instances from cached artifacts and secrets, and reconciles
//! when the link returns.
//!
//! What to start, stop and back off is decided by one pure function (`reconcile.rs`), from the
//! desired state, the instances as observed and the clock; `agent.rs` observes, calls it and
//! carries its actions out.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod agent;
mod enrol;
mod floor;
mod identity;
mod ingress;
mod log;
mod metrics;
mod reconcile;
mod secrets;
mod state;
mod topics;

pub use agent::{Agent, AgentError, NodeOptions, STOP_WAIT};
pub use enrol::enrol;
pub use identity::Identity;
pub use log::LogLimits;
