//! The on-disk compile cache: content-addressed by module hash and engine fingerprint, and
//! authenticated.
//!
//! A cache entry is native code the engine will run, so the file's own checksum is not enough:
//! anyone who can write the cache directory could put another module's entry (or patched
//! code) under this module's name. Each entry therefore carries a tag, HMAC-SHA256 under a
//! [`CacheKey`] that only this runtime holds, over the module hash and engine fingerprint it is
//! filed under and the artifact's header (which holds the code's checksum). An entry whose tag,
//! module hash or checksum does not hold is reported, removed and compiled again; it never
//! reaches the engine.
//!
//! Entry layout: the 8-byte magic `\0LAMCC\x01\0`, the 32-byte tag, then the artifact.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use lamina_types::ModuleHash;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::provenance::TrustedCode;
use crate::{ArtifactError, Error, format};

/// The first bytes of every cache entry.
const ENTRY_MAGIC: &[u8; 8] = b"\0LAMCC\x01\0";
/// What a tag covers first: this domain tag.
const TAG_DOMAIN: &[u8] = b"lamina-compile-cache-entry-v1\0";
const TAG_LEN: usize = 32;

/// The key that authenticates compile-cache entries: 32 random bytes that only this runtime
/// holds (a file of mode 0600 in the state directory, outside the cache directory).
pub struct CacheKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

impl CacheKey {
    /// A key from bytes (for example derived from a platform's sealing root).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Reads the key at `path`, or makes one there (mode 0600, created exclusively so that
    /// concurrent first runs agree on one key).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read or made, or is not 32 bytes.
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |action, source| Error::Io { action, path: path.into(), source };
        for _ in 0..2 {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                        io(
                            "read the compile-cache key (it is not 32 bytes; remove it to make a new one)",
                            std::io::Error::from(std::io::ErrorKind::InvalidData),
                        )
                    })?;
                    return Ok(Self::from_bytes(key));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("read the compile-cache key", e)),
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io("create the directory of the compile-cache key", e))?;
            }
            let mut key = Zeroizing::new([0u8; 32]);
            rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, key.as_mut())
                .map_err(|e| io("draw the compile-cache key", std::io::Error::other(e)))?;
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
                Ok(mut file) => {
                    file.write_all(key.as_ref()).map_err(|e| io("write the compile-cache key", e))?;
                    file.sync_all().map_err(|e| io("write the compile-cache key", e))?;
                    return Ok(Self(key));
                }
                // Another process made it first: read theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create the compile-cache key", e)),
            }
        }
        Err(io("create the compile-cache key", std::io::Error::from(std::io::ErrorKind::AlreadyExists)))
    }

    /// A public name for the key (a PRF output under it, which tells nothing of it): entries of
    /// different keys sharing a cache directory are filed apart, so that two state directories
    /// (two users, or a test's) do not take each other's entries for forgeries and replace them
    /// by turns.
    fn id(&self) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts a key of any length"));
        mac.update(b"lamina-compile-cache-key-id\0");
        mac.finalize().into_bytes().into()
    }

    fn tag(&self, module: &ModuleHash, fingerprint: &[u8; 32], header: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes is always accepted.
        let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts a key of any length"));
        mac.update(TAG_DOMAIN);
        mac.update(module.as_bytes());
        mac.update(fingerprint);
        mac.update(&(header.len() as u64).to_le_bytes());
        mac.update(header);
        mac
    }
}

/// A directory of compiled artifacts, authenticated with a [`CacheKey`].
#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    key: CacheKey,
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
    /// A cache in `dir`, created on first store, whose entries `key` authenticates.
    pub fn new(dir: impl Into<PathBuf>, key: CacheKey) -> Self {
        Self { dir: dir.into(), key }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for a module compiled by an engine with this fingerprint, under this
    /// cache's key.
    pub fn entry_path(&self, module: &ModuleHash, fingerprint: &[u8; 32]) -> PathBuf {
        let mut h = Sha256::new();
        h.update(module.as_bytes());
        h.update(fingerprint);
        h.update(self.key.id());
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

    /// Makes the entry for an artifact this process compiled from the module `module`.
    pub(crate) fn seal_entry(
        &self,
        module: &ModuleHash,
        fingerprint: &[u8; 32],
        artifact: &[u8],
    ) -> Result<Vec<u8>, ArtifactError> {
        let tag = self.key.tag(module, fingerprint, format::header_bytes(artifact)?).finalize().into_bytes();
        let mut entry = Vec::with_capacity(ENTRY_MAGIC.len() + TAG_LEN + artifact.len());
        entry.extend_from_slice(ENTRY_MAGIC);
        entry.extend_from_slice(&tag);
        entry.extend_from_slice(artifact);
        Ok(entry)
    }

    /// Opens an entry filed under `module`: its tag must verify under this cache's key, its
    /// header must name `module`, and its code must match the header's checksum.
    pub(crate) fn open_entry<'a>(
        &self,
        entry: &'a [u8],
        module: &ModuleHash,
        fingerprint: &[u8; 32],
    ) -> Result<TrustedCode<'a>, ArtifactError> {
        let rest = entry
            .strip_prefix(ENTRY_MAGIC)
            .ok_or_else(|| ArtifactError::Malformed("not a compile-cache entry (no entry magic)".into()))?;
        if rest.len() < TAG_LEN {
            return Err(ArtifactError::Malformed("the cache entry ends inside its tag".into()));
        }
        let (tag, bytes) = rest.split_at(TAG_LEN);
        self.key
            .tag(module, fingerprint, format::header_bytes(bytes)?)
            .verify_slice(tag)
            .map_err(|_| ArtifactError::BadSignature("the compile-cache entry's tag does not verify".into()))?;
        let decoded = format::decode(bytes)?;
        if decoded.header.module_hash != *module {
            return Err(ArtifactError::BadSignature(format!(
                "the compile-cache entry holds {}, not {module}",
                decoded.header.module_hash
            )));
        }
        Ok(TrustedCode::cache_entry(decoded))
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
