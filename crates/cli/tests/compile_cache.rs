//! `lamina compile`, `lamina inspect` and the compile cache.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use common::{BOTH, Signer, Wasi, assert_code, guest, lamina, output, texts};

#[test]
fn compiles_for_every_target_and_inspect_reads_the_header() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = guest("hello", Wasi::P1);
    let hash = format!("sha256:{}", sha256_hex(&std::fs::read(&wasm).expect("guest")));
    for target in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"] {
        let artifact = dir.path().join(format!("hello.{target}.lamart"));
        assert_code(&output(lamina().args(["compile", "--target", target, "-o"]).arg(&artifact).arg(&wasm)), 0);
        let out = output(lamina().arg("inspect").arg(&artifact));
        assert_code(&out, 0);
        let text = texts(&out).0;
        assert!(text.contains(&format!("target:  {target}")), "{text}");
        assert!(text.contains(&hash), "{text}");
        assert!(text.contains(&format!("engine:  wasmtime {}", lamina_runtime::WASMTIME_VERSION)), "{text}");
        let out = output(lamina().args(["inspect", "--format", "json"]).arg(&artifact));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
        assert_eq!(json["target"], target);
        assert_eq!(json["module_hash"], hash.as_str());
    }
}

#[test]
fn native_artifacts_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    for wasi in BOTH {
        let artifact = dir.path().join("hello.lamart");
        assert_code(&output(signer.compile().arg("-o").arg(&artifact).arg(guest("hello", wasi))), 0);
        let out = output(signer.run().arg("-v").arg(&artifact));
        assert_code(&out, 0);
        assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");
        assert!(texts(&out).1.contains("precompiled artifact, signed by key"), "{}", texts(&out).1);
    }
}

#[test]
fn fuel_needs_a_metered_artifact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    let plain = dir.path().join("plain.lamart");
    let metered = dir.path().join("metered.lamart");
    let spin = guest("spin", Wasi::P1);
    assert_code(&output(signer.compile().arg("-o").arg(&plain).arg(&spin)), 0);
    assert_code(&output(signer.compile().args(["--fuel", "-o"]).arg(&metered).arg(&spin)), 0);
    let out = output(signer.run().args(["--fuel", "1000"]).arg(&plain));
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("lamina compile --fuel"));
    let out = output(signer.run().args(["--fuel", "100000"]).arg(&metered));
    assert_code(&out, 124);
}

#[test]
fn inspect_lists_imports_and_exports() {
    let out = output(lamina().arg("inspect").arg(guest("hello", Wasi::P1)));
    assert_code(&out, 0);
    let text = texts(&out).0;
    assert!(text.contains("kind:    module (WASI preview 1)"), "{text}");
    assert!(text.contains("wasi_snapshot_preview1::fd_write"), "{text}");
    assert!(text.contains("func      _start"), "{text}");
    let out = output(lamina().arg("inspect").arg(guest("hello", Wasi::P2)));
    let text = texts(&out).0;
    assert!(text.contains("kind:    component (WASI preview 2)"), "{text}");
    assert!(text.contains("wasi:cli/stdout@"), "{text}");
    assert!(text.contains("wasi:cli/run@"), "{text}");
}

#[test]
fn second_run_hits_the_cache() {
    for wasi in BOTH {
        let cache = tempfile::tempdir().expect("temp dir");
        let run = || output(lamina().args(["run", "-v", "--cache-dir"]).arg(cache.path()).arg(guest("hello", wasi)));
        let first = run();
        assert_code(&first, 0);
        assert!(texts(&first).1.contains("compile cache: miss"), "{}", texts(&first).1);
        let second = run();
        assert_code(&second, 0);
        assert!(texts(&second).1.contains("compile cache: hit"), "{}", texts(&second).1);
        // A different profile is a different engine configuration: a different entry.
        let tiny = output(
            lamina()
                .args(["run", "-v", "--profile", "tiny", "--cache-dir"])
                .arg(cache.path())
                .arg(guest("hello", wasi)),
        );
        assert!(texts(&tiny).1.contains("compile cache: miss"), "{}", texts(&tiny).1);
        assert_eq!(std::fs::read_dir(cache.path()).expect("cache dir").count(), 2);
    }
}

#[test]
fn cache_dir_from_the_environment() {
    let cache = tempfile::tempdir().expect("temp dir");
    let out = output(lamina().args(["run", "-v"]).env("LAMINA_CACHE_DIR", cache.path()).arg(guest("hello", Wasi::P1)));
    assert_code(&out, 0);
    assert_eq!(std::fs::read_dir(cache.path()).expect("cache dir").count(), 1);
}

#[test]
fn corrupt_cache_entry_is_detected_and_recompiled() {
    for corruption in [Corruption::FlipCodeByte, Corruption::Truncate, Corruption::Garbage] {
        let cache = tempfile::tempdir().expect("temp dir");
        let run =
            || output(lamina().args(["run", "-v", "--cache-dir"]).arg(cache.path()).arg(guest("hello", Wasi::P1)));
        assert_code(&run(), 0);
        let entry =
            std::fs::read_dir(cache.path()).expect("cache dir").next().expect("one entry").expect("entry").path();
        let mut bytes = std::fs::read(&entry).expect("entry bytes");
        match corruption {
            Corruption::FlipCodeByte => {
                let i = bytes.len() - 10;
                bytes[i] ^= 0xff;
            }
            Corruption::Truncate => bytes.truncate(bytes.len() / 3),
            Corruption::Garbage => bytes = b"garbage".to_vec(),
        }
        std::fs::write(&entry, &bytes).expect("corrupt the entry");
        let out = run();
        assert_code(&out, 0);
        let (stdout, stderr) = texts(&out);
        assert_eq!(stdout, "Hello from Lamina on wasm32!\n");
        assert!(stderr.contains("compile cache: repaired"), "{corruption:?}: {stderr}");
        let healed = run();
        assert!(texts(&healed).1.contains("compile cache: hit"), "{corruption:?}: the entry was replaced");
    }
}

#[derive(Debug, Clone, Copy)]
enum Corruption {
    FlipCodeByte,
    Truncate,
    Garbage,
}

fn sha256_hex(bytes: &[u8]) -> String {
    lamina_types::ModuleHash::of(bytes).to_hex()
}
