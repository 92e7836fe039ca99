//! Network rules are typed by operators and, in manifests, by anyone who deploys: parsing must
//! reject, never panic; an accepted rule shows as the text it was given (trimmed) and parses
//! again to the same rule; matching a rule against arbitrary hosts never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (rule, host) = text.split_once('\n').unwrap_or((text, "example.com"));
    if let Ok(parsed) = rule.parse::<lamina_types::OutboundRule>() {
        assert_eq!(parsed.to_string().parse::<lamina_types::OutboundRule>().ok(), Some(parsed.clone()));
        let _ = parsed.allows_http("https", host, 443);
        if let Ok(ip) = host.parse() {
            let _ = parsed.allows_socket(lamina_types::SocketProtocol::Tcp, ip, 80);
        }
    }
});
