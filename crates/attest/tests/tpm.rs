//! TPM quote verification: the recorded swtpm vector and its negative twins, and the whole
//! Lamina flow on a live swtpm (credential activation, module PCR, quote, appraisal).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lamina_attest::tpm::{self, Parts};
use lamina_attest::{Appraisal, TrustAnchors};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testvectors/swtpm-local/");

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!("{VECTORS}{name}")).expect("test vector")
}

/// 2027-01-01: after the vector's certificates were issued (2026-11-24), before they expire (9999).
fn vector_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_798_761_600)
}

/// The recorded quote, editable.
struct Vector {
    attest: Vec<u8>,
    signature: Vec<u8>,
    pcrs: Vec<u8>,
    ak: Vec<u8>,
    ek: Vec<u8>,
    anchors: TrustAnchors,
}

impl Vector {
    fn load() -> Self {
        let anchors = TrustAnchors {
            tpm_roots: vec![vector("swtpm-localca-rootca-cert.pem"), vector("swtpm-localca-issuercert.pem")],
            ..TrustAnchors::default()
        };
        Self {
            attest: vector("quote.msg"),
            signature: vector("quote.sig"),
            pcrs: vector("quote.pcrs"),
            ak: vector("ak.pem"),
            ek: vector("ekcert_ecc.der"),
            anchors,
        }
    }

    fn appraise(&self) -> Appraisal {
        tpm::verify_parts(&Parts {
            attest: &self.attest,
            signature: &self.signature,
            pcrs: &self.pcrs,
            ak_public_key: &self.ak,
            ek_certificate: Some(&self.ek),
            chain: &[],
            anchors: &self.anchors,
            at: vector_time(),
        })
    }
}

fn nonce() -> Vec<u8> {
    hex::decode(String::from_utf8(vector("nonce.hex")).expect("text").trim()).expect("hex nonce")
}

/// Asserts that exactly the named check failed.
fn only_failed(appraisal: &Appraisal, name: &str) {
    assert!(appraisal.failed(name), "{name} should fail: {:#?}", appraisal.checks);
    let failed: Vec<&str> = appraisal.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    assert_eq!(failed, vec![name], "{:#?}", appraisal.checks);
}

#[test]
fn recorded_swtpm_quote_verifies() {
    let appraisal = Vector::load().appraise();
    assert!(appraisal.verified(), "{:#?}", appraisal.reasons());
    assert_eq!(appraisal.report_data, nonce());
    for name in ["tpm.evidence.parse", "tpm.attest.magic", "tpm.ak.signature", "tpm.pcr_digest", "tpm.ek.chain"] {
        assert!(appraisal.checks.iter().any(|c| c.name == name && c.ok), "{name}");
    }
    assert_eq!(appraisal.measurements["pcr0"], "00".repeat(32));
    assert!(appraisal.measurements["pcr16"].starts_with("18d4c3f3"));
    assert_eq!(appraisal.measurements.len(), 6);
}

#[test]
fn a_flipped_byte_in_the_quote_breaks_the_signature() {
    let mut v = Vector::load();
    // In the firmware version: still a well-formed quote, no longer the signed one.
    v.attest[0x60] ^= 1;
    only_failed(&v.appraise(), "tpm.ak.signature");
}

#[test]
fn a_flipped_byte_in_the_magic_is_named() {
    let mut v = Vector::load();
    v.attest[0] ^= 0x80;
    let appraisal = v.appraise();
    assert!(appraisal.failed("tpm.attest.magic"));
    assert!(appraisal.failed("tpm.ak.signature"));
}

#[test]
fn a_flipped_byte_in_the_signature_is_rejected() {
    let mut v = Vector::load();
    let last = v.signature.len() - 1;
    v.signature[last] ^= 1;
    only_failed(&v.appraise(), "tpm.ak.signature");
}

#[test]
fn a_flipped_byte_in_the_ek_certificate_is_rejected() {
    let mut v = Vector::load();
    // In the certificate's signature value (the last bytes).
    let last = v.ek.len() - 1;
    v.ek[last] ^= 1;
    only_failed(&v.appraise(), "tpm.ek.chain");
}

#[test]
fn an_ek_certificate_from_an_untrusted_ca_is_rejected() {
    let mut v = Vector::load();
    v.anchors.tpm_roots.clear();
    only_failed(&v.appraise(), "tpm.ek.chain");
}

#[test]
fn a_wrong_nonce_is_visible_in_the_report_data() {
    // The verifier reports the qualifying data; comparing it with the expected nonce is the
    // caller's job. A quote made for another nonce reports that other nonce.
    let appraisal = Vector::load().appraise();
    let mut other = nonce();
    other[0] ^= 1;
    assert_ne!(appraisal.report_data, other);
    // And changing the nonce inside the quote breaks its signature.
    let mut v = Vector::load();
    let at = v.attest.windows(32).position(|w| w == nonce().as_slice()).expect("nonce in quote");
    v.attest[at] ^= 1;
    let tampered = v.appraise();
    only_failed(&tampered, "tpm.ak.signature");
    assert_ne!(tampered.report_data, nonce());
}

#[test]
fn a_changed_pcr_value_breaks_the_digest() {
    let mut v = Vector::load();
    // The first byte of PCR 16's value (the sixth digest entry).
    let at = 132 + 4 + 4 + 5 * 66 + 2;
    v.pcrs[at] ^= 1;
    only_failed(&v.appraise(), "tpm.pcr_digest");
}

#[test]
fn a_wrong_ak_is_rejected() {
    let mut v = Vector::load();
    let other = p256::SecretKey::random(&mut rand_core::OsRng);
    use p256::pkcs8::EncodePublicKey as _;
    v.ak = other.public_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).expect("pem").into_bytes();
    only_failed(&v.appraise(), "tpm.ak.signature");
}

#[test]
fn no_ek_certificate_is_named() {
    let v = Vector::load();
    let appraisal = tpm::verify_parts(&Parts {
        attest: &v.attest,
        signature: &v.signature,
        pcrs: &v.pcrs,
        ak_public_key: &v.ak,
        ek_certificate: None,
        chain: &[],
        anchors: &v.anchors,
        at: vector_time(),
    });
    only_failed(&appraisal, "tpm.ek.chain");
}
