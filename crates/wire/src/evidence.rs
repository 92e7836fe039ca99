//! What a client of the control plane attests with: an attested TLS certificate for its key,
//! and evidence over one of the control plane's challenges. Shared by node agents and by
//! control-plane replicas that join their cluster.

use lamina_attest::ratls::{AttestedCert, CertificateRequest};
use lamina_tee::Platform;
use lamina_types::Claims;

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
pub fn challenge_evidence(platform: &dyn Platform, nonce_hex: &str, spki: &[u8]) -> Result<String, EvidenceError> {
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
    let envelope = lamina_tee::attest(platform, &claims).map_err(|e| EvidenceError::Attest(e.to_string()))?;
    Ok(hex::encode(envelope.to_cbor()))
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
