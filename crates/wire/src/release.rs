//! Releasing secrets to an attested instance: the control plane encrypts a workload's secrets
//! (and the sealing root of its volumes) to the P-256 key that the instance's evidence binds,
//! so only that instance can read them; nothing on the way (not the node's disk, not a proxy)
//! sees them in the clear.
//!
//! The scheme is ECIES on P-256: an ephemeral key agrees with the instance key, HKDF-SHA256
//! over the shared secret (salt: the challenge nonce; info: a label and the module hash) gives
//! an AES-256-GCM key used once.

use std::collections::BTreeMap;

use base64::Engine as _;
use lamina_types::ModuleHash;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The label of the key derivation.
const INFO: &[u8] = b"lamina release v1";

/// A secret's name and value.
pub type NamedSecret = (String, Zeroizing<Vec<u8>>);

/// What the control plane releases to one instance.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Bundle {
    /// Secret name → value (base64).
    pub secrets: BTreeMap<String, String>,
    /// The sealing root of the workload's volumes on nodes without hardware sealing (hex).
    #[serde(default)]
    pub sealing_root: String,
    /// Topic → the topic's message key (hex), for the topics asked for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topics: BTreeMap<String, String>,
    /// The epoch of the topic keys.
    #[serde(default)]
    pub epoch: u32,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("topics", &self.topics.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// The secrets' values.
    ///
    /// # Errors
    /// [`ReleaseError::Malformed`] when a value is not base64.
    pub fn values(&self) -> Result<Vec<NamedSecret>, ReleaseError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.secrets
            .iter()
            .map(|(k, v)| Ok((k.clone(), Zeroizing::new(b64.decode(v).map_err(|_| ReleaseError::Malformed)?))))
            .collect()
    }

    /// The key of `topic`, when the bundle holds it.
    ///
    /// # Errors
    /// [`ReleaseError::Malformed`] when it is not 32 bytes of hex.
    pub fn topic_key(&self, topic: &str) -> Result<Option<Zeroizing<[u8; 32]>>, ReleaseError> {
        let Some(text) = self.topics.get(topic) else { return Ok(None) };
        let bytes = Zeroizing::new(hex::decode(text).map_err(|_| ReleaseError::Malformed)?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| ReleaseError::Malformed)?;
        Ok(Some(Zeroizing::new(key)))
    }

    /// The sealing root.
    ///
    /// # Errors
    /// [`ReleaseError::Malformed`] when it is not 32 bytes of hex.
    pub fn sealing_root(&self) -> Result<Zeroizing<[u8; 32]>, ReleaseError> {
        let bytes = Zeroizing::new(hex::decode(&self.sealing_root).map_err(|_| ReleaseError::Malformed)?);
        let root: [u8; 32] = bytes.as_slice().try_into().map_err(|_| ReleaseError::Malformed)?;
        Ok(Zeroizing::new(root))
    }
}

/// A bundle encrypted to an instance key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Released {
    /// The ephemeral public key (SEC1, uncompressed, hex).
    pub ephemeral: String,
    /// The AES-256-GCM ciphertext and tag of the bundle's JSON (base64).
    pub ciphertext: String,
}

/// Why a release could not be made or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The instance key is not a P-256 SubjectPublicKeyInfo.
    #[error("the instance key is not a P-256 public key")]
    Key,
    /// The ciphertext does not open with this key and context (tampered, or for another).
    #[error("the released secrets do not open with this instance's key")]
    Open,
    /// Not a bundle.
    #[error("the released secrets are malformed")]
    Malformed,
}

fn aead_key(shared: &[u8], salt: &[u8], module: &ModuleHash) -> Result<LessSafeKey, ReleaseError> {
    lamina_keys::Prk::extract(salt, shared).expand_aead(&[INFO, module.as_bytes()]).map_err(|_| ReleaseError::Key)
}

/// Encrypts `bundle` to the instance key `spki` (SubjectPublicKeyInfo, DER).
///
/// # Errors
/// [`ReleaseError::Key`] when `spki` is not a P-256 key.
pub fn encrypt_to_instance(
    bundle: &Bundle,
    spki: &[u8],
    nonce: &[u8],
    module: &ModuleHash,
) -> Result<Released, ReleaseError> {
    use p256::pkcs8::DecodePublicKey as _;
    let public = p256::PublicKey::from_public_key_der(spki).map_err(|_| ReleaseError::Key)?;
    let ephemeral = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
    let shared = ephemeral.diffie_hellman(&public);
    let key = aead_key(shared.raw_secret_bytes().as_slice(), nonce, module)?;
    let mut data = Zeroizing::new(serde_json::to_vec(bundle).map_err(|_| ReleaseError::Malformed)?);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut *data)
        .map_err(|_| ReleaseError::Key)?;
    let epk = p256::EncodedPoint::from(ephemeral.public_key());
    Ok(Released {
        ephemeral: hex::encode(epk.as_bytes()),
        ciphertext: base64::engine::general_purpose::STANDARD.encode(&*data),
    })
}

/// Opens a release with the instance's secret key.
///
/// # Errors
/// [`ReleaseError::Open`] when it was made for another key, nonce or module, or was changed.
pub fn decrypt_as_instance(
    released: &Released,
    secret: &p256::SecretKey,
    nonce: &[u8],
    module: &ModuleHash,
) -> Result<Bundle, ReleaseError> {
    let epk = hex::decode(&released.ephemeral).map_err(|_| ReleaseError::Malformed)?;
    let epk = p256::PublicKey::from_sec1_bytes(&epk).map_err(|_| ReleaseError::Malformed)?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), epk.as_affine());
    let key = aead_key(shared.raw_secret_bytes().as_slice(), nonce, module)?;
    let mut data = Zeroizing::new(
        base64::engine::general_purpose::STANDARD.decode(&released.ciphertext).map_err(|_| ReleaseError::Malformed)?,
    );
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut data)
        .map_err(|_| ReleaseError::Open)?;
    serde_json::from_slice(plain).map_err(|_| ReleaseError::Malformed)
}

/// Encrypts data at rest under a 32-byte key, with a random nonce and `context` as associated
/// data: `nonce (12) || ciphertext || tag`.
///
/// # Errors
/// [`ReleaseError::Key`] when no randomness is available.
pub fn encrypt_at_rest(key: &[u8; 32], context: &[u8], plain: &[u8]) -> Result<Vec<u8>, ReleaseError> {
    use rand_core::RngCore as _;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| ReleaseError::Key)?);
    let mut nonce = [0u8; 12];
    rand_core::OsRng.fill_bytes(&mut nonce);
    let mut data = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut data)
        .map_err(|_| ReleaseError::Key)?;
    Ok([nonce.as_slice(), &data].concat())
}

/// Opens [`encrypt_at_rest`]'s output.
///
/// # Errors
/// [`ReleaseError::Open`] when the key or context differ, or the bytes were changed.
pub fn decrypt_at_rest(key: &[u8; 32], context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, ReleaseError> {
    if sealed.len() < 12 + 16 {
        return Err(ReleaseError::Open);
    }
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| ReleaseError::Key)?);
    let (nonce, body) = sealed.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| ReleaseError::Open)?;
    let mut data = Zeroizing::new(body.to_vec());
    let len = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut data)
        .map_err(|_| ReleaseError::Open)?
        .len();
    data.truncate(len);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> (p256::SecretKey, Vec<u8>) {
        use p256::pkcs8::EncodePublicKey as _;
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let spki = secret.public_key().to_public_key_der().expect("spki").as_bytes().to_vec();
        (secret, spki)
    }

    #[test]
    fn only_the_instance_key_with_the_same_nonce_and_module_opens_a_release() {
        let (secret, spki) = instance();
        let module = ModuleHash::of(b"app");
        let mut bundle = Bundle { sealing_root: hex::encode([7u8; 32]), ..Bundle::default() };
        bundle.secrets.insert("db".into(), base64::engine::general_purpose::STANDARD.encode(b"hunter2"));
        let released = encrypt_to_instance(&bundle, &spki, b"nonce-1", &module).expect("seals");
        assert!(!released.ciphertext.contains("hunter2"));
        let opened = decrypt_as_instance(&released, &secret, b"nonce-1", &module).expect("opens");
        assert_eq!(opened.values().expect("values")[0].1.as_slice(), b"hunter2");
        assert_eq!(*opened.sealing_root().expect("root"), [7u8; 32]);
        let (other, _) = instance();
        assert!(matches!(decrypt_as_instance(&released, &other, b"nonce-1", &module), Err(ReleaseError::Open)));
        assert!(matches!(decrypt_as_instance(&released, &secret, b"nonce-2", &module), Err(ReleaseError::Open)));
        assert!(matches!(
            decrypt_as_instance(&released, &secret, b"nonce-1", &ModuleHash::of(b"x")),
            Err(ReleaseError::Open)
        ));
        let mut tampered = released.clone();
        tampered.ciphertext = base64::engine::general_purpose::STANDARD.encode(b"0123456789abcdef0123456789");
        assert!(decrypt_as_instance(&tampered, &secret, b"nonce-1", &module).is_err());
        assert!(matches!(encrypt_to_instance(&bundle, b"not a key", b"n", &module), Err(ReleaseError::Key)));
    }

    #[test]
    fn data_at_rest_opens_only_with_its_key_and_context() {
        let sealed = encrypt_at_rest(&[1; 32], b"ctx", b"value").expect("seals");
        assert_eq!(decrypt_at_rest(&[1; 32], b"ctx", &sealed).expect("opens").as_slice(), b"value");
        assert!(decrypt_at_rest(&[2; 32], b"ctx", &sealed).is_err());
        assert!(decrypt_at_rest(&[1; 32], b"other", &sealed).is_err());
        assert!(decrypt_at_rest(&[1; 32], b"ctx", &sealed[..10]).is_err());
    }
}
