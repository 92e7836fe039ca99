//! Lamina's control plane.
//!
//! Its decisions live in [`Registry`], a plain data structure advanced by [`Registry::step`]
//! with one [`Event`] at a time (a node enrolled, a heartbeat, a deployment, a policy verdict,
//! the clock), in the style of a reconcile loop: no network and no clock inside, so every fault
//! the continuum must survive (a lost node, a restarted control plane, a node that stops passing
//! the policy) is a unit test. The HTTP API, the store and the attested TLS wrap it.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
mod client;
mod registry;
pub mod release;
mod server;
mod store;
mod tokens;

pub use client::{ClientError, ControlClient, spki_fingerprint};
pub use registry::{
    Assignment, DesiredState, Event, InstanceReport, InstanceState, NodeRecord, NodeState, Registry, Settings,
    SignedDesired, StepError,
};
pub use server::{Running, ServeError, ServeOptions, admin_token, serve};
pub use store::{Store, StoreError};
pub use tokens::{IssuedToken, RedeemError, TokenBook};
