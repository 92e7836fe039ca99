//! The core-module ABI of Lamina's host services.
//!
//! Components reach the services through their WIT interfaces (`wit/`). WASI preview 1 modules,
//! such as C programs built with wasi-libc, import the same functions as plain core functions
//! (`include/lamina.h` declares them): pointers and lengths into the guest's memory in, an
//! [`Status`] out. A guest's ordinary mistake (a missing secret, a buffer too small, a pointer
//! outside its memory) is a status, never a trap. This crate holds what every service needs for
//! that: the status codes, checked reads and writes of guest memory, and [`call`], which runs a
//! host function with both the memory and the service's state borrowed.

#![deny(missing_docs)]

use wasmtime::{Caller, Extern};

/// What a core-ABI host function returns. The numbers are the ABI: `include/lamina.h` has the
/// same table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
#[non_exhaustive]
pub enum Status {
    /// Done.
    Ok = 0,
    /// The thing asked for does not exist (a secret, a key, a store).
    NotFound = 1,
    /// The output buffer is too small; the needed length was written to the length output.
    BufferTooSmall = 2,
    /// An argument is malformed (bad UTF-8, an invalid name or topic, too much user data).
    InvalidArgument = 3,
    /// A size limit would be exceeded (a quota, a payload limit).
    TooLarge = 4,
    /// The workload may not do this.
    Denied = 5,
    /// The service is not configured for this run, or the platform cannot do it.
    Unavailable = 6,
    /// Nothing arrived in time.
    Timeout = 7,
    /// A handle that is not open.
    BadHandle = 8,
    /// A pointer and length outside the guest's memory.
    Fault = 9,
    /// Storage failed (an integrity error, an I/O error); the host log says which.
    Io = 10,
}

impl Status {
    /// The ABI value.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The result of one step of a core-ABI function.
pub type AbiResult<T> = Result<T, Status>;

/// A guest's linear memory, with every access bounds-checked.
#[derive(Debug)]
pub struct GuestMemory<'a> {
    data: &'a mut [u8],
}

impl<'a> GuestMemory<'a> {
    /// Wraps a memory's bytes.
    pub fn new(data: &'a mut [u8]) -> Self {
        GuestMemory { data }
    }

    fn range(&self, ptr: u32, len: u32) -> AbiResult<std::ops::Range<usize>> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Status::Fault)?;
        if end > self.data.len() {
            return Err(Status::Fault);
        }
        Ok(start..end)
    }

    /// The bytes at `ptr..ptr+len`.
    ///
    /// # Errors
    /// [`Status::Fault`] when they are outside the memory.
    pub fn bytes(&self, ptr: u32, len: u32) -> AbiResult<&[u8]> {
        let r = self.range(ptr, len)?;
        Ok(&self.data[r])
    }

    /// The UTF-8 string at `ptr..ptr+len`.
    ///
    /// # Errors
    /// [`Status::Fault`] outside the memory, [`Status::InvalidArgument`] for invalid UTF-8.
    pub fn str(&self, ptr: u32, len: u32) -> AbiResult<&str> {
        std::str::from_utf8(self.bytes(ptr, len)?).map_err(|_| Status::InvalidArgument)
    }

    /// Writes bytes at `ptr`.
    ///
    /// # Errors
    /// [`Status::Fault`] when they do not fit in the memory.
    pub fn write(&mut self, ptr: u32, bytes: &[u8]) -> AbiResult<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| Status::Fault)?;
        let r = self.range(ptr, len)?;
        self.data[r].copy_from_slice(bytes);
        Ok(())
    }

    /// Writes a little-endian `u32` at `ptr`.
    ///
    /// # Errors
    /// [`Status::Fault`] outside the memory.
    pub fn write_u32(&mut self, ptr: u32, value: u32) -> AbiResult<()> {
        self.write(ptr, &value.to_le_bytes())
    }

    /// Writes a little-endian `u64` at `ptr`.
    ///
    /// # Errors
    /// [`Status::Fault`] outside the memory.
    pub fn write_u64(&mut self, ptr: u32, value: u64) -> AbiResult<()> {
        self.write(ptr, &value.to_le_bytes())
    }

    /// The common output convention: the length of `bytes` goes to `len_ptr`, and the bytes go to
    /// `buf` if they fit in `cap`.
    ///
    /// # Errors
    /// [`Status::BufferTooSmall`] when they do not fit (the length is still written, so the guest
    /// can retry with a buffer that large); [`Status::Fault`] outside the memory.
    pub fn output(&mut self, buf: u32, cap: u32, len_ptr: u32, bytes: &[u8]) -> AbiResult<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| Status::TooLarge)?;
        self.write_u32(len_ptr, len)?;
        if len > cap {
            return Err(Status::BufferTooSmall);
        }
        self.write(buf, bytes)
    }
}

/// Runs a core-ABI host function: borrows the caller's exported `memory` and the service state
/// that `get` picks from the store's data, and turns the outcome into the status code.
///
/// A module that exports no memory gets [`Status::Fault`].
pub fn call<T: 'static, S>(
    caller: &mut Caller<'_, T>,
    get: fn(&mut T) -> &mut S,
    f: impl FnOnce(&mut GuestMemory<'_>, &mut S) -> AbiResult<()>,
) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Status::Fault.code();
    };
    let (data, state) = memory.data_and_store_mut(caller);
    let mut mem = GuestMemory::new(data);
    match f(&mut mem, get(state)) {
        Ok(()) => Status::Ok.code(),
        Err(s) => s.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_outside_memory_are_faults() {
        let mut data = vec![0u8; 16];
        let mut mem = GuestMemory::new(&mut data);
        assert_eq!(mem.bytes(8, 8).map(<[u8]>::len), Ok(8));
        assert_eq!(mem.bytes(9, 8), Err(Status::Fault));
        assert_eq!(mem.bytes(u32::MAX, 2), Err(Status::Fault));
        assert_eq!(mem.write_u64(12, 1), Err(Status::Fault));
        assert_eq!(mem.write_u32(12, 7), Ok(()));
    }

    #[test]
    fn output_reports_the_needed_length() {
        let mut data = vec![0u8; 32];
        let mut mem = GuestMemory::new(&mut data);
        assert_eq!(mem.output(0, 4, 28, b"hello"), Err(Status::BufferTooSmall));
        assert_eq!(mem.bytes(28, 4), Ok(&5u32.to_le_bytes()[..]));
        assert_eq!(mem.output(0, 5, 28, b"hello"), Ok(()));
        assert_eq!(mem.bytes(0, 5), Ok(&b"hello"[..]));
    }

    #[test]
    fn invalid_utf8_is_an_invalid_argument() {
        let mut data = vec![0xffu8; 4];
        let mem = GuestMemory::new(&mut data);
        assert_eq!(mem.str(0, 4), Err(Status::InvalidArgument));
    }
}
