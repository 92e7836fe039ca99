//! Lamina's guest SDK: the services a workload gets beyond WASI, for Rust programs built for
//! `wasm32-wasip2`.
//!
//! - [`secrets`]: secrets the operator gave this workload (`lamina run --secret NAME=FILE`).
//! - [`kv`]: a sealed key-value store (`lamina run --kv DIR`), in the shape of `wasi:keyvalue`,
//!   with prefix listing and compare-and-swap.
//! - [`attestation`]: evidence about this workload and up to 64 bytes of its own data, and the
//!   verifier's result when the node has one (`lamina run --attestation`).
//! - [`messaging`]: topic-based publish/subscribe between instances.
//!
//! The sealed filesystem needs no SDK: files under a `--sealed-dir` are ordinary files.
//! Every function returns a `Result`; a service the run did not provide is an error that says
//! so, never a trap.
//!
//! ```no_run
//! let token = lamina_sdk::secrets::get("api-token")?;
//! let bucket = lamina_sdk::kv::Bucket::open("default")?;
//! let runs = bucket.increment("runs", 1)?;
//! println!("run {runs}; the token has {} bytes", token.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The raw bindings generated from `wit/` (for what the wrappers do not cover).
#[allow(
    missing_docs,
    unsafe_code,
    reason = "wit-bindgen's generated bindings: undocumented, and unsafe at the ABI they implement"
)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "lamina:sdk/guest",
        generate_all,
    });
}

pub mod attestation;
pub mod kv;
pub mod messaging;
pub mod secrets;
