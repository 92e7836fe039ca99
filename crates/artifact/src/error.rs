//! Typed errors of the artifact crate, split by cause.

use std::path::PathBuf;

use lamina_types::{Profile, Target};

/// Everything that can go wrong configuring an engine, compiling, or preparing compiled code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine could not be configured.
    #[error("cannot configure the engine: {0}")]
    Engine(String),
    /// The input could not be compiled.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// An artifact is malformed, unverified or was built for something else.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// Reading or writing a file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Why bytes are not a program this engine can compile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The bytes are not WebAssembly nor a Lamina artifact.
    #[error("not a WebAssembly module, component or Lamina artifact (the file starts with {found})")]
    NotWasm {
        /// The first bytes, in hex.
        found: String,
    },
    /// The binary ends before its sections do.
    #[error("truncated WebAssembly: {message} at offset {offset:#x} (the file is {len} bytes)")]
    Truncated {
        /// Where reading stopped.
        offset: usize,
        /// The parser's message.
        message: String,
        /// The file's length.
        len: usize,
    },
    /// The binary is malformed or fails validation.
    #[error("invalid WebAssembly at offset {offset:#x}: {message}")]
    Invalid {
        /// Where the problem is.
        offset: usize,
        /// The parser's or validator's message.
        message: String,
    },
    /// This build has no compiler, so a plain `.wasm` cannot be run.
    #[error(
        "this lamina is the runtime-only build (no compiler): it runs artifacts, not plain .wasm; \
         make one on a machine with a compiler: `lamina compile --target {host} FILE -o FILE.lamart`"
    )]
    NoCompiler {
        /// This machine's target triple.
        host: &'static str,
    },
    /// A raw wasmtime artifact without Lamina's header.
    #[error(
        "this is a bare wasmtime artifact without Lamina's header, which Lamina cannot check; \
         compile the .wasm with `lamina compile` instead"
    )]
    BareWasmtimeArtifact,
    /// Compilation failed for another reason.
    #[error("cannot compile: {0}")]
    Failed(String),
}

/// Why an artifact cannot be used here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The header is malformed.
    #[error("malformed Lamina artifact: {0}")]
    Malformed(String),
    /// The compiled code does not match the checksum in the header.
    #[error("corrupt Lamina artifact: its code does not match the checksum in its header")]
    Corrupt,
    /// Compiled for another architecture.
    #[error(
        "the artifact was compiled for {built}, but this machine is {host}; \
         recompile it with `lamina compile --target {host}`"
    )]
    WrongTarget {
        /// The artifact's target.
        built: Target,
        /// This machine's target.
        host: String,
    },
    /// Compiled by another engine version.
    #[error("the artifact was compiled by {built}, but this lamina runs {this}; recompile it with this lamina")]
    WrongEngine {
        /// The artifact's engine.
        built: String,
        /// This build's engine.
        this: String,
    },
    /// Compiled for another device profile.
    #[error(
        "the artifact was compiled for the {built} profile, not {wanted}; \
         recompile it with `lamina compile --profile {wanted}` or run it with `--profile {built}`"
    )]
    WrongProfile {
        /// The artifact's profile.
        built: Profile,
        /// The profile asked for.
        wanted: Profile,
    },
    /// Fuel metering asked for, but not compiled in.
    #[error("the artifact was compiled without fuel metering; recompile it with `lamina compile --fuel`")]
    NoFuel,
    /// The engine refused the compiled code.
    #[error("the engine refused the artifact: {0}")]
    Refused(String),
    /// The artifact's signature (or a compile-cache entry's tag) does not verify with a
    /// trusted key.
    #[error("the artifact's signature does not verify: {0}")]
    BadSignature(String),
    /// An artifact was given where only code with a verified origin may run.
    #[error(
        "a Lamina artifact is native code and its header is only what the file says about itself: \
         run it with `--trust-signer KEY.pem` (its signature FILE.sig beside it, from `lamina compile --sign`), \
         or run the .wasm instead"
    )]
    Unverified,
}

/// Formats a wasmtime error with its whole cause chain on one line.
pub fn chain(e: &wasmtime::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
