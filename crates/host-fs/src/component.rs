//! The sealed side of a component's filesystem, shared by the WASI 0.2 bindings (`p2.rs`) and
//! the WASI 0.3 bindings (`p3.rs`): the sealed mounts, the descriptors and directory listings
//! open in them, and every operation on them, in terms both bindings translate from.
//!
//! Sealed descriptors get resource representations from a range wasmtime-wasi's resource
//! table does not reach ([`SealedComponentFs::owns`]), so each binding's shadow tells them from
//! wasmtime-wasi's own by the number alone.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lamina_seal::{FileId, Kind, OpenFlags, Opened, Resolved, SealError, Stat, Volume};
use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::SealedMount;

/// The first resource representation given to sealed descriptors and listings. wasmtime-wasi's
/// table numbers its entries upwards from 0 and would need a billion of them to get here.
const FIRST_REP: u32 = 1 << 30;

/// The most sealed descriptors and directory listings a component may hold open.
const MAX_OPEN: usize = 65_536;

/// The most sealed files all the instances sharing a set of mounts may hold open at once (the
/// instances of one served component). Each open file may hold one of the process's
/// descriptors, which its connections need too; [`crate::MAX_OPEN_FILES`] bounds one instance.
pub const MAX_SHARED_OPEN_FILES: usize = 1024;

/// The largest single read or write through a sealed stream or `read`.
pub(crate) const MAX_IO: usize = 16 << 20;

/// The error codes sealed operations end with, named as both bindings' `error-code` names
/// them; `from_errno!` turns them into either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Errno {
    BadDescriptor,
    Busy,
    CrossDevice,
    Exist,
    FileTooLarge,
    InsufficientMemory,
    Invalid,
    Io,
    IsDirectory,
    Loop,
    NameTooLong,
    NoEntry,
    NotDirectory,
    NotEmpty,
    NotPermitted,
    Quota,
}

/// Implements `From<Errno>` for a binding's error code and its trappable error.
macro_rules! from_errno {
    ($code:ty, $error:ty) => {
        impl From<$crate::component::Errno> for $code {
            fn from(e: $crate::component::Errno) -> Self {
                use $crate::component::Errno as E;
                match e {
                    E::BadDescriptor => Self::BadDescriptor,
                    E::Busy => Self::Busy,
                    E::CrossDevice => Self::CrossDevice,
                    E::Exist => Self::Exist,
                    E::FileTooLarge => Self::FileTooLarge,
                    E::InsufficientMemory => Self::InsufficientMemory,
                    E::Invalid => Self::Invalid,
                    E::Io => Self::Io,
                    E::IsDirectory => Self::IsDirectory,
                    E::Loop => Self::Loop,
                    E::NameTooLong => Self::NameTooLong,
                    E::NoEntry => Self::NoEntry,
                    E::NotDirectory => Self::NotDirectory,
                    E::NotEmpty => Self::NotEmpty,
                    E::NotPermitted => Self::NotPermitted,
                    E::Quota => Self::Quota,
                }
            }
        }

        impl From<$crate::component::Errno> for $error {
            fn from(e: $crate::component::Errno) -> Self {
                <$code>::from(e).into()
            }
        }
    };
}
pub(crate) use from_errno;

/// The conversions from the sealed side's terms to one binding's types (`$fs`: its
/// `wasi:filesystem/types` module), which WASI 0.2 and 0.3 name alike but for their time
/// type (`$time` makes one from nanoseconds since the epoch).
macro_rules! binding_conversions {
    ($fs:ident, $time:ident) => {
        fn descriptor_type(kind: lamina_seal::Kind) -> $fs::DescriptorType {
            match kind {
                lamina_seal::Kind::File => $fs::DescriptorType::RegularFile,
                lamina_seal::Kind::Dir => $fs::DescriptorType::Directory,
                lamina_seal::Kind::Symlink => $fs::DescriptorType::SymbolicLink,
            }
        }

        fn stat(s: lamina_seal::Stat) -> $fs::DescriptorStat {
            let time = Some($time(s.mtime));
            $fs::DescriptorStat {
                type_: descriptor_type(s.kind),
                link_count: s.links,
                size: s.size,
                data_access_timestamp: Some($time(s.atime)),
                data_modification_timestamp: time,
                status_change_timestamp: time,
            }
        }

        fn hash(s: &lamina_seal::Stat) -> $fs::MetadataHashValue {
            let (lower, upper) = $crate::component::hash(s);
            $fs::MetadataHashValue { lower, upper }
        }

        fn open_request(oflags: $fs::OpenFlags, flags: $fs::DescriptorFlags) -> $crate::component::OpenRequest {
            $crate::component::OpenRequest {
                flags: lamina_seal::OpenFlags {
                    create: oflags.contains($fs::OpenFlags::CREATE),
                    exclusive: oflags.contains($fs::OpenFlags::EXCLUSIVE),
                    truncate: oflags.contains($fs::OpenFlags::TRUNCATE),
                    directory: oflags.contains($fs::OpenFlags::DIRECTORY),
                },
                read: flags.contains($fs::DescriptorFlags::READ),
                write: flags.contains($fs::DescriptorFlags::WRITE),
                mutate: flags.contains($fs::DescriptorFlags::MUTATE_DIRECTORY),
            }
        }
    };
}
pub(crate) use binding_conversions;

type Result<T> = std::result::Result<T, Errno>;

/// A volume shared by the descriptors and streams that use it.
pub(crate) type Shared = Arc<Mutex<Volume>>;

/// Locks a volume; a guest whose host call panicked cannot leave it half-changed in memory
/// (each volume operation completes or fails before returning), so a poisoned lock is used.
pub(crate) fn lock(volume: &Shared) -> MutexGuard<'_, Volume> {
    volume.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error code a sealed-volume error becomes for the guest.
pub(crate) fn code(e: &SealError) -> Errno {
    match e {
        SealError::NotFound(_) => Errno::NoEntry,
        SealError::Exists(_) => Errno::Exist,
        SealError::NotADirectory(_) => Errno::NotDirectory,
        SealError::IsADirectory(_) => Errno::IsDirectory,
        SealError::NotEmpty(_) => Errno::NotEmpty,
        SealError::InvalidPath { .. } | SealError::NotASymlink(_) => Errno::Invalid,
        SealError::IsASymlink(_) | SealError::TooManyLinks(_) => Errno::Loop,
        SealError::Escapes(_) => Errno::NotPermitted,
        SealError::NameTooLong(_) => Errno::NameTooLong,
        SealError::QuotaExceeded { .. } => Errno::Quota,
        SealError::TooLarge(_) => Errno::FileTooLarge,
        _ => Errno::Io,
    }
}

/// [`code`], logging what is not logged where it was detected.
pub(crate) fn fail(e: SealError) -> Errno {
    if !matches!(e, SealError::Integrity { .. } | SealError::QuotaExceeded { .. }) {
        // Integrity and quota failures are logged where they are detected.
        tracing::debug!("sealed filesystem: {e}");
    }
    code(&e)
}

/// Reads up to `len` bytes (at most [`MAX_IO`]) at `offset`; fewer at the end of the file.
pub(crate) fn read_at(
    volume: &Shared,
    id: &FileId,
    offset: u64,
    len: usize,
) -> std::result::Result<Vec<u8>, SealError> {
    let mut buf = vec![0u8; len.min(MAX_IO)];
    let done = read_into(volume, id, offset, &mut buf)?;
    buf.truncate(done);
    Ok(buf)
}

/// Refuses an offset past what a file offset can be (`invalid`, as Linux's `pread` and
/// `pwrite` say of a negative one).
pub(crate) fn check_offset(offset: u64) -> Result<()> {
    if offset > i64::MAX as u64 {
        return Err(Errno::Invalid);
    }
    Ok(())
}

/// Fills `buf` from `offset` as far as the file goes; the count read.
pub(crate) fn read_into(
    volume: &Shared,
    id: &FileId,
    offset: u64,
    buf: &mut [u8],
) -> std::result::Result<usize, SealError> {
    let mut v = lock(volume);
    let mut done = 0;
    while done < buf.len() {
        let n = v.read_at(id, offset + done as u64, &mut buf[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Where a write to a sealed file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// At this offset.
    At(u64),
    /// At the end of the file as it is when the write takes the volume's lock, so writers that
    /// append at once (instances serving concurrent requests over one volume) each add their
    /// bytes and none overwrites another's.
    End,
}

/// Writes all of `data` at `place`, under one hold of the volume's lock; the offset it went to.
pub(crate) fn write_at(volume: &Shared, id: &FileId, place: Place, data: &[u8]) -> std::result::Result<u64, SealError> {
    let mut v = lock(volume);
    let offset = match place {
        Place::At(offset) => offset,
        Place::End => v.file_stat(id).size,
    };
    let mut done = 0;
    while done < data.len() {
        let n = v.write_at(id, offset + done as u64, &data[done..])?;
        if n == 0 {
            return Err(SealError::InvalidPath { path: String::new(), reason: "no progress writing" });
        }
        done += n;
    }
    Ok(offset)
}

/// Commits a volume (a guest's `sync` or `sync-data`): everything written to it so far is
/// durable. The commit syncs files and waits for the disk, so it runs on tokio's blocking
/// threads, not on the worker that serves other requests meanwhile.
pub(crate) async fn commit(volume: Shared) -> Result<()> {
    match tokio::task::spawn_blocking(move || lock(&volume).commit()).await {
        Ok(committed) => committed.map_err(fail),
        Err(e) => {
            tracing::error!("sealed filesystem: the commit did not finish: {e}");
            Err(Errno::Io)
        }
    }
}

/// A metadata hash of a sealed file or directory, as (lower, upper): the inode number, and
/// what changes when the contents do.
pub(crate) fn hash(s: &Stat) -> (u64, u64) {
    (s.ino, u64::try_from(s.mtime).unwrap_or(0) ^ s.size)
}

#[derive(Debug)]
enum Handle {
    /// `mutate`: opened with `mutate-directory` (the preopens are).
    Dir {
        mount: usize,
        path: String,
        mutate: bool,
    },
    File {
        mount: usize,
        id: FileId,
        read: bool,
        write: bool,
    },
}

/// What a sealed descriptor is and may do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Access {
    /// A directory (else a regular file).
    pub dir: bool,
    /// Opened for reading (directories: always).
    pub read: bool,
    /// Opened for writing (directories: never).
    pub write: bool,
    /// A directory opened with `mutate-directory`.
    pub mutate: bool,
}

/// How a guest asks to open a path in a sealed directory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenRequest {
    /// Create, exclusive, truncate, directory.
    pub flags: OpenFlags,
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// A directory: open with `mutate-directory`.
    pub mutate: bool,
}

/// The sealed side of a component's filesystem (WASI 0.2 and 0.3 alike): its sealed mounts,
/// and the descriptors and directory listings open in them.
#[derive(Default)]
pub struct SealedComponentFs {
    mounts: SharedMounts,
    handles: HashMap<u32, Handle>,
    listings: HashMap<u32, VecDeque<(Kind, String)>>,
    next: u32,
}

impl std::fmt::Debug for SealedComponentFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedComponentFs").field("mounts", &self.mounts).field("open", &self.handles.len()).finish()
    }
}

/// Sealed mounts that several instances use at once (the instances of a served component):
/// each instance has descriptors of its own over the same open volumes, as processes over one
/// directory, and together they hold at most [`MAX_SHARED_OPEN_FILES`] files open. Cloning
/// shares them.
#[derive(Clone, Default)]
pub struct SharedMounts {
    mounts: Arc<[(String, Shared)]>,
    /// Files open across every instance that shares these mounts.
    open_files: Arc<AtomicUsize>,
}

impl std::fmt::Debug for SharedMounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.mounts.iter().map(|(guest, _)| guest)).finish()
    }
}

impl SharedMounts {
    /// Shares these mounts.
    pub fn new(mounts: Vec<SealedMount>) -> Self {
        SharedMounts {
            mounts: mounts.into_iter().map(|m| (m.guest, Arc::new(Mutex::new(m.volume)))).collect(),
            open_files: Arc::default(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    /// Files open in them now, across every instance.
    pub fn open_files(&self) -> usize {
        self.open_files.load(Ordering::Relaxed)
    }

    /// Counts one more open file, unless [`MAX_SHARED_OPEN_FILES`] are open.
    fn take_file(&self) -> bool {
        self.open_files
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_SHARED_OPEN_FILES).then_some(n + 1))
            .is_ok()
    }

    /// Counts one file fewer.
    fn release_file(&self) {
        let _ = self.open_files.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

impl Drop for SealedComponentFs {
    /// An instance that ended without [`SealedComponentFs::commit_all`] (a trap, a timeout)
    /// still gives back its open files, to the volume and to the shared count.
    fn drop(&mut self) {
        if let Err(e) = self.close_all() {
            tracing::error!("sealed filesystem: closing a file failed: {e}");
        }
    }
}

impl SealedComponentFs {
    /// Serves these mounts to one instance.
    pub fn new(mounts: Vec<SealedMount>) -> Self {
        Self::shared(&SharedMounts::new(mounts))
    }

    /// Serves mounts that other instances use too.
    pub fn shared(mounts: &SharedMounts) -> Self {
        SealedComponentFs { mounts: mounts.clone(), handles: HashMap::new(), listings: HashMap::new(), next: FIRST_REP }
    }

    /// Whether it serves any sealed mount.
    pub fn has_mounts(&self) -> bool {
        !self.mounts.is_empty()
    }

    /// Whether a resource representation belongs here (else to wasmtime-wasi).
    pub(crate) fn owns(rep: u32) -> bool {
        rep >= FIRST_REP
    }

    fn allocate(&mut self) -> Result<u32> {
        if self.handles.len() + self.listings.len() >= MAX_OPEN {
            return Err(Errno::InsufficientMemory);
        }
        for _ in 0..1024 {
            let rep = self.next;
            self.next = self.next.checked_add(1).unwrap_or(FIRST_REP);
            if !self.handles.contains_key(&rep) && !self.listings.contains_key(&rep) {
                return Ok(rep);
            }
        }
        Err(Errno::InsufficientMemory)
    }

    fn handle(&self, rep: u32) -> Result<&Handle> {
        self.handles.get(&rep).ok_or(Errno::BadDescriptor)
    }

    fn file(&self, rep: u32) -> Result<(Shared, FileId, bool, bool)> {
        match self.handle(rep)? {
            Handle::File { mount, id, read, write } => Ok((self.mounts.mounts[*mount].1.clone(), *id, *read, *write)),
            // As wasmtime-wasi: a file operation on a directory is a bad descriptor (reading one
            // through a stream is `is-directory`: see `reader`).
            Handle::Dir { .. } => Err(Errno::BadDescriptor),
        }
    }

    /// The mount, the volume (locked) and the resolved path of (directory descriptor, relative
    /// path), by [`Volume::resolve`]: links on the way followed, the last one when `follow`.
    /// An empty path names nothing (`no-entry`, as Linux's `*at` calls say), not the directory
    /// itself.
    fn at(&self, rep: u32, relative: &str, follow: bool) -> Result<(usize, MutexGuard<'_, Volume>, Resolved)> {
        if relative.len() > crate::MAX_PATH as usize {
            return Err(Errno::NameTooLong);
        }
        if relative.is_empty() {
            self.handle(rep)?;
            return Err(Errno::NoEntry);
        }
        match self.handle(rep)? {
            Handle::Dir { mount, path, .. } => {
                let volume = self.volume(*mount);
                let resolved = volume.resolve(path, relative, follow).map_err(fail)?;
                Ok((*mount, volume, resolved))
            }
            Handle::File { .. } => Err(Errno::NotDirectory),
        }
    }

    /// [`Self::at`], without holding the volume.
    fn resolve(&self, rep: u32, relative: &str, follow: bool) -> Result<(usize, String)> {
        self.at(rep, relative, follow).map(|(mount, _, resolved)| (mount, resolved.path))
    }

    fn volume(&self, mount: usize) -> MutexGuard<'_, Volume> {
        lock(&self.mounts.mounts[mount].1)
    }

    /// Closes the instance's files and commits every volume (the instance ended): what it wrote
    /// becomes durable.
    ///
    /// # Errors
    /// The first volume that fails to commit.
    pub fn commit_all(&mut self) -> std::result::Result<(), SealError> {
        let mut first = self.close_all().err();
        for (_, volume) in self.mounts.mounts.iter() {
            if let Err(e) = lock(volume).commit() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Closes every file the instance has open; the first failure.
    fn close_all(&mut self) -> std::result::Result<(), SealError> {
        let mut first = None;
        for handle in std::mem::take(&mut self.handles).into_values() {
            if let Handle::File { mount, id, .. } = handle {
                self.mounts.release_file();
                if let Err(e) = self.volume(mount).close(&id) {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// A descriptor for each sealed mount's root, with the guest path it is preopened at.
    pub(crate) fn preopens(&mut self) -> Result<Vec<(u32, String)>> {
        let mut all = Vec::with_capacity(self.mounts.mounts.len());
        for mount in 0..self.mounts.mounts.len() {
            let rep = self.allocate()?;
            self.handles.insert(rep, Handle::Dir { mount, path: String::new(), mutate: true });
            all.push((rep, self.mounts.mounts[mount].0.clone()));
        }
        Ok(all)
    }

    /// Advice is accepted for files and ignored.
    pub(crate) fn advise(&self, rep: u32) -> Result<()> {
        self.file(rep).map(|_| ())
    }

    /// The volume a descriptor is in, to [`commit`] it.
    pub(crate) fn volume_of(&self, rep: u32) -> Result<Shared> {
        let mount = match self.handle(rep)? {
            Handle::Dir { mount, .. } | Handle::File { mount, .. } => *mount,
        };
        Ok(self.mounts.mounts[mount].1.clone())
    }

    /// What the descriptor is and may do.
    pub(crate) fn access(&self, rep: u32) -> Result<Access> {
        Ok(match self.handle(rep)? {
            Handle::Dir { mutate, .. } => Access { dir: true, read: true, write: false, mutate: *mutate },
            Handle::File { read, write, .. } => Access { dir: false, read: *read, write: *write, mutate: false },
        })
    }

    /// Truncates or extends a file opened for writing (of one opened only for reading:
    /// `invalid`, as Linux's `ftruncate` says).
    pub(crate) fn set_size(&self, rep: u32, size: u64) -> Result<()> {
        let (volume, id, _, write) = self.file(rep)?;
        if !write {
            return Err(Errno::Invalid);
        }
        lock(&volume).set_len(&id, size).map_err(fail)
    }

    /// Sets the access and modification times (nanoseconds since the epoch); `None` leaves one
    /// as it is.
    pub(crate) fn set_times(&self, rep: u32, atime: Option<i64>, mtime: Option<i64>) -> Result<()> {
        if (atime, mtime) == (None, None) {
            return self.handle(rep).map(|_| ());
        }
        match self.handle(rep)? {
            Handle::Dir { mount, path, .. } => self.volume(*mount).set_times(path, atime, mtime).map_err(fail),
            Handle::File { mount, id, .. } => self.volume(*mount).set_file_times(id, atime, mtime).map_err(fail),
        }
    }

    /// Reads up to `len` bytes at `offset` from a file opened for reading; whether the end was
    /// reached.
    pub(crate) fn read(&self, rep: u32, len: u64, offset: u64) -> Result<(Vec<u8>, bool)> {
        check_offset(offset)?;
        let (volume, id, read, _) = self.file(rep)?;
        if !read {
            return Err(Errno::BadDescriptor);
        }
        let len = usize::try_from(len).unwrap_or(MAX_IO);
        let data = read_at(&volume, &id, offset, len).map_err(fail)?;
        let end = data.len() < len.min(MAX_IO);
        Ok((data, end))
    }

    /// Writes all of `data` at `offset` to a file opened for writing.
    pub(crate) fn write(&self, rep: u32, data: &[u8], offset: u64) -> Result<u64> {
        check_offset(offset)?;
        let (volume, id) = self.writer(rep)?;
        write_at(&volume, &id, Place::At(offset), data).map_err(fail)?;
        Ok(data.len() as u64)
    }

    /// The volume and file of a descriptor opened for reading, for a stream (of a directory:
    /// `is-directory`).
    pub(crate) fn reader(&self, rep: u32) -> Result<(Shared, FileId)> {
        if let Handle::Dir { .. } = self.handle(rep)? {
            return Err(Errno::IsDirectory);
        }
        let (volume, id, read, _) = self.file(rep)?;
        if !read {
            return Err(Errno::BadDescriptor);
        }
        Ok((volume, id))
    }

    /// The volume and file of a descriptor opened for writing, for a stream.
    pub(crate) fn writer(&self, rep: u32) -> Result<(Shared, FileId)> {
        let (volume, id, _, write) = self.file(rep)?;
        if !write {
            return Err(Errno::BadDescriptor);
        }
        Ok((volume, id))
    }

    /// A directory's entries, as (kind, name).
    pub(crate) fn list(&self, rep: u32) -> Result<Vec<(Kind, String)>> {
        let Handle::Dir { mount, path, .. } = self.handle(rep)? else {
            return Err(Errno::NotDirectory);
        };
        Ok(self.volume(*mount).readdir(path).map_err(fail)?.into_iter().map(|e| (e.kind, e.name)).collect())
    }

    /// Opens a listing of a directory's entries, read one by one ([`Self::next_entry`]).
    pub(crate) fn open_listing(&mut self, rep: u32) -> Result<u32> {
        let entries = self.list(rep)?.into();
        let listing = self.allocate()?;
        self.listings.insert(listing, entries);
        Ok(listing)
    }

    /// The listing's next entry, or `None` at its end.
    pub(crate) fn next_entry(&mut self, listing: u32) -> Result<Option<(Kind, String)>> {
        Ok(self.listings.get_mut(&listing).ok_or(Errno::BadDescriptor)?.pop_front())
    }

    /// Closes a listing.
    pub(crate) fn close_listing(&mut self, listing: u32) {
        self.listings.remove(&listing);
    }

    /// Creates a directory.
    pub(crate) fn create_directory_at(&self, rep: u32, path: &str) -> Result<()> {
        let (_, mut volume, resolved) = self.at(rep, path, false)?;
        volume.mkdir(&resolved.path).map_err(fail)
    }

    /// The descriptor's status.
    pub(crate) fn stat(&self, rep: u32) -> Result<Stat> {
        match self.handle(rep)? {
            Handle::Dir { mount, path, .. } => self.volume(*mount).stat(path).map_err(fail),
            Handle::File { mount, id, .. } => Ok(self.volume(*mount).file_stat(id)),
        }
    }

    /// A path's status. As wasmtime-wasi: followed (`symlink-follow`), a path ending in `/`
    /// names only a directory; not followed, the trailing `/` is ignored (and a link there is
    /// the link's own status).
    pub(crate) fn stat_at(&self, rep: u32, path: &str, follow: bool) -> Result<Stat> {
        let path = if follow { path } else { strip_trailing_slashes(path) };
        let (_, volume, resolved) = self.at(rep, path, follow)?;
        if resolved.dir_only {
            crate::check_names_dir(&volume, &resolved.path, false).map_err(fail)?;
        }
        volume.stat(&resolved.path).map_err(fail)
    }

    /// Sets a path's access and modification times (a link's own unless `follow`); with
    /// neither, only checks that it exists.
    pub(crate) fn set_times_at(
        &self,
        rep: u32,
        path: &str,
        follow: bool,
        atime: Option<i64>,
        mtime: Option<i64>,
    ) -> Result<()> {
        let (_, mut volume, resolved) = self.at(rep, path, follow)?;
        match (atime, mtime) {
            (None, None) => volume.stat(&resolved.path).map(|_| ()).map_err(fail),
            _ => volume.set_times(&resolved.path, atime, mtime).map_err(fail),
        }
    }

    /// Opens a path in a sealed directory: the new descriptor's representation.
    pub(crate) fn open_at(&mut self, rep: u32, path: &str, follow: bool, request: OpenRequest) -> Result<u32> {
        let OpenRequest { flags, read, write, .. } = request;
        if flags.directory && (flags.create || flags.exclusive || flags.truncate) {
            return Err(Errno::Invalid);
        }
        // As wasmtime-wasi: creating or truncating opens the file for writing, and a descriptor
        // asked for neither reading nor writing reads.
        let (read, write) = (read || !write, write || flags.create || flags.truncate);
        let (mount, mut volume, resolved) = self.at(rep, path, follow)?;
        if resolved.dir_only {
            crate::check_names_dir(&volume, &resolved.path, flags.create).map_err(fail)?;
        }
        let opened = volume.open_path(&resolved.path, flags).map_err(fail)?;
        drop(volume);
        let path = resolved.path;
        if matches!(opened, Opened::Dir) && write {
            // As wasmtime-wasi: a directory is not opened for writing.
            return Err(Errno::IsDirectory);
        }
        if let Opened::File(id) = &opened {
            let mine = self.handles.values().filter(|h| matches!(h, Handle::File { .. })).count();
            if mine >= crate::MAX_OPEN_FILES || !self.mounts.take_file() {
                let _ = self.volume(mount).close(id);
                tracing::warn!(
                    "sealed filesystem: open refused: {mine} files open in this instance (at most {}), {} across \
                     the instances sharing its volumes (at most {MAX_SHARED_OPEN_FILES})",
                    crate::MAX_OPEN_FILES,
                    self.mounts.open_files()
                );
                return Err(Errno::InsufficientMemory);
            }
        }
        let handle = match opened {
            Opened::Dir => Handle::Dir { mount, path, mutate: request.mutate },
            Opened::File(id) => Handle::File { mount, id, read, write },
        };
        let new = match self.allocate() {
            Ok(new) => new,
            Err(e) => {
                if let Handle::File { id, .. } = &handle {
                    self.mounts.release_file();
                    let _ = self.volume(mount).close(id);
                }
                return Err(e);
            }
        };
        self.handles.insert(new, handle);
        Ok(new)
    }

    /// Closes a descriptor (the guest dropped it).
    pub(crate) fn close(&mut self, rep: u32) {
        if let Some(Handle::File { mount, id, .. }) = self.handles.remove(&rep) {
            self.mounts.release_file();
            if let Err(e) = self.volume(mount).close(&id) {
                tracing::error!("sealed filesystem: closing a file failed: {e}");
            }
        }
    }

    /// A symbolic link's target; `invalid` for anything else that exists.
    pub(crate) fn readlink_at(&self, rep: u32, path: &str) -> Result<String> {
        let (_, volume, resolved) = self.at(rep, path, false)?;
        volume.readlink(&resolved.path).map(str::to_owned).map_err(fail)
    }

    /// Makes a symbolic link at `path` to `target`. As a plain directory through wasmtime-wasi:
    /// an absolute target is `not-permitted`, and `path` ending in `/` is refused as by
    /// [`crate::dir_only_link_error`].
    pub(crate) fn symlink_at(&self, rep: u32, target: &str, path: &str) -> Result<()> {
        let (_, mut volume, resolved) = self.at(rep, path, false)?;
        if resolved.dir_only {
            return Err(fail(crate::dir_only_link_error(&volume, &resolved.path)));
        }
        volume.symlink(&resolved.path, target).map_err(fail)
    }

    /// Removes an empty directory.
    pub(crate) fn remove_directory_at(&self, rep: u32, path: &str) -> Result<()> {
        let (_, mut volume, resolved) = self.at(rep, path, false)?;
        if resolved.dir_only {
            // As a plain directory through wasmtime-wasi: `rmdir("d/")` is refused (after a
            // path leaving the directory is).
            return Err(Errno::Invalid);
        }
        volume.rmdir(&resolved.path).map_err(fail)
    }

    /// Renames within one sealed volume; from or to anywhere else is `cross-device`. One of the
    /// two descriptors at least is sealed.
    pub(crate) fn rename_at(&self, from: u32, old: &str, to: u32, new: &str) -> Result<()> {
        if !(Self::owns(from) && Self::owns(to)) {
            return Err(Errno::CrossDevice);
        }
        let (from_mount, old_path) = self.resolve(from, old, false)?;
        let (to_mount, new_path) = self.resolve(to, new, false)?;
        if crate::ends_in_dot(old) || crate::ends_in_dot(new) {
            // As Linux: `.` and `..` are in use by the path itself.
            return Err(Errno::Busy);
        }
        if from_mount != to_mount {
            return Err(Errno::CrossDevice);
        }
        self.volume(from_mount).rename(&old_path, &new_path).map_err(fail)
    }

    /// Removes a file.
    pub(crate) fn unlink_file_at(&self, rep: u32, path: &str) -> Result<()> {
        let (_, mut volume, resolved) = self.at(rep, path, false)?;
        if resolved.dir_only {
            crate::check_names_dir(&volume, &resolved.path, false).map_err(fail)?;
        }
        volume.unlink(&resolved.path).map_err(fail)
    }

    /// Gives the file at `old` another name, `new`, in the same volume (following a link at
    /// `old` is `invalid`, as in wasmtime-wasi): elsewhere is `cross-device`, a directory is
    /// never linked (`not-permitted`, as Linux says), and `new` ending in `/` is refused as by
    /// [`crate::dir_only_link_error`].
    pub(crate) fn link_at(&self, rep: u32, old: &str, follow: bool, new_rep: u32, new: &str) -> Result<()> {
        if follow {
            // As wasmtime-wasi: a link is made to what the path names itself.
            return Err(Errno::Invalid);
        }
        if !Self::owns(new_rep) {
            return Err(Errno::CrossDevice);
        }
        let (from_mount, old) = self.resolve(rep, old, false)?;
        let (to_mount, mut volume, new) = self.at(new_rep, new, false)?;
        if from_mount != to_mount {
            return Err(Errno::CrossDevice);
        }
        if volume.stat(&old).map_err(fail)?.kind == Kind::Dir {
            return Err(Errno::NotPermitted);
        }
        if new.dir_only {
            return Err(fail(crate::dir_only_link_error(&volume, &new.path)));
        }
        volume.link(&old, &new.path).map_err(fail)
    }

    /// Whether two descriptors, one of them at least sealed, are the same file or directory.
    pub(crate) fn is_same_object(&self, a: u32, b: u32) -> bool {
        let key = |h: &Handle| match h {
            Handle::Dir { mount, path, .. } => (*mount, Some(path.clone()), None),
            Handle::File { mount, id, .. } => (*mount, None, Some(*id)),
        };
        let ka = self.handles.get(&a).map(key);
        ka.is_some() && ka == self.handles.get(&b).map(key)
    }
}

/// Store data that holds wasmtime-wasi's context and the sealed filesystem of a component.
pub trait SealedComponentView: WasiView {
    /// The WASI context, the resource table and the sealed filesystem, borrowed apart.
    fn split_sealed(&mut self) -> (&mut WasiCtx, &mut ResourceTable, &mut SealedComponentFs);
}

/// The shadowing implementation of both bindings: wasmtime-wasi's context for ordinary
/// descriptors, the sealed filesystem for the rest.
pub(crate) struct ShadowFs<'a> {
    pub ctx: &'a mut WasiCtx,
    pub table: &'a mut ResourceTable,
    pub sealed: &'a mut SealedComponentFs,
}

/// Lets wasmtime-wasi's own implementation run on the borrowed parts.
pub(crate) struct Parts<'a> {
    pub ctx: &'a mut WasiCtx,
    pub table: &'a mut ResourceTable,
}

impl WasiView for Parts<'_> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: self.ctx, table: self.table }
    }
}

/// Calls wasmtime-wasi's own implementation of a filesystem method (named by its path) on a
/// [`ShadowFs`]'s borrowed parts, awaiting it when the call ends in `.await`.
macro_rules! host {
    ($self:ident, $($path:ident)::+ ( $($arg:expr),* ) $(. $await:ident)?) => {{
        let mut parts = $crate::component::Parts { ctx: &mut *$self.ctx, table: &mut *$self.table };
        let mut view = wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(&mut parts);
        $($path)::+(&mut view, $($arg),*) $(. $await)?
    }};
}
pub(crate) use host;

/// The linkers' name for [`ShadowFs`].
pub(crate) struct Shadow;

impl HasData for Shadow {
    type Data<'a> = ShadowFs<'a>;
}

/// Borrows a store's data as a [`ShadowFs`].
pub(crate) fn shadow<T: SealedComponentView>(t: &mut T) -> ShadowFs<'_> {
    let (ctx, table, sealed) = t.split_sealed();
    ShadowFs { ctx, table, sealed }
}

/// The modification time a `new-timestamp` asks for, in nanoseconds since the epoch: `None`
/// for no change. Both bindings' `new-timestamp` and their time types are passed apart.
pub(crate) fn now_or(seconds: Option<(i64, u32)>) -> i64 {
    match seconds {
        None => crate::now_ns(),
        Some((s, ns)) => s.saturating_mul(1_000_000_000).saturating_add(i64::from(ns)),
    }
}

/// A time in nanoseconds since the epoch as (seconds, nanoseconds), never before the epoch.
/// A path without the `/`s it ends with (`/` alone stays).
pub(crate) fn strip_trailing_slashes(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => path,
        stripped => stripped,
    }
}

pub(crate) fn split_ns(ns: i64) -> (u64, u32) {
    let ns = u64::try_from(ns).unwrap_or(0);
    (ns / 1_000_000_000, (ns % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(dir: &std::path::Path) -> SharedMounts {
        let sim = lamina_tee::sim::SimPlatform::open(&dir.join("state")).expect("sim platform");
        let options = lamina_seal::VolumeOptions {
            seal_to: lamina_seal::SealTo::Module(lamina_types::ModuleHash::of(b"app")),
            quota: 1 << 20,
            rollback_protection: false,
        };
        let volume = Volume::open(&dir.join("vol"), &sim, &options).expect("volume");
        SharedMounts::new(vec![SealedMount { guest: "/data".into(), volume }])
    }

    const CREATE: OpenRequest = OpenRequest {
        flags: OpenFlags { create: true, exclusive: false, truncate: false, directory: false },
        read: true,
        write: true,
        mutate: false,
    };

    /// Many instances of a served component, each holding as many sealed files open as it
    /// may, hold no more than the shared bound between them; files come back when an instance
    /// closes them, commits, or ends without either.
    #[test]
    fn hoarding_sealed_files_across_instances_is_bounded_by_the_shared_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = mounts(dir.path());
        let mut instances = Vec::new();
        let mut opened = 0;
        let mut refused = 0;
        for i in 0..(MAX_SHARED_OPEN_FILES / crate::MAX_OPEN_FILES + 2) {
            let mut fs = SealedComponentFs::shared(&shared);
            let (root, _) = fs.preopens().expect("preopens")[0].clone();
            for j in 0..crate::MAX_OPEN_FILES {
                match fs.open_at(root, &format!("f{i}-{j}"), true, CREATE) {
                    Ok(_) => opened += 1,
                    Err(e) => {
                        assert_eq!(e, Errno::InsufficientMemory);
                        refused += 1;
                    }
                }
            }
            instances.push(fs);
        }
        assert_eq!(opened, MAX_SHARED_OPEN_FILES);
        assert_eq!(shared.open_files(), MAX_SHARED_OPEN_FILES);
        assert_eq!(refused, 2 * crate::MAX_OPEN_FILES);

        let mut last = instances.pop().expect("an instance");
        let (root, _) = last.preopens().expect("preopens")[0].clone();
        assert_eq!(last.open_at(root, "late", true, CREATE), Err(Errno::InsufficientMemory));
        instances[0].commit_all().expect("commits");
        let late = last.open_at(root, "late", true, CREATE).expect("a file given back is open to others");
        last.close(late);
        assert_eq!(shared.open_files(), MAX_SHARED_OPEN_FILES - crate::MAX_OPEN_FILES);
        drop(instances);
        drop(last);
        assert_eq!(shared.open_files(), 0, "instances that end give their files back");
    }

    /// Instances serving concurrent requests append to one sealed file (a log, notes): every
    /// line lands once, none overwrites another (the end is read under the write's own lock).
    #[test]
    fn concurrent_appenders_over_one_volume_lose_nothing() {
        const WRITERS: usize = 4;
        const LINES: usize = 1000;
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = mounts(dir.path());
        std::thread::scope(|scope| {
            for w in 0..WRITERS {
                let shared = &shared;
                scope.spawn(move || {
                    let mut fs = SealedComponentFs::shared(shared);
                    let (root, _) = fs.preopens().expect("preopens")[0].clone();
                    let file = fs.open_at(root, "notes.txt", true, CREATE).expect("opens");
                    let (volume, id) = fs.writer(file).expect("writable");
                    for i in 0..LINES {
                        write_at(&volume, &id, Place::End, format!("writer {w} line {i:03}\n").as_bytes())
                            .expect("appends");
                    }
                    fs.close(file);
                });
            }
        });
        let mut fs = SealedComponentFs::shared(&shared);
        let (root, _) = fs.preopens().expect("preopens")[0].clone();
        let file = fs.open_at(root, "notes.txt", false, CREATE).expect("opens");
        let (volume, id) = fs.reader(file).expect("readable");
        let mut buf = vec![0; WRITERS * LINES * 32];
        let n = read_into(&volume, &id, 0, &mut buf).expect("reads");
        let text = std::str::from_utf8(&buf[..n]).expect("utf-8");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        let mut expected: Vec<String> =
            (0..WRITERS).flat_map(|w| (0..LINES).map(move |i| format!("writer {w} line {i:03}"))).collect();
        expected.sort_unstable();
        assert_eq!(lines, expected);
    }

    #[test]
    fn times_before_the_epoch_and_far_ahead_do_not_overflow() {
        assert_eq!(now_or(Some((i64::MAX, 999_999_999))), i64::MAX);
        assert_eq!(split_ns(-5), (0, 0));
        assert_eq!(split_ns(1_500_000_000), (1, 500_000_000));
    }
}
