//! `lamina attest` and `lamina verify` end to end with the sim platform: exit codes, JSON
//! output, policies, nonces, EAR results and usage errors.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::path::{Path, PathBuf};

use common::{assert_code, lamina, output, texts};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write test file");
        p
    }

    /// Attests `module` with the sim platform and the given nonce; returns the envelope path.
    fn attest(&self, module: &[u8], nonce: &str) -> PathBuf {
        let wasm = self.path("app.wasm");
        std::fs::write(&wasm, module).expect("write module");
        let out = self.path("envelope.cbor");
        let result = output(
            lamina()
                .args(["attest", "--platform", "sim", "--nonce", nonce, "--module"])
                .arg(&wasm)
                .arg("-o")
                .arg(&out)
                .arg("--state-dir")
                .arg(self.path("state")),
        );
        assert_code(&result, 0);
        assert!(texts(&result).1.contains("NO hardware protection"), "sim says so loudly");
        out
    }
}

fn verify(envelope: &Path, extra: &[&str]) -> std::process::Output {
    output(lamina().arg("verify").arg(envelope).args(extra))
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", texts(out).0))
}

#[test]
fn sim_envelope_verifies_and_policy_decides() {
    let env = Env::new();
    let envelope = env.attest(b"\0asm\x01\0\0\0", "00112233445566778899");
    let sim = env.write("sim.toml", "allow_sim = true\n");
    let out = verify(
        &envelope,
        &["--nonce", "00112233445566778899", "--format", "json", "--policy", sim.to_str().expect("utf-8")],
    );
    assert_code(&out, 0);
    let v = json(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(v["platform"], "sim");
    assert_eq!(v["report_data"].as_str().map(str::len), Some(128));
    for field in ["checks", "reasons", "measurements", "advisories", "tcb_status"] {
        assert!(v.get(field).is_some(), "{field} is present");
    }

    let strict = env.write("strict.toml", "allow_sim = false\n");
    let out = verify(&envelope, &["--policy", strict.to_str().expect("utf-8"), "--format", "json"]);
    assert_code(&out, 1);
    let v = json(&out);
    assert_eq!(v["verified"], false);
    assert!(v["reasons"].to_string().contains("policy.allow_sim"), "{}", v["reasons"]);

    let module_hash = lamina_hash(b"\0asm\x01\0\0\0");
    let allow = env.write("allow.toml", &format!("allow_sim = true\nmodule_hashes = [\"{module_hash}\"]\n"));
    let out = verify(&envelope, &["--policy", allow.to_str().expect("utf-8")]);
    assert_code(&out, 0);
    assert!(texts(&out).0.starts_with("ACCEPTED"), "{}", texts(&out).0);

    let other = env.write("other.toml", &format!("allow_sim = true\nmodule_hashes = [\"{}\"]\n", lamina_hash(b"x")));
    let out = verify(&envelope, &["--policy", other.to_str().expect("utf-8")]);
    assert_code(&out, 1);
    assert!(texts(&out).0.contains("policy.module_hash"), "{}", texts(&out).0);
}

/// Fail closed: without a policy nothing is accepted. Genuine sim evidence exits 3 ("not
/// accepted, no policy"), not 0; `--danger-accept-any-measurement` accepts hardware evidence of
/// any measurement but still rejects sim.
#[test]
fn sim_evidence_without_a_policy_is_not_accepted() {
    let env = Env::new();
    let envelope = env.attest(b"module", "aaaaaaaaaaaaaaaa");
    let out = verify(&envelope, &["--nonce", "aaaaaaaaaaaaaaaa"]);
    assert_code(&out, 3);
    assert!(texts(&out).0.starts_with("NOT ACCEPTED: no policy given"), "{}", texts(&out).0);
    assert!(!texts(&out).0.contains("GENUINE"), "{}", texts(&out).0);
    let out = verify(&envelope, &["--nonce", "aaaaaaaaaaaaaaaa", "--format", "json"]);
    assert_code(&out, 3);
    assert_eq!(json(&out)["verified"], false);
    assert!(json(&out)["reasons"].to_string().contains("policy.given"), "{}", json(&out)["reasons"]);
    let out = verify(&envelope, &["--nonce", "aaaaaaaaaaaaaaaa", "--danger-accept-any-measurement"]);
    assert_code(&out, 1);
    assert!(texts(&out).0.contains("policy.allow_sim"), "{}", texts(&out).0);
    // A tampered envelope without a policy is rejected (1), not "no policy" (3).
    let mut bytes = std::fs::read(&envelope).expect("envelope");
    let n = bytes.len();
    bytes[n - 90] ^= 0x01;
    std::fs::write(&envelope, &bytes).expect("write");
    assert_code(&verify(&envelope, &["--kind", "envelope"]), 1);
}

#[test]
fn a_replayed_nonce_is_rejected() {
    let env = Env::new();
    let envelope = env.attest(b"module", "aaaaaaaaaaaaaaaa");
    let out = verify(&envelope, &["--nonce", "bbbbbbbbbbbbbbbb"]);
    assert_code(&out, 1);
    assert!(texts(&out).0.contains("claims.nonce"), "{}", texts(&out).0);
}

#[test]
fn tampered_envelope_is_rejected_or_refused() {
    let env = Env::new();
    let envelope = env.attest(b"module", "aaaaaaaaaaaaaaaa");
    let mut bytes = std::fs::read(&envelope).expect("envelope");
    // Flip a byte near the end: inside the evidence's signature or the endorsement.
    let n = bytes.len();
    bytes[n - 90] ^= 0x01;
    std::fs::write(&envelope, &bytes).expect("write");
    let out = verify(&envelope, &["--kind", "envelope"]);
    assert_code(&out, 1);
    assert!(texts(&out).0.contains("FAIL"), "{}", texts(&out).0);
}

#[test]
fn ear_result_is_written_and_signed() {
    let env = Env::new();
    let envelope = env.attest(b"module", "aaaaaaaaaaaaaaaa");
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let key_path = env.write("ear.key", &pem);
    let ear_out = env.path("result.jwt");
    let sim = env.write("sim.toml", "allow_sim = true\n");
    let out = output(
        lamina()
            .arg("verify")
            .arg(&envelope)
            .arg("--policy")
            .arg(&sim)
            .arg("--ear-key")
            .arg(&key_path)
            .arg("--ear-out")
            .arg(&ear_out),
    );
    assert_code(&out, 0);
    let token = std::fs::read_to_string(&ear_out).expect("EAR written");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let bad_key = env.write("bad.key", "not a key");
    let out = output(
        lamina()
            .arg("verify")
            .arg(&envelope)
            .arg("--policy")
            .arg(&sim)
            .arg("--ear-key")
            .arg(&bad_key)
            .arg("--ear-out")
            .arg(&ear_out),
    );
    assert_code(&out, 2);
    assert!(texts(&out).1.contains("openssl genpkey"), "says how to make a key: {}", texts(&out).1);
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    let garbage = env.write("garbage.bin", "hello");
    for (args, needle) in [
        (vec!["verify".to_owned(), "/nonexistent/evidence".to_owned()], "cannot read"),
        (vec!["verify".to_owned(), garbage.display().to_string()], "--kind"),
        (
            vec!["verify".to_owned(), garbage.display().to_string(), "--policy".into(), "/nonexistent.toml".into()],
            "policy",
        ),
        (vec!["verify".to_owned(), garbage.display().to_string(), "--at".into(), "yesterday".into()], "RFC 3339"),
        (vec!["verify".to_owned(), garbage.display().to_string(), "--nonce".into(), "xyz".into()], "hex"),
    ] {
        let out = output(lamina().args(&args));
        assert_code(&out, 2);
        assert!(texts(&out).1.contains(needle), "{args:?}: {}", texts(&out).1);
    }
    let bad_policy = env.write("bad.toml", "[snp]\nmesurement = [\"aa\"]\n");
    let out =
        output(lamina().arg("verify").arg(&garbage).arg("--kind").arg("envelope").arg("--policy").arg(&bad_policy));
    assert_code(&out, 2);
    assert!(texts(&out).1.contains("unknown measurement `mesurement`"), "{}", texts(&out).1);
    let out = output(
        lamina()
            .args(["attest", "--platform", "sim", "--nonce", "00", "-o"])
            .arg(env.path("x"))
            .arg("--state-dir")
            .arg(env.path("s")),
    );
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("8 to 64 bytes"), "{}", texts(&out).1);
}

#[test]
fn detect_lists_platforms_with_reasons() {
    let out = output(lamina().args([
        "attest",
        "--detect",
        "--tsm-root",
        "/nonexistent/tsm",
        "--sgx-root",
        "/nonexistent/att",
    ]));
    assert_code(&out, 0);
    let text = texts(&out).0;
    for needle in ["sim", "tsm", "sgx", "tpm"] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
}

fn lamina_hash(bytes: &[u8]) -> String {
    lamina_types::ModuleHash::of(bytes).to_string()
}

/// The whole TPM path through the CLI against a real TPM 2.0 protocol (swtpm): attest with the
/// module extended into PCR 23, then verify against a policy naming the EK CA, the attestation
/// key and the PCR value; a replayed nonce and another module's PCR value are rejected.
#[test]
fn tpm_attest_and_verify_with_swtpm() {
    use sha2::Digest as _;
    let Some(tpm) = lamina_tee_tpm::swtpm::Swtpm::start_unless_skipped().expect("swtpm starts") else { return };
    let env = Env::new();
    let module = b"\0asm\x01\0\0\0tpm";
    let wasm = env.path("app.wasm");
    std::fs::write(&wasm, module).expect("write module");
    let envelope = env.path("tpm.cbor");
    let out = output(
        lamina()
            .args(["attest", "--platform", "tpm", "--nonce", "0102030405060708", "--tcti", tpm.tcti(), "--module"])
            .arg(&wasm)
            .arg("-o")
            .arg(&envelope)
            .arg("--state-dir")
            .arg(env.path("state")),
    );
    assert_code(&out, 0);
    let stderr = texts(&out).1;
    let ak_name = stderr
        .split_whitespace()
        .skip_while(|w| *w != "name")
        .nth(1)
        .unwrap_or_else(|| panic!("the AK name is printed: {stderr}"))
        .to_owned();
    let mut roots = Vec::new();
    for (i, der) in tpm.ca_certificates().iter().enumerate() {
        let path = env.path(&format!("ca{i}.der"));
        std::fs::write(&path, der).expect("write CA");
        roots.push(format!("\"{}\"", path.display()));
    }
    let module_digest = sha2::Sha256::digest(module);
    let pcr23 = hex::encode(sha2::Sha256::digest([[0u8; 32].as_slice(), module_digest.as_slice()].concat()));
    let policy = |pcr: &str| {
        format!(
            "module_hashes = [\"{}\"]\n[tpm]\npcr23 = [\"{pcr}\"]\n[anchors]\ntpm_roots = [{}]\ntpm_enrolled_aks = [\"{ak_name}\"]\n",
            lamina_hash(module),
            roots.join(", ")
        )
    };
    let good = env.write("tpm.toml", &policy(&pcr23));
    let out = verify(&envelope, &["--policy", good.to_str().expect("utf-8"), "--nonce", "0102030405060708"]);
    assert_code(&out, 0);
    let text = texts(&out).0;
    for check in ["tpm.ak.signature", "tpm.ak.enrolled", "tpm.pcr_digest", "tpm.ek.chain", "claims.binding"] {
        assert!(text.lines().any(|l| l.contains("[ ok ]") && l.contains(check)), "{check} passes:\n{text}");
    }
    let out = verify(&envelope, &["--policy", good.to_str().expect("utf-8"), "--nonce", "0807060504030201"]);
    assert_code(&out, 1);
    assert!(texts(&out).0.contains("claims.nonce"), "{}", texts(&out).0);
    let other = env.write("other.toml", &policy(&"00".repeat(32)));
    let out = verify(&envelope, &["--policy", other.to_str().expect("utf-8")]);
    assert_code(&out, 1);
    assert!(texts(&out).0.contains("policy.tpm.pcr23"), "{}", texts(&out).0);
}

/// Real evidence of each hardware kind through `lamina verify`, told apart from the bytes.
#[test]
fn hardware_vectors_through_the_cli() {
    let v = common::root().join("../shared/testvectors");
    let p = |rel: &str| v.join(rel).display().to_string();
    for (args, code, needle) in [
        (
            vec![
                p("dcap-qvl/sgx_quote"),
                "--collateral".into(),
                p("dcap-qvl/sgx_quote_collateral.json"),
                "--at".into(),
                "2025-06-25T00:00:00Z".into(),
            ],
            0,
            "ConfigurationAndSWHardeningNeeded",
        ),
        (
            vec![
                p("dcap-qvl/sgx_quote"),
                "--collateral".into(),
                p("dcap-qvl/sgx_quote_collateral.json"),
                "--at".into(),
                "2026-11-24T00:00:00Z".into(),
            ],
            1,
            "dcap.collateral",
        ),
        (
            vec![p("virtee-sev/report_milan.hex"), "--cert".into(), p("virtee-sev/vcek_milan.der")],
            0,
            "platform:    snp",
        ),
        (vec![p("trustee/test_data_snp_test-report.bin")], 1, "snp.endorsement"),
        (
            vec![p("veraison-ccatoken/cca-token-02.cbor"), "--cert".into(), p("veraison-ccatoken/ta-02-ok.json")],
            0,
            "platform:    cca",
        ),
        (vec![p("ccc-interop-ra-tls/gramine-cert.pem")], 1, "ratls.claims_binding"),
    ] {
        // Without a policy, genuine evidence is not accepted (3); with the explicit dangerous
        // flag, any measurement is.
        let out = output(lamina().arg("verify").args(&args));
        assert_code(&out, if code == 0 { 3 } else { code });
        assert!(texts(&out).0.contains(needle), "{args:?}: {}", texts(&out).0);
        let out = output(lamina().arg("verify").args(&args).arg("--danger-accept-any-measurement"));
        assert_code(&out, code);
        assert!(texts(&out).0.contains(needle), "{args:?}: {}", texts(&out).0);
    }
    let out = output(
        lamina().arg("verify").arg(p("veraison-ccatoken/cca-token-02.cbor")).arg("--cert").arg(p("swtpm-local/ak.pem")),
    );
    assert_code(&out, 2);
    assert!(texts(&out).1.contains("neither CCA reference values"), "{}", texts(&out).1);
}
