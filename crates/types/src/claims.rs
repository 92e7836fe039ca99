//! Attestation claims: what evidence says about a workload, in canonical CBOR, and the
//! domain-separated hash of them that becomes a TEE's 64-byte report data.
//!
//! The claims are an EAT (RFC 9711) claims set. Registered keys are used where EAT has them
//! (`iat` 6, `nonce` 10, `eat_profile` 265); Lamina's own claims use private keys below -65536.
//! The encoding is deterministic (RFC 8949 §4.2.1: shortest integers, map keys in bytewise
//! order of their encodings) and decoding accepts only that encoding, so one set of claims has
//! exactly one byte string and one report data.

use std::fmt;

use sha2::{Digest, Sha512};

use crate::ModuleHash;
use crate::cbor::{self, Value};

/// The EAT profile Lamina's claims follow.
pub const EAT_PROFILE: &str = "tag:lamina,2026:eat/1";

/// Domain-separation tag hashed in front of the claims for the report data.
pub const REPORT_DATA_TAG: &[u8] = b"lamina-claims-v1\0";

/// The largest encoded claims set accepted: claims are small, so anything bigger is hostile.
pub const MAX_CLAIMS_LEN: usize = 16 * 1024;

const KEY_IAT: i64 = 6;
const KEY_NONCE: i64 = 10;
const KEY_PROFILE: i64 = 265;
const KEY_PLATFORM: i64 = -75001;
const KEY_RUNTIME: i64 = -75002;
const KEY_MODULE: i64 = -75003;
const KEY_CONFIG: i64 = -75004;
const KEY_INSTANCE_KEY: i64 = -75005;

/// The kind of platform that produced evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PlatformKind {
    /// Lamina's software platform for development: no hardware protection.
    Sim,
    /// A TPM 2.0-measured board.
    Tpm,
    /// An Intel SGX enclave.
    Sgx,
    /// An Intel TDX trust domain.
    Tdx,
    /// An AMD SEV-SNP guest.
    Snp,
    /// An Arm CCA realm.
    Cca,
}

impl PlatformKind {
    /// Every kind.
    pub const ALL: [PlatformKind; 6] = [Self::Sim, Self::Tpm, Self::Sgx, Self::Tdx, Self::Snp, Self::Cca];

    /// The lowercase name used in claims, policies and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Tpm => "tpm",
            Self::Sgx => "sgx",
            Self::Tdx => "tdx",
            Self::Snp => "snp",
            Self::Cca => "cca",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What evidence asserts about a workload instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The platform that produced the evidence.
    pub platform: PlatformKind,
    /// A measurement of the Lamina runtime itself (for instance the SHA-256 of its binary).
    pub runtime_measurement: Vec<u8>,
    /// The workload's identity, when the evidence is about a workload rather than a node.
    pub module_hash: Option<ModuleHash>,
    /// SHA-256 of the workload's configuration (arguments, environment, mounts, limits).
    pub config_digest: Option<[u8; 32]>,
    /// The instance's public key (SubjectPublicKeyInfo, DER), binding a TLS or sealing key.
    pub instance_key: Option<Vec<u8>>,
    /// The verifier's challenge, 8 to 64 bytes (EAT's bounds).
    pub nonce: Vec<u8>,
    /// Issued-at time, seconds since the Unix epoch.
    pub issued_at: u64,
}

/// Claims bytes that are not a canonical Lamina claims set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// Larger than [`MAX_CLAIMS_LEN`].
    #[error("claims of {0} bytes are larger than the {MAX_CLAIMS_LEN}-byte limit")]
    TooLarge(usize),
    /// Not CBOR, or not one CBOR item.
    #[error("claims are not well-formed CBOR: {0}")]
    Cbor(String),
    /// Not a map.
    #[error("claims must be a CBOR map")]
    NotAMap,
    /// A claim is missing.
    #[error("claim `{0}` is missing")]
    Missing(&'static str),
    /// A claim has the wrong type or size.
    #[error("claim `{name}` is malformed: {reason}")]
    Malformed {
        /// The claim.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A key Lamina does not define.
    #[error("unknown claim key {0}")]
    UnknownKey(String),
    /// Well-formed but not the deterministic encoding (so it would hash differently).
    #[error("claims are not in canonical CBOR (deterministic encoding, RFC 8949 section 4.2.1)")]
    NotCanonical,
}

impl Claims {
    /// Encodes the claims in canonical CBOR.
    ///
    /// # Errors
    /// [`ClaimsError::Malformed`] when the nonce is outside 8..=64 bytes.
    pub fn to_cbor(&self) -> Result<Vec<u8>, ClaimsError> {
        check_nonce(&self.nonce)?;
        let mut entries: Vec<(i64, Value)> = vec![
            (KEY_IAT, Value::Integer(self.issued_at.into())),
            (KEY_NONCE, Value::Bytes(self.nonce.clone())),
            (KEY_PROFILE, Value::Text(EAT_PROFILE.into())),
            (KEY_PLATFORM, Value::Text(self.platform.name().into())),
            (KEY_RUNTIME, Value::Bytes(self.runtime_measurement.clone())),
        ];
        if let Some(h) = &self.module_hash {
            entries.push((KEY_MODULE, Value::Bytes(h.as_bytes().to_vec())));
        }
        if let Some(d) = &self.config_digest {
            entries.push((KEY_CONFIG, Value::Bytes(d.to_vec())));
        }
        if let Some(k) = &self.instance_key {
            entries.push((KEY_INSTANCE_KEY, Value::Bytes(k.clone())));
        }
        // Deterministic order: by the bytes of each encoded key.
        let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
            .into_iter()
            .map(|(k, v)| {
                let key = Value::Integer(k.into());
                (cbor::encode(&key), key, v)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(cbor::encode(&Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())))
    }

    /// Decodes canonical CBOR claims, rejecting anything else.
    ///
    /// # Errors
    /// A [`ClaimsError`] naming what is wrong.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ClaimsError> {
        let value = cbor::decode_one(bytes, MAX_CLAIMS_LEN).map_err(|e| match e {
            cbor::CborError::TooLarge { len, .. } => ClaimsError::TooLarge(len),
            other => ClaimsError::Cbor(other.to_string()),
        })?;
        let Value::Map(map) = value else { return Err(ClaimsError::NotAMap) };
        let mut fields = Fields::default();
        for (k, v) in map {
            let key = k.as_integer().and_then(|i| i64::try_from(i).ok());
            let slot = match key {
                Some(KEY_IAT) => &mut fields.iat,
                Some(KEY_NONCE) => &mut fields.nonce,
                Some(KEY_PROFILE) => &mut fields.profile,
                Some(KEY_PLATFORM) => &mut fields.platform,
                Some(KEY_RUNTIME) => &mut fields.runtime,
                Some(KEY_MODULE) => &mut fields.module,
                Some(KEY_CONFIG) => &mut fields.config,
                Some(KEY_INSTANCE_KEY) => &mut fields.instance_key,
                _ => return Err(ClaimsError::UnknownKey(format!("{k:?}").chars().take(60).collect())),
            };
            if slot.replace(v).is_some() {
                return Err(ClaimsError::NotCanonical);
            }
        }
        let profile = text(fields.profile, "eat_profile")?;
        if profile != EAT_PROFILE {
            return Err(malformed("eat_profile", format!("`{profile}` is not {EAT_PROFILE}")));
        }
        let platform_name = text(fields.platform, "platform")?;
        let platform = PlatformKind::from_name(&platform_name)
            .ok_or_else(|| malformed("platform", format!("unknown platform `{platform_name}`")))?;
        let issued_at = fields
            .iat
            .ok_or(ClaimsError::Missing("iat"))?
            .as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| malformed("iat", "not a non-negative integer".into()))?;
        let nonce = bytes_of(fields.nonce, "nonce")?;
        check_nonce(&nonce)?;
        let claims = Claims {
            platform,
            runtime_measurement: bytes_of(fields.runtime, "runtime_measurement")?,
            module_hash: fields.module.map(|v| fixed32(v, "module_hash").map(ModuleHash::from_bytes)).transpose()?,
            config_digest: fields.config.map(|v| fixed32(v, "config_digest")).transpose()?,
            instance_key: fields.instance_key.map(|v| bytes_of(Some(v), "instance_key")).transpose()?,
            nonce,
            issued_at,
        };
        if claims.to_cbor()? != bytes {
            return Err(ClaimsError::NotCanonical);
        }
        Ok(claims)
    }

    /// The 64 bytes a TEE report binds: SHA-512 over [`REPORT_DATA_TAG`] and the canonical claims.
    ///
    /// # Errors
    /// As [`Claims::to_cbor`].
    pub fn report_data(&self) -> Result<[u8; 64], ClaimsError> {
        Ok(report_data_of(&self.to_cbor()?))
    }
}

/// The report data for already-encoded claims (see [`Claims::report_data`]).
pub fn report_data_of(canonical_claims: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(REPORT_DATA_TAG);
    h.update(canonical_claims);
    h.finalize().into()
}

#[derive(Default)]
struct Fields {
    iat: Option<Value>,
    nonce: Option<Value>,
    profile: Option<Value>,
    platform: Option<Value>,
    runtime: Option<Value>,
    module: Option<Value>,
    config: Option<Value>,
    instance_key: Option<Value>,
}

fn malformed(name: &'static str, reason: String) -> ClaimsError {
    ClaimsError::Malformed { name, reason }
}

fn check_nonce(nonce: &[u8]) -> Result<(), ClaimsError> {
    if (8..=64).contains(&nonce.len()) {
        Ok(())
    } else {
        Err(malformed("nonce", format!("{} bytes; EAT nonces are 8 to 64 bytes", nonce.len())))
    }
}

fn text(v: Option<Value>, name: &'static str) -> Result<String, ClaimsError> {
    match v.ok_or(ClaimsError::Missing(name))? {
        Value::Text(t) => Ok(t),
        _ => Err(malformed(name, "not a text string".into())),
    }
}

fn bytes_of(v: Option<Value>, name: &'static str) -> Result<Vec<u8>, ClaimsError> {
    match v.ok_or(ClaimsError::Missing(name))? {
        Value::Bytes(b) => Ok(b),
        _ => Err(malformed(name, "not a byte string".into())),
    }
}

fn fixed32(v: Value, name: &'static str) -> Result<[u8; 32], ClaimsError> {
    let b = bytes_of(Some(v), name)?;
    <[u8; 32]>::try_from(b.as_slice()).map_err(|_| malformed(name, format!("{} bytes, expected 32", b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Claims {
        Claims {
            platform: PlatformKind::Sim,
            runtime_measurement: vec![7; 32],
            module_hash: Some(ModuleHash::of(b"app.wasm")),
            config_digest: Some([3; 32]),
            instance_key: Some(vec![0x30, 0x59, 1, 2, 3]),
            nonce: vec![9; 16],
            issued_at: 1_790_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        let bytes = c.to_cbor().expect("encodes");
        assert_eq!(Claims::from_cbor(&bytes), Ok(c));
    }

    #[test]
    fn keys_are_in_deterministic_order() {
        let bytes = sample().to_cbor().expect("encodes");
        // Map of 8 pairs, then iat (6), nonce (10), eat_profile (265 = 0x19 0x01 0x09), then the
        // negative private keys.
        assert_eq!(&bytes[..2], &[0xa8, 0x06]);
    }

    #[test]
    fn optional_claims_may_be_absent() {
        let c = Claims { module_hash: None, config_digest: None, instance_key: None, ..sample() };
        let bytes = c.to_cbor().expect("encodes");
        assert_eq!(Claims::from_cbor(&bytes), Ok(c));
    }

    #[test]
    fn report_data_binds_every_claim() {
        let base = sample().report_data().expect("report data");
        let changed = [
            Claims { nonce: vec![8; 16], ..sample() },
            Claims { module_hash: Some(ModuleHash::of(b"other.wasm")), ..sample() },
            Claims { platform: PlatformKind::Tpm, ..sample() },
            Claims { issued_at: 1, ..sample() },
            Claims { instance_key: None, ..sample() },
        ];
        for c in changed {
            assert_ne!(c.report_data().expect("report data"), base, "{c:?}");
        }
        let plain = Sha512::digest(sample().to_cbor().expect("encodes"));
        assert_ne!(&plain[..], &base[..], "the tag separates domains");
    }

    #[test]
    fn nonce_bounds() {
        for len in [0, 7, 65] {
            assert!(matches!(
                Claims { nonce: vec![1; len], ..sample() }.to_cbor(),
                Err(ClaimsError::Malformed { name: "nonce", .. })
            ));
        }
    }

    #[test]
    fn non_canonical_encodings_are_rejected() {
        // The same map with a non-shortest integer for iat.
        let mut entries = match ciborium::from_reader::<Value, _>(&sample().to_cbor().expect("encodes")[..]) {
            Ok(Value::Map(m)) => m,
            other => panic!("claims decode as a map: {other:?}"),
        };
        // Reversed key order is well-formed CBOR but not canonical.
        entries.reverse();
        let reversed = cbor::encode(&Value::Map(entries));
        assert_eq!(Claims::from_cbor(&reversed), Err(ClaimsError::NotCanonical));
        // Trailing bytes.
        let mut trailing = sample().to_cbor().expect("encodes");
        trailing.push(0);
        assert!(matches!(Claims::from_cbor(&trailing), Err(ClaimsError::Cbor(_))));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let bytes = cbor::encode(&Value::Map(vec![(Value::Integer(1.into()), Value::Text("x".into()))]));
        assert!(matches!(Claims::from_cbor(&bytes), Err(ClaimsError::UnknownKey(_))));
        let bytes = cbor::encode(&Value::Array(vec![]));
        assert_eq!(Claims::from_cbor(&bytes), Err(ClaimsError::NotAMap));
        assert_eq!(Claims::from_cbor(&vec![0xa0; MAX_CLAIMS_LEN + 1]), Err(ClaimsError::TooLarge(MAX_CLAIMS_LEN + 1)));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Claims::from_cbor(&bytes);
        }

        #[test]
        fn every_valid_claims_set_round_trips(
            nonce in proptest::collection::vec(any::<u8>(), 8..=64),
            runtime in proptest::collection::vec(any::<u8>(), 0..64),
            iat in any::<u64>(),
            module in proptest::option::of(proptest::array::uniform32(any::<u8>())),
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100)),
            platform in prop::sample::select(PlatformKind::ALL.to_vec()),
        ) {
            let c = Claims {
                platform,
                runtime_measurement: runtime,
                module_hash: module.map(ModuleHash::from_bytes),
                config_digest: None,
                instance_key: key,
                nonce,
                issued_at: iat,
            };
            let bytes = c.to_cbor().expect("valid claims encode");
            prop_assert_eq!(Claims::from_cbor(&bytes), Ok(c));
        }
    }
}
