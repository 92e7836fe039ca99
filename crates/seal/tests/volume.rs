//! Sealed volumes on the sim platform: persistence, and every tamper, rollback, identity and
//! crash case the design promises to detect or survive.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::path::{Path, PathBuf};

use lamina_seal::{Kind, OpenFlags, Opened, SealError, SealTo, Volume, VolumeOptions};
use lamina_tee::sim::SimPlatform;
use lamina_types::ModuleHash;
use proptest::prelude::*;

struct Fixture {
    _tmp: tempfile::TempDir,
    state: PathBuf,
    dir: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("temp dir");
    let state = tmp.path().join("state");
    let dir = tmp.path().join("vol");
    Fixture { _tmp: tmp, state, dir }
}

fn options(module: &[u8]) -> VolumeOptions {
    VolumeOptions { seal_to: SealTo::Module(ModuleHash::of(module)), quota: 64 << 20, rollback_protection: true }
}

fn open(f: &Fixture) -> Result<Volume, SealError> {
    open_as(f, b"app")
}

fn open_as(f: &Fixture, module: &[u8]) -> Result<Volume, SealError> {
    let sim = SimPlatform::open(&f.state).expect("sim platform");
    Volume::open(&f.dir, &sim, &options(module))
}

const CREATE: OpenFlags = OpenFlags { create: true, exclusive: false, truncate: false, directory: false };

fn write_file(v: &mut Volume, path: &str, data: &[u8]) {
    let Opened::File(id) = v.open_path(path, OpenFlags { truncate: true, ..CREATE }).expect("opens") else {
        panic!("{path} is a directory")
    };
    v.write_at(&id, 0, data).expect("writes");
    v.close(&id).expect("closes");
}

fn read_file(v: &mut Volume, path: &str) -> Result<Vec<u8>, SealError> {
    let Opened::File(id) = v.open_path(path, OpenFlags::default())? else { panic!("{path} is a directory") };
    let size = v.file_stat(&id).size as usize;
    let mut buf = vec![0; size];
    let n = v.read_at(&id, 0, &mut buf);
    v.close(&id)?;
    assert_eq!(n?, size);
    Ok(buf)
}

fn object_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("objects")).expect("objects").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

fn text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"lamina-secret-row "[i % 18]).collect()
}

#[test]
fn data_persists_and_is_ciphertext_on_the_host() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    v.mkdir("db").expect("mkdir");
    write_file(&mut v, "db/notes.txt", &text(10_000));
    drop(v);
    let mut v = open(&f).expect("reopens");
    assert_eq!(read_file(&mut v, "db/notes.txt").expect("reads"), text(10_000));
    assert_eq!(v.readdir("").expect("lists")[0].name, "db");
    assert_eq!(v.readdir("db").expect("lists")[0].kind, Kind::File);
    for entry in walk(&f.dir) {
        let bytes = std::fs::read(&entry).expect("host file");
        assert!(!bytes.windows(13).any(|w| w == b"lamina-secret"), "plaintext in {}", entry.display());
        assert!(!bytes.windows(9).any(|w| w == b"notes.txt"), "a file name in {}", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn a_flipped_byte_is_an_integrity_error_naming_the_file() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    write_file(&mut v, "a.txt", &text(9000));
    drop(v);
    let object = &object_files(&f.dir)[0];
    let mut bytes = std::fs::read(object).expect("object");
    bytes[100] ^= 1;
    std::fs::write(object, bytes).expect("tamper");
    let mut v = open(&f).expect("metadata is intact");
    let e = read_file(&mut v, "a.txt").expect_err("tampered");
    assert!(matches!(e, SealError::Integrity { ref file, .. } if file == "a.txt"), "{e}");
    assert!(e.to_string().contains("a.txt") && e.to_string().contains("modified"), "{e}");
}

#[test]
fn swapped_chunks_swapped_files_and_truncation_are_detected() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    write_file(&mut v, "a", &text(3 * 4096));
    write_file(&mut v, "b", &vec![7; 3 * 4096]);
    drop(v);
    let slot = 12 + 4096 + 16;
    let objects = object_files(&f.dir);

    // Chunk 0 and chunk 1 of the same file exchanged (slot 0 of each).
    let original = std::fs::read(&objects[0]).expect("object");
    let mut swapped = original.clone();
    swapped[..slot].copy_from_slice(&original[2 * slot..3 * slot]);
    swapped[2 * slot..3 * slot].copy_from_slice(&original[..slot]);
    std::fs::write(&objects[0], &swapped).expect("swap chunks");
    let mut v = open(&f).expect("opens");
    let failures = ["a", "b"].iter().filter(|p| read_file(&mut v, p).is_err()).count();
    assert_eq!(failures, 1, "the file with swapped chunks fails");
    drop(v);
    std::fs::write(&objects[0], &original).expect("restore");

    // The two files exchanged.
    let other = std::fs::read(&objects[1]).expect("object");
    std::fs::write(&objects[0], &other).expect("swap files");
    std::fs::write(&objects[1], &original).expect("swap files");
    let mut v = open(&f).expect("opens");
    assert!(read_file(&mut v, "a").is_err() && read_file(&mut v, "b").is_err());
    drop(v);
    std::fs::write(&objects[0], &original).expect("restore");
    std::fs::write(&objects[1], &other).expect("restore");

    // Truncated.
    let truncated = &std::fs::read(&objects[0]).expect("object")[..2 * slot];
    std::fs::write(&objects[0], truncated).expect("truncate");
    let mut v = open(&f).expect("opens");
    let errors: Vec<String> =
        ["a", "b"].iter().filter_map(|p| read_file(&mut v, p).err()).map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("truncated"), "{}", errors[0]);
}

#[test]
fn an_older_copy_of_the_directory_is_a_rollback() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    write_file(&mut v, "balance", b"100");
    drop(v);
    let backup = f.dir.with_extension("backup");
    copy_dir(&f.dir, &backup);
    let mut v = open(&f).expect("reopens");
    write_file(&mut v, "balance", b"5");
    drop(v);
    std::fs::remove_dir_all(&f.dir).expect("remove");
    copy_dir(&backup, &f.dir);
    let e = open(&f).expect_err("rollback");
    assert!(matches!(e, SealError::Rollback { .. }), "{e}");
    assert!(e.to_string().contains("older copy"), "{e}");
}

#[test]
fn a_corrupted_newest_manifest_is_not_a_way_to_roll_back() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    write_file(&mut v, "x", b"1");
    drop(v);
    let mut v = open(&f).expect("reopens");
    write_file(&mut v, "x", b"2");
    drop(v);
    let version = open(&f).expect("reopens").version();
    // The newest copy is damaged: the older one is valid but behind the counter. Version 1 is
    // in manifest.0, and the copies alternate.
    let newest = if version % 2 == 1 { "manifest.0" } else { "manifest.1" };
    let path = f.dir.join(newest);
    let mut bytes = std::fs::read(&path).expect("manifest");
    // Past the 4-byte length prefix, inside the sealed manifest.
    bytes[20] ^= 1;
    std::fs::write(&path, bytes).expect("tamper");
    let e = open(&f).expect_err("refused");
    assert!(matches!(e, SealError::Rollback { .. }), "{e}");
}

#[test]
fn another_module_is_refused_naming_both_hashes() {
    let f = fixture();
    drop(open(&f).expect("creates"));
    let e = open_as(&f, b"other").expect_err("another module");
    let message = e.to_string();
    assert!(message.contains(&ModuleHash::of(b"app").to_hex()), "{message}");
    assert!(message.contains(&ModuleHash::of(b"other").to_hex()), "{message}");
}

#[test]
fn another_sealing_root_is_refused() {
    let f = fixture();
    drop(open(&f).expect("creates"));
    let other_state = f.state.with_extension("other");
    let sim = SimPlatform::open(&other_state).expect("another sim");
    let e = Volume::open(&f.dir, &sim, &options(b"app")).expect_err("another root");
    assert!(matches!(e, SealError::WrongPlatform { .. }), "{e}");
}

#[test]
fn a_second_opener_is_refused_while_open() {
    let f = fixture();
    let _v = open(&f).expect("creates");
    let e = open(&f).expect_err("in use");
    assert!(matches!(e, SealError::InUse { .. }), "{e}");
}

#[test]
fn a_non_empty_plain_directory_is_not_taken_over() {
    let f = fixture();
    std::fs::create_dir_all(&f.dir).expect("dir");
    std::fs::write(f.dir.join("data.txt"), "plain").expect("file");
    assert!(matches!(open(&f).expect_err("refused"), SealError::NotSealed { .. }));
}

#[test]
fn a_creation_interrupted_before_its_header_starts_again() {
    let f = fixture();
    drop(open(&f).expect("creates"));
    std::fs::remove_file(f.dir.join("volume.lamina")).expect("as if the header was never written");
    let mut v = open(&f).expect("the leftovers are cleared and the volume created");
    write_file(&mut v, "a", b"fresh");
    assert_eq!(read_file(&mut v, "a").expect("reads"), b"fresh");
}

#[test]
fn the_quota_is_enforced() {
    let f = fixture();
    let sim = SimPlatform::open(&f.state).expect("sim");
    let opts = VolumeOptions { quota: 10_000, ..options(b"app") };
    let mut v = Volume::open(&f.dir, &sim, &opts).expect("creates");
    let Opened::File(id) = v.open_path("big", CREATE).expect("opens") else { panic!() };
    v.write_at(&id, 0, &[1; 8000]).expect("within the quota");
    let e = v.write_at(&id, 8000, &[1; 4000]).expect_err("beyond");
    assert!(matches!(e, SealError::QuotaExceeded { quota: 10_000, .. }), "{e}");
    v.set_len(&id, 1000).expect("shrinks");
    v.write_at(&id, 1000, &[2; 8000]).expect("room again");
    v.close(&id).expect("closes");
    assert_eq!(v.used(), 9000);
}

#[test]
fn namespace_operations() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    v.mkdir("a").expect("mkdir");
    v.mkdir("a/b").expect("mkdir");
    write_file(&mut v, "a/b/f", b"data");
    assert!(matches!(v.mkdir("a"), Err(SealError::Exists(_))));
    assert!(matches!(v.mkdir("x/y"), Err(SealError::NotFound(_))));
    assert!(matches!(v.rmdir("a"), Err(SealError::NotEmpty(_))));
    v.rename("a", "c").expect("renames a tree");
    assert_eq!(read_file(&mut v, "c/b/f").expect("moved"), b"data");
    assert!(matches!(v.stat("a/b/f"), Err(SealError::NotFound(_))));
    assert!(v.rename("c", "c/b/inner").is_err(), "not into itself");
    write_file(&mut v, "g", b"other");
    v.rename("g", "c/b/f").expect("replaces a file");
    assert_eq!(read_file(&mut v, "c/b/f").expect("replaced"), b"other");
    // Unlinked while open: readable until closed.
    let Opened::File(id) = v.open_path("c/b/f", OpenFlags::default()).expect("opens") else { panic!() };
    v.unlink("c/b/f").expect("unlinks");
    let mut buf = [0; 5];
    assert_eq!(v.read_at(&id, 0, &mut buf).expect("still readable"), 5);
    v.close(&id).expect("closes");
    v.rmdir("c/b").expect("now empty");
    drop(v);
    let v = open(&f).expect("reopens");
    assert_eq!(v.readdir("").expect("lists").iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["c"]);
    assert_eq!(object_files(&f.dir).len(), 0, "removed files leave nothing behind");
}

#[test]
fn a_killed_writer_leaves_the_old_or_the_new_content() {
    // The same test, started by itself in a child process, is the writer that gets killed.
    if std::env::var_os("LAMINA_SEAL_CRASH_CHILD").is_some() {
        crash_child();
        return;
    }
    let f = fixture();
    drop(open(&f).expect("creates"));
    for round in 0..4u64 {
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "a_killed_writer_leaves_the_old_or_the_new_content", "--nocapture"])
            .env("LAMINA_SEAL_CRASH_CHILD", &f.dir)
            .env("LAMINA_SEAL_CRASH_STATE", &f.state)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("child starts");
        std::thread::sleep(std::time::Duration::from_millis(150 + 70 * round));
        child.kill().expect("kill");
        let output = child.wait_with_output().expect("child ends");
        let committed = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("committed "))
            .filter_map(|n| n.parse::<u64>().ok())
            .max();
        let mut v = open(&f).expect("opens after the kill");
        let content = read_file(&mut v, "state").unwrap_or_default();
        let generation = check_generation(&content);
        let committed = committed.expect("the child committed before it was killed");
        assert!(generation >= committed, "generation {generation} lost the committed {committed}");
    }
}

/// A file of generation `g` is 20,000 bytes of `g`'s digits: anything else is a torn file.
fn check_generation(content: &[u8]) -> u64 {
    if content.is_empty() {
        return 0;
    }
    let head: String = content.iter().take_while(|b| **b != b' ').map(|b| *b as char).collect();
    let generation: u64 = head.parse().expect("a generation number");
    assert_eq!(content, generation_content(generation).as_slice(), "a torn file");
    generation
}

fn generation_content(generation: u64) -> Vec<u8> {
    format!("{generation} ").into_bytes().into_iter().cycle().take(20_000).collect()
}

/// The child's side: commits generation after generation until it is killed.
fn crash_child() {
    let (Some(dir), Some(state)) =
        (std::env::var_os("LAMINA_SEAL_CRASH_CHILD"), std::env::var_os("LAMINA_SEAL_CRASH_STATE"))
    else {
        return;
    };
    let sim = SimPlatform::open(Path::new(&state)).expect("sim");
    let mut v = Volume::open(Path::new(&dir), &sim, &options(b"app")).expect("opens");
    let start = read_file(&mut v, "state").map(|c| check_generation(&c)).unwrap_or(0);
    for generation in start + 1..start + 100_000 {
        let Opened::File(id) = v.open_path("state", CREATE).expect("opens") else { panic!() };
        let content = generation_content(generation);
        // In pieces, so a kill can land between them.
        for (i, piece) in content.chunks(3000).enumerate() {
            v.write_at(&id, (i * 3000) as u64, piece).expect("writes");
        }
        v.commit().expect("commits");
        v.close(&id).expect("closes");
        println!("committed {generation}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
    Commit,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..20_000, proptest::collection::vec(any::<u8>(), 0..9000)).prop_map(|(o, d)| Op::Write(o, d)),
        1 => (0u64..24_000).prop_map(Op::SetLen),
        1 => Just(Op::Commit),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any sequence of writes, truncations, commits and reopenings reads back like a plain
    /// byte vector.
    #[test]
    fn behaves_like_a_byte_vector(ops in proptest::collection::vec(op(), 1..24)) {
        let f = fixture();
        let mut v = open(&f).expect("creates");
        let mut model: Vec<u8> = Vec::new();
        let Opened::File(mut id) = v.open_path("f", CREATE).expect("opens") else { panic!() };
        for op in ops {
            match op {
                Op::Write(offset, data) => {
                    v.write_at(&id, offset, &data).expect("writes");
                    let end = offset as usize + data.len();
                    if model.len() < end { model.resize(end, 0) }
                    model[offset as usize..end].copy_from_slice(&data);
                }
                Op::SetLen(len) => {
                    v.set_len(&id, len).expect("set_len");
                    model.resize(len as usize, 0);
                }
                Op::Commit => v.commit().expect("commits"),
                Op::Reopen => {
                    v.close(&id).expect("closes");
                    drop(v);
                    v = open(&f).expect("reopens");
                    let Opened::File(again) = v.open_path("f", OpenFlags::default()).expect("opens") else { panic!() };
                    id = again;
                }
            }
            let mut buf = vec![0; model.len() + 10];
            let n = v.read_at(&id, 0, &mut buf).expect("reads");
            prop_assert_eq!(&buf[..n], model.as_slice());
        }
    }
}

#[test]
fn a_commit_survives_object_writes_lost_in_a_crash() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    write_file(&mut v, "journal.db", &text(9_000));
    v.commit().expect("commits");
    write_file(&mut v, "journal.db", &text(10_000));
    v.commit().expect("commits");
    write_file(&mut v, "journal.db", b"written after the last commit");
    // A crash: no last commit, and the object file's writes never reached the disk (here,
    // zeroed), while the synced manifests did.
    v.abandon();
    for object in object_files(&f.dir) {
        let len = std::fs::metadata(&object).expect("object").len();
        std::fs::write(&object, vec![0u8; len as usize]).expect("lose the writes");
    }
    let mut v = open(&f).expect("reopens after the crash");
    assert_eq!(read_file(&mut v, "journal.db").expect("restored"), text(10_000));
    drop(v);
    // Closed cleanly, the manifest carries no journal: tampering is detected again.
    let object = object_files(&f.dir).pop().expect("an object");
    let mut bytes = std::fs::read(&object).expect("object");
    for b in bytes.iter_mut() {
        *b ^= 0x01;
    }
    std::fs::write(&object, bytes).expect("tamper");
    let mut v = open(&f).expect("opens");
    let e = read_file(&mut v, "journal.db").expect_err("tampered after a clean close");
    assert!(e.to_string().contains("integrity error"), "{e}");
}

#[test]
fn many_small_commits_cross_checkpoints_and_stay_readable() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    let mut expected = Vec::new();
    for round in 0..100u32 {
        let line = format!("row {round:04} lamina\n");
        let Opened::File(id) = v.open_path("log", CREATE).expect("opens") else { panic!("a directory") };
        v.write_at(&id, expected.len() as u64, line.as_bytes()).expect("appends");
        v.close(&id).expect("closes");
        expected.extend_from_slice(line.as_bytes());
        v.commit().expect("commits");
        if round % 37 == 36 {
            // A crash now and then: everything committed survives.
            v.abandon();
            v = open(&f).expect("reopens");
        }
    }
    drop(v);
    let mut v = open(&f).expect("reopens");
    assert_eq!(read_file(&mut v, "log").expect("reads"), expected);
}

#[test]
fn a_file_unlinked_while_open_counts_until_closed() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    let Opened::File(id) = v.open_path("tmp", CREATE).expect("opens") else { panic!("a directory") };
    v.write_at(&id, 0, &[1u8; 100]).expect("writes");
    v.unlink("tmp").expect("unlinks");
    assert_eq!(v.used(), 100, "still held by the open handle");
    v.set_len(&id, 0).expect("shrinks");
    v.write_at(&id, 0, &[2u8; 50]).expect("writes");
    assert_eq!(v.used(), 50);
    v.close(&id).expect("closes");
    assert_eq!(v.used(), 0, "gone with the last handle");
}

#[test]
fn paths_are_bounded_so_the_manifest_stays_readable() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    let long = "d".repeat(3000);
    v.mkdir(&long).expect("a 3000-byte name");
    let e = v.mkdir(&format!("{long}/{long}")).expect_err("a 6001-byte path");
    assert!(matches!(e, SealError::InvalidPath { .. }), "{e}");
    v.mkdir("short").expect("mkdir");
    v.mkdir(&format!("short/{}", "e".repeat(2000))).expect("a 2006-byte path");
    let e = v.rename("short", &long.replace('d', "f")).expect_err("moving it under a long name");
    assert!(matches!(e, SealError::InvalidPath { .. }), "{e}");
    drop(v);
    open(&f).expect("the manifest still reads");
}

/// A tmpfs of `size`, mounted for the life of the value (the test runs as root, as the suite's
/// network tests do).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root (the test suite runs as root)");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The attack of a full disk: a store the host refuses must leave what the guest wrote to be
/// stored by the next commit, never turn it into zeros. The volume is on a tmpfs filled up
/// before the write; the first commit fails, space comes back, the second commit succeeds, and
/// the file reopened holds what was written.
#[test]
fn a_store_that_a_full_disk_refuses_keeps_the_data_for_the_next_commit() {
    let f = fixture();
    let mount = f._tmp.path().join("small");
    let _tmpfs = Tmpfs::mount(&mount, "256k");
    let dir = mount.join("vol");
    let sim = SimPlatform::open(&f.state).expect("sim platform");
    let mut v = Volume::open(&dir, &sim, &options(b"app")).expect("creates");
    v.commit().expect("commits");
    let Opened::File(id) = v.open_path("greeting", CREATE).expect("opens") else { panic!("a directory") };

    // Fill the file system.
    let filler = mount.join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).expect("filler");
        while file.write_all(&[0x55; 4096]).is_ok() {}
    }
    v.write_at(&id, 0, b"hello world").expect("buffered");
    let e = v.commit().expect_err("the disk is full");
    assert!(matches!(e, SealError::Io { .. }), "{e}");

    // Space again: the next commit stores what the first could not.
    std::fs::remove_file(&filler).expect("remove the filler");
    v.commit().expect("commits once there is room");
    v.close(&id).expect("closes");
    drop(v);
    let mut v = Volume::open(&dir, &sim, &options(b"app")).expect("reopens");
    assert_eq!(read_file(&mut v, "greeting").expect("reads"), b"hello world");
}

fn resolved(v: &Volume, base: &str, path: &str, follow: bool) -> Result<String, SealError> {
    v.resolve(base, path, follow).map(|r| r.path)
}

#[test]
fn symbolic_links_persist_and_resolve_within_the_volume() {
    let f = fixture();
    {
        let mut v = open(&f).expect("creates");
        v.mkdir("d").expect("mkdir");
        v.mkdir("d/e").expect("mkdir");
        write_file(&mut v, "d/e/f", b"content");
        v.symlink("d/to-e", "e").expect("a link to a directory");
        v.symlink("d/e/up", "../e/f").expect("a link up and down again");
        v.symlink("top", "d/to-e/up").expect("a link through links");
        v.symlink("dangling", "nowhere").expect("a dangling link");
        v.commit().expect("commits");
    }
    let mut v = open(&f).expect("reopens");
    assert_eq!(v.readlink("d/to-e").expect("a link"), "e");
    let link = v.stat("top").expect("stat");
    assert_eq!((link.kind, link.size), (Kind::Symlink, "d/to-e/up".len() as u64));
    assert_eq!(resolved(&v, "", "top", true).expect("follows"), "d/e/f");
    assert_eq!(resolved(&v, "", "top", false).expect("does not follow the last"), "top");
    assert_eq!(resolved(&v, "", "d/to-e/f", false).expect("follows on the way"), "d/e/f");
    assert_eq!(resolved(&v, "", "d/to-e/..", false).expect("physical parent"), "d");
    assert_eq!(resolved(&v, "", "dangling", true).expect("a dangling link resolves to its target"), "nowhere");
    let trailing = v.resolve("", "d/to-e/", false).expect("a trailing slash follows the last link");
    assert_eq!((trailing.path.as_str(), trailing.dir_only), ("d/e", true));
    let opened = v.open_path(&resolved(&v, "", "top", true).expect("follows"), OpenFlags::default()).expect("opens");
    assert!(matches!(opened, Opened::File(_)));
    if let Opened::File(id) = opened {
        v.close(&id).expect("closes");
    }
    assert!(matches!(v.open_path("top", OpenFlags::default()), Err(SealError::IsASymlink(_))), "not followed");
    assert!(matches!(v.readlink("d"), Err(SealError::NotASymlink(_))));
    assert!(matches!(v.readlink("missing"), Err(SealError::NotFound(_))));
    let names: Vec<(String, Kind)> = v.readdir("d").expect("lists").into_iter().map(|e| (e.name, e.kind)).collect();
    assert_eq!(names, [("e".to_owned(), Kind::Dir), ("to-e".to_owned(), Kind::Symlink)]);
    // A link is renamed and removed itself, never its target.
    v.rename("top", "d/top").expect("renames the link");
    assert_eq!(v.readlink("d/top").expect("moved"), "d/to-e/up");
    v.unlink("d/top").expect("unlinks the link");
    assert!(read_file(&mut v, "d/e/f").is_ok_and(|c| c == b"content"));
    assert!(matches!(v.rmdir("d/to-e"), Err(SealError::NotADirectory(_))));
    assert!(matches!(v.symlink("d/to-e", "x"), Err(SealError::Exists(_))));
    assert!(matches!(v.mkdir("d/to-e"), Err(SealError::Exists(_))));
}

#[test]
fn a_symbolic_link_cannot_lead_outside_the_directory_it_is_resolved_in() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    v.mkdir("d").expect("mkdir");
    assert!(matches!(v.symlink("abs", "/etc/passwd"), Err(SealError::Escapes(_))), "absolute target");
    v.symlink("up", "..").expect("a relative target is stored as given");
    v.symlink("d/up", "..").expect("a link to the root");
    v.symlink("d/up2", "../..").expect("a link above the root");
    assert!(matches!(v.resolve("", "up", true), Err(SealError::Escapes(_))), "above the volume");
    assert!(matches!(v.resolve("", "d/up2/x", false), Err(SealError::Escapes(_))));
    assert_eq!(resolved(&v, "", "d/up", true).expect("within the volume"), "");
    assert!(matches!(v.resolve("d", "up", true), Err(SealError::Escapes(_))), "above the descriptor's directory");
    assert!(matches!(v.resolve("d", "../d", false), Err(SealError::Escapes(_))));
    assert!(matches!(v.resolve("", "/d", false), Err(SealError::Escapes(_))));
}

#[test]
fn symbolic_link_loops_end_with_too_many_links() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    v.symlink("self", "self").expect("a link to itself");
    v.symlink("a", "b").expect("link");
    v.symlink("b", "a").expect("link");
    assert!(matches!(v.resolve("", "self", true), Err(SealError::TooManyLinks(_))));
    assert!(matches!(v.resolve("", "a/x", false), Err(SealError::TooManyLinks(_))));
    assert_eq!(resolved(&v, "", "self", false).expect("the link itself"), "self");
    // A chain of 40 links resolves; 41 do not.
    write_file(&mut v, "l0", b"end");
    for n in 1..=41 {
        v.symlink(&format!("l{n}"), &format!("l{}", n - 1)).expect("link");
    }
    assert_eq!(resolved(&v, "", "l40", true).expect("40 links"), "l0");
    assert!(matches!(v.resolve("", "l41", true), Err(SealError::TooManyLinks(_))));
}

#[test]
fn resolution_checks_each_component_on_the_way() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    write_file(&mut v, "file", b"x");
    assert!(matches!(v.resolve("", "file/x", false), Err(SealError::NotADirectory(_))));
    assert!(matches!(v.resolve("", "missing/..", false), Err(SealError::NotFound(_))));
    assert!(matches!(v.resolve("", &"n".repeat(256), false), Err(SealError::NameTooLong(_))));
    assert_eq!(resolved(&v, "", "./file", false).expect("dot"), "file");
    let dir = v.resolve("", "file/", false).expect("resolves; the caller refuses a file");
    assert!(dir.dir_only);
}

proptest! {
    /// Whatever links a guest makes and whatever path it resolves, resolution ends (no hang, no
    /// panic) and never names anything above the base directory.
    #[test]
    fn resolution_of_any_links_ends_inside_the_base(
        links in proptest::collection::vec(("[abd]{1,2}", "(\\.\\./|[abd]{1,2}/|\\./){0,4}[abd.]{0,2}"), 0..8),
        path in "(\\.\\./|[abd]{1,2}/|\\./){0,6}[abd]{0,2}/?",
    ) {
        let f = fixture();
        let mut v = open(&f).expect("creates");
        v.mkdir("d").expect("mkdir");
        for (at, target) in &links {
            let _ = v.symlink(&format!("d/{at}"), target);
        }
        if let Ok(r) = v.resolve("d", &path, true) {
            prop_assert!(r.path == "d" || r.path.starts_with("d/"), "{path} resolved to {}", r.path);
        }
    }
}

#[test]
fn paths_stay_inside_the_directory_they_are_resolved_in() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    v.mkdir("a").expect("mkdir");
    v.mkdir("a/b").expect("mkdir");
    assert_eq!(resolved(&v, "", "a/b/../c", false).expect("resolves"), "a/c");
    assert_eq!(resolved(&v, "a", "./b//c", false).expect("resolves"), "a/b/c");
    assert_eq!(resolved(&v, "a", "b/..", false).expect("resolves"), "a");
    assert!(matches!(v.resolve("a", "..", false), Err(SealError::Escapes(_))), "above the directory");
    assert!(matches!(v.resolve("", "..", false), Err(SealError::Escapes(_))));
    assert!(matches!(v.resolve("a", "../../x", false), Err(SealError::Escapes(_))));
    assert!(matches!(v.resolve("", "/etc/passwd", false), Err(SealError::Escapes(_))));
    assert_eq!(resolved(&v, "", &"n".repeat(255), false).expect("the longest name"), "n".repeat(255));
    for dir in ["a/", "a/b/", ".", "a/.", "a/b/..", "./"] {
        assert!(v.resolve("", dir, false).expect("resolves").dir_only, "{dir} names only a directory");
    }
    for file in ["a", "a/b", "a.b", "a/.b"] {
        assert!(!v.resolve("", file, false).expect("resolves").dir_only, "{file}");
    }
}

#[test]
fn hard_links_share_one_file_until_the_last_name_goes() {
    let f = fixture();
    {
        let mut v = open(&f).expect("creates");
        v.mkdir("d").expect("mkdir");
        write_file(&mut v, "a", b"shared");
        v.link("a", "d/b").expect("a second name");
        assert!(matches!(v.link("a", "d/b"), Err(SealError::Exists(_))));
        assert!(matches!(v.link("d", "e"), Err(SealError::IsADirectory(_))), "no directory is linked");
        assert!(matches!(v.link("missing", "e"), Err(SealError::NotFound(_))));
        let (a, b) = (v.stat("a").expect("a"), v.stat("d/b").expect("b"));
        assert_eq!((a.ino, a.links), (b.ino, 2), "one file, two names");
        write_file(&mut v, "d/b", b"changed");
        assert_eq!(v.used(), 7, "counted once");
        v.commit().expect("commits");
    }
    let mut v = open(&f).expect("reopens");
    assert_eq!(read_file(&mut v, "a").expect("reads"), b"changed", "the names still share the file");
    assert_eq!(v.stat("a").expect("a").links, 2);
    assert_eq!(v.used(), 7, "counted once when loaded");
    v.rename("a", "d/b").expect("one name over the other changes nothing");
    assert!(v.stat("a").is_ok() && v.stat("d/b").is_ok());
    v.unlink("a").expect("unlinks one name");
    assert_eq!(read_file(&mut v, "d/b").expect("the other name keeps it"), b"changed");
    assert_eq!(v.stat("d/b").expect("b").links, 1);
    assert_eq!(object_files(&f.dir).len(), 1);
    v.unlink("d/b").expect("unlinks the last name");
    v.commit().expect("commits");
    assert_eq!(object_files(&f.dir).len(), 0, "the data goes with the last name");
    assert_eq!(v.used(), 0);
}

/// The attack of exhausted file descriptors: a store that cannot open the volume's files keeps
/// what the guest wrote for the next commit, and a commit is never acknowledged for it. The
/// test runs itself in a child process limited to 64 descriptors (`prlimit`), which uses them
/// all up before the commit.
#[test]
fn a_store_without_file_descriptors_keeps_the_data_for_the_next_commit() {
    if let Some(dir) = std::env::var_os("LAMINA_SEAL_FD_CHILD") {
        fd_child(Path::new(&dir));
        return;
    }
    let f = fixture();
    let out = std::process::Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg("--")
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", "a_store_without_file_descriptors_keeps_the_data_for_the_next_commit", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("LAMINA_SEAL_FD_CHILD", &f.dir)
        .env("LAMINA_SEAL_FD_STATE", &f.state)
        .output()
        .expect("the child runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("refused while out of descriptors"), "the commit was refused: {said}");
    let mut v = open(&f).expect("reopens");
    assert_eq!(read_file(&mut v, "greeting").expect("reads"), b"hello world");
}

/// The child's side: writes, takes every descriptor left, fails to commit, gives them back,
/// commits.
fn fd_child(dir: &Path) {
    let state = std::env::var_os("LAMINA_SEAL_FD_STATE").expect("state");
    let sim = SimPlatform::open(Path::new(&state)).expect("sim platform");
    let mut v = Volume::open(dir, &sim, &options(b"app")).expect("creates");
    v.commit().expect("commits");
    let Opened::File(id) = v.open_path("greeting", CREATE).expect("opens") else { panic!("a directory") };
    v.write_at(&id, 0, b"hello world").expect("buffered");
    let mut hoard = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        hoard.push(file);
    }
    match v.commit() {
        Err(e) => println!("refused while out of descriptors: {e}"),
        Ok(()) => panic!("a commit succeeded with no descriptor to store the data with"),
    }
    drop(hoard);
    v.commit().expect("commits once descriptors are back");
    v.close(&id).expect("closes");
}

/// The attack of a guest making resolution slow: links whose targets are long walks
/// (`d/../d/../…`), named again and again in one path. Resolution stops at its bound on names
/// walked (ELOOP), well before 40 links' worth of 4 KiB targets.
#[test]
fn a_resolution_walking_too_far_through_links_ends() {
    let f = fixture();
    let mut v = open(&f).expect("creates");
    v.mkdir("d").expect("mkdir");
    let walk = "d/../".repeat(800);
    v.symlink("w", &walk).expect("a link that walks");
    let started = std::time::Instant::now();
    let path = "w/".repeat(30);
    assert!(matches!(v.resolve("", &path, true), Err(SealError::TooManyLinks(_))));
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "took {:?}", started.elapsed());
    // Fewer walks are fine: 5 links of 1,600 names each.
    assert_eq!(resolved(&v, "", &"w/".repeat(5), true).expect("resolves"), "");
}

/// The attack of storing data in link targets, which the manifest holds and every commit
/// rewrites: targets count against the quota as file content does, and give it back when the
/// link goes (removed, renamed over) or reopened.
#[test]
fn link_targets_count_against_the_quota() {
    let f = fixture();
    let sim = SimPlatform::open(&f.state).expect("sim platform");
    let options = VolumeOptions { quota: 10_000, ..options(b"app") };
    let mut v = Volume::open(&f.dir, &sim, &options).expect("creates");
    let target = "t".repeat(4000);
    v.symlink("a", &target).expect("within the quota");
    v.link("a", "b").expect("a copy of the link, within the quota");
    assert_eq!(v.used(), 8000);
    assert!(matches!(v.symlink("c", &target), Err(SealError::QuotaExceeded { .. })), "past the quota");
    assert!(matches!(v.link("a", "c"), Err(SealError::QuotaExceeded { .. })), "a copy past the quota too");
    v.commit().expect("commits");
    drop(v);
    let mut v = Volume::open(&f.dir, &sim, &options).expect("reopens");
    assert_eq!(v.used(), 8000, "counted when loaded");
    v.rename("a", "b").expect("one link over the other");
    assert_eq!(v.used(), 4000);
    v.unlink("b").expect("unlinks");
    assert_eq!(v.used(), 0);
}
