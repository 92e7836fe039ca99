//! SEV-SNP verifier against real reports (Milan, from virtee/sev and trustee) and their negative
//! twins, plus a synthetic chain built here (our own test ARK, ASK and VCEK, given as trust
//! anchors) for what no real vector shows: a VCEK certifying a lower TCB, a VLEK, a masked chip
//! ID, an unsigned report, the debug bit, the Turin TCB layout.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::time::SystemTime;

use lamina_attest::snp::{self, CertKind};
use lamina_attest::{Appraisal, Inputs, TrustAnchors};
use proptest::prelude::*;

const TV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testvectors/");

fn tv(path: &str) -> Vec<u8> {
    std::fs::read(format!("{TV}{path}")).unwrap_or_else(|e| panic!("test vector {path}: {e}"))
}

/// The certificates of a PEM file, as DER.
fn pem_ders(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem).map(|p| p.expect("PEM block").contents).collect()
}

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).expect("time")
}

/// A time inside every real certificate's window.
fn now() -> SystemTime {
    at("2025-06-01T00:00:00Z")
}

fn milan_report() -> Vec<u8> {
    hex::decode(String::from_utf8(tv("virtee-sev/report_milan.hex")).expect("text").trim()).expect("hex")
}

fn milan_vcek() -> Vec<u8> {
    tv("virtee-sev/vcek_milan.der")
}

fn trustee_report() -> Vec<u8> {
    tv("trustee/test_data_snp_test-report.bin")
}

fn trustee_vcek() -> Vec<u8> {
    tv("trustee/test_data_snp_test-vcek.der")
}

fn verify_with(evidence: &[u8], endorsements: &[Vec<u8>], anchors: &TrustAnchors, time: SystemTime) -> Appraisal {
    snp::verify(&Inputs { evidence, endorsements, collateral: None, anchors, at: time })
}

fn verify(evidence: &[u8], endorsements: &[Vec<u8>]) -> Appraisal {
    verify_with(evidence, endorsements, &TrustAnchors::default(), now())
}

fn names(a: &Appraisal) -> Vec<&str> {
    a.checks.iter().map(|c| c.name.as_str()).collect()
}

fn failed(a: &Appraisal) -> Vec<&str> {
    a.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect()
}

fn detail<'a>(a: &'a Appraisal, name: &str) -> &'a str {
    a.checks.iter().find(|c| c.name == name).map(|c| c.detail.as_str()).unwrap_or_else(|| panic!("no check {name}"))
}

fn assert_verified(a: &Appraisal) {
    assert!(a.verified(), "expected verified, failures: {:#?}", a.reasons());
}

/// Asserts that exactly these checks failed.
fn assert_failed(a: &Appraisal, expected: &[&str]) {
    assert_eq!(failed(a), expected, "checks: {:#?}", a.checks);
}

const ALL_CHECKS: [&str; 8] = [
    "snp.report.parse",
    "snp.endorsement",
    "snp.chain.ark",
    "snp.chain.ask",
    "snp.chain.vcek",
    "snp.signature",
    "snp.chip_id",
    "snp.tcb",
];

// ---------------------------------------------------------------- real reports, positive

#[test]
fn milan_report_verifies_with_the_built_in_chain() {
    let a = verify(&tv("virtee-sev/report_milan.hex"), &[milan_vcek()]);
    assert_verified(&a);
    assert_eq!(names(&a), ALL_CHECKS);
    assert_eq!(a.platform, Some(lamina_types::PlatformKind::Snp));
    assert!(detail(&a, "snp.chain.ark").contains("ARK-Milan (built-in)"), "{}", detail(&a, "snp.chain.ark"));
    assert!(detail(&a, "snp.chain.ask").contains("SEV-Milan (built-in) signed by ARK-Milan"));
    assert!(detail(&a, "snp.endorsement").contains("product Milan-B0"));
    let m = &a.measurements;
    let report = milan_report();
    assert_eq!(m["measurement"], hex::encode(&report[0x90..0xC0]));
    assert_eq!(m["host_data"], hex::encode(&report[0xC0..0xE0]));
    assert_eq!(m["policy"], "0000000000030000");
    assert_eq!(m["debug"], "false");
    assert_eq!(m["vmpl"], "0");
    assert_eq!((m["tcb_bootloader"].as_str(), m["tcb_tee"].as_str()), ("3", "0"));
    assert_eq!((m["tcb_snp"].as_str(), m["tcb_microcode"].as_str()), ("8", "115"));
    assert!(!m.contains_key("tcb_fmc"));
    assert_eq!(m["report_version"], "2");
    assert_eq!(a.report_data, &report[0x50..0x90]);
    assert_eq!(a.tcb_status.as_deref(), Some("UpToDate"));
    assert!(a.advisories.is_empty());
}

#[test]
fn trustee_report_verifies() {
    let a = verify(&trustee_report(), &[trustee_vcek()]);
    assert_verified(&a);
    assert_eq!(names(&a), ALL_CHECKS);
    assert_eq!(a.measurements["policy"], "000000000003001f");
    assert_eq!(a.measurements["guest_svn"], "4");
    // Current microcode (206) runs ahead of the committed and reported one (115): not a downgrade.
    assert_eq!(a.tcb_status.as_deref(), Some("UpToDate"));
    assert_eq!(a.report_data, &trustee_report()[0x50..0x90]);
}

#[test]
fn trustee_anchor_bundle_as_der_verifies_both_reports() {
    let mut anchors = TrustAnchors::default();
    for product in ["milan", "genoa", "turin"] {
        anchors.amd_roots.extend(pem_ders(&tv(&format!("trustee/src_snp_{product}_ask_ark_asvk.pem"))));
    }
    assert_eq!(anchors.amd_roots.len(), 9);
    assert_verified(&verify_with(&milan_report(), &[milan_vcek()], &anchors, now()));
    assert_verified(&verify_with(&trustee_report(), &[trustee_vcek()], &anchors, now()));
}

#[test]
fn cert_chain_file_and_pem_endorsements_verify() {
    let chain = tv("virtee-sev/cert_chain_milan");
    let vcek_pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64_lines(&milan_vcek()));
    // The ASK/ARK PEM file beside the VCEK, and the VCEK as PEM.
    let a = verify(&milan_report(), &[chain.clone(), vcek_pem.clone().into_bytes()]);
    assert_verified(&a);
    assert!(detail(&a, "snp.endorsement").contains("endorsement 2 (PEM) #1"), "{}", detail(&a, "snp.endorsement"));
    // Everything in one PEM bundle.
    let mut bundle = chain;
    bundle.extend_from_slice(vcek_pem.as_bytes());
    assert_verified(&verify(&milan_report(), &[bundle]));
}

#[test]
fn extended_report_certificate_table_verifies() {
    let chain = pem_ders(&tv("virtee-sev/cert_chain_milan"));
    let (ask, ark) = (&chain[0], &chain[1]);
    let vcek = milan_vcek();
    let table = snp::build_cert_table(&[(CertKind::Ark, ark), (CertKind::Ask, ask), (CertKind::Vcek, &vcek)]);
    let a = verify(&milan_report(), std::slice::from_ref(&table));
    assert_verified(&a);
    assert!(
        detail(&a, "snp.endorsement").contains("certificate table, VCEK entry"),
        "{}",
        detail(&a, "snp.endorsement")
    );
    // The kernel pads the auxblob; padding is ignored.
    let mut padded = table;
    padded.resize(16384, 0);
    assert_verified(&verify(&milan_report(), &[padded]));
    // Entries holding PEM instead of DER.
    let pem = tv("virtee-sev/cert_chain_milan");
    let vcek_pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64_lines(&vcek));
    let table = snp::build_cert_table(&[(CertKind::Ask, &pem), (CertKind::Vcek, vcek_pem.as_bytes())]);
    assert_verified(&verify(&milan_report(), &[table]));
}

#[test]
fn parse_cert_table_reads_back_real_certificates() {
    let vcek = milan_vcek();
    let table = snp::build_cert_table(&[(CertKind::Vcek, &vcek)]);
    assert_eq!(snp::parse_cert_table(&table).expect("table"), vec![(CertKind::Vcek, vcek)]);
}

#[test]
fn hex_and_binary_give_the_same_appraisal() {
    for (binary, vcek) in [(milan_report(), milan_vcek()), (trustee_report(), trustee_vcek())] {
        let hex_text: String =
            hex::encode(&binary).as_bytes().chunks(64).map(|l| format!("{}\n", String::from_utf8_lossy(l))).collect();
        let from_bin = verify(&binary, std::slice::from_ref(&vcek));
        let from_hex = verify(hex_text.as_bytes(), std::slice::from_ref(&vcek));
        let from_upper = verify(hex_text.to_uppercase().as_bytes(), std::slice::from_ref(&vcek));
        assert_verified(&from_bin);
        for other in [&from_hex, &from_upper] {
            assert_eq!(from_bin.checks, other.checks);
            assert_eq!(from_bin.measurements, other.measurements);
            assert_eq!(from_bin.report_data, other.report_data);
            assert_eq!(from_bin.tcb_status, other.tcb_status);
        }
    }
}

#[test]
fn the_right_vcek_is_picked_among_several() {
    // The wrong ones first: the one whose hwID is the chip ID is used.
    let a = verify(&milan_report(), &[trustee_vcek(), tv("virtee-sev/vcek_turin.der"), milan_vcek()]);
    assert_verified(&a);
    assert!(detail(&a, "snp.endorsement").contains("endorsement 3"));
}

// ---------------------------------------------------------------- real reports, negative twins

#[test]
fn a_flipped_byte_in_the_signed_body_fails_the_signature() {
    for offset in
        [0x90 /* measurement */, 0x50 /* report data */, 0x08 /* policy */, 0xC0 /* host data */]
    {
        let mut report = milan_report();
        report[offset] ^= 0x01;
        let a = verify(&report, &[milan_vcek()]);
        assert_failed(&a, &["snp.signature"]);
        assert!(detail(&a, "snp.signature").contains("does not verify"), "{}", detail(&a, "snp.signature"));
    }
    // Reserved bytes inside the signed body must be zero: the parser already refuses them.
    let mut report = milan_report();
    report[0x1F8] ^= 0x01;
    assert_failed(&verify(&report, &[milan_vcek()]), &["snp.report.parse"]);
}

#[test]
fn a_flipped_byte_in_the_signature_fails_the_signature() {
    for offset in [
        0x2A0,      /* R */
        0x2E8 + 10, /* S */
        0x2A0 + 60, /* R's unused top */
        0x2E8 + 71,
        0x400, /* reserved */
    ] {
        let mut report = milan_report();
        report[offset] ^= 0x80;
        let a = verify(&report, &[milan_vcek()]);
        assert_failed(&a, &["snp.signature"]);
    }
}

#[test]
fn a_flipped_byte_in_the_vcek_signature_fails_the_vcek_link() {
    let mut vcek = milan_vcek();
    let last = vcek.len() - 1;
    vcek[last] ^= 0x01;
    let a = verify(&milan_report(), &[vcek]);
    assert_failed(&a, &["snp.chain.vcek"]);
    assert!(detail(&a, "snp.chain.vcek").contains("not signed by SEV-Milan"), "{}", detail(&a, "snp.chain.vcek"));
}

#[test]
fn a_changed_vcek_tbs_fails_the_vcek_link() {
    let mut vcek = milan_vcek();
    let at = vcek.windows(8).position(|w| w == b"Milan-B0").expect("product name");
    vcek[at + 6] = b'C';
    let a = verify(&milan_report(), &[vcek]);
    assert_failed(&a, &["snp.chain.vcek"]);
}

#[test]
fn the_other_reports_vcek_is_rejected() {
    let a = verify(&milan_report(), &[trustee_vcek()]);
    assert_failed(&a, &["snp.signature", "snp.chip_id"]);
    assert!(detail(&a, "snp.chip_id").contains("the VCEK is for chip c38427a3"), "{}", detail(&a, "snp.chip_id"));
    let a = verify(&trustee_report(), &[milan_vcek()]);
    assert_failed(&a, &["snp.signature", "snp.chip_id"]);
}

#[test]
fn the_turin_vcek_is_rejected() {
    let a = verify(&milan_report(), &[tv("virtee-sev/vcek_turin.der")]);
    assert_failed(&a, &["snp.signature", "snp.chip_id", "snp.tcb"]);
    // Its chain is fine: Turin's built-in ARK and ASK.
    assert!(detail(&a, "snp.chain.ask").contains("SEV-Turin (built-in)"), "{}", detail(&a, "snp.chain.ask"));
    assert!(detail(&a, "snp.tcb").contains("Turin-layout"), "{}", detail(&a, "snp.tcb"));
}

#[test]
fn validity_windows_are_checked_at_the_given_time() {
    let anchors = TrustAnchors::default();
    let run = |t: &str| verify_with(&milan_report(), &[milan_vcek()], &anchors, at(t));
    // The Milan VCEK: 2023-04-03T19:23:43Z .. 2030-04-03T19:23:43Z.
    assert_verified(&run("2023-04-03T19:23:43Z"));
    assert_verified(&run("2030-04-03T19:23:43Z"));
    let a = run("2030-04-03T19:23:44Z");
    assert_failed(&a, &["snp.chain.vcek"]);
    assert!(detail(&a, "snp.chain.vcek").contains("is not valid at 2030-04-03T19:23:44Z"));
    assert_failed(&run("2023-04-03T19:23:42Z"), &["snp.chain.vcek"]);
    // The ASK ends 2045-10-22T18:24:20Z, the ARK at 17:23:05 the same day.
    assert_failed(&run("2045-10-22T17:00:00Z"), &["snp.chain.vcek"]);
    assert_failed(&run("2045-10-22T18:00:00Z"), &["snp.chain.ark", "snp.chain.vcek"]);
    assert_failed(&run("2045-10-22T18:30:00Z"), &["snp.chain.ark", "snp.chain.ask", "snp.chain.vcek"]);
    // Before the ARK was made, nothing is valid.
    assert_failed(&run("2019-01-01T00:00:00Z"), &["snp.chain.ark", "snp.chain.ask", "snp.chain.vcek"]);
    // Between the ARK's start (17:23:05) and the ASK's (18:24:20).
    assert_failed(&run("2020-10-22T18:00:00Z"), &["snp.chain.ask", "snp.chain.vcek"]);
}

#[test]
fn no_vcek_says_how_to_get_one() {
    let a = verify(&milan_report(), &[]);
    assert_failed(&a, &["snp.endorsement"]);
    let d = detail(&a, "snp.endorsement");
    assert!(d.contains("--cert vcek.der"), "{d}");
    assert!(d.contains("https://kdsintf.amd.com/vcek/v1/{Milan|Genoa}/d49554ec"), "{d}");
    assert!(d.contains("blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"), "{d}");
    // Measurements are still reported, for diagnosis.
    assert_eq!(a.measurements["tcb_microcode"], "115");

    let a = verify(&milan_report(), &[b"not a certificate".to_vec(), vec![0x30, 0x03, 0x02, 0x01, 0x01]]);
    assert_failed(&a, &["snp.endorsement"]);
    let d = detail(&a, "snp.endorsement");
    assert!(d.contains("endorsement 1: neither a DER or PEM certificate nor an SNP certificate table"), "{d}");
    assert!(d.contains("endorsement 2"), "{d}");

    // Only CA certificates: still no VCEK.
    let a = verify(&milan_report(), &[tv("virtee-sev/cert_chain_milan")]);
    assert_failed(&a, &["snp.endorsement"]);
}

#[test]
fn malformed_reports_fail_parsing() {
    for (evidence, expected) in [
        (Vec::new(), "got 0 bytes"),
        (vec![0u8; 1183], "got 1183 bytes"),
        (vec![0u8; 1185], "got 1185 bytes"),
        (b"0x1234".to_vec(), "got 6 bytes"),
        (b"abc".to_vec(), "not valid hex"),
        (vec![0u8; 1184], "does not parse"),
    ] {
        let a = verify(&evidence, &[milan_vcek()]);
        assert_eq!(names(&a), ["snp.report.parse"]);
        assert!(!a.verified());
        assert!(detail(&a, "snp.report.parse").contains(expected), "{}", detail(&a, "snp.report.parse"));
    }
}

#[test]
fn every_truncation_is_rejected_without_panic() {
    let report = milan_report();
    for len in 0..report.len() {
        let a = verify(&report[..len], &[milan_vcek()]);
        assert_failed(&a, &["snp.report.parse"]);
        let a = verify(hex::encode(&report[..len]).as_bytes(), &[milan_vcek()]);
        assert_failed(&a, &["snp.report.parse"]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// No single byte of a real report can change without the report being rejected.
    #[test]
    fn any_changed_byte_is_rejected(offset in 0usize..1184, xor in 1u8..=255) {
        let mut report = trustee_report();
        report[offset] ^= xor;
        let a = verify(&report, &[trustee_vcek()]);
        prop_assert!(!a.verified(), "offset {offset:#x} xor {xor:#x} verified");
    }

    #[test]
    fn arbitrary_evidence_and_endorsements_never_panic(
        evidence in proptest::collection::vec(any::<u8>(), 0..2500),
        endorsement in proptest::collection::vec(any::<u8>(), 0..800),
    ) {
        let a = verify(&evidence, &[endorsement]);
        prop_assert!(!a.verified());
    }

    /// A real report with some fields rewritten (version, CPUID, chip ID, key info): parsing
    /// may fail, verification must, and nothing panics.
    #[test]
    fn rewritten_report_fields_never_panic(
        version in 0u32..8,
        cpuid in any::<[u8; 3]>(),
        chip_zero in any::<bool>(),
        key_info in any::<u32>(),
    ) {
        let mut report = milan_report();
        report[0..4].copy_from_slice(&version.to_le_bytes());
        report[0x188..0x18B].copy_from_slice(&cpuid);
        report[0x48..0x4C].copy_from_slice(&key_info.to_le_bytes());
        if chip_zero {
            report[0x1A0..0x1E0].fill(0);
        }
        let unchanged = report == milan_report();
        let a = verify(&report, &[milan_vcek()]);
        prop_assert_eq!(a.verified(), unchanged);
    }

    /// Certificate tables with arbitrary entries pointing at a real VCEK or garbage.
    #[test]
    fn arbitrary_certificate_tables_never_panic(
        entries in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u16>()), 0..5),
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let vcek = milan_vcek();
        let mut table = Vec::new();
        for (kind, offset, len) in &entries {
            let guid = [CertKind::Vcek, CertKind::Ask, CertKind::Ark, CertKind::Vlek][usize::from(*kind % 4)].guid();
            table.extend_from_slice(&guid);
            table.extend_from_slice(&u32::from(*offset).to_le_bytes());
            table.extend_from_slice(&u32::from(*len).to_le_bytes());
        }
        table.extend_from_slice(&[0u8; 24]);
        table.extend_from_slice(&vcek);
        table.extend_from_slice(&tail);
        let _ = snp::parse_cert_table(&table);
        let a = verify(&milan_report(), &[table]);
        prop_assert!(a.checks.iter().any(|c| c.name == "snp.endorsement"));
    }
}

// ---------------------------------------------------------------- synthetic chain

/// Minimal DER writing, enough for the certificates below.
mod der {
    pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    pub(crate) fn oid(content: &[u8]) -> Vec<u8> {
        tlv(0x06, content)
    }

    pub(crate) fn uint(v: u8) -> Vec<u8> {
        if v < 0x80 { tlv(0x02, &[v]) } else { tlv(0x02, &[0, v]) }
    }

    pub(crate) fn name(cn: &str) -> Vec<u8> {
        seq(&[&tlv(0x31, &seq(&[&oid(&[0x55, 0x04, 0x03]), &tlv(0x0C, cn.as_bytes())]))])
    }

    const SHA384: [u8; 9] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];

    /// RSASSA-PSS with SHA-384, MGF1 with SHA-384, salt length 48.
    pub(crate) fn rsa_pss_sha384() -> Vec<u8> {
        let sha384 = seq(&[&oid(&SHA384), &[0x05, 0x00]]);
        let mgf1 = seq(&[&oid(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08]), &sha384]);
        let params = seq(&[&tlv(0xA0, &sha384), &tlv(0xA1, &mgf1), &tlv(0xA2, &uint(48))]);
        seq(&[&oid(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A]), &params])
    }

    /// AMD extension 1.3.6.1.4.1.3704.1.<suffix> holding `value`.
    pub(crate) fn amd_ext(suffix: &[u8], value: &[u8]) -> Vec<u8> {
        let mut id = vec![0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01];
        id.extend_from_slice(suffix);
        seq(&[&oid(&id), &tlv(0x04, value)])
    }
}

/// A deterministic RNG for the RSA-PSS salts of test certificates (splitmix64).
struct TestRng(u64);

impl rsa::rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for TestRng {}

/// Test-only RSA keys, made for these tests with `openssl genpkey` (1024 bits keeps this file
/// short; AMD's keys are 4096 bits).
const TEST_ARK_KEY: &str = r"-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBANSIB97nmQnoCWMW
fztp9aPpeDjAhosA4S75ajbFvnUzXvbtMWv8ktzJiKeZvOufs58ebfi5n8XSv7Oq
QM7Su5rej2ugY98pSO+vEl4Tj3WMyP+JImy84Fh+QuULgYVCKSgo+Y4fOrsAfwyR
ciPXss22XkF9qba1uGuuu5xdXP8xAgMBAAECgYAQ3c7KGNUjXR/JllJ4k5sj6/ZX
gqfqxiIYyUBtolnQEUibDg3bBQterDvFGUVN6bmmihKuJ4UPfP8rsfo8r6qlpZfI
UDeXu2J9pxkolowZV8KIktm4dQos4up9kR/Wh4Oa8kGFQIhDYdNZlL244FWGjq9D
qXlVJIDp+rfLEQKGNQJBAP1ZOGUXtlfy956F5xpz5+SCMEv5f280tQ4ZN83l9QEb
SXYm4YSVEmQRpQT4itxHpd5l8DZky52W+bUrORpiR8sCQQDWwXOpjs6+bIKxKsag
rB8plkkXilIe1HJPj0uBj/bc+wtykPBUezvtEKbLKwKPHKcrNkUiNLG11ToT3ACV
Jl1zAkEA8xHM98EeY5drWB6ksk6OKEF4UQxZ5bouFA7B6bw9qwghHUkEig30jSoY
p4JGyD29uHkZVTaz3MjjX5zOtq+grQJALu5jymAtCixIe1MvyRkUTlBLdNuDir0+
pehYxd2iQzSRkd3ex3eO5wXGjYu+qWvHlIftn8YIOAZ7BLAFaJLTxQJALh9fUyIs
Xe6+l0yfLJN931kUkNDmV1y2yEPwYjFFUh/h+axhDIHRM0tm1EywCRt0Ty95i5v3
2bhakYFw6p8JIg==
-----END PRIVATE KEY-----";

const TEST_ASK_KEY: &str = r"-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBANLlKUiCRVJkll3c
+i2OM+eJmFVF3gbC+huIj23xnYVLYSYUW7GODnnQgkV7dpl5Mb9uB7AsA0k3aO8X
g6cwlwnfqYBwxXjAxSMAEXmYLFmMwzgNk8WLhIpSIidVwh3F5+0gMuFWobCeusOk
oLrCk+ixfMqGr8yItWXB9j80CQH/AgMBAAECgYAVm8tmFYr6zTmm9mxf3JEu6SdF
nXoJYVL1HUHs9vO346hZmX5nq/GJw7aFXggh44wYXDLHd0sC5n2G+fbQW6ct+QSb
uEnO19sTfz9uE/NYNwhg5T8bE9PO0wErSjSNVXRRDYOlOgJhmBgYP9gHmhXhPVfE
oNkR5TTnmsptrKzVoQJBAP1WjSwxgkbni6PUATKCfXaW05GZT+gT4HzKXiOVrKqs
XP2G7G5TvaCRNEVXfSnlVHag6F3bWacIxcQLHa4b5g8CQQDVHHGJhgEp2ON7Fbur
t/WJ7qKQVhioUwQ7SSKepCrh6Hjssz+HS3x8jc/hM2D4gZ5wRRFLfui/ykETYXys
OJURAkEAgCPQQmNEbxLdWd95P5ArX9mIaCPw/AVZziUaGsuxS57lZkNhwahPyTDJ
DK3lHFToNRzMi/TQUyGnzrKEr7Vi1wJAf+vZ7y4EBsWNDvYlt9btyYT4CeHUXT2v
vZKR+F4c64vrAlI6YREbwXwye0CnBaRwoX2j+whL18wlMegDuTEhsQJAKF1wVJzV
UsTFFbaglbWeS9tpMnpl6kliMyqKfodOVRSnJeoe14HuYKxrh9k14gJaHhX2jcMv
VucYyPa7jOsT5w==
-----END PRIVATE KEY-----";

/// What the test VCEK (or VLEK) certifies.
#[derive(Clone)]
struct VekSpec {
    subject: &'static str,
    issuer: &'static str,
    /// Boot loader, TEE, SNP, microcode SPLs.
    tcb: [u8; 4],
    fmc: Option<u8>,
    hw_id: Option<Vec<u8>>,
}

/// The test keys: ARK and ASK (RSA), VCEK (P-384).
struct Synth {
    ark_key: rsa::RsaPrivateKey,
    ask_key: rsa::RsaPrivateKey,
    vek_key: p384::ecdsa::SigningKey,
    rng: std::cell::RefCell<TestRng>,
}

/// The synthetic chip ID: not Turin-shaped (its tail is not zero).
fn synth_chip_id() -> Vec<u8> {
    (0..64u8).map(|i| i.wrapping_mul(37).wrapping_add(1)).collect()
}

const REPORTED: usize = 0x180;
const COMMITTED: usize = 0x1E0;
const LAUNCH: usize = 0x1F0;
const CURRENT: usize = 0x38;

/// Writes a pre-Turin TCB [boot loader, TEE, SNP, microcode] at `offset`.
fn set_tcb(r: &mut [u8], offset: usize, [bl, tee, snp, ucode]: [u8; 4]) {
    r[offset..offset + 8].copy_from_slice(&[bl, tee, 0, 0, 0, 0, snp, ucode]);
}

impl Synth {
    fn new() -> Self {
        use rsa::pkcs8::DecodePrivateKey;
        Self {
            ark_key: rsa::RsaPrivateKey::from_pkcs8_pem(TEST_ARK_KEY).expect("ARK key"),
            ask_key: rsa::RsaPrivateKey::from_pkcs8_pem(TEST_ASK_KEY).expect("ASK key"),
            vek_key: p384::ecdsa::SigningKey::from_bytes(&[7u8; 48].into()).expect("VCEK key"),
            rng: std::cell::RefCell::new(TestRng(42)),
        }
    }

    fn sign_rsa(&self, key: &rsa::RsaPrivateKey, tbs: &[u8]) -> Vec<u8> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding};
        let signer = rsa::pss::SigningKey::<rsa::sha2::Sha384>::new(key.clone());
        signer.sign_with_rng(&mut *self.rng.borrow_mut(), tbs).to_vec()
    }

    /// A certificate valid 2020..2045 for the CAs, 2023..2030 for the VCEK (UTCTime).
    fn cert(
        &self,
        subject: &str,
        issuer: &str,
        spki: &[u8],
        extensions: &[Vec<u8>],
        signer: &rsa::RsaPrivateKey,
    ) -> Vec<u8> {
        use der::*;
        let (not_before, not_after): (&[u8], &[u8]) = if extensions.is_empty() {
            (b"200101000000Z", b"450101000000Z")
        } else {
            (b"230101000000Z", b"300101000000Z")
        };
        let validity = seq(&[&tlv(0x17, not_before), &tlv(0x17, not_after)]);
        let mut parts: Vec<Vec<u8>> =
            vec![tlv(0xA0, &uint(2)), uint(1), rsa_pss_sha384(), name(issuer), validity, name(subject), spki.to_vec()];
        if !extensions.is_empty() {
            parts.push(tlv(0xA3, &seq(&extensions.iter().map(Vec::as_slice).collect::<Vec<_>>())));
        }
        let tbs = seq(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let mut bits = vec![0u8];
        bits.extend(self.sign_rsa(signer, &tbs));
        seq(&[&tbs, &rsa_pss_sha384(), &tlv(0x03, &bits)])
    }

    fn rsa_spki(key: &rsa::RsaPrivateKey) -> Vec<u8> {
        use rsa::pkcs8::EncodePublicKey;
        key.to_public_key().to_public_key_der().expect("SPKI").as_bytes().to_vec()
    }

    fn ark(&self) -> Vec<u8> {
        self.cert("ARK-Test", "ARK-Test", &Self::rsa_spki(&self.ark_key), &[], &self.ark_key)
    }

    fn ask_named(&self, name: &str) -> Vec<u8> {
        self.cert(name, "ARK-Test", &Self::rsa_spki(&self.ask_key), &[], &self.ark_key)
    }

    fn ask(&self) -> Vec<u8> {
        self.ask_named("SEV-Test")
    }

    fn vcek_spec() -> VekSpec {
        VekSpec {
            subject: "SEV-VCEK",
            issuer: "SEV-Test",
            tcb: [3, 0, 8, 115],
            fmc: None,
            hw_id: Some(synth_chip_id()),
        }
    }

    fn vek(&self, spec: &VekSpec) -> Vec<u8> {
        use der::*;
        use p384::pkcs8::EncodePublicKey;
        let spki = self.vek_key.verifying_key().to_public_key_der().expect("SPKI").as_bytes().to_vec();
        let mut exts = vec![amd_ext(&[0x01], &uint(1)), amd_ext(&[0x02], &tlv(0x16, b"Test-A0"))];
        if let Some(fmc) = spec.fmc {
            exts.push(amd_ext(&[0x03, 0x09], &uint(fmc)));
        }
        for (n, v) in [1u8, 2, 3, 8].into_iter().zip(spec.tcb) {
            exts.push(amd_ext(&[0x03, n], &uint(v)));
        }
        if let Some(hw_id) = &spec.hw_id {
            // AMD puts the raw hardware ID in the extension, not an OCTET STRING.
            exts.push(amd_ext(&[0x04], hw_id));
        }
        self.cert(spec.subject, spec.issuer, &spki, &exts, &self.ask_key)
    }

    fn vcek(&self) -> Vec<u8> {
        self.vek(&Self::vcek_spec())
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors { amd_roots: vec![self.ark(), self.ask()], ..TrustAnchors::default() }
    }

    /// The Milan report moved to the synthetic chip (same TCB: 3, 0, 8, 115), edited, signed.
    fn report(&self, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut r = milan_report();
        r[0x1A0..0x1E0].copy_from_slice(&synth_chip_id());
        edit(&mut r);
        self.sign(&mut r);
        r
    }

    fn sign(&self, r: &mut [u8]) {
        use p384::ecdsa::signature::Signer;
        let sig: p384::ecdsa::Signature = self.vek_key.sign(&r[..0x2A0]);
        let (rb, sb) = sig.split_bytes();
        r[0x2A0..0x4A0].fill(0);
        for (i, b) in rb.iter().rev().enumerate() {
            r[0x2A0 + i] = *b;
        }
        for (i, b) in sb.iter().rev().enumerate() {
            r[0x2E8 + i] = *b;
        }
    }

    fn verify(&self, report: &[u8], endorsements: &[Vec<u8>]) -> Appraisal {
        verify_with(report, endorsements, &self.anchors(), now())
    }
}

#[test]
fn synthetic_chain_from_trust_anchors_verifies() {
    let s = Synth::new();
    let a = s.verify(&s.report(|_| {}), &[s.vcek()]);
    assert_verified(&a);
    assert_eq!(names(&a), ALL_CHECKS);
    assert!(detail(&a, "snp.chain.ark").contains("ARK-Test (trust anchor 1)"), "{}", detail(&a, "snp.chain.ark"));
    assert!(detail(&a, "snp.chain.ask").contains("SEV-Test (trust anchor 2) signed by ARK-Test"));
    assert!(detail(&a, "snp.chip_id").contains(&hex::encode(synth_chip_id())));

    // Without the anchors, nothing vouches for the test ASK.
    let a = verify(&s.report(|_| {}), &[s.vcek()]);
    assert_failed(&a, &["snp.chain.ark", "snp.chain.ask", "snp.chain.vcek"]);
    assert!(detail(&a, "snp.chain.ask").contains("no ASK or ASVK named SEV-Test"), "{}", detail(&a, "snp.chain.ask"));
}

#[test]
fn an_ask_from_the_evidence_chains_to_an_anchored_ark() {
    let s = Synth::new();
    let only_ark = TrustAnchors { amd_roots: vec![s.ark()], ..TrustAnchors::default() };
    let vcek = s.vcek();
    let table = snp::build_cert_table(&[(CertKind::Vcek, &vcek), (CertKind::Ask, &s.ask())]);
    let a = verify_with(&s.report(|_| {}), &[table], &only_ark, now());
    assert_verified(&a);
    assert!(detail(&a, "snp.chain.ask").contains("certificate table, ASK entry"), "{}", detail(&a, "snp.chain.ask"));
}

#[test]
fn an_ark_from_the_evidence_is_never_trusted() {
    let s = Synth::new();
    let vcek = s.vcek();
    let table = snp::build_cert_table(&[(CertKind::Ark, &s.ark()), (CertKind::Ask, &s.ask()), (CertKind::Vcek, &vcek)]);
    let a = verify(&s.report(|_| {}), &[table]);
    assert_failed(&a, &["snp.chain.ark", "snp.chain.ask"]);
    let d = detail(&a, "snp.chain.ark");
    assert!(d.contains("ARKs from the evidence are not trusted (ARK-Test"), "{d}");
}

#[test]
fn a_forged_ask_under_a_trusted_name_is_rejected() {
    // An ASK with the right name and key, but signed by another key than the anchored ARK's.
    let s = Synth::new();
    let forger = Synth { ark_key: s.ask_key.clone(), ..Synth::new() };
    let only_ark = TrustAnchors { amd_roots: vec![s.ark()], ..TrustAnchors::default() };
    let a = verify_with(&s.report(|_| {}), &[s.vcek(), forger.ask()], &only_ark, now());
    assert_failed(&a, &["snp.chain.ark", "snp.chain.ask"]);
    assert!(detail(&a, "snp.chain.ark").contains("is not signed by ARK-Test"), "{}", detail(&a, "snp.chain.ark"));
}

#[test]
fn an_anchor_ark_that_is_not_self_signed_is_not_trusted() {
    let s = Synth::new();
    let mut ark = s.ark();
    let last = ark.len() - 1;
    ark[last] ^= 1;
    let anchors = TrustAnchors { amd_roots: vec![ark, s.ask()], ..TrustAnchors::default() };
    let a = verify_with(&s.report(|_| {}), &[s.vcek()], &anchors, now());
    assert_failed(&a, &["snp.chain.ark", "snp.chain.ask"]);
    assert!(detail(&a, "snp.chain.ark").contains("not self-signed"), "{}", detail(&a, "snp.chain.ark"));
}

#[test]
fn a_vcek_certifying_a_lower_tcb_is_rejected() {
    let s = Synth::new();
    for (tcb, component) in [([2, 0, 8, 115], "bootloader"), ([3, 0, 7, 115], "snp"), ([3, 0, 8, 114], "microcode")] {
        let vcek = s.vek(&VekSpec { tcb, ..Synth::vcek_spec() });
        let a = s.verify(&s.report(|_| {}), &[vcek]);
        assert_failed(&a, &["snp.tcb"]);
        let d = detail(&a, "snp.tcb");
        assert!(d.contains("above the TCB the VCEK certifies") && d.ends_with(component), "{d}");
    }
    // A VCEK certifying a higher TCB than reported is accepted (the report's TCB is the floor).
    let vcek = s.vek(&VekSpec { tcb: [3, 1, 9, 200], ..Synth::vcek_spec() });
    assert_verified(&s.verify(&s.report(|_| {}), &[vcek]));
    // SPLs of 128 and more are DER integers with a leading zero.
    let vcek = s.vek(&VekSpec { tcb: [3, 0, 8, 209], ..Synth::vcek_spec() });
    let r = s.report(|r| {
        for at in [REPORTED, COMMITTED, LAUNCH, CURRENT] {
            set_tcb(r, at, [3, 0, 8, 209]);
        }
    });
    let a = s.verify(&r, &[vcek]);
    assert_verified(&a);
    assert_eq!(a.measurements["tcb_microcode"], "209");
}

#[test]
fn a_vcek_for_another_chip_is_rejected() {
    let s = Synth::new();
    let mut other = synth_chip_id();
    other[5] ^= 1;
    let a = s.verify(&s.report(|_| {}), &[s.vek(&VekSpec { hw_id: Some(other), ..Synth::vcek_spec() })]);
    assert_failed(&a, &["snp.chip_id"]);
    let a = s.verify(&s.report(|_| {}), &[s.vek(&VekSpec { hw_id: None, ..Synth::vcek_spec() })]);
    assert_failed(&a, &["snp.chip_id"]);
    assert!(detail(&a, "snp.chip_id").contains("no hwID"));
}

#[test]
fn a_masked_chip_id_is_accepted_and_said_so() {
    let s = Synth::new();
    let r = s.report(|r| r[0x1A0..0x1E0].fill(0));
    let a = s.verify(&r, &[s.vcek()]);
    assert_verified(&a);
    assert!(detail(&a, "snp.chip_id").contains("masked"));
    assert_eq!(a.measurements["tcb_snp"], "8");
}

#[test]
fn tcb_status_follows_the_documented_definition() {
    let s = Synth::new();
    let vcek = s.vcek();
    let status = |edit: &dyn Fn(&mut Vec<u8>)| {
        let a = s.verify(&s.report(edit), std::slice::from_ref(&vcek));
        assert_verified(&a);
        a.tcb_status.expect("status")
    };
    assert_eq!(status(&|_| {}), "UpToDate");
    // The platform committed newer SNP firmware than the TCB of the key that signed.
    assert_eq!(status(&|r| set_tcb(r, COMMITTED, [3, 0, 9, 115])), "OutOfDate");
    // The guest was launched before the committed update.
    assert_eq!(status(&|r| set_tcb(r, LAUNCH, [3, 0, 8, 100])), "OutOfDate");
    // The reported TCB is not committed yet.
    assert_eq!(status(&|r| set_tcb(r, COMMITTED, [3, 0, 7, 115])), "Uncommitted");
    // The current TCB running ahead changes nothing.
    assert_eq!(status(&|r| set_tcb(r, CURRENT, [4, 1, 9, 200])), "UpToDate");
}

#[test]
fn the_debug_bit_is_reported_not_judged() {
    let s = Synth::new();
    let r = s.report(|r| r[0x08 + 2] |= 0x08); // bit 19 of the policy
    let a = s.verify(&r, &[s.vcek()]);
    assert_verified(&a);
    assert_eq!(a.measurements["debug"], "true");
    assert_eq!(a.measurements["policy"], "00000000000b0000");
    assert!(!names(&a).contains(&"snp.debug"));
}

#[test]
fn an_unsigned_report_is_rejected() {
    let s = Synth::new();
    for key_info in [0b10u32 /* MASK_CHIP_KEY */, 7 << 2 /* SIGNING_KEY: none */] {
        let r = s.report(|r| r[0x48..0x4C].copy_from_slice(&key_info.to_le_bytes()));
        let a = s.verify(&r, &[s.vcek()]);
        assert_failed(&a, &["snp.signature"]);
        assert!(detail(&a, "snp.signature").contains("not signed"));
    }
}

#[test]
fn a_vlek_report_verifies_through_the_asvk() {
    let s = Synth::new();
    let vlek = s.vek(&VekSpec { subject: "SEV-VLEK", issuer: "SEV-VLEK-Test", hw_id: None, ..Synth::vcek_spec() });
    let anchors = TrustAnchors { amd_roots: vec![s.ark(), s.ask_named("SEV-VLEK-Test")], ..TrustAnchors::default() };
    let r = s.report(|r| r[0x48..0x4C].copy_from_slice(&(1u32 << 2).to_le_bytes()));
    let table = snp::build_cert_table(&[(CertKind::Vlek, &vlek)]);
    let a = verify_with(&r, &[table], &anchors, now());
    assert_verified(&a);
    assert!(!names(&a).contains(&"snp.chip_id"));
    assert!(detail(&a, "snp.endorsement").starts_with("VLEK SEV-VLEK"), "{}", detail(&a, "snp.endorsement"));
    assert!(detail(&a, "snp.chain.ask").contains("SEV-VLEK-Test"));

    // A VLEK-signed report with only a VCEK at hand.
    let a = verify_with(&r, &[s.vcek()], &anchors, now());
    assert_failed(&a, &["snp.endorsement"]);
    assert!(detail(&a, "snp.endorsement").contains("signed by a VLEK"), "{}", detail(&a, "snp.endorsement"));
}

#[test]
fn efi_ordered_guids_in_a_table_are_understood() {
    let s = Synth::new();
    let vcek = s.vcek();
    let mut table = snp::build_cert_table(&[(CertKind::Vcek, &vcek)]);
    table[0..4].reverse();
    table[4..6].reverse();
    table[6..8].reverse();
    assert_eq!(snp::parse_cert_table(&table).expect("table")[0].0, CertKind::Vcek);
    assert_verified(&s.verify(&s.report(|_| {}), &[table]));
}

#[test]
fn turin_layout_reports_compare_the_fmc() {
    // A version-3 report with Turin's CPUID (family 0x1A, model 0x02): its TCB has an FMC SPL.
    let s = Synth::new();
    let turin = |fmc: u8| {
        move |r: &mut Vec<u8>| {
            r[0..4].copy_from_slice(&3u32.to_le_bytes());
            r[0x188..0x18B].copy_from_slice(&[0x1A, 0x02, 0x01]);
            for at in [REPORTED, COMMITTED, LAUNCH, CURRENT] {
                r[at..at + 8].copy_from_slice(&[fmc, 3, 0, 8, 0, 0, 0, 115]);
            }
            let chip = synth_chip_id();
            r[0x1A0..0x1E0].fill(0);
            r[0x1A0..0x1A8].copy_from_slice(&chip[..8]);
        }
    };
    let turin_hw_id = Some(synth_chip_id()[..8].to_vec());
    let vcek = s.vek(&VekSpec { fmc: Some(2), hw_id: turin_hw_id.clone(), ..Synth::vcek_spec() });
    let a = s.verify(&s.report(turin(2)), std::slice::from_ref(&vcek));
    assert_verified(&a);
    assert_eq!(a.measurements["tcb_fmc"], "2");
    assert_eq!(a.measurements["tcb_bootloader"], "3");
    assert!(detail(&a, "snp.report.parse").contains("Turin TCB layout"));
    let a = s.verify(&s.report(turin(3)), std::slice::from_ref(&vcek));
    assert_failed(&a, &["snp.tcb"]);
    assert!(detail(&a, "snp.tcb").ends_with("fmc"), "{}", detail(&a, "snp.tcb"));
    // Without its VCEK, the message names Turin's KDS address, by the 8-byte hardware ID.
    let a = s.verify(&s.report(turin(2)), &[]);
    let url = format!("https://kdsintf.amd.com/vcek/v1/Turin/{}?fmcSPL=2&blSPL=3", hex::encode(&synth_chip_id()[..8]));
    assert!(detail(&a, "snp.endorsement").contains(&url), "{}", detail(&a, "snp.endorsement"));
    // A pre-Turin VCEK for a Turin-layout report.
    let legacy = s.vek(&VekSpec { hw_id: turin_hw_id, ..Synth::vcek_spec() });
    assert_failed(&s.verify(&s.report(turin(2)), &[legacy]), &["snp.tcb"]);
}

/// Base64 in 64-character lines, for PEM made from DER.
fn base64_lines(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in der.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes().chunks(64).map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>().join("\n")
}
