//! A sealed volume's header (`volume.lamina`) is read from the untrusted host and parsed before
//! its MAC can be checked: decoding must reject, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lamina_seal::fuzzing::decode_header(data);
});
