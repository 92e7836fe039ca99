//! Typed errors of the runtime crate, split by cause.

use std::path::PathBuf;

use lamina_artifact::{ArtifactError, CompileError};

/// Everything that can go wrong in the runtime crate, before a guest runs or while it is set up.
///
/// What happens *inside* a guest (exit codes, traps, limits hit) is not an error: it is an
/// [`Exit`](crate::Exit).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine could not be configured.
    #[error("cannot configure the engine: {0}")]
    Engine(String),
    /// The input could not be loaded as a module, component or artifact.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An artifact is malformed or was built for something else.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The guest could not be instantiated.
    #[error(transparent)]
    Instantiate(#[from] InstantiateError),
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

/// Why bytes could not be loaded as a program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes are not a program this engine can compile (not Wasm, invalid, truncated, or a
    /// build without a compiler).
    #[error(transparent)]
    Input(#[from] CompileError),
    /// The program imports functions that no host service provides.
    #[error("the {kind} imports what Lamina does not provide: {}", .missing.join(", "))]
    UnknownImports {
        /// `module` or `component`.
        kind: &'static str,
        /// The unmet imports, as `module::name`.
        missing: Vec<String>,
    },
    /// A component does not export `wasi:cli/run`, nor a module `_start`.
    #[error("{0}")]
    NotACommand(String),
}

/// Why a guest could not be instantiated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstantiateError {
    /// A `--dir` host path is missing or not a directory.
    #[error("cannot mount {}: {reason}", path.display())]
    Mount {
        /// The host path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The guest's initial memory already exceeds its limit.
    #[error("out of memory: the guest needs {needed} at start, beyond its {limit} limit")]
    InitialMemory {
        /// What the guest declared.
        needed: lamina_types::ByteSize,
        /// The configured limit.
        limit: lamina_types::ByteSize,
    },
    /// A limit is inconsistent with the engine.
    #[error("{0}")]
    Limits(String),
    /// The program cannot use a host service it was given.
    #[error("{0}")]
    Unsupported(String),
    /// The engine could not instantiate the guest.
    #[error("cannot instantiate: {0}")]
    Engine(String),
}

pub(crate) use lamina_artifact::chain;

impl From<lamina_artifact::Error> for Error {
    fn from(e: lamina_artifact::Error) -> Self {
        match e {
            lamina_artifact::Error::Engine(message) => Error::Engine(message),
            lamina_artifact::Error::Compile(e) => Error::Load(e.into()),
            lamina_artifact::Error::Artifact(e) => Error::Artifact(e),
            lamina_artifact::Error::Io { action, path, source } => Error::Io { action, path, source },
            // `lamina_artifact::Error` is non-exhaustive: whatever it grows is an engine matter.
            other => Error::Engine(other.to_string()),
        }
    }
}

impl From<CompileError> for Error {
    fn from(e: CompileError) -> Self {
        Error::Load(e.into())
    }
}
