//! The same `.wasm` on another architecture: `lamina` cross-built for aarch64 as an edge board
//! runs it (the runtime-only build: the node agent and the runtime, no compiler) under
//! `qemu-aarch64`, running what the x86_64 build compiled for it.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{BOTH, Signer, Wasi, assert_code, guest, lamina, lamina_aarch64, output, texts};

fn qemu(binary: &Path) -> Command {
    let mut cmd = Command::new("qemu-aarch64");
    cmd.args(["-L", "/usr/aarch64-linux-gnu"]).arg(binary).env_remove("LAMINA_CACHE_DIR");
    cmd
}

/// Compiles and signs `program` for `target` into `dir`.
fn compiled(signer: &Signer, dir: &Path, program: &str, wasi: Wasi, target: &str) -> std::path::PathBuf {
    let artifact = dir.join(format!("{program}.{wasi:?}.{target}.lamart"));
    let out = output(
        signer.compile().args(["--target", target, "--profile", "edge", "-o"]).arg(&artifact).arg(guest(program, wasi)),
    );
    assert_code(&out, 0);
    assert!(texts(&out).1.contains(&format!("for {target}")), "{}", texts(&out).1);
    artifact
}

#[test]
fn same_wasm_same_output_on_aarch64() {
    let arm = lamina_aarch64();
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    for wasi in BOTH {
        for (program, args) in [("hello", vec![]), ("echo", vec!["a", "b c"]), ("exit", vec!["5"])] {
            let native = output(
                lamina().args(["run", "--no-cache", "--env", "K=v"]).arg(guest(program, wasi)).arg("--").args(&args),
            );
            let artifact = compiled(&signer, dir.path(), program, wasi, "aarch64-unknown-linux-gnu");
            let emulated =
                output(signer.run_with(qemu(&arm)).args(["--env", "K=v"]).arg(&artifact).arg("--").args(&args));
            assert_eq!(texts(&native).0, texts(&emulated).0, "{program} {wasi:?}: identical output");
            assert_eq!(native.status.code(), emulated.status.code(), "{program} {wasi:?}: identical exit code");
        }
    }
}

/// The edge build has no compiler: it runs artifacts compiled for it, refuses another
/// machine's with the reason, refuses a plain `.wasm` saying how to compile it for this
/// machine, and still enforces limits.
#[test]
fn runtime_only_build_runs_artifacts_and_refuses_plain_wasm() {
    let arm = lamina_aarch64();
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    for wasi in BOTH {
        let artifact = compiled(&signer, dir.path(), "hello", wasi, "aarch64-unknown-linux-gnu");
        let out = output(signer.run_with(qemu(&arm)).arg(&artifact));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");

        let x86 = compiled(&signer, dir.path(), "hello", wasi, "x86_64-unknown-linux-gnu");
        let out = output(signer.run_with(qemu(&arm)).arg(&x86));
        assert_code(&out, 125);
        assert!(
            texts(&out)
                .1
                .contains("compiled for x86_64-unknown-linux-gnu, but this machine is aarch64-unknown-linux-gnu"),
            "{}",
            texts(&out).1
        );

        let out = output(qemu(&arm).args(["run", "--no-cache"]).arg(guest("hello", wasi)));
        assert_code(&out, 125);
        let stderr = texts(&out).1;
        assert!(stderr.contains("runtime-only build (no compiler)"), "{stderr}");
        assert!(stderr.contains("lamina compile --target aarch64-unknown-linux-gnu"), "{stderr}");
    }
    let out = output(qemu(&arm).args(["compile", "-o"]).arg(dir.path().join("x.lamart")).arg(guest("hello", Wasi::P1)));
    assert_code(&out, 125);
    // Limits still apply without a compiler.
    let spin = compiled(&signer, dir.path(), "spin", Wasi::P1, "aarch64-unknown-linux-gnu");
    let out = output(signer.run_with(qemu(&arm)).args(["--timeout", "500ms"]).arg(&spin));
    assert_code(&out, 124);
}

/// The runtime-only build runs Pulley bytecode (`lamina compile --target pulley64`) in wasmtime's
/// interpreter: same output, limits still enforced; `lamina run --target pulley64` interprets a
/// `.wasm`; another machine's target is refused with what to do instead.
#[test]
fn pulley_artifacts_run_in_the_interpreter_without_a_compiler() {
    let arm = lamina_aarch64();
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    for wasi in BOTH {
        let artifact = compiled(&signer, dir.path(), "hello", wasi, "pulley64");
        let out = output(signer.run_with(qemu(&arm)).arg(&artifact));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");
        let out = output(lamina().args(["run", "--no-cache", "--target", "pulley64"]).arg(guest("hello", wasi)));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");
    }
    let spin = compiled(&signer, dir.path(), "spin", Wasi::P1, "pulley64");
    let out = output(signer.run_with(qemu(&arm)).args(["--timeout", "500ms"]).arg(&spin));
    assert_code(&out, 124);
    let out = output(lamina().args(["run", "--no-cache", "--target", "aarch64"]).arg(guest("hello", Wasi::P1)));
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("lamina compile --target aarch64-unknown-linux-gnu"), "{}", texts(&out).1);
}

/// Evidence made by the aarch64 build (sim platform, under qemu) is appraised by the x86_64
/// verifier: one envelope format on every architecture.
#[test]
fn envelope_made_on_aarch64_verifies_on_x86_64() {
    let dir = tempfile::tempdir().expect("temp dir");
    let envelope = dir.path().join("arm.cbor");
    let out = output(
        qemu(&lamina_aarch64())
            .args(["attest", "--platform", "sim", "--nonce", "a1a2a3a4a5a6a7a8", "--module"])
            .arg(guest("hello", Wasi::P1))
            .arg("-o")
            .arg(&envelope)
            .arg("--state-dir")
            .arg(dir.path().join("state")),
    );
    assert_code(&out, 0);
    let policy = dir.path().join("sim.toml");
    std::fs::write(&policy, "allow_sim = true\n").expect("policy");
    let out = output(
        lamina().arg("verify").arg(&envelope).args(["--nonce", "a1a2a3a4a5a6a7a8"]).arg("--policy").arg(&policy),
    );
    assert_code(&out, 0);
    assert!(texts(&out).0.contains("claims.binding"), "{}", texts(&out).0);
}
