//! Sealed directories for preview 2 components.
//!
//! The same idea as for preview 1: [`add_to_component_linker`] shadows wasmtime-wasi's
//! `wasi:filesystem/types` and `wasi:filesystem/preopens` with implementations that look at the
//! descriptor first. Sealed directories and the files opened in them get resource
//! representations from a range wasmtime-wasi's resource table does not reach; every other
//! descriptor is handed to wasmtime-wasi unchanged. `get-directories` lists wasmtime-wasi's
//! preopens and then one per sealed mount.
//!
//! Streams (`read-via-stream`, `write-via-stream`, `append-via-stream`) are sealed streams in
//! wasmtime-wasi's resource table, so `wasi:io` serves them as any other; they share the
//! volume with the descriptors through a mutex.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lamina_seal::{FileId, Kind, OpenFlags, Opened, SealError, Volume};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::filesystem::WasiFilesystemView as _;
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode as Code;
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types as fs};
use wasmtime_wasi::p2::bindings::sync::filesystem::types as blocking_fs;
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, FsError, FsResult, InputStream, OutputStream, Pollable, StreamError, StreamResult,
};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::SealedMount;

/// The first resource representation given to sealed descriptors and listings. wasmtime-wasi's
/// table numbers its entries upwards from 0 and would need a billion of them to get here.
const FIRST_REP: u32 = 1 << 30;

/// The most sealed descriptors and directory listings a component may hold open.
const MAX_OPEN: usize = 65_536;

/// The largest single read or write through a sealed stream or `read`.
const MAX_IO: usize = 16 << 20;

type Shared = Arc<Mutex<Volume>>;

fn lock(volume: &Shared) -> MutexGuard<'_, Volume> {
    volume.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
enum Handle {
    Dir { mount: usize, path: String },
    File { mount: usize, id: FileId, read: bool, write: bool },
}

/// The sealed side of a component's filesystem: its sealed mounts, and the descriptors and
/// directory listings open in them.
#[derive(Default)]
pub struct SealedFsP2 {
    mounts: SharedMounts,
    handles: HashMap<u32, Handle>,
    listings: HashMap<u32, VecDeque<fs::DirectoryEntry>>,
    next: u32,
}

impl std::fmt::Debug for SealedFsP2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedFsP2")
            .field("mounts", &self.mounts.0.iter().map(|(g, _)| g).collect::<Vec<_>>())
            .field("open", &self.handles.len())
            .finish()
    }
}

/// Sealed mounts that several instances use at once (the instances of a served component):
/// each instance has descriptors of its own over the same open volumes, as processes over one
/// directory. Cloning shares them.
#[derive(Clone, Default)]
pub struct SharedMounts(Arc<[(String, Shared)]>);

impl std::fmt::Debug for SharedMounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(guest, _)| guest)).finish()
    }
}

impl SharedMounts {
    /// Shares these mounts.
    pub fn new(mounts: Vec<SealedMount>) -> Self {
        SharedMounts(mounts.into_iter().map(|m| (m.guest, Arc::new(Mutex::new(m.volume)))).collect())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl SealedFsP2 {
    /// Serves these mounts to one instance.
    pub fn new(mounts: Vec<SealedMount>) -> Self {
        Self::shared(&SharedMounts::new(mounts))
    }

    /// Serves mounts that other instances use too.
    pub fn shared(mounts: &SharedMounts) -> Self {
        SealedFsP2 { mounts: mounts.clone(), handles: HashMap::new(), listings: HashMap::new(), next: FIRST_REP }
    }

    /// Whether a representation belongs here.
    fn owns(rep: u32) -> bool {
        rep >= FIRST_REP
    }

    fn allocate(&mut self) -> FsResult<u32> {
        if self.handles.len() + self.listings.len() >= MAX_OPEN {
            return Err(Code::InsufficientMemory.into());
        }
        for _ in 0..1024 {
            let rep = self.next;
            self.next = self.next.checked_add(1).unwrap_or(FIRST_REP);
            if !self.handles.contains_key(&rep) && !self.listings.contains_key(&rep) {
                return Ok(rep);
            }
        }
        Err(Code::InsufficientMemory.into())
    }

    fn handle(&self, rep: u32) -> FsResult<&Handle> {
        self.handles.get(&rep).ok_or_else(|| Code::BadDescriptor.into())
    }

    fn file(&self, rep: u32) -> FsResult<(Shared, FileId, bool, bool)> {
        match self.handle(rep)? {
            Handle::File { mount, id, read, write } => Ok((self.mounts.0[*mount].1.clone(), *id, *read, *write)),
            Handle::Dir { .. } => Err(Code::IsDirectory.into()),
        }
    }

    /// The mount and the volume path of (directory descriptor, relative path).
    fn resolve(&self, rep: u32, relative: &str) -> FsResult<(usize, String)> {
        match self.handle(rep)? {
            Handle::Dir { mount, path } => Ok((*mount, join(path, relative)?)),
            Handle::File { .. } => Err(Code::NotDirectory.into()),
        }
    }

    fn volume(&self, mount: usize) -> MutexGuard<'_, Volume> {
        lock(&self.mounts.0[mount].1)
    }

    /// Closes the instance's files and commits every volume (the instance ended): what it wrote
    /// becomes durable.
    ///
    /// # Errors
    /// The first volume that fails to commit.
    pub fn commit_all(&mut self) -> Result<(), SealError> {
        let mut first = None;
        for handle in std::mem::take(&mut self.handles).into_values() {
            if let Handle::File { mount, id, .. } = handle
                && let Err(e) = self.volume(mount).close(&id)
            {
                first.get_or_insert(e);
            }
        }
        for (_, volume) in self.mounts.0.iter() {
            if let Err(e) = lock(volume).commit() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// [`crate::join_path`], with a bound on the path's length.
fn join(base: &str, relative: &str) -> FsResult<String> {
    if relative.len() > 4096 {
        return Err(Code::NameTooLong.into());
    }
    crate::join_path(base, relative).map_err(|crate::PathError::Escapes| Code::NotPermitted.into())
}

fn code(e: &SealError) -> Code {
    match e {
        SealError::NotFound(_) => Code::NoEntry,
        SealError::Exists(_) => Code::Exist,
        SealError::NotADirectory(_) => Code::NotDirectory,
        SealError::IsADirectory(_) => Code::IsDirectory,
        SealError::NotEmpty(_) => Code::NotEmpty,
        SealError::InvalidPath { .. } => Code::Invalid,
        SealError::QuotaExceeded { .. } => Code::Quota,
        SealError::TooLarge(_) => Code::FileTooLarge,
        _ => Code::Io,
    }
}

fn fail(e: SealError) -> FsError {
    if !matches!(e, SealError::Integrity { .. } | SealError::QuotaExceeded { .. }) {
        // Integrity and quota failures are logged where they are detected.
        tracing::debug!("sealed filesystem: {e}");
    }
    code(&e).into()
}

fn datetime(ns: i64) -> Datetime {
    let ns = u64::try_from(ns).unwrap_or(0);
    Datetime { seconds: ns / 1_000_000_000, nanoseconds: (ns % 1_000_000_000) as u32 }
}

fn descriptor_type(kind: Kind) -> fs::DescriptorType {
    match kind {
        Kind::File => fs::DescriptorType::RegularFile,
        Kind::Dir => fs::DescriptorType::Directory,
    }
}

fn stat(s: lamina_seal::Stat) -> fs::DescriptorStat {
    let time = Some(datetime(s.mtime));
    fs::DescriptorStat {
        type_: descriptor_type(s.kind),
        link_count: 1,
        size: s.size,
        data_access_timestamp: time,
        data_modification_timestamp: time,
        status_change_timestamp: time,
    }
}

fn hash(s: &lamina_seal::Stat) -> fs::MetadataHashValue {
    fs::MetadataHashValue { lower: s.ino, upper: u64::try_from(s.mtime).unwrap_or(0) ^ s.size }
}

fn new_mtime(t: fs::NewTimestamp) -> Option<i64> {
    match t {
        fs::NewTimestamp::NoChange => None,
        fs::NewTimestamp::Now => Some(crate::now_ns()),
        fs::NewTimestamp::Timestamp(d) => Some(
            i64::try_from(d.seconds).unwrap_or(i64::MAX / 2).saturating_mul(1_000_000_000) + i64::from(d.nanoseconds),
        ),
    }
}

fn read_at(volume: &Shared, id: &FileId, offset: u64, len: usize) -> Result<Vec<u8>, SealError> {
    let mut buf = vec![0u8; len.min(MAX_IO)];
    let mut v = lock(volume);
    let mut done = 0;
    while done < buf.len() {
        let n = v.read_at(id, offset + done as u64, &mut buf[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

fn write_at(volume: &Shared, id: &FileId, offset: u64, data: &[u8]) -> Result<(), SealError> {
    let mut v = lock(volume);
    let mut done = 0;
    while done < data.len() {
        let n = v.write_at(id, offset + done as u64, &data[done..])?;
        if n == 0 {
            return Err(SealError::InvalidPath { path: String::new(), reason: "no progress writing" });
        }
        done += n;
    }
    Ok(())
}

/// A stream over a sealed file. Errors are `last-operation-failed` carrying the
/// [`SealError`], which `filesystem-error-code` turns into the right error code.
struct SealedStream {
    volume: Shared,
    id: FileId,
    position: u64,
    /// Writes go to the end of the file.
    append: bool,
}

#[wasmtime_wasi::async_trait]
impl Pollable for SealedStream {
    async fn ready(&mut self) {}
}

fn stream_error(e: SealError) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(e))
}

#[wasmtime_wasi::async_trait]
impl InputStream for SealedStream {
    fn read(&mut self, size: usize) -> StreamResult<bytes::Bytes> {
        let data = read_at(&self.volume, &self.id, self.position, size).map_err(stream_error)?;
        if data.is_empty() && size > 0 {
            return Err(StreamError::Closed);
        }
        self.position += data.len() as u64;
        Ok(data.into())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for SealedStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        if self.append {
            self.position = lock(&self.volume).file_stat(&self.id).size;
        }
        write_at(&self.volume, &self.id, self.position, &bytes).map_err(stream_error)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_IO)
    }
}

/// Store data that holds wasmtime-wasi's context and the sealed filesystem.
pub trait SealedP2View: WasiView {
    /// The WASI context, the resource table and the sealed filesystem, borrowed apart.
    fn split_p2(&mut self) -> (&mut WasiCtx, &mut ResourceTable, &mut SealedFsP2);
}

/// The shadowing implementation: wasmtime-wasi's context for ordinary descriptors, the sealed
/// filesystem for the rest.
struct ShadowFs<'a> {
    ctx: &'a mut WasiCtx,
    table: &'a mut ResourceTable,
    sealed: &'a mut SealedFsP2,
}

/// Lets wasmtime-wasi's own implementation run on the borrowed parts.
struct Parts<'a> {
    ctx: &'a mut WasiCtx,
    table: &'a mut ResourceTable,
}

impl WasiView for Parts<'_> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: self.ctx, table: self.table }
    }
}

/// Calls wasmtime-wasi's implementation of a `wasi:filesystem` method on the borrowed parts,
/// awaiting it when the call ends in `.await` (the methods the bindings make asynchronous).
macro_rules! host {
    ($self:ident, $trait:ident :: $method:ident ( $($arg:expr),* ) $(. $await:ident)?) => {{
        let mut parts = Parts { ctx: &mut *$self.ctx, table: &mut *$self.table };
        let mut view = parts.filesystem();
        fs::$trait::$method(&mut view, $($arg),*) $(. $await)?
    }};
}

struct Shadow;

impl HasData for Shadow {
    type Data<'a> = ShadowFs<'a>;
}

fn shadow<T: SealedP2View>(t: &mut T) -> ShadowFs<'_> {
    let (ctx, table, sealed) = t.split_p2();
    ShadowFs { ctx, table, sealed }
}

/// Shadows `wasi:filesystem/types` and `wasi:filesystem/preopens` in a component linker that
/// already has wasmtime-wasi's synchronous bindings (`wasmtime_wasi::p2::add_to_linker_sync`).
///
/// # Errors
/// When the linker refuses the definitions.
pub fn add_to_component_linker<T: SealedP2View + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = blocking_fs::add_to_linker::<T, Shadow>(linker, shadow::<T>)
        .and_then(|()| preopens::add_to_linker::<T, Shadow>(linker, shadow::<T>));
    linker.allow_shadowing(false);
    added
}

/// Shadows `wasi:filesystem/types` and `wasi:filesystem/preopens` (WASI 0.2) in a component
/// linker that already has wasmtime-wasi's asynchronous bindings
/// (`wasmtime_wasi::p2::add_to_linker_async`): the linker of WASI 0.3 commands and of served
/// components, which call WASI 0.2's filesystem (as Rust's standard library does) from the
/// event loop.
///
/// # Errors
/// When the linker refuses the definitions.
pub fn add_to_async_component_linker<T: SealedP2View + Send + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = fs::add_to_linker::<T, Shadow>(linker, shadow::<T>)
        .and_then(|()| preopens::add_to_linker::<T, Shadow>(linker, shadow::<T>));
    linker.allow_shadowing(false);
    added
}

impl preopens::Host for ShadowFs<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<fs::Descriptor>, String)>> {
        let mut all = {
            let mut parts = Parts { ctx: &mut *self.ctx, table: &mut *self.table };
            let mut view = parts.filesystem();
            preopens::Host::get_directories(&mut view)?
        };
        for mount in 0..self.sealed.mounts.0.len() {
            let rep = self.sealed.allocate()?;
            self.sealed.handles.insert(rep, Handle::Dir { mount, path: String::new() });
            all.push((Resource::new_own(rep), self.sealed.mounts.0[mount].0.clone()));
        }
        Ok(all)
    }
}

impl fs::Host for ShadowFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<fs::ErrorCode> {
        err.downcast()
    }

    fn filesystem_error_code(&mut self, err: Resource<wasmtime::Error>) -> wasmtime::Result<Option<fs::ErrorCode>> {
        if let Some(e) = self.table.get(&err)?.downcast_ref::<SealError>() {
            return Ok(Some(code(e)));
        }
        host!(self, Host::filesystem_error_code(err))
    }
}

impl fs::HostDescriptor for ShadowFs<'_> {
    async fn advise(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: u64,
        len: u64,
        advice: fs::Advice,
    ) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            return self.sealed.file(fd.rep()).map(|_| ());
        }
        host!(self, HostDescriptor::advise(fd, offset, len, advice).await)
    }

    async fn sync_data(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            let mount = match self.sealed.handle(fd.rep())? {
                Handle::Dir { mount, .. } | Handle::File { mount, .. } => *mount,
            };
            return self.sealed.volume(mount).commit().map_err(fail);
        }
        host!(self, HostDescriptor::sync_data(fd).await)
    }

    async fn get_flags(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorFlags> {
        if SealedFsP2::owns(fd.rep()) {
            return Ok(match self.sealed.handle(fd.rep())? {
                Handle::Dir { .. } => fs::DescriptorFlags::READ | fs::DescriptorFlags::MUTATE_DIRECTORY,
                Handle::File { read, write, .. } => {
                    let mut flags = fs::DescriptorFlags::empty();
                    if *read {
                        flags |= fs::DescriptorFlags::READ;
                    }
                    if *write {
                        flags |= fs::DescriptorFlags::WRITE;
                    }
                    flags
                }
            });
        }
        host!(self, HostDescriptor::get_flags(fd).await)
    }

    async fn get_type(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorType> {
        if SealedFsP2::owns(fd.rep()) {
            return Ok(match self.sealed.handle(fd.rep())? {
                Handle::Dir { .. } => fs::DescriptorType::Directory,
                Handle::File { .. } => fs::DescriptorType::RegularFile,
            });
        }
        host!(self, HostDescriptor::get_type(fd).await)
    }

    async fn set_size(&mut self, fd: Resource<fs::Descriptor>, size: u64) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            let (volume, id, _, write) = self.sealed.file(fd.rep())?;
            if !write {
                return Err(Code::BadDescriptor.into());
            }
            return lock(&volume).set_len(&id, size).map_err(fail);
        }
        host!(self, HostDescriptor::set_size(fd, size).await)
    }

    async fn set_times(
        &mut self,
        fd: Resource<fs::Descriptor>,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            let Some(t) = new_mtime(mtim) else { return Ok(()) };
            return match self.sealed.handle(fd.rep())? {
                Handle::Dir { mount, path } => {
                    let (mount, path) = (*mount, path.clone());
                    self.sealed.volume(mount).set_mtime(&path, t).map_err(fail)
                }
                Handle::File { mount, id, .. } => {
                    let (mount, id) = (*mount, *id);
                    self.sealed.volume(mount).set_file_mtime(&id, t).map_err(fail)
                }
            };
        }
        host!(self, HostDescriptor::set_times(fd, atim, mtim).await)
    }

    async fn read(&mut self, fd: Resource<fs::Descriptor>, len: u64, offset: u64) -> FsResult<(Vec<u8>, bool)> {
        if SealedFsP2::owns(fd.rep()) {
            let (volume, id, read, _) = self.sealed.file(fd.rep())?;
            if !read {
                return Err(Code::BadDescriptor.into());
            }
            let len = usize::try_from(len).unwrap_or(MAX_IO);
            let data = read_at(&volume, &id, offset, len).map_err(fail)?;
            let end = data.len() < len.min(MAX_IO);
            return Ok((data, end));
        }
        host!(self, HostDescriptor::read(fd, len, offset).await)
    }

    async fn write(&mut self, fd: Resource<fs::Descriptor>, buf: Vec<u8>, offset: u64) -> FsResult<u64> {
        if SealedFsP2::owns(fd.rep()) {
            let (volume, id, _, write) = self.sealed.file(fd.rep())?;
            if !write {
                return Err(Code::BadDescriptor.into());
            }
            write_at(&volume, &id, offset, &buf).map_err(fail)?;
            return Ok(buf.len() as u64);
        }
        host!(self, HostDescriptor::write(fd, buf, offset).await)
    }

    async fn read_directory(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<Resource<fs::DirectoryEntryStream>> {
        if SealedFsP2::owns(fd.rep()) {
            let Handle::Dir { mount, path } = self.sealed.handle(fd.rep())? else {
                return Err(Code::NotDirectory.into());
            };
            let entries: VecDeque<fs::DirectoryEntry> = self
                .sealed
                .volume(*mount)
                .readdir(path)
                .map_err(fail)?
                .into_iter()
                .map(|e| fs::DirectoryEntry { type_: descriptor_type(e.kind), name: e.name })
                .collect();
            let rep = self.sealed.allocate()?;
            self.sealed.listings.insert(rep, entries);
            return Ok(Resource::new_own(rep));
        }
        host!(self, HostDescriptor::read_directory(fd).await)
    }

    async fn sync(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            return fs::HostDescriptor::sync_data(self, fd).await;
        }
        host!(self, HostDescriptor::sync(fd).await)
    }

    async fn create_directory_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            let (mount, path) = self.sealed.resolve(fd.rep(), &path)?;
            return self.sealed.volume(mount).mkdir(&path).map_err(fail);
        }
        host!(self, HostDescriptor::create_directory_at(fd, path).await)
    }

    async fn stat(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorStat> {
        if SealedFsP2::owns(fd.rep()) {
            return match self.sealed.handle(fd.rep())? {
                Handle::Dir { mount, path } => self.sealed.volume(*mount).stat(path).map(stat).map_err(fail),
                Handle::File { mount, id, .. } => Ok(stat(self.sealed.volume(*mount).file_stat(id))),
            };
        }
        host!(self, HostDescriptor::stat(fd).await)
    }

    async fn stat_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::DescriptorStat> {
        if SealedFsP2::owns(fd.rep()) {
            let dir = crate::names_dir(&path);
            let (mount, path) = self.sealed.resolve(fd.rep(), &path)?;
            let volume = self.sealed.volume(mount);
            if dir {
                crate::check_names_dir(&volume, &path, false).map_err(fail)?;
            }
            return volume.stat(&path).map(stat).map_err(fail);
        }
        host!(self, HostDescriptor::stat_at(fd, flags, path).await)
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        flags: fs::PathFlags,
        path: String,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            let (mount, path) = self.sealed.resolve(fd.rep(), &path)?;
            let mut v = self.sealed.volume(mount);
            return match new_mtime(mtim) {
                Some(t) => v.set_mtime(&path, t).map_err(fail),
                None => v.stat(&path).map(|_| ()).map_err(fail),
            };
        }
        host!(self, HostDescriptor::set_times_at(fd, flags, path, atim, mtim).await)
    }

    async fn link_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        flags: fs::PathFlags,
        old_path: String,
        new_fd: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) || SealedFsP2::owns(new_fd.rep()) {
            // Sealed files have one name each.
            return Err(Code::Unsupported.into());
        }
        host!(self, HostDescriptor::link_at(fd, flags, old_path, new_fd, new_path).await)
    }

    async fn open_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
        oflags: fs::OpenFlags,
        flags: fs::DescriptorFlags,
    ) -> FsResult<Resource<fs::Descriptor>> {
        if !SealedFsP2::owns(fd.rep()) {
            return host!(self, HostDescriptor::open_at(fd, path_flags, path, oflags, flags).await);
        }
        let dir = crate::names_dir(&path);
        let (mount, path) = self.sealed.resolve(fd.rep(), &path)?;
        if dir {
            let creating = oflags.contains(fs::OpenFlags::CREATE);
            crate::check_names_dir(&self.sealed.volume(mount), &path, creating).map_err(fail)?;
        }
        let open = OpenFlags {
            create: oflags.contains(fs::OpenFlags::CREATE),
            exclusive: oflags.contains(fs::OpenFlags::EXCLUSIVE),
            truncate: oflags.contains(fs::OpenFlags::TRUNCATE),
            directory: oflags.contains(fs::OpenFlags::DIRECTORY),
        };
        let write = flags.contains(fs::DescriptorFlags::WRITE);
        if (open.create || open.truncate) && !write && !open.directory {
            // As wasmtime-wasi: creating or truncating needs a writable descriptor.
            return Err(Code::Access.into());
        }
        let opened = self.sealed.volume(mount).open_path(&path, open).map_err(fail)?;
        if matches!(opened, Opened::Dir) && write {
            // As wasmtime-wasi: a directory is not opened for writing.
            return Err(Code::IsDirectory.into());
        }
        if let Opened::File(id) = &opened
            && self.sealed.handles.values().filter(|h| matches!(h, Handle::File { .. })).count()
                >= crate::MAX_OPEN_FILES
        {
            let _ = self.sealed.volume(mount).close(id);
            return Err(Code::InsufficientMemory.into());
        }
        let handle = match opened {
            Opened::Dir => Handle::Dir { mount, path },
            Opened::File(id) => Handle::File { mount, id, read: flags.contains(fs::DescriptorFlags::READ), write },
        };
        let rep = match self.sealed.allocate() {
            Ok(rep) => rep,
            Err(e) => {
                if let Handle::File { id, .. } = &handle {
                    let _ = self.sealed.volume(mount).close(id);
                }
                return Err(e);
            }
        };
        self.sealed.handles.insert(rep, handle);
        Ok(Resource::new_own(rep))
    }

    fn drop(&mut self, fd: Resource<fs::Descriptor>) -> wasmtime::Result<()> {
        if SealedFsP2::owns(fd.rep()) {
            if let Some(Handle::File { mount, id, .. }) = self.sealed.handles.remove(&fd.rep())
                && let Err(e) = self.sealed.volume(mount).close(&id)
            {
                tracing::error!("sealed filesystem: closing a file failed: {e}");
            }
            return Ok(());
        }
        host!(self, HostDescriptor::drop(fd))
    }

    async fn readlink_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<String> {
        if SealedFsP2::owns(fd.rep()) {
            let (mount, path) = self.sealed.resolve(fd.rep(), &path)?;
            // Nothing in a sealed volume is a symbolic link.
            self.sealed.volume(mount).stat(&path).map_err(fail)?;
            return Err(Code::Invalid.into());
        }
        host!(self, HostDescriptor::readlink_at(fd, path).await)
    }

    async fn remove_directory_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            if crate::names_dir(&path) {
                // As a plain directory through wasmtime-wasi: `rmdir("d/")` is refused.
                return Err(Code::Invalid.into());
            }
            let (mount, path) = self.sealed.resolve(fd.rep(), &path)?;
            return self.sealed.volume(mount).rmdir(&path).map_err(fail);
        }
        host!(self, HostDescriptor::remove_directory_at(fd, path).await)
    }

    async fn rename_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        old_path: String,
        new_fd: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        match (SealedFsP2::owns(fd.rep()), SealedFsP2::owns(new_fd.rep())) {
            (false, false) => host!(self, HostDescriptor::rename_at(fd, old_path, new_fd, new_path).await),
            (true, true) => {
                let (from_mount, from) = self.sealed.resolve(fd.rep(), &old_path)?;
                let (to_mount, to) = self.sealed.resolve(new_fd.rep(), &new_path)?;
                if from_mount != to_mount {
                    return Err(Code::CrossDevice.into());
                }
                self.sealed.volume(from_mount).rename(&from, &to).map_err(fail)
            }
            _ => Err(Code::CrossDevice.into()),
        }
    }

    async fn symlink_at(&mut self, fd: Resource<fs::Descriptor>, src: String, dest: String) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            return Err(Code::Unsupported.into());
        }
        host!(self, HostDescriptor::symlink_at(fd, src, dest).await)
    }

    async fn unlink_file_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        if SealedFsP2::owns(fd.rep()) {
            let dir = crate::names_dir(&path);
            let (mount, path) = self.sealed.resolve(fd.rep(), &path)?;
            let mut volume = self.sealed.volume(mount);
            if dir {
                crate::check_names_dir(&volume, &path, false).map_err(fail)?;
            }
            return volume.unlink(&path).map_err(fail);
        }
        host!(self, HostDescriptor::unlink_file_at(fd, path).await)
    }

    fn read_via_stream(&mut self, fd: Resource<fs::Descriptor>, offset: u64) -> FsResult<Resource<DynInputStream>> {
        if SealedFsP2::owns(fd.rep()) {
            let (volume, id, read, _) = self.sealed.file(fd.rep())?;
            if !read {
                return Err(Code::BadDescriptor.into());
            }
            let stream: DynInputStream = Box::new(SealedStream { volume, id, position: offset, append: false });
            return Ok(self.table.push(stream)?);
        }
        host!(self, HostDescriptor::read_via_stream(fd, offset))
    }

    fn write_via_stream(&mut self, fd: Resource<fs::Descriptor>, offset: u64) -> FsResult<Resource<DynOutputStream>> {
        if SealedFsP2::owns(fd.rep()) {
            return self.sealed_writer(fd.rep(), offset, false);
        }
        host!(self, HostDescriptor::write_via_stream(fd, offset))
    }

    fn append_via_stream(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<Resource<DynOutputStream>> {
        if SealedFsP2::owns(fd.rep()) {
            return self.sealed_writer(fd.rep(), 0, true);
        }
        host!(self, HostDescriptor::append_via_stream(fd))
    }

    async fn is_same_object(
        &mut self,
        a: Resource<fs::Descriptor>,
        b: Resource<fs::Descriptor>,
    ) -> wasmtime::Result<bool> {
        match (SealedFsP2::owns(a.rep()), SealedFsP2::owns(b.rep())) {
            (false, false) => host!(self, HostDescriptor::is_same_object(a, b).await),
            (true, true) => {
                let key = |h: &Handle| match h {
                    Handle::Dir { mount, path } => (*mount, Some(path.clone()), None),
                    Handle::File { mount, id, .. } => (*mount, None, Some(*id)),
                };
                let ka = self.sealed.handles.get(&a.rep()).map(key);
                let kb = self.sealed.handles.get(&b.rep()).map(key);
                Ok(ka.is_some() && ka == kb)
            }
            _ => Ok(false),
        }
    }

    async fn metadata_hash(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::MetadataHashValue> {
        if SealedFsP2::owns(fd.rep()) {
            return match self.sealed.handle(fd.rep())? {
                Handle::Dir { mount, path } => self.sealed.volume(*mount).stat(path).map(|s| hash(&s)).map_err(fail),
                Handle::File { mount, id, .. } => Ok(hash(&self.sealed.volume(*mount).file_stat(id))),
            };
        }
        host!(self, HostDescriptor::metadata_hash(fd).await)
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::MetadataHashValue> {
        if SealedFsP2::owns(fd.rep()) {
            let (mount, path) = self.sealed.resolve(fd.rep(), &path)?;
            return self.sealed.volume(mount).stat(&path).map(|s| hash(&s)).map_err(fail);
        }
        host!(self, HostDescriptor::metadata_hash_at(fd, flags, path).await)
    }
}

impl ShadowFs<'_> {
    fn sealed_writer(&mut self, rep: u32, offset: u64, append: bool) -> FsResult<Resource<DynOutputStream>> {
        let (volume, id, _, write) = self.sealed.file(rep)?;
        if !write {
            return Err(Code::BadDescriptor.into());
        }
        let stream: DynOutputStream = Box::new(SealedStream { volume, id, position: offset, append });
        Ok(self.table.push(stream)?)
    }
}

impl fs::HostDirectoryEntryStream for ShadowFs<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<fs::DirectoryEntryStream>,
    ) -> FsResult<Option<fs::DirectoryEntry>> {
        if SealedFsP2::owns(stream.rep()) {
            let entries = self.sealed.listings.get_mut(&stream.rep()).ok_or(FsError::from(Code::BadDescriptor))?;
            return Ok(entries.pop_front());
        }
        host!(self, HostDirectoryEntryStream::read_directory_entry(stream).await)
    }

    fn drop(&mut self, stream: Resource<fs::DirectoryEntryStream>) -> wasmtime::Result<()> {
        if SealedFsP2::owns(stream.rep()) {
            self.sealed.listings.remove(&stream.rep());
            return Ok(());
        }
        host!(self, HostDirectoryEntryStream::drop(stream))
    }
}

/// The synchronous binding's methods: each runs the asynchronous one to completion, as
/// wasmtime-wasi's own synchronous filesystem does (sealed operations never wait).
macro_rules! blocking {
    ($( fn $name:ident ( $($arg:ident : $ty:ty),* ) -> $out:ty; )*) => {$(
        #[allow(clippy::useless_conversion, reason = "most types are the same in both bindings")]
        fn $name(&mut self, fd: Resource<fs::Descriptor>, $($arg: $ty),*) -> FsResult<$out> {
            Ok(in_tokio(fs::HostDescriptor::$name(self, fd, $($arg.into()),*))?.into())
        }
    )*};
}

impl blocking_fs::Host for ShadowFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<blocking_fs::ErrorCode> {
        Ok(fs::Host::convert_error_code(self, err)?.into())
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<streams::Error>,
    ) -> wasmtime::Result<Option<blocking_fs::ErrorCode>> {
        Ok(fs::Host::filesystem_error_code(self, err)?.map(Into::into))
    }
}

impl blocking_fs::HostDescriptor for ShadowFs<'_> {
    blocking! {
        fn advise(offset: u64, len: u64, advice: blocking_fs::Advice) -> ();
        fn sync_data() -> ();
        fn get_flags() -> blocking_fs::DescriptorFlags;
        fn get_type() -> blocking_fs::DescriptorType;
        fn set_size(size: u64) -> ();
        fn set_times(atim: blocking_fs::NewTimestamp, mtim: blocking_fs::NewTimestamp) -> ();
        fn read(len: u64, offset: u64) -> (Vec<u8>, bool);
        fn write(buf: Vec<u8>, offset: u64) -> u64;
        fn read_directory() -> Resource<fs::DirectoryEntryStream>;
        fn sync() -> ();
        fn create_directory_at(path: String) -> ();
        fn stat() -> blocking_fs::DescriptorStat;
        fn stat_at(flags: blocking_fs::PathFlags, path: String) -> blocking_fs::DescriptorStat;
        fn set_times_at(
            flags: blocking_fs::PathFlags,
            path: String,
            atim: blocking_fs::NewTimestamp,
            mtim: blocking_fs::NewTimestamp
        ) -> ();
        fn link_at(
            flags: blocking_fs::PathFlags,
            old_path: String,
            new_fd: Resource<fs::Descriptor>,
            new_path: String
        ) -> ();
        fn open_at(
            path_flags: blocking_fs::PathFlags,
            path: String,
            oflags: blocking_fs::OpenFlags,
            flags: blocking_fs::DescriptorFlags
        ) -> Resource<fs::Descriptor>;
        fn readlink_at(path: String) -> String;
        fn remove_directory_at(path: String) -> ();
        fn rename_at(old_path: String, new_fd: Resource<fs::Descriptor>, new_path: String) -> ();
        fn symlink_at(src: String, dest: String) -> ();
        fn unlink_file_at(path: String) -> ();
        fn metadata_hash() -> blocking_fs::MetadataHashValue;
        fn metadata_hash_at(flags: blocking_fs::PathFlags, path: String) -> blocking_fs::MetadataHashValue;
    }

    fn read_via_stream(&mut self, fd: Resource<fs::Descriptor>, offset: u64) -> FsResult<Resource<DynInputStream>> {
        fs::HostDescriptor::read_via_stream(self, fd, offset)
    }

    fn write_via_stream(&mut self, fd: Resource<fs::Descriptor>, offset: u64) -> FsResult<Resource<DynOutputStream>> {
        fs::HostDescriptor::write_via_stream(self, fd, offset)
    }

    fn append_via_stream(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<Resource<DynOutputStream>> {
        fs::HostDescriptor::append_via_stream(self, fd)
    }

    fn is_same_object(&mut self, a: Resource<fs::Descriptor>, b: Resource<fs::Descriptor>) -> wasmtime::Result<bool> {
        in_tokio(fs::HostDescriptor::is_same_object(self, a, b))
    }

    fn drop(&mut self, fd: Resource<fs::Descriptor>) -> wasmtime::Result<()> {
        fs::HostDescriptor::drop(self, fd)
    }
}

impl blocking_fs::HostDirectoryEntryStream for ShadowFs<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<fs::DirectoryEntryStream>,
    ) -> FsResult<Option<blocking_fs::DirectoryEntry>> {
        Ok(in_tokio(fs::HostDirectoryEntryStream::read_directory_entry(self, stream))?.map(Into::into))
    }

    fn drop(&mut self, stream: Resource<fs::DirectoryEntryStream>) -> wasmtime::Result<()> {
        fs::HostDirectoryEntryStream::drop(self, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_volume() {
        assert_eq!(join("db", "notes.db").ok(), Some("db/notes.db".into()));
        assert_eq!(join("", "a/./b/../c").ok(), Some("a/c".into()));
        assert!(join("", "../etc").is_err());
        assert!(join("a", "/etc/passwd").is_err());
        assert!(join("", &"x".repeat(5000)).is_err());
    }
}
