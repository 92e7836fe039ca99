//! CCA attestation tokens come from attesters: the verifier must record failed checks, never
//! panic, whatever the bytes.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use lamina_attest::{Inputs, TrustAnchors, cca};

/// Veraison's test CPAKs of cca-token-02 (P-256, endorsed for its instance, and key-only) and of
/// cca-token-01 (P-384, key-only): key-only anchors apply to every instance, so every token that
/// parses reaches the signature checks. (Public test keys from veraison/rust-ccatoken testdata,
/// Apache-2.0.)
const ANCHORS: &str = r#"[
  {"instance-id": "010202020202020202020202020202020202020202020202020202020202020202",
   "implementation-id": "0000000000000000000000000000000000000000000000000000000000000000",
   "pkey": {"kty": "EC", "crv": "P-256", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}},
  {"kty": "EC", "crv": "P-256", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
   "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
  {"kty": "EC", "crv": "P-384", "x": "IShnxS4rlQiwpCCpBWDzlNLfqiG911FP8akBr-fh94uxHU5m-Kijivp2r2oxxN6M",
   "y": "hM4tr8mWQli1P61xh3T0ViDREbF26DGOEYfbAjWjGNN7pZf-6A4OTHYqEryz6m7U"}
]"#;

/// Reference values for cca-token-01's platform and realm, so the appraisal runs too.
const REFERENCE_VALUES: &str = r#"{
  "platform": [{
    "implementation-id": "7f454c4602010100000000000000000003003e00010000005058000000000000",
    "platform-configuration": "cfcfcfcf",
    "sw-components": [{"measurement-value": "0706050403020100", "signer-id": "0706050403020100"}]
  }],
  "realm": [{
    "initial-measurement": "0000000000000000000000000000000000000000000000000000000000000000",
    "extensible-measurements": [
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0000000000000000000000000000000000000000000000000000000000000000"],
    "personalization-value": "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "rak-hash-algorithm": "sha-256"
  }]
}"#;

fn anchors() -> &'static TrustAnchors {
    static ANCHORS_ONCE: OnceLock<TrustAnchors> = OnceLock::new();
    ANCHORS_ONCE.get_or_init(|| TrustAnchors {
        cca_anchors: vec![ANCHORS.as_bytes().to_vec()],
        cca_reference_values: vec![REFERENCE_VALUES.as_bytes().to_vec()],
        ..TrustAnchors::default()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let appraisal = cca::verify(&Inputs {
        evidence: data,
        endorsements: &[],
        collateral: None,
        anchors: anchors(),
        at: SystemTime::UNIX_EPOCH,
    });
    assert!(!appraisal.checks.is_empty(), "every token gets at least one named check");
    if appraisal.verified() {
        assert_eq!(appraisal.report_data.len(), 64, "a verified token binds 64 bytes of report data");
    }
});
