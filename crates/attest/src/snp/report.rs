//! The attestation report itself: decoding (binary or hex), parsing with the `sev` crate, the
//! report signature, and TCB versions.

use sev::certs::snp::ecdsa::Signature as SevSignature;
use sev::firmware::guest::AttestationReport;
use sev::firmware::host::TcbVersion;
use sev::parser::ByteParser;

use super::SnpError;

/// Size of an attestation report (every version so far).
pub const REPORT_LEN: usize = 1184;
/// The signed part of the report: bytes `0..0x2A0`.
pub(super) const SIGNED_LEN: usize = 0x2A0;
/// Offset of the chip ID (64 bytes).
const CHIP_ID_OFFSET: usize = 0x1A0;
/// The longest hex text accepted for a report (hex digits plus generous whitespace).
const MAX_HEX_LEN: usize = 16 * 1024;
/// `SIG_ALGO` value for ECDSA P-384 with SHA-384, the only algorithm defined.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// The raw report bytes from evidence: 1184 bytes as they are, or hex text of them.
///
/// Text is taken as hex when every byte is an ASCII hex digit or whitespace (a binary report
/// never is: its version field holds zero bytes); whitespace anywhere is ignored.
pub fn report_bytes(evidence: &[u8]) -> Result<Vec<u8>, SnpError> {
    let is_text = !evidence.is_empty() && evidence.iter().all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace());
    let bytes = if is_text {
        if evidence.len() > MAX_HEX_LEN {
            return Err(SnpError::ReportHex(format!(
                "{} bytes of text is too long for a {REPORT_LEN}-byte report",
                evidence.len()
            )));
        }
        let digits: Vec<u8> = evidence.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        hex::decode(&digits).map_err(|e| SnpError::ReportHex(e.to_string()))?
    } else {
        evidence.to_vec()
    };
    if bytes.len() != REPORT_LEN {
        return Err(SnpError::ReportLength { found: bytes.len(), expected: REPORT_LEN });
    }
    Ok(bytes)
}

/// Parses a 1184-byte report with the `sev` crate.
///
/// The `sev` crate picks the TCB layout (pre-Turin or Turin) from the report: from the CPUID
/// fields of a version 3 or later report, from the shape of the chip ID of a version 2 report.
/// It cannot do so for a version 2 report whose chip ID is masked (all zero), so such a report
/// is read with the pre-Turin layout, the only one version 2 reports are known to use; its
/// chip ID stays all zero in the result.
pub fn parse_report(raw: &[u8]) -> Result<AttestationReport, SnpError> {
    let chip_id_masked = raw.get(CHIP_ID_OFFSET..CHIP_ID_OFFSET + 64).is_some_and(|c| c.iter().all(|&b| b == 0));
    let version = raw.get(0..4).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(u32::from_le_bytes);
    if chip_id_masked && version == Some(2) {
        let mut patched = raw.to_vec();
        if let Some(last) = patched.get_mut(CHIP_ID_OFFSET + 63) {
            // A chip ID with a non-zero byte past the eighth reads as pre-Turin.
            *last = 1;
        }
        let mut report = AttestationReport::from_bytes(&patched).map_err(|e| SnpError::Report(e.to_string()))?;
        report.chip_id = [0u8; 64];
        return Ok(report);
    }
    AttestationReport::from_bytes(raw).map_err(|e| SnpError::Report(e.to_string()))
}

/// Checks the report's signature with a VCEK or VLEK public key (SEC1 bytes of a P-384 point).
///
/// The signature is checked over the raw signed bytes (`0..0x2A0`) as received, not over a
/// re-encoding of the parsed report, so that every signed byte counts, reserved ones included.
/// The signature's unsigned parts must be canonical: the top 24 bytes of R and S (each a
/// 72-byte little-endian field holding a 48-byte scalar) and the 368 reserved bytes that follow
/// must be zero, so that no byte of the report can change without the verdict changing.
pub fn verify_signature(raw: &[u8], report: &AttestationReport, vek_sec1: &[u8]) -> Result<(), String> {
    use p384::ecdsa::signature::Verifier;

    if report.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(format!("unknown signature algorithm {} (1 is ECDSA P-384 with SHA-384)", report.sig_algo));
    }
    let signed = raw.get(..SIGNED_LEN).ok_or("the report is too short")?;
    let sig_field = raw.get(SIGNED_LEN..).ok_or("the report is too short")?;
    check_canonical_signature(sig_field, &report.signature)?;
    let signature = p384::ecdsa::Signature::try_from(&report.signature)
        .map_err(|e| format!("the signature's R and S are not valid P-384 scalars ({e})"))?;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(vek_sec1)
        .map_err(|_| "the endorsement key is not a P-384 public key".to_owned())?;
    key.verify(signed, &signature).map_err(|_| "the signature does not verify under the endorsement key".to_owned())
}

/// The signature field (from `0x2A0`) holds R (72 bytes), S (72 bytes) and 368 reserved bytes;
/// only the low 48 bytes of R and S carry data.
fn check_canonical_signature(field: &[u8], parsed: &SevSignature) -> Result<(), String> {
    let high_r = parsed.r().get(48..).unwrap_or_default();
    let high_s = parsed.s().get(48..).unwrap_or_default();
    if high_r.iter().chain(high_s).any(|&b| b != 0) {
        return Err("the signature's R or S has non-zero bytes above its 48-byte scalar".into());
    }
    if field.get(144..).unwrap_or_default().iter().any(|&b| b != 0) {
        return Err("the reserved bytes after the signature are not zero".into());
    }
    Ok(())
}

/// A TCB version: the security patch levels of the platform's firmware components.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin and later only).
    pub fmc: Option<u8>,
}

impl From<TcbVersion> for Tcb {
    fn from(t: TcbVersion) -> Self {
        Self { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode, fmc: t.fmc }
    }
}

impl std::fmt::Display for Tcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc {fmc}, ")?;
        }
        write!(f, "bootloader {}, tee {}, snp {}, microcode {}", self.bootloader, self.tee, self.snp, self.microcode)
    }
}

impl Tcb {
    /// The components where `self` is higher than `other`, by name. A component only one side
    /// has (FMC) is listed when `self` has it and `other` does not.
    pub fn components_above(&self, other: &Tcb) -> Vec<&'static str> {
        let mut above = Vec::new();
        match (self.fmc, other.fmc) {
            (Some(a), Some(b)) if a > b => above.push("fmc"),
            (Some(_), None) => above.push("fmc"),
            _ => {}
        }
        for (name, a, b) in [
            ("bootloader", self.bootloader, other.bootloader),
            ("tee", self.tee, other.tee),
            ("snp", self.snp, other.snp),
            ("microcode", self.microcode, other.microcode),
        ] {
            if a > b {
                above.push(name);
            }
        }
        above
    }

    /// Whether no component of `self` is above `other`'s.
    pub fn not_above(&self, other: &Tcb) -> bool {
        self.components_above(other).is_empty()
    }
}

/// The TCB status Lamina derives from a report (see the module documentation).
pub(super) fn tcb_status(reported: &Tcb, committed: &Tcb, launch: &Tcb) -> (&'static str, String) {
    let below_committed = committed.components_above(reported);
    let launch_below = committed.components_above(launch);
    if !below_committed.is_empty() || !launch_below.is_empty() {
        let mut why = Vec::new();
        if !below_committed.is_empty() {
            why.push(format!(
                "the reported TCB (which the signing key certifies) is below the committed TCB in {}",
                below_committed.join(", ")
            ));
        }
        if !launch_below.is_empty() {
            why.push(format!("the guest was launched on a TCB below the committed TCB in {}", launch_below.join(", ")));
        }
        return ("OutOfDate", why.join("; "));
    }
    let above = reported.components_above(committed);
    if !above.is_empty() {
        return (
            "Uncommitted",
            format!(
                "the reported TCB is above the committed TCB in {}: the firmware may still be rolled back below it",
                above.join(", ")
            ),
        );
    }
    ("UpToDate", "the reported TCB is the committed TCB and the guest was launched on it or later".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const fn tcb(bootloader: u8, tee: u8, snp: u8, microcode: u8) -> Tcb {
        Tcb { bootloader, tee, snp, microcode, fmc: None }
    }

    #[test]
    fn comparison_is_per_component() {
        let cert = tcb(3, 0, 8, 115);
        assert!(tcb(3, 0, 8, 115).not_above(&cert));
        assert!(tcb(2, 0, 8, 100).not_above(&cert));
        assert_eq!(tcb(4, 0, 8, 115).components_above(&cert), vec!["bootloader"]);
        assert_eq!(tcb(3, 1, 9, 116).components_above(&cert), vec!["tee", "snp", "microcode"]);
        // Higher in one component, lower in another: still above.
        assert!(!tcb(2, 0, 9, 115).not_above(&cert));
        let turin = Tcb { fmc: Some(1), ..tcb(0, 0, 0, 9) };
        assert_eq!(turin.components_above(&Tcb { fmc: Some(0), ..turin }), vec!["fmc"]);
        assert_eq!(turin.components_above(&tcb(0, 0, 0, 9)), vec!["fmc"]);
        assert!(tcb(0, 0, 0, 9).not_above(&turin));
    }

    #[test]
    fn status_definitions() {
        let t = tcb(3, 0, 8, 115);
        assert_eq!(tcb_status(&t, &t, &t).0, "UpToDate");
        // Launched on an uncommitted, newer TCB: still up to date.
        assert_eq!(tcb_status(&t, &t, &tcb(3, 0, 8, 206)).0, "UpToDate");
        assert_eq!(tcb_status(&tcb(3, 0, 7, 115), &t, &t).0, "OutOfDate");
        assert_eq!(tcb_status(&t, &t, &tcb(3, 0, 7, 115)).0, "OutOfDate");
        assert_eq!(tcb_status(&tcb(3, 0, 9, 115), &t, &t).0, "Uncommitted");
    }

    #[test]
    fn hex_and_binary_evidence() {
        let mut raw = vec![0u8; REPORT_LEN];
        raw[0] = 2;
        assert_eq!(report_bytes(&raw).expect("binary"), raw);
        let text = hex::encode(&raw);
        assert_eq!(report_bytes(text.as_bytes()).expect("hex"), raw);
        let upper_spaced: String = text.to_uppercase().chars().enumerate().fold(String::new(), |mut s, (i, c)| {
            if i % 64 == 0 {
                s.push_str("\n  ");
            }
            s.push(c);
            s
        });
        assert_eq!(report_bytes(upper_spaced.as_bytes()).expect("spaced hex"), raw);
        assert!(matches!(report_bytes(&raw[1..]), Err(SnpError::ReportLength { found: 1183, .. })));
        assert!(matches!(report_bytes(b"abc"), Err(SnpError::ReportHex(_))));
        assert!(matches!(report_bytes(b""), Err(SnpError::ReportLength { found: 0, .. })));
        assert!(matches!(report_bytes(&vec![b'0'; MAX_HEX_LEN + 2]), Err(SnpError::ReportHex(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_reports_never_panic(bytes in proptest::collection::vec(any::<u8>(), REPORT_LEN..=REPORT_LEN)) {
            if let Ok(report) = parse_report(&bytes) {
                let _ = verify_signature(&bytes, &report, &[4u8; 97]);
            }
        }

        #[test]
        fn arbitrary_evidence_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(raw) = report_bytes(&bytes) {
                let _ = parse_report(&raw);
            }
        }
    }
}
