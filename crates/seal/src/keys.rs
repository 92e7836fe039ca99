//! The sealing key hierarchy: platform sealing root → sealing policy and workload identity →
//! volume key → per-purpose and per-file keys, all by HKDF-SHA256.
//!
//! Two workloads get unrelated keys unless they share the identity the volume is sealed to (a
//! module hash, or a signer key), so another module cannot read the data even on the same
//! platform; the same workload on another platform (another TPM, another sim state directory)
//! gets unrelated keys too.

use lamina_tee::SealingRoot;
use lamina_types::ModuleHash;
use ring::{aead, hkdf, hmac};

/// What a sealed volume is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealTo {
    /// Exactly this module: another build of it cannot read the data.
    Module(ModuleHash),
    /// Any module signed by this key: the SHA-256 of the signer's public key, so sealed state
    /// follows a signed upgrade.
    Signer([u8; 32]),
}

impl SealTo {
    pub(crate) fn kind(&self) -> u8 {
        match self {
            Self::Module(_) => 1,
            Self::Signer(_) => 2,
        }
    }

    pub(crate) fn identity(&self) -> [u8; 32] {
        match self {
            Self::Module(hash) => *hash.as_bytes(),
            Self::Signer(key) => *key,
        }
    }

    pub(crate) fn from_parts(kind: u8, identity: [u8; 32]) -> Option<Self> {
        match kind {
            1 => Some(Self::Module(ModuleHash::from_bytes(identity))),
            2 => Some(Self::Signer(identity)),
            _ => None,
        }
    }
}

impl std::fmt::Display for SealTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Module(hash) => write!(f, "module sha256:{}", hash.to_hex()),
            Self::Signer(key) => write!(f, "signer sha256:{}", hex::encode(key)),
        }
    }
}

/// Bytes of key material of a given length, for HKDF outputs that are not ring key types.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The keys of one volume.
pub(crate) struct VolumeKeys {
    /// Encrypts the manifest.
    pub(crate) manifest: aead::LessSafeKey,
    /// Authenticates the header.
    pub(crate) header: hmac::Key,
    /// Derives per-file keys.
    files: hkdf::Prk,
}

const SALT: &[u8] = b"lamina-seal-v1";

impl VolumeKeys {
    /// Derives a volume's keys from the platform's sealing root.
    pub(crate) fn derive(root: &SealingRoot, seal_to: &SealTo, volume_id: &[u8; 16]) -> Self {
        let identity = seal_to.identity();
        let policy = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&root.0[..]);
        let mut policy_key = zeroize::Zeroizing::new([0u8; 32]);
        expand(&policy, &[b"policy", &[seal_to.kind()], &identity], Len(32), &mut policy_key[..]);
        let volume = hkdf::Salt::new(hkdf::HKDF_SHA256, volume_id).extract(&policy_key[..]);
        let manifest = aead_key(&volume, &[b"manifest"]);
        let header = hmac::Key::from(okm(&volume, &[b"header"], hmac::HMAC_SHA256));
        let files = hkdf::Prk::from(okm(&volume, &[b"files"], hkdf::HKDF_SHA256));
        Self { manifest, header, files }
    }

    /// The key of one file's chunks.
    pub(crate) fn file(&self, id: &[u8; 16]) -> aead::LessSafeKey {
        aead_key(&self.files, &[b"file", id])
    }
}

fn okm<'a, L: hkdf::KeyType>(prk: &'a hkdf::Prk, info: &'a [&'a [u8]], len: L) -> hkdf::Okm<'a, L> {
    // Invariant: every output here is at most 32 bytes, far below HKDF-SHA256's 255 × 32 limit,
    // which is the only way `expand` fails.
    #[allow(clippy::expect_used, reason = "outputs are 32 bytes, within HKDF's limit")]
    prk.expand(info, len).expect("HKDF output within limits")
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], len: Len, out: &mut [u8]) {
    #[allow(clippy::expect_used, reason = "the output buffer has the length requested")]
    okm(prk, info, len).fill(out).expect("HKDF fill of the requested length");
}

fn aead_key(prk: &hkdf::Prk, info: &[&[u8]]) -> aead::LessSafeKey {
    aead::LessSafeKey::new(aead::UnboundKey::from(okm(prk, info, &aead::AES_256_GCM)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::aead::{Aad, Nonce};

    fn root(byte: u8) -> SealingRoot {
        SealingRoot(zeroize::Zeroizing::new([byte; 32]))
    }

    fn seal(key: &aead::LessSafeKey) -> Vec<u8> {
        let mut data = b"probe".to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut data).expect("seals");
        data
    }

    #[test]
    fn keys_depend_on_root_identity_and_volume() {
        let module = SealTo::Module(ModuleHash::of(b"a"));
        let base = seal(&VolumeKeys::derive(&root(1), &module, &[0; 16]).manifest);
        assert_eq!(base, seal(&VolumeKeys::derive(&root(1), &module, &[0; 16]).manifest));
        assert_ne!(base, seal(&VolumeKeys::derive(&root(2), &module, &[0; 16]).manifest));
        assert_ne!(base, seal(&VolumeKeys::derive(&root(1), &SealTo::Module(ModuleHash::of(b"b")), &[0; 16]).manifest));
        assert_ne!(base, seal(&VolumeKeys::derive(&root(1), &module, &[1; 16]).manifest));
        let signer = SealTo::Signer(*ModuleHash::of(b"a").as_bytes());
        assert_ne!(base, seal(&VolumeKeys::derive(&root(1), &signer, &[0; 16]).manifest), "policy kind is bound");
        let keys = VolumeKeys::derive(&root(1), &module, &[0; 16]);
        assert_ne!(seal(&keys.file(&[1; 16])), seal(&keys.file(&[2; 16])));
        assert_ne!(seal(&keys.file(&[1; 16])), base);
    }

    #[test]
    fn displays_the_identity() {
        let module = SealTo::Module(ModuleHash::of(b"a"));
        assert!(module.to_string().starts_with("module sha256:ca978112"));
        assert_eq!(SealTo::from_parts(module.kind(), module.identity()), Some(module));
        assert_eq!(SealTo::from_parts(9, [0; 32]), None);
    }
}
