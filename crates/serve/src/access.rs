//! The access log: one line per request, in the order responses start.

use std::io::{LineWriter, Write};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Where access lines go: a file (appended to) or standard error.
pub struct AccessLog {
    out: Mutex<LineWriter<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

/// What the log says of a request, taken before the request is handed on.
pub(crate) struct RequestLine {
    method: String,
    target: String,
    version: &'static str,
}

impl RequestLine {
    pub(crate) fn of<B>(request: &http::Request<B>) -> Self {
        let version = match request.version() {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        };
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        Self { method: request.method().to_string(), target: escape(target), version }
    }
}

/// Keeps a client's bytes from breaking the log's line structure.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(2048));
    for c in text.chars().take(2048) {
        match c {
            '"' => out.push_str("%22"),
            c if c.is_control() || c == ' ' => out.push_str(&format!("%{:02X}", u32::from(c) & 0xff)),
            c => out.push(c),
        }
    }
    out
}

impl AccessLog {
    /// A log written to `out`, one line per request.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out: Mutex::new(LineWriter::new(out)) }
    }

    /// Appends a line: time, client, request line, status, time to the response's start.
    ///
    /// `2026-12-06T15:00:00Z 127.0.0.1:50000 "GET /path HTTP/1.1" 200 1.234ms`
    pub(crate) fn write(&self, peer: SocketAddr, line: &RequestLine, status: u16, took: Duration) {
        let when = humantime::format_rfc3339_seconds(SystemTime::now());
        let text = format!(
            "{when} {peer} \"{} {} {}\" {status} {:.3}ms\n",
            line.method,
            line.target,
            line.version,
            took.as_secs_f64() * 1000.0
        );
        if let Ok(mut out) = self.out.lock()
            && let Err(e) = out.write_all(text.as_bytes())
        {
            tracing::warn!(target: crate::LOG_TARGET, "cannot write the access log: {e}");
        }
    }

    pub(crate) fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_logged_target_is_one_unquoted_token(text in "\\PC{0,64}|[\\x00-\\x20\"]{0,16}") {
            let escaped = escape(&text);
            prop_assert!(!escaped.contains(['"', ' ', '\n', '\r']));
        }
    }
}
