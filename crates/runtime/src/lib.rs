//! Lamina's wasmtime embedding: the one API through which the CLI and the node agent run guests.
//!
//! An [`Engine`] (from `lamina-artifact`, which owns compiled code) is built for a device
//! [`Profile`](lamina_types::Profile) and optionally another target (to cross-compile). A core
//! module (WASI preview 1) or a component (WASI 0.2 or 0.3) loads into a [`Program`], compiled
//! through an authenticated [`CompileCache`] when one is given; a Lamina artifact (native
//! code) loads only as a [`TrustedCode`], which says what vouches for it. A program is
//! instantiated with a [`WasiConfig`] and [`Limits`] into an [`Instance`], whose
//! [`run`](Instance::run) says how the guest ended ([`Exit`]) and whose
//! [`usage`](Instance::usage) says what it used.
//!
//! ```
//! use lamina_runtime::{Engine, EngineOptions, Exit, Limits, Output, Program, WasiConfig};
//! use lamina_types::{ByteSize, Profile};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), lamina_runtime::Error> {
//! let engine = Engine::new(EngineOptions::for_profile(Profile::Server))?;
//! // Any `.wasm` bytes; the text format is accepted when the build has a compiler.
//! let program = Program::load(&engine, br#"(module (memory (export "memory") 1) (func (export "_start")))"#, None)?;
//! let wasi = WasiConfig { args: vec!["demo".into()], stdout: Output::Capture, ..WasiConfig::default() };
//! let limits = Limits { max_memory: Some(ByteSize::mib(64)), timeout: Some(Duration::from_secs(2)), fuel: None };
//! let mut instance = program.instantiate(&wasi, limits)?;
//! assert!(matches!(instance.run(), Exit::Code(0)));
//! assert_eq!(instance.usage().peak_memory, ByteSize(64 * 1024));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod config;
mod error;
mod host;
mod http;
mod inspect;
mod instance;
mod network;
mod output;
mod program;

pub use config::{InstanceConfig, InstanceHost};
pub use error::{Error, InstantiateError, LoadError};
pub use http::{HandleError, HttpBody, HttpConfig, HttpHandler, Reuse};
pub use inspect::{Description, Item, describe};
pub use instance::{Exit, Instance, Limits, Output, ResourceUsage, Services, Trap, TrapReason, WasiConfig};
/// The compiled-code half (engines, artifacts, signing, the compile cache, provenance), which
/// the control plane links without the host services.
pub use lamina_artifact::{
    ArtifactError, ArtifactHeader, CacheKey, CacheStatus, CompileCache, CompileError, EPOCH_TICK, Engine,
    EngineOptions, Origin, ProfileLimits, ProgramKind, TrustedCode, WASMTIME_VERSION, format as artifact, signing,
};
pub use lamina_host_attest::{Appraiser, Attester, Identity};
pub use lamina_host_fs::SealedMount;
pub use lamina_host_kv::KvStore;
pub use lamina_host_messaging::{Broker, LocalBus};
pub use lamina_host_secrets::Secrets;
pub use output::GuestOutput;
pub use program::{Program, World};
pub use wasmtime::Val;
/// The error a wasi:http body or request fails with (what a guest sees as an `error-code`).
pub use wasmtime_wasi_http::Error as HttpError;
