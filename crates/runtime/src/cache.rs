//! The on-disk compile cache: content-addressed by module hash and engine fingerprint.
//!
//! Entries are artifacts in Lamina's format, so a corrupted entry fails its checksum, is
//! reported, removed and compiled again; it is never handed to the engine.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use lamina_types::ModuleHash;
use sha2::{Digest, Sha256};

use crate::Error;

/// A directory of compiled artifacts.
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

/// Whether a load used the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Loaded compiled code from the cache.
    Hit,
    /// Compiled, and stored the result.
    Miss,
    /// The entry was corrupt: compiled again and replaced it.
    Repaired,
    /// No cache was used (an artifact, or caching turned off).
    Unused,
}

impl std::fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Repaired => "repaired (the entry was corrupt; compiled again)",
            CacheStatus::Unused => "unused",
        })
    }
}

impl CompileCache {
    /// A cache in `dir`, created on first store.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for a module compiled by an engine with this fingerprint.
    pub fn entry_path(&self, module: &ModuleHash, fingerprint: &[u8; 32]) -> PathBuf {
        let mut h = Sha256::new();
        h.update(module.as_bytes());
        h.update(fingerprint);
        self.dir.join(format!("{}.lamart", hex::encode(h.finalize())))
    }

    /// Reads an entry; `Ok(None)` when there is none.
    pub(crate) fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { action: "read cache entry", path: path.into(), source }),
        }
    }

    /// Stores an entry atomically (write to a temporary file, then rename), so a concurrent
    /// reader or a crash never sees half an entry.
    pub(crate) fn store(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let io = |action, source| Error::Io { action, path: path.into(), source };
        std::fs::create_dir_all(&self.dir).map_err(|e| io("create cache directory for", e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| io("create temporary file for", e))?;
        tmp.write_all(bytes).map_err(|e| io("write cache entry", e))?;
        tmp.persist(path).map_err(|e| io("store cache entry", e.error))?;
        Ok(())
    }

    /// Removes a bad entry; failing to remove is only worth a warning.
    pub(crate) fn evict(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!("cannot remove corrupt cache entry {}: {e}", path.display());
        }
    }
}
