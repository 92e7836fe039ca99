//! Lamina's ahead-of-time artifact format: a checked header in front of wasmtime's compiled code.
//!
//! Layout: the 8-byte magic `\0LAMART\x01`, a little-endian `u32` header length, the header as
//! JSON ([`ArtifactHeader`]), then the compiled code. The header lets Lamina say exactly what an
//! artifact is for before handing anything to the engine, and its checksum binds the code to
//! the header. The header is only what the file says about itself: what vouches for it is a
//! signature or the compile cache's tag ([`crate::provenance`]).

use lamina_types::{ModuleHash, Profile, Target};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ArtifactError;

/// The first bytes of every Lamina artifact.
pub const MAGIC: &[u8; 8] = b"\0LAMART\x01";

/// The longest header accepted; real headers are a few hundred bytes.
const MAX_HEADER: usize = 64 * 1024;

/// Whether an artifact holds a core module or a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgramKind {
    /// A core WebAssembly module (WASI preview 1).
    Module,
    /// A component (WASI preview 2).
    Component,
}

impl std::fmt::Display for ProgramKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProgramKind::Module => "module",
            ProgramKind::Component => "component",
        })
    }
}

/// What an artifact says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactHeader {
    /// SHA-256 of the `.wasm` it was compiled from: the workload identity.
    pub module_hash: ModuleHash,
    /// Module or component.
    pub kind: ProgramKind,
    /// The machine code target.
    pub target: Target,
    /// The engine that compiled it (`wasmtime <version>`).
    pub engine: String,
    /// The device profile it was compiled for.
    pub profile: Profile,
    /// Whether fuel metering is compiled in.
    pub fuel: bool,
    /// Hex SHA-256 of the compiled code that follows the header.
    pub code_sha256: String,
    /// Length of the compiled code in bytes.
    pub code_len: u64,
}

/// An artifact split into its checked header and its code.
#[derive(Debug)]
pub struct Artifact<'a> {
    /// The header.
    pub header: ArtifactHeader,
    /// The compiled code (wasmtime's serialised form).
    pub code: &'a [u8],
}

/// Whether the bytes start like a Lamina artifact.
pub fn is_artifact(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Encodes an artifact: header then code.
pub fn encode(mut header: ArtifactHeader, code: &[u8]) -> Vec<u8> {
    header.code_sha256 = hex::encode(Sha256::digest(code));
    header.code_len = code.len() as u64;
    // Serialising a struct of strings, enums and integers to JSON cannot fail.
    let json = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + json.len() + code.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(code);
    out
}

/// Parses the header and checks that the code matches its checksum.
///
/// # Errors
/// [`ArtifactError::Malformed`] for a bad magic, length or header; [`ArtifactError::Corrupt`]
/// when the code does not match.
pub fn decode(bytes: &[u8]) -> Result<Artifact<'_>, ArtifactError> {
    let header = decode_header(bytes)?;
    let start = MAGIC.len() + 4 + header_len(bytes)?;
    let code = &bytes[start..];
    if code.len() as u64 != header.code_len {
        return Err(ArtifactError::Malformed(format!(
            "the header announces {} bytes of code but {} follow (truncated?)",
            header.code_len,
            code.len()
        )));
    }
    if hex::encode(Sha256::digest(code)) != header.code_sha256 {
        return Err(ArtifactError::Corrupt);
    }
    Ok(Artifact { header, code })
}

/// The header exactly as stored (the JSON between the length and the code): what signatures
/// and compile-cache tags cover.
///
/// # Errors
/// [`ArtifactError::Malformed`] when the magic or the length is wrong.
pub fn header_bytes(bytes: &[u8]) -> Result<&[u8], ArtifactError> {
    let len = header_len(bytes)?;
    Ok(&bytes[MAGIC.len() + 4..MAGIC.len() + 4 + len])
}

/// Parses only the header (for `lamina inspect`), without checking the code.
///
/// # Errors
/// [`ArtifactError::Malformed`] when the magic, the length or the JSON is wrong.
pub fn decode_header(bytes: &[u8]) -> Result<ArtifactHeader, ArtifactError> {
    serde_json::from_slice(header_bytes(bytes)?).map_err(|e| ArtifactError::Malformed(format!("header: {e}")))
}

fn header_len(bytes: &[u8]) -> Result<usize, ArtifactError> {
    if !is_artifact(bytes) {
        return Err(ArtifactError::Malformed("it does not start with Lamina's artifact magic".into()));
    }
    let len_bytes: [u8; 4] = bytes
        .get(MAGIC.len()..MAGIC.len() + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| ArtifactError::Malformed("it ends inside the header length".into()))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_HEADER {
        return Err(ArtifactError::Malformed(format!("a header of {len} bytes is too long")));
    }
    if bytes.len() < MAGIC.len() + 4 + len {
        return Err(ArtifactError::Malformed("it ends inside the header".into()));
    }
    Ok(len)
}

/// A header for the unit tests of this crate: module `module`, aarch64, edge profile.
#[cfg(test)]
pub(crate) fn test_header(module: &[u8]) -> ArtifactHeader {
    ArtifactHeader {
        module_hash: ModuleHash::of(module),
        kind: ProgramKind::Module,
        target: Target::Aarch64Linux,
        engine: "wasmtime 0".into(),
        profile: Profile::Edge,
        fuel: false,
        code_sha256: String::new(),
        code_len: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ArtifactHeader {
        test_header(b"m")
    }

    #[test]
    fn round_trip() {
        let bytes = encode(header(), b"compiled code");
        let a = decode(&bytes).expect("round trip");
        assert_eq!(a.code, b"compiled code");
        assert_eq!(a.header.target, Target::Aarch64Linux);
        assert_eq!(a.header.code_len, 13);
    }

    #[test]
    fn flipped_code_byte_is_corrupt() {
        let mut bytes = encode(header(), b"compiled code");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(decode(&bytes), Err(ArtifactError::Corrupt)));
    }

    #[test]
    fn truncation_is_malformed() {
        let bytes = encode(header(), b"compiled code");
        for cut in [0, 4, 10, 40, bytes.len() - 1] {
            assert!(matches!(decode(&bytes[..cut]), Err(ArtifactError::Malformed(_))), "cut at {cut}");
        }
    }

    #[test]
    fn huge_header_length_is_rejected() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&bytes), Err(ArtifactError::Malformed(_))));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = decode(&bytes);
        }
    }
}
