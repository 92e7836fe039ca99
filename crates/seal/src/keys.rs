//! The sealing key hierarchy: platform sealing root → sealing policy and workload identity →
//! volume key → per-purpose and per-file keys, all by HKDF-SHA256.
//!
//! Two workloads get unrelated keys unless they share the identity the volume is sealed to (a
//! module hash, or a signer key), so another module cannot read the data even on the same
//! platform; the same workload on another platform (another TPM, another sim state directory)
//! gets unrelated keys too.

use lamina_keys::{KeyError, Prk};
use lamina_tee::SealingRoot;
use lamina_types::ModuleHash;
use ring::{aead, hmac};

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

/// The keys of one volume.
pub(crate) struct VolumeKeys {
    /// Encrypts the manifest.
    pub(crate) manifest: aead::LessSafeKey,
    /// Authenticates the header.
    pub(crate) header: hmac::Key,
    /// Derives per-file keys.
    files: Prk,
}

const SALT: &[u8] = b"lamina-seal-v1";

impl VolumeKeys {
    /// Derives a volume's keys from the platform's sealing root (through `lamina-keys`).
    pub(crate) fn derive(root: &SealingRoot, seal_to: &SealTo, volume_id: &[u8; 16]) -> Result<Self, KeyError> {
        let identity = seal_to.identity();
        let policy = Prk::extract(SALT, &root.0[..]);
        let policy_key = policy.expand_key(&[b"policy", &[seal_to.kind()], &identity])?;
        let volume = Prk::extract(volume_id, &policy_key[..]);
        Ok(Self {
            manifest: volume.expand_aead(&[b"manifest"])?,
            header: volume.expand_hmac(&[b"header"])?,
            files: volume.expand_prk(&[b"files"])?,
        })
    }

    /// The key of one file's chunks.
    pub(crate) fn file(&self, id: &[u8; 16]) -> Result<aead::LessSafeKey, KeyError> {
        self.files.expand_aead(&[b"file", id])
    }
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
        let base = seal(&VolumeKeys::derive(&root(1), &module, &[0; 16]).expect("derives").manifest);
        assert_eq!(base, seal(&VolumeKeys::derive(&root(1), &module, &[0; 16]).expect("derives").manifest));
        assert_ne!(base, seal(&VolumeKeys::derive(&root(2), &module, &[0; 16]).expect("derives").manifest));
        assert_ne!(
            base,
            seal(
                &VolumeKeys::derive(&root(1), &SealTo::Module(ModuleHash::of(b"b")), &[0; 16])
                    .expect("derives")
                    .manifest
            )
        );
        assert_ne!(base, seal(&VolumeKeys::derive(&root(1), &module, &[1; 16]).expect("derives").manifest));
        let signer = SealTo::Signer(*ModuleHash::of(b"a").as_bytes());
        assert_ne!(
            base,
            seal(&VolumeKeys::derive(&root(1), &signer, &[0; 16]).expect("derives").manifest),
            "policy kind is bound"
        );
        let keys = VolumeKeys::derive(&root(1), &module, &[0; 16]).expect("derives");
        let file = |id: u8| keys.file(&[id; 16]).expect("derives");
        assert_ne!(seal(&file(1)), seal(&file(2)));
        assert_ne!(seal(&file(1)), base);
    }

    #[test]
    fn displays_the_identity() {
        let module = SealTo::Module(ModuleHash::of(b"a"));
        assert!(module.to_string().starts_with("module sha256:ca978112"));
        assert_eq!(SealTo::from_parts(module.kind(), module.identity()), Some(module));
        assert_eq!(SealTo::from_parts(9, [0; 32]), None);
    }
}
