//! Attested TLS: X.509 certificates that carry attestation evidence, and rustls verifiers that
//! accept a peer only when its evidence is genuine, binds the certificate's key, and satisfies the
//! policy.
//!
//! # The certificate
//!
//! An attested certificate is self-signed (ECDSA P-256 for Lamina's own) and carries the
//! Interoperable RA-TLS evidence extension: OID `2.23.133.5.4.9` (TCG DICE
//! `tcg-dice-conceptual-message-wrapper`), non-critical, whose value is one CBOR item
//!
//! ```text
//! 60000([ evidence: bstr, claims: bstr ])          ; CBOR tag 60000 around a two-item array
//! claims  = bstr .cbor { "pubkey-hash": bstr .cbor [ hash-alg-id, hash ], * tstr => any }
//! ```
//!
//! `hash-alg-id` is the IANA Named Information Hash Algorithm identifier (1 = SHA-256,
//! 7 = SHA-384, 8 = SHA-512) and `hash` the digest of the certificate's SubjectPublicKeyInfo
//! (DER). This is what Gramine and the Intel SGX SDK write, where `evidence` is an SGX (or TDX)
//! quote whose report data begins with SHA-256 of the `claims` byte string: the quote binds the
//! claims, the claims bind the key.
//!
//! Lamina's certificates use the same wrapper with two differences:
//! - `evidence` is a Lamina envelope (canonical CBOR, [`lamina_types::Envelope`]) from any
//!   platform, so a Lamina peer appraises it exactly as any other envelope;
//! - `claims` holds, besides `"pubkey-hash"` (SHA-256), the entry
//!   `"lamina-evidence": "envelope-v1"` that says so. The map is canonically encoded.
//!
//! The key binding of a Lamina certificate is in the envelope's own claims: their
//! `instance_key` is the certificate's SubjectPublicKeyInfo (DER), and the platform's evidence
//! binds those claims through its report data. The `pubkey-hash` claim is carried for readers
//! that know only the interoperable format, and checked too. A reader that expects an SGX quote
//! in `evidence` finds an envelope instead and refuses it, which is the safe outcome: it
//! cannot appraise a platform it does not know.
//!
//! # Issuing
//!
//! The attester's platform stays outside this crate: [`CertificateRequest::new`] makes the key
//! and shows its SubjectPublicKeyInfo, the caller builds claims with `instance_key` set to it
//! (see [`CertificateRequest::claims`]), has any platform attest them (`lamina_tee::attest`),
//! and [`CertificateRequest::finish`] signs the certificate around the envelope.
//!
//! The claims carry their issue time; the verifier's policy (`max_age`) bounds how long after
//! that a certificate is accepted, whatever its X.509 validity says. An attester reissues its
//! certificate more often than that.
//!
//! # Verifying
//!
//! [`appraise_certificate`] makes every check and records it in one [`Appraisal`]:
//!
//! | check | what it says |
//! |---|---|
//! | `ratls.certificate` | the certificate is one well-formed X.509 DER certificate within the size limit |
//! | `ratls.signature` | its self-signature verifies under its own key |
//! | `ratls.validity` | the appraisal time is within its validity |
//! | `ratls.extension` | it carries exactly one well-formed evidence extension |
//! | `ratls.pubkey_hash` | the `pubkey-hash` claim is the hash of its SubjectPublicKeyInfo |
//! | `ratls.instance_key` | (Lamina) the envelope's claims bind its SubjectPublicKeyInfo |
//! | `ratls.claims_binding` | (quote) the quote's report data begins with SHA-256 of the claims |
//! | `ratls.evidence` | (fails only) the evidence is neither an envelope nor an SGX or TDX quote |
//!
//! then the evidence checks of [`Verifier::appraise`](crate::Verifier::appraise) (with
//! `Expect::instance_key` set to the certificate's key, so `claims.instance_key` too) or, for
//! a bare quote, of [`Verifier::appraise_native`](crate::Verifier::appraise_native), and the
//! policy's `policy.*` checks. A bare quote names no Lamina module, so it is refused with
//! `policy.module_hash` when the policy lists modules.
//!
//! [`AttestedServerVerifier`] and [`AttestedClientVerifier`] make rustls run this on the peer's
//! certificate, and check the handshake signature against the certificate's key; a refusal is
//! a certificate error whose text lists the failed checks. The server name a client asks for is
//! not checked: the peer's identity is its attested evidence, not a name.
//!
//! A verifier remembers the certificates it accepted (by their SHA-256) for at most
//! [`DEFAULT_CACHE_TTL`], never past the certificate's validity or the claims' `max_age`, so a
//! peer that reconnects with the same certificate is not appraised again; `with_cache_ttl(ZERO)`
//! turns this off. [`server_config`] and [`client_config`] turn TLS session resumption off, so
//! that no connection skips its peer's appraisal.
//!
//! Certificates from Gramine or the Intel SGX SDK are read and their binding checked; their
//! quotes are appraised by the DCAP verifier, which needs collateral for the quote's platform
//! (`with_collateral`): without it they are refused, naming the missing collateral.

use crate::Appraisal;

mod extension;
mod issue;
mod verify;

pub use extension::{
    EVIDENCE_OID, EVIDENCE_OID_DER, HashAlgorithm, LAMINA_EVIDENCE_CLAIM, LAMINA_EVIDENCE_FORMAT, LAMINA_SERVED_CLAIM,
    MAX_CERT_LEN, MAX_EXTENSION_LEN, PUBKEY_HASH_CLAIM, PubkeyHash, RatlsEvidence, RatlsExtension, RatlsPayload,
    TAG_EVIDENCE, decode_extension, lamina_extension, lamina_extension_serving, parse_extension,
};
pub use issue::{AttestedCert, CertificateRequest};
pub use verify::{
    AttestedClientVerifier, AttestedServerVerifier, DEFAULT_CACHE_TTL, Destination, appraise_certificate,
    client_config, open_server_config, relying_party_config, server_config,
};

/// Why a certificate could not be read, issued, or configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RatlsError {
    /// Larger than the limit for its kind.
    #[error("{what} of {len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not one well-formed X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    Certificate(String),
    /// The certificate has no evidence extension (OID 2.23.133.5.4.9).
    #[error("the certificate carries no attestation evidence (no extension {EVIDENCE_OID})")]
    NoExtension,
    /// The certificate has the evidence extension more than once.
    #[error("the certificate carries the evidence extension {EVIDENCE_OID} {0} times")]
    DuplicateExtension(usize),
    /// The extension's value is not the tagged `[evidence, claims]` array.
    #[error("the evidence extension is malformed: {0}")]
    Extension(String),
    /// The claims byte string is not a map with a well-formed `pubkey-hash`.
    #[error("the evidence extension's claims are malformed: {0}")]
    Claims(String),
    /// The evidence claims to be a Lamina envelope but is not one.
    #[error("the evidence extension's envelope is malformed: {0}")]
    Envelope(String),
    /// The envelope's claims do not bind this certificate request's key.
    #[error("the envelope does not bind this certificate's key: {0}")]
    KeyNotBound(String),
    /// The key or certificate could not be made.
    #[error("cannot issue the certificate: {0}")]
    Issue(String),
    /// A rustls configuration could not be built.
    #[error("cannot configure TLS: {0}")]
    Tls(String),
}

/// A refusal of a peer's certificate: the failed checks of its appraisal, one per line.
///
/// It travels inside `rustls::Error::InvalidCertificate(CertificateError::Other(..))`; its
/// `Debug` is the same text as its `Display` so that rustls's message shows the reasons.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("attested TLS refused the peer's certificate: {}", reasons.join("; "))]
pub struct Refusal {
    /// The failed checks as `name: detail`.
    pub reasons: Vec<String>,
}

impl Refusal {
    /// The refusal of an appraisal that did not verify.
    pub fn of(appraisal: &Appraisal) -> Self {
        let mut reasons = appraisal.reasons();
        if reasons.is_empty() {
            reasons.push("ratls: no check was made".into());
        }
        Self { reasons }
    }

    /// Whether a check of this name is among the reasons.
    pub fn names(&self, check: &str) -> bool {
        self.reasons.iter().any(|r| r.split(':').next() == Some(check))
    }
}

impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
