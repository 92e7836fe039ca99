//! Sealed directories for components that import WASI 0.3's own filesystem
//! (`wasi:filesystem@0.3`).
//!
//! As for WASI 0.2: [`add_to_p3_linker`] shadows wasmtime-wasi's `wasi:filesystem/types` and
//! `wasi:filesystem/preopens` at 0.3 with implementations that look at the descriptor first;
//! sealed ones are served by [`SealedComponentFs`] (the same sealed side as WASI 0.2's, so a
//! component may use both), every other one goes to wasmtime-wasi's own implementation,
//! reached through the same store with wasmtime-wasi's view of it.
//!
//! WASI 0.3 moves data through the component model's streams: `read-via-stream` hands the
//! guest a stream that a [`SealedReader`] fills from the volume, `write-via-stream` and
//! `append-via-stream` take the guest's stream into a [`SealedWriter`], and `read-directory`
//! streams the directory's entries. Each reports how it ended through the future returned
//! beside it.

use std::pin::Pin;
use std::task::{Context, Poll};

use lamina_seal::{FileId, Kind};
use tokio::sync::oneshot;
use wasmtime::component::{
    Access, Accessor, Destination, FutureReader, Linker, Resource, Source, StreamConsumer, StreamProducer,
    StreamReader, StreamResult,
};
use wasmtime::{AsContextMut as _, StoreContextMut};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemCtxView, WasiFilesystemView as _};
use wasmtime_wasi::p3::bindings::clocks::system_clock::Instant;
use wasmtime_wasi::p3::bindings::filesystem::{preopens, types};
use wasmtime_wasi::p3::filesystem::{FilesystemError, FilesystemResult};

use crate::component::{
    self, Errno, Place, SealedComponentFs, SealedComponentView, Shadow, ShadowFs, Shared, binding_conversions,
    from_errno, host, shadow,
};

use types::{
    Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode, Filesize,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};

from_errno!(ErrorCode, FilesystemError);
binding_conversions!(types, instant);

/// The most bytes one step of a sealed stream moves.
const CHUNK: usize = 64 << 10;

/// Shadows `wasi:filesystem/types` and `wasi:filesystem/preopens` (WASI 0.3) in a component
/// linker that already has wasmtime-wasi's (`wasmtime_wasi::p3::add_to_linker`).
///
/// # Errors
/// When the linker refuses the definitions.
pub fn add_to_p3_linker<T: SealedComponentView + Send + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = types::add_to_linker::<T, Shadow>(linker, shadow::<T>)
        .and_then(|()| preopens::add_to_linker::<T, Shadow>(linker, shadow::<T>));
    linker.allow_shadowing(false);
    added
}

/// wasmtime-wasi's own view of the store, for the descriptors that are not sealed.
fn plain<T: WasiView>(t: &mut T) -> WasiFilesystemCtxView<'_> {
    t.filesystem()
}

fn owned(fd: &Resource<Descriptor>) -> Option<u32> {
    SealedComponentFs::owns(fd.rep()).then(|| fd.rep())
}

fn instant(ns: i64) -> Instant {
    let (seconds, nanoseconds) = component::split_ns(ns);
    Instant { seconds: i64::try_from(seconds).unwrap_or(i64::MAX), nanoseconds }
}

fn new_time(t: NewTimestamp) -> Option<i64> {
    match t {
        NewTimestamp::NoChange => None,
        NewTimestamp::Now => Some(component::now_or(None)),
        NewTimestamp::Timestamp(t) => Some(component::now_or(Some((t.seconds, t.nanoseconds)))),
    }
}

/// How a sealed stream ended, told once to the future beside it: an error when the volume
/// refused, else success when the stream is done with (or dropped).
struct Outcome(Option<oneshot::Sender<Result<(), ErrorCode>>>);

impl Outcome {
    fn new() -> (Self, oneshot::Receiver<Result<(), ErrorCode>>) {
        let (tx, rx) = oneshot::channel();
        (Outcome(Some(tx)), rx)
    }

    fn tell(&mut self, result: Result<(), ErrorCode>) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(result);
        }
    }

    /// Ends the stream with the volume's error.
    fn failed(&mut self, e: lamina_seal::SealError) -> Poll<wasmtime::Result<StreamResult>> {
        self.tell(Err(component::fail(e).into()));
        Poll::Ready(Ok(StreamResult::Dropped))
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.tell(Ok(()));
    }
}

/// Fills a guest's `read-via-stream` from a sealed file, a chunk at a time.
struct SealedReader {
    volume: Shared,
    id: FileId,
    offset: u64,
    outcome: Outcome,
}

impl<D> StreamProducer<D> for SealedReader {
    type Item = u8;
    type Buffer = bytes::BytesMut;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        store: StoreContextMut<'a, D>,
        dst: Destination<'a, Self::Item, Self::Buffer>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let mut dst = dst.as_direct(store, CHUNK);
        let buf = dst.remaining();
        if buf.is_empty() {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let end = buf.len().min(CHUNK);
        match component::read_into(&self.volume, &self.id, self.offset, &mut buf[..end]) {
            Ok(0) => {
                self.outcome.tell(Ok(()));
                Poll::Ready(Ok(StreamResult::Dropped))
            }
            Ok(n) => {
                dst.mark_written(n);
                self.offset += n as u64;
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Err(e) => self.outcome.failed(e),
        }
    }
}

/// Takes a guest's `write-via-stream` or `append-via-stream` into a sealed file.
struct SealedWriter {
    volume: Shared,
    id: FileId,
    /// Where the next write goes; `None` appends.
    offset: Option<u64>,
    outcome: Outcome,
}

impl<D> StreamConsumer<D> for SealedWriter {
    type Item = u8;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        store: StoreContextMut<'_, D>,
        src: Source<'_, Self::Item>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let mut src = src.as_direct(store);
        let data = src.remaining();
        let n = data.len().min(CHUNK);
        let place = self.offset.map_or(Place::End, Place::At);
        match component::write_at(&self.volume, &self.id, place, &data[..n]) {
            Ok(_) => {
                src.mark_read(n);
                if let Some(offset) = &mut self.offset {
                    *offset += n as u64;
                }
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Err(e) => self.outcome.failed(e),
        }
    }
}

/// A future that is ready with this result.
fn ready<U: 'static>(
    store: &mut Access<'_, U, Shadow>,
    result: Result<(), ErrorCode>,
) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
    FutureReader::new(store, async move { wasmtime::error::Ok(result) })
}

/// Runs a sealed operation on the store's sealed filesystem.
fn sealed<U, R>(
    store: &Accessor<U, Shadow>,
    op: impl FnOnce(&mut SealedComponentFs) -> Result<R, Errno>,
) -> FilesystemResult<R> {
    store.with(|mut access| Ok(op(access.get().sealed)?))
}

/// wasmtime-wasi's own implementation of a method, for a descriptor that is not sealed.
macro_rules! plain {
    ($store:ident, $method:ident ( $($arg:expr),* )) => {
        <WasiFilesystem as types::HostDescriptorWithStore<U>>::$method(
            &$store.with_getter::<WasiFilesystem>(plain::<U>),
            $($arg),*
        )
        .await
    };
}

impl types::Host for ShadowFs<'_> {
    fn convert_error_code(&mut self, error: FilesystemError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }
}

impl types::HostDescriptor for ShadowFs<'_> {
    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        match owned(&fd) {
            Some(rep) => {
                self.sealed.close(rep);
                Ok(())
            }
            None => host!(self, types::HostDescriptor::drop(fd)),
        }
    }
}

impl preopens::Host for ShadowFs<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut all = host!(self, preopens::Host::get_directories())?;
        let sealed = self.sealed.preopens().map_err(|e| wasmtime::Error::msg(format!("sealed preopens: {e:?}")))?;
        all.extend(sealed.into_iter().map(|(rep, guest)| (Resource::new_own(rep), guest)));
        Ok(all)
    }
}

impl<U: SealedComponentView + 'static> types::HostDescriptorWithStore<U> for Shadow {
    fn read_via_stream(
        mut store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<Result<(), ErrorCode>>)> {
        let Some(rep) = owned(&fd) else {
            let store = Access::<U, WasiFilesystem>::new(store.as_context_mut(), plain::<U>);
            return <WasiFilesystem as types::HostDescriptorWithStore<U>>::read_via_stream(store, fd, offset);
        };
        match component::check_offset(offset).and_then(|()| store.get().sealed.reader(rep)) {
            Ok((volume, id)) => {
                let (outcome, rx) = Outcome::new();
                let stream = StreamReader::new(&mut store, SealedReader { volume, id, offset, outcome })?;
                Ok((stream, FutureReader::new(&mut store, rx)?))
            }
            Err(e) => Ok((StreamReader::new(&mut store, std::iter::empty())?, ready(&mut store, Err(e.into()))?)),
        }
    }

    fn write_via_stream(
        store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        data: StreamReader<u8>,
        offset: Filesize,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        write(store, fd, data, Some(offset))
    }

    fn append_via_stream(
        store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        write(store, fd, data, None)
    }

    async fn advise(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        offset: Filesize,
        length: Filesize,
        advice: Advice,
    ) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.advise(rep)),
            None => plain!(store, advise(fd, offset, length, advice)),
        }
    }

    async fn sync_data(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(component::commit(sealed(store, |s| s.volume_of(rep))?).await?),
            None => plain!(store, sync_data(fd)),
        }
    }

    async fn get_flags(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FilesystemResult<DescriptorFlags> {
        let Some(rep) = owned(&fd) else { return plain!(store, get_flags(fd)) };
        let access = sealed(store, |s| s.access(rep))?;
        let mut flags = DescriptorFlags::empty();
        if access.read {
            flags |= DescriptorFlags::READ;
        }
        if access.write {
            flags |= DescriptorFlags::WRITE;
        }
        if access.mutate {
            flags |= DescriptorFlags::MUTATE_DIRECTORY;
        }
        Ok(flags)
    }

    async fn get_type(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FilesystemResult<DescriptorType> {
        match owned(&fd) {
            Some(rep) => {
                let dir = sealed(store, |s| s.access(rep))?.dir;
                Ok(descriptor_type(if dir { Kind::Dir } else { Kind::File }))
            }
            None => plain!(store, get_type(fd)),
        }
    }

    async fn set_size(store: &Accessor<U, Self>, fd: Resource<Descriptor>, size: Filesize) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.set_size(rep, size)),
            None => plain!(store, set_size(fd, size)),
        }
    }

    async fn set_times(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.set_times(rep, new_time(atim), new_time(mtim))),
            None => plain!(store, set_times(fd, atim, mtim)),
        }
    }

    fn read_directory(
        mut store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
    ) -> wasmtime::Result<(StreamReader<DirectoryEntry>, FutureReader<Result<(), ErrorCode>>)> {
        let Some(rep) = owned(&fd) else {
            let store = Access::<U, WasiFilesystem>::new(store.as_context_mut(), plain::<U>);
            return <WasiFilesystem as types::HostDescriptorWithStore<U>>::read_directory(store, fd);
        };
        match store.get().sealed.list(rep) {
            Ok(entries) => {
                let entries: Vec<DirectoryEntry> = entries
                    .into_iter()
                    .map(|(kind, name)| DirectoryEntry { type_: descriptor_type(kind), name })
                    .collect();
                Ok((StreamReader::new(&mut store, entries)?, ready(&mut store, Ok(()))?))
            }
            Err(e) => Ok((StreamReader::new(&mut store, std::iter::empty())?, ready(&mut store, Err(e.into()))?)),
        }
    }

    async fn sync(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => Ok(component::commit(sealed(store, |s| s.volume_of(rep))?).await?),
            None => plain!(store, sync(fd)),
        }
    }

    async fn create_directory_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.create_directory_at(rep, &path)),
            None => plain!(store, create_directory_at(fd, path)),
        }
    }

    async fn stat(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FilesystemResult<DescriptorStat> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.stat(rep)).map(stat),
            None => plain!(store, stat(fd)),
        }
    }

    async fn stat_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FilesystemResult<DescriptorStat> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.stat_at(rep, &path, flags.contains(PathFlags::SYMLINK_FOLLOW))).map(stat),
            None => plain!(store, stat_at(fd, flags, path)),
        }
    }

    async fn set_times_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| {
                s.set_times_at(rep, &path, flags.contains(PathFlags::SYMLINK_FOLLOW), new_time(atim), new_time(mtim))
            }),
            None => plain!(store, set_times_at(fd, flags, path, atim, mtim)),
        }
    }

    async fn link_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FilesystemResult<()> {
        match (owned(&fd), owned(&new_fd)) {
            (Some(rep), _) => {
                let follow = flags.contains(PathFlags::SYMLINK_FOLLOW);
                return sealed(store, |s| s.link_at(rep, &old_path, follow, new_fd.rep(), &new_path));
            }
            (None, Some(_)) => return Err(Errno::CrossDevice.into()),
            (None, None) => {}
        }
        plain!(store, link_at(fd, flags, old_path, new_fd, new_path))
    }

    async fn open_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FilesystemResult<Resource<Descriptor>> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| {
                s.open_at(rep, &path, path_flags.contains(PathFlags::SYMLINK_FOLLOW), open_request(oflags, flags))
            })
            .map(Resource::new_own),
            None => plain!(store, open_at(fd, path_flags, path, oflags, flags)),
        }
    }

    async fn readlink_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FilesystemResult<String> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.readlink_at(rep, &path)),
            None => plain!(store, readlink_at(fd, path)),
        }
    }

    async fn remove_directory_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.remove_directory_at(rep, &path)),
            None => plain!(store, remove_directory_at(fd, path)),
        }
    }

    async fn rename_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FilesystemResult<()> {
        if owned(&fd).is_none() && owned(&new_fd).is_none() {
            return plain!(store, rename_at(fd, old_path, new_fd, new_path));
        }
        sealed(store, |s| s.rename_at(fd.rep(), &old_path, new_fd.rep(), &new_path))
    }

    async fn symlink_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        old_path: String,
        new_path: String,
    ) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.symlink_at(rep, &old_path, &new_path)),
            None => plain!(store, symlink_at(fd, old_path, new_path)),
        }
    }

    async fn unlink_file_at(store: &Accessor<U, Self>, fd: Resource<Descriptor>, path: String) -> FilesystemResult<()> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.unlink_file_at(rep, &path)),
            None => plain!(store, unlink_file_at(fd, path)),
        }
    }

    async fn is_same_object(
        store: &Accessor<U, Self>,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        if owned(&a).is_none() && owned(&b).is_none() {
            return plain!(store, is_same_object(a, b));
        }
        Ok(store.with(|mut access| access.get().sealed.is_same_object(a.rep(), b.rep())))
    }

    async fn metadata_hash(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FilesystemResult<MetadataHashValue> {
        match owned(&fd) {
            Some(rep) => sealed(store, |s| s.stat(rep)).map(|s| hash(&s)),
            None => plain!(store, metadata_hash(fd)),
        }
    }

    async fn metadata_hash_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FilesystemResult<MetadataHashValue> {
        match owned(&fd) {
            Some(rep) => {
                sealed(store, |s| s.stat_at(rep, &path, flags.contains(PathFlags::SYMLINK_FOLLOW))).map(|s| hash(&s))
            }
            None => plain!(store, metadata_hash_at(fd, flags, path)),
        }
    }
}

/// `write-via-stream` (at an offset) and `append-via-stream` (`None`).
fn write<U: SealedComponentView + 'static>(
    mut store: Access<'_, U, Shadow>,
    fd: Resource<Descriptor>,
    mut data: StreamReader<u8>,
    offset: Option<u64>,
) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
    let Some(rep) = owned(&fd) else {
        let store = Access::<U, WasiFilesystem>::new(store.as_context_mut(), plain::<U>);
        return match offset {
            Some(offset) => types::HostDescriptorWithStore::write_via_stream(store, fd, data, offset),
            None => types::HostDescriptorWithStore::append_via_stream(store, fd, data),
        };
    };
    match offset.map_or(Ok(()), component::check_offset).and_then(|()| store.get().sealed.writer(rep)) {
        Ok((volume, id)) => {
            let (outcome, rx) = Outcome::new();
            data.pipe(&mut store, SealedWriter { volume, id, offset, outcome })?;
            FutureReader::new(&mut store, rx)
        }
        Err(e) => {
            data.close(&mut store)?;
            ready(&mut store, Err(e.into()))
        }
    }
}
