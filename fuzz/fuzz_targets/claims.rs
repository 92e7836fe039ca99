//! Claims arrive inside evidence from peers: decoding must reject, never panic, and whatever
//! it accepts must re-encode to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(claims) = lamina_types::Claims::from_cbor(data) {
        assert_eq!(claims.to_cbor().as_deref(), Ok(data), "accepted claims are canonical");
    }
});
