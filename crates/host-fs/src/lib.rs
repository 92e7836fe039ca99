//! Sealed directories for unmodified WASI programs: preview 1 modules (`p1.rs`), WASI 0.2
//! components (`p2.rs`) and WASI 0.3 components (`p3.rs`), over the sealed side the
//! components share (`component.rs`).
//!
//! A guest sees a sealed volume ([`lamina_seal::Volume`]) as an ordinary preopened directory:
//! it opens, reads, writes, seeks, truncates, syncs, renames, removes and lists files with the
//! usual WASI calls (enough for SQLite), while on the host every file is ciphertext.
//!
//! Errors follow the WASI convention: a guest's ordinary mistake (a missing file, a full
//! quota) is an error number, never a trap. An integrity failure is `EIO` for the guest and a
//! log line for the host naming the file and what failed.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod component;
mod p1;
mod p2;
mod p3;

pub use component::{MAX_SHARED_OPEN_FILES, SealedComponentFs, SealedComponentView, SharedMounts};
pub use p1::{SealedFs, SealedView, add_to_linker};
pub use p2::{add_to_async_component_linker, add_to_component_linker};
pub use p3::add_to_p3_linker;

use lamina_seal::{Kind, SealError, Volume};

/// The longest path a guest may pass.
pub(crate) const MAX_PATH: u32 = 4096;

/// The most sealed files one guest may hold open at once (through either ABI). An open sealed
/// file may hold a descriptor of the host's, and one instance must not take all of its node's:
/// the open past this fails with `EMFILE` (WASIp1) or `insufficient-memory` (WASIp2).
pub const MAX_OPEN_FILES: usize = 256;

/// A sealed volume and where the guest sees it.
#[derive(Debug)]
pub struct SealedMount {
    /// The guest path, e.g. `/data`.
    pub guest: String,
    /// The open volume.
    pub volume: Volume,
}

/// Whether a path's last component is `.` or `..` (whatever `/`s follow): what names the
/// directory a path is in, which cannot be renamed through it.
pub(crate) fn ends_in_dot(path: &str) -> bool {
    matches!(path.trim_end_matches('/').rsplit('/').next(), Some("." | ".."))
}

/// Why a link (symbolic or hard) cannot be made at a path that can name only a directory
/// (`name/`, a directory to create, which a link is not): as in a plain directory through
/// wasmtime-wasi, ENOTDIR where a file is, EEXIST where something else is, ENOENT where nothing
/// is.
pub(crate) fn dir_only_link_error(volume: &Volume, path: &str) -> SealError {
    match volume.stat(path) {
        Ok(stat) if stat.kind == Kind::File => SealError::NotADirectory(path.into()),
        Ok(_) => SealError::Exists(path.into()),
        Err(_) => SealError::NotFound(path.into()),
    }
}

/// Refuses a path that can name only a directory ([`lamina_seal::Resolved::dir_only`]) when it
/// names a file (ENOTDIR), or, when `creating`, nothing yet (EISDIR: a file cannot be created
/// as `name/`).
pub(crate) fn check_names_dir(volume: &Volume, path: &str, creating: bool) -> std::result::Result<(), SealError> {
    match volume.stat(path) {
        Ok(stat) if stat.kind == lamina_seal::Kind::File => Err(SealError::NotADirectory(path.into())),
        Err(SealError::NotFound(_)) if creating => Err(SealError::IsADirectory(path.into())),
        _ => Ok(()),
    }
}

/// Now, in nanoseconds since the Unix epoch (0 before it).
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}
