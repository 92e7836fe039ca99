//! Workload identity: the SHA-256 of a module's bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The SHA-256 of a `.wasm` file's bytes: the identity of a workload.
///
/// Displayed and parsed as `sha256:<64 hex digits>`; the bare hex form is accepted too.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleHash([u8; 32]);

impl ModuleHash {
    /// Hashes module bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Wraps an existing digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not `sha256:` followed by 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a module hash: expected `sha256:` followed by 64 hex digits")]
pub struct ParseHashError {
    input: String,
}

impl FromStr for ModuleHash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("sha256:").unwrap_or(s);
        let mut out = [0u8; 32];
        if digits.len() != 64 || hex::decode_to_slice(digits, &mut out).is_err() {
            return Err(ParseHashError { input: s.chars().take(80).collect() });
        }
        Ok(Self(out))
    }
}

impl Serialize for ModuleHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModuleHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_digest() {
        let h = ModuleHash::of(b"");
        assert_eq!(h.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(h.to_string().parse::<ModuleHash>(), Ok(h));
        assert_eq!(h.to_hex().parse::<ModuleHash>(), Ok(h));
    }

    #[test]
    fn rejects_wrong_length_and_digits() {
        assert!("sha256:abcd".parse::<ModuleHash>().is_err());
        assert!("sha256:".parse::<ModuleHash>().is_err());
        let bad = format!("sha256:{}", "g".repeat(64));
        assert!(bad.parse::<ModuleHash>().is_err());
    }

    #[test]
    fn serde_round_trip() {
        let h = ModuleHash::of(b"lamina");
        let json = serde_json::to_string(&h).expect("a hash always serialises");
        assert_eq!(serde_json::from_str::<ModuleHash>(&json).ok(), Some(h));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,100}") {
            let _ = s.parse::<ModuleHash>();
        }

        #[test]
        fn display_parse_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let h = ModuleHash::from_bytes(bytes);
            prop_assert_eq!(h.to_string().parse::<ModuleHash>(), Ok(h));
        }
    }
}
