//! Attestation-key enrolment by credential activation, the verifier's side.
//!
//! A node shows its endorsement key (EK: certificate and TPMT_PUBLIC) and its attestation key
//! (AK: TPMT_PUBLIC). The verifier checks the EK certificate against its TPM roots and the
//! AK's attributes, then *makes a credential*: a random secret that only the TPM holding that
//! EK can recover, and only while it also holds an object of exactly the AK's name
//! (TPM2_ActivateCredential checks both). When the node returns the secret, the verifier
//! trusts the AK's name ([`TrustAnchors::tpm_enrolled_aks`](crate::TrustAnchors)).
//!
//! MakeCredential (TPM 2.0 Part 1, 24 "Credential Protection"; Part 3, TPM2_MakeCredential):
//! - seed: for an ECC EK, ECDH between a fresh ephemeral key and the EK, then
//!   `KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, EK.x)`, and the encrypted secret is the
//!   ephemeral point; for an RSA EK, random bytes encrypted with RSA-OAEP (label `"IDENTITY"`);
//! - `symKey = KDFa(nameAlg, seed, "STORAGE", name, "", EK symmetric key bits)`;
//! - `encIdentity = AES-CFB(symKey, IV 0, size ‖ secret)`;
//! - `hmacKey = KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)`;
//! - `idObject = TPM2B(HMAC(hmacKey, encIdentity ‖ name)) ‖ encIdentity`.

use std::time::SystemTime;

use cfb_mode::cipher::{AsyncStreamCipher as _, KeyIvInit as _};
use rand_core::CryptoRngCore;
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::public_key::PublicKey as SpkiKey;
use zeroize::Zeroizing;

use super::crypto::{self, ct_eq, curve_size, left_pad};
use super::wire::{Public, PublicKey, alg, attr, curve, digest_size, name_of};
use super::{ak_attributes, chain};
use crate::TrustAnchors;

/// The bytes of the credential secret (a TPM2B_DIGEST must hold it: at most one digest).
pub const SECRET_LEN: usize = 32;

/// A credential for TPM2_ActivateCredential: the contents (no outer size) of a TPM2B_ID_OBJECT
/// and of a TPM2B_ENCRYPTED_SECRET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// `credentialBlob`: the integrity HMAC (a TPM2B) followed by the encrypted identity.
    pub id_object: Vec<u8>,
    /// `secret`: the ECC ephemeral point (two TPM2Bs) or the RSA-OAEP ciphertext.
    pub encrypted_secret: Vec<u8>,
}

/// Why a credential could not be made or an enrolment could not proceed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrolmentError {
    /// A structure does not parse.
    #[error("the {what} does not parse: {reason}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The EK is not a key the verifier can make credentials for, or does not match its certificate.
    #[error("the endorsement key is not acceptable: {0}")]
    Ek(String),
    /// The EK certificate does not chain to a trusted TPM root.
    #[error("the EK certificate is not trusted: {0}")]
    EkChain(String),
    /// The AK's attributes do not make it an attestation key.
    #[error("the attestation key is not acceptable: {0}")]
    Ak(String),
    /// The secret the node returned is not the one in the credential.
    #[error("the returned secret does not match the credential: the TPM does not hold both the EK and the AK")]
    WrongSecret,
}

/// Makes a credential protecting `secret` (at most 64 bytes) for the object named `object_name`
/// on the TPM whose endorsement key has the public area `ek_public` (TPMT_PUBLIC).
///
/// # Errors
/// [`EnrolmentError`] when the EK is malformed or of an unsupported kind (ECC P-256 and P-384,
/// RSA; AES-CFB; SHA-256, -384, -512 name algorithms are supported).
pub fn make_credential(
    ek_public: &[u8],
    object_name: &[u8],
    secret: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Credential, EnrolmentError> {
    let ek = Public::parse(ek_public)
        .map_err(|e| EnrolmentError::Malformed { what: "EK public area", reason: e.to_string() })?;
    let name_alg = ek.name_alg;
    let digest_len = digest_size(name_alg)
        .filter(|_| name_alg != alg::SHA1)
        .ok_or_else(|| EnrolmentError::Ek(format!("unsupported name algorithm 0x{name_alg:04x}")))?;
    if secret.len() > 64 {
        return Err(EnrolmentError::Ek("a credential secret is at most 64 bytes".into()));
    }
    let sym = ek.symmetric.ok_or_else(|| EnrolmentError::Ek("the EK has no symmetric algorithm".into()))?;
    if sym.algorithm != alg::AES || sym.mode != alg::CFB || !matches!(sym.key_bits, 128 | 256) {
        return Err(EnrolmentError::Ek(format!(
            "the EK's symmetric algorithm (0x{:04x}, {} bits, mode 0x{:04x}) is not AES-128 or AES-256 in CFB mode",
            sym.algorithm, sym.key_bits, sym.mode
        )));
    }
    let bits = u32::try_from(digest_len * 8).unwrap_or(512);
    let kdf_failed = || EnrolmentError::Ek("key derivation failed".into());

    let (seed, encrypted_secret) = match &ek.key {
        PublicKey::Ecc { curve: curve_id, x, y } => {
            let size = curve_size(*curve_id)
                .ok_or_else(|| EnrolmentError::Ek(format!("unsupported curve 0x{curve_id:04x}")))?;
            let point =
                crypto::sec1_point(x, y, size).ok_or_else(|| EnrolmentError::Ek("the EK point is too long".into()))?;
            let Ecdh { z, x: eph_x, y: eph_y } = ecdh(*curve_id, &point, rng)?;
            let ek_x = left_pad(x, size).ok_or_else(|| EnrolmentError::Ek("the EK point is too long".into()))?;
            let seed = crypto::kdfe(name_alg, &z, "IDENTITY", &eph_x, &ek_x, bits).ok_or_else(kdf_failed)?;
            (Zeroizing::new(seed), [tpm2b(&eph_x), tpm2b(&eph_y)].concat())
        }
        PublicKey::Rsa { exponent, modulus, .. } => {
            let key = crypto::rsa_key(modulus, *exponent).map_err(EnrolmentError::Ek)?;
            let mut seed = Zeroizing::new(vec![0u8; digest_len]);
            rng.fill_bytes(&mut seed);
            let encrypted = oaep(&key, name_alg, &seed, rng)?;
            (seed, encrypted)
        }
    };

    let sym_key = Zeroizing::new(
        crypto::kdfa(name_alg, &seed, "STORAGE", object_name, &[], u32::from(sym.key_bits)).ok_or_else(kdf_failed)?,
    );
    let mut enc_identity = tpm2b(secret);
    let iv = [0u8; 16];
    let cipher_error = |_| EnrolmentError::Ek("AES key setup failed".into());
    if sym.key_bits == 128 {
        cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(&sym_key, &iv)
            .map_err(cipher_error)?
            .encrypt(&mut enc_identity);
    } else {
        cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(&sym_key, &iv)
            .map_err(cipher_error)?
            .encrypt(&mut enc_identity);
    }
    let hmac_key = Zeroizing::new(crypto::kdfa(name_alg, &seed, "INTEGRITY", &[], &[], bits).ok_or_else(kdf_failed)?);
    let integrity = crypto::hmac(name_alg, &hmac_key, &[&enc_identity, object_name]).ok_or_else(kdf_failed)?;
    Ok(Credential { id_object: [tpm2b(&integrity), enc_identity].concat(), encrypted_secret })
}

fn tpm2b(bytes: &[u8]) -> Vec<u8> {
    // Every caller passes at most a few hundred bytes.
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    [&len.to_be_bytes()[..], bytes].concat()
}

/// The outcome of ECDH with the EK: the shared x coordinate and the ephemeral point.
struct Ecdh {
    z: Zeroizing<Vec<u8>>,
    x: Vec<u8>,
    y: Vec<u8>,
}

/// ECDH with the EK from a fresh ephemeral key.
fn ecdh(curve_id: u16, ek_point: &[u8], rng: &mut impl CryptoRngCore) -> Result<Ecdh, EnrolmentError> {
    macro_rules! run {
        ($c:ident) => {{
            let ek = $c::PublicKey::from_sec1_bytes(ek_point)
                .map_err(|_| EnrolmentError::Ek("the EK point is not on its curve".into()))?;
            let ephemeral = $c::ecdh::EphemeralSecret::random(rng);
            let shared = ephemeral.diffie_hellman(&ek);
            let public = $c::EncodedPoint::from(ephemeral.public_key());
            let (Some(x), Some(y)) = (public.x(), public.y()) else {
                return Err(EnrolmentError::Ek("the ephemeral point is the identity".into()));
            };
            Ok(Ecdh { z: Zeroizing::new(shared.raw_secret_bytes().to_vec()), x: x.to_vec(), y: y.to_vec() })
        }};
    }
    match curve_id {
        curve::NIST_P256 => run!(p256),
        _ => run!(p384),
    }
}

fn oaep(
    key: &rsa::RsaPublicKey,
    name_alg: u16,
    seed: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, EnrolmentError> {
    use sha2::{Sha256, Sha384, Sha512};
    // The TPM's label includes the terminating zero.
    let label = "IDENTITY\0";
    let result = match name_alg {
        alg::SHA256 => key.encrypt(rng, rsa::Oaep::new_with_label::<Sha256, _>(label), seed),
        alg::SHA384 => key.encrypt(rng, rsa::Oaep::new_with_label::<Sha384, _>(label), seed),
        _ => key.encrypt(rng, rsa::Oaep::new_with_label::<Sha512, _>(label), seed),
    };
    result.map_err(|e| EnrolmentError::Ek(format!("RSA-OAEP encryption failed: {e}")))
}

/// What a node presents to enrol its attestation key.
#[derive(Clone, Copy, Debug)]
pub struct EnrolmentRequest<'a> {
    /// The EK's TPMT_PUBLIC.
    pub ek_public: &'a [u8],
    /// The EK certificate (DER or PEM).
    pub ek_certificate: &'a [u8],
    /// Intermediate certificates the node supplies (untrusted helpers).
    pub chain: &'a [Vec<u8>],
    /// The AK's TPMT_PUBLIC.
    pub ak_public: &'a [u8],
}

/// An enrolment waiting for the node to activate its credential.
pub struct PendingEnrolment {
    ak_name: Vec<u8>,
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl std::fmt::Debug for PendingEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEnrolment").field("ak_name", &hex::encode(&self.ak_name)).finish_non_exhaustive()
    }
}

impl PendingEnrolment {
    /// Checks the request and makes the credential the node must activate.
    ///
    /// Checks: the EK certificate chains to `anchors.tpm_roots` and is valid at `at`; the EK
    /// public area carries the certified key and is a restricted decryption key bound to its
    /// TPM; the AK is a restricted signing key bound to its TPM (so it signs only what the TPM
    /// generates, and cannot leave it).
    ///
    /// # Errors
    /// [`EnrolmentError`] saying which of these fails.
    pub fn start(
        request: &EnrolmentRequest<'_>,
        anchors: &TrustAnchors,
        at: SystemTime,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Self, Credential), EnrolmentError> {
        let cert_der = chain::to_der(request.ek_certificate).ok_or_else(|| EnrolmentError::Malformed {
            what: "EK certificate",
            reason: "neither DER nor PEM".into(),
        })?;
        let roots = chain::all_der(&anchors.tpm_roots);
        chain::verify(&cert_der, &chain::all_der(request.chain), &roots, at).map_err(EnrolmentError::EkChain)?;
        let ek = Public::parse(request.ek_public)
            .map_err(|e| EnrolmentError::Malformed { what: "EK public area", reason: e.to_string() })?;
        ek_matches_certificate(&ek, &cert_der)?;
        if !ek.has(attr::FIXED_TPM | attr::FIXED_PARENT | attr::RESTRICTED | attr::DECRYPT) || ek.has(attr::SIGN) {
            return Err(EnrolmentError::Ek(format!(
                "attributes 0x{:08x} are not those of a restricted decryption key fixed to its TPM",
                ek.attributes
            )));
        }
        let ak = Public::parse(request.ak_public)
            .map_err(|e| EnrolmentError::Malformed { what: "AK public area", reason: e.to_string() })?;
        ak_attributes(&ak).map_err(EnrolmentError::Ak)?;
        let ak_name = name_of(request.ak_public)
            .map_err(|e| EnrolmentError::Malformed { what: "AK public area", reason: e.to_string() })?;
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        rng.fill_bytes(secret.as_mut());
        let credential = make_credential(request.ek_public, &ak_name, secret.as_ref(), rng)?;
        Ok((Self { ak_name, secret }, credential))
    }

    /// The name of the AK being enrolled.
    pub fn ak_name(&self) -> &[u8] {
        &self.ak_name
    }

    /// Completes the enrolment with the secret the TPM recovered: returns the AK name to trust.
    ///
    /// # Errors
    /// [`EnrolmentError::WrongSecret`] when it is not the credential's secret.
    pub fn finish(self, activated_secret: &[u8]) -> Result<Vec<u8>, EnrolmentError> {
        if ct_eq(activated_secret, self.secret.as_ref()) { Ok(self.ak_name) } else { Err(EnrolmentError::WrongSecret) }
    }
}

/// Checks that the EK public area holds the key its certificate certifies.
fn ek_matches_certificate(ek: &Public, cert_der: &[u8]) -> Result<(), EnrolmentError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| EnrolmentError::Malformed { what: "EK certificate", reason: e.to_string() })?;
    let spki = cert
        .public_key()
        .parsed()
        .map_err(|e| EnrolmentError::Ek(format!("the certificate's key does not parse: {e}")))?;
    let matches = match (&ek.key, spki) {
        (PublicKey::Ecc { curve: curve_id, x, y }, SpkiKey::EC(point)) => curve_size(*curve_id)
            .and_then(|size| crypto::sec1_point(x, y, size))
            .is_some_and(|p| p.as_slice() == point.data()),
        (PublicKey::Rsa { exponent, modulus, .. }, SpkiKey::RSA(rsa)) => {
            let e = if *exponent == 0 { 65537 } else { *exponent };
            let cert_e =
                left_pad(rsa.exponent, 4).and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok()).map(u32::from_be_bytes);
            left_pad(rsa.modulus, modulus.len()).is_some_and(|m| m == *modulus) && cert_e == Some(e)
        }
        _ => false,
    };
    if matches { Ok(()) } else { Err(EnrolmentError::Ek("the EK public area does not hold the certified key".into())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpm2b_prefixes_the_length() {
        assert_eq!(tpm2b(&[1, 2, 3]), vec![0, 3, 1, 2, 3]);
    }

    #[test]
    fn an_ecc_credential_has_the_expected_shape() {
        // A P-256 EK in the TCG default template's shape, with a real point.
        let key = p256::SecretKey::random(&mut rand_core::OsRng);
        let point = p256::EncodedPoint::from(key.public_key());
        let (x, y) = (point.x().expect("x").to_vec(), point.y().expect("y").to_vec());
        let ek = ecc_ek_public(&x, &y);
        let name = [&[0u8, 0x0b][..], &[7u8; 32]].concat();
        let cred = make_credential(&ek, &name, &[5u8; 32], &mut rand_core::OsRng).expect("credential");
        // HMAC-SHA256 (2 + 32) and the encrypted TPM2B of a 32-byte secret (2 + 32).
        assert_eq!(cred.id_object.len(), 2 + 32 + 2 + 32);
        // The ephemeral point: two 32-byte coordinates as TPM2Bs.
        assert_eq!(cred.encrypted_secret.len(), 2 + 32 + 2 + 32);
    }

    pub(crate) fn ecc_ek_public(x: &[u8], y: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&alg::ECC.to_be_bytes());
        out.extend_from_slice(&alg::SHA256.to_be_bytes());
        out.extend_from_slice(&0x0003_00b2u32.to_be_bytes());
        out.extend_from_slice(&tpm2b(&[0u8; 32]));
        out.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43]); // AES-128-CFB
        out.extend_from_slice(&alg::NULL.to_be_bytes()); // scheme
        out.extend_from_slice(&curve::NIST_P256.to_be_bytes());
        out.extend_from_slice(&alg::NULL.to_be_bytes()); // kdf
        out.extend_from_slice(&tpm2b(x));
        out.extend_from_slice(&tpm2b(y));
        out
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_ek_public_areas_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = make_credential(&bytes, &[0, 0x0b], &[1; 32], &mut rand_core::OsRng);
        }
    }
}
