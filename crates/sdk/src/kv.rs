//! The sealed key-value store: buckets of keys, each mutation a durable sealed commit.

use crate::bindings::lamina::keyvalue::extras;
use crate::bindings::wasi::keyvalue::{atomics, batch, store};

pub use store::Error;

// The bindings give `Error` its `Display` and `std::error::Error`.

/// A bucket of keys.
pub struct Bucket {
    inner: store::Bucket,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").finish_non_exhaustive()
    }
}

impl Bucket {
    /// Opens a bucket, creating it if needed; `""` is `default`.
    ///
    /// # Errors
    /// [`Error::NoSuchStore`] when the run has no store or the name is malformed.
    pub fn open(name: &str) -> Result<Bucket, Error> {
        Ok(Bucket { inner: store::open(name)? })
    }

    /// A key's value.
    ///
    /// # Errors
    /// [`Error::Other`] for a malformed key or a storage failure.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.inner.get(key)
    }

    /// Sets a key.
    ///
    /// # Errors
    /// [`Error::Other`] for a malformed key, a full quota or a storage failure.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.inner.set(key, value)
    }

    /// Removes a key.
    ///
    /// # Errors
    /// As [`Bucket::get`].
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        self.inner.delete(key)
    }

    /// Whether a key has a value.
    ///
    /// # Errors
    /// As [`Bucket::get`].
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        self.inner.exists(key)
    }

    /// Every key starting with `prefix`, in byte order (fetched page by page).
    ///
    /// # Errors
    /// As [`Bucket::get`].
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        let mut after = None;
        loop {
            let page = extras::list_prefix(&self.inner, prefix, after.as_deref(), 0)?;
            keys.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Sets `key` to `value` if its value is `expected` (`None`: if missing); returns whether
    /// it did.
    ///
    /// # Errors
    /// As [`Bucket::set`].
    pub fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, Error> {
        extras::compare_and_swap(&self.inner, key, expected, value)
    }

    /// Adds `delta` to a decimal counter (0 when missing) and returns the sum.
    ///
    /// # Errors
    /// [`Error::Other`] when the value is not a number or the sum overflows.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
        atomics::increment(&self.inner, key, delta)
    }

    /// Sets several keys in one durable step.
    ///
    /// # Errors
    /// As [`Bucket::set`].
    pub fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        batch::set_many(&self.inner, pairs)
    }
}
