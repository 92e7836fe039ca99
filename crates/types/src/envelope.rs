//! The evidence envelope: one structure for every platform, in canonical CBOR.
//!
//! `[1, platform, claims, evidence, [endorsement, ...]]`: a version, the platform's name, the
//! canonical claims (whose hash the evidence binds), the native evidence bytes, and optional
//! endorsements (certificates, keys, collateral). It travels in API bodies and inside attested
//! TLS certificates, so decoding is strict and bounded.

use crate::cbor::{self, Value};
use crate::{Claims, PlatformKind};

/// The largest envelope accepted (quotes with collateral are tens of KiB; this leaves room).
pub const MAX_ENVELOPE_LEN: usize = 1 << 20;

const VERSION: u64 = 1;

/// Evidence from any platform, with the claims it binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The platform that produced the evidence.
    pub platform: PlatformKind,
    /// Canonical CBOR claims (see [`Claims::to_cbor`]).
    pub claims: Vec<u8>,
    /// The platform's native evidence (a quote, a report, a token, a signature).
    pub evidence: Vec<u8>,
    /// Endorsements that help verify the evidence (certificates, keys, collateral).
    pub endorsements: Vec<Vec<u8>>,
}

/// Bytes that are not a well-formed envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Larger than [`MAX_ENVELOPE_LEN`].
    #[error("an envelope of {0} bytes is larger than the {MAX_ENVELOPE_LEN}-byte limit")]
    TooLarge(usize),
    /// Not one CBOR item.
    #[error("the envelope is not well-formed CBOR: {0}")]
    Cbor(String),
    /// Wrong shape, version or field type.
    #[error("the envelope is malformed: {0}")]
    Malformed(String),
    /// Well-formed but not canonically encoded.
    #[error("the envelope is not in canonical CBOR")]
    NotCanonical,
}

impl Envelope {
    /// The decoded claims.
    ///
    /// # Errors
    /// When the claims are not canonical Lamina claims.
    pub fn decode_claims(&self) -> Result<Claims, crate::ClaimsError> {
        Claims::from_cbor(&self.claims)
    }

    /// Encodes the envelope.
    pub fn to_cbor(&self) -> Vec<u8> {
        let value = Value::Array(vec![
            Value::Integer(VERSION.into()),
            Value::Text(self.platform.name().into()),
            Value::Bytes(self.claims.clone()),
            Value::Bytes(self.evidence.clone()),
            Value::Array(self.endorsements.iter().cloned().map(Value::Bytes).collect()),
        ]);
        cbor::encode(&value)
    }

    /// Decodes an envelope, accepting only the canonical encoding.
    ///
    /// # Errors
    /// An [`EnvelopeError`] saying what is wrong.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let value = cbor::decode_one(bytes, MAX_ENVELOPE_LEN).map_err(|e| match e {
            cbor::CborError::TooLarge { len, .. } => EnvelopeError::TooLarge(len),
            other => EnvelopeError::Cbor(other.to_string()),
        })?;
        let malformed = |m: &str| EnvelopeError::Malformed(m.to_owned());
        let Value::Array(items) = value else { return Err(malformed("not an array")) };
        let [version, platform, claims, evidence, endorsements]: [Value; 5] =
            items.try_into().map_err(|_| malformed("expected 5 items"))?;
        if version.as_integer() != Some(VERSION.into()) {
            return Err(malformed("unsupported version (this Lamina reads version 1)"));
        }
        let platform = match platform {
            Value::Text(name) => PlatformKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| EnvelopeError::Malformed(format!("unknown platform `{}`", name.escape_debug())))?,
            _ => return Err(malformed("the platform is not a text string")),
        };
        let Value::Bytes(claims) = claims else { return Err(malformed("the claims are not a byte string")) };
        let Value::Bytes(evidence) = evidence else { return Err(malformed("the evidence is not a byte string")) };
        let Value::Array(endorsements) = endorsements else {
            return Err(malformed("the endorsements are not an array"));
        };
        let endorsements = endorsements
            .into_iter()
            .map(|e| match e {
                Value::Bytes(b) => Ok(b),
                _ => Err(malformed("an endorsement is not a byte string")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope { platform, claims, evidence, endorsements };
        if envelope.to_cbor() != bytes {
            return Err(EnvelopeError::NotCanonical);
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope {
            platform: PlatformKind::Snp,
            claims: vec![0xa0],
            evidence: vec![1, 2, 3],
            endorsements: vec![vec![4], vec![]],
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(Envelope::from_cbor(&e.to_cbor()), Ok(e));
    }

    #[test]
    fn rejects_wrong_shapes() {
        let mut bytes = sample().to_cbor();
        bytes.push(0);
        assert!(matches!(Envelope::from_cbor(&bytes), Err(EnvelopeError::Cbor(_))));
        let mut wrong_version = sample().to_cbor();
        wrong_version[1] = 2;
        assert!(matches!(Envelope::from_cbor(&wrong_version), Err(EnvelopeError::Malformed(_))));
        assert!(matches!(Envelope::from_cbor(&[0x80]), Err(EnvelopeError::Malformed(_))));
        assert!(matches!(Envelope::from_cbor(&vec![0; MAX_ENVELOPE_LEN + 1]), Err(EnvelopeError::TooLarge(_))));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::from_cbor(&bytes);
        }

        #[test]
        fn every_envelope_round_trips(
            claims in proptest::collection::vec(any::<u8>(), 0..64),
            evidence in proptest::collection::vec(any::<u8>(), 0..300),
            endorsements in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4),
            platform in prop::sample::select(PlatformKind::ALL.to_vec()),
        ) {
            let e = Envelope { platform, claims, evidence, endorsements };
            prop_assert_eq!(Envelope::from_cbor(&e.to_cbor()), Ok(e));
        }
    }
}
