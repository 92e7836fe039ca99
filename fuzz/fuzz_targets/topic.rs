//! Topics and subscription patterns come from guests (and, across nodes, from peers): parsing
//! and matching must never panic, and a pattern without wildcards matches exactly itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, topic) = text.split_once('\n').unwrap_or((text, text));
    if let Ok(p) = lamina_host_messaging::Pattern::parse(pattern) {
        let _ = p.matches(topic);
        if lamina_host_messaging::check_topic(pattern).is_ok() {
            assert!(p.matches(pattern), "{pattern:?} must match itself");
        }
    }
});
