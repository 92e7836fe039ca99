//! Attested TLS certificates come from peers before anything about them is trusted: reading one
//! (as a whole certificate, or as the evidence extension's value alone) and checking its key
//! binding must reject, never panic.
#![no_main]

use std::time::{Duration, SystemTime};

use lamina_attest::ratls::{appraise_certificate, decode_extension, parse_extension};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(evidence) = parse_extension(data) {
        let _ = evidence.binding();
        let _ = evidence.extension.platform();
    }
    if let Ok(extension) = decode_extension(data) {
        let _ = extension.platform();
    }
    // The whole appraisal, with no policy: every check is recorded, nothing panics.
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let appraisal = appraise_certificate(&lamina_attest::Verifier::default(), data, None, at);
    let _ = appraisal.reasons();
});
