//! `lamina run --sealed-dir` end to end with the SQLite example: the database persists, the
//! host holds only ciphertext, a flipped byte is an integrity error naming the file, an older
//! copy is refused as a rollback (on a TPM, swtpm), another module is refused, the quota is
//! enforced, and a guest killed mid-transaction leaves a readable database.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_code, example, example_for, files_under as host_files, lamina, output, texts};

struct Env {
    dir: tempfile::TempDir,
    platform: Vec<String>,
}

impl Env {
    fn sim() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("state").display().to_string();
        Self { dir, platform: vec!["--platform".into(), "sim".into(), "--state".into(), state] }
    }

    fn vol(&self) -> PathBuf {
        self.dir.path().join("vol")
    }

    fn notes(&self, args: &[&str]) -> Output {
        self.run(&example("sqlite", "sqlite-notes"), args, &[])
    }

    /// The same program built as a preview 2 component.
    fn notes_p2(&self, args: &[&str]) -> Output {
        self.run(&example_for("sqlite", "sqlite-notes", "wasm32-wasip2"), args, &[])
    }

    fn run(&self, wasm: &Path, args: &[&str], extra: &[&str]) -> Output {
        let mut cmd = lamina();
        cmd.arg("run")
            .args(&self.platform)
            .args(extra)
            .arg("--sealed-dir")
            .arg(format!("{}::/data", self.vol().display()));
        output(cmd.arg(wasm).arg("--").args(args))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn sqlite_in_a_sealed_directory_persists_as_ciphertext_and_detects_tampering() {
    persists_as_ciphertext_and_detects_tampering(Env::notes, common::Wasi::P1);
}

#[test]
fn sqlite_component_in_a_sealed_directory_persists_as_ciphertext_and_detects_tampering() {
    persists_as_ciphertext_and_detects_tampering(Env::notes_p2, common::Wasi::P2);
}

#[test]
fn a_module_and_a_component_of_the_same_program_are_different_workloads() {
    let env = Env::sim();
    assert_code(&env.notes(&["add", "/data/notes.db", "from the module"]), 0);
    let refused = env.notes_p2(&["list", "/data/notes.db"]);
    assert_code(&refused, 125);
    assert!(texts(&refused).1.contains("is sealed to module sha256:"), "{}", texts(&refused).1);
}

fn persists_as_ciphertext_and_detects_tampering(notes: fn(&Env, &[&str]) -> Output, other_kind: common::Wasi) {
    let env = Env::sim();
    let added = notes(&env, &["add", "/data/notes.db", "launch code lamina-plaintext-42", "second"]);
    assert_code(&added, 0);
    let again = notes(&env, &["add", "/data/notes.db", "third"]);
    assert_code(&again, 0);
    let listed = notes(&env, &["list", "/data/notes.db"]);
    assert_code(&listed, 0);
    let stdout = texts(&listed).0;
    assert!(stdout.contains("1: launch code lamina-plaintext-42") && stdout.contains("3 notes"), "{stdout}");

    // What `strings` would find: none of the inserted text, nor the file name.
    for file in host_files(&env.vol()) {
        let bytes = std::fs::read(&file).expect("host file");
        for needle in [&b"lamina-plaintext"[..], b"notes.db", b"SQLite format"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} shows {:?}", file.display(), needle);
        }
    }

    // Another module is refused, naming both hashes.
    let other = common::guest("files", other_kind);
    let refused = env.run(&other, &[], &[]);
    assert_code(&refused, 125);
    let stderr = texts(&refused).1;
    assert!(
        stderr.contains("is sealed to module sha256:") && stderr.contains("this workload is module sha256:"),
        "{stderr}"
    );

    // A flipped byte in the database's host file: in both slots of its first chunk (4124 bytes
    // each), as only one of them holds the current page.
    let object = host_files(&env.vol().join("objects"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("an object");
    let mut bytes = std::fs::read(&object).expect("object");
    bytes[500] ^= 0x20;
    bytes[4124 + 500] ^= 0x20;
    std::fs::write(&object, bytes).expect("tamper");
    let tampered = notes(&env, &["list", "/data/notes.db"]);
    assert_code(&tampered, 1);
    let stderr = texts(&tampered).1;
    assert!(stderr.contains("integrity error") && stderr.contains("notes.db"), "{stderr}");
}

#[test]
fn an_older_copy_is_refused_as_a_rollback_on_a_tpm() {
    let Some(tpm) = lamina_tee_tpm::swtpm::Swtpm::start_unless_skipped().expect("swtpm starts") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state").display().to_string();
    let env = Env {
        dir,
        platform: vec!["--platform".into(), "tpm".into(), "--tcti".into(), tpm.tcti().into(), "--state".into(), state],
    };
    assert_code(&env.notes(&["add", "/data/notes.db", "balance 100"]), 0);
    let backup = env.dir.path().join("backup");
    copy_dir(&env.vol(), &backup);
    assert_code(&env.notes(&["add", "/data/notes.db", "balance 5"]), 0);
    std::fs::remove_dir_all(env.vol()).expect("remove");
    copy_dir(&backup, &env.vol());
    let rolled_back = env.notes(&["list", "/data/notes.db"]);
    assert_code(&rolled_back, 125);
    let stderr = texts(&rolled_back).1;
    assert!(stderr.contains("rollback detected") && stderr.contains("TPM NV counter"), "{stderr}");
}

/// The host deletes (or empties) a sealed directory between two runs: the next run is refused,
/// naming the directory and the way to start over, rather than given a fresh, empty volume
/// (which would silently reset the workload's state); the operator's explicit start-over works.
#[test]
fn a_sealed_directory_deleted_between_runs_is_refused_not_recreated_empty() {
    let env = Env::sim();
    assert_code(&env.notes(&["add", "/data/notes.db", "kept"]), 0);
    std::fs::remove_dir_all(env.vol()).expect("the host deletes the directory");
    let refused = env.notes(&["list", "/data/notes.db"]);
    assert_code(&refused, 125);
    let stderr = texts(&refused).1;
    assert!(stderr.contains("is now missing or empty") && stderr.contains("--danger-sealed-start-over"), "{stderr}");

    std::fs::create_dir_all(env.vol()).expect("an empty directory in its place");
    assert_code(&env.notes(&["list", "/data/notes.db"]), 125);

    let fresh =
        env.run(&example("sqlite", "sqlite-notes"), &["list", "/data/notes.db"], &["--danger-sealed-start-over"]);
    assert_code(&fresh, 0);
    assert!(texts(&fresh).0.contains("0 notes"), "{:?}", texts(&fresh));
    assert_code(&env.notes(&["add", "/data/notes.db", "again"]), 0);
}

#[test]
fn the_quota_is_a_clear_error() {
    let env = Env::sim();
    let full = env.run(
        &example("sqlite", "sqlite-notes"),
        &["bench", "/data/kv.db", "--rows", "5000"],
        &["--sealed-quota", "64KiB"],
    );
    assert_code(&full, 1);
    let stderr = texts(&full).1;
    assert!(stderr.contains("quota of 65536 bytes"), "{stderr}");
}

#[test]
fn a_guest_killed_mid_write_leaves_a_readable_database() {
    killed_mid_write_leaves_a_readable_database(&[]);
}

/// The same with SQLite's write-ahead log: the next open recovers from the log the killed
/// guest left in the sealed directory.
#[test]
fn a_guest_killed_mid_write_in_wal_mode_leaves_a_readable_database() {
    killed_mid_write_leaves_a_readable_database(&["--wal"]);
}

fn killed_mid_write_leaves_a_readable_database(journal: &[&'static str]) {
    let env = Env::sim();
    let with = |args: &[&'static str]| -> Vec<&'static str> { [journal, args].concat() };
    assert_code(&env.notes(&with(&["add", "/data/kv.db", "before"])), 0);
    let killed = env.run(
        &example("sqlite", "sqlite-notes"),
        &with(&["bench", "/data/kv.db", "--rows", "1000000"]),
        &["--timeout", "1s"],
    );
    assert_code(&killed, 124);
    let listed = env.notes(&with(&["list", "/data/kv.db"]));
    assert_code(&listed, 0);
    assert!(texts(&listed).0.contains("1: before"), "{}", texts(&listed).0);
}

/// A second way of keeping state in files: SQLite in write-ahead-log mode (a log appended to
/// and checkpointed into the database) keeps its notes across runs in a sealed directory, as
/// ciphertext, and the database reads back in rollback-journal mode too.
#[test]
fn sqlite_in_wal_mode_keeps_its_notes_in_a_sealed_directory() {
    let env = Env::sim();
    assert_code(&env.notes(&["--wal", "add", "/data/wal.db", "wal-plaintext-7", "second"]), 0);
    assert_code(&env.notes(&["--wal", "add", "/data/wal.db", "third"]), 0);
    let listed = env.notes(&["--wal", "list", "/data/wal.db"]);
    assert_code(&listed, 0);
    assert!(texts(&listed).0.ends_with("1: wal-plaintext-7\n2: second\n3: third\n3 notes\n"), "{:?}", texts(&listed));
    let rollback = env.notes(&["list", "/data/wal.db"]);
    assert_code(&rollback, 0);
    assert!(texts(&rollback).0.contains("3 notes"), "{:?}", texts(&rollback));
    for file in host_files(&env.vol()) {
        let bytes = std::fs::read(&file).expect("host file");
        for needle in [&b"wal-plaintext"[..], b"wal.db"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} shows {:?}", file.display(), needle);
        }
    }
}

/// A second real program beside SQLite that keeps its state in files: a log-structured store
/// (`examples/kvlog`: LevelDB's design, from the rusty-leveldb crate) appends a log, writes sorted
/// tables and a manifest, renames `CURRENT` over itself, and lists and deletes files as it
/// compacts. In a sealed directory it answers each step as in a plain one, for a module and a
/// component, and the host sees none of its keys.
#[test]
fn a_log_structured_store_keeps_its_state_in_a_sealed_directory() {
    for target in ["wasm32-wasip1", "wasm32-wasip2"] {
        let env = Env::sim();
        let kvlog = common::example_for("kvlog", "kvlog", target);
        let plain = env.dir.path().join("plain");
        std::fs::create_dir(&plain).expect("mkdir");
        let steps: [&[&str]; 7] = [
            &["put", "/data", "3000"],
            &["check", "/data", "3000"],
            &["delete", "/data", "3"],
            &["check", "/data", "3000", "3"],
            &["compact", "/data"],
            &["check", "/data", "3000", "3"],
            &["files", "/data"],
        ];
        for step in steps {
            let expected = output(
                lamina()
                    .args(["run", "--no-cache", "--dir"])
                    .arg(format!("{}::/data", plain.display()))
                    .arg(&kvlog)
                    .arg("--")
                    .args(step),
            );
            assert_code(&expected, 0);
            let sealed = env.run(&kvlog, step, &["--no-cache"]);
            assert_code(&sealed, 0);
            assert_eq!(texts(&sealed).0, texts(&expected).0, "{target}: {step:?}");
        }
        let check = env.run(&kvlog, &["check", "/data", "3000", "3"], &["--no-cache"]);
        assert_eq!(texts(&check).0, "ok: 2000 keys\n", "{target}");
        let files = env.run(&kvlog, &["files", "/data"], &["--no-cache"]);
        let files = texts(&files).0;
        for kind in ["CURRENT", "MANIFEST-", ".ldb", ".log"] {
            assert!(files.contains(kind), "{target}: the store has no {kind} file: {files}");
        }
        for file in host_files(&env.vol()) {
            let bytes = std::fs::read(&file).expect("host file");
            for needle in [&b"key-0000"[..], b"value-0000", b"MANIFEST"] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} shows {:?}", file.display(), needle);
            }
        }
    }
}

/// The log-structured store's writer killed mid-way: the next open recovers what its last
/// flush made durable, keys 1..n in order, each with its value, and nothing out of order.
#[test]
fn a_log_structured_store_killed_mid_write_recovers_what_it_flushed() {
    let env = Env::sim();
    let kvlog = example("kvlog", "kvlog");
    assert_code(&env.run(&kvlog, &["put", "/data", "3000"], &[]), 0);
    let killed = env.run(&kvlog, &["put", "/data", "100000000", "3001"], &["--timeout", "1s"]);
    assert_code(&killed, 124);
    let recovered = env.run(&kvlog, &["recovered", "/data"], &[]);
    assert_code(&recovered, 0);
    let said = texts(&recovered).0;
    let n: u64 = said.trim().strip_prefix("recovered ").and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(n >= 3000, "the flushed keys survive: {said}");
}

#[test]
fn a_sealed_directory_behaves_like_a_plain_one_for_modules_and_components() {
    for wasi in common::BOTH {
        let env = Env::sim();
        let fsops = common::guest("fsops", wasi);
        let plain = env.dir.path().join("plain");
        std::fs::create_dir(&plain).expect("mkdir");
        let expected = output(lamina().arg("run").arg("--dir").arg(format!("{}::/data", plain.display())).arg(&fsops));
        assert_code(&expected, 0);
        let sealed = env.run(&fsops, &["/data"], &[]);
        assert_code(&sealed, 0);
        assert_eq!(texts(&sealed).0, texts(&expected).0, "{wasi:?}: the sealed directory differs from a plain one");
        assert!(texts(&sealed).0.contains("read big: ok (100000, true)"), "{}", texts(&sealed).0);
    }
}

/// `fd_renumber` between standard I/O and sealed files answers as between standard I/O and
/// plain files: standard input moved onto a file's number, files onto files, a file onto
/// standard output (what the program prints lands in the file), numbers that name nothing; the
/// renumbered-away number is closed, and nothing a failed renumber named is lost.
#[test]
fn renumbering_between_standard_io_and_sealed_files_works_as_with_plain_ones() {
    let env = Env::sim();
    let program = common::guest("renumber", common::Wasi::P1);
    let plain = env.dir.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let expected =
        output(lamina().arg("run").arg("--dir").arg(format!("{}::/data", plain.display())).arg(&program).arg("/data"));
    assert_code(&expected, 0);
    let expected = texts(&expected).1;
    assert!(expected.contains("c.txt holds: Ok(\"printed into c.txt\\n\")"), "{expected}");
    let sealed = env.run(&program, &["/data"], &[]);
    assert_code(&sealed, 0);
    // What the program printed, without Lamina's log lines (a timestamp first).
    let program_lines = |text: &str| {
        text.lines()
            .filter(|l| !l.split(' ').next().is_some_and(|w| w.len() > 20 && w.ends_with('Z') && w.contains('T')))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(program_lines(&texts(&sealed).1), program_lines(&expected), "the sealed directory differs");
}

/// A guest that creates sealed files and keeps them all open is refused past
/// `MAX_OPEN_FILES` (256) with a clear error, under both ABIs, and may open another once it
/// closes one: it cannot take the host's file descriptors.
#[test]
fn a_guest_hoarding_open_sealed_files_is_held_to_its_share() {
    for wasi in common::BOTH {
        let env = Env::sim();
        let out = env.run(&common::guest("hoard", wasi), &["/data"], &[]);
        assert_code(&out, 0);
        let stdout = texts(&out).0;
        assert!(stdout.contains("held 256 open; the next was refused"), "{wasi:?}: {stdout}");
        assert!(stdout.contains("after closing one: opened another"), "{wasi:?}: {stdout}");
    }
}

/// A preview 1 module that closes its sealed preopen (fd 3) and then uses it: the close must
/// take, so the descriptor is gone (EBADF) rather than left pointing at a placeholder. It
/// prints three errnos, two digits each: the close, a `path_open` through fd 3 afterwards, and a
/// second close.
const CLOSE_PREOPEN: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "x")
  (func $digits (param $at i32) (param $n i32)
    (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.div_u (local.get $n) (i32.const 10))))
    (i32.store8 (i32.add (local.get $at) (i32.const 1))
      (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10)))))
  (func (export "_start")
    (call $digits (i32.const 0) (call $close (i32.const 3)))
    (i32.store8 (i32.const 2) (i32.const 32))
    (call $digits (i32.const 3)
      (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 1)
        (i64.const 66) (i64.const 0) (i32.const 0) (i32.const 200)))
    (i32.store8 (i32.const 5) (i32.const 32))
    (call $digits (i32.const 6) (call $close (i32.const 3)))
    (i32.store8 (i32.const 8) (i32.const 10))
    (i32.store (i32.const 300) (i32.const 0))
    (i32.store (i32.const 304) (i32.const 9))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))))
"#;

#[test]
fn a_closed_sealed_preopen_is_gone_not_left_pointing_at_a_placeholder() {
    let env = Env::sim();
    let module = env.dir.path().join("close-preopen.wasm");
    std::fs::write(&module, wat::parse_str(CLOSE_PREOPEN).expect("WAT")).expect("write");
    // As a plain directory through wasmtime-wasi: closed (0), then EBADF (8) twice.
    let plain = env.dir.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let expected = output(lamina().arg("run").arg("--dir").arg(format!("{}::/data", plain.display())).arg(&module));
    assert_code(&expected, 0);
    assert_eq!(texts(&expected).0, "00 08 08\n");
    let sealed = env.run(&module, &[], &[]);
    assert_code(&sealed, 0);
    assert_eq!(texts(&sealed).0, texts(&expected).0);
}

/// A preview 1 module that opens a file with every right and APPEND, then reads its
/// descriptor's status, the preopen's, tries to change the rights and to set SYNC, reads the
/// status again, and tries to open a file with SYNC; it writes the three 24-byte `fdstat`
/// records and the five errnos raw.
const FDSTAT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $stat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_rights" (func $rights (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $flags (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "f")
  (func (export "_start")
    (i32.store8 (i32.const 472)
      (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 1)
        (i64.const 0x1fffffff) (i64.const 0) (i32.const 1) (i32.const 200)))
    (i32.store8 (i32.const 473) (call $stat (i32.load (i32.const 200)) (i32.const 400)))
    (drop (call $stat (i32.const 3) (i32.const 424)))
    (i32.store8 (i32.const 474) (call $rights (i32.load (i32.const 200)) (i64.const 0) (i64.const 0)))
    (i32.store8 (i32.const 475) (call $flags (i32.load (i32.const 200)) (i32.const 16)))
    (drop (call $stat (i32.load (i32.const 200)) (i32.const 448)))
    (i32.store8 (i32.const 476)
      (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 1)
        (i64.const 0x1fffffff) (i64.const 0) (i32.const 16) (i32.const 204)))
    (i32.store (i32.const 300) (i32.const 400))
    (i32.store (i32.const 304) (i32.const 77))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))))
"#;

#[test]
fn a_sealed_descriptor_reports_its_rights_and_flags_as_a_plain_one() {
    let env = Env::sim();
    let module = env.dir.path().join("fdstat.wasm");
    std::fs::write(&module, wat::parse_str(FDSTAT).expect("WAT")).expect("write");
    let plain = env.dir.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let expected = output(lamina().arg("run").arg("--dir").arg(format!("{}::/data", plain.display())).arg(&module));
    assert_code(&expected, 0);
    assert_eq!(expected.stdout.len(), 77);
    let sealed = env.run(&module, &[], &[]);
    assert_code(&sealed, 0);
    let hex = |b: &[u8]| b.chunks(24).map(hex::encode).collect::<Vec<_>>().join(" ");
    assert_eq!(hex(&sealed.stdout), hex(&expected.stdout));
}
