//! What Lamina's control plane, its node agents and its command line exchange.
//!
//! Both sides of every call link this crate, so a request can be followed from `lamina deploy`
//! to the node that runs it through types: the bodies ([`bodies`]), the desired state a node
//! runs and the reports it sends back ([`desired`]), what `lamina status` shows ([`status`]),
//! the routes ([`paths`]), the scheme that
//! releases secrets and keys to one attested instance key ([`release`]), the evidence a client
//! attests with ([`evidence`]) and the client itself, pinned to the control plane's key
//! ([`ControlClient`]). Nothing here serves HTTP or compiles Wasm: a node agent links it
//! without the control plane.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bodies;
mod client;
pub mod desired;
pub mod evidence;
pub mod paths;
pub mod release;
pub mod status;

pub use bodies::*;
pub use client::{ClientError, ControlClient, spki_fingerprint, tls_config};
pub use desired::{Assignment, DesiredState, InstanceReport, InstanceState, SignedDesired};
pub use evidence::Evidence;
pub use lamina_scheduler::NodeSpec;
pub use status::{Endpoint, Endpoints, NodeRecord, NodeState, Status};
