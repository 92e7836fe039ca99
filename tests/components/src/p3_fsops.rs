//! The WASI 0.3 counterpart of `tests/programs/src/bin/fsops.rs`: a fixed sequence of
//! operations through `wasi:filesystem@0.3` itself (descriptors, streams, listings), each
//! printed with its result, so a test can check that a sealed directory answers as a plain one.
//! Usage: p3-fsops DIR. Hard links are left out (sealed volumes have none); what differs between two directories by nature (inode numbers, access times, link counts)
//! is compared, not printed.

use lamina_test_components::preopen;
use wasip3::cli::{environment, stdout};
use wasip3::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, NewTimestamp, OpenFlags, PathFlags,
};
use wasip3::wit_stream;

wasip3::cli::command::export!(Fsops);

struct Fsops;

/// What the run printed so far.
#[derive(Default)]
struct Log(String);

impl Log {
    fn show<T: std::fmt::Debug>(&mut self, what: &str, result: Result<T, ErrorCode>) {
        let line = match result {
            Ok(v) => format!("{what}: ok {v:?}\n"),
            Err(e) => format!("{what}: error {e:?}\n"),
        };
        self.0.push_str(&line);
    }
}

async fn open(
    dir: &Descriptor,
    path: &str,
    oflags: OpenFlags,
    flags: DescriptorFlags,
) -> Result<Descriptor, ErrorCode> {
    dir.open_at(PathFlags::empty(), path.to_owned(), oflags, flags).await
}

/// Writes all of `data` at `offset` (or appends, with `None`) through a stream.
async fn write(file: &Descriptor, offset: Option<u64>, data: &[u8]) -> Result<usize, ErrorCode> {
    let (mut tx, rx) = wit_stream::new();
    let done = match offset {
        Some(offset) => file.write_via_stream(rx, offset),
        None => file.append_via_stream(rx),
    };
    let data = data.to_vec();
    let n = data.len();
    let ((), result) = futures::join!(
        async {
            tx.write_all(data).await;
            drop(tx);
        },
        async { done.await }
    );
    result.map(|()| n)
}

/// Reads from `offset` to the end through a stream.
async fn read(file: &Descriptor, offset: u64) -> Result<String, ErrorCode> {
    let (rx, done) = file.read_via_stream(offset);
    let (data, result) = futures::join!(rx.collect(), async { done.await });
    result.map(|()| String::from_utf8_lossy(&data).into_owned())
}

/// A directory's entries, sorted, directories marked with `/`.
async fn list(dir: &Descriptor) -> Result<Vec<String>, ErrorCode> {
    let (rx, done) = dir.read_directory();
    let (entries, result) = futures::join!(rx.collect(), async { done.await });
    result?;
    let mut names: Vec<String> = entries
        .into_iter()
        .map(|e| match e.type_ {
            DescriptorType::Directory => format!("{}/", e.name),
            DescriptorType::SymbolicLink => format!("{}@", e.name),
            _ => e.name,
        })
        .collect();
    names.sort();
    Ok(names)
}

/// A path's type and size (the size of files only: directories' differ by nature).
async fn kind(dir: &Descriptor, path: &str) -> Result<(DescriptorType, Option<u64>), ErrorCode> {
    let stat = dir.stat_at(PathFlags::empty(), path.to_owned()).await?;
    let size = matches!(stat.type_, DescriptorType::RegularFile).then_some(stat.size);
    Ok((stat.type_, size))
}

async fn run(dir: &Descriptor, log: &mut Log) {
    use DescriptorFlags as F;
    use OpenFlags as O;
    let rw = F::READ | F::WRITE;
    log.show("mkdir empty path", dir.create_directory_at(String::new()).await);
    log.show("open empty path", open(dir, "", O::empty(), F::READ).await.map(|_| ()));
    log.show("stat empty path", kind(dir, "").await);
    log.show("unlink empty path", dir.unlink_file_at(String::new()).await);
    log.show("mkdir dot", dir.create_directory_at(".".into()).await);
    log.show("remove dotdot", dir.remove_directory_at("..".into()).await);
    log.show("flags of the preopen", dir.get_flags().await);
    log.show(
        "flags of dot opened without flags",
        async { open(dir, ".", O::empty(), F::empty()).await?.get_flags().await }.await,
    );
    log.show("mkdir sub", dir.create_directory_at("sub".into()).await);
    log.show("mkdir sub again", dir.create_directory_at("sub".into()).await);
    log.show("type of sub", dir.stat_at(PathFlags::empty(), "sub".into()).await.map(|s| s.type_));
    let a = open(dir, "sub/a.txt", O::CREATE, rw).await;
    log.show("create a", a.as_ref().map(|_| ()).map_err(Clone::clone));
    let Ok(a) = a else { return };
    log.show("write a", write(&a, Some(0), b"hello world").await);
    log.show("append", write(&a, None, b", appended").await);
    log.show("read a", read(&a, 0).await);
    log.show("overwrite", write(&a, Some(6), b"WORLD").await);
    log.show("read from 6", read(&a, 6).await);
    log.show("read past end", read(&a, 1000).await);
    log.show("read at the largest offset", read(&a, u64::MAX).await);
    log.show("write at the largest offset", write(&a, Some(u64::MAX), b"x").await);
    log.show("write past end", write(&a, Some(25), b"!").await);
    log.show("read with hole", read(&a, 0).await.map(|s| s.replace('\0', "0")));
    log.show("truncate", a.set_size(5).await);
    log.show("read truncated", read(&a, 0).await);
    log.show("extend", a.set_size(8).await);
    log.show("size", a.stat().await.map(|s| (s.type_, s.size)));
    log.show("sync", a.sync().await);
    log.show("sync data", a.sync_data().await);
    log.show("flags rw", a.get_flags().await.map(|f| f & (F::READ | F::WRITE)));
    log.show("type", a.get_type().await);
    log.show("advise", a.advise(0, 4, wasip3::filesystem::types::Advice::Sequential).await);
    let when = wasip3::clocks::system_clock::Instant { seconds: 1_700_000_000, nanoseconds: 500 };
    log.show("set mtime", a.set_times(NewTimestamp::NoChange, NewTimestamp::Timestamp(when)).await);
    log.show("mtime", a.stat().await.map(|s| s.data_modification_timestamp.map(|t| (t.seconds, t.nanoseconds))));
    let earlier = wasip3::clocks::system_clock::Instant { seconds: 1_600_000_000, nanoseconds: 7 };
    log.show("set atime only", a.set_times(NewTimestamp::Timestamp(earlier), NewTimestamp::NoChange).await);
    let seconds = |t: Option<wasip3::clocks::system_clock::Instant>| t.map(|t| (t.seconds, t.nanoseconds));
    log.show(
        "times",
        a.stat().await.map(|s| (seconds(s.data_access_timestamp), seconds(s.data_modification_timestamp))),
    );
    log.show(
        "set mtime at",
        dir.set_times_at(PathFlags::empty(), "sub".into(), NewTimestamp::NoChange, NewTimestamp::Timestamp(when)).await,
    );
    let again = open(dir, "sub/a.txt", O::empty(), F::READ).await;
    log.show("open again read-only", again.as_ref().map(|_| ()).map_err(Clone::clone));
    if let Ok(again) = &again {
        log.show("same object", Ok::<_, ErrorCode>(a.is_same_object(again).await));
        let (h1, h2) = (a.metadata_hash().await, again.metadata_hash().await);
        log.show("same hash", h1.and_then(|h1| h2.map(|h2| (h1.lower, h1.upper) == (h2.lower, h2.upper))));
        log.show("write read-only", write(again, Some(0), b"x").await);
        log.show("set size read-only", again.set_size(1).await);
        log.show("flags read-only", again.get_flags().await.map(|f| f & (F::READ | F::WRITE)));
    }
    log.show("same object as dir", Ok::<_, ErrorCode>(a.is_same_object(dir).await));
    drop(again);
    drop(a);
    log.show("hash at", dir.metadata_hash_at(PathFlags::empty(), "sub/a.txt".into()).await.map(|_| ()));
    log.show("create exclusive existing", open(dir, "sub/a.txt", O::CREATE | O::EXCLUSIVE, rw).await.map(|_| ()));
    log.show("create without write", open(dir, "new.txt", O::CREATE, F::READ).await.map(|_| ()));
    log.show("open missing", open(dir, "missing.txt", O::empty(), F::READ).await.map(|_| ()));
    log.show("open file as directory", open(dir, "sub/a.txt", O::DIRECTORY, F::READ).await.map(|_| ()));
    log.show("open directory for writing", open(dir, "sub", O::empty(), rw).await.map(|_| ()));
    log.show("open escaping", open(dir, "../outside.txt", O::CREATE, rw).await.map(|_| ()));
    log.show("open absolute", open(dir, "/etc/passwd", O::empty(), F::READ).await.map(|_| ()));
    let sub = open(dir, "sub", O::DIRECTORY, F::READ | F::MUTATE_DIRECTORY).await;
    log.show("open sub", sub.as_ref().map(|_| ()).map_err(Clone::clone));
    if let Ok(sub) = &sub {
        log.show("list sub", list(sub).await);
        log.show("read a directory", read(sub, 0).await);
        log.show("write a directory", write(sub, Some(0), b"x").await);
        log.show("stat dot", sub.stat_at(PathFlags::empty(), ".".into()).await.map(|s| s.type_));
        log.show("open dotdot", open(sub, "..", O::DIRECTORY, F::READ).await.map(|_| ()));
        log.show("open dotdot escaping", open(sub, "../..", O::DIRECTORY, F::READ).await.map(|_| ()));
        log.show("rename across", sub.rename_at("a.txt".into(), dir, "b.txt".into()).await);
    }
    drop(sub);
    log.show("kind of b", kind(dir, "b.txt").await);
    log.show("kind of old name", kind(dir, "sub/a.txt").await);
    log.show(
        "big",
        async {
            let big = open(dir, "big.bin", O::CREATE | O::TRUNCATE, rw).await?;
            write(&big, Some(0), &vec![7u8; 200_000]).await?;
            let back = read(&big, 0).await?;
            Ok((back.len(), back.bytes().all(|b| b == 7)))
        }
        .await,
    );
    log.show("rename over existing", dir.rename_at("big.bin".into(), dir, "b.txt".into()).await);
    log.show("kind after rename over", kind(dir, "b.txt").await);
    log.show("rename dir", dir.rename_at("sub".into(), dir, "moved".into()).await);
    log.show("list root", list(dir).await);
    log.show("mkdir moved/x", dir.create_directory_at("moved/x".into()).await);
    log.show("remove non-empty", dir.remove_directory_at("moved".into()).await);
    log.show("remove file as dir", dir.remove_directory_at("b.txt".into()).await);
    log.show("unlink a directory", dir.unlink_file_at("moved/x".into()).await);
    log.show("remove x", dir.remove_directory_at("moved/x".into()).await);
    log.show("remove moved", dir.remove_directory_at("moved".into()).await);
    log.show("remove missing", dir.remove_directory_at("moved".into()).await);
    // Trailing slashes name directories: on a file they are errors, and change nothing.
    log.show("open file/", open(dir, "b.txt/", O::empty(), F::READ).await.map(|_| ()));
    log.show("create file/", open(dir, "c.txt/", O::CREATE, rw).await.map(|_| ()));
    log.show("unlink file/", dir.unlink_file_at("b.txt/".into()).await);
    log.show("stat file/", kind(dir, "b.txt/").await);
    log.show("mkdir t", dir.create_directory_at("t".into()).await);
    log.show("remove t/", dir.remove_directory_at("t/".into()).await);
    log.show("stat dir/", kind(dir, "t/").await);
    log.show("readlink of a file", dir.readlink_at("b.txt".into()).await);
    log.show("unlink .", dir.unlink_file_at(".".into()).await);
    log.show("unlink ./", dir.unlink_file_at("./".into()).await);
    log.show("rename . away", dir.rename_at(".".into(), dir, "q.txt".into()).await);
    log.show("rename onto .", dir.rename_at("b.txt".into(), dir, ".".into()).await);
    log.show("rename onto t/..", dir.rename_at("b.txt".into(), dir, "t/..".into()).await);
    log.show("unlink b", dir.unlink_file_at("b.txt".into()).await);
    log.show("unlink b again", dir.unlink_file_at("b.txt".into()).await);
    log.show("long name", open(dir, &"n".repeat(300), O::CREATE, rw).await.map(|_| ()));
    for i in 0..40 {
        if let Err(e) = open(dir, &format!("many-{i:02}"), O::CREATE, rw).await {
            log.show("many", Err::<(), _>(e));
        }
    }
    log.show("list many", list(dir).await.map(|names| names.len()));
    links(dir, log).await;
}

/// Symbolic links through `symlink-at`, `readlink-at`, and the `symlink-follow` path flag of
/// `open-at`, `stat-at` and `set-times-at`; links that lead above the directory, loops.
async fn links(dir: &Descriptor, log: &mut Log) {
    use DescriptorFlags as F;
    use OpenFlags as O;
    let follow = PathFlags::SYMLINK_FOLLOW;
    let link = |target: &str, at: &str| dir.symlink_at(target.to_owned(), at.to_owned());
    let open_via = |flags: PathFlags, path: &str, oflags: O| dir.open_at(flags, path.to_owned(), oflags, F::READ);
    log.show("mkdir l", dir.create_directory_at("l".into()).await);
    log.show("create l/t", open(dir, "l/t.txt", O::CREATE, F::READ | F::WRITE).await.map(|_| ()));
    log.show("link to a file", link("t.txt", "l/to-file").await);
    log.show("link to a directory", link("l", "to-dir").await);
    log.show("dangling link", link("nowhere", "l/dangling").await);
    log.show("link to an absolute path", link("/etc", "abs").await);
    log.show("link above", link("../..", "l/up").await);
    log.show("link over a file", link("t.txt", "l/t.txt").await);
    log.show("link at name/", link("t.txt", "l/new/").await);
    log.show("link at a directory/", link("t.txt", "l/").await);
    log.show("empty target", link("", "l/empty").await);
    log.show("readlink", dir.readlink_at("l/to-file".into()).await);
    log.show("readlink missing", dir.readlink_at("l/missing".into()).await);
    log.show("readlink of a directory", dir.readlink_at("l".into()).await);
    log.show("stat a link", kind(dir, "l/to-file").await);
    log.show("stat a link/", kind(dir, "to-dir/").await);
    log.show("stat followed", dir.stat_at(follow, "l/to-file".into()).await.map(|s| (s.type_, s.size)));
    log.show("stat a dangling link followed", dir.stat_at(follow, "l/dangling".into()).await.map(|s| s.type_));
    log.show("open not following", open_via(PathFlags::empty(), "l/to-file", O::empty()).await.map(|_| ()));
    log.show("open a directory not following", open_via(PathFlags::empty(), "to-dir", O::DIRECTORY).await.map(|_| ()));
    log.show("open following", open_via(follow, "l/to-file", O::empty()).await.map(|_| ()));
    let through = open_via(follow, "to-dir", O::DIRECTORY).await;
    log.show("open a directory through a link", through.as_ref().map(|_| ()).map_err(Clone::clone));
    if let Ok(through) = &through {
        log.show("list through a link", list(through).await);
        log.show("dotdot from there", open(through, "..", O::DIRECTORY, F::READ).await.map(|_| ()));
    }
    log.show("on the way", kind(dir, "to-dir/t.txt").await);
    log.show("dotdot after a link", kind(dir, "to-dir/../l/t.txt").await);
    log.show("through a link above", kind(dir, "l/up/x").await);
    log.show("open a link above", open_via(follow, "l/up", O::DIRECTORY).await.map(|_| ()));
    let when = wasip3::clocks::system_clock::Instant { seconds: 1_000_000_000, nanoseconds: 0 };
    let set = |flags: PathFlags, path: &str| {
        dir.set_times_at(flags, path.to_owned(), NewTimestamp::NoChange, NewTimestamp::Timestamp(when))
    };
    log.show("set a link's own time", set(PathFlags::empty(), "l/to-file").await);
    let seconds = |flags: PathFlags, path: &'static str| async move {
        dir.stat_at(flags, path.to_owned()).await.map(|s| s.data_modification_timestamp.map(|t| t.seconds))
    };
    log.show("the link's time", seconds(PathFlags::empty(), "l/to-file").await);
    log.show("set the target's time", set(follow, "l/to-file").await);
    log.show("the target's time", seconds(PathFlags::empty(), "l/t.txt").await);
    log.show("self loop", link("self", "self").await);
    log.show("open a loop", open_via(follow, "self", O::empty()).await.map(|_| ()));
    log.show("stat a loop followed", dir.stat_at(follow, "self".into()).await.map(|s| s.type_));
    log.show("list with links", list(dir).await);
    log.show("rename a link", dir.rename_at("l/to-file".into(), dir, "l/renamed".into()).await);
    log.show("readlink renamed", dir.readlink_at("l/renamed".into()).await);
    log.show("remove a directory link as a directory", dir.remove_directory_at("to-dir".into()).await);
    log.show("unlink a directory link", dir.unlink_file_at("to-dir".into()).await);
    log.show("hash of a link", dir.metadata_hash_at(PathFlags::empty(), "l/renamed".into()).await.map(|_| ()));
    log.show("hard link a link", dir.link_at(PathFlags::empty(), "l/renamed".into(), dir, "l/hard".into()).await);
    log.show("readlink the copy", dir.readlink_at("l/hard".into()).await);
    log.show("hard link a file", dir.link_at(PathFlags::empty(), "l/t.txt".into(), dir, "l/t2".into()).await);
    log.show("link count", dir.stat_at(PathFlags::empty(), "l/t2".into()).await.map(|s| s.link_count));
    log.show("hard link through a link", dir.link_at(follow, "l/renamed".into(), dir, "l/t3".into()).await);
    log.show("link count now", dir.stat_at(PathFlags::empty(), "l/t.txt".into()).await.map(|s| s.link_count));
    log.show("hard link a directory", dir.link_at(PathFlags::empty(), "l".into(), dir, "l2".into()).await);
    log.show("hard link over a file", dir.link_at(PathFlags::empty(), "l/t.txt".into(), dir, "l/t2".into()).await);
    log.show("hard link at name/", dir.link_at(PathFlags::empty(), "l/t.txt".into(), dir, "l/t4/".into()).await);
    log.show("hard link at file/", dir.link_at(PathFlags::empty(), "l/t.txt".into(), dir, "l/t2/".into()).await);
    log.show("hard link at dir/", dir.link_at(PathFlags::empty(), "l/t.txt".into(), dir, "l/".into()).await);
    log.show("link at file/", link("t.txt", "l/t2/").await);
    for name in ["l/t.txt", "l/t2", "l/t3", "l/hard", "l/renamed", "l/dangling", "l/up", "self"] {
        log.show(&format!("unlink {name}"), dir.unlink_file_at(name.into()).await);
    }
    log.show("remove l", dir.remove_directory_at("l".into()).await);
}

impl wasip3::exports::cli::run::Guest for Fsops {
    async fn run() -> Result<(), ()> {
        let path = environment::get_arguments().get(1).cloned().unwrap_or_else(|| "/data".into());
        let mut log = Log::default();
        match preopen(&path) {
            Some((dir, rest)) if rest == "." => run(&dir, &mut log).await,
            _ => log.0.push_str(&format!("no preopen at {path}\n")),
        }
        let (mut tx, rx) = wit_stream::new();
        futures::join!(async { stdout::write_via_stream(rx).await.expect("stdout") }, async {
            tx.write_all(log.0.into_bytes()).await;
            drop(tx);
        });
        Ok(())
    }
}
