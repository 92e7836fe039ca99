//! Command-line values (sizes, durations, mounts, targets, hashes) parse or fail, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = s.parse::<lamina_types::ByteSize>();
    let _ = lamina_types::parse_duration(s);
    let _ = s.parse::<lamina_types::DirMount>();
    let _ = s.parse::<lamina_types::Target>();
    let _ = s.parse::<lamina_types::ModuleHash>();
    let _ = s.parse::<lamina_types::Profile>();
});
