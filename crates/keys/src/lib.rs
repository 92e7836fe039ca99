//! Lamina's one place for key derivation: HKDF-SHA256 (RFC 5869) through ring, with every
//! purpose named here.
//!
//! Sealing (`lamina-seal`), sealed messaging (`lamina-messaging-crypto`) and the control plane
//! derive keys here rather than each wrapping HKDF: the labels of every derivation are listed
//! in one file ([`Purpose`]), so two purposes cannot collide by accident, and a derivation that
//! fails is an error ([`KeyError`]), never a key of zeros.
//!
//! ```
//! use lamina_keys::{Prk, Purpose, derive};
//! # fn main() -> Result<(), lamina_keys::KeyError> {
//! let master = [7u8; 32];
//! let at_rest = derive(&master, &Purpose::SecretsAtRest)?;
//! let topic = derive(&master, &Purpose::TopicKey { epoch: 1, topic: "sensors.a" })?;
//! assert_ne!(*at_rest, *topic);
//! // The building blocks, for derivation trees (sealed volumes, message sessions):
//! let prk = Prk::extract(b"salt", &master);
//! let key = prk.expand_key(&[b"purpose"])?;
//! # let _ = key;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use ring::{aead, hkdf, hmac};
use zeroize::Zeroizing;

/// A derivation that could not be made. HKDF-SHA256 fails only for outputs over 8160 bytes,
/// which no purpose here asks for; the error exists so that such a failure can never pass as a
/// key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// HKDF refused the expansion.
    #[error("key derivation failed ({0})")]
    Expand(&'static str),
}

/// What a key derived from a root is for. Each purpose has its own label; the labels are the
/// ones Lamina has always used, so keys already in use stay the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose<'a> {
    /// The control plane's master key, from its sealing root.
    ControlMaster,
    /// The key the control plane encrypts secrets at rest with, from the master key.
    SecretsAtRest,
    /// A topic's message key of an epoch, from the master key.
    TopicKey {
        /// The key generation.
        epoch: u32,
        /// The topic (validated by the caller: dot-separated tokens without spaces).
        topic: &'a str,
    },
    /// The sealing root the control plane releases for a workload, from the master key.
    WorkloadSealingRoot {
        /// The workload's name.
        workload: &'a str,
    },
    /// The key a node encrypts its cached secrets with, from its platform's sealing root.
    NodeSecretCache,
    /// The key the control plane authenticates its challenge nonces with, from the master key
    /// (replicas that share the master accept each other's challenges).
    ChallengeMac,
    /// The seed of a node's NATS user (an NKey), from the master key: bound to the node's name
    /// and to the key it enrolled with, so a node removed and enrolled again gets another.
    NatsUser {
        /// The node's name.
        node: &'a str,
        /// The SHA-256 (hex) of the TLS key it enrolled with.
        key: &'a str,
    },
    /// The seed of the control plane's own NATS user, from the master key.
    NatsControl,
    /// The key a control-plane replica seals its copy of the cluster key with, from its
    /// platform's sealing root.
    ClusterKeySeal,
}

impl Purpose<'_> {
    /// The HKDF info of this purpose.
    fn label(&self) -> Vec<u8> {
        match self {
            Self::ControlMaster => b"lamina control master".to_vec(),
            Self::SecretsAtRest => b"secrets at rest".to_vec(),
            Self::TopicKey { epoch, topic } => format!("topic key {epoch} {topic}").into_bytes(),
            Self::WorkloadSealingRoot { workload } => format!("sealing root {workload}").into_bytes(),
            Self::NodeSecretCache => b"lamina node secret cache".to_vec(),
            Self::ChallengeMac => b"lamina challenge mac".to_vec(),
            Self::NatsUser { node, key } => format!("nats user {node} {key}").into_bytes(),
            Self::NatsControl => b"lamina nats control".to_vec(),
            Self::ClusterKeySeal => b"lamina cluster key seal".to_vec(),
        }
    }
}

/// The salt of [`derive`].
const SALT: &[u8] = b"lamina";

/// Derives a 32-byte key for `purpose` from `root`: HKDF-SHA256 with the salt `lamina` and the
/// purpose's label as info.
///
/// # Errors
/// [`KeyError`] if HKDF refuses (it cannot for 32 bytes; the error is never a key).
pub fn derive(root: &[u8], purpose: &Purpose<'_>) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    Prk::extract(SALT, root).expand_key(&[&purpose.label()])
}

/// A pseudorandom key (HKDF's extract step), from which keys are expanded.
pub struct Prk(hkdf::Prk);

impl std::fmt::Debug for Prk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prk(..)")
    }
}

/// An output length for ring's HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl Prk {
    /// HKDF-Extract(salt, ikm).
    pub fn extract(salt: &[u8], ikm: &[u8]) -> Self {
        Self(hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm))
    }

    /// 32 bytes of HKDF-Expand(info).
    ///
    /// # Errors
    /// [`KeyError`] if HKDF refuses.
    pub fn expand_key(&self, info: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.0
            .expand(info, Len(32))
            .map_err(|_| KeyError::Expand("expand 32 bytes"))?
            .fill(out.as_mut())
            .map_err(|_| KeyError::Expand("fill 32 bytes"))?;
        Ok(out)
    }

    /// An AES-256-GCM key from HKDF-Expand(info).
    ///
    /// # Errors
    /// [`KeyError`] if HKDF refuses.
    pub fn expand_aead(&self, info: &[&[u8]]) -> Result<aead::LessSafeKey, KeyError> {
        let okm = self.0.expand(info, &aead::AES_256_GCM).map_err(|_| KeyError::Expand("expand an AES-256-GCM key"))?;
        Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
    }

    /// An HMAC-SHA256 key from HKDF-Expand(info).
    ///
    /// # Errors
    /// [`KeyError`] if HKDF refuses.
    pub fn expand_hmac(&self, info: &[&[u8]]) -> Result<hmac::Key, KeyError> {
        let okm = self.0.expand(info, hmac::HMAC_SHA256).map_err(|_| KeyError::Expand("expand an HMAC key"))?;
        Ok(hmac::Key::from(okm))
    }

    /// A further pseudorandom key from HKDF-Expand(info), to derive more keys from.
    ///
    /// # Errors
    /// [`KeyError`] if HKDF refuses.
    pub fn expand_prk(&self, info: &[&[u8]]) -> Result<Prk, KeyError> {
        let okm = self.0.expand(info, hkdf::HKDF_SHA256).map_err(|_| KeyError::Expand("expand a PRK"))?;
        Ok(Prk(hkdf::Prk::from(okm)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_give_distinct_keys_and_match_rfc5869_hkdf() {
        let root = [1u8; 32];
        let keys: Vec<[u8; 32]> = [
            Purpose::ControlMaster,
            Purpose::SecretsAtRest,
            Purpose::TopicKey { epoch: 1, topic: "a.b" },
            Purpose::TopicKey { epoch: 2, topic: "a.b" },
            Purpose::WorkloadSealingRoot { workload: "w" },
            Purpose::NodeSecretCache,
            Purpose::ChallengeMac,
            Purpose::NatsUser { node: "n", key: "k1" },
            Purpose::NatsUser { node: "n", key: "k2" },
            Purpose::NatsControl,
            Purpose::ClusterKeySeal,
        ]
        .iter()
        .map(|p| *derive(&root, p).expect("derives"))
        .collect();
        for (i, a) in keys.iter().enumerate() {
            assert!(keys[i + 1..].iter().all(|b| a != b), "purpose {i} collides");
            assert_ne!(*a, [0; 32], "never a key of zeros");
        }
    }

    #[test]
    fn rfc5869_test_case_1() {
        // RFC 5869, A.1: IKM 0x0b × 22, salt 0x00..0x0c, info 0xf0..0xf9, L = 42; the first 32
        // bytes of the OKM.
        let prk = Prk::extract(&(0u8..=0x0c).collect::<Vec<_>>(), &[0x0b; 22]);
        let okm = prk.expand_key(&[&(0xf0u8..=0xf9).collect::<Vec<_>>()]).expect("expands");
        assert_eq!(
            okm.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_root_and_label_derive_without_panic(root in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), topic in ".{0,64}") {
            let key = derive(&root, &Purpose::TopicKey { epoch: 0, topic: &topic }).expect("derives");
            proptest::prop_assert_ne!(*key, [0u8; 32]);
        }
    }
}
