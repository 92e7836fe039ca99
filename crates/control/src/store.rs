//! The control plane's store. Embedded (the default): its state directory holds the cluster,
//! the issued tokens and the other documents as files, each replaced atomically (written
//! beside, synced, renamed, the directory synced), under an exclusive lock so that two control
//! planes never share one. Replicated: the same documents in etcd (see [`crate::etcd`]), the
//! state directory keeping only what is this replica's own (its address, its compiled
//! artifacts, the admin token for local commands).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Cluster, TokenBook};

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
    /// etcd failed.
    #[error("etcd: {0}")]
    Etcd(String),
    /// TLS with etcd failed in a way that trying again will not mend: a member refused this
    /// replica's client certificate, or its own certificate did not verify (the message says
    /// which, and what to give instead).
    #[error("{0}")]
    EtcdTls(String),
    /// No etcd member could be reached (after retries).
    #[error("etcd cannot be reached: {0}; check that its members run and --store names them")]
    EtcdUnreachable(String),
    /// This replica no longer leads (its lease lapsed); another one serves.
    #[error("this control plane replica is no longer the leader; another replica serves")]
    NotLeader,
    /// A document is not what this control plane wrote.
    #[error("{} is damaged ({reason}); restore it from a backup or move the state directory away", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The cluster's file (its first name, so state directories written before stay readable).
const CLUSTER: &str = "registry.json";
const TOKENS: &str = "tokens.json";
/// The node credentials' document.
pub(crate) const CREDENTIALS: &str = "credentials.json";

fn json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec_pretty(value).map_err(|e| StoreError::Damaged { path: dir.join(name), reason: e.to_string() })
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: File,
    shared: Option<std::sync::Arc<crate::etcd::EtcdStore>>,
    /// The key that wraps the replicas' shared keys in etcd.
    cluster_key: Option<zeroize::Zeroizing<[u8; 32]>>,
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
        Ok(Store { dir: dir.into(), _lock: lock, shared: None, cluster_key: None })
    }

    /// Opens a replica's state directory (locked, like [`Store::open`]) with its documents in
    /// etcd.
    ///
    /// # Errors
    /// As [`Store::open`].
    /// The keys every replica shares (TLS, artifact signing, secrets at rest, admin token) are
    /// kept in etcd encrypted under `cluster_key`, which each replica is given.
    pub fn replicated(
        dir: &Path,
        etcd: crate::etcd::EtcdStore,
        cluster_key: zeroize::Zeroizing<[u8; 32]>,
    ) -> Result<Self, StoreError> {
        let mut store = Store::open(dir)?;
        store.shared = Some(std::sync::Arc::new(etcd));
        store.cluster_key = Some(cluster_key);
        Ok(store)
    }

    /// Checks that the cluster key is the one the replicas share (the first replica leaves a
    /// value under it in etcd): a replica given another key is refused at start rather than
    /// when it comes to lead.
    ///
    /// # Errors
    /// [`StoreError::Damaged`] for another key; [`StoreError::Etcd`].
    pub fn check_cluster_key(&self) -> Result<(), StoreError> {
        if self.shared.is_some() {
            self.material("cluster-key-check", || Ok(b"lamina".to_vec()))?;
        }
        Ok(())
    }

    /// Key material made once: as a file readable by its owner only (embedded), or in etcd
    /// encrypted under the cluster key, the first replica's shared by all (replicated).
    pub(crate) fn material(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<Vec<u8>, StoreError>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let (Some(etcd), Some(key)) = (&self.shared, &self.cluster_key) else {
            let path = self.dir.join(name);
            if let Ok(bytes) = std::fs::read(&path) {
                return Ok(zeroize::Zeroizing::new(bytes));
            }
            let bytes = zeroize::Zeroizing::new(make()?);
            write_private(&path, &bytes)?;
            return Ok(bytes);
        };
        let damaged = |reason: String| StoreError::Damaged { path: PathBuf::from(format!("etcd:{name}")), reason };
        let sealed = match etcd.get(name)? {
            Some(sealed) => sealed,
            None => {
                let bytes = zeroize::Zeroizing::new(make()?);
                let sealed = lamina_wire::release::encrypt_at_rest(key, name.as_bytes(), &bytes)
                    .map_err(|e| damaged(e.to_string()))?;
                etcd.put_if_absent(name, &sealed)?
            }
        };
        lamina_wire::release::decrypt_at_rest(key, name.as_bytes(), &sealed).map_err(|_| {
            damaged(
                "it does not open with this replica's cluster key: another cluster's (a different --cluster-key file, or a sealed cluster-key.sealed of another cluster in the state directory)".into(),
            )
        })
    }

    /// The cluster key, when the state is replicated.
    pub(crate) fn cluster_key(&self) -> Option<&[u8; 32]> {
        self.cluster_key.as_deref()
    }

    /// The etcd store, when the state is replicated.
    pub fn etcd(&self) -> Option<std::sync::Arc<crate::etcd::EtcdStore>> {
        self.shared.clone()
    }

    /// A document's bytes, or `None` when there is none.
    pub(crate) fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(etcd) = &self.shared {
            return etcd.get(name);
        }
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Writes documents durably (in etcd, all or none; as files, each atomically) and deletes
    /// others; files are readable by their owner only.
    pub(crate) fn write(&self, puts: &[(&str, &[u8])], deletes: &[&str]) -> Result<(), StoreError> {
        if let Some(etcd) = &self.shared {
            return etcd.write(puts, deletes);
        }
        for (name, bytes) in puts {
            let path = self.dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            }
            let tmp = path.with_extension("tmp");
            write_private(&tmp, bytes)?;
            File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("sync", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(io("replace", &path))?;
            let parent = path.parent().unwrap_or(&self.dir);
            File::open(parent).and_then(|d| d.sync_all()).map_err(io("sync", parent))?;
        }
        for name in deletes {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path)(e)),
            }
        }
        Ok(())
    }

    /// Whether a document exists, without reading it.
    pub(crate) fn exists(&self, name: &str) -> Result<bool, StoreError> {
        match &self.shared {
            Some(etcd) => etcd.exists(name),
            None => Ok(self.dir.join(name).is_file()),
        }
    }

    /// The names of the documents in `dir` (one level).
    pub(crate) fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        if let Some(etcd) = &self.shared {
            return etcd.list(dir);
        }
        let path = self.dir.join(dir);
        let mut names: Vec<String> = match std::fs::read_dir(&path) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| !n.ends_with(".tmp"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("list", &path)(e)),
        };
        names.sort();
        Ok(names)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn load<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, StoreError> {
        match self.get(name)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Damaged { path: self.dir.join(name), reason: e.to_string() }),
            None => Ok(T::default()),
        }
    }

    pub(crate) fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let bytes = json(&self.dir, name, value)?;
        self.write(&[(name, &bytes)], &[])
    }

    /// Saves the cluster, the tokens and the node credentials together.
    pub(crate) fn save_state<C: Serialize>(
        &self,
        cluster: &Cluster,
        tokens: &TokenBook,
        credentials: &C,
    ) -> Result<(), StoreError> {
        let (r, t, c) = (
            json(&self.dir, CLUSTER, cluster)?,
            json(&self.dir, TOKENS, tokens)?,
            json(&self.dir, CREDENTIALS, credentials)?,
        );
        self.write(&[(CLUSTER, &r), (TOKENS, &t), (CREDENTIALS, &c)], &[])
    }

    /// The cluster as last saved (empty for a new state directory).
    ///
    /// # Errors
    /// [`StoreError::Damaged`] or I/O errors.
    pub fn cluster(&self) -> Result<Cluster, StoreError> {
        self.load(CLUSTER)
    }

    /// Saves the cluster durably.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save_cluster(&self, cluster: &Cluster) -> Result<(), StoreError> {
        self.save(CLUSTER, cluster)
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

/// Writes a file of the state directory that is not a store document (the artifact cache)
/// atomically: a uniquely named temporary file beside it, synced, renamed over it, so that a
/// crash or a concurrent writer never leaves half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Settings};

    #[test]
    fn state_survives_a_restart_and_one_owner_holds_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster::new(Settings::default());
        cluster.step(Event::Tick, 5).expect("tick");
        {
            let store = Store::open(dir.path()).expect("opens");
            assert!(matches!(Store::open(dir.path()), Err(StoreError::InUse(_))));
            assert_eq!(store.cluster().expect("empty"), Cluster::default());
            store.save_cluster(&cluster).expect("saves");
            let mut tokens = store.tokens().expect("none yet");
            tokens.issue("https://x:1", [0; 32], [1; 32], 0, 10);
            store.save_tokens(&tokens).expect("saves");
        }
        let store = Store::open(dir.path()).expect("reopens after the first owner ended");
        assert_eq!(store.cluster().expect("loads"), cluster);
        assert_eq!(store.tokens().expect("loads").issued.len(), 1);
        std::fs::write(dir.path().join(CLUSTER), b"{ not json").expect("damage");
        let e = store.cluster().expect_err("damaged");
        assert!(e.to_string().contains("registry.json is damaged"), "{e}");
    }
}
