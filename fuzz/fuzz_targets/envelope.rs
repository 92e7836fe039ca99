//! Envelopes and sim evidence come from peers: decoding must reject, never panic, and whatever
//! it accepts must re-encode to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = lamina_types::Envelope::from_cbor(data) {
        assert_eq!(envelope.to_cbor(), data, "accepted envelopes are canonical");
        let _ = envelope.decode_claims();
    }
    if let Ok(evidence) = lamina_types::sim_evidence::SimEvidence::from_cbor(data) {
        assert_eq!(evidence.to_cbor(), data, "accepted sim evidence is canonical");
    }
});
