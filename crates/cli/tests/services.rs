//! Guest services end to end through `lamina run`, with the examples a user starts from: the
//! Rust SDK ones (wasm32-wasip2 components) and the C one (a wasm32-wasip1 module on
//! `include/lamina.h`). Secrets, the sealed key-value store, self-attestation (checked by
//! `lamina verify`, and with a verifier's signed result), and publish/subscribe between two
//! instances; and the bad inputs: a secret not given, too much user data, a missing secret file,
//! a store opened by another module.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_code, c_example, example_for, lamina, output, texts};

const TOKEN: &str = "tok-7f3a9c-never-printed";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    fn platform(&self) -> Vec<String> {
        vec!["--platform".into(), "sim".into(), "--state".into(), self.path("state").display().to_string()]
    }

    fn run(&self, wasm: &Path, flags: &[&str], args: &[&str]) -> Output {
        output(lamina().arg("run").args(self.platform()).args(flags).arg(wasm).arg("--").args(args))
    }
}

fn rust_example(name: &str) -> PathBuf {
    example_for("services", name, "wasm32-wasip2")
}

#[test]
fn a_secret_reaches_the_guest_and_never_a_log() {
    let env = Env::new();
    let token = env.write("token", TOKEN.as_bytes());
    let secret = format!("api-token={}", token.display());
    let out = output(
        lamina()
            .args(["-vv", "run", "--secret", &secret])
            .arg(rust_example("secret-consumer"))
            .args(["--", "api-token"])
            .env("RUST_LOG", "trace"),
    );
    assert_code(&out, 0);
    let (stdout, stderr) = texts(&out);
    assert!(stdout.contains(&format!("secret `api-token`: {} bytes", TOKEN.len())), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the value was printed:\n{stdout}\n{stderr}");
}

#[test]
fn a_secret_not_given_is_an_error_the_guest_handles_not_a_trap() {
    let env = Env::new();
    let token = env.write("token", TOKEN.as_bytes());
    let secret = format!("api-token={}", token.display());
    let out = env.run(&rust_example("secret-consumer"), &["--secret", &secret], &["api-token", "db-password"]);
    // The guest itself reports it and exits with failure: no trap (134), no host error.
    assert_code(&out, 1);
    let (stdout, stderr) = texts(&out);
    assert!(stdout.contains("secret `api-token`"), "{stdout}");
    assert!(stderr.contains("no secret `db-password` was given"), "{stderr}");
    assert!(!stderr.contains("trap"), "{stderr}");
}

#[test]
fn a_missing_or_misnamed_secret_file_is_refused_before_the_guest_starts() {
    let env = Env::new();
    let out = env.run(&rust_example("secret-consumer"), &["--secret", "api-token=/nonexistent/token"], &[]);
    assert!(texts(&out).1.contains("cannot read the secret `api-token` from /nonexistent/token"), "{}", texts(&out).1);
    assert_ne!(out.status.code(), Some(0));
    let token = env.write("token", b"x");
    let out = env.run(&rust_example("secret-consumer"), &["--secret", &format!("a/b={}", token.display())], &[]);
    assert!(texts(&out).1.contains("`a/b` is not a secret name"), "{}", texts(&out).1);
}

#[test]
fn self_attestation_verifies_with_the_guests_data_as_nonce() {
    let env = Env::new();
    std::fs::create_dir(env.path("out")).expect("mkdir");
    let dir = format!("{}::/out", env.path("out").display());
    let wasm = rust_example("self-attest");
    let out = env.run(&wasm, &["--attestation", "--dir", &dir], &["session 42", "/out/evidence.cbor"]);
    assert_code(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("platform: sim (hardware-backed: false)"), "{stdout}");
    let module_hash = hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::default(),
        std::fs::read(&wasm).expect("wasm"),
    )));
    assert!(stdout.contains(&module_hash), "the guest knows its module hash: {stdout}");
    let evidence = env.path("out/evidence.cbor");
    let nonce = hex::encode("session 42");
    let policy = env.path("sim.toml");
    std::fs::write(&policy, "allow_sim = true\n").expect("policy");
    let verified = output(lamina().arg("verify").arg(&evidence).args(["--nonce", &nonce]).arg("--policy").arg(&policy));
    assert_code(&verified, 0);
    assert!(texts(&verified).0.contains(&module_hash), "{}", texts(&verified).0);
    let other = output(
        lamina()
            .arg("verify")
            .arg(&evidence)
            .args(["--nonce", &hex::encode("session 43")])
            .arg("--policy")
            .arg(&policy),
    );
    assert_code(&other, 1);
}

/// The trust tiers of the EAR a guest printed, after checking its signature.
fn ear_tiers(stdout: &str, key: &Path) -> Vec<String> {
    use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let line = stdout.lines().find(|l| l.starts_with("attestation result: ")).expect("a result line");
    let token = line.trim_start_matches("attestation result: ");
    let public = p256::SecretKey::from_pkcs8_pem(&std::fs::read_to_string(key).expect("key"))
        .expect("key")
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("public pem");
    let ear =
        lamina_attest::results::read_ear(token, &public, std::time::SystemTime::now()).expect("a valid signed EAR");
    ear.submods.values().map(|a| format!("{:?}", a.status)).collect()
}

#[test]
fn self_attestation_with_a_verifier_returns_a_signed_result() {
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let env = Env::new();
    let wasm = rust_example("self-attest");
    let hash = hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::default(),
        std::fs::read(&wasm).expect("wasm"),
    )));
    let policy =
        env.write("policy.toml", format!("allow_sim = true\nmodule_hashes = [\"sha256:{hash}\"]\n").as_bytes());
    let wrong = env.write(
        "wrong.toml",
        format!("allow_sim = true\nmodule_hashes = [\"sha256:{}\"]\n", "00".repeat(32)).as_bytes(),
    );
    let key = p256::SecretKey::random(&mut rand_core::OsRng).to_pkcs8_pem(LineEnding::LF).expect("pem");
    let key = env.write("ear.key", key.as_bytes());
    let (policy, key) = (policy.display().to_string(), key.display().to_string());
    let out = env.run(&wasm, &["--verifier-policy", &policy, "--verifier-key", &key], &["relying party nonce"]);
    assert_code(&out, 0);
    let tiers = ear_tiers(&texts(&out).0, Path::new(&key));
    assert!(!tiers.is_empty() && tiers.iter().all(|t| !t.contains("Contraindicated")), "{tiers:?}");
    // Another module's policy: the guest still gets a signed result, and it says no.
    let wrong = wrong.display().to_string();
    let out = env.run(&wasm, &["--verifier-policy", &wrong, "--verifier-key", &key], &["relying party nonce"]);
    assert_code(&out, 0);
    let tiers = ear_tiers(&texts(&out).0, Path::new(&key));
    assert!(tiers.iter().any(|t| t.contains("Contraindicated")), "{tiers:?}");
}

#[test]
fn too_much_user_data_is_an_error_the_guest_sees() {
    let env = Env::new();
    let long = "x".repeat(65);
    let out = env.run(&rust_example("self-attest"), &["--attestation"], &[&long]);
    assert_code(&out, 1);
    assert!(texts(&out).1.contains("65 bytes of user data; the most is 64"), "{}", texts(&out).1);
    let out = env.run(&rust_example("self-attest"), &[], &["no --attestation"]);
    assert_code(&out, 1);
    assert!(texts(&out).1.contains("attestation unavailable"), "{}", texts(&out).1);
}

#[test]
fn publisher_and_subscriber_talk_over_the_bus() {
    let env = Env::new();
    let publisher = rust_example("publisher");
    let out =
        env.run(&rust_example("subscriber"), &["--timeout", "60s", "--with", &publisher.display().to_string()], &[]);
    assert_code(&out, 0);
    let (stdout, stderr) = texts(&out);
    for line in ["demo.news.0: sealed storage landed", "demo.news.end: that is all", "subscriber: 4 messages"] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(stderr.contains("publisher: sent 4 messages"), "{stderr}");
}

#[test]
fn a_failing_peer_fails_the_run() {
    let env = Env::new();
    // The publisher alone waits for a subscriber that never comes, and says so.
    let publisher = rust_example("publisher");
    let out = env.run(
        &rust_example("secret-consumer"),
        &["--secret", "api-token=/dev/null", "--with", &publisher.display().to_string()],
        &[],
    );
    assert_code(&out, 1);
    assert!(texts(&out).1.contains("no subscriber said ready"), "{}", texts(&out).1);
}

#[test]
fn the_key_value_store_persists_sealed() {
    let env = Env::new();
    let kv = env.path("kv").display().to_string();
    let wasm = rust_example("visits");
    assert_code(&env.run(&wasm, &["--kv", &kv], &["alice"]), 0);
    let out = env.run(&wasm, &["--kv", &kv], &["bob"]);
    assert_code(&out, 0);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("visit 2 by bob; first visitor: alice"), "{stdout}");
    assert!(stdout.contains("visitors: visitor:alice, visitor:bob"), "{stdout}");
    for file in common::files_under(&env.path("kv")) {
        let bytes = std::fs::read(&file).expect("read");
        for needle in [&b"alice"[..], b"visitor:", hex::encode("visitor:alice").as_bytes()] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{needle:?} in {}", file.display());
        }
    }
    // Another module cannot open the store.
    let out = env.run(&c_example(), &["--kv", &kv], &[]);
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("cannot open the key-value store"), "{}", texts(&out).1);
}

#[test]
fn the_c_example_uses_every_service_through_the_header() {
    let env = Env::new();
    let token = env.write("token", TOKEN.as_bytes());
    let secret = format!("api-token={}", token.display());
    let kv = env.path("kv").display().to_string();
    let flags = ["--secret", &secret, "--kv", &kv, "--attestation"];
    let first = env.run(&c_example(), &flags, &[]);
    assert_code(&first, 0);
    let (stdout, _) = texts(&first);
    for line in [
        &format!("secret api-token: {} bytes", TOKEN.len())[..],
        "secret not-given: not found",
        "run number 1",
        "first-run claimed now: yes",
        "keys: first-run runs",
        "attestation result: not found",
        "message on c.hello: hello, self",
        "then: timeout",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(stdout.contains("-byte envelope (ok)"), "{stdout}");
    let second = env.run(&c_example(), &flags, &[]);
    let (stdout, _) = texts(&second);
    assert!(stdout.contains("run number 2") && stdout.contains("first-run claimed now: no"), "{stdout}");
    // Without the services, the same program runs and is told what is unavailable.
    let bare = output(lamina().arg("run").arg(c_example()));
    assert_code(&bare, 0);
    let (stdout, _) = texts(&bare);
    assert!(stdout.contains("key-value store: unavailable") && stdout.contains("attestation: unavailable"), "{stdout}");
}
