//! Lamina's compiled code: what the control plane, `lamina compile` and the runtime share, and
//! nothing of running guests.
//!
//! An [`Engine`] is wasmtime configured for a device [`Profile`](lamina_types::Profile) and a
//! target: the same configuration wherever code is compiled and wherever it runs, so that an
//! artifact made on one machine loads on another. [`Engine::compile`] turns `.wasm` into a
//! Lamina artifact ([`format`]: a checked header in front of wasmtime's code), which
//! [`signing`] signs and verifies. Compiled code reaches the engine only through
//! [`Engine::prepare`] (compile here, through an authenticated [`CompileCache`]) or
//! [`Engine::deserialize`] with a [`TrustedCode`] that says what vouches for it
//! ([`provenance`]); either gives a [`Code`] whose identity comes from that check, never from
//! the file alone. The runtime links a [`Code`] against its host services.
//!
//! ```
//! use lamina_artifact::{Engine, EngineOptions, TrustedCode, signing};
//! use lamina_types::{ModuleHash, Profile};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(EngineOptions::for_profile(Profile::Edge))?;
//! let wasm = b"\0asm\x01\0\0\0";
//! let artifact = engine.compile(wasm)?;
//! let key = p256::ecdsa::SigningKey::from_slice(&[7; 32])?;
//! let signature = signing::sign(&artifact, &key)?;
//! // Elsewhere: only a trusted key's signature lets the artifact reach the engine.
//! let trusted = TrustedCode::signed(&artifact, &signature, &[*key.verifying_key()])?;
//! let code = engine.deserialize(&trusted)?;
//! assert_eq!(code.identity(), Some(ModuleHash::of(wasm)));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod cache;
mod code;
pub mod compile;
mod engine;
mod error;
pub mod format;
pub mod provenance;
pub mod signing;

pub use cache::{CacheKey, CacheStatus, CompileCache};
pub use code::{Code, Compiled};
pub use engine::{EPOCH_TICK, Engine, EngineOptions, ProfileLimits, WASMTIME_VERSION};
pub use error::{ArtifactError, CompileError, Error, chain};
pub use format::{ArtifactHeader, ProgramKind};
pub use provenance::{Origin, TrustedCode};
