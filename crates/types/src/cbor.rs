//! Strict CBOR helpers shared by every canonical format (claims, envelopes, evidence).
//!
//! Decoding takes exactly one item within a size bound; canonical form is then checked by the
//! caller re-encoding its parsed structure and comparing bytes, which keeps each format's
//! parser a plain structural match.

pub use ciborium::Value;

/// Why bytes are not one bounded CBOR item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CborError {
    /// Larger than the format allows.
    #[error("{len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The format's limit.
        max: usize,
    },
    /// Not well-formed CBOR.
    #[error("not well-formed CBOR: {0}")]
    Malformed(String),
    /// Bytes after the item.
    #[error("{0} bytes follow the CBOR item")]
    Trailing(usize),
}

/// Decodes exactly one CBOR item of at most `max` bytes.
///
/// # Errors
/// [`CborError`] when the input is too large, malformed or followed by more bytes.
pub fn decode_one(bytes: &[u8], max: usize) -> Result<Value, CborError> {
    if bytes.len() > max {
        return Err(CborError::TooLarge { len: bytes.len(), max });
    }
    let mut reader = bytes;
    let value = ciborium::from_reader(&mut reader).map_err(|e| CborError::Malformed(e.to_string()))?;
    if !reader.is_empty() {
        return Err(CborError::Trailing(reader.len()));
    }
    Ok(value)
}

/// Encodes a value (ciborium writes integers and lengths in their shortest form).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every `Value` is encodable.
    let _ = ciborium::into_writer(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_item_only() {
        assert_eq!(decode_one(&[0x01], 8), Ok(Value::Integer(1.into())));
        assert_eq!(decode_one(&[0x01, 0x02], 8), Err(CborError::Trailing(1)));
        assert!(matches!(decode_one(&[0x5f], 8), Err(CborError::Malformed(_))));
        assert_eq!(decode_one(&[0; 9], 8), Err(CborError::TooLarge { len: 9, max: 8 }));
        assert_eq!(encode(&Value::Integer(1.into())), vec![0x01]);
    }
}
