//! The CCA verifier against real (test-key) tokens from Veraison and Trustee, their negative
//! twins, and tokens made here to reach the checks no published token reaches.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::path::PathBuf;
use std::time::SystemTime;

use lamina_attest::{Appraisal, Inputs, TrustAnchors, cca};
use lamina_types::cbor::{self, Value};
use p256::ecdsa::signature::Signer as _;
use proptest::prelude::*;

/// The shared test vectors: `shared/testvectors` beside the repository (whether the repository is
/// `/work/main` or a worktree below `/work/wt/`).
fn vectors() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|p| p.join("shared/testvectors"))
        .find(|p| p.is_dir())
        .expect("the shared test vectors are beside the repository")
}

fn read(name: &str) -> Vec<u8> {
    let path = vectors().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test vector {}: {e}", path.display()))
}

const TOKEN_01: &str = "veraison-ccatoken/cca-token-01.cbor";
const TOKEN_02: &str = "veraison-ccatoken/cca-token-02.cbor";
const TOKEN_FFM: &str = "veraison-ccatoken/cca-token-draft-ffm-00.cbor";
const TRUSTEE_TOKEN: &str = "trustee/test_data_cca_misc_cca-example-token.cbor";
const TA_02_OK: &str = "veraison-ccatoken/ta-02-ok.json";
const TA_TFA: &str = "veraison-ccatoken/ta-tfa.json";
const TA_OTHER: &str = "veraison-ccatoken/ta.json";
const CPAK_P384: &str = "veraison-ccatoken/cpak.json";
const TRUSTEE_CPAK: &str = "trustee/test_data_cca_misc_cpak-pub.json";
const RV: &str = "veraison-ccatoken/rv.json";

fn anchors(cpaks: &[Vec<u8>], reference_values: &[Vec<u8>]) -> TrustAnchors {
    TrustAnchors { cca_anchors: cpaks.to_vec(), cca_reference_values: reference_values.to_vec(), ..Default::default() }
}

fn verify(token: &[u8], anchors: &TrustAnchors) -> Appraisal {
    cca::verify(&Inputs { evidence: token, endorsements: &[], collateral: None, anchors, at: SystemTime::now() })
}

fn detail<'a>(a: &'a Appraisal, name: &str) -> &'a str {
    a.checks.iter().find(|c| c.name == name).map(|c| c.detail.as_str()).unwrap_or_else(|| panic!("no {name} check"))
}

fn passed(a: &Appraisal, name: &str) -> bool {
    a.checks.iter().any(|c| c.ok && c.name == name)
}

/// Asserts that exactly this check (and no other) failed.
fn only_failure(a: &Appraisal, name: &str) {
    let failed: Vec<&str> = a.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    assert_eq!(failed, vec![name], "{:#?}", a.checks);
}

// ---------------------------------------------------------------------------------------------
// Published tokens.

#[test]
fn token_02_verifies_against_its_trust_anchor() {
    let a = verify(&read(TOKEN_02), &anchors(&[read(TA_02_OK)], &[]));
    assert!(a.verified(), "{:#?}", a.reasons());
    let names: Vec<&str> = a.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cca.token.profile",
            "cca.token.parse",
            "cca.trust_anchor",
            "cca.platform.signature",
            "cca.realm.signature",
            "cca.realm.binding"
        ]
    );
    assert_eq!(a.platform, Some(lamina_types::PlatformKind::Cca));
    assert_eq!(a.report_data, b"AB".repeat(32), "the realm challenge is the report data");
    let m = &a.measurements;
    assert_eq!(m["realm_initial_measurement"], "43".repeat(64));
    for i in 0..4 {
        assert_eq!(m[&format!("rem{i}")], "43".repeat(64));
    }
    assert_eq!(m["realm_personalization_value"], "4144".repeat(32));
    assert_eq!(m["platform_implementation_id"], "00".repeat(32));
    assert_eq!(m["platform_instance_id"], format!("01{}", "02".repeat(32)));
    assert_eq!(m["platform_lifecycle"], "12288");
    assert_eq!(m["platform_lifecycle_state"], "secured");
    assert_eq!(m["debug"], "false");
    assert_eq!(m["platform_config"], "010203");
    assert_eq!(m["platform_sw.0"], "03".repeat(32), "a component without a type is named by its index");
    assert!(detail(&a, "cca.platform.signature").contains("ES256"));
}

#[test]
fn token_01_appraises_against_the_reference_values() {
    let a = verify(&read(TOKEN_01), &anchors(&[read(TA_TFA)], &[read(RV)]));
    assert!(a.verified(), "{:#?}", a.reasons());
    let appraisal = detail(&a, "cca.appraisal");
    assert!(appraisal.contains("hardware=genuine"), "{appraisal}");
    assert!(appraisal.contains("realm trust vector {executables=approved_rt}"), "{appraisal}");
    assert_eq!(a.measurements["platform_sw.BL"], "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918");
    assert_eq!(a.report_data, vec![0xab; 64]);
}

#[test]
fn appraisal_stands_apart_from_the_trust_anchor() {
    // No anchor for token 01's platform: the signature chain fails, the appraisal still runs.
    let a = verify(&read(TOKEN_01), &anchors(&[], &[read(RV)]));
    only_failure(&a, "cca.trust_anchor");
    assert!(passed(&a, "cca.appraisal"));
    assert!(detail(&a, "cca.trust_anchor").contains("no CCA trust anchor (CPAK) for platform instance 0107060504"));
}

#[test]
fn a_platform_without_reference_values_fails_the_appraisal() {
    let a = verify(&read(TOKEN_02), &anchors(&[read(TA_02_OK)], &[read(RV)]));
    only_failure(&a, "cca.appraisal");
    let d = detail(&a, "cca.appraisal");
    assert!(d.contains(&format!("no reference value for platform implementation {}", "00".repeat(32))), "{d}");
}

#[test]
fn the_draft_ffm_profile_is_rejected_as_unsupported() {
    let a = verify(&read(TOKEN_FFM), &anchors(&[read(TA_TFA)], &[read(RV)]));
    only_failure(&a, "cca.token.profile");
    let d = detail(&a, "cca.token.profile");
    assert!(d.contains("`tag:arm.com,2023:cca_platform#1.0.0` is not supported"), "{d}");
    assert!(a.measurements.is_empty());
}

#[test]
fn trustee_example_token_verifies_with_its_cpak() {
    // Its platform is token 01's (same instance, implementation, CPAK and RAK) with other
    // firmware: genuine under the CPAK, key-only or endorsed for the instance.
    for cpak in [read(TRUSTEE_CPAK), read(TA_TFA)] {
        let a = verify(&read(TRUSTEE_TOKEN), &anchors(&[cpak], &[]));
        assert!(a.verified(), "{:#?}", a.reasons());
        assert_eq!(
            hex::encode(&a.report_data),
            "57e979ae2618de0c1ab73144c440d741cf9236dc9d52ed190053382a4d190252\
             f9f0370403c35dcb155fb4362d73c66d5b0494bf939315d3dc52b8cdc8b85a96"
        );
        assert_eq!(a.measurements["realm_hash_algorithm"], "sha-512");
        assert_eq!(a.measurements["platform_sw.RMM"].len(), 64);
    }
    let key_only = verify(&read(TRUSTEE_TOKEN), &anchors(&[read(TRUSTEE_CPAK)], &[]));
    assert!(detail(&key_only, "cca.trust_anchor").contains("key-only"));
    // Its firmware is not the one rv.json lists for this implementation.
    let a = verify(&read(TRUSTEE_TOKEN), &anchors(&[read(TRUSTEE_CPAK)], &[read(RV)]));
    only_failure(&a, "cca.appraisal");
    assert!(detail(&a, "cca.appraisal").contains("software components match no reference value"));
}

// ---------------------------------------------------------------------------------------------
// Negative twins of token 02.

/// The parts of a token: (platform COSE bytes, realm COSE bytes).
fn tokens_of(token: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let Value::Tag(399, map) = cbor::decode_one(token, 1 << 16).expect("cbor") else { panic!("not a CCA token") };
    let Value::Map(entries) = *map else { panic!("not a map") };
    let get = |label: u64| {
        entries
            .iter()
            .find(|(k, _)| *k == Value::Integer(label.into()))
            .and_then(|(_, v)| v.as_bytes().cloned())
            .expect("entry")
    };
    (get(44234), get(44241))
}

/// A COSE_Sign1's items: (protected, payload, signature).
fn sign1_of(cose: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let Value::Tag(18, array) = cbor::decode_one(cose, 1 << 16).expect("cbor") else { panic!("not COSE_Sign1") };
    let Value::Array(items) = *array else { panic!("not an array") };
    let bytes = |i: usize| items[i].as_bytes().cloned().expect("bstr");
    (bytes(0), bytes(2), bytes(3))
}

fn position(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).expect("found")
}

/// Token 02 with the byte at `offset` inside `part` changed.
fn flipped(part: impl Fn(&[u8]) -> Vec<u8>, offset: usize) -> Vec<u8> {
    let mut token = read(TOKEN_02);
    let start = position(&token, &part(&token));
    token[start + offset] ^= 0x01;
    token
}

#[test]
fn a_byte_flipped_in_the_platform_claims_breaks_the_platform_signature() {
    // A byte of the software component's measurement (0x03 repeated).
    let token =
        flipped(|t| sign1_of(&tokens_of(t).0).1, position(&sign1_of(&tokens_of(&read(TOKEN_02)).0).1, &[3; 32]));
    let a = verify(&token, &anchors(&[read(TA_02_OK)], &[]));
    only_failure(&a, "cca.platform.signature");
    assert!(detail(&a, "cca.platform.signature").contains("ES256 signature does not verify"));
    assert_eq!(a.measurements["platform_sw.0"], format!("02{}", "03".repeat(31)), "the altered claim is what was read");
}

#[test]
fn a_byte_flipped_in_the_realm_claims_breaks_the_realm_signature() {
    let payload = sign1_of(&tokens_of(&read(TOKEN_02)).1).1;
    let token = flipped(|t| sign1_of(&tokens_of(t).1).1, position(&payload, &[0x43; 64]) + 5);
    let a = verify(&token, &anchors(&[read(TA_02_OK)], &[]));
    only_failure(&a, "cca.realm.signature");
    assert!(detail(&a, "cca.realm.signature").contains("the realm token was altered"));
}

#[test]
fn a_byte_flipped_in_either_signature_is_named() {
    let token = flipped(|t| sign1_of(&tokens_of(t).0).2, 10);
    only_failure(&verify(&token, &anchors(&[read(TA_02_OK)], &[])), "cca.platform.signature");
    let token = flipped(|t| sign1_of(&tokens_of(t).1).2, 70);
    only_failure(&verify(&token, &anchors(&[read(TA_02_OK)], &[])), "cca.realm.signature");
}

#[test]
fn a_wrong_trust_anchor_is_named() {
    // An anchor for another instance: none for this one.
    let a = verify(&read(TOKEN_02), &anchors(&[read(TA_OTHER)], &[]));
    only_failure(&a, "cca.trust_anchor");
    assert!(detail(&a, "cca.trust_anchor").contains(&format!("instance 01{}", "02".repeat(32))));
    // No anchors at all.
    only_failure(&verify(&read(TOKEN_02), &TrustAnchors::default()), "cca.trust_anchor");
    // A key-only anchor of the wrong curve.
    let a = verify(&read(TOKEN_02), &anchors(&[read(CPAK_P384)], &[]));
    only_failure(&a, "cca.platform.signature");
    assert!(detail(&a, "cca.platform.signature").contains("signed with ES256 but the CPAK is a P-384 key"));
    // A key-only anchor of the right curve that is another key.
    let other_key = serde_json::from_slice::<serde_json::Value>(&read(TA_OTHER)).expect("json")[0]["pkey"].to_string();
    let a = verify(&read(TOKEN_02), &anchors(&[other_key.into_bytes()], &[]));
    only_failure(&a, "cca.platform.signature");
    // The right key, endorsed for another implementation of this instance.
    let moved = String::from_utf8(read(TA_02_OK)).expect("utf-8").replace(&"00".repeat(32), &"11".repeat(32));
    let a = verify(&read(TOKEN_02), &anchors(&[moved.into_bytes()], &[]));
    only_failure(&a, "cca.trust_anchor");
    assert!(detail(&a, "cca.trust_anchor").contains(&format!("endorsed for implementation {}", "11".repeat(32))));
}

#[test]
fn unusable_anchor_files_are_reported_not_fatal() {
    let a = verify(&read(TOKEN_02), &anchors(&[b"{not json".to_vec(), read(TA_02_OK)], &[]));
    assert!(a.verified(), "{:#?}", a.reasons());
    assert!(detail(&a, "cca.trust_anchor").contains("1 anchor files could not be used"));
    let a = verify(&read(TOKEN_02), &anchors(&[b"{not json".to_vec()], &[]));
    only_failure(&a, "cca.trust_anchor");
    let a = verify(&read(TOKEN_01), &anchors(&[read(TA_TFA)], &[b"[]".to_vec()]));
    only_failure(&a, "cca.appraisal");
    assert!(detail(&a, "cca.appraisal").contains("reference value file 0 cannot be used"));
}

#[test]
fn config_files_validate_with_reasons() {
    assert_eq!(cca::validate_anchors(&read(TA_02_OK)), Ok(1));
    assert_eq!(cca::validate_anchors(&read(TRUSTEE_CPAK)), Ok(1));
    assert!(cca::validate_anchors(&read(RV)).is_err());
    assert_eq!(cca::validate_reference_values(&read(RV)), Ok(3));
    let e = cca::validate_reference_values(b"{}").expect_err("empty");
    assert!(e.to_string().contains("holds no reference values"), "{e}");
    assert!(cca::validate_reference_values(&read(TA_02_OK)).is_err());
}

#[test]
fn malformed_tokens_fail_parse_with_reasons() {
    let token = read(TOKEN_02);
    for (bytes, expect) in [
        (&b""[..], "not one CBOR item"),
        (&token[..token.len() - 1], "not one CBOR item"),
        (&[0xa0][..], "not a CCA token collection"),
        (&[0xd9, 0x01, 0x8f, 0xa0][..], "no platform token"),
    ] {
        let a = verify(bytes, &anchors(&[read(TA_02_OK)], &[]));
        only_failure(&a, "cca.token.parse");
        assert!(detail(&a, "cca.token.parse").contains(expect), "{expect}: {:#?}", a.checks);
    }
    let a = verify(&vec![0; cca::MAX_TOKEN_LEN + 1], &TrustAnchors::default());
    assert!(detail(&a, "cca.token.parse").contains("larger than"));
}

// ---------------------------------------------------------------------------------------------
// Tokens made here, signed with keys the test holds.

/// COSE_Sign1 over `payload`, signed with `alg`.
fn sign1(alg: i64, payload: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let protected = cbor::encode(&Value::Map(vec![(Value::Integer(1.into()), Value::Integer(alg.into()))]));
    let to_be_signed = cbor::encode(&Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.clone()),
        Value::Bytes(vec![]),
        Value::Bytes(payload.to_vec()),
    ]));
    cbor::encode(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(vec![]),
            Value::Bytes(payload.to_vec()),
            Value::Bytes(sign(&to_be_signed)),
        ])),
    ))
}

fn collection(platform: Vec<u8>, realm: Vec<u8>) -> Vec<u8> {
    cbor::encode(&Value::Tag(
        399,
        Box::new(Value::Map(vec![
            (Value::Integer(44234.into()), Value::Bytes(platform)),
            (Value::Integer(44241.into()), Value::Bytes(realm)),
        ])),
    ))
}

/// A claims map with one claim replaced.
fn with_claim(payload: &[u8], label: u64, value: Value) -> Vec<u8> {
    let Value::Map(mut claims) = cbor::decode_one(payload, 1 << 16).expect("claims") else { panic!("not a map") };
    let slot = claims.iter_mut().find(|(k, _)| *k == Value::Integer(label.into())).expect("claim present");
    slot.1 = value;
    cbor::encode(&Value::Map(claims))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

struct Made {
    cpak: p256::ecdsa::SigningKey,
    rak: p384::ecdsa::SigningKey,
}

impl Made {
    fn new(rak_scalar: u8) -> Self {
        Self {
            cpak: p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).expect("scalar"),
            rak: p384::ecdsa::SigningKey::from_slice(&[rak_scalar; 48]).expect("scalar"),
        }
    }

    fn rak_point(&self) -> Vec<u8> {
        self.rak.verifying_key().to_encoded_point(false).as_bytes().to_vec()
    }

    /// The CPAK as a key-only anchor.
    fn anchor(&self) -> Vec<u8> {
        let point = self.cpak.verifying_key().to_encoded_point(false);
        serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": base64url(point.x().expect("x")), "y": base64url(point.y().expect("y")),
        })
        .to_string()
        .into_bytes()
    }

    /// Token 02's claims with this RAK (bound into the platform challenge with `challenge_of`),
    /// the realm signed with `realm_alg`.
    fn token(&self, challenge_of: impl Fn(&[u8]) -> Vec<u8>, realm_alg: i64) -> Vec<u8> {
        use sha2::Digest as _;
        let (platform, realm) = tokens_of(&read(TOKEN_02));
        let rak = self.rak_point();
        let realm_claims = with_claim(&sign1_of(&realm).1, 44237, Value::Bytes(rak.clone()));
        // Token 02 hashes the RAK with sha-512.
        assert_eq!(sha2::Sha512::digest(&rak).len(), 64);
        let platform_claims = with_claim(&sign1_of(&platform).1, 10, Value::Bytes(challenge_of(&rak)));
        let platform = sign1(-7, &platform_claims, |m| {
            let s: p256::ecdsa::Signature = self.cpak.sign(m);
            s.to_bytes().to_vec()
        });
        let realm = sign1(realm_alg, &realm_claims, |m| {
            let s: p384::ecdsa::Signature = self.rak.sign(m);
            s.to_bytes().to_vec()
        });
        collection(platform, realm)
    }
}

fn sha512(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha512::digest(bytes).to_vec()
}

#[test]
fn a_made_token_verifies_under_a_key_only_anchor() {
    let made = Made::new(9);
    let a = verify(&made.token(sha512, -35), &anchors(&[made.anchor()], &[]));
    assert!(a.verified(), "{:#?}", a.reasons());
    assert_eq!(a.measurements["realm_public_key"], hex::encode(made.rak_point()));
}

#[test]
fn a_realm_token_of_another_platform_token_fails_the_binding() {
    let made = Made::new(9);
    let a = verify(&made.token(|_| vec![0x5a; 64], -35), &anchors(&[made.anchor()], &[]));
    only_failure(&a, "cca.realm.binding");
    assert!(detail(&a, "cca.realm.binding").contains("does not belong to this platform token"));
}

#[test]
fn a_realm_token_signed_with_the_wrong_algorithm_is_rejected() {
    let made = Made::new(9);
    let token = made.token(sha512, -7);
    // An ES256 tag on a 96-byte signature: the envelope itself is refused.
    let a = verify(&token, &anchors(&[made.anchor()], &[]));
    only_failure(&a, "cca.token.parse");
    assert!(detail(&a, "cca.token.parse").contains("realm token: the ES256 signature is 96 bytes, not 64"));
}

#[test]
fn realm_key_with_a_leading_zero_coordinate_verifies() {
    // ccatoken 0.1 rebuilds the RAK from unpadded coordinates, so such genuine keys failed there.
    let scalar = (1..=255u8)
        .find(|s| {
            let made = Made::new(*s);
            let point = made.rak_point();
            point[1] == 0 || point[49] == 0
        })
        .expect("a key with a zero leading coordinate byte among 255 (each has a 1/128 chance)");
    let made = Made::new(scalar);
    let a = verify(&made.token(sha512, -35), &anchors(&[made.anchor()], &[]));
    assert!(a.verified(), "{:#?}", a.reasons());
}

#[test]
fn hostile_cose_shapes_that_panicked_ccatoken_are_refused() {
    let (platform, realm) = tokens_of(&read(TOKEN_02));
    let (_, payload, signature) = sign1_of(&platform);
    // A truncated platform signature (cose-rust slices it by the key's size).
    let short = cbor::encode(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(cbor::encode(&Value::Map(vec![(Value::Integer(1.into()), Value::Integer((-7).into()))]))),
            Value::Map(vec![]),
            Value::Bytes(payload.clone()),
            Value::Bytes(signature[..8].to_vec()),
        ])),
    ));
    // No alg header (ccatoken unwraps it once an anchor matches the instance).
    let no_alg = cbor::encode(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(vec![0xa0]),
            Value::Map(vec![]),
            Value::Bytes(payload),
            Value::Bytes(signature),
        ])),
    ));
    for platform in [short, no_alg] {
        let a = verify(&collection(platform, realm.clone()), &anchors(&[read(TA_02_OK)], &[]));
        only_failure(&a, "cca.token.parse");
    }
}

// ---------------------------------------------------------------------------------------------
// No panics.

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let a = verify(&bytes, &anchors(&[read(TA_02_OK)], &[read(RV)]));
        prop_assert!(!a.verified());
    }

    #[test]
    fn altered_real_tokens_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut token = read([TOKEN_01, TOKEN_02, TRUSTEE_TOKEN][which]);
        for (at, byte) in edits {
            let i = at.index(token.len());
            token[i] = byte;
        }
        if truncate {
            token.truncate(cut.index(token.len()));
        }
        let _ = verify(&token, &anchors(&[read(TA_02_OK), read(TA_TFA), read(TRUSTEE_CPAK)], &[read(RV)]));
    }
}
