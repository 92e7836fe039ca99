//! SEV-SNP reports and certificate tables come from the host: reading them must reject, never
//! panic, and a table that parses must read back the same after being rebuilt.
#![no_main]

use lamina_attest::{Inputs, TrustAnchors, snp};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = snp::parse_cert_table(data) {
        let borrowed: Vec<(snp::CertKind, &[u8])> = entries.iter().map(|(k, d)| (*k, d.as_slice())).collect();
        let rebuilt = snp::build_cert_table(&borrowed);
        assert_eq!(snp::parse_cert_table(&rebuilt).as_ref(), Ok(&entries), "a parsed table rebuilds to itself");
    }

    let anchors = TrustAnchors::default();
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_750_000_000);
    // The whole input as a report; then its first 1184 bytes as the report and the rest as an
    // endorsement (a certificate or a certificate table).
    let whole = snp::verify(&Inputs { evidence: data, endorsements: &[], collateral: None, anchors: &anchors, at });
    assert!(!whole.verified(), "a report without endorsement never verifies");
    let (report, rest) = data.split_at(data.len().min(snp::REPORT_LEN));
    let endorsements = [rest.to_vec()];
    let _ =
        snp::verify(&Inputs { evidence: report, endorsements: &endorsements, collateral: None, anchors: &anchors, at });
});
