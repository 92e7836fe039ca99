//! The sealed envelope: what travels through the broker in place of a message.
//!
//! ```text
//! magic    4 bytes   "LMS" 0x01
//! epoch    u32 BE    the topic key's epoch
//! sender   u8 length (1..=255) + UTF-8: the publishing instance, workload/replica@node
//! session  16 bytes  random per publishing instance: its message keys derive from it
//! sequence u64 BE    1, 2, 3, … per session: the AES-GCM nonce and the replay window
//! sent at  u64 BE    milliseconds since the Unix epoch, by the publisher's clock
//! sealed   the rest  AES-256-GCM of the body, 16-byte tag last; the associated data is
//!                    everything above and the topic
//! ```
//!
//! The body is the message's content type, metadata and payload:
//!
//! ```text
//! content type  u8 flag (0 none, 1 some) [+ u16 BE length + UTF-8]
//! metadata      u16 BE count, each: u16 BE length + UTF-8 name, u32 BE length + UTF-8 value
//! payload       the rest
//! ```
//!
//! Both parsers take bytes a peer controls: they return errors, never panic.

/// The envelope's first four bytes (format version 1).
pub const MAGIC: [u8; 4] = *b"LMS\x01";
/// The AES-GCM tag's length.
pub const TAG: usize = 16;
/// The session identifier's length.
pub const SESSION: usize = 16;
/// The longest sender identity.
pub const MAX_SENDER: usize = 255;

/// Why bytes are not a sealed envelope (or its body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// It does not start with [`MAGIC`]: a message published without sealing.
    NotSealed,
    /// It ends before a field does.
    Truncated,
    /// A text field is not UTF-8 (or the sender is empty).
    BadText,
    /// Bytes are left over where none may be.
    Trailing,
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EnvelopeError::NotSealed => "the message is not sealed (published without a topic key)",
            EnvelopeError::Truncated => "the sealed message is truncated",
            EnvelopeError::BadText => "a text field of the sealed message is not UTF-8",
            EnvelopeError::Trailing => "the sealed message has bytes after its last field",
        })
    }
}

impl std::error::Error for EnvelopeError {}

/// A parsed envelope's clear fields and where its ciphertext starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The topic key's epoch.
    pub epoch: u32,
    /// The publishing instance.
    pub sender: &'a str,
    /// The publisher's session.
    pub session: [u8; SESSION],
    /// The message's sequence number in its session.
    pub sequence: u64,
    /// When it was sent (milliseconds since the Unix epoch, the publisher's clock).
    pub sent_at: u64,
    /// The length of the clear part (the associated data's first part).
    pub clear_len: usize,
}

/// The clear part of an envelope.
///
/// # Panics
/// Never for a sender of 1 to [`MAX_SENDER`] bytes; longer senders are cut (the caller checks).
pub fn header(epoch: u32, sender: &str, session: &[u8; SESSION], sequence: u64, sent_at: u64) -> Vec<u8> {
    let sender = &sender.as_bytes()[..sender.len().min(MAX_SENDER)];
    let mut out = Vec::with_capacity(4 + 4 + 1 + sender.len() + SESSION + 8 + 8);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.push(u8::try_from(sender.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(sender);
    out.extend_from_slice(session);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&sent_at.to_be_bytes());
    out
}

/// A cursor over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let end = self.at.checked_add(n).ok_or(EnvelopeError::Truncated)?;
        let out = self.bytes.get(self.at..end).ok_or(EnvelopeError::Truncated)?;
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        self.take(N)?.try_into().map_err(|_| EnvelopeError::Truncated)
    }

    fn text(&mut self, n: usize) -> Result<&'a str, EnvelopeError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| EnvelopeError::BadText)
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = self.bytes.get(self.at..).unwrap_or_default();
        self.at = self.bytes.len();
        out
    }
}

/// Parses an envelope's clear part.
///
/// # Errors
/// [`EnvelopeError`] when `bytes` is not an envelope (or has no room for a tag).
pub fn parse(bytes: &[u8]) -> Result<Header<'_>, EnvelopeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.array::<4>().map_err(|_| EnvelopeError::NotSealed)? != MAGIC {
        return Err(EnvelopeError::NotSealed);
    }
    let epoch = u32::from_be_bytes(r.array()?);
    let [n] = r.array::<1>()?;
    if n == 0 {
        return Err(EnvelopeError::BadText);
    }
    let sender = r.text(usize::from(n))?;
    let session = r.array()?;
    let sequence = u64::from_be_bytes(r.array()?);
    let sent_at = u64::from_be_bytes(r.array()?);
    let clear_len = r.at;
    if bytes.len() - clear_len < TAG {
        return Err(EnvelopeError::Truncated);
    }
    Ok(Header { epoch, sender, session, sequence, sent_at, clear_len })
}

/// A message's body: content type, metadata, payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// The payload's media type.
    pub content_type: Option<String>,
    /// Headers.
    pub metadata: Vec<(String, String)>,
    /// The payload.
    pub data: Vec<u8>,
}

/// Encodes a body; `None` when a field is over its length field (the caller's limits keep
/// them far below).
pub fn encode_body(content_type: Option<&str>, metadata: &[(String, String)], data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + 64);
    match content_type {
        None => out.push(0),
        Some(ct) => {
            out.push(1);
            out.extend_from_slice(&u16::try_from(ct.len()).ok()?.to_be_bytes());
            out.extend_from_slice(ct.as_bytes());
        }
    }
    out.extend_from_slice(&u16::try_from(metadata.len()).ok()?.to_be_bytes());
    for (name, value) in metadata {
        out.extend_from_slice(&u16::try_from(name.len()).ok()?.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(data);
    Some(out)
}

/// Parses a body.
///
/// # Errors
/// [`EnvelopeError`] when `bytes` is not a body.
pub fn parse_body(bytes: &[u8]) -> Result<Body, EnvelopeError> {
    let mut r = Reader { bytes, at: 0 };
    let content_type = match r.array::<1>()? {
        [0] => None,
        [1] => {
            let n = u16::from_be_bytes(r.array()?);
            Some(r.text(usize::from(n))?.to_owned())
        }
        _ => return Err(EnvelopeError::BadText),
    };
    let count = u16::from_be_bytes(r.array()?);
    // Each entry takes at least six bytes: a hostile count cannot make a large allocation.
    let mut metadata = Vec::with_capacity(usize::from(count).min(bytes.len() / 6));
    for _ in 0..count {
        let n = u16::from_be_bytes(r.array()?);
        let name = r.text(usize::from(n))?.to_owned();
        let n = u32::from_be_bytes(r.array()?);
        let value = r.text(usize::try_from(n).map_err(|_| EnvelopeError::Truncated)?)?.to_owned();
        metadata.push((name, value));
    }
    Ok(Body { content_type, metadata, data: r.rest().to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_header_parses_back() {
        let h = header(7, "filter/0@edge-1", &[9; SESSION], 42, 1_700_000_000_000);
        let mut sealed = h.clone();
        sealed.extend_from_slice(&[0; TAG]);
        let parsed = parse(&sealed).expect("an envelope");
        assert_eq!(
            parsed,
            Header {
                epoch: 7,
                sender: "filter/0@edge-1",
                session: [9; SESSION],
                sequence: 42,
                sent_at: 1_700_000_000_000,
                clear_len: h.len()
            }
        );
        assert_eq!(parse(&h), Err(EnvelopeError::Truncated), "no room for the tag");
        assert_eq!(parse(b"hello"), Err(EnvelopeError::NotSealed));
        assert_eq!(parse(b""), Err(EnvelopeError::NotSealed));
    }

    #[test]
    fn bodies_parse_back_and_malformed_ones_say_why() {
        let meta = vec![("a".to_owned(), "b".to_owned()), ("c".to_owned(), String::new())];
        let bytes = encode_body(Some("text/plain"), &meta, b"payload").expect("encodes");
        let body = parse_body(&bytes).expect("a body");
        assert_eq!(body, Body { content_type: Some("text/plain".into()), metadata: meta, data: b"payload".to_vec() });
        assert_eq!(parse_body(&[2]), Err(EnvelopeError::BadText));
        assert_eq!(parse_body(&[0, 0xff, 0xff]), Err(EnvelopeError::Truncated));
        assert_eq!(parse_body(&[1, 0, 1, 0xff, 0, 0]), Err(EnvelopeError::BadText));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
            let _ = parse_body(&bytes);
        }

        #[test]
        fn any_body_round_trips(
            ct in proptest::option::of(".{0,20}"),
            meta in proptest::collection::vec((".{0,8}", ".{0,8}"), 0..5),
            data in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let bytes = encode_body(ct.as_deref(), &meta, &data).expect("encodes");
            prop_assert_eq!(parse_body(&bytes).expect("parses"), Body { content_type: ct, metadata: meta, data });
        }
    }
}
