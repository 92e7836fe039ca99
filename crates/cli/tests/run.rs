//! `lamina run` on the guest programs, as both core modules (WASI preview 1) and components
//! (WASI preview 2): output, arguments, environment, stdin, exit codes, files, and every limit.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::{BOTH, Wasi, assert_code, guest, lamina, output, texts};

#[test]
fn hello_runs_as_module_and_component() {
    for wasi in BOTH {
        let out = output(lamina().args(["run", "--no-cache"]).arg(guest("hello", wasi)));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n", "{wasi:?}");
    }
}

#[test]
fn args_env_and_stdin_pass_through() {
    for wasi in BOTH {
        let mut child = lamina()
            .args(["run", "--no-cache", "--env", "GREETING=hi there", "--env", "EMPTY="])
            .arg(guest("echo", wasi))
            .args(["--", "one", "two words", "--stdin"])
            .env("HOST_SECRET", "must not leak")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lamina starts");
        child.stdin.take().expect("piped stdin").write_all(b"from stdin").expect("stdin accepts");
        let out = child.wait_with_output().expect("lamina finishes");
        assert_code(&out, 0);
        let (stdout, stderr) = texts(&out);
        assert_eq!(stdout, "args: one two words --stdin\nenv: EMPTY=\nenv: GREETING=hi there\nstdin: from stdin\n");
        assert!(stderr.contains("echo: done"), "stderr passes through: {stderr}");
        assert!(!stdout.contains("HOST_SECRET"));
    }
}

#[test]
fn exit_codes_become_lamina_exit_codes() {
    for code in [0, 1, 7, 42] {
        let out =
            output(lamina().args(["run", "--no-cache"]).arg(guest("exit", Wasi::P1)).args(["--", &code.to_string()]));
        assert_code(&out, code);
    }
    // WASI 0.2's `exit` carries only success or failure, which is what Rust's std uses there.
    for (code, expected) in [(0, 0), (7, 1)] {
        let out =
            output(lamina().args(["run", "--no-cache"]).arg(guest("exit", Wasi::P2)).args(["--", &code.to_string()]));
        assert_code(&out, expected);
    }
}

#[test]
fn files_through_a_preopened_directory() {
    for wasi in BOTH {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("input.txt"), "lamina").expect("write input");
        let mount = format!("{}::/data", dir.path().display());
        let out = output(
            lamina().args(["run", "--no-cache", "--dir", &mount]).arg(guest("files", wasi)).args(["--", "/data"]),
        );
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "read 6 bytes\nfiles: input.txt output.txt\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("output.txt")).expect("output written"), "LAMINA");
    }
}

#[test]
fn read_only_directory_refuses_writes() {
    for wasi in BOTH {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("input.txt"), "x").expect("write input");
        let mount = format!("{}::/data:ro", dir.path().display());
        let out = output(
            lamina().args(["run", "--no-cache", "--dir", &mount]).arg(guest("files", wasi)).args(["--", "/data"]),
        );
        // Exit code 3 from the guest; WASI 0.2 components can only say "failure" (1).
        assert_code(&out, if matches!(wasi, Wasi::P1) { 3 } else { 1 });
        assert!(texts(&out).1.contains("cannot write output.txt"));
        assert!(!dir.path().join("output.txt").exists());
    }
}

#[test]
fn infinite_loop_is_killed_by_the_timeout() {
    for wasi in BOTH {
        let started = std::time::Instant::now();
        let out = output(lamina().args(["run", "--no-cache", "--timeout", "300ms"]).arg(guest("spin", wasi)));
        assert_code(&out, 124);
        let stderr = texts(&out).1;
        assert!(stderr.contains("killed: exceeded the 300ms timeout"), "{stderr}");
        assert!(stderr.contains("spin::main"), "the backtrace names the function: {stderr}");
        // Generous bound: the point is that it ends, not how fast (no timing assertion).
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}

#[test]
fn infinite_loop_is_killed_when_fuel_runs_out() {
    for wasi in BOTH {
        let out = output(lamina().args(["run", "--no-cache", "--fuel", "200000"]).arg(guest("spin", wasi)));
        assert_code(&out, 124);
        assert!(texts(&out).1.contains("killed: ran out of fuel after 200000 units"));
    }
}

#[test]
fn enough_fuel_lets_a_guest_finish() {
    let out = output(lamina().args(["run", "--no-cache", "--fuel", "100000000", "-v"]).arg(guest("hello", Wasi::P1)));
    assert_code(&out, 0);
    assert!(texts(&out).1.contains("fuel "), "verbose output reports fuel used");
}

#[test]
fn memory_hog_is_stopped_at_its_limit() {
    for wasi in BOTH {
        let out = output(lamina().args(["run", "--no-cache", "--max-memory", "64MiB"]).arg(guest("hog", wasi)));
        assert_code(&out, 134);
        let stderr = texts(&out).1;
        assert!(stderr.contains("out of memory: the guest asked for"), "{stderr}");
        assert!(stderr.contains("beyond its 64 MiB limit"), "{stderr}");
    }
}

#[test]
fn memory_within_the_limit_is_fine() {
    for wasi in BOTH {
        let out = output(
            lamina().args(["run", "--no-cache", "--max-memory", "64MiB"]).arg(guest("hog", wasi)).args(["--", "16"]),
        );
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "allocated 16 MiB\n");
    }
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    for wasi in BOTH {
        let out = output(lamina().args(["run", "--no-cache"]).arg(guest("recurse", wasi)));
        assert_code(&out, 134);
        let stderr = texts(&out).1;
        assert!(stderr.contains("lamina: stack overflow"), "{stderr}");
        assert!(stderr.lines().count() < 100, "the backtrace is bounded");
    }
}

#[test]
fn trap_prints_a_named_backtrace() {
    for wasi in BOTH {
        let out = output(lamina().args(["run", "--no-cache"]).arg(guest("trap", wasi)));
        assert_code(&out, 134);
        let stderr = texts(&out).1;
        assert!(stderr.contains("lamina: trap: wasm `unreachable` instruction executed"), "{stderr}");
        assert!(stderr.contains("wasm backtrace:"), "{stderr}");
        assert!(stderr.contains("trap::explode"), "function names from the name section: {stderr}");
        assert!(stderr.contains("trap::main"), "{stderr}");
    }
}

#[test]
fn every_profile_runs_hello() {
    for profile in ["server", "edge", "tiny"] {
        for wasi in BOTH {
            let out = output(lamina().args(["run", "--no-cache", "--profile", profile]).arg(guest("hello", wasi)));
            assert_code(&out, 0);
        }
    }
}

/// A 39-bit address space is 512 GiB; a 512 MB board also cannot give a process much more
/// than its RAM. The tiny profile must start within 1 GiB of address space, where the server
/// profile's pool of 4 GiB reservations cannot even be created.
#[test]
fn tiny_profile_starts_in_a_small_address_space() {
    let limit = format!("--as={}", 1u64 << 30);
    let lamina_bin = env!("CARGO_BIN_EXE_lamina");
    for wasi in BOTH {
        let out = output(
            std::process::Command::new("prlimit")
                .args([limit.as_str(), "--", lamina_bin, "run", "--no-cache", "--profile", "tiny"])
                .arg(guest("hello", wasi)),
        );
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");
    }
    let out = output(
        std::process::Command::new("prlimit")
            .args([limit.as_str(), "--", lamina_bin, "run", "--no-cache", "--profile", "server"])
            .arg(guest("hello", Wasi::P1)),
    );
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("--profile tiny"), "the error says what to do: {}", texts(&out).1);
}

#[test]
fn text_format_modules_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("exit3.wat");
    std::fs::write(
        &path,
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start") (call $exit (i32.const 3))))"#,
    )
    .expect("write wat");
    let out = output(lamina().args(["run", "--no-cache"]).arg(&path));
    assert_code(&out, 3);
}
