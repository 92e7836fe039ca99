//! `lamina inspect` parses arbitrary files: it must return an error, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lamina_runtime::describe(data);
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend_from_slice(data);
    let _ = lamina_runtime::describe(&wasm);
});
