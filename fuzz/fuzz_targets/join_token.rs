//! Join tokens are pasted by operators and presented by nodes: parsing must reject, never
//! panic, and whatever it accepts must encode back to the same token.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(token) = text.parse::<lamina_types::JoinToken>()
    {
        assert_eq!(token.encode().parse::<lamina_types::JoinToken>().ok(), Some(token));
    }
});
