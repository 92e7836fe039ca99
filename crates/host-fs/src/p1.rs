//! Preview 1 (`wasi_snapshot_preview1`): [`add_to_linker`] shadows the filesystem functions
//! of wasmtime-wasi's preview 1 implementation with functions that look at the descriptor
//! first. Descriptors of sealed directories and of files opened in them belong to [`SealedFs`]
//! and are served from the volume; every other descriptor goes to wasmtime-wasi as before. Each
//! sealed mount also has an empty, read-only placeholder preopen in the wasmtime-wasi context,
//! which reserves its descriptor number (so the guest's libc finds it among the preopens) and
//! makes any call that is not shadowed fail safely. Files opened in sealed directories get
//! descriptors from a range wasmtime-wasi does not reach.

use std::collections::{HashMap, HashSet};

use lamina_seal::{FileId, Kind, OpenFlags, Opened, SealError, Volume};
use wasmtime::{Caller, Extern, Linker};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::types::{self, Errno};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as wsp1, WasiSnapshotPreview1};
use wiggle::{GuestMemory, GuestPtr};

use crate::{
    MAX_OPEN_FILES, MAX_PATH, SealedMount, check_names_dir, component, dir_only_link_error, ends_in_dot, now_ns,
};

/// The first descriptor number given to files opened in sealed directories. wasmtime-wasi
/// numbers its descriptors upwards from 0 and would need a million open files to get here;
/// should it ever, the collision is refused rather than served.
const FIRST_FILE_FD: u32 = 1 << 30;

type Result<T> = std::result::Result<T, types::Error>;

#[derive(Debug)]
enum Handle {
    Dir {
        mount: usize,
        path: String,
        /// A mount's root as preopened (it stays one when renumbered, as in wasmtime-wasi).
        preopen: bool,
    },
    File {
        mount: usize,
        id: FileId,
        pos: u64,
        append: bool,
        read: bool,
        write: bool,
        /// The flags it reports besides APPEND (NONBLOCK, which changes nothing for a sealed
        /// file; the synchronous-write flags are refused at open, as by wasmtime-wasi).
        flags: types::Fdflags,
    },
}

/// The sealed side of a guest's descriptor table, and where it and wasmtime-wasi's meet.
///
/// A guest sees one table of numbers. Most name either a sealed handle (`fds`) or one of
/// wasmtime-wasi's descriptors under the same number. `fd_renumber` can move one kind onto a
/// number of the other, as a program redirecting its standard output into a sealed file does:
/// a sealed handle moved onto one of wasmtime-wasi's numbers sits above that descriptor
/// (`under`), which stays open, so that wasmtime-wasi never hands the number out again, until
/// the guest closes the number; one of wasmtime-wasi's descriptors moved onto a sealed number is
/// an alias (`aliases`: the guest's number, wasmtime-wasi's), and its own number is `hidden`
/// (EBADF) while the alias lasts.
#[derive(Debug, Default)]
pub struct SealedFs {
    mounts: Vec<SealedMount>,
    fds: HashMap<u32, Handle>,
    /// Numbers with a sealed handle above a wasmtime-wasi descriptor: the sealed preopens'
    /// placeholders, and what `fd_renumber` moved a sealed handle onto.
    under: HashSet<u32>,
    /// Guest numbers that stand for a wasmtime-wasi descriptor of another number.
    aliases: HashMap<u32, u32>,
    /// wasmtime-wasi numbers an alias stands for: the guest cannot name them itself.
    hidden: HashSet<u32>,
    next_fd: u32,
}

/// What a guest's descriptor number names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// A sealed handle.
    Sealed,
    /// One of wasmtime-wasi's descriptors, under another number.
    Alias(u32),
    /// Nothing: an alias stands for wasmtime-wasi's descriptor of this number (EBADF).
    Hidden,
    /// wasmtime-wasi's own descriptor of this number, or nothing (wasmtime-wasi says which).
    Host,
}

impl SealedFs {
    /// Serves `mounts` at descriptors `first_preopen`, `first_preopen + 1`, …: the numbers of
    /// their placeholder preopens in the wasmtime-wasi context (3 plus the number of ordinary
    /// preopens before them).
    pub fn new(mounts: Vec<SealedMount>, first_preopen: u32) -> Self {
        let mut fds = HashMap::new();
        let mut under = HashSet::new();
        for (i, _) in mounts.iter().enumerate() {
            let fd = first_preopen + i as u32;
            fds.insert(fd, Handle::Dir { mount: i, path: String::new(), preopen: true });
            under.insert(fd);
        }
        Self { mounts, fds, under, aliases: HashMap::new(), hidden: HashSet::new(), next_fd: FIRST_FILE_FD }
    }

    /// Whether a descriptor is served here (a sealed handle, or a number `fd_renumber` hid).
    pub fn owns(&self, fd: u32) -> bool {
        self.fds.contains_key(&fd) || self.hidden.contains(&fd)
    }

    /// What `fd` names.
    fn slot(&self, fd: u32) -> Slot {
        if let Some(real) = self.aliases.get(&fd) {
            Slot::Alias(*real)
        } else if self.fds.contains_key(&fd) {
            Slot::Sealed
        } else if self.hidden.contains(&fd) {
            Slot::Hidden
        } else {
            Slot::Host
        }
    }

    /// Commits every volume (the guest ended): what it wrote becomes durable.
    ///
    /// # Errors
    /// The first volume that fails to commit.
    pub fn commit_all(&mut self) -> std::result::Result<(), SealError> {
        let ids: Vec<(usize, FileId)> = self
            .fds
            .values()
            .filter_map(|h| match h {
                Handle::File { mount, id, .. } => Some((*mount, *id)),
                Handle::Dir { .. } => None,
            })
            .collect();
        let mut first = None;
        for (mount, id) in ids {
            if let Err(e) = self.mounts[mount].volume.close(&id) {
                first.get_or_insert(e);
            }
        }
        self.fds.retain(|_, h| matches!(h, Handle::Dir { .. }));
        for mount in &mut self.mounts {
            if let Err(e) = mount.volume.commit() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The mount whose root `fd` is as preopened.
    fn preopen(&self, fd: types::Fd) -> Result<usize> {
        match self.fds.get(&u32::from(fd)) {
            Some(Handle::Dir { mount, preopen: true, .. }) => Ok(*mount),
            _ => Err(Errno::Badf.into()),
        }
    }

    /// Closes the sealed handle at `fd` (a preopen too: the volume stays mounted for the commit
    /// at exit).
    fn close_sealed(&mut self, fd: u32) -> std::result::Result<(), Errno> {
        match self.fds.remove(&fd) {
            Some(Handle::File { mount, id, .. }) => self.mounts[mount].volume.close(&id).map_err(errno_of),
            Some(Handle::Dir { .. }) => Ok(()),
            None => Err(Errno::Badf),
        }
    }

    /// Closes what the guest's number `fd` names (a sealed handle or an alias), leaving what lies
    /// under it, for something else to take the number.
    fn release(&mut self, wasi: &mut WasiP1Ctx, memory: &mut GuestMemory<'_>, fd: u32) -> Call {
        if let Some(real) = self.aliases.remove(&fd) {
            self.hidden.remove(&real);
            return close_host(wasi, memory, real);
        }
        Ok(self.close_sealed(fd))
    }

    fn handle(&mut self, fd: types::Fd) -> Result<&mut Handle> {
        self.fds.get_mut(&u32::from(fd)).ok_or_else(|| Errno::Badf.into())
    }

    fn file(&mut self, fd: types::Fd) -> Result<(&mut Volume, FileId, &mut u64, bool, bool, bool)> {
        if matches!(self.fds.get(&u32::from(fd)), Some(Handle::Dir { .. })) {
            // As wasmtime-wasi answers a file operation on a directory's descriptor.
            return Err(Errno::Badf.into());
        }
        let Some(Handle::File { mount, id, pos, append, read, write, .. }) = self.fds.get_mut(&u32::from(fd)) else {
            return Err(Errno::Badf.into());
        };
        Ok((&mut self.mounts[*mount].volume, *id, pos, *append, *read, *write))
    }

    /// The mount and the volume path a (directory descriptor, relative path) pair names, by
    /// [`Volume::resolve`]: links on the way followed, the last one when `follow`; and whether
    /// the path can name only a directory (a trailing `/`, `.` or `..`).
    fn resolve(&self, fd: types::Fd, relative: &str, follow: bool) -> Result<(usize, String, bool)> {
        let Some(Handle::Dir { mount, path: base, .. }) = self.fds.get(&u32::from(fd)) else {
            return Err(if self.fds.contains_key(&u32::from(fd)) { Errno::Notdir } else { Errno::Badf }.into());
        };
        let resolved = self.mounts[*mount].volume.resolve(base, relative, follow).map_err(fail)?;
        Ok((*mount, resolved.path, resolved.dir_only))
    }

    fn allocate_fd(&mut self, handle: Handle) -> Result<types::Fd> {
        for _ in 0..1024 {
            let fd = self.next_fd;
            self.next_fd = self.next_fd.checked_add(1).unwrap_or(FIRST_FILE_FD);
            if let std::collections::hash_map::Entry::Vacant(slot) = self.fds.entry(fd) {
                slot.insert(handle);
                return Ok(fd.into());
            }
        }
        Err(Errno::Nfile.into())
    }
}

/// A sealed-volume error as the guest's error number: the component layers' classification
/// (`component::fail`, which logs what is not logged where it was detected), in preview 1's
/// names.
fn fail(e: SealError) -> types::Error {
    errno_of(e).into()
}

/// [`fail`]'s error number.
fn errno_of(e: SealError) -> Errno {
    match component::fail(e) {
        component::Errno::BadDescriptor => Errno::Badf,
        component::Errno::Busy => Errno::Busy,
        component::Errno::CrossDevice => Errno::Xdev,
        component::Errno::Exist => Errno::Exist,
        component::Errno::FileTooLarge => Errno::Fbig,
        component::Errno::InsufficientMemory => Errno::Nomem,
        component::Errno::Invalid => Errno::Inval,
        component::Errno::Io => Errno::Io,
        component::Errno::IsDirectory => Errno::Isdir,
        component::Errno::Loop => Errno::Loop,
        component::Errno::NameTooLong => Errno::Nametoolong,
        component::Errno::NoEntry => Errno::Noent,
        component::Errno::NotDirectory => Errno::Notdir,
        component::Errno::NotEmpty => Errno::Notempty,
        component::Errno::NotPermitted => Errno::Perm,
        component::Errno::Quota => Errno::Dquot,
    }
}

fn filetype(kind: Kind) -> types::Filetype {
    match kind {
        Kind::File => types::Filetype::RegularFile,
        Kind::Dir => types::Filetype::Directory,
        Kind::Symlink => types::Filetype::SymbolicLink,
    }
}

fn filestat(stat: lamina_seal::Stat) -> types::Filestat {
    let time = u64::try_from(stat.mtime).unwrap_or(0);
    types::Filestat {
        dev: 0,
        ino: stat.ino,
        filetype: filetype(stat.kind),
        nlink: stat.links,
        size: stat.size,
        atim: u64::try_from(stat.atime).unwrap_or(0),
        mtim: time,
        ctim: time,
    }
}

/// Store data that holds both descriptor tables.
pub trait SealedView: Send {
    /// The wasmtime-wasi context and the sealed filesystem.
    fn split(&mut self) -> (&mut WasiP1Ctx, &mut SealedFs);
}

/// Runs a shadowed preview 1 call on the guest's memory and both descriptor tables. wasmtime-wasi
/// bounds what one call may copy by the store's hostcall fuel, handed over before each call as
/// its own glue does.
fn with_parts<T: SealedView>(
    caller: &mut Caller<'_, T>,
    call: impl FnOnce(&mut WasiP1Ctx, &mut SealedFs, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("missing required memory export");
    };
    let fuel = wasmtime::AsContextMut::as_context_mut(&mut *caller).hostcall_fuel();
    let (bytes, data) = memory.data_and_store_mut(&mut *caller);
    let mut memory = GuestMemory::Unshared(bytes);
    let (wasi, sealed) = data.split();
    wasi.set_hostcall_fuel(fuel);
    call(wasi, sealed, &mut memory)
}

/// Shadows the filesystem functions of `wasi_snapshot_preview1` in a linker that already has
/// wasmtime-wasi's (`wasmtime_wasi::p1::add_to_linker_sync`).
///
/// # Errors
/// When the linker refuses a definition.
pub fn add_to_linker<T: SealedView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    macro_rules! shadow {
        // $fd: the argument that decides who serves the call; `async` for wasmtime-wasi's
        // asynchronous functions.
        ($kind:ident $name:ident ($($arg:ident : $ty:ty),*) by $fd:ident) => {
            linker.func_wrap(
                "wasi_snapshot_preview1",
                stringify!($name),
                |mut caller: Caller<'_, T>, $($arg: $ty),*| -> wasmtime::Result<i32> {
                    with_parts(&mut caller, |wasi, sealed, memory| match sealed.slot($fd as u32) {
                        // The sealed side answers EBADF for a hidden number.
                        Slot::Sealed | Slot::Hidden => shadow!(@call $kind wsp1::$name(sealed, memory, $($arg),*)),
                        Slot::Alias(real) => {
                            let $fd = real as i32;
                            shadow!(@call $kind wsp1::$name(wasi, memory, $($arg),*))
                        }
                        Slot::Host => shadow!(@call $kind wsp1::$name(wasi, memory, $($arg),*)),
                    })
                },
            )?;
        };
        (@call async $call:expr) => { Ok(wasmtime_wasi::runtime::in_tokio($call)?) };
        (@call sync $call:expr) => { Ok($call?) };
    }
    shadow!(async fd_advise(fd: i32, offset: i64, len: i64, advice: i32) by fd);
    shadow!(sync fd_allocate(fd: i32, offset: i64, len: i64) by fd);
    // Closing a number closes whatever it names, and what lies under it: a sealed preopen's
    // placeholder is closed with it, so the descriptor is gone (EBADF from then on) rather than
    // left pointing at the placeholder.
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "fd_close",
        |mut caller: Caller<'_, T>, fd: i32| -> wasmtime::Result<i32> {
            with_parts(&mut caller, |wasi, sealed, memory| Ok(errno(close(wasi, sealed, memory, fd as u32)?)))
        },
    )?;
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "fd_renumber",
        |mut caller: Caller<'_, T>, from: i32, to: i32| -> wasmtime::Result<i32> {
            with_parts(&mut caller, |wasi, sealed, memory| {
                Ok(errno(renumber(wasi, sealed, memory, from as u32, to as u32)?))
            })
        },
    )?;
    shadow!(async fd_datasync(fd: i32) by fd);
    shadow!(async fd_fdstat_get(fd: i32, out: i32) by fd);
    shadow!(sync fd_fdstat_set_flags(fd: i32, flags: i32) by fd);
    shadow!(sync fd_fdstat_set_rights(fd: i32, base: i64, inheriting: i64) by fd);
    shadow!(async fd_filestat_get(fd: i32, out: i32) by fd);
    shadow!(async fd_filestat_set_size(fd: i32, size: i64) by fd);
    shadow!(async fd_filestat_set_times(fd: i32, atim: i64, mtim: i64, flags: i32) by fd);
    shadow!(async fd_pread(fd: i32, iovs: i32, iovs_len: i32, offset: i64, out: i32) by fd);
    shadow!(sync fd_prestat_get(fd: i32, out: i32) by fd);
    shadow!(sync fd_prestat_dir_name(fd: i32, path: i32, len: i32) by fd);
    shadow!(async fd_pwrite(fd: i32, iovs: i32, iovs_len: i32, offset: i64, out: i32) by fd);
    shadow!(async fd_read(fd: i32, iovs: i32, iovs_len: i32, out: i32) by fd);
    shadow!(async fd_readdir(fd: i32, buf: i32, len: i32, cookie: i64, out: i32) by fd);
    shadow!(async fd_seek(fd: i32, offset: i64, whence: i32, out: i32) by fd);
    shadow!(async fd_sync(fd: i32) by fd);
    shadow!(sync fd_tell(fd: i32, out: i32) by fd);
    shadow!(async fd_write(fd: i32, iovs: i32, iovs_len: i32, out: i32) by fd);
    shadow!(async path_create_directory(fd: i32, path: i32, len: i32) by fd);
    shadow!(async path_filestat_get(fd: i32, flags: i32, path: i32, len: i32, out: i32) by fd);
    shadow!(async path_filestat_set_times(fd: i32, flags: i32, path: i32, len: i32, atim: i64, mtim: i64, fst: i32) by fd);
    shadow!(async path_link(fd: i32, flags: i32, path: i32, len: i32, to_fd: i32, to: i32, to_len: i32) by fd);
    shadow!(async path_open(fd: i32, dirflags: i32, path: i32, len: i32, oflags: i32, base: i64, inheriting: i64, fdflags: i32, out: i32) by fd);
    shadow!(async path_readlink(fd: i32, path: i32, len: i32, buf: i32, buf_len: i32, out: i32) by fd);
    shadow!(async path_remove_directory(fd: i32, path: i32, len: i32) by fd);
    shadow!(async path_rename(fd: i32, path: i32, len: i32, to_fd: i32, to: i32, to_len: i32) by fd);
    shadow!(async path_symlink(path: i32, len: i32, fd: i32, to: i32, to_len: i32) by fd);
    shadow!(async path_unlink_file(fd: i32, path: i32, len: i32) by fd);
    Ok(())
}

/// A path the guest passed, bounded in length.
fn path_str(memory: &GuestMemory<'_>, path: GuestPtr<str>) -> Result<String> {
    if path.len() > MAX_PATH {
        return Err(Errno::Nametoolong.into());
    }
    Ok(memory.as_cow_str(path)?.into_owned())
}

/// A preview 1 call's result as the number the guest gets.
fn errno(result: std::result::Result<(), Errno>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => e as i32,
    }
}

/// The outcome of a call that spans both tables: the guest's error number, or a trap of
/// wasmtime-wasi's, which ends the guest.
type Call = wasmtime::Result<std::result::Result<(), Errno>>;

/// One of wasmtime-wasi's calls that returns nothing, by its error number.
fn host_call(code: wasmtime::Result<i32>) -> Call {
    Ok(match code? {
        0 => Ok(()),
        n => Err(Errno::try_from(n).unwrap_or(Errno::Io)),
    })
}

/// Closes wasmtime-wasi's descriptor `fd`.
fn close_host(wasi: &mut WasiP1Ctx, memory: &mut GuestMemory<'_>, fd: u32) -> Call {
    host_call(wasmtime_wasi::runtime::in_tokio(wsp1::fd_close(wasi, memory, fd as i32)))
}

/// `fd_close` across both tables: what the number names, then what lies under it.
fn close(wasi: &mut WasiP1Ctx, sealed: &mut SealedFs, memory: &mut GuestMemory<'_>, fd: u32) -> Call {
    let closed = match sealed.slot(fd) {
        Slot::Host => return close_host(wasi, memory, fd),
        Slot::Hidden => return Ok(Err(Errno::Badf)),
        Slot::Sealed | Slot::Alias(_) => sealed.release(wasi, memory, fd)?,
    };
    if sealed.under.remove(&fd) {
        let under = close_host(wasi, memory, fd)?;
        return Ok(closed.and(under));
    }
    Ok(closed)
}

/// `fd_renumber` across both tables: `to` comes to name what `from` names, whatever `to` named
/// before is closed, and `from` is free. A renumber that fails closes nothing.
fn renumber(wasi: &mut WasiP1Ctx, sealed: &mut SealedFs, memory: &mut GuestMemory<'_>, from: u32, to: u32) -> Call {
    let (from_slot, to_slot) = (sealed.slot(from), sealed.slot(to));
    match (from_slot, to_slot) {
        (Slot::Hidden, _) | (_, Slot::Hidden) => return Ok(Err(Errno::Badf)),
        // Both wasmtime-wasi's own: it checks both and moves its descriptor.
        (Slot::Host, Slot::Host) => {
            return host_call(wasmtime_wasi::runtime::in_tokio(wsp1::fd_renumber(
                wasi,
                memory,
                from as i32,
                to as i32,
            )));
        }
        _ if from == to => return Ok(Ok(())),
        _ => {}
    }
    if (from_slot == Slot::Host && !host_open(wasi, memory, from))
        || (to_slot == Slot::Host && !host_open(wasi, memory, to))
    {
        return Ok(Err(Errno::Badf));
    }
    if to_slot == Slot::Host {
        // What comes onto one of wasmtime-wasi's numbers sits above its descriptor.
        sealed.under.insert(to);
    } else if let Err(e) = sealed.release(wasi, memory, to)? {
        // Whatever `to` named is closed; what lies under it stays under the newcomer.
        return Ok(Err(e));
    }
    match from_slot {
        Slot::Alias(real) => {
            sealed.aliases.remove(&from);
            sealed.aliases.insert(to, real);
        }
        Slot::Sealed => {
            if let Some(handle) = sealed.fds.remove(&from) {
                sealed.fds.insert(to, handle);
            }
        }
        Slot::Host | Slot::Hidden => {
            // One of wasmtime-wasi's own descriptors: `to` stands for it, its number hidden.
            sealed.aliases.insert(to, from);
            sealed.hidden.insert(from);
            return Ok(Ok(()));
        }
    }
    if sealed.under.remove(&from) {
        return close_host(wasi, memory, from);
    }
    Ok(Ok(()))
}

/// Whether wasmtime-wasi has a descriptor open under `fd`.
fn host_open(wasi: &mut WasiP1Ctx, memory: &mut GuestMemory<'_>, fd: u32) -> bool {
    wasmtime_wasi::runtime::in_tokio(WasiSnapshotPreview1::fd_fdstat_get(wasi, memory, types::Fd::from(fd))).is_ok()
}

/// Reads from a file into the guest's buffers; `offset` is `None` to use and advance the
/// position.
fn read_into(
    sealed: &mut SealedFs,
    memory: &mut GuestMemory<'_>,
    fd: types::Fd,
    iovs: types::IovecArray,
    offset: Option<u64>,
) -> Result<types::Size> {
    let (volume, id, pos, _, readable, _) = sealed.file(fd)?;
    if !readable {
        return Err(Errno::Badf.into());
    }
    let mut at = offset.unwrap_or(*pos);
    let mut total: u32 = 0;
    for iov in iovs.iter() {
        let iov: types::Iovec = memory.read(iov?)?;
        if iov.buf_len == 0 {
            continue;
        }
        let buf = iov.buf.as_array(iov.buf_len);
        let n = match memory.as_slice_mut(buf)? {
            Some(slice) => volume.read_at(&id, at, slice).map_err(fail)?,
            None => {
                let mut tmp = vec![0; iov.buf_len as usize];
                let n = volume.read_at(&id, at, &mut tmp).map_err(fail)?;
                memory.copy_from_slice(&tmp[..n], buf.as_ptr().as_array(n as u32))?;
                n
            }
        };
        at += n as u64;
        total += n as u32;
        if n < iov.buf_len as usize {
            break;
        }
    }
    if offset.is_none() {
        *pos = at;
    }
    Ok(total)
}

/// Writes the guest's buffers to a file; `offset` is `None` to use and advance the position
/// (or the end, in append mode).
fn write_from(
    sealed: &mut SealedFs,
    memory: &GuestMemory<'_>,
    fd: types::Fd,
    ciovs: types::CiovecArray,
    offset: Option<u64>,
) -> Result<types::Size> {
    let (volume, id, pos, append, _, writable) = sealed.file(fd)?;
    if !writable {
        return Err(Errno::Badf.into());
    }
    let mut at = match offset {
        Some(o) => o,
        None if append => volume.file_stat(&id).size,
        None => *pos,
    };
    let mut total: u32 = 0;
    for ciov in ciovs.iter() {
        let ciov: types::Ciovec = memory.read(ciov?)?;
        if ciov.buf_len == 0 {
            continue;
        }
        let bytes = memory.as_cow(ciov.buf.as_array(ciov.buf_len))?;
        volume.write_at(&id, at, &bytes).map_err(fail)?;
        at += bytes.len() as u64;
        total += bytes.len() as u32;
    }
    if offset.is_none() {
        *pos = at;
    }
    Ok(total)
}

/// The access and modification times `fd_filestat_set_times` and `path_filestat_set_times`
/// ask for; `None` for one to leave as it is.
type NewTimes = (Option<i64>, Option<i64>);

fn set_times(fst: types::Fstflags, atim: types::Timestamp, mtim: types::Timestamp) -> Result<NewTimes> {
    use types::Fstflags as F;
    // A time and "now" at once is a contradiction (EINVAL), for either time.
    if fst.contains(F::MTIM | F::MTIM_NOW) || fst.contains(F::ATIM | F::ATIM_NOW) {
        return Err(Errno::Inval.into());
    }
    let one = |given: F, now: F, t: types::Timestamp| {
        if fst.contains(now) {
            Some(now_ns())
        } else if fst.contains(given) {
            Some(i64::try_from(t).unwrap_or(i64::MAX))
        } else {
            None
        }
    };
    Ok((one(F::ATIM, F::ATIM_NOW, atim), one(F::MTIM, F::MTIM_NOW, mtim)))
}

/// Called for descriptors [`SealedFs`] owns; the functions it does not shadow are never called.
impl WasiSnapshotPreview1 for SealedFs {
    fn set_hostcall_fuel(&mut self, _fuel: usize) {}

    fn args_get(&mut self, _: &mut GuestMemory<'_>, _: GuestPtr<GuestPtr<u8>>, _: GuestPtr<u8>) -> Result<()> {
        Err(Errno::Nosys.into())
    }

    fn args_sizes_get(&mut self, _: &mut GuestMemory<'_>) -> Result<(types::Size, types::Size)> {
        Err(Errno::Nosys.into())
    }

    fn environ_get(&mut self, _: &mut GuestMemory<'_>, _: GuestPtr<GuestPtr<u8>>, _: GuestPtr<u8>) -> Result<()> {
        Err(Errno::Nosys.into())
    }

    fn environ_sizes_get(&mut self, _: &mut GuestMemory<'_>) -> Result<(types::Size, types::Size)> {
        Err(Errno::Nosys.into())
    }

    fn clock_res_get(&mut self, _: &mut GuestMemory<'_>, _: types::Clockid) -> Result<types::Timestamp> {
        Err(Errno::Nosys.into())
    }

    fn clock_time_get(
        &mut self,
        _: &mut GuestMemory<'_>,
        _: types::Clockid,
        _: types::Timestamp,
    ) -> Result<types::Timestamp> {
        Err(Errno::Nosys.into())
    }

    async fn fd_advise(
        &mut self,
        _: &mut GuestMemory<'_>,
        fd: types::Fd,
        _: types::Filesize,
        _: types::Filesize,
        _: types::Advice,
    ) -> Result<()> {
        self.handle(fd).map(|_| ())
    }

    fn fd_allocate(
        &mut self,
        _: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filesize,
        len: types::Filesize,
    ) -> Result<()> {
        let (volume, id, ..) = self.file(fd)?;
        let end = offset.checked_add(len).ok_or(Errno::Fbig)?;
        if end > volume.file_stat(&id).size {
            volume.set_len(&id, end).map_err(fail)?;
        }
        Ok(())
    }

    async fn fd_close(&mut self, _: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        // `close` serves it across both tables, with what lies under the number.
        Ok(self.close_sealed(u32::from(fd))?)
    }

    async fn fd_datasync(&mut self, m: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        self.fd_sync(m, fd).await
    }

    async fn fd_fdstat_get(&mut self, _: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Fdstat> {
        use types::Rights as R;
        // What wasmtime-wasi reports for the same descriptor of a plain directory.
        if let Handle::Dir { preopen: true, .. } = self.handle(fd)? {
            let base = R::PATH_CREATE_DIRECTORY
                | R::PATH_CREATE_FILE
                | R::PATH_LINK_SOURCE
                | R::PATH_LINK_TARGET
                | R::PATH_OPEN
                | R::FD_READDIR
                | R::PATH_READLINK
                | R::PATH_RENAME_SOURCE
                | R::PATH_RENAME_TARGET
                | R::PATH_SYMLINK
                | R::PATH_REMOVE_DIRECTORY
                | R::PATH_UNLINK_FILE
                | R::PATH_FILESTAT_GET
                | R::PATH_FILESTAT_SET_TIMES
                | R::FD_FILESTAT_GET
                | R::FD_FILESTAT_SET_TIMES;
            let inheriting = base
                | R::FD_DATASYNC
                | R::FD_READ
                | R::FD_SEEK
                | R::FD_FDSTAT_SET_FLAGS
                | R::FD_SYNC
                | R::FD_TELL
                | R::FD_WRITE
                | R::FD_ADVISE
                | R::FD_ALLOCATE
                | R::FD_FILESTAT_GET
                | R::FD_FILESTAT_SET_SIZE
                | R::FD_FILESTAT_SET_TIMES
                | R::POLL_FD_READWRITE;
            return Ok(types::Fdstat {
                fs_filetype: types::Filetype::Directory,
                fs_flags: types::Fdflags::empty(),
                fs_rights_base: base,
                fs_rights_inheriting: inheriting,
            });
        }
        let (filetype, flags, rights) = match self.handle(fd)? {
            // A directory is never opened for writing here (EISDIR).
            Handle::Dir { .. } => (
                types::Filetype::Directory,
                types::Fdflags::empty(),
                R::all() & !(R::FD_SEEK | R::FD_FILESTAT_SET_SIZE | R::PATH_FILESTAT_SET_SIZE | R::FD_WRITE),
            ),
            Handle::File { append, read, write, flags, .. } => {
                let mut rights = R::all();
                if !*read {
                    rights &= !(R::FD_READ | R::FD_READDIR);
                }
                if !*write {
                    rights &= !R::FD_WRITE;
                }
                let shown = if *append { *flags | types::Fdflags::APPEND } else { *flags };
                (types::Filetype::RegularFile, shown, rights)
            }
        };
        Ok(types::Fdstat {
            fs_filetype: filetype,
            fs_flags: flags,
            fs_rights_base: rights,
            fs_rights_inheriting: rights,
        })
    }

    fn fd_fdstat_set_flags(&mut self, _: &mut GuestMemory<'_>, fd: types::Fd, flags: types::Fdflags) -> Result<()> {
        match self.handle(fd)? {
            Handle::File { append, flags: kept, .. } => {
                // As wasmtime-wasi: only APPEND and NONBLOCK can change.
                if flags.intersects(types::Fdflags::DSYNC | types::Fdflags::SYNC | types::Fdflags::RSYNC) {
                    return Err(Errno::Inval.into());
                }
                *append = flags.contains(types::Fdflags::APPEND);
                kept.set(types::Fdflags::NONBLOCK, flags.contains(types::Fdflags::NONBLOCK));
                Ok(())
            }
            Handle::Dir { .. } => Err(Errno::Badf.into()),
        }
    }

    fn fd_fdstat_set_rights(
        &mut self,
        _: &mut GuestMemory<'_>,
        fd: types::Fd,
        _: types::Rights,
        _: types::Rights,
    ) -> Result<()> {
        // As wasmtime-wasi: rights cannot be changed.
        self.handle(fd)?;
        Err(Errno::Notsup.into())
    }

    async fn fd_filestat_get(&mut self, _: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Filestat> {
        let stat = match self.handle(fd)? {
            Handle::Dir { mount, path, .. } => {
                let (mount, path) = (*mount, path.clone());
                self.mounts[mount].volume.stat(&path).map_err(fail)?
            }
            Handle::File { mount, id, .. } => {
                let (mount, id) = (*mount, *id);
                self.mounts[mount].volume.file_stat(&id)
            }
        };
        Ok(filestat(stat))
    }

    async fn fd_filestat_set_size(
        &mut self,
        _: &mut GuestMemory<'_>,
        fd: types::Fd,
        size: types::Filesize,
    ) -> Result<()> {
        let (volume, id, _, _, _, writable) = self.file(fd)?;
        if !writable {
            return Err(Errno::Badf.into());
        }
        volume.set_len(&id, size).map_err(fail)
    }

    async fn fd_filestat_set_times(
        &mut self,
        _: &mut GuestMemory<'_>,
        fd: types::Fd,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst: types::Fstflags,
    ) -> Result<()> {
        let (atime, mtime) = set_times(fst, atim, mtim)?;
        if (atime, mtime) == (None, None) {
            return self.handle(fd).map(|_| ());
        }
        match self.handle(fd)? {
            Handle::Dir { mount, path, .. } => {
                let (mount, path) = (*mount, path.clone());
                self.mounts[mount].volume.set_times(&path, atime, mtime).map_err(fail)
            }
            Handle::File { mount, id, .. } => {
                let (mount, id) = (*mount, *id);
                self.mounts[mount].volume.set_file_times(&id, atime, mtime).map_err(fail)
            }
        }
    }

    async fn fd_read(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
    ) -> Result<types::Size> {
        read_into(self, memory, fd, iovs, None)
    }

    async fn fd_pread(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size> {
        read_into(self, memory, fd, iovs, Some(offset))
    }

    async fn fd_write(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
    ) -> Result<types::Size> {
        write_from(self, memory, fd, ciovs, None)
    }

    async fn fd_pwrite(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size> {
        write_from(self, memory, fd, ciovs, Some(offset))
    }

    fn fd_prestat_get(&mut self, _: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Prestat> {
        let index = self.preopen(fd)?;
        let len = self.mounts[index].guest.len() as u32;
        Ok(types::Prestat::Dir(types::PrestatDir { pr_name_len: len }))
    }

    fn fd_prestat_dir_name(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<u8>,
        max: types::Size,
    ) -> Result<()> {
        let index = self.preopen(fd)?;
        let name = self.mounts[index].guest.as_bytes();
        if name.len() > max as usize {
            return Err(Errno::Nametoolong.into());
        }
        memory.copy_from_slice(name, path.as_array(name.len() as u32))?;
        Ok(())
    }

    async fn fd_renumber(&mut self, _: &mut GuestMemory<'_>, _: types::Fd, _: types::Fd) -> Result<()> {
        // `renumber` serves it across both tables.
        Err(Errno::Nosys.into())
    }

    async fn fd_seek(
        &mut self,
        _: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filedelta,
        whence: types::Whence,
    ) -> Result<types::Filesize> {
        let (volume, id, pos, ..) = self.file(fd)?;
        let base = match whence {
            types::Whence::Set => 0,
            types::Whence::Cur => *pos as i128,
            types::Whence::End => volume.file_stat(&id).size as i128,
        };
        let target = base + i128::from(offset);
        *pos = u64::try_from(target).map_err(|_| Errno::Inval)?;
        Ok(*pos)
    }

    async fn fd_sync(&mut self, _: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        let mount = match self.handle(fd)? {
            Handle::Dir { mount, .. } | Handle::File { mount, .. } => *mount,
        };
        self.mounts[mount].volume.commit().map_err(|e| {
            tracing::error!("sealed volume {}: commit failed: {e}", self.mounts[mount].volume.dir().display());
            fail(e)
        })
    }

    fn fd_tell(&mut self, _: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Filesize> {
        let (_, _, pos, ..) = self.file(fd)?;
        Ok(*pos)
    }

    async fn fd_readdir(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
        cookie: types::Dircookie,
    ) -> Result<types::Size> {
        let Handle::Dir { mount, path, .. } = self.handle(fd)? else { return Err(Errno::Notdir.into()) };
        let (mount, path) = (*mount, path.clone());
        let volume = &self.mounts[mount].volume;
        let own = volume.stat(&path).map_err(fail)?.ino;
        let mut entries = vec![(".".to_owned(), Kind::Dir, own), ("..".to_owned(), Kind::Dir, own)];
        entries.extend(volume.readdir(&path).map_err(fail)?.into_iter().map(|e| (e.name, e.kind, e.ino)));
        let mut out = Vec::new();
        for (n, (name, kind, ino)) in
            entries.into_iter().enumerate().skip(usize::try_from(cookie).unwrap_or(usize::MAX))
        {
            if out.len() >= buf_len as usize {
                break;
            }
            out.extend_from_slice(&(n as u64 + 1).to_le_bytes());
            out.extend_from_slice(&ino.to_le_bytes());
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.push(filetype(kind) as u8);
            out.extend_from_slice(&[0; 3]);
            out.extend_from_slice(name.as_bytes());
        }
        out.truncate(buf_len as usize);
        memory.copy_from_slice(&out, buf.as_array(out.len() as u32))?;
        Ok(out.len() as u32)
    }

    async fn path_create_directory(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let (mount, path, _) = self.resolve(fd, &path_str(memory, path)?, false)?;
        self.mounts[mount].volume.mkdir(&path).map_err(fail)
    }

    async fn path_filestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
    ) -> Result<types::Filestat> {
        let follow = flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        let (mount, path, dir) = self.resolve(fd, &path_str(memory, path)?, follow)?;
        if dir {
            check_names_dir(&self.mounts[mount].volume, &path, false).map_err(fail)?;
        }
        self.mounts[mount].volume.stat(&path).map(filestat).map_err(fail)
    }

    async fn path_filestat_set_times(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst: types::Fstflags,
    ) -> Result<()> {
        let follow = flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        let (mount, path, _) = self.resolve(fd, &path_str(memory, path)?, follow)?;
        match set_times(fst, atim, mtim)? {
            (None, None) => self.mounts[mount].volume.stat(&path).map(|_| ()).map_err(fail),
            (atime, mtime) => self.mounts[mount].volume.set_times(&path, atime, mtime).map_err(fail),
        }
    }

    async fn path_link(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Lookupflags,
        old: GuestPtr<str>,
        to_fd: types::Fd,
        new: GuestPtr<str>,
    ) -> Result<()> {
        if flags.contains(types::Lookupflags::SYMLINK_FOLLOW) {
            // As wasmtime-wasi: a link is made to what the path names itself.
            return Err(Errno::Inval.into());
        }
        if !self.fds.contains_key(&u32::from(to_fd)) {
            return Err(Errno::Xdev.into());
        }
        let (mount, old, _) = self.resolve(fd, &path_str(memory, old)?, false)?;
        let (to_mount, new, dir) = self.resolve(to_fd, &path_str(memory, new)?, false)?;
        if mount != to_mount {
            return Err(Errno::Xdev.into());
        }
        let volume = &mut self.mounts[mount].volume;
        if volume.stat(&old).map_err(fail)?.kind == Kind::Dir {
            // As Linux: a directory is never linked.
            return Err(Errno::Perm.into());
        }
        if dir {
            return Err(fail(dir_only_link_error(volume, &new)));
        }
        volume.link(&old, &new).map_err(fail)
    }

    async fn path_open(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        lookup: types::Lookupflags,
        path: GuestPtr<str>,
        oflags: types::Oflags,
        rights: types::Rights,
        _: types::Rights,
        fdflags: types::Fdflags,
    ) -> Result<types::Fd> {
        if fdflags.intersects(types::Fdflags::DSYNC | types::Fdflags::RSYNC | types::Fdflags::SYNC) {
            // As wasmtime-wasi on a plain directory: synchronous-write flags are not supported
            // (a sealed file is durable at each commit, `fd_sync`).
            return Err(Errno::Notsup.into());
        }
        let follow = lookup.contains(types::Lookupflags::SYMLINK_FOLLOW);
        let (mount, path, dir) = self.resolve(fd, &path_str(memory, path)?, follow)?;
        if dir {
            check_names_dir(&self.mounts[mount].volume, &path, oflags.contains(types::Oflags::CREAT)).map_err(fail)?;
        }
        let flags = OpenFlags {
            create: oflags.contains(types::Oflags::CREAT),
            exclusive: oflags.contains(types::Oflags::EXCL),
            truncate: oflags.contains(types::Oflags::TRUNC),
            directory: oflags.contains(types::Oflags::DIRECTORY),
        };
        let writing = rights.intersects(
            types::Rights::FD_DATASYNC
                | types::Rights::FD_WRITE
                | types::Rights::FD_ALLOCATE
                | types::Rights::FD_FILESTAT_SET_SIZE,
        );
        let opened = self.mounts[mount].volume.open_path(&path, flags).map_err(fail)?;
        if matches!(opened, Opened::Dir) && writing {
            // As wasmtime-wasi: a directory is not opened for writing.
            return Err(Errno::Isdir.into());
        }
        if let Opened::File(id) = &opened
            && self.fds.values().filter(|h| matches!(h, Handle::File { .. })).count() >= MAX_OPEN_FILES
        {
            let _ = self.mounts[mount].volume.close(id);
            return Err(Errno::Mfile.into());
        }
        let handle = match opened {
            Opened::Dir => Handle::Dir { mount, path, preopen: false },
            Opened::File(id) => Handle::File {
                mount,
                id,
                pos: 0,
                append: fdflags.contains(types::Fdflags::APPEND),
                read: rights.contains(types::Rights::FD_READ),
                write: rights.intersects(
                    types::Rights::FD_WRITE | types::Rights::FD_ALLOCATE | types::Rights::FD_FILESTAT_SET_SIZE,
                ) || flags.truncate
                    || flags.create,
                flags: fdflags & types::Fdflags::NONBLOCK,
            },
        };
        let file = match &handle {
            Handle::File { id, .. } => Some(*id),
            Handle::Dir { .. } => None,
        };
        self.allocate_fd(handle).inspect_err(|_| {
            if let Some(id) = file {
                let _ = self.mounts[mount].volume.close(&id);
            }
        })
    }

    async fn path_readlink(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<str>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<types::Size> {
        let (mount, path, _) = self.resolve(fd, &path_str(memory, path)?, false)?;
        let target = self.mounts[mount].volume.readlink(&path).map_err(fail)?;
        // As wasmtime-wasi: what fits of the target, unterminated.
        let bytes = &target.as_bytes()[..target.len().min(buf_len as usize)];
        memory.copy_from_slice(bytes, buf.as_array(bytes.len() as u32))?;
        Ok(bytes.len() as u32)
    }

    async fn path_remove_directory(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let (mount, path, dir) = self.resolve(fd, &path_str(memory, path)?, false)?;
        if dir {
            // As a plain directory through wasmtime-wasi: `rmdir("d/")` is refused.
            return Err(Errno::Inval.into());
        }
        self.mounts[mount].volume.rmdir(&path).map_err(fail)
    }

    async fn path_rename(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        from: GuestPtr<str>,
        to_fd: types::Fd,
        to: GuestPtr<str>,
    ) -> Result<()> {
        let (from, to) = (path_str(memory, from)?, path_str(memory, to)?);
        let (mount, from_path, _) = self.resolve(fd, &from, false)?;
        if !self.owns(u32::from(to_fd)) {
            return Err(Errno::Xdev.into());
        }
        let (to_mount, to_path, _) = self.resolve(to_fd, &to, false)?;
        if ends_in_dot(&from) || ends_in_dot(&to) {
            // As Linux: `.` and `..` are in use by the path itself.
            return Err(Errno::Busy.into());
        }
        let (from, to) = (from_path, to_path);
        if mount != to_mount {
            return Err(Errno::Xdev.into());
        }
        self.mounts[mount].volume.rename(&from, &to).map_err(fail)
    }

    async fn path_symlink(
        &mut self,
        memory: &mut GuestMemory<'_>,
        target: GuestPtr<str>,
        fd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let target = path_str(memory, target)?;
        let (mount, path, dir) = self.resolve(fd, &path_str(memory, path)?, false)?;
        let volume = &mut self.mounts[mount].volume;
        if dir {
            return Err(fail(dir_only_link_error(volume, &path)));
        }
        volume.symlink(&path, &target).map_err(fail)
    }

    async fn path_unlink_file(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let (mount, path, dir) = self.resolve(fd, &path_str(memory, path)?, false)?;
        if dir {
            check_names_dir(&self.mounts[mount].volume, &path, false).map_err(fail)?;
        }
        self.mounts[mount].volume.unlink(&path).map_err(fail)
    }

    async fn poll_oneoff(
        &mut self,
        _: &mut GuestMemory<'_>,
        _: GuestPtr<types::Subscription>,
        _: GuestPtr<types::Event>,
        _: types::Size,
    ) -> Result<types::Size> {
        Err(Errno::Nosys.into())
    }

    fn proc_exit(&mut self, _: &mut GuestMemory<'_>, _: types::Exitcode) -> wasmtime::Error {
        wasmtime::Error::msg("proc_exit is not served by the sealed filesystem")
    }

    fn proc_raise(&mut self, _: &mut GuestMemory<'_>, _: types::Signal) -> Result<()> {
        Err(Errno::Nosys.into())
    }

    fn sched_yield(&mut self, _: &mut GuestMemory<'_>) -> Result<()> {
        Err(Errno::Nosys.into())
    }

    fn random_get(&mut self, _: &mut GuestMemory<'_>, _: GuestPtr<u8>, _: types::Size) -> Result<()> {
        Err(Errno::Nosys.into())
    }

    fn sock_accept(&mut self, _: &mut GuestMemory<'_>, _: types::Fd, _: types::Fdflags) -> Result<types::Fd> {
        Err(Errno::Notsock.into())
    }

    fn sock_recv(
        &mut self,
        _: &mut GuestMemory<'_>,
        _: types::Fd,
        _: types::IovecArray,
        _: types::Riflags,
    ) -> Result<(types::Size, types::Roflags)> {
        Err(Errno::Notsock.into())
    }

    fn sock_send(
        &mut self,
        _: &mut GuestMemory<'_>,
        _: types::Fd,
        _: types::CiovecArray,
        _: types::Siflags,
    ) -> Result<types::Size> {
        Err(Errno::Notsock.into())
    }

    fn sock_shutdown(&mut self, _: &mut GuestMemory<'_>, _: types::Fd, _: types::Sdflags) -> Result<()> {
        Err(Errno::Notsock.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_and_now_at_once_is_invalid() {
        use types::Fstflags as F;
        assert!(set_times(F::MTIM | F::MTIM_NOW, 4, 5).is_err());
        assert!(set_times(F::ATIM | F::ATIM_NOW, 4, 5).is_err());
        assert_eq!(set_times(F::MTIM, 4, 5).ok(), Some((None, Some(5))));
        assert_eq!(set_times(F::ATIM, 4, 5).ok(), Some((Some(4), None)));
        assert!(matches!(set_times(F::MTIM_NOW, 4, 5), Ok((None, Some(t))) if t > 5));
        assert!(matches!(set_times(F::ATIM_NOW | F::MTIM, 4, 5), Ok((Some(t), Some(5))) if t > 5));
    }
}
