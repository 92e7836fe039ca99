//! Code provenance, attacked: an artifact is native code and its header is only what the file
//! says, so `lamina run` runs compiled code only when something verified vouches for it (a
//! trusted signature, this runtime's own compile cache key), and code nothing vouches for gets
//! no module identity. Each test is named after the attack it replays.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::path::{Path, PathBuf};

use common::{Signer, Wasi, assert_code, guest, lamina, output, texts};

fn compile(signer: &Signer, wasm: &Path, out: &Path) {
    assert_code(&output(signer.compile().arg("-o").arg(out).arg(wasm)), 0);
}

/// The module hash as the artifact header's JSON spells it.
fn hex_hash(wasm: &Path) -> String {
    lamina_types::ModuleHash::of(&std::fs::read(wasm).expect("guest")).to_hex()
}

#[test]
fn unsigned_artifact_is_refused_and_the_dangerous_opt_in_gets_no_identity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    let artifact = dir.path().join("hello.lamart");
    compile(&signer, &guest("hello", Wasi::P1), &artifact);

    let out = output(lamina().arg("run").arg(&artifact));
    assert_code(&out, 125);
    let stderr = texts(&out).1;
    assert!(stderr.contains("native code") && stderr.contains("--trust-signer"), "{stderr}");
    assert!(stderr.contains("--danger-run-unverified-native-code"), "{stderr}");

    let out = output(lamina().args(["run", "--danger-run-unverified-native-code"]).arg(&artifact));
    assert_code(&out, 0);
    assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n");
    assert!(texts(&out).1.contains("WARNING: running") && texts(&out).1.contains("unverified"), "{}", texts(&out).1);

    // No identity: nothing bound to a module is given to unverified code.
    let state = dir.path().join("state");
    for extra in [
        vec!["--sealed-dir".to_owned(), format!("{}::/data", dir.path().join("vol").display())],
        vec!["--attestation".to_owned()],
        vec!["--kv".to_owned(), dir.path().join("kv").display().to_string()],
    ] {
        let out = output(
            lamina()
                .args(["run", "--danger-run-unverified-native-code", "--platform", "sim", "--state-dir"])
                .arg(&state)
                .args(&extra)
                .arg(&artifact),
        );
        assert_code(&out, 125);
        assert!(texts(&out).1.contains("no module identity"), "{extra:?}: {}", texts(&out).1);
    }
    assert!(!dir.path().join("vol").exists(), "no sealed volume was made");

    // An unverified `--with` peer would share the run's secrets: refused the same way.
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "s3cr3t").expect("write");
    let out = output(
        lamina()
            .args(["run", "--danger-run-unverified-native-code", "--secret"])
            .arg(format!("token={}", secret.display()))
            .arg(guest("hello", Wasi::P1))
            .arg("--with")
            .arg(&artifact),
    );
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("no module identity"), "{}", texts(&out).1);
}

#[test]
fn patched_native_code_with_a_fixed_checksum_is_refused() {
    // The attack: change the compiled code and recompute the header's checksum, so that the
    // file is well formed; only a signature can tell.
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    let artifact = dir.path().join("hello.lamart");
    compile(&signer, &guest("hello", Wasi::P1), &artifact);
    let bytes = std::fs::read(&artifact).expect("artifact");
    let decoded = lamina_runtime::artifact::decode(&bytes).expect("decodes");
    let mut code = decoded.code.to_vec();
    let at = code.len() / 2;
    code[at] ^= 0x90;
    let patched = lamina_runtime::artifact::encode(decoded.header.clone(), &code);
    assert!(lamina_runtime::artifact::decode(&patched).is_ok(), "the patched file is well formed");
    let path = dir.path().join("patched.lamart");
    std::fs::write(&path, &patched).expect("write");
    std::fs::copy(dir.path().join("hello.lamart.sig"), dir.path().join("patched.lamart.sig")).expect("copy sig");
    let out = output(signer.run().arg(&path));
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("signature does not verify"), "{}", texts(&out).1);
}

#[test]
fn relabelled_artifact_header_cannot_claim_another_module() {
    // The attack: module B's artifact with only its header's module hash edited to module A's,
    // to open A's sealed directory or attest as A.
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Signer::new(dir.path());
    let (a, b) = (guest("hello", Wasi::P1), guest("echo", Wasi::P1));
    let artifact = dir.path().join("b.lamart");
    compile(&signer, &b, &artifact);
    let bytes = std::fs::read(&artifact).expect("artifact");
    let decoded = lamina_runtime::artifact::decode(&bytes).expect("decodes");
    let mut header = decoded.header.clone();
    assert_eq!(header.module_hash.to_hex(), hex_hash(&b));
    header.module_hash = lamina_types::ModuleHash::of(&std::fs::read(&a).expect("a"));
    let relabelled = lamina_runtime::artifact::encode(header, decoded.code);
    let path = dir.path().join("relabelled.lamart");
    std::fs::write(&path, &relabelled).expect("write");
    std::fs::copy(dir.path().join("b.lamart.sig"), dir.path().join("relabelled.lamart.sig")).expect("copy sig");
    let vol = dir.path().join("vol");
    let out = output(
        signer
            .run()
            .args(["--platform", "sim", "--state-dir"])
            .arg(dir.path().join("state"))
            .arg("--sealed-dir")
            .arg(format!("{}::/data", vol.display()))
            .arg(&path),
    );
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("signature does not verify"), "{}", texts(&out).1);
    assert!(!vol.exists(), "nothing was opened");
}

struct Cached {
    dir: tempfile::TempDir,
}

impl Cached {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn run(&self, wasm: &Path) -> std::process::Output {
        self.run_with_state("state", wasm)
    }

    /// A run with the state directory `state` (its own cache key), sharing the cache directory.
    fn run_with_state(&self, state: &str, wasm: &Path) -> std::process::Output {
        output(
            lamina()
                .args(["run", "-v", "--cache-dir"])
                .arg(self.cache())
                .arg("--state-dir")
                .arg(self.dir.path().join(state))
                .arg(wasm),
        )
    }

    fn entries(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> =
            std::fs::read_dir(self.cache()).expect("cache").map(|e| e.expect("entry").path()).collect();
        all.sort();
        all
    }
}

#[test]
fn swapped_compile_cache_entry_is_not_run_under_another_modules_name() {
    // The attack: copy module B's cache entry over module A's (same engine configuration), so
    // that `lamina run A.wasm` would run B's code under A's identity.
    let c = Cached::new();
    let (a, b) = (guest("hello", Wasi::P1), guest("echo", Wasi::P1));
    assert_code(&c.run(&a), 0);
    let a_entry = c.entries().pop().expect("A's entry");
    assert_code(&c.run(&b), 0);
    let b_entry = c.entries().into_iter().find(|e| *e != a_entry).expect("B's entry");
    std::fs::copy(&b_entry, &a_entry).expect("swap");
    let out = c.run(&a);
    assert_code(&out, 0);
    assert_eq!(texts(&out).0, "Hello from Lamina on wasm32!\n", "A's code ran, not B's");
    assert!(texts(&out).1.contains("repaired"), "{}", texts(&out).1);
    // And the repaired entry is a hit next time.
    assert!(texts(&c.run(&a)).1.contains("compile cache: hit"));
}

#[test]
fn forged_compile_cache_entry_without_the_runtimes_key_is_not_run() {
    // The attack: an entry forged by someone without the cache key, here a correctly formed
    // artifact for this module put in place of the entry (as an attacker who can write the
    // cache directory, but not read the state directory, would).
    let c = Cached::new();
    let a = guest("hello", Wasi::P1);
    assert_code(&c.run(&a), 0);
    let entry = c.entries().pop().expect("A's entry");
    let bytes = std::fs::read(&entry).expect("entry");
    let mut forged = bytes.clone();
    // The tag sits after the 8-byte entry magic: a guess at it fails.
    forged[8..40].copy_from_slice(&[0x42; 32]);
    std::fs::write(&entry, &forged).expect("forge");
    let out = c.run(&a);
    assert_code(&out, 0);
    assert!(texts(&out).1.contains("repaired"), "{}", texts(&out).1);
    // Another user's key (another state directory) sharing the cache directory does not open
    // this user's entries: it files its own apart (a miss, not a forgery to repair), and the
    // two do not replace each other's by turns.
    let other = || c.run_with_state("other-state", &a);
    let first = other();
    assert_code(&first, 0);
    assert!(texts(&first).1.contains("compile cache: miss"), "{}", texts(&first).1);
    assert!(!texts(&first).1.contains("unusable"), "another key's entry is not a forgery: {}", texts(&first).1);
    assert_eq!(c.entries().len(), 2, "one entry per key");
    assert!(texts(&c.run(&a)).1.contains("compile cache: hit"));
    assert!(texts(&other()).1.contains("compile cache: hit"));
}
