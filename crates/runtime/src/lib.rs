//! Lamina's wasmtime embedding: the one API through which the CLI and the node agent run guests.
//!
//! An [`Engine`] is built for a device [`Profile`](lamina_types::Profile) and optionally another
//! target (to cross-compile). It loads a core module (WASI preview 1), a component (WASI preview
//! 2) into a [`Program`], compiling through an authenticated [`CompileCache`] when one is
//! given; a Lamina artifact (native code) loads only as a [`TrustedCode`], which says what
//! vouches for it. A program is instantiated with a [`WasiConfig`] and [`Limits`] into an [`Instance`],
//! whose [`run`](Instance::run) says how the guest ended ([`Exit`]) and whose
//! [`usage`](Instance::usage) says what it used.
//!
//! ```
//! use lamina_runtime::{Engine, EngineOptions, Exit, Limits, Output, WasiConfig};
//! use lamina_types::{ByteSize, Profile};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), lamina_runtime::Error> {
//! let engine = Engine::new(EngineOptions::for_profile(Profile::Server))?;
//! // Any `.wasm` bytes; the text format is accepted when the build has a compiler.
//! let program = engine.load(br#"(module (memory (export "memory") 1) (func (export "_start")))"#, None)?;
//! let wasi = WasiConfig { args: vec!["demo".into()], stdout: Output::Capture, ..WasiConfig::default() };
//! let limits = Limits { max_memory: Some(ByteSize::mib(64)), timeout: Some(Duration::from_secs(2)), fuel: None };
//! let mut instance = program.instantiate(&wasi, limits)?;
//! assert!(matches!(instance.run(), Exit::Code(0)));
//! assert_eq!(instance.usage().peak_memory, ByteSize(64 * 1024));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod artifact;
mod cache;
mod config;
mod engine;
mod error;
mod host;
mod http;
mod inspect;
mod instance;
mod network;
mod output;
mod program;
mod provenance;
pub mod signing;

pub use artifact::{ArtifactHeader, ProgramKind};
pub use cache::{CacheKey, CacheStatus, CompileCache};
pub use config::{InstanceConfig, InstanceHost};
pub use engine::{EPOCH_TICK, Engine, EngineOptions, ProfileLimits, WASMTIME_VERSION};
pub use error::{ArtifactError, Error, InstantiateError, LoadError};
pub use http::{HandleError, HttpBody, HttpConfig, HttpHandler, Reuse};
pub use inspect::{Description, Item, describe};
pub use instance::{Exit, Instance, Limits, Output, ResourceUsage, Services, Trap, TrapReason, WasiConfig};
pub use lamina_host_attest::{Appraiser, Attester, Identity};
pub use lamina_host_fs::SealedMount;
pub use lamina_host_kv::KvStore;
pub use lamina_host_messaging::{Broker, LocalBus};
pub use lamina_host_secrets::Secrets;
pub use output::GuestOutput;
pub use program::{Program, World};
pub use provenance::{Origin, TrustedCode};
pub use wasmtime::Val;
/// The error a wasi:http body or request fails with (what a guest sees as an `error-code`).
pub use wasmtime_wasi_http::Error as HttpError;
