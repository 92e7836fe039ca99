//! The control plane's embedded store: its state directory holds the registry and the issued
//! tokens as JSON documents, each replaced atomically (written beside, synced, renamed, the
//! directory synced), under an exclusive lock so that two control planes never share one.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Registry, TokenBook};

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another control plane holds the state directory.
    #[error("{} is in use by another control plane (stop it, or give this one another --state)", .0.display())]
    InUse(PathBuf),
    /// A document is not what this control plane wrote.
    #[error("{} is damaged ({reason}); restore it from a backup or move the state directory away", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

const REGISTRY: &str = "registry.json";
const TOKENS: &str = "tokens.json";

/// An open state directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { action, path: path.to_path_buf(), source }
}

impl Store {
    /// Opens (creating) a state directory and locks it.
    ///
    /// # Errors
    /// [`StoreError::InUse`] when another process holds it; I/O errors.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let lock_path = dir.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::InUse(dir.into())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
        }
        Ok(Store { dir: dir.into(), _lock: lock })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn load<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, StoreError> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Damaged { path, reason: e.to_string() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    pub(crate) fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| StoreError::Damaged { path: path.clone(), reason: e.to_string() })?;
        let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("replace", &path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("sync", &self.dir))
    }

    /// The registry as last saved (empty for a new state directory).
    ///
    /// # Errors
    /// [`StoreError::Damaged`] or I/O errors.
    pub fn registry(&self) -> Result<Registry, StoreError> {
        self.load(REGISTRY)
    }

    /// Saves the registry durably.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save_registry(&self, registry: &Registry) -> Result<(), StoreError> {
        self.save(REGISTRY, registry)
    }

    /// The issued tokens.
    ///
    /// # Errors
    /// [`StoreError::Damaged`] or I/O errors.
    pub fn tokens(&self) -> Result<TokenBook, StoreError> {
        self.load(TOKENS)
    }

    /// Saves the issued tokens durably.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save_tokens(&self, tokens: &TokenBook) -> Result<(), StoreError> {
        self.save(TOKENS, tokens)
    }
}

/// Writes a file only its owner may read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Settings};

    #[test]
    fn state_survives_a_restart_and_one_owner_holds_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut registry = Registry::new(Settings::default());
        registry.step(Event::Tick, 5).expect("tick");
        {
            let store = Store::open(dir.path()).expect("opens");
            assert!(matches!(Store::open(dir.path()), Err(StoreError::InUse(_))));
            assert_eq!(store.registry().expect("empty"), Registry::default());
            store.save_registry(&registry).expect("saves");
            let mut tokens = store.tokens().expect("none yet");
            tokens.issue("https://x:1", [0; 32], [1; 32], 0, 10);
            store.save_tokens(&tokens).expect("saves");
        }
        let store = Store::open(dir.path()).expect("reopens after the first owner ended");
        assert_eq!(store.registry().expect("loads"), registry);
        assert_eq!(store.tokens().expect("loads").issued.len(), 1);
        std::fs::write(dir.path().join(REGISTRY), b"{ not json").expect("damage");
        let e = store.registry().expect_err("damaged");
        assert!(e.to_string().contains("registry.json is damaged"), "{e}");
    }
}
