//! The same `.wasm` on another architecture: `lamina` cross-built for aarch64 and run under
//! `qemu-aarch64`, and the runtime-only build that has no compiler.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BOTH, Signer, Wasi, assert_code, guest, lamina, lamina_aarch64, lamina_runtime_only, output, texts};

fn qemu(binary: &Path) -> Command {
    let mut cmd = Command::new("qemu-aarch64");
    cmd.args(["-L", "/usr/aarch64-linux-gnu"]).arg(binary).env_remove("LAMINA_CACHE_DIR");
    cmd
}

#[test]
fn same_wasm_same_output_on_aarch64() {
    let arm = lamina_aarch64();
    for wasi in BOTH {
        for (program, args) in [("hello", vec![]), ("echo", vec!["a", "b c"]), ("exit", vec!["5"])] {
            let native = output(
                lamina().args(["run", "--no-cache", "--env", "K=v"]).arg(guest(program, wasi)).arg("--").args(&args),
            );
            let emulated = output(
                qemu(&arm).args(["run", "--no-cache", "--env", "K=v"]).arg(guest(program, wasi)).arg("--").args(&args),
            );
            assert_eq!(texts(&native).0, texts(&emulated).0, "{program} {wasi:?}: identical output");
            assert_eq!(native.status.code(), emulated.status.code(), "{program} {wasi:?}: identical exit code");
        }
    }
}

#[test]
fn aarch64_binary_reports_its_architecture() {
    let out = output(
        qemu(&lamina_aarch64()).args(["compile", "--profile", "edge", "-o", "/dev/null"]).arg(guest("hello", Wasi::P1)),
    );
    assert_code(&out, 0);
    assert!(texts(&out).1.contains("for aarch64-unknown-linux-gnu"), "{}", texts(&out).1);
}

#[test]
fn artifact_compiled_on_x86_64_runs_on_aarch64() {
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    for wasi in BOTH {
        let artifact = dir.path().join("hello.aarch64.lamart");
        assert_code(
            &output(
                signer
                    .compile()
                    .args(["--target", "aarch64-unknown-linux-gnu", "--profile", "edge", "-o"])
                    .arg(&artifact)
                    .arg(guest("hello", wasi)),
            ),
            0,
        );
        let out = output(signer.run_with(qemu(&lamina_aarch64())).arg(&artifact));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");
        // And the x86_64 artifact is refused there, with the reason.
        let x86 = dir.path().join("hello.x86.lamart");
        assert_code(
            &output(
                signer
                    .compile()
                    .args(["--target", "x86_64-unknown-linux-gnu", "--profile", "edge", "-o"])
                    .arg(&x86)
                    .arg(guest("hello", wasi)),
            ),
            0,
        );
        let out = output(signer.run_with(qemu(&lamina_aarch64())).arg(&x86));
        assert_code(&out, 125);
        assert!(
            texts(&out)
                .1
                .contains("compiled for x86_64-unknown-linux-gnu, but this machine is aarch64-unknown-linux-gnu")
        );
    }
}

#[test]
fn runtime_only_build_runs_artifacts_and_refuses_plain_wasm() {
    let rt = lamina_runtime_only();
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    for wasi in BOTH {
        let artifact = dir.path().join("hello.lamart");
        assert_code(&output(signer.compile().arg("-o").arg(&artifact).arg(guest("hello", wasi))), 0);
        let out = output(signer.run_with(Command::new(&rt)).arg(&artifact));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");

        let out = output(Command::new(&rt).args(["run", "--no-cache"]).arg(guest("hello", wasi)));
        assert_code(&out, 125);
        let stderr = texts(&out).1;
        assert!(stderr.contains("runtime-only build (no compiler)"), "{stderr}");
        assert!(stderr.contains("lamina compile --target x86_64-unknown-linux-gnu"), "{stderr}");
    }
    let out = output(
        Command::new(&rt).args(["compile", "-o"]).arg(dir.path().join("x.lamart")).arg(guest("hello", Wasi::P1)),
    );
    assert_code(&out, 125);
    // Limits still apply without a compiler.
    let spin = dir.path().join("spin.lamart");
    assert_code(&output(signer.compile().arg("-o").arg(&spin).arg(guest("spin", Wasi::P1))), 0);
    let out = output(signer.run_with(Command::new(&rt)).args(["--timeout", "200ms"]).arg(&spin));
    assert_code(&out, 124);
}

/// The runtime-only build runs Pulley bytecode (`lamina compile --target pulley64`) in wasmtime's
/// interpreter: same output, limits still enforced; `lamina run --target pulley64` interprets a
/// `.wasm`; another machine's target is refused with what to do instead.
#[test]
fn pulley_artifacts_run_in_the_interpreter_without_a_compiler() {
    let rt = lamina_runtime_only();
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    for wasi in BOTH {
        let artifact = dir.path().join("hello.pulley.lamart");
        let out = output(
            signer
                .compile()
                .args(["--target", "pulley64", "--profile", "edge", "-o"])
                .arg(&artifact)
                .arg(guest("hello", wasi)),
        );
        assert_code(&out, 0);
        assert!(texts(&out).1.contains("for pulley64"), "{}", texts(&out).1);
        let out = output(signer.run_with(Command::new(&rt)).arg(&artifact));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");
        let out = output(lamina().args(["run", "--no-cache", "--target", "pulley64"]).arg(guest("hello", wasi)));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");
    }
    let spin = dir.path().join("spin.pulley.lamart");
    let compiled =
        output(signer.compile().args(["--target", "pulley64", "-o"]).arg(&spin).arg(guest("spin", Wasi::P1)));
    assert_code(&compiled, 0);
    let out = output(signer.run_with(Command::new(&rt)).args(["--timeout", "200ms"]).arg(&spin));
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
