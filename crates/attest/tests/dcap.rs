//! The DCAP verifier against real SGX and TDX quotes and their collateral (see
//! `shared/testvectors/README.md`), their negative twins, and hostile bytes.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::path::PathBuf;
use std::time::SystemTime;

use lamina_attest::{Appraisal, Inputs, TrustAnchors, dcap};
use lamina_types::PlatformKind;
use proptest::prelude::*;

/// The shared test vectors: `/work/shared/testvectors`, found from the crate upwards so that
/// the tests run from the main checkout and from worktrees alike.
fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/testvectors"))
        .find(|dir| dir.is_dir())
        .expect("shared/testvectors above the crate")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join(name)).unwrap_or_else(|e| panic!("test vector {name}: {e}"))
}

fn sgx_quote() -> Vec<u8> {
    read("dcap-qvl/sgx_quote")
}
fn sgx_collateral() -> Vec<u8> {
    read("dcap-qvl/sgx_quote_collateral.json")
}
fn tdx_quote() -> Vec<u8> {
    read("dcap-qvl/tdx_quote")
}
fn tdx_collateral() -> Vec<u8> {
    read("dcap-qvl/tdx_quote_collateral.json")
}
fn outdated_quote() -> Vec<u8> {
    read("dcap-qvl/tdx_quote_outdated")
}
fn outdated_collateral() -> Vec<u8> {
    read("dcap-qvl/tdx_quote_outdated_collateral.json")
}

/// Inside the windows of the sgx and tdx collateral (about 2025-06-19..2025-07-19).
const JUNE_2025: &str = "2025-06-25T00:00:00Z";
/// Inside the window of the outdated TDX quote's collateral (about 2026-02-18..2026-03-20).
const MARCH_2026: &str = "2026-03-01T00:00:00Z";
/// The day these tests were written: every collateral here is out of date.
const TODAY: &str = "2026-11-24T00:00:00Z";

fn at(time: &str) -> SystemTime {
    humantime::parse_rfc3339(time).expect("RFC 3339 time")
}

fn appraise_with(quote: &[u8], collateral: Option<&[u8]>, anchors: &TrustAnchors, time: &str) -> Appraisal {
    dcap::verify(&Inputs { evidence: quote, endorsements: &[], collateral, anchors, at: at(time) })
}

fn appraise(quote: &[u8], collateral: Option<&[u8]>, time: &str) -> Appraisal {
    appraise_with(quote, collateral, &TrustAnchors::default(), time)
}

/// Asserts a rejection whose only failed check is `check`, with a detail containing `needle`.
#[track_caller]
fn assert_rejected_by(a: &Appraisal, check: &str, needle: &str) {
    assert!(!a.verified(), "expected a rejection by {check}, got {:#?}", a.checks);
    let failed: Vec<_> = a.checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(failed.len(), 1, "expected one failed check, got {:#?}", a.checks);
    assert_eq!(failed[0].name, check, "{:#?}", a.checks);
    assert!(
        failed[0].detail.to_lowercase().contains(&needle.to_lowercase()),
        "the detail of {check} should mention {needle:?}: {}",
        failed[0].detail
    );
}

fn passed(a: &Appraisal, check: &str) -> bool {
    a.checks.iter().any(|c| c.ok && c.name == check)
}

/// Offset of the quote's ECDSA signature: after the signed header and body and the auth data length.
fn signature_offset(quote: &[u8]) -> usize {
    let body = match u16::from_le_bytes([quote[0], quote[1]]) {
        3 => 384,
        4 => 584,
        // v5: body type (2) and size (4), then the body.
        _ => 6 + u32::from_le_bytes([quote[50], quote[51], quote[52], quote[53]]) as usize,
    };
    48 + body + 4
}

/// Offset of the QE report inside the auth data.
fn qe_report_offset(quote: &[u8]) -> usize {
    let after_key = signature_offset(quote) + 128;
    // v4 and v5 wrap the QE report in certification data (type 6): type (2) and size (4).
    if u16::from_le_bytes([quote[0], quote[1]]) == 3 { after_key } else { after_key + 6 }
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

/// Changes one base64 character in the middle of the first (leaf) PCK certificate of the
/// quote's PEM chain, so that the certificate's signed part changes.
fn flip_pck_leaf(quote: &[u8]) -> Vec<u8> {
    let marker = b"-----BEGIN CERTIFICATE-----";
    let start = quote.windows(marker.len()).position(|w| w == marker).expect("a PEM chain in the quote");
    let mut pos = start + marker.len() + 400;
    while !quote[pos].is_ascii_alphanumeric() {
        pos += 1;
    }
    let mut out = quote.to_vec();
    out[pos] = if quote[pos] == b'A' { b'B' } else { b'A' };
    out
}

fn measurement<'a>(a: &'a Appraisal, name: &str) -> &'a str {
    a.measurements.get(name).map(String::as_str).unwrap_or_else(|| panic!("measurement {name} in {a:#?}"))
}

// ---- Genuine quotes ----

#[test]
fn sgx_quote_is_genuine_inside_its_collateral_window() {
    let quote = sgx_quote();
    let a = appraise(&quote, Some(&sgx_collateral()), JUNE_2025);
    assert!(a.verified(), "{:#?}", a.reasons());
    assert_eq!(a.platform, Some(PlatformKind::Sgx));
    assert_eq!(a.tcb_status.as_deref(), Some("ConfigurationAndSWHardeningNeeded"));
    assert_eq!(a.advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    for check in [
        "dcap.quote.parse",
        "dcap.quote.header",
        "dcap.debug",
        "dcap.collateral",
        "dcap.pck_chain",
        "dcap.qe_report",
        "dcap.signature",
        "dcap.tcb",
        "dcap.attributes",
    ] {
        assert!(passed(&a, check), "{check} in {:#?}", a.checks);
    }
    // Measurements are read from the report body: header (48), cpusvn, miscselect, reserved,
    // attributes (64), then mr_enclave, reserved (32), mr_signer, reserved (96), prod id, svn.
    assert_eq!(measurement(&a, "mr_enclave"), hex::encode(&quote[112..144]));
    assert_eq!(measurement(&a, "mr_signer"), hex::encode(&quote[176..208]));
    let prod_id = u16::from_le_bytes([quote[304], quote[305]]);
    let svn = u16::from_le_bytes([quote[306], quote[307]]);
    assert_eq!(measurement(&a, "isv_prod_id"), prod_id.to_string());
    assert_eq!(measurement(&a, "isv_svn"), svn.to_string());
    assert_eq!(measurement(&a, "debug"), "false");
    assert_eq!(a.report_data, &quote[368..432]);
    assert_eq!(dcap::quote_report_data(&quote).map(|d| d.to_vec()), Some(a.report_data.clone()));
    let tcb = a.checks.iter().find(|c| c.name == "dcap.tcb").expect("tcb check");
    assert!(tcb.detail.contains("INTEL-SA-00289"), "{}", tcb.detail);
}

#[test]
fn tdx_quote_is_genuine_and_up_to_date_inside_its_collateral_window() {
    let quote = tdx_quote();
    let a = appraise(&quote, Some(&tdx_collateral()), JUNE_2025);
    assert!(a.verified(), "{:#?}", a.reasons());
    assert_eq!(a.platform, Some(PlatformKind::Tdx));
    assert_eq!(a.tcb_status.as_deref(), Some("UpToDate"));
    assert!(a.advisories.is_empty());
    // TD 1.0 report: tee_tcb_svn (16), mr_seam (48), mr_signer_seam (48), seam attributes,
    // td attributes, xfam (8 each), mr_td, mr_config_id, mr_owner, mr_owner_config, rtmr0..3
    // (48 each), report data (64).
    let body = 48;
    assert_eq!(measurement(&a, "mr_seam"), hex::encode(&quote[body + 16..body + 64]));
    assert_eq!(measurement(&a, "mr_td"), hex::encode(&quote[body + 136..body + 184]));
    assert_eq!(measurement(&a, "mr_config_id"), hex::encode(&quote[body + 184..body + 232]));
    assert_eq!(measurement(&a, "mr_owner"), hex::encode(&quote[body + 232..body + 280]));
    for i in 0..4 {
        let start = body + 328 + 48 * i;
        assert_eq!(measurement(&a, &format!("rtmr{i}")), hex::encode(&quote[start..start + 48]));
    }
    assert_eq!(measurement(&a, "debug"), "false");
    assert_eq!(a.report_data, &quote[body + 520..body + 584]);
    assert_eq!(dcap::quote_report_data(&quote).map(|d| d.to_vec()), Some(a.report_data.clone()));
}

#[test]
fn the_intel_root_given_as_an_anchor_is_the_built_in_one() {
    let anchors = TrustAnchors { intel_roots: vec![read("dcap-qvl/TrustedRootCA.der")], ..TrustAnchors::default() };
    for (quote, collateral) in [(sgx_quote(), sgx_collateral()), (tdx_quote(), tdx_collateral())] {
        let a = appraise_with(&quote, Some(&collateral), &anchors, JUNE_2025);
        assert!(a.verified(), "{:#?}", a.reasons());
        let chain = a.checks.iter().find(|c| c.name == "dcap.pck_chain").expect("pck chain check");
        assert!(chain.detail.contains("from the Intel trust anchors"), "{}", chain.detail);
    }
}

#[test]
fn an_unrelated_anchor_does_not_displace_the_built_in_root() {
    // A root that did not sign the collateral's root CA CRL: the built-in Intel root is used.
    let pem = read("swtpm-local/swtpm-localca-rootca-cert.pem");
    let der = x509_parser::pem::parse_x509_pem(&pem).expect("PEM").1.contents;
    let anchors = TrustAnchors { intel_roots: vec![der, b"not a certificate".to_vec()], ..TrustAnchors::default() };
    let a = appraise_with(&sgx_quote(), Some(&sgx_collateral()), &anchors, JUNE_2025);
    assert!(a.verified(), "{:#?}", a.reasons());
    let chain = a.checks.iter().find(|c| c.name == "dcap.pck_chain").expect("pck chain check");
    assert!(chain.detail.contains("built into dcap-qvl"), "{}", chain.detail);
}

// ---- The TCB ----

#[test]
fn outdated_tdx_quote_matches_no_tcb_level() {
    let a = appraise(&outdated_quote(), Some(&outdated_collateral()), MARCH_2026);
    assert_rejected_by(&a, "dcap.tcb", "no TCB level");
    assert_eq!(a.platform, Some(PlatformKind::Tdx));
    // The quote itself is genuine: everything dcap-qvl checks before the TCB passed.
    for check in ["dcap.collateral", "dcap.pck_chain", "dcap.qe_report", "dcap.signature"] {
        assert!(passed(&a, check), "{check} in {:#?}", a.checks);
    }
    assert!(a.measurements.contains_key("mr_td") && a.measurements.contains_key("rtmr3"));
    assert_eq!(a.report_data.len(), 64);
}

// ---- The collateral window ----

#[test]
fn sgx_quote_today_is_rejected_because_its_collateral_expired() {
    let a = appraise(&sgx_quote(), Some(&sgx_collateral()), TODAY);
    assert_rejected_by(&a, "dcap.collateral", "expired");
    let detail = &a.reasons()[0];
    for item in ["tcbInfo", "QE identity", "PCK CRL", "root CA CRL", "2025-07-19"] {
        assert!(detail.contains(item), "{item} in {detail}");
    }
    // The quote was still read.
    assert_eq!(a.platform, Some(PlatformKind::Sgx));
    assert!(a.measurements.contains_key("mr_enclave"));
}

#[test]
fn times_outside_the_window_are_rejected_naming_the_window() {
    let cases = [
        (sgx_quote(), sgx_collateral(), "2025-06-01T00:00:00Z", "not yet valid"),
        (sgx_quote(), sgx_collateral(), "2025-08-01T00:00:00Z", "expired"),
        (tdx_quote(), tdx_collateral(), "2025-06-01T00:00:00Z", "not yet valid"),
        (tdx_quote(), tdx_collateral(), "2025-08-01T00:00:00Z", "expired"),
        (outdated_quote(), outdated_collateral(), "2026-02-01T00:00:00Z", "not yet valid"),
        (outdated_quote(), outdated_collateral(), TODAY, "expired"),
    ];
    for (quote, collateral, time, why) in cases {
        let a = appraise(&quote, Some(&collateral), time);
        assert_rejected_by(&a, "dcap.collateral", why);
        assert!(a.reasons()[0].contains("valid"), "{:?}", a.reasons());
    }
}

// ---- Negative twins: tampered quotes ----

#[test]
fn a_flipped_byte_in_the_signed_body_breaks_the_signature() {
    let sgx = sgx_quote();
    // mr_enclave of the SGX report; mr_td of the TD report.
    let a = appraise(&flip(&sgx, 48 + 64), Some(&sgx_collateral()), JUNE_2025);
    assert_rejected_by(&a, "dcap.signature", "altered or forged");
    assert!(passed(&a, "dcap.pck_chain") && passed(&a, "dcap.qe_report"), "{:#?}", a.checks);
    assert_ne!(measurement(&a, "mr_enclave"), hex::encode(&sgx[112..144]));

    let a = appraise(&flip(&tdx_quote(), 48 + 136), Some(&tdx_collateral()), JUNE_2025);
    assert_rejected_by(&a, "dcap.signature", "altered or forged");
    // The report data is part of the signed body too.
    let a = appraise(&flip(&tdx_quote(), 48 + 520), Some(&tdx_collateral()), JUNE_2025);
    assert_rejected_by(&a, "dcap.signature", "signature");
}

#[test]
fn a_flipped_byte_in_the_signature_is_rejected() {
    for (quote, collateral) in [(sgx_quote(), sgx_collateral()), (tdx_quote(), tdx_collateral())] {
        let a = appraise(&flip(&quote, signature_offset(&quote) + 10), Some(&collateral), JUNE_2025);
        assert_rejected_by(&a, "dcap.signature", "signature");
        // The attestation key follows the signature; the QE report binds it.
        let a = appraise(&flip(&quote, signature_offset(&quote) + 64 + 10), Some(&collateral), JUNE_2025);
        assert_rejected_by(&a, "dcap.qe_report", "attestation key");
    }
}

#[test]
fn a_flipped_byte_in_the_qe_report_is_rejected() {
    for (quote, collateral) in [(sgx_quote(), sgx_collateral()), (tdx_quote(), tdx_collateral())] {
        let a = appraise(&flip(&quote, qe_report_offset(&quote) + 100), Some(&collateral), JUNE_2025);
        assert_rejected_by(&a, "dcap.qe_report", "PCK certificate's key");
    }
}

#[test]
fn a_changed_pck_certificate_is_rejected_by_the_pck_chain() {
    for (quote, collateral) in [(sgx_quote(), sgx_collateral()), (tdx_quote(), tdx_collateral())] {
        let a = appraise(&flip_pck_leaf(&quote), Some(&collateral), JUNE_2025);
        assert_rejected_by(&a, "dcap.pck_chain", "PCK chain");
    }
}

#[test]
fn a_header_that_is_not_intel_s_is_rejected() {
    // The QE vendor ID (header bytes 12..28) is part of the signed header too; the header check
    // rejects it first.
    let a = appraise(&flip(&sgx_quote(), 12), Some(&sgx_collateral()), JUNE_2025);
    assert_rejected_by(&a, "dcap.quote.header", "not Intel's");
    // Attestation key type 3 (ECDSA P-384) is not supported.
    let mut quote = tdx_quote();
    quote[2] = 3;
    let a = appraise(&quote, Some(&tdx_collateral()), JUNE_2025);
    assert_rejected_by(&a, "dcap.quote.header", "ECDSA P-256");
}

#[test]
fn a_debug_enclave_is_rejected_and_measured() {
    // Setting the DEBUG attribute also breaks the signature: both are reported.
    let quote = flip(&sgx_quote(), 48 + 48 + 1);
    let mut changed = quote.clone();
    changed[48 + 48] |= 0x02;
    let a = appraise(&changed, Some(&sgx_collateral()), JUNE_2025);
    assert!(a.failed("dcap.debug"), "{:#?}", a.checks);
    assert!(a.failed("dcap.signature"), "{:#?}", a.checks);
    assert_eq!(measurement(&a, "debug"), "true");
}

// ---- Negative twins: wrong or tampered collateral ----

#[test]
fn the_collateral_of_another_quote_is_rejected() {
    let cases = [
        (sgx_quote(), tdx_collateral(), JUNE_2025, "not the collateral of this SGX quote"),
        (tdx_quote(), sgx_collateral(), JUNE_2025, "not the collateral of this TDX quote"),
        (tdx_quote(), outdated_collateral(), MARCH_2026, "FMSPC"),
        (outdated_quote(), tdx_collateral(), JUNE_2025, "FMSPC"),
    ];
    for (quote, collateral, time, why) in cases {
        let a = appraise(&quote, Some(&collateral), time);
        assert_rejected_by(&a, "dcap.collateral", why);
    }
}

/// The collateral JSON with one field changed.
fn edit_collateral(collateral: &[u8], edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(collateral).expect("collateral JSON");
    edit(value.as_object_mut().expect("an object"));
    serde_json::to_vec(&value).expect("JSON")
}

#[test]
fn tampered_collateral_is_rejected() {
    // An edited tcbInfo (claiming a better TCB status) no longer matches Intel's signature.
    let edited = edit_collateral(&sgx_collateral(), |c| {
        let tcb =
            c["tcb_info"].as_str().expect("tcb_info").replacen("ConfigurationAndSWHardeningNeeded", "UpToDate", 1);
        c.insert("tcb_info".into(), tcb.into());
    });
    let a = appraise(&sgx_quote(), Some(&edited), JUNE_2025);
    assert_rejected_by(&a, "dcap.collateral", "tcbInfo's signature does not verify");
    assert_eq!(a.tcb_status, None);

    let flip_hex = |c: &mut serde_json::Map<String, serde_json::Value>, field: &str| {
        let mut hex = c[field].as_str().expect("hex field").to_owned();
        let last = if hex.ends_with('0') { "1" } else { "0" };
        hex.replace_range(hex.len() - 1.., last);
        c.insert(field.into(), hex.into());
    };
    let edited = edit_collateral(&tdx_collateral(), |c| flip_hex(c, "qe_identity_signature"));
    let a = appraise(&tdx_quote(), Some(&edited), JUNE_2025);
    assert_rejected_by(&a, "dcap.collateral", "QE identity's signature");

    // A root CA CRL that is not Intel's (its signature changed).
    let edited = edit_collateral(&sgx_collateral(), |c| flip_hex(c, "root_ca_crl"));
    let a = appraise(&sgx_quote(), Some(&edited), JUNE_2025);
    assert!(a.failed("dcap.collateral"), "{:#?}", a.checks);

    // A tcbInfo signing chain that lost its leaf.
    let edited = edit_collateral(&tdx_collateral(), |c| {
        let chain = c["tcb_info_issuer_chain"].as_str().expect("chain").to_owned();
        let second = chain.match_indices("-----BEGIN").nth(1).map(|(i, _)| i).expect("two certificates");
        c.insert("tcb_info_issuer_chain".into(), chain[second..].into());
    });
    let a = appraise(&tdx_quote(), Some(&edited), JUNE_2025);
    assert!(a.failed("dcap.collateral"), "{:#?}", a.checks);
}

#[test]
fn malformed_collateral_is_rejected_as_malformed() {
    for bad in [&b""[..], b"{", b"[]", b"{\"tcb_info\": 1}"] {
        let a = appraise(&sgx_quote(), Some(bad), JUNE_2025);
        assert_rejected_by(&a, "dcap.collateral", "malformed");
    }
    let edited = edit_collateral(&sgx_collateral(), |c| {
        c.insert("pck_crl".into(), "00".into());
    });
    let a = appraise(&sgx_quote(), Some(&edited), JUNE_2025);
    assert_rejected_by(&a, "dcap.collateral", "PCK CRL");
}

#[test]
fn without_collateral_the_quote_is_read_but_rejected() {
    let a = appraise(&sgx_quote(), None, JUNE_2025);
    assert_rejected_by(&a, "dcap.collateral", "--collateral FILE");
    assert_eq!(a.platform, Some(PlatformKind::Sgx));
    assert_eq!(a.measurements.len(), 5);
    assert_eq!(a.report_data.len(), 64);
    assert_eq!(a.tcb_status, None);
}

// ---- Other real quotes: no matching collateral ----

#[test]
fn other_real_quotes_parse_and_are_rejected_without_their_collateral() {
    // name, platform, debug (the trustee quotes come from debug enclaves and TDs).
    let cases = [
        ("go-tdx-guest/quote_v5_sample.dat", PlatformKind::Tdx, false),
        ("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", PlatformKind::Tdx, false),
        ("trustee/test_data_tdx_quote_4.dat", PlatformKind::Tdx, true),
        ("trustee/test_data_occlum_quote.dat", PlatformKind::Sgx, true),
    ];
    for (name, platform, debug) in cases {
        let quote = read(name);
        let a = appraise(&quote, None, JUNE_2025);
        assert!(!a.verified(), "{name}");
        assert!(a.failed("dcap.collateral") && a.reasons().iter().any(|r| r.contains("--collateral FILE")), "{name}");
        assert_eq!(a.failed("dcap.debug"), debug, "{name}: {:#?}", a.checks);
        assert_eq!(measurement(&a, "debug"), debug.to_string(), "{name}");
        assert_eq!(a.platform, Some(platform), "{name}");
        let expected = if platform == PlatformKind::Sgx { 5 } else { 9 };
        assert_eq!(a.measurements.len(), expected, "{name}: {:?}", a.measurements);
        assert_eq!(dcap::quote_report_data(&quote).map(|d| d.to_vec()), Some(a.report_data.clone()), "{name}");

        // With collateral of other platforms: rejected as not theirs.
        for (collateral, time) in
            [(sgx_collateral(), JUNE_2025), (tdx_collateral(), JUNE_2025), (outdated_collateral(), MARCH_2026)]
        {
            if name.ends_with("quote_v5_sample.dat") && time == MARCH_2026 {
                continue; // the same platform: see the next test
            }
            let a = appraise(&quote, Some(&collateral), time);
            assert!(!a.verified(), "{name}");
            assert!(a.failed("dcap.collateral"), "{name}: {:#?}", a.checks);
            assert!(a.reasons().iter().any(|r| r.contains("not the collateral of this")), "{name}: {:?}", a.reasons());
        }
    }
}

#[test]
fn go_tdx_guest_v5_sample_is_genuine_with_the_collateral_of_its_platform() {
    // go-tdx-guest's v5 sample comes from a platform of the same FMSPC (90C06F000000) and PCK
    // Platform CA as dcap-qvl's outdated TDX quote, and its TCB is current in that collateral.
    let a = appraise(&read("go-tdx-guest/quote_v5_sample.dat"), Some(&outdated_collateral()), MARCH_2026);
    assert!(a.verified(), "{:#?}", a.reasons());
    assert_eq!(a.platform, Some(PlatformKind::Tdx));
    assert_eq!(a.tcb_status.as_deref(), Some("UpToDate"));
}

/// The quote and claims buffer of an Interoperable RA-TLS certificate: extension
/// 2.23.133.5.4.9 holds CBOR tag 60000 over `[quote, claims]`, both byte strings.
fn ra_tls_quote_and_claims(pem: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).expect("PEM certificate");
    let cert = pem.parse_x509().expect("certificate");
    let ext = cert.extensions().iter().find(|e| e.oid.to_id_string() == "2.23.133.5.4.9").expect("RA-TLS extension");
    let value = ext.value;
    assert_eq!(&value[..4], [0xd9, 0xea, 0x60, 0x82], "tag 60000, array of two");
    let mut rest = &value[4..];
    let mut bstr = || {
        let (len, skip) = match rest[0] {
            n @ 0x40..=0x57 => (usize::from(n - 0x40), 1),
            0x58 => (usize::from(rest[1]), 2),
            0x59 => (usize::from(u16::from_be_bytes([rest[1], rest[2]])), 3),
            other => panic!("unexpected CBOR head {other:#x}"),
        };
        let out = rest[skip..skip + len].to_vec();
        rest = &rest[skip + len..];
        out
    };
    (bstr(), bstr())
}

#[test]
fn ra_tls_certificate_quotes_give_their_report_data() {
    use sha2::{Digest, Sha256};
    for name in ["ccc-interop-ra-tls/gramine-cert.pem", "ccc-interop-ra-tls/intel-sgxsdk-cert.pem"] {
        let (quote, claims) = ra_tls_quote_and_claims(&read(name));
        let report_data = dcap::quote_report_data(&quote).expect("an SGX quote");
        assert_eq!(report_data[..32], Sha256::digest(&claims)[..], "{name}: report data binds the claims");
        let a = appraise(&quote, None, JUNE_2025);
        assert_eq!(a.platform, Some(PlatformKind::Sgx), "{name}");
        assert_eq!(a.report_data, report_data, "{name}");
        assert!(a.measurements.contains_key("mr_enclave"), "{name}");
        // Both come from debug enclaves; without collateral they are not verified either.
        assert_eq!(measurement(&a, "debug"), "true", "{name}");
        assert!(a.failed("dcap.debug") && a.failed("dcap.collateral"), "{name}: {:#?}", a.checks);
    }
}

// ---- Hostile bytes ----

#[test]
fn every_truncation_of_a_real_quote_is_rejected_without_panic() {
    for (quote, collateral) in [(sgx_quote(), sgx_collateral()), (tdx_quote(), tdx_collateral())] {
        let collateral = Some(collateral.as_slice());
        // The quote proper ends with its auth data; the TDX sample has zero padding after it.
        let auth_len = signature_offset(&quote) - 4;
        let end = signature_offset(&quote)
            + u32::from_le_bytes(quote[auth_len..auth_len + 4].try_into().expect("4 bytes")) as usize;
        for len in 0..quote.len() {
            let a = appraise(&quote[..len], collateral, JUNE_2025);
            assert_eq!(a.verified(), len >= end, "the quote cut to {len} bytes (of {end})");
            assert_eq!(dcap::quote_report_data(&quote[..len]).is_some(), len >= end);
        }
    }
}

#[test]
fn arbitrary_evidence_with_collateral_never_panics() {
    let collateral = sgx_collateral();
    proptest!(ProptestConfig::with_cases(256), |(bytes in proptest::collection::vec(any::<u8>(), 0..6000))| {
        let a = appraise(&bytes, Some(&collateral), JUNE_2025);
        prop_assert!(!a.verified());
        let _ = dcap::quote_report_data(&bytes);
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let a = appraise(&bytes, None, JUNE_2025);
        prop_assert!(!a.verified());
        let _ = dcap::quote_report_data(&bytes);
    }

    #[test]
    fn arbitrary_collateral_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let a = appraise(&sgx_quote(), Some(&bytes), JUNE_2025);
        prop_assert!(a.failed("dcap.collateral"));
    }

    #[test]
    fn mutated_quotes_are_never_accepted(pos in 0usize..4600, byte in any::<u8>()) {
        let mut quote = sgx_quote();
        let pos = pos % quote.len();
        prop_assume!(quote[pos] != byte);
        quote[pos] = byte;
        let a = appraise(&quote, Some(&sgx_collateral()), JUNE_2025);
        // Some bytes are outside what anything signs (the sender's copy of the root
        // certificate in the PCK chain, PEM line breaks): those may still verify, but then the
        // measurements are the genuine ones.
        if a.verified() {
            prop_assert_eq!(&a.report_data, &sgx_quote()[368..432]);
            prop_assert_eq!(measurement(&a, "mr_enclave"), hex::encode(&sgx_quote()[112..144]));
        }
    }
}

// ---- A synthetic Intel-like PKI: other roots, revocation, TCB statuses ----

/// Quotes and collateral made here with a test root, in the layout of Intel's, to reach what the
/// real vectors cannot: a root given in the trust anchors, a revoked PCK certificate, TCB
/// statuses other than the vectors', a QE that is not Intel's, a genuine debug enclave.
mod synthetic {
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::DecodePrivateKey;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, CustomExtension, DnType,
        IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams,
        SerialNumber, date_time_ymd,
    };
    use sha2::{Digest, Sha256};

    /// What to vary from a genuine, up-to-date, production quote.
    pub(super) struct Options {
        pub(super) pck_revoked: bool,
        pub(super) tcb_status: &'static str,
        pub(super) qe_identity_mrsigner: [u8; 32],
        pub(super) debug: bool,
    }

    pub(super) const QE_MRSIGNER: [u8; 32] = [0x8c; 32];
    pub(super) const FMSPC: &str = "00906ED50000";
    pub(super) const REPORT_DATA: [u8; 64] = [0x5a; 64];

    impl Default for Options {
        fn default() -> Self {
            Self { pck_revoked: false, tcb_status: "UpToDate", qe_identity_mrsigner: QE_MRSIGNER, debug: false }
        }
    }

    /// A root, its DER, a quote and its collateral JSON.
    pub(super) struct Made {
        pub(super) root: Vec<u8>,
        pub(super) quote: Vec<u8>,
        pub(super) collateral: Vec<u8>,
    }

    fn key() -> KeyPair {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key")
    }

    fn sign(key: &KeyPair, message: &[u8]) -> [u8; 64] {
        let signer = SigningKey::from_pkcs8_der(key.serialized_der()).expect("PKCS#8 P-256 key");
        let signature: Signature = signer.sign(message);
        signature.to_bytes().into()
    }

    fn params(cn: &str, ca: bool, serial: u64) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, "Lamina Test");
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2040, 1, 1);
        p.serial_number = Some(SerialNumber::from(serial));
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        } else {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        p
    }

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    fn oid(arcs: &[u64]) -> Vec<u8> {
        let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
        for &arc in &arcs[2..] {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                groups.push((rest & 0x7f) as u8 | 0x80);
                rest >>= 7;
            }
            body.extend(groups.iter().rev());
        }
        tlv(0x06, &body)
    }

    fn entry(suffix: &[u64], value: Vec<u8>) -> Vec<u8> {
        let mut arcs = vec![1, 2, 840, 113741, 1, 13, 1];
        arcs.extend_from_slice(suffix);
        tlv(0x30, &[oid(&arcs), value].concat())
    }

    /// Intel's SGX extension of a PCK certificate: PPID, TCB (16 components, PCESVN, CPUSVN),
    /// PCE ID, FMSPC, SGX type.
    fn sgx_extension(cpu_svn: [u8; 16], pce_svn: u8, fmspc: &[u8]) -> Vec<u8> {
        let mut tcb: Vec<u8> = (1..=16).flat_map(|i| entry(&[2, i], tlv(0x02, &[cpu_svn[i as usize - 1]]))).collect();
        tcb.extend(entry(&[2, 17], tlv(0x02, &[pce_svn])));
        tcb.extend(entry(&[2, 18], tlv(0x04, &cpu_svn)));
        let fields = [
            entry(&[1], tlv(0x04, &[0x11; 16])),
            entry(&[2], tlv(0x30, &tcb)),
            entry(&[3], tlv(0x04, &[0, 0])),
            entry(&[4], tlv(0x04, fmspc)),
            entry(&[5], tlv(0x0a, &[0])),
        ];
        tlv(0x30, &fields.concat())
    }

    /// An SGX enclave report: attributes, MRENCLAVE, MRSIGNER, product, SVN, report data.
    fn enclave_report(
        attributes: u8,
        mr_enclave: [u8; 32],
        mr_signer: [u8; 32],
        prod: u16,
        svn: u16,
        data: &[u8],
    ) -> Vec<u8> {
        let mut r = vec![0u8; 384];
        r[48] = attributes;
        r[64..96].copy_from_slice(&mr_enclave);
        r[128..160].copy_from_slice(&mr_signer);
        r[256..258].copy_from_slice(&prod.to_le_bytes());
        r[258..260].copy_from_slice(&svn.to_le_bytes());
        r[320..320 + data.len()].copy_from_slice(data);
        r
    }

    pub(super) fn make(o: &Options) -> Made {
        let root = CertifiedIssuer::self_signed(params("Lamina Test SGX Root CA", true, 1), key()).expect("root");
        let pck_ca =
            CertifiedIssuer::signed_by(params("Lamina Test PCK Platform CA", true, 2), key(), &root).expect("PCK CA");
        let tcb_key = key();
        let tcb_signer = params("Lamina Test TCB Signing", false, 3).signed_by(&tcb_key, &root).expect("TCB signer");
        let pck_key = key();
        let mut leaf_params = params("Lamina Test PCK Certificate", false, 0x4242);
        let fmspc = hex::decode(FMSPC).expect("hex");
        leaf_params.custom_extensions =
            vec![CustomExtension::from_oid_content(&[1, 2, 840, 113741, 1, 13, 1], sgx_extension([2; 16], 11, &fmspc))];
        let leaf = leaf_params.signed_by(&pck_key, &pck_ca).expect("PCK certificate");

        let crl = |revoked: Vec<RevokedCertParams>| CertificateRevocationListParams {
            this_update: date_time_ymd(2025, 1, 1),
            next_update: date_time_ymd(2030, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let root_crl = crl(vec![]).signed_by(&root).expect("root CRL");
        let revoked = o.pck_revoked.then(|| RevokedCertParams {
            serial_number: SerialNumber::from(0x4242u64),
            revocation_time: date_time_ymd(2025, 1, 1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
        let pck_crl = crl(revoked.into_iter().collect()).signed_by(&pck_ca).expect("PCK CRL");

        let advisories = if o.tcb_status == "UpToDate" { "[]" } else { r#"["INTEL-SA-99999"]"# };
        let components = vec![r#"{"svn":1}"#; 16].join(",");
        let tcb_info = format!(
            r#"{{"id":"SGX","version":3,"issueDate":"2025-01-01T00:00:00Z","nextUpdate":"2030-01-01T00:00:00Z","fmspc":"{FMSPC}","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17,"tcbLevels":[{{"tcb":{{"sgxtcbcomponents":[{components}],"pcesvn":10}},"tcbDate":"2024-03-13T00:00:00Z","tcbStatus":"{}","advisoryIDs":{advisories}}}]}}"#,
            o.tcb_status
        );
        let qe_identity = format!(
            r#"{{"id":"QE","version":2,"issueDate":"2025-01-01T00:00:00Z","nextUpdate":"2030-01-01T00:00:00Z","tcbEvaluationDataNumber":17,"miscselect":"00000000","miscselectMask":"FFFFFFFF","attributes":"11000000000000000000000000000000","attributesMask":"FBFFFFFFFFFFFFFF0000000000000000","mrsigner":"{}","isvprodid":1,"tcbLevels":[{{"tcb":{{"isvsvn":2}},"tcbDate":"2024-03-13T00:00:00Z","tcbStatus":"UpToDate"}}]}}"#,
            hex::encode_upper(o.qe_identity_mrsigner)
        );

        // The quote: header, report body, then the auth data.
        let attestation_key = key();
        let attestation_public = &attestation_key.public_key_raw()[1..];
        let qe_auth_data = [0x42u8; 32];
        let mut header = vec![3, 0, 2, 0, 0, 0, 0, 0, 2, 0, 11, 0];
        header.extend(dcap_qvl::INTEL_QE_VENDOR_ID);
        header.extend([0u8; 20]);
        let attributes = if o.debug { 0x07 } else { 0x05 };
        let body = enclave_report(attributes, [0xaa; 32], [0xbb; 32], 7, 3, &REPORT_DATA);
        let signed = [header, body].concat();
        let qe_hash = Sha256::digest([attestation_public, &qe_auth_data[..]].concat());
        let qe_report = enclave_report(0x11, [0xcc; 32], QE_MRSIGNER, 1, 2, &qe_hash);
        let chain = format!("{}{}{}", leaf.pem(), pck_ca.pem(), root.pem());
        let mut auth = Vec::new();
        auth.extend(sign(&attestation_key, &signed));
        auth.extend(attestation_public);
        auth.extend(&qe_report);
        auth.extend(sign(&pck_key, &qe_report));
        auth.extend(32u16.to_le_bytes());
        auth.extend(qe_auth_data);
        auth.extend(5u16.to_le_bytes());
        auth.extend((chain.len() as u32).to_le_bytes());
        auth.extend(chain.as_bytes());
        let quote = [signed, (auth.len() as u32).to_le_bytes().to_vec(), auth].concat();

        let signing_chain = format!("{}{}", tcb_signer.pem(), root.pem());
        let collateral = serde_json::json!({
            "pck_crl_issuer_chain": format!("{}{}", pck_ca.pem(), root.pem()),
            "root_ca_crl": hex::encode(root_crl.der()),
            "pck_crl": hex::encode(pck_crl.der()),
            "tcb_info_issuer_chain": signing_chain,
            "tcb_info_signature": hex::encode(sign(&tcb_key, tcb_info.as_bytes())),
            "tcb_info": tcb_info,
            "qe_identity_issuer_chain": signing_chain,
            "qe_identity_signature": hex::encode(sign(&tcb_key, qe_identity.as_bytes())),
            "qe_identity": qe_identity,
        });
        Made { root: root.der().to_vec(), quote, collateral: serde_json::to_vec(&collateral).expect("JSON") }
    }
}

fn trusting(root: &[u8]) -> TrustAnchors {
    TrustAnchors { intel_roots: vec![root.to_vec()], ..TrustAnchors::default() }
}

#[test]
fn a_root_from_the_trust_anchors_verifies_its_quotes() {
    let made = synthetic::make(&synthetic::Options::default());
    let a = appraise_with(&made.quote, Some(&made.collateral), &trusting(&made.root), JUNE_2025);
    assert!(a.verified(), "{:#?}", a.reasons());
    assert_eq!(a.tcb_status.as_deref(), Some("UpToDate"));
    assert_eq!(a.report_data, synthetic::REPORT_DATA);
    assert_eq!(measurement(&a, "mr_enclave"), hex::encode([0xaa; 32]));
    assert_eq!(measurement(&a, "isv_prod_id"), "7");
    let chain = a.checks.iter().find(|c| c.name == "dcap.pck_chain").expect("pck chain check");
    assert!(chain.detail.contains("Lamina Test SGX Root CA"), "{}", chain.detail);

    // Among other anchors (the real Intel root first), the one that signed the CRL is used.
    let mut anchors = trusting(&read("dcap-qvl/TrustedRootCA.der"));
    anchors.intel_roots.push(made.root.clone());
    assert!(appraise_with(&made.quote, Some(&made.collateral), &anchors, JUNE_2025).verified());
    // And the real quotes still verify against the built-in root with that anchor present.
    assert!(appraise_with(&sgx_quote(), Some(&sgx_collateral()), &trusting(&made.root), JUNE_2025).verified());
}

#[test]
fn a_root_that_is_not_trusted_is_rejected() {
    let made = synthetic::make(&synthetic::Options::default());
    let a = appraise(&made.quote, Some(&made.collateral), JUNE_2025);
    assert_rejected_by(&a, "dcap.collateral", "not signed by the trusted Intel root");
    // Trusting another test root does not help.
    let other = synthetic::make(&synthetic::Options::default());
    let a = appraise_with(&made.quote, Some(&made.collateral), &trusting(&other.root), JUNE_2025);
    assert!(a.failed("dcap.collateral"), "{:#?}", a.checks);
}

#[test]
fn a_revoked_pck_certificate_is_rejected_by_the_pck_chain() {
    let made = synthetic::make(&synthetic::Options { pck_revoked: true, ..Default::default() });
    let a = appraise_with(&made.quote, Some(&made.collateral), &trusting(&made.root), JUNE_2025);
    assert_rejected_by(&a, "dcap.pck_chain", "revoked");
    assert!(passed(&a, "dcap.collateral"));
}

#[test]
fn tcb_statuses_are_reported_and_revoked_is_rejected() {
    for status in ["OutOfDate", "SWHardeningNeeded", "ConfigurationNeeded", "OutOfDateConfigurationNeeded"] {
        let made = synthetic::make(&synthetic::Options { tcb_status: status, ..Default::default() });
        let a = appraise_with(&made.quote, Some(&made.collateral), &trusting(&made.root), JUNE_2025);
        assert!(a.verified(), "{status}: {:#?}", a.reasons());
        assert_eq!(a.tcb_status.as_deref(), Some(status));
        assert_eq!(a.advisories, ["INTEL-SA-99999"]);
    }
    let made = synthetic::make(&synthetic::Options { tcb_status: "Revoked", ..Default::default() });
    let a = appraise_with(&made.quote, Some(&made.collateral), &trusting(&made.root), JUNE_2025);
    assert_rejected_by(&a, "dcap.tcb", "revoked");
    assert_eq!(a.tcb_status.as_deref(), Some("Revoked"));
}

#[test]
fn a_quoting_enclave_that_is_not_the_identity_s_is_rejected() {
    let made = synthetic::make(&synthetic::Options { qe_identity_mrsigner: [0x01; 32], ..Default::default() });
    let a = appraise_with(&made.quote, Some(&made.collateral), &trusting(&made.root), JUNE_2025);
    assert_rejected_by(&a, "dcap.qe_report", "MRSIGNER");
    assert!(passed(&a, "dcap.pck_chain"));
}

#[test]
fn a_genuine_debug_enclave_fails_only_the_debug_check() {
    let made = synthetic::make(&synthetic::Options { debug: true, ..Default::default() });
    let a = appraise_with(&made.quote, Some(&made.collateral), &trusting(&made.root), JUNE_2025);
    assert_rejected_by(&a, "dcap.debug", "debug");
    assert_eq!(measurement(&a, "debug"), "true");
    assert!(passed(&a, "dcap.signature") && passed(&a, "dcap.tcb"), "{:#?}", a.checks);
}
