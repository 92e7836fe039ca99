//! Signed artifacts end to end: `lamina compile --sign` writes a detached signature, and
//! `lamina run --trust-signer` runs the artifact only when a trusted key signed it, refusing an
//! untrusted signer, a changed artifact, a missing signature and a plain `.wasm`.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::path::{Path, PathBuf};

use common::{Wasi, assert_code, guest, lamina, output, texts};
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};

struct Keys {
    private: PathBuf,
    public: PathBuf,
}

fn keys(dir: &Path, name: &str) -> Keys {
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&private, key.to_pkcs8_pem(LineEnding::LF).expect("pem").as_bytes()).expect("write");
    std::fs::write(&public, key.public_key().to_public_key_pem(LineEnding::LF).expect("pem")).expect("write");
    Keys { private, public }
}

fn run_trusting(artifact: &Path, signer: &Path) -> std::process::Output {
    output(lamina().arg("run").arg("--no-cache").arg("--trust-signer").arg(signer).arg(artifact))
}

#[test]
fn only_artifacts_signed_by_a_trusted_key_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let control = keys(dir.path(), "control");
    let stranger = keys(dir.path(), "stranger");
    let artifact = dir.path().join("hello.lamart");
    let compiled = output(
        lamina()
            .arg("compile")
            .arg(guest("hello", Wasi::P1))
            .arg("-o")
            .arg(&artifact)
            .arg("--sign")
            .arg(&control.private),
    );
    assert_code(&compiled, 0);
    assert!(texts(&compiled).1.contains("signed it with key"), "{}", texts(&compiled).1);

    let ran = run_trusting(&artifact, &control.public);
    assert_code(&ran, 0);
    assert!(texts(&ran).0.contains("Hello"), "{}", texts(&ran).0);

    let refused = run_trusting(&artifact, &stranger.public);
    assert_code(&refused, 125);
    assert!(texts(&refused).1.contains("not signed by a trusted key"), "{}", texts(&refused).1);

    // A changed artifact: the signature no longer matches its header or its code.
    let mut bytes = std::fs::read(&artifact).expect("artifact");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let changed = dir.path().join("changed.lamart");
    std::fs::write(&changed, &bytes).expect("write");
    std::fs::copy(dir.path().join("hello.lamart.sig"), dir.path().join("changed.lamart.sig")).expect("copy");
    let refused = run_trusting(&changed, &control.public);
    assert_code(&refused, 125);
    assert!(texts(&refused).1.contains("corrupt Lamina artifact"), "{}", texts(&refused).1);

    std::fs::remove_file(dir.path().join("hello.lamart.sig")).expect("remove");
    let unsigned = run_trusting(&artifact, &control.public);
    assert_code(&unsigned, 125);
    assert!(texts(&unsigned).1.contains("cannot read the artifact's signature"), "{}", texts(&unsigned).1);

    let wasm = run_trusting(&guest("hello", Wasi::P1), &control.public);
    assert_code(&wasm, 125);
    assert!(texts(&wasm).1.contains("runs only signed artifacts"), "{}", texts(&wasm).1);
}
