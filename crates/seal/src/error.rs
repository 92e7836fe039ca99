//! Why a sealed-volume operation failed, by cause, so that the filesystem layer can give the
//! guest the right error number and the host a message that says what to do.

use std::path::PathBuf;

/// A sealed-volume error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// A path names nothing.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// A path to create already exists.
    #[error("{0}: already exists")]
    Exists(String),
    /// A path names a symbolic link where the operation does not follow one (an open without
    /// following, as `O_NOFOLLOW`).
    #[error("{0}: is a symbolic link")]
    IsASymlink(String),
    /// A path names something other than a symbolic link where one is required (`readlink`).
    #[error("{0}: not a symbolic link")]
    NotASymlink(String),
    /// Resolving a path followed more symbolic links than allowed (a loop, most likely).
    #[error("{0}: too many levels of symbolic links")]
    TooManyLinks(String),
    /// A path, or a symbolic link on its way, leads outside the directory it is relative to
    /// (an absolute path, or `..` above that directory).
    #[error("{0}: leads outside the directory it is relative to")]
    Escapes(String),
    /// A path's component is longer than a name may be (255 bytes).
    #[error("{0}: a name is longer than 255 bytes")]
    NameTooLong(String),
    /// A directory was expected.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// A file was expected.
    #[error("{0}: is a directory")]
    IsADirectory(String),
    /// A directory to remove has entries.
    #[error("{0}: directory not empty")]
    NotEmpty(String),
    /// A path leaves the volume or is malformed.
    #[error("{path}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A write would take the volume past its quota.
    #[error("{path}: the sealed volume's quota of {quota} bytes would be exceeded (it holds {used} bytes)")]
    QuotaExceeded {
        /// The file being written.
        path: String,
        /// The quota.
        quota: u64,
        /// What the volume holds now.
        used: u64,
    },
    /// Sealed data failed its integrity check: modified, swapped, truncated or replaced.
    #[error("integrity error in {}: {file}: {reason}; restore the directory from a copy made by this workload, or move it away to start empty", dir.display())]
    Integrity {
        /// The volume's host directory.
        dir: PathBuf,
        /// The file within the volume (guest path), or the host file of the volume's metadata.
        file: String,
        /// What failed.
        reason: String,
    },
    /// The volume is older than its monotonic counter says: an older copy was put back.
    #[error(
        "rollback detected in {}: the sealed state is version {found} but {counter} says at least {expected}; an older copy of the directory was put back (restore the newest copy, or move it away to start empty)",
        dir.display()
    )]
    Rollback {
        /// The volume's host directory.
        dir: PathBuf,
        /// The version found.
        found: u64,
        /// The counter's value.
        expected: u64,
        /// Which counter.
        counter: String,
    },
    /// A volume this state directory has recorded is missing, or its directory is empty.
    #[error(
        "{} held the sealed volume {volume} and is now missing or empty: its data was deleted or moved; restore the directory, or start over with an empty volume (its data lost) with --danger-sealed-start-over",
        dir.display()
    )]
    Missing {
        /// The volume's host directory.
        dir: PathBuf,
        /// The identifier recorded for it.
        volume: String,
    },
    /// Another volume is where a recorded one was.
    #[error(
        "{} held the sealed volume {expected} and now holds {found}: another volume was put in its place; restore the right one, or adopt this one with --danger-sealed-start-over",
        dir.display()
    )]
    Replaced {
        /// The volume's host directory.
        dir: PathBuf,
        /// The identifier recorded for it.
        expected: String,
        /// The identifier of the volume there now.
        found: String,
    },
    /// The volume is sealed to another identity.
    #[error(
        "{} is sealed to {sealed_to}; this workload is {this}: another module cannot open it (run the module it is sealed to, or seal to a signer with --seal-to signer:KEYFILE so that signed upgrades can)",
        dir.display()
    )]
    WrongIdentity {
        /// The volume's host directory.
        dir: PathBuf,
        /// Its identity.
        sealed_to: String,
        /// Ours.
        this: String,
    },
    /// The volume was sealed on another platform or with another sealing root.
    #[error("{} was sealed {what}; it cannot be opened here", dir.display())]
    WrongPlatform {
        /// The volume's host directory.
        dir: PathBuf,
        /// How it differs: `on tpm, this run uses sim`, `with another sealing key (…)`.
        what: String,
    },
    /// The directory exists and holds something other than a sealed volume.
    #[error("{} is not a sealed volume but is not empty; use an empty or new directory", dir.display())]
    NotSealed {
        /// The directory.
        dir: PathBuf,
    },
    /// Another process has the volume open.
    #[error("{} is in use by another process", dir.display())]
    InUse {
        /// The directory.
        dir: PathBuf,
    },
    /// The platform failed (counter, sealing root).
    #[error(transparent)]
    Platform(#[from] lamina_tee::TeeError),
    /// A key could not be derived (HKDF refused; never turned into a key).
    #[error(transparent)]
    Key(#[from] lamina_keys::KeyError),
    /// The host filesystem failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The host file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file would exceed the largest size a volume supports.
    #[error("{0}: file too large")]
    TooLarge(String),
}
