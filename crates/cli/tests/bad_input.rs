//! Every kind of bad input gets a clear error and a non-zero exit.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use common::{Wasi, assert_code, guest, lamina, output, texts};

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

#[track_caller]
fn fails_with(cmd: &mut std::process::Command, code: i32, needles: &[&str]) {
    let out = output(cmd);
    assert_code(&out, code);
    let stderr = texts(&out).1;
    for needle in needles {
        assert!(stderr.contains(needle), "stderr should mention {needle:?}:\n{stderr}");
    }
}

#[test]
fn missing_file() {
    fails_with(
        lamina().args(["run", "/nonexistent/app.wasm"]),
        125,
        &["cannot read /nonexistent/app.wasm", "No such file"],
    );
}

#[test]
fn directory_instead_of_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    fails_with(lamina().arg("run").arg(dir.path()), 125, &["cannot read", "directory"]);
}

#[test]
fn not_wasm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, "notes.txt", b"these are not the bytes you are looking for");
    fails_with(lamina().args(["run", "--no-cache"]).arg(&path), 125, &["not a WebAssembly module", "74 68 65 73"]);
    let empty = write(&dir, "empty.wasm", b"");
    fails_with(lamina().args(["run", "--no-cache"]).arg(&empty), 125, &["it is empty"]);
    fails_with(lamina().arg("inspect").arg(&path), 125, &["not a WebAssembly module"]);
}

#[test]
fn truncated_wasm_names_the_offset() {
    let bytes = std::fs::read(guest("hello", Wasi::P1)).expect("guest");
    let dir = tempfile::tempdir().expect("temp dir");
    let cut = bytes.len() / 2;
    let path = write(&dir, "half.wasm", &bytes[..cut]);
    let out = output(lamina().args(["run", "--no-cache"]).arg(&path));
    assert_code(&out, 125);
    let stderr = texts(&out).1;
    assert!(stderr.contains("truncated WebAssembly"), "{stderr}");
    assert!(stderr.contains("at offset 0x"), "{stderr}");
    assert!(stderr.contains(&format!("the file is {cut} bytes")), "{stderr}");
    fails_with(lamina().arg("inspect").arg(&path), 125, &["truncated WebAssembly", "at offset 0x"]);
}

#[test]
fn invalid_wasm_names_the_offset() {
    let mut bytes = wat::parse_str(r#"(module (func (export "_start") i32.const 1 drop))"#).expect("wat");
    // Replace `drop` (0x1a) with an undefined opcode.
    let pos = bytes.iter().rposition(|&b| b == 0x1a).expect("drop opcode");
    bytes[pos] = 0xff;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, "bad.wasm", &bytes);
    fails_with(lamina().args(["run", "--no-cache"]).arg(&path), 125, &["invalid WebAssembly at offset 0x"]);
}

#[test]
fn unknown_imports_are_listed() {
    let wasm = wat::parse_str(
        r#"(module
             (import "env" "launch_rockets" (func))
             (import "env" "read_minds" (func (param i32)))
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "_start")))"#,
    )
    .expect("wat");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, "imports.wasm", &wasm);
    let out = output(lamina().args(["run", "--no-cache"]).arg(&path));
    assert_code(&out, 125);
    let stderr = texts(&out).1;
    assert!(stderr.contains("env::launch_rockets, env::read_minds"), "{stderr}");
    assert!(!stderr.contains("fd_write"), "provided imports are not listed: {stderr}");
}

#[test]
fn artifact_for_another_architecture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let artifact = dir.path().join("hello.riscv.lamart");
    let out = output(
        lamina()
            .args(["compile", "--target", "riscv64gc-unknown-linux-gnu", "-o"])
            .arg(&artifact)
            .arg(guest("hello", Wasi::P1)),
    );
    assert_code(&out, 0);
    fails_with(
        lamina().args(["run", "--danger-run-unverified-native-code"]).arg(&artifact),
        125,
        &[
            "compiled for riscv64gc-unknown-linux-gnu",
            "this machine is x86_64-unknown-linux-gnu",
            "lamina compile --target",
        ],
    );
}

#[test]
fn artifact_from_another_engine_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let artifact = dir.path().join("hello.lamart");
    assert_code(&output(lamina().args(["compile", "-o"]).arg(&artifact).arg(guest("hello", Wasi::P1))), 0);
    let bytes = std::fs::read(&artifact).expect("artifact");
    let decoded = lamina_runtime::artifact::decode(&bytes).expect("a fresh artifact decodes");
    let mut header = decoded.header.clone();
    header.engine = "wasmtime 1.0.0".into();
    let old = write(&dir, "old.lamart", &lamina_runtime::artifact::encode(header, decoded.code));
    fails_with(
        lamina().args(["run", "--danger-run-unverified-native-code"]).arg(&old),
        125,
        &["compiled by wasmtime 1.0.0", "this lamina runs wasmtime"],
    );
}

#[test]
fn corrupt_artifact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let artifact = dir.path().join("hello.lamart");
    assert_code(&output(lamina().args(["compile", "-o"]).arg(&artifact).arg(guest("hello", Wasi::P1))), 0);
    let mut bytes = std::fs::read(&artifact).expect("artifact");
    let last = bytes.len() - 100;
    bytes[last] ^= 0x55;
    let bad = write(&dir, "bad.lamart", &bytes);
    fails_with(
        lamina().args(["run", "--danger-run-unverified-native-code"]).arg(&bad),
        125,
        &["corrupt Lamina artifact"],
    );
    let truncated = write(&dir, "short.lamart", &bytes[..bytes.len() / 2]);
    fails_with(
        lamina().args(["run", "--danger-run-unverified-native-code"]).arg(&truncated),
        125,
        &["malformed Lamina artifact", "truncated"],
    );
}

#[test]
fn artifact_profile_mismatch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let artifact = dir.path().join("hello.lamart");
    assert_code(
        &output(lamina().args(["compile", "--profile", "edge", "-o"]).arg(&artifact).arg(guest("hello", Wasi::P1))),
        0,
    );
    fails_with(
        lamina().args(["run", "--danger-run-unverified-native-code", "--profile", "tiny"]).arg(&artifact),
        125,
        &["compiled for the edge profile", "--profile edge"],
    );
    // Without --profile, the artifact's own profile is used.
    assert_code(&output(lamina().args(["run", "--danger-run-unverified-native-code"]).arg(&artifact)), 0);
}

#[test]
fn dir_that_does_not_exist() {
    fails_with(
        lamina().args(["run", "--no-cache", "--dir", "/no/such/dir::/data"]).arg(guest("hello", Wasi::P1)),
        125,
        &["cannot mount /no/such/dir", "does not exist"],
    );
}

#[test]
fn dir_that_is_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(&dir, "plain", b"x");
    let mount = format!("{}::/data", file.display());
    fails_with(
        lamina().args(["run", "--no-cache", "--dir", &mount]).arg(guest("hello", Wasi::P1)),
        125,
        &["not a directory"],
    );
}

#[test]
fn malformed_size() {
    for bad in ["64 lightyears", "MiB", "-5MiB"] {
        fails_with(
            lamina().arg("run").arg(format!("--max-memory={bad}")).arg(guest("hello", Wasi::P1)),
            2,
            &["--max-memory", "is not a size", "64MiB"],
        );
    }
}

#[test]
fn malformed_duration() {
    for bad in ["2 parsecs", "soon", "0s"] {
        fails_with(
            lamina().args(["run", "--timeout", bad]).arg(guest("hello", Wasi::P1)),
            2,
            &["--timeout", "is not a duration", "2s"],
        );
    }
}

#[test]
fn malformed_mount_env_profile_and_target() {
    let hello = guest("hello", Wasi::P1);
    fails_with(lamina().args(["run", "--dir", "::/data"]).arg(&hello), 2, &["not a directory mount"]);
    fails_with(lamina().args(["run", "--env", "NOVALUE"]).arg(&hello), 2, &["is not KEY=VALUE"]);
    fails_with(lamina().args(["run", "--profile", "huge"]).arg(&hello), 2, &["use server, edge or tiny"]);
    fails_with(
        lamina().args(["compile", "--target", "mips", "-o", "/dev/null"]).arg(&hello),
        2,
        &["unsupported target"],
    );
}

#[test]
fn memory_limit_beyond_the_profile() {
    fails_with(
        lamina().args(["run", "--no-cache", "--profile", "tiny", "--max-memory", "1GiB"]).arg(guest("hello", Wasi::P1)),
        125,
        &["more than the tiny profile allows"],
    );
}

#[test]
fn initial_memory_beyond_the_limit() {
    let wasm = wat::parse_str(r#"(module (memory (export "memory") 200) (func (export "_start")))"#).expect("wat");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, "big.wasm", &wasm);
    fails_with(
        lamina().args(["run", "--no-cache", "--max-memory", "1MiB"]).arg(&path),
        125,
        &["out of memory: the guest needs 12.5 MiB at start, beyond its 1 MiB limit"],
    );
}

#[test]
fn library_module_without_start() {
    let wasm = wat::parse_str(
        r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#,
    )
    .expect("wat");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, "lib.wasm", &wasm);
    fails_with(lamina().args(["run", "--no-cache"]).arg(&path), 134, &["exports no `_start`"]);
}
