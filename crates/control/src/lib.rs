//! Lamina's control plane.
//!
//! Its decisions live in [`Cluster`], a plain data structure advanced by [`Cluster::step`]
//! with one [`Event`] at a time (a node enrolled, a heartbeat, a deployment, a policy verdict,
//! the clock), in the style of a reconcile loop: no network and no clock inside, so every fault
//! the continuum must survive (a lost node, a restarted control plane, a node that stops passing
//! the policy) is a unit test. The HTTP API, the store and the attested TLS wrap it.
//!
//! What crosses the network (bodies, the signed desired state, the release scheme, the client)
//! is in `lamina-wire`, which node agents link instead of this crate. Without the `server`
//! feature (on by default) this crate is the cluster alone: no HTTP server and no compiler.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod challenge;
mod cluster;
#[cfg(feature = "server")]
pub mod etcd;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod nats;
#[cfg(feature = "server")]
pub mod replicas;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod store;
#[cfg(feature = "server")]
mod tokens;

pub use cluster::{Cluster, Event, Settings, StepError};
#[cfg(feature = "server")]
pub use server::{Running, ServeError, ServeOptions, admin_token, serve};
#[cfg(feature = "server")]
pub use store::{Store, StoreError};
#[cfg(feature = "server")]
pub use tokens::{IssuedToken, RedeemError, TokenBook};
