//! An error and its sources as one line, for logs and for messages sent to a peer.

/// `error: source: source…`: what [`std::error::Error::source`] chains, in order.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the log")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_source_is_shown_in_order() {
        let e = Outer(std::io::ErrorKind::PermissionDenied.into());
        assert_eq!(super::error_chain(&e), "cannot open the log: permission denied");
    }
}
