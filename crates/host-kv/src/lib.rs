//! A sealed key-value store for guests.
//!
//! Components see `wasi:keyvalue` (store, atomics, batch: the proposal's shape, so programs
//! written for it port unchanged) and `lamina:keyvalue/extras` (list by prefix,
//! compare-and-swap); core modules see the same operations as `lamina:keyvalue` imports.
//!
//! Everything lives in one sealed volume (`lamina-seal`): a bucket is a directory, a key a file
//! whose name is the key in hex (so any string is a key and byte order is name order). Each
//! mutation is one durable commit: confidential, tamper-evident and rollback-protected like a
//! sealed directory. A [`KvStore`] may be shared by the instances of one workload; a mutex makes
//! each operation, compare-and-swap included, atomic between them.

#![deny(missing_docs)]

mod abi;
mod wit;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use lamina_seal::{DirEntry, Kind, OpenFlags, Opened, SealError, Volume};

pub use abi::{CORE_MODULE, add_to_module_linker};
pub use wit::add_to_component_linker;

/// The longest key, in bytes.
pub const MAX_KEY: usize = 512;
/// The largest value.
pub const MAX_VALUE: usize = 16 << 20;
/// The longest bucket identifier.
pub const MAX_BUCKET: usize = 64;
/// How many keys a page of a listing holds by default (and at most).
pub const PAGE: usize = 1000;

/// Why a key-value operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// This instance has no store.
    #[error("this workload has no key-value store (run it with `--kv DIR`)")]
    NoStore,
    /// The bucket identifier is malformed.
    #[error("`{0}` is not a bucket identifier: use 1 to 64 of `A-Z a-z 0-9 _ - .` (or the empty string for `default`)")]
    BadBucket(String),
    /// A key is empty or too long.
    #[error("a key must be 1 to {MAX_KEY} bytes; this one is {0}")]
    BadKey(usize),
    /// A value is too large.
    #[error("a value may be at most {MAX_VALUE} bytes; this one is {0}")]
    TooLarge(usize),
    /// A stored value that should be a number is not one, or the sum overflowed.
    #[error("{0}")]
    NotANumber(String),
    /// The sealed volume failed: quota, integrity, I/O.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// A bucket's name in the volume (its directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketName(String);

impl BucketName {
    /// Checks an identifier; the empty string is `default`.
    ///
    /// # Errors
    /// [`KvError::BadBucket`].
    pub fn parse(identifier: &str) -> Result<Self, KvError> {
        let name = if identifier.is_empty() { "default" } else { identifier };
        let ok = name.len() <= MAX_BUCKET
            && name != "."
            && name != ".."
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok { Ok(BucketName(name.into())) } else { Err(KvError::BadBucket(identifier.into())) }
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY { Err(KvError::BadKey(key.len())) } else { Ok(()) }
}

fn file_of(bucket: &BucketName, key: &str) -> String {
    format!("{}/k{}", bucket.0, hex::encode(key))
}

fn key_of(entry: &DirEntry) -> Option<String> {
    let hex = entry.name.strip_prefix('k')?;
    String::from_utf8(hex::decode(hex).ok()?).ok()
}

/// A sealed key-value store.
pub struct KvStore {
    volume: Mutex<Volume>,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.volume.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("KvStore").field("dir", &v.dir()).field("version", &v.version()).finish()
    }
}

/// A page of keys.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Page {
    /// The keys, in byte order.
    pub keys: Vec<String>,
    /// The last key, when more may follow.
    pub next: Option<String>,
}

impl KvStore {
    /// A store in this open volume.
    pub fn new(volume: Volume) -> Self {
        KvStore { volume: Mutex::new(volume) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Volume> {
        self.volume.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens (creating if needed) a bucket.
    ///
    /// # Errors
    /// [`KvError::BadBucket`], or a volume error.
    pub fn open(&self, identifier: &str) -> Result<BucketName, KvError> {
        let bucket = BucketName::parse(identifier)?;
        let mut v = self.lock();
        match v.stat(&bucket.0) {
            Ok(s) if s.kind == Kind::Dir => {}
            Ok(_) => return Err(KvError::BadBucket(identifier.into())),
            Err(SealError::NotFound(_)) => {
                v.mkdir(&bucket.0)?;
                v.commit()?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(bucket)
    }

    /// A key's value.
    ///
    /// # Errors
    /// [`KvError`] for a bad key or a volume error (integrity errors are also logged).
    pub fn get(&self, bucket: &BucketName, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        read(&mut self.lock(), &file_of(bucket, key))
    }

    /// Whether a key has a value.
    ///
    /// # Errors
    /// As [`KvStore::get`].
    pub fn exists(&self, bucket: &BucketName, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        match self.lock().stat(&file_of(bucket, key)) {
            Ok(_) => Ok(true),
            Err(SealError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a key, durably.
    ///
    /// # Errors
    /// [`KvError`] for a bad key, a value too large, a full quota or a volume error.
    pub fn set(&self, bucket: &BucketName, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.set_many(bucket, &[(key, value)])
    }

    /// Sets several keys in one durable commit.
    ///
    /// # Errors
    /// As [`KvStore::set`]; on an error, nothing of the batch is committed by this call.
    pub fn set_many(&self, bucket: &BucketName, pairs: &[(&str, &[u8])]) -> Result<(), KvError> {
        for (key, value) in pairs {
            check_key(key)?;
            if value.len() > MAX_VALUE {
                return Err(KvError::TooLarge(value.len()));
            }
        }
        // The last value of a key given twice wins, as if set one after the other.
        let last: std::collections::BTreeMap<&str, &[u8]> = pairs.iter().copied().collect();
        let pairs: Vec<(&str, &[u8])> = last.into_iter().collect();
        let mut v = self.lock();
        replace(&mut v, bucket, &pairs)?;
        v.commit()?;
        Ok(())
    }

    /// Removes a key (a missing key is not an error).
    ///
    /// # Errors
    /// As [`KvStore::get`].
    pub fn delete(&self, bucket: &BucketName, key: &str) -> Result<(), KvError> {
        self.delete_many(bucket, &[key])
    }

    /// Removes several keys in one durable commit.
    ///
    /// # Errors
    /// As [`KvStore::get`].
    pub fn delete_many(&self, bucket: &BucketName, keys: &[&str]) -> Result<(), KvError> {
        for key in keys {
            check_key(key)?;
        }
        let mut v = self.lock();
        for key in keys {
            match v.unlink(&file_of(bucket, key)) {
                Ok(()) | Err(SealError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        v.commit()?;
        Ok(())
    }

    /// The keys that start with `prefix`, after `after`, at most `limit` (0: [`PAGE`]).
    ///
    /// # Errors
    /// A volume error.
    pub fn list_prefix(
        &self,
        bucket: &BucketName,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, KvError> {
        let limit = if limit == 0 { PAGE } else { limit.min(PAGE) };
        let mut keys: Vec<String> = self
            .lock()
            .readdir(&bucket.0)?
            .iter()
            .filter(|e| e.kind == Kind::File)
            .filter_map(key_of)
            .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .collect();
        keys.sort_unstable();
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next = if more { keys.last().cloned() } else { None };
        Ok(Page { keys, next })
    }

    /// Sets `key` to `value` if its value is `expected` (`None`: if it is missing). Returns
    /// whether it did.
    ///
    /// # Errors
    /// As [`KvStore::set`].
    pub fn compare_and_swap(
        &self,
        bucket: &BucketName,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, KvError> {
        check_key(key)?;
        if value.len() > MAX_VALUE {
            return Err(KvError::TooLarge(value.len()));
        }
        let path = file_of(bucket, key);
        let mut v = self.lock();
        if read(&mut v, &path)?.as_deref() != expected {
            return Ok(false);
        }
        replace(&mut v, bucket, &[(key, value)])?;
        v.commit()?;
        Ok(true)
    }

    /// Adds `delta` to a decimal counter (0 when missing) and returns the sum.
    ///
    /// # Errors
    /// [`KvError::NotANumber`] when the value is not a decimal `u64` or the sum overflows.
    pub fn increment(&self, bucket: &BucketName, key: &str, delta: u64) -> Result<u64, KvError> {
        check_key(key)?;
        let path = file_of(bucket, key);
        let mut v = self.lock();
        let current = match read(&mut v, &path)? {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| KvError::NotANumber(format!("the value of `{key}` is not a decimal number")))?,
        };
        let sum = current
            .checked_add(delta)
            .ok_or_else(|| KvError::NotANumber(format!("adding {delta} to `{key}` ({current}) overflows")))?;
        replace(&mut v, bucket, &[(key, sum.to_string().as_bytes())])?;
        v.commit()?;
        Ok(sum)
    }
}

fn read(v: &mut Volume, path: &str) -> Result<Option<Vec<u8>>, KvError> {
    let id = match v.open_path(path, OpenFlags::default()) {
        Ok(Opened::File(id)) => id,
        Ok(Opened::Dir) | Err(SealError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = v.file_stat(&id).size;
    let mut buf = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX).min(MAX_VALUE)];
    let mut done = 0;
    let result = loop {
        if done == buf.len() {
            break Ok(());
        }
        match v.read_at(&id, done as u64, &mut buf[done..]) {
            Ok(0) => break Ok(()),
            Ok(n) => done += n,
            Err(e) => break Err(e),
        }
    };
    let closed = v.close(&id);
    result?;
    closed?;
    buf.truncate(done);
    Ok(Some(buf))
}

/// Writes each value beside its key, then moves them all into place: a write that fails (a full
/// quota) leaves every key as it was, and nothing of it reaches the next commit.
fn replace(v: &mut Volume, bucket: &BucketName, pairs: &[(&str, &[u8])]) -> Result<(), KvError> {
    let staged: Vec<(String, String)> =
        pairs.iter().map(|(k, _)| (format!("{}/t{}", bucket.0, hex::encode(k)), file_of(bucket, k))).collect();
    for ((tmp, _), (_, value)) in staged.iter().zip(pairs) {
        if let Err(e) = write(v, tmp, value) {
            for (tmp, _) in &staged {
                let _ = v.unlink(tmp);
            }
            return Err(e);
        }
    }
    for (tmp, path) in &staged {
        v.rename(tmp, path)?;
    }
    Ok(())
}

fn write(v: &mut Volume, path: &str, value: &[u8]) -> Result<(), KvError> {
    let flags = OpenFlags { create: true, truncate: true, ..OpenFlags::default() };
    let Opened::File(id) = v.open_path(path, flags)? else {
        return Err(SealError::IsADirectory(path.into()).into());
    };
    let mut done = 0;
    let result = loop {
        if done == value.len() {
            break Ok(());
        }
        match v.write_at(&id, done as u64, &value[done..]) {
            Ok(0) => break Err(SealError::InvalidPath { path: path.into(), reason: "no progress writing" }),
            Ok(n) => done += n,
            Err(e) => break Err(e),
        }
    };
    let closed = v.close(&id);
    result?;
    closed?;
    Ok(())
}

/// One instance's view of the store: its open buckets.
#[derive(Debug, Default)]
pub struct KvCtx {
    store: Option<Arc<KvStore>>,
    buckets: HashMap<u32, BucketName>,
    next: u32,
}

/// The most buckets one instance may hold open.
pub const MAX_OPEN_BUCKETS: usize = 64;

impl KvCtx {
    /// An instance's view of this store (none: every `open` fails with a message saying how to
    /// give one).
    pub fn new(store: Option<Arc<KvStore>>) -> Self {
        KvCtx { store, buckets: HashMap::new(), next: 1 }
    }

    fn store(&self) -> Result<&KvStore, KvError> {
        self.store.as_deref().ok_or(KvError::NoStore)
    }

    fn open(&mut self, identifier: &str) -> Result<u32, KvError> {
        if self.buckets.len() >= MAX_OPEN_BUCKETS {
            return Err(KvError::BadBucket(format!(
                "{identifier} (an instance may hold {MAX_OPEN_BUCKETS} buckets open)"
            )));
        }
        let bucket = self.store()?.open(identifier)?;
        let id = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        self.buckets.insert(id, bucket);
        Ok(id)
    }

    fn bucket(&self, handle: u32) -> Option<(&KvStore, &BucketName)> {
        Some((self.store.as_deref()?, self.buckets.get(&handle)?))
    }
}

fn log(e: &KvError) {
    if let KvError::Seal(SealError::Integrity { .. } | SealError::Rollback { .. }) = e {
        tracing::error!("sealed key-value store: {e}");
    }
}

#[cfg(test)]
mod tests;
