//! Code provenance: which compiled code may reach wasmtime's deserialisation, and what module
//! identity it carries.
//!
//! Deserialised code runs as native code outside the Wasm sandbox, and an artifact's header is
//! only what the file says about itself. So compiled code reaches the engine only as a
//! [`TrustedCode`], and only these paths make one:
//!
//! 1. code this process compiled ([`TrustedCode::compiled_here`], inside this crate);
//! 2. an artifact whose signature verifies against a key the caller trusts
//!    ([`TrustedCode::signed`]): its module hash is taken from the signed header;
//! 3. a compile-cache entry authenticated with a key only this runtime holds and bound to the
//!    module hash it is filed under (`CompileCache`, inside this crate);
//! 4. an explicit, dangerously named opt-in ([`TrustedCode::danger_unverified_native_code`]):
//!    the code runs, but carries **no module identity**, so callers can refuse it sealed
//!    storage, attestation and secrets.
//!
//! `code::deserialize`, the crate's one `unsafe` call, takes a [`TrustedCode`].

use lamina_types::ModuleHash;
use p256::ecdsa::VerifyingKey;

use crate::ArtifactError;
use crate::format::{self, Artifact, ArtifactHeader};

/// Where a piece of compiled code came from, and so how far it is trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// This process compiled it from the `.wasm` whose hash it carries.
    CompiledHere,
    /// Its signature verified against a trusted key (the key's id).
    Signed {
        /// The id of the key that signed it (`signing::key_id`).
        signer: String,
    },
    /// An entry of this runtime's compile cache, authenticated with the cache key.
    CacheEntry,
    /// Nothing vouches for it: run only on the caller's explicit, dangerous opt-in.
    DangerUnverified,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CompiledHere => f.write_str("compiled here"),
            Self::Signed { signer } => write!(f, "signed by key {signer}"),
            Self::CacheEntry => f.write_str("authenticated compile-cache entry"),
            Self::DangerUnverified => f.write_str("UNVERIFIED native code"),
        }
    }
}

/// Compiled code that may be handed to the engine: an artifact whose checksum holds, with the
/// [`Origin`] that vouches for it. Only the paths listed in the module documentation make one.
#[derive(Debug)]
pub struct TrustedCode<'a> {
    artifact: Artifact<'a>,
    origin: Origin,
}

impl<'a> TrustedCode<'a> {
    /// Code this process just compiled (`Engine::compile_binary`'s output).
    pub(crate) fn compiled_here(bytes: &'a [u8]) -> Result<Self, ArtifactError> {
        Ok(Self { artifact: format::decode(bytes)?, origin: Origin::CompiledHere })
    }

    /// An authenticated compile-cache entry (made by `CompileCache::open` after its tag and
    /// module hash were checked).
    pub(crate) fn cache_entry(artifact: Artifact<'a>) -> Self {
        Self { artifact, origin: Origin::CacheEntry }
    }

    /// An artifact whose detached signature verifies against one of `trusted`.
    ///
    /// # Errors
    /// [`ArtifactError::BadSignature`] when no trusted key made the signature; the errors of
    /// [`format::decode`] for a malformed or corrupt artifact.
    pub fn signed(bytes: &'a [u8], signature: &[u8], trusted: &[VerifyingKey]) -> Result<Self, ArtifactError> {
        let (artifact, signer) = crate::signing::verify(bytes, signature, trusted)?;
        Ok(Self { artifact, origin: Origin::Signed { signer } })
    }

    /// An artifact that nothing vouches for. Its code is native code that runs outside the Wasm
    /// sandbox, with the rights of this process; the module hash in its header is unverified,
    /// so the code gets no module identity ([`identity`](Self::identity) is `None`).
    ///
    /// # Errors
    /// The errors of [`format::decode`] for a malformed or corrupt artifact.
    pub fn danger_unverified_native_code(bytes: &'a [u8]) -> Result<Self, ArtifactError> {
        Ok(Self { artifact: format::decode(bytes)?, origin: Origin::DangerUnverified })
    }

    /// The artifact's header. For unverified code every field is only what the file claims.
    pub fn header(&self) -> &ArtifactHeader {
        &self.artifact.header
    }

    /// What vouches for the code.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The verified module hash: `None` for unverified code.
    pub fn identity(&self) -> Option<ModuleHash> {
        (self.origin != Origin::DangerUnverified).then_some(self.artifact.header.module_hash)
    }

    pub(crate) fn artifact(&self) -> &Artifact<'a> {
        &self.artifact
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode;
    use p256::ecdsa::SigningKey;

    fn artifact(module: &[u8]) -> Vec<u8> {
        encode(crate::format::test_header(module), b"compiled code")
    }

    #[test]
    fn unverified_code_has_no_identity_and_signed_code_has_the_signed_one() {
        let bytes = artifact(b"a");
        let unverified = TrustedCode::danger_unverified_native_code(&bytes).expect("well formed");
        assert_eq!(unverified.identity(), None);
        assert_eq!(unverified.origin(), &Origin::DangerUnverified);
        let key = SigningKey::from_slice(&[3; 32]).expect("a scalar");
        let signature = crate::signing::sign(&bytes, &key).expect("signs");
        let signed = TrustedCode::signed(&bytes, &signature, &[*key.verifying_key()]).expect("verifies");
        assert_eq!(signed.identity(), Some(ModuleHash::of(b"a")));
        assert!(matches!(signed.origin(), Origin::Signed { .. }));
    }

    #[test]
    fn relabelled_header_fails_the_signature() {
        // The attack: module B's artifact with its header's module hash edited to module A's.
        let a = ModuleHash::of(b"a").to_hex();
        let b = ModuleHash::of(b"b").to_hex();
        let bytes = artifact(b"b");
        let key = SigningKey::from_slice(&[3; 32]).expect("a scalar");
        let signature = crate::signing::sign(&bytes, &key).expect("signs");
        let relabelled = String::from_utf8_lossy(&bytes).replace(&b, &a).into_bytes();
        assert_ne!(relabelled, bytes);
        let e = TrustedCode::signed(&relabelled, &signature, &[*key.verifying_key()]).expect_err("relabelled");
        assert!(matches!(e, ArtifactError::BadSignature(_)), "{e}");
    }
}
