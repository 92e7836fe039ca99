//! Artifact headers come from files anyone can hand to `lamina run`: decoding must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut bytes = lamina_runtime::artifact::MAGIC.to_vec();
    bytes.extend_from_slice(data);
    let _ = lamina_runtime::artifact::decode(&bytes);
    let _ = lamina_runtime::artifact::decode(data);
});
