//! The `lamina:keyvalue` core-ABI imports for modules (declared in `include/lamina.h`).

use lamina_host_abi::{AbiResult, GuestMemory, Status, call};
use lamina_seal::SealError;
use wasmtime::Caller;

use crate::{BucketName, KvCtx, KvError, KvStore, log};

/// The core-ABI module name.
pub const CORE_MODULE: &str = "lamina:keyvalue";

fn status(e: KvError) -> Status {
    log(&e);
    match e {
        KvError::NoStore => Status::Unavailable,
        KvError::BadBucket(_) | KvError::BadKey(_) | KvError::NotANumber(_) => Status::InvalidArgument,
        KvError::TooLarge(_) | KvError::Seal(SealError::QuotaExceeded { .. }) => Status::TooLarge,
        KvError::Seal(_) => Status::Io,
    }
}

fn with<T>(ctx: &KvCtx, handle: u32, f: impl FnOnce(&KvStore, &BucketName) -> Result<T, KvError>) -> AbiResult<T> {
    let (store, bucket) = ctx.bucket(handle).ok_or(Status::BadHandle)?;
    f(store, bucket).map_err(status)
}

fn key(mem: &GuestMemory<'_>, ptr: u32, len: u32) -> AbiResult<String> {
    Ok(mem.str(ptr, len)?.to_owned())
}

/// Adds the core-ABI functions to a module linker:
///
/// - `open(id, id_len, handle_out)`, `close(handle)`
/// - `get(handle, key, key_len, buf, cap, len_out)`: `NOT_FOUND` for a missing key
/// - `set(handle, key, key_len, value, value_len)`, `delete(handle, key, key_len)`
/// - `exists(handle, key, key_len, bool_out)` (a `u32`)
/// - `list(handle, prefix, prefix_len, after, after_len, buf, cap, len_out, more_out)`: the keys
///   that start with the prefix and sort after `after` (empty: from the start), each followed by
///   a NUL byte, as many whole keys as fit; `*more_out` is 1 when more follow
/// - `compare_and_swap(handle, key, key_len, expected, expected_len, has_expected, value,
///   value_len, swapped_out)`
/// - `increment(handle, key, key_len, delta: i64, value_out)` (a `u64`)
///
/// Each returns a status (`include/lamina.h`).
///
/// # Errors
/// When the linker already defines them.
pub fn add_to_module_linker<T: 'static>(
    linker: &mut wasmtime::Linker<T>,
    get: fn(&mut T) -> &mut KvCtx,
) -> wasmtime::Result<()> {
    linker.func_wrap(CORE_MODULE, "open", move |mut c: Caller<'_, T>, id: u32, id_len: u32, out: u32| -> i32 {
        call(&mut c, get, |mem, ctx| {
            let id = mem.str(id, id_len)?.to_owned();
            let handle = ctx.open(&id).map_err(status)?;
            mem.write_u32(out, handle)
        })
    })?;
    linker.func_wrap(CORE_MODULE, "close", move |mut c: Caller<'_, T>, handle: u32| -> i32 {
        call(&mut c, get, |_, ctx| ctx.buckets.remove(&handle).map(|_| ()).ok_or(Status::BadHandle))
    })?;
    linker.func_wrap(
        CORE_MODULE,
        "get",
        move |mut c: Caller<'_, T>, h: u32, k: u32, kl: u32, buf: u32, cap: u32, len_out: u32| -> i32 {
            call(&mut c, get, |mem, ctx| {
                let key = key(mem, k, kl)?;
                let value = with(ctx, h, |s, b| s.get(b, &key))?.ok_or(Status::NotFound)?;
                mem.output(buf, cap, len_out, &value)
            })
        },
    )?;
    linker.func_wrap(
        CORE_MODULE,
        "set",
        move |mut c: Caller<'_, T>, h: u32, k: u32, kl: u32, v: u32, vl: u32| -> i32 {
            call(&mut c, get, |mem, ctx| {
                let key = key(mem, k, kl)?;
                let value = mem.bytes(v, vl)?;
                with(ctx, h, |s, b| s.set(b, &key, value))
            })
        },
    )?;
    linker.func_wrap(CORE_MODULE, "delete", move |mut c: Caller<'_, T>, h: u32, k: u32, kl: u32| -> i32 {
        call(&mut c, get, |mem, ctx| {
            let key = key(mem, k, kl)?;
            with(ctx, h, |s, b| s.delete(b, &key))
        })
    })?;
    linker.func_wrap(CORE_MODULE, "exists", move |mut c: Caller<'_, T>, h: u32, k: u32, kl: u32, out: u32| -> i32 {
        call(&mut c, get, |mem, ctx| {
            let key = key(mem, k, kl)?;
            let found = with(ctx, h, |s, b| s.exists(b, &key))?;
            mem.write_u32(out, u32::from(found))
        })
    })?;
    linker.func_wrap(
        CORE_MODULE,
        "list",
        move |mut c: Caller<'_, T>,
              h: u32,
              p: u32,
              pl: u32,
              a: u32,
              al: u32,
              buf: u32,
              cap: u32,
              len_out: u32,
              more_out: u32|
              -> i32 {
            call(&mut c, get, |mem, ctx| {
                let prefix = key(mem, p, pl)?;
                let after = if al == 0 { None } else { Some(key(mem, a, al)?) };
                let page = with(ctx, h, |s, b| s.list_prefix(b, &prefix, after.as_deref(), 0))?;
                let mut out = Vec::new();
                let mut taken = 0;
                for k in &page.keys {
                    if out.len() + k.len() + 1 > cap as usize {
                        break;
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(0);
                    taken += 1;
                }
                if taken == 0
                    && let Some(first) = page.keys.first()
                {
                    mem.write_u32(len_out, first.len() as u32 + 1)?;
                    return Err(Status::BufferTooSmall);
                }
                let more = taken < page.keys.len() || page.next.is_some();
                mem.write_u32(more_out, u32::from(more))?;
                mem.output(buf, cap, len_out, &out)
            })
        },
    )?;
    linker.func_wrap(
        CORE_MODULE,
        "compare_and_swap",
        move |mut c: Caller<'_, T>,
              h: u32,
              k: u32,
              kl: u32,
              e: u32,
              el: u32,
              has_expected: u32,
              v: u32,
              vl: u32,
              out: u32|
              -> i32 {
            call(&mut c, get, |mem, ctx| {
                let key = key(mem, k, kl)?;
                let expected = if has_expected != 0 { Some(mem.bytes(e, el)?.to_vec()) } else { None };
                let value = mem.bytes(v, vl)?;
                let swapped = with(ctx, h, |s, b| s.compare_and_swap(b, &key, expected.as_deref(), value))?;
                mem.write_u32(out, u32::from(swapped))
            })
        },
    )?;
    linker.func_wrap(
        CORE_MODULE,
        "increment",
        move |mut c: Caller<'_, T>, h: u32, k: u32, kl: u32, delta: i64, out: u32| -> i32 {
            call(&mut c, get, |mem, ctx| {
                let key = key(mem, k, kl)?;
                let delta = u64::try_from(delta).map_err(|_| Status::InvalidArgument)?;
                let value = with(ctx, h, |s, b| s.increment(b, &key, delta))?;
                mem.write_u64(out, value)
            })
        },
    )?;
    Ok(())
}
