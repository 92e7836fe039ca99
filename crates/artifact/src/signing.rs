//! Signed artifacts: the control plane (or an operator with `lamina compile --sign`) signs each
//! artifact it builds, and a node checks the signature against the keys it trusts before the
//! artifact reaches the engine.
//!
//! The signature is detached (ECDSA P-256, DER, as `openssl dgst -sha256 -sign` makes them) and
//! covers the artifact's header under a domain tag: the header names the module hash, the
//! target, the engine, the profile and the checksum of the code, so the whole artifact is bound
//! while signing and checking hash a few hundred bytes, not megabytes of code.

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::ArtifactError;
use crate::format::{self, Artifact};

/// What a signature covers: this tag, then the artifact's header exactly as stored.
const DOMAIN: &[u8] = b"lamina-artifact-signature-v1\0";

/// The signed statement of an artifact: the domain tag and its stored header.
fn statement(bytes: &[u8]) -> Result<Vec<u8>, ArtifactError> {
    let header = format::header_bytes(bytes)?;
    let mut out = Vec::with_capacity(DOMAIN.len() + header.len());
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(header);
    Ok(out)
}

/// Signs an artifact; returns the DER signature.
///
/// # Errors
/// [`ArtifactError::Malformed`] when the bytes are not an artifact.
pub fn sign(bytes: &[u8], key: &SigningKey) -> Result<Vec<u8>, ArtifactError> {
    let signature: DerSignature = key.sign(&statement(bytes)?);
    Ok(signature.as_bytes().to_vec())
}

/// The name a key is known by in messages: the first 16 hex digits of the SHA-256 of its
/// SubjectPublicKeyInfo.
pub fn key_id(key: &VerifyingKey) -> String {
    use p256::pkcs8::EncodePublicKey as _;
    let der = key.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
    hex::encode(&Sha256::digest(der)[..8])
}

/// Checks an artifact's signature against the trusted keys, and the artifact itself (header
/// and code checksum); returns the decoded artifact and which key signed it. To run it, use
/// [`TrustedCode::signed`](crate::TrustedCode::signed), which calls this.
///
/// # Errors
/// [`ArtifactError::BadSignature`] when no trusted key made the signature (or it is not one);
/// the errors of [`format::decode`] for a malformed or corrupt artifact.
pub fn verify<'a>(
    bytes: &'a [u8],
    signature: &[u8],
    trusted: &[VerifyingKey],
) -> Result<(Artifact<'a>, String), ArtifactError> {
    let decoded = format::decode(bytes)?;
    let signature = DerSignature::try_from(signature)
        .map_err(|_| ArtifactError::BadSignature("the signature is not a DER ECDSA signature".into()))?;
    let statement = statement(bytes)?;
    let signer = trusted.iter().find(|k| k.verify(&statement, &signature).is_ok()).ok_or_else(|| {
        let ids: Vec<String> = trusted.iter().map(key_id).collect();
        ArtifactError::BadSignature(if ids.is_empty() {
            "no signing key is trusted".into()
        } else {
            format!("it was not signed by a trusted key (trusted: {})", ids.join(", "))
        })
    })?;
    Ok((decoded, key_id(signer)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode;
    use lamina_types::Target;
    use proptest::prelude::*;

    fn artifact() -> Vec<u8> {
        encode(crate::format::test_header(b"m"), b"compiled code")
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).expect("a valid scalar")
    }

    #[test]
    fn a_signature_verifies_with_the_key_that_made_it_only() {
        let bytes = artifact();
        let signature = sign(&bytes, &key(1)).expect("signs");
        let (decoded, signer) = verify(&bytes, &signature, &[*key(2).verifying_key(), *key(1).verifying_key()])
            .expect("the second trusted key signed it");
        assert_eq!(decoded.header.target, Target::Aarch64Linux);
        assert_eq!(signer, key_id(key(1).verifying_key()));
        let e = verify(&bytes, &signature, &[*key(2).verifying_key()]).expect_err("an untrusted signer");
        assert!(e.to_string().contains("not signed by a trusted key"), "{e}");
        let e = verify(&bytes, &signature, &[]).expect_err("nobody trusted");
        assert!(e.to_string().contains("no signing key is trusted"), "{e}");
    }

    #[test]
    fn any_change_to_the_artifact_breaks_it() {
        let bytes = artifact();
        let signature = sign(&bytes, &key(1)).expect("signs");
        let trusted = [*key(1).verifying_key()];
        // The header: another profile claimed (same length, still a valid header).
        let swapped = String::from_utf8_lossy(&bytes).replace("\"edge\"", "\"tiny\"").into_bytes();
        assert_ne!(swapped, bytes);
        assert!(format::decode(&swapped).is_ok(), "still a well-formed artifact");
        assert!(matches!(verify(&swapped, &signature, &trusted), Err(ArtifactError::BadSignature(_))));
        // The code: caught by the checksum the signature covers.
        let mut code = bytes.clone();
        let last = code.len() - 1;
        code[last] ^= 1;
        assert!(matches!(verify(&code, &signature, &trusted), Err(ArtifactError::Corrupt)));
        // The signature itself.
        let mut bad = signature.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert!(matches!(verify(&bytes, &bad, &trusted), Err(ArtifactError::BadSignature(_))));
        assert!(matches!(verify(&bytes, b"junk", &trusted), Err(ArtifactError::BadSignature(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_signatures_and_artifacts_never_panic(
            sig in proptest::collection::vec(any::<u8>(), 0..100),
            junk in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let trusted = [*key(1).verifying_key()];
            let _ = verify(&artifact(), &sig, &trusted);
            let _ = verify(&junk, &sig, &trusted);
            let _ = sign(&junk, &key(1));
        }
    }
}
