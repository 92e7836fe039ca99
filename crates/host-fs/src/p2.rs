//! Sealed directories for WASI 0.2 components.
//!
//! The same idea as for preview 1: [`add_to_component_linker`] shadows wasmtime-wasi's
//! `wasi:filesystem/types` and `wasi:filesystem/preopens` with implementations that look at the
//! descriptor first. Sealed directories and the files opened in them are served by
//! [`SealedComponentFs`]; every other descriptor is handed to wasmtime-wasi unchanged.
//! `get-directories` lists wasmtime-wasi's preopens and then one per sealed mount.
//!
//! Streams (`read-via-stream`, `write-via-stream`, `append-via-stream`) are sealed streams in
//! wasmtime-wasi's resource table, so `wasi:io` serves them as any other; they share the
//! volume with the descriptors through a mutex.

use lamina_seal::{FileId, Kind, SealError};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode as Code;
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types as fs};
use wasmtime_wasi::p2::bindings::sync::filesystem::types as blocking_fs;
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, FsError, FsResult, InputStream, OutputStream, Pollable, StreamError, StreamResult,
};
use wasmtime_wasi::runtime::in_tokio;

use crate::component::{
    self, MAX_IO, Place, SealedComponentFs, SealedComponentView, Shadow, ShadowFs, Shared, binding_conversions,
    from_errno, host, shadow,
};

from_errno!(Code, FsError);
binding_conversions!(fs, datetime);

fn datetime(ns: i64) -> Datetime {
    let (seconds, nanoseconds) = component::split_ns(ns);
    Datetime { seconds, nanoseconds }
}

fn new_time(t: fs::NewTimestamp) -> Option<i64> {
    match t {
        fs::NewTimestamp::NoChange => None,
        fs::NewTimestamp::Now => Some(component::now_or(None)),
        fs::NewTimestamp::Timestamp(d) => {
            Some(component::now_or(Some((i64::try_from(d.seconds).unwrap_or(i64::MAX), d.nanoseconds))))
        }
    }
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
        let data = component::read_at(&self.volume, &self.id, self.position, size).map_err(stream_error)?;
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
        let place = if self.append { Place::End } else { Place::At(self.position) };
        let at = component::write_at(&self.volume, &self.id, place, &bytes).map_err(stream_error)?;
        self.position = at + bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_IO)
    }
}

/// Shadows `wasi:filesystem/types` and `wasi:filesystem/preopens` in a component linker that
/// already has wasmtime-wasi's synchronous bindings (`wasmtime_wasi::p2::add_to_linker_sync`).
///
/// # Errors
/// When the linker refuses the definitions.
pub fn add_to_component_linker<T: SealedComponentView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
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
pub fn add_to_async_component_linker<T: SealedComponentView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = fs::add_to_linker::<T, Shadow>(linker, shadow::<T>)
        .and_then(|()| preopens::add_to_linker::<T, Shadow>(linker, shadow::<T>));
    linker.allow_shadowing(false);
    added
}

impl preopens::Host for ShadowFs<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<fs::Descriptor>, String)>> {
        let mut all = host!(self, preopens::Host::get_directories())?;
        let sealed = self.sealed.preopens().map_err(|e| wasmtime::Error::msg(format!("sealed preopens: {e:?}")))?;
        all.extend(sealed.into_iter().map(|(rep, guest)| (Resource::new_own(rep), guest)));
        Ok(all)
    }
}

impl fs::Host for ShadowFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<fs::ErrorCode> {
        err.downcast()
    }

    fn filesystem_error_code(&mut self, err: Resource<wasmtime::Error>) -> wasmtime::Result<Option<fs::ErrorCode>> {
        if let Some(e) = self.table.get(&err)?.downcast_ref::<SealError>() {
            return Ok(Some(component::code(e).into()));
        }
        host!(self, fs::Host::filesystem_error_code(err))
    }
}

fn owned(fd: &Resource<fs::Descriptor>) -> Option<u32> {
    SealedComponentFs::owns(fd.rep()).then(|| fd.rep())
}

impl fs::HostDescriptor for ShadowFs<'_> {
    async fn advise(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: u64,
        len: u64,
        advice: fs::Advice,
    ) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.advise(rep)?),
            None => host!(self, fs::HostDescriptor::advise(fd, offset, len, advice).await),
        }
    }

    async fn sync_data(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(component::commit(self.sealed.volume_of(rep)?).await?),
            None => host!(self, fs::HostDescriptor::sync_data(fd).await),
        }
    }

    async fn get_flags(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorFlags> {
        let Some(rep) = owned(&fd) else { return host!(self, fs::HostDescriptor::get_flags(fd).await) };
        let access = self.sealed.access(rep)?;
        let mut flags = fs::DescriptorFlags::empty();
        if access.read {
            flags |= fs::DescriptorFlags::READ;
        }
        if access.write {
            flags |= fs::DescriptorFlags::WRITE;
        }
        if access.mutate {
            flags |= fs::DescriptorFlags::MUTATE_DIRECTORY;
        }
        Ok(flags)
    }

    async fn get_type(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorType> {
        match owned(&fd) {
            Some(rep) => Ok(descriptor_type(if self.sealed.access(rep)?.dir { Kind::Dir } else { Kind::File })),
            None => host!(self, fs::HostDescriptor::get_type(fd).await),
        }
    }

    async fn set_size(&mut self, fd: Resource<fs::Descriptor>, size: u64) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.set_size(rep, size)?),
            None => host!(self, fs::HostDescriptor::set_size(fd, size).await),
        }
    }

    async fn set_times(
        &mut self,
        fd: Resource<fs::Descriptor>,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.set_times(rep, new_time(atim), new_time(mtim))?),
            None => host!(self, fs::HostDescriptor::set_times(fd, atim, mtim).await),
        }
    }

    async fn read(&mut self, fd: Resource<fs::Descriptor>, len: u64, offset: u64) -> FsResult<(Vec<u8>, bool)> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.read(rep, len, offset)?),
            None => host!(self, fs::HostDescriptor::read(fd, len, offset).await),
        }
    }

    async fn write(&mut self, fd: Resource<fs::Descriptor>, buf: Vec<u8>, offset: u64) -> FsResult<u64> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.write(rep, &buf, offset)?),
            None => host!(self, fs::HostDescriptor::write(fd, buf, offset).await),
        }
    }

    async fn read_directory(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<Resource<fs::DirectoryEntryStream>> {
        match owned(&fd) {
            Some(rep) => Ok(Resource::new_own(self.sealed.open_listing(rep)?)),
            None => host!(self, fs::HostDescriptor::read_directory(fd).await),
        }
    }

    async fn sync(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(component::commit(self.sealed.volume_of(rep)?).await?),
            None => host!(self, fs::HostDescriptor::sync(fd).await),
        }
    }

    async fn create_directory_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.create_directory_at(rep, &path)?),
            None => host!(self, fs::HostDescriptor::create_directory_at(fd, path).await),
        }
    }

    async fn stat(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorStat> {
        match owned(&fd) {
            Some(rep) => Ok(stat(self.sealed.stat(rep)?)),
            None => host!(self, fs::HostDescriptor::stat(fd).await),
        }
    }

    async fn stat_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::DescriptorStat> {
        match owned(&fd) {
            Some(rep) => Ok(stat(self.sealed.stat_at(rep, &path, flags.contains(fs::PathFlags::SYMLINK_FOLLOW))?)),
            None => host!(self, fs::HostDescriptor::stat_at(fd, flags, path).await),
        }
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        flags: fs::PathFlags,
        path: String,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.set_times_at(
                rep,
                &path,
                flags.contains(fs::PathFlags::SYMLINK_FOLLOW),
                new_time(atim),
                new_time(mtim),
            )?),
            None => host!(self, fs::HostDescriptor::set_times_at(fd, flags, path, atim, mtim).await),
        }
    }

    async fn link_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        flags: fs::PathFlags,
        old_path: String,
        new_fd: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        match (owned(&fd), owned(&new_fd)) {
            (Some(rep), _) => {
                let follow = flags.contains(fs::PathFlags::SYMLINK_FOLLOW);
                return Ok(self.sealed.link_at(rep, &old_path, follow, new_fd.rep(), &new_path)?);
            }
            (None, Some(_)) => return Err(Code::CrossDevice.into()),
            (None, None) => {}
        }
        host!(self, fs::HostDescriptor::link_at(fd, flags, old_path, new_fd, new_path).await)
    }

    async fn open_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
        oflags: fs::OpenFlags,
        flags: fs::DescriptorFlags,
    ) -> FsResult<Resource<fs::Descriptor>> {
        match owned(&fd) {
            Some(rep) => Ok(Resource::new_own(self.sealed.open_at(
                rep,
                &path,
                path_flags.contains(fs::PathFlags::SYMLINK_FOLLOW),
                open_request(oflags, flags),
            )?)),
            None => host!(self, fs::HostDescriptor::open_at(fd, path_flags, path, oflags, flags).await),
        }
    }

    fn drop(&mut self, fd: Resource<fs::Descriptor>) -> wasmtime::Result<()> {
        match owned(&fd) {
            Some(rep) => {
                self.sealed.close(rep);
                Ok(())
            }
            None => host!(self, fs::HostDescriptor::drop(fd)),
        }
    }

    async fn readlink_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<String> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.readlink_at(rep, &path)?),
            None => host!(self, fs::HostDescriptor::readlink_at(fd, path).await),
        }
    }

    async fn remove_directory_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.remove_directory_at(rep, &path)?),
            None => host!(self, fs::HostDescriptor::remove_directory_at(fd, path).await),
        }
    }

    async fn rename_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        old_path: String,
        new_fd: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        if owned(&fd).is_none() && owned(&new_fd).is_none() {
            return host!(self, fs::HostDescriptor::rename_at(fd, old_path, new_fd, new_path).await);
        }
        Ok(self.sealed.rename_at(fd.rep(), &old_path, new_fd.rep(), &new_path)?)
    }

    async fn symlink_at(&mut self, fd: Resource<fs::Descriptor>, src: String, dest: String) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.symlink_at(rep, &src, &dest)?),
            None => host!(self, fs::HostDescriptor::symlink_at(fd, src, dest).await),
        }
    }

    async fn unlink_file_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(self.sealed.unlink_file_at(rep, &path)?),
            None => host!(self, fs::HostDescriptor::unlink_file_at(fd, path).await),
        }
    }

    fn read_via_stream(&mut self, fd: Resource<fs::Descriptor>, offset: u64) -> FsResult<Resource<DynInputStream>> {
        let Some(rep) = owned(&fd) else { return host!(self, fs::HostDescriptor::read_via_stream(fd, offset)) };
        component::check_offset(offset)?;
        let (volume, id) = self.sealed.reader(rep)?;
        let stream: DynInputStream = Box::new(SealedStream { volume, id, position: offset, append: false });
        Ok(self.table.push(stream)?)
    }

    fn write_via_stream(&mut self, fd: Resource<fs::Descriptor>, offset: u64) -> FsResult<Resource<DynOutputStream>> {
        match owned(&fd) {
            Some(rep) => self.sealed_writer(rep, offset, false),
            None => host!(self, fs::HostDescriptor::write_via_stream(fd, offset)),
        }
    }

    fn append_via_stream(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<Resource<DynOutputStream>> {
        match owned(&fd) {
            Some(rep) => self.sealed_writer(rep, 0, true),
            None => host!(self, fs::HostDescriptor::append_via_stream(fd)),
        }
    }

    async fn is_same_object(
        &mut self,
        a: Resource<fs::Descriptor>,
        b: Resource<fs::Descriptor>,
    ) -> wasmtime::Result<bool> {
        if owned(&a).is_none() && owned(&b).is_none() {
            return host!(self, fs::HostDescriptor::is_same_object(a, b).await);
        }
        Ok(self.sealed.is_same_object(a.rep(), b.rep()))
    }

    async fn metadata_hash(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::MetadataHashValue> {
        match owned(&fd) {
            Some(rep) => Ok(hash(&self.sealed.stat(rep)?)),
            None => host!(self, fs::HostDescriptor::metadata_hash(fd).await),
        }
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::MetadataHashValue> {
        match owned(&fd) {
            Some(rep) => Ok(hash(&self.sealed.stat_at(rep, &path, flags.contains(fs::PathFlags::SYMLINK_FOLLOW))?)),
            None => host!(self, fs::HostDescriptor::metadata_hash_at(fd, flags, path).await),
        }
    }
}

impl ShadowFs<'_> {
    fn sealed_writer(&mut self, rep: u32, offset: u64, append: bool) -> FsResult<Resource<DynOutputStream>> {
        component::check_offset(offset)?;
        let (volume, id) = self.sealed.writer(rep)?;
        let stream: DynOutputStream = Box::new(SealedStream { volume, id, position: offset, append });
        Ok(self.table.push(stream)?)
    }
}

impl fs::HostDirectoryEntryStream for ShadowFs<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<fs::DirectoryEntryStream>,
    ) -> FsResult<Option<fs::DirectoryEntry>> {
        if !SealedComponentFs::owns(stream.rep()) {
            return host!(self, fs::HostDirectoryEntryStream::read_directory_entry(stream).await);
        }
        let entry = self.sealed.next_entry(stream.rep())?;
        Ok(entry.map(|(kind, name)| fs::DirectoryEntry { type_: descriptor_type(kind), name }))
    }

    fn drop(&mut self, stream: Resource<fs::DirectoryEntryStream>) -> wasmtime::Result<()> {
        if !SealedComponentFs::owns(stream.rep()) {
            return host!(self, fs::HostDirectoryEntryStream::drop(stream));
        }
        self.sealed.close_listing(stream.rep());
        Ok(())
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
