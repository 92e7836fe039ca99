//! `wasi:keyvalue` and `lamina:keyvalue/extras` for components.

use wasmtime::component::Resource;

use crate::{KvCtx, KvError, log};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "lamina:keyvalue/imports",
        imports: { default: trappable },
    });
}

use bindings::lamina::keyvalue::extras;
use bindings::wasi::keyvalue::{atomics, batch, store};

type WitResult<T> = wasmtime::Result<Result<T, store::Error>>;

fn wit_error(e: KvError) -> store::Error {
    log(&e);
    match e {
        KvError::NoStore | KvError::BadBucket(_) => store::Error::NoSuchStore,
        other => store::Error::Other(other.to_string()),
    }
}

/// A bucket handle the guest does not own is the host's bug or a forged handle: a trap.
fn closed() -> wasmtime::Error {
    wasmtime::Error::msg("a key-value bucket that is not open")
}

impl KvCtx {
    fn with<T>(
        &self,
        bucket: &Resource<store::Bucket>,
        f: impl FnOnce(&crate::KvStore, &crate::BucketName) -> Result<T, KvError>,
    ) -> WitResult<T> {
        let (store, name) = self.bucket(bucket.rep()).ok_or_else(closed)?;
        Ok(f(store, name).map_err(wit_error))
    }
}

impl store::Host for KvCtx {
    fn open(&mut self, identifier: String) -> WitResult<Resource<store::Bucket>> {
        Ok(KvCtx::open(self, &identifier).map(Resource::new_own).map_err(wit_error))
    }
}

impl store::HostBucket for KvCtx {
    fn get(&mut self, bucket: Resource<store::Bucket>, key: String) -> WitResult<Option<Vec<u8>>> {
        self.with(&bucket, |s, b| s.get(b, &key))
    }

    fn set(&mut self, bucket: Resource<store::Bucket>, key: String, value: Vec<u8>) -> WitResult<()> {
        self.with(&bucket, |s, b| s.set(b, &key, &value))
    }

    fn delete(&mut self, bucket: Resource<store::Bucket>, key: String) -> WitResult<()> {
        self.with(&bucket, |s, b| s.delete(b, &key))
    }

    fn exists(&mut self, bucket: Resource<store::Bucket>, key: String) -> WitResult<bool> {
        self.with(&bucket, |s, b| s.exists(b, &key))
    }

    fn list_keys(&mut self, bucket: Resource<store::Bucket>, cursor: Option<u64>) -> WitResult<store::KeyResponse> {
        // The proposal's cursor is an offset into the bucket's keys in order.
        self.with(&bucket, |s, b| {
            let mut keys = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = s.list_prefix(b, "", after.as_deref(), 0)?;
                keys.extend(page.keys);
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX).min(keys.len());
            let end = start.saturating_add(crate::PAGE).min(keys.len());
            let next = (end < keys.len()).then_some(end as u64);
            Ok(store::KeyResponse { keys: keys.drain(start..end).collect(), cursor: next })
        })
    }

    fn drop(&mut self, bucket: Resource<store::Bucket>) -> wasmtime::Result<()> {
        self.buckets.remove(&bucket.rep());
        Ok(())
    }
}

impl atomics::Host for KvCtx {
    fn increment(&mut self, bucket: Resource<store::Bucket>, key: String, delta: u64) -> WitResult<u64> {
        self.with(&bucket, |s, b| s.increment(b, &key, delta))
    }
}

impl batch::Host for KvCtx {
    fn get_many(
        &mut self,
        bucket: Resource<store::Bucket>,
        keys: Vec<String>,
    ) -> WitResult<Vec<Option<(String, Vec<u8>)>>> {
        self.with(&bucket, |s, b| keys.into_iter().map(|k| Ok(s.get(b, &k)?.map(|v| (k, v)))).collect())
    }

    fn set_many(&mut self, bucket: Resource<store::Bucket>, key_values: Vec<(String, Vec<u8>)>) -> WitResult<()> {
        let pairs: Vec<(&str, &[u8])> = key_values.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        self.with(&bucket, |s, b| s.set_many(b, &pairs))
    }

    fn delete_many(&mut self, bucket: Resource<store::Bucket>, keys: Vec<String>) -> WitResult<()> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.with(&bucket, |s, b| s.delete_many(b, &keys))
    }
}

impl extras::Host for KvCtx {
    fn list_prefix(
        &mut self,
        bucket: Resource<store::Bucket>,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> WitResult<extras::PrefixPage> {
        self.with(&bucket, |s, b| {
            let page = s.list_prefix(b, &prefix, after.as_deref(), limit as usize)?;
            Ok(extras::PrefixPage { keys: page.keys, next: page.next })
        })
    }

    fn compare_and_swap(
        &mut self,
        bucket: Resource<store::Bucket>,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> WitResult<bool> {
        self.with(&bucket, |s, b| s.compare_and_swap(b, &key, expected.as_deref(), &value))
    }
}

/// Adds `wasi:keyvalue/{store,atomics,batch}` and `lamina:keyvalue/extras` to a component
/// linker; `get` finds each instance's context.
///
/// # Errors
/// When the linker already defines them.
pub fn add_to_component_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut KvCtx,
) -> wasmtime::Result<()> {
    type D = wasmtime::component::HasSelf<KvCtx>;
    store::add_to_linker::<T, D>(linker, get)?;
    atomics::add_to_linker::<T, D>(linker, get)?;
    batch::add_to_linker::<T, D>(linker, get)?;
    extras::add_to_linker::<T, D>(linker, get)
}
