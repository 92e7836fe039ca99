//! What a client of the control plane attests with: an attested TLS certificate for its key,
//! and evidence over one of the control plane's challenges. Shared by node agents and by
//! control-plane replicas that join their cluster.

use lamina_attest::ratls::{AttestedCert, CertificateRequest};
use lamina_tee::Platform;
use lamina_types::{Claims, Envelope, MAX_ENVELOPE_LEN};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Evidence as it travels in an API body: an [`Envelope`], written as the hex of its canonical
/// CBOR. Reading a body checks it (hex, at most [`MAX_ENVELOPE_LEN`] bytes, a canonical
/// envelope), so a handler is given an envelope or the request is refused before it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence(pub Envelope);

impl From<Envelope> for Evidence {
    fn from(envelope: Envelope) -> Self {
        Self(envelope)
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0.to_cbor()))
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let text = String::deserialize(deserializer)?;
        if text.len() > 2 * MAX_ENVELOPE_LEN {
            return Err(D::Error::custom(format!(
                "the evidence is {} hex digits; the most is {}",
                text.len(),
                2 * MAX_ENVELOPE_LEN
            )));
        }
        let bytes = hex::decode(&text).map_err(|_| D::Error::custom("the evidence is not hex"))?;
        Envelope::from_cbor(&bytes).map(Self).map_err(|e| D::Error::custom(format!("the evidence: {e}")))
    }
}

/// Why evidence could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The key is not a PKCS#8 P-256 key.
    #[error("the key: {0}")]
    Key(String),
    /// The challenge is not hex.
    #[error("the challenge is not hex")]
    Challenge,
    /// The platform could not attest.
    #[error("the platform cannot attest: {0}")]
    Attest(String),
}

/// The measurement of the running binary (zeros where it cannot be read).
fn runtime_measurement() -> Vec<u8> {
    lamina_tee::runtime_measurement().unwrap_or_else(|_| vec![0; 32])
}

/// An attested certificate (RA-TLS) for `key` (PKCS#8 DER, P-256): the platform's evidence
/// binds the key.
///
/// # Errors
/// [`EvidenceError`] for a malformed key or a platform that cannot attest.
pub fn attested_certificate(platform: &dyn Platform, key: &[u8]) -> Result<AttestedCert, EvidenceError> {
    let request = CertificateRequest::with_key(key).map_err(|e| EvidenceError::Key(e.to_string()))?;
    let claims = request.claims(platform.info().kind, runtime_measurement(), None, None);
    let envelope = lamina_tee::attest(platform, &claims).map_err(|e| EvidenceError::Attest(e.to_string()))?;
    request.finish(&envelope).map_err(|e| EvidenceError::Attest(e.to_string()))
}

/// Evidence from the platform over a challenge of the control plane (`nonce_hex`), binding the
/// key whose SubjectPublicKeyInfo is `spki`: the envelope, hex.
///
/// # Errors
/// [`EvidenceError`] for a malformed challenge or a platform that cannot attest.
pub fn challenge_evidence(platform: &dyn Platform, nonce_hex: &str, spki: &[u8]) -> Result<Evidence, EvidenceError> {
    let nonce = hex::decode(nonce_hex).map_err(|_| EvidenceError::Challenge)?;
    let claims = Claims {
        platform: platform.info().kind,
        runtime_measurement: runtime_measurement(),
        module_hash: None,
        config_digest: None,
        instance_key: Some(spki.to_vec()),
        nonce,
        issued_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    lamina_tee::attest(platform, &claims).map(Evidence).map_err(|e| EvidenceError::Attest(e.to_string()))
}

/// The SubjectPublicKeyInfo (DER) of a PKCS#8 P-256 key.
///
/// # Errors
/// [`EvidenceError::Key`] for a malformed key.
pub fn spki(key: &[u8]) -> Result<Vec<u8>, EvidenceError> {
    use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
    let secret = p256::SecretKey::from_pkcs8_der(key).map_err(|e| EvidenceError::Key(e.to_string()))?;
    let der = secret.public_key().to_public_key_der().map_err(|e| EvidenceError::Key(e.to_string()))?;
    Ok(der.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamina_types::PlatformKind;

    fn envelope() -> Envelope {
        Envelope { platform: PlatformKind::Sim, claims: vec![1, 2], evidence: vec![3], endorsements: vec![vec![4]] }
    }

    #[test]
    fn evidence_travels_as_the_hex_of_its_canonical_cbor() {
        let json = serde_json::to_string(&Evidence(envelope())).expect("serialises");
        assert_eq!(json, format!("\"{}\"", hex::encode(envelope().to_cbor())));
        let back: Evidence = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back.0, envelope());
    }

    #[test]
    fn a_body_whose_evidence_is_not_an_envelope_is_refused_when_read() {
        for (text, why) in [
            ("\"zz\"".to_owned(), "not hex"),
            ("\"00\"".to_owned(), "the evidence:"),
            (format!("\"{}\"", "00".repeat(MAX_ENVELOPE_LEN + 1)), "hex digits; the most is"),
        ] {
            let e = serde_json::from_str::<Evidence>(&text).expect_err(why);
            assert!(e.to_string().contains(why), "{e}");
        }
    }
}
