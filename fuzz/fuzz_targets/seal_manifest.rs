//! A sealed volume's manifest is authenticated before it is decoded, so only a key holder can
//! feed this decoder; it must still reject malformed bytes without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lamina_seal::fuzzing::decode_manifest(data);
});
