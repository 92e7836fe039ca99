//! The CCA token's envelope, parsed strictly before any claim is decoded, and its COSE_Sign1
//! signatures checked with RustCrypto.
//!
//! Why Lamina reads the envelope itself instead of trusting `ccatoken` 0.1 end to end: its COSE
//! layer (`cose-rust`) panics on some hostile inputs (a signature shorter than the key's
//! coordinates, a platform token without an `alg` header, malformed thumbprint headers), and its
//! realm check rebuilds the realm key from unpadded coordinates, so a genuine realm key whose `x`
//! or `y` starts with a zero byte fails. So: this module admits only the shapes a CCA token has
//! (tagged collection, two tagged COSE_Sign1 with an integer ECDSA `alg` and no other header
//! than a content type or key id), and verifies both signatures over the exact bytes that
//! `ccatoken` then decodes the claims from.

use lamina_types::cbor::{self, Value};

/// The CBOR tag of a CCA token collection.
pub(super) const COLLECTION_TAG: u64 = 399;
/// The collection's key of the platform token.
pub(super) const PLATFORM_LABEL: u64 = 44234;
/// The collection's key of the realm token.
pub(super) const REALM_LABEL: u64 = 44241;
const SIGN1_TAG: u64 = 18;

/// The COSE algorithms CCA tokens are signed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Alg {
    /// ECDSA P-256 with SHA-256 (COSE -7).
    Es256,
    /// ECDSA P-384 with SHA-384 (COSE -35).
    Es384,
    /// ECDSA P-521 with SHA-512 (COSE -36): recognised, not verified by this build.
    Es512,
}

impl Alg {
    fn from_cose(id: i128) -> Option<Self> {
        match id {
            -7 => Some(Self::Es256),
            -35 => Some(Self::Es384),
            -36 => Some(Self::Es512),
            _ => None,
        }
    }

    /// The COSE name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    /// The curve the algorithm signs with, as JWK names it.
    pub(super) fn curve(self) -> &'static str {
        match self {
            Self::Es256 => "P-256",
            Self::Es384 => "P-384",
            Self::Es512 => "P-521",
        }
    }

    /// The length of a raw `r || s` signature.
    fn signature_len(self) -> usize {
        match self {
            Self::Es256 => 64,
            Self::Es384 => 96,
            Self::Es512 => 132,
        }
    }
}

/// One COSE_Sign1 message: what was signed and the signature.
#[derive(Clone, Debug)]
pub(super) struct Sign1 {
    /// The serialized protected header, exactly as signed.
    protected: Vec<u8>,
    /// The signing algorithm the protected header names.
    pub(super) alg: Alg,
    /// The payload (a CBOR claims map), exactly as signed.
    pub(super) payload: Vec<u8>,
    /// The raw `r || s` signature.
    signature: Vec<u8>,
}

/// The two signed tokens of a CCA attestation token.
#[derive(Clone, Debug)]
pub(super) struct Collection {
    /// The platform token (signed by the CPAK).
    pub(super) platform: Sign1,
    /// The realm token (signed by the RAK).
    pub(super) realm: Sign1,
}

impl Collection {
    /// Parses a token: `399({44234: platform COSE_Sign1, 44241: realm COSE_Sign1})`.
    pub(super) fn parse(token: &[u8], max: usize) -> Result<Self, String> {
        let value = cbor::decode_one(token, max).map_err(|e| format!("the token is not one CBOR item: {e}"))?;
        let Value::Tag(COLLECTION_TAG, inner) = value else {
            return Err(format!("the token is not a CCA token collection (CBOR tag {COLLECTION_TAG})"));
        };
        let Value::Map(entries) = *inner else {
            return Err("the token collection is not a map".into());
        };
        let (mut platform, mut realm) = (None, None);
        for (key, value) in entries {
            let label = int_of(&key).ok_or("the token collection has a key that is not an integer")?;
            let slot = match u64::try_from(label) {
                Ok(PLATFORM_LABEL) => &mut platform,
                Ok(REALM_LABEL) => &mut realm,
                _ => return Err(format!("the token collection has an unknown key {label}")),
            };
            let Value::Bytes(bytes) = value else {
                return Err(format!("the token collection's entry {label} is not a byte string"));
            };
            if slot.replace(bytes).is_some() {
                return Err(format!("the token collection has key {label} twice"));
            }
        }
        let platform = platform.ok_or("the token collection has no platform token (key 44234)")?;
        let realm = realm.ok_or("the token collection has no realm token (key 44241)")?;
        Ok(Self {
            platform: Sign1::parse(&platform, max).map_err(|e| format!("platform token: {e}"))?,
            realm: Sign1::parse(&realm, max).map_err(|e| format!("realm token: {e}"))?,
        })
    }
}

impl Sign1 {
    /// Parses a tagged COSE_Sign1 with an ECDSA `alg` and a signature of that algorithm's length.
    fn parse(bytes: &[u8], max: usize) -> Result<Self, String> {
        let value = cbor::decode_one(bytes, max).map_err(|e| format!("not one CBOR item: {e}"))?;
        let Value::Tag(SIGN1_TAG, inner) = value else {
            return Err(format!("not a tagged COSE_Sign1 (CBOR tag {SIGN1_TAG})"));
        };
        let Value::Array(items) = *inner else {
            return Err("the COSE_Sign1 is not an array".into());
        };
        let [protected, unprotected, payload, signature] = <[Value; 4]>::try_from(items)
            .map_err(|items| format!("the COSE_Sign1 has {} items, not 4", items.len()))?;
        let (Value::Bytes(protected), Value::Map(unprotected), Value::Bytes(payload), Value::Bytes(signature)) =
            (protected, unprotected, payload, signature)
        else {
            return Err("the COSE_Sign1 items are not [bstr, map, bstr, bstr]".into());
        };
        let alg = protected_alg(&protected, max)?;
        for (key, value) in &unprotected {
            match (int_of(key), value) {
                (Some(4), Value::Bytes(_)) => {}
                _ => return Err("unsupported unprotected header (only a key id is allowed)".into()),
            }
        }
        if payload.is_empty() {
            return Err("the payload is empty".into());
        }
        if signature.len() != alg.signature_len() {
            return Err(format!(
                "the {} signature is {} bytes, not {}",
                alg.name(),
                signature.len(),
                alg.signature_len()
            ));
        }
        Ok(Self { protected, alg, payload, signature })
    }

    /// The COSE `Sig_structure` the signature covers (no external data).
    fn to_be_signed(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(self.protected.clone()),
            Value::Bytes(Vec::new()),
            Value::Bytes(self.payload.clone()),
        ]))
    }

    /// Verifies the signature under a SEC1-encoded public key of the algorithm's curve.
    pub(super) fn verify(&self, sec1_key: &[u8]) -> Result<(), VerifyError> {
        use p256::ecdsa::signature::Verifier as _;
        let message = self.to_be_signed();
        match self.alg {
            Alg::Es256 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1_key).map_err(|_| VerifyError::Key)?;
                let sig = p256::ecdsa::Signature::from_slice(&self.signature).map_err(|_| VerifyError::Signature)?;
                key.verify(&message, &sig).map_err(|_| VerifyError::Mismatch)
            }
            Alg::Es384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(sec1_key).map_err(|_| VerifyError::Key)?;
                let sig = p384::ecdsa::Signature::from_slice(&self.signature).map_err(|_| VerifyError::Signature)?;
                key.verify(&message, &sig).map_err(|_| VerifyError::Mismatch)
            }
            Alg::Es512 => Err(VerifyError::Unsupported),
        }
    }
}

/// Why a signature did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VerifyError {
    /// The key is not a point of the algorithm's curve.
    Key,
    /// The signature is not a valid `r || s` pair.
    Signature,
    /// The signature is not the key's over the message.
    Mismatch,
    /// The algorithm is recognised but not verified by this build.
    Unsupported,
}

/// Reads the protected header: a map with an integer ECDSA `alg` and at most a numeric content type.
fn protected_alg(protected: &[u8], max: usize) -> Result<Alg, String> {
    let value = cbor::decode_one(protected, max).map_err(|e| format!("the protected header is not CBOR: {e}"))?;
    let Value::Map(entries) = value else {
        return Err("the protected header is not a map".into());
    };
    let mut alg = None;
    for (key, value) in &entries {
        match (int_of(key), value) {
            (Some(1), Value::Integer(id)) if alg.is_none() => {
                let id = i128::from(*id);
                alg = Some(Alg::from_cose(id).ok_or(format!("unsupported signature algorithm {id}"))?);
            }
            (Some(3), Value::Integer(_)) => {}
            (Some(label), _) => return Err(format!("unsupported or malformed protected header {label}")),
            (None, _) => return Err("the protected header has a key that is not an integer".into()),
        }
    }
    alg.ok_or_else(|| "the protected header names no signature algorithm (alg)".into())
}

/// The value of an integer key.
pub(super) fn int_of(value: &Value) -> Option<i128> {
    match value {
        Value::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign1(protected: &Value, unprotected: Vec<(Value, Value)>, signature: Vec<u8>) -> Vec<u8> {
        cbor::encode(&Value::Tag(
            SIGN1_TAG,
            Box::new(Value::Array(vec![
                Value::Bytes(cbor::encode(protected)),
                Value::Map(unprotected),
                Value::Bytes(vec![0xa0]),
                Value::Bytes(signature),
            ])),
        ))
    }

    fn alg(id: i64) -> Value {
        Value::Map(vec![(Value::Integer(1.into()), Value::Integer(id.into()))])
    }

    #[test]
    fn admits_only_ecdsa_sign1_with_matching_signature_length() {
        assert!(Sign1::parse(&sign1(&alg(-7), vec![], vec![0; 64]), 4096).is_ok());
        assert!(Sign1::parse(&sign1(&alg(-35), vec![], vec![0; 96]), 4096).is_ok());
        let short = Sign1::parse(&sign1(&alg(-35), vec![], vec![0; 10]), 4096).expect_err("short signature");
        assert!(short.contains("10 bytes, not 96"), "{short}");
        let no_alg = Sign1::parse(&sign1(&Value::Map(vec![]), vec![], vec![0; 64]), 4096).expect_err("no alg");
        assert!(no_alg.contains("no signature algorithm"), "{no_alg}");
        let rsa = Sign1::parse(&sign1(&alg(-37), vec![], vec![0; 64]), 4096).expect_err("PS256");
        assert!(rsa.contains("unsupported signature algorithm -37"), "{rsa}");
        let x5t = Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer((-7).into())),
            (Value::Integer(34.into()), Value::Array(vec![])),
        ]);
        assert!(Sign1::parse(&sign1(&x5t, vec![], vec![0; 64]), 4096).is_err());
        let kid = vec![(Value::Integer(4.into()), Value::Bytes(vec![1]))];
        assert!(Sign1::parse(&sign1(&alg(-7), kid, vec![0; 64]), 4096).is_ok());
        let text_kid = vec![(Value::Integer(4.into()), Value::Text("k".into()))];
        assert!(Sign1::parse(&sign1(&alg(-7), text_kid, vec![0; 64]), 4096).is_err());
    }

    #[test]
    fn signature_covers_the_protected_header_and_payload() {
        use p256::ecdsa::signature::Signer as _;
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("scalar");
        let mut message = Sign1::parse(&sign1(&alg(-7), vec![], vec![0; 64]), 4096).expect("parses");
        let sig: p256::ecdsa::Signature = key.sign(&message.to_be_signed());
        message.signature = sig.to_bytes().to_vec();
        let public = key.verifying_key().to_encoded_point(false);
        assert_eq!(message.verify(public.as_bytes()), Ok(()));
        message.payload = vec![0xa1, 0x01, 0x01];
        assert_eq!(message.verify(public.as_bytes()), Err(VerifyError::Mismatch));
        assert_eq!(message.verify(&[4; 65]), Err(VerifyError::Key));
        message.signature = vec![0; 64];
        assert_eq!(message.verify(public.as_bytes()), Err(VerifyError::Signature));
    }
}
