//! DCAP quotes come from peers: the verifier must reject what is wrong, never panic, and never
//! report as verified a quote whose signed part differs from a genuine one.
//!
//! The first byte picks the collateral (none, or the real SGX or TDX collateral of the shared
//! test vectors, verified inside their validity window) and the input: either the remaining
//! bytes as a quote, or the real quote of that collateral with byte patches (3 bytes each: a
//! little-endian offset and a value), which reaches the checks behind the parser.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use lamina_attest::{Inputs, TrustAnchors, dcap};

/// 2025-06-25T00:00:00Z, inside the windows of the sgx and tdx collateral.
const JUNE_2025: u64 = 1_750_809_600;

/// (quote, collateral) for SGX and TDX, when the shared test vectors are found.
fn vectors() -> &'static [(Vec<u8>, Vec<u8>)] {
    static VECTORS: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
    VECTORS.get_or_init(|| {
        let Some(dir) = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("shared/testvectors/dcap-qvl"))
            .find(|dir| dir.is_dir())
        else {
            return Vec::new();
        };
        ["sgx_quote", "tdx_quote"]
            .iter()
            .filter_map(|name| {
                let quote = std::fs::read(dir.join(name)).ok()?;
                let collateral = std::fs::read(dir.join(format!("{name}_collateral.json"))).ok()?;
                Some((quote, collateral))
            })
            .collect()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let vectors = vectors();
    let real = match mode & 0x03 {
        0 => None,
        n => vectors.get(usize::from(n - 1) % vectors.len().max(1)),
    };
    let collateral = real.map(|(_, collateral)| collateral.as_slice());
    let patched;
    let quote = match real {
        Some((quote, _)) if mode & 0x80 != 0 => {
            let mut q = quote.clone();
            for patch in rest.chunks_exact(3) {
                let offset = usize::from(u16::from_le_bytes([patch[0], patch[1]])) % q.len();
                q[offset] = patch[2];
            }
            patched = q;
            patched.as_slice()
        }
        _ => rest,
    };
    let anchors = TrustAnchors::default();
    let inputs = Inputs {
        evidence: quote,
        endorsements: &[],
        collateral,
        anchors: &anchors,
        at: UNIX_EPOCH + Duration::from_secs(JUNE_2025),
    };
    let appraisal = dcap::verify(&inputs);
    let report_data = dcap::quote_report_data(quote);
    if appraisal.verified() {
        // Only the real quote (up to bytes nothing signs) verifies: its report data is intact.
        let (genuine, _) = real.expect("nothing verifies without collateral");
        assert_eq!(report_data, dcap::quote_report_data(genuine), "a verified quote has the genuine report data");
        assert_eq!(appraisal.report_data, dcap::quote_report_data(genuine).map(|d| d.to_vec()).unwrap_or_default());
    }
});
