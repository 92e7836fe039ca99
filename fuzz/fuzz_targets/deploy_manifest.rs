//! Deployment manifests come from users (and through the API, from anyone with credentials):
//! parsing must reject with an error naming the line, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lamina_types::Deployment::parse(text);
    }
});
