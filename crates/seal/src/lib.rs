//! Lamina's sealed storage: what lets a workload keep state on an untrusted host.
//!
//! Keys come from the platform's sealing root through the hierarchy of `DESIGN.md` (root →
//! sealing policy and identity → volume → file, by HKDF-SHA256), so only the same workload
//! ([`SealTo::Module`]) or a workload of the same signer ([`SealTo::Signer`]) on the same
//! platform can read a volume. A [`Volume`] is a directory tree stored as ciphertext with
//! authenticated metadata: tampering, truncation, swapped chunks and files are detected, a
//! rollback to an older copy is detected against the platform's monotonic counter, and a crash
//! at any point leaves the last commit readable. The WASI filesystem layer (`lamina-host-fs`)
//! presents volumes to unmodified guests; the key-value store builds on them too.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod format;
mod keys;
mod known;
mod volume;

pub use error::SealError;
pub use keys::SealTo;
pub use known::{Absent, KnownVolumes};
pub use volume::{CHUNK, DirEntry, FileId, Kind, OpenFlags, Opened, Resolved, Stat, Volume, VolumeOptions};

/// The decoders of a volume's host files, for the fuzz targets (`fuzz/`): the header is parsed
/// before its MAC can be checked, so its decoder meets untrusted bytes first.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes a volume header (`volume.lamina`) without authenticating it.
    ///
    /// # Errors
    /// Why the bytes are not a header.
    pub fn decode_header(bytes: &[u8]) -> Result<(), String> {
        crate::format::Header::decode(bytes).map(|_| ())
    }

    /// Decodes a decrypted manifest body; returns its version and entry count.
    ///
    /// # Errors
    /// Why the bytes are not a manifest.
    pub fn decode_manifest(bytes: &[u8]) -> Result<(u64, usize), String> {
        crate::format::decode_manifest(bytes).map(|m| (m.version, m.entries.len()))
    }
}
