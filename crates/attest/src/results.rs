//! Attestation results: an EAR (EAT Attestation Result, draft-ietf-rats-ear) signed by the
//! verifier's key, so that nodes, workloads and relying parties consume a short signed verdict
//! instead of raw evidence.
//!
//! The token is a JWT signed with ES256 (a P-256 key in PKCS#8 PEM). It has one submodule,
//! `lamina`, whose AR4SI trust vector summarises the appraisal, an expiry, and the claims'
//! nonce; the verifier's checks and measurements ride along as verifier-added claims.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ear::claim::{
    APPROVED_CONFIG, APPROVED_FILES, CONTRAINDICATED_FILES, CONTRAINDICATED_HARDWARE, CRYPTO_VALIDATION_FAILED,
    GENUINE_HARDWARE, TRUSTWORTHY_INSTANCE, UNSAFE_CONFIG, UNSAFE_HARDWARE, UNTRUSTWORTHY_INSTANCE,
};
use ear::{Algorithm, Ear, RawValue, TrustVector, VerifierID};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};

use crate::Appraisal;

/// The name of the EAR submodule Lamina's appraisal goes in.
pub const SUBMODULE: &str = "lamina";

/// An attestation result that could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// The signing or verification key is not usable.
    #[error(
        "the EAR key is not a P-256 key in PEM ({0}); make one with `openssl genpkey -algorithm EC -pkeyopt \
         ec_paramgen_curve:P-256 -out ear.key`"
    )]
    Key(String),
    /// The `ear` library refused the token.
    #[error("EAR: {0}")]
    Ear(String),
    /// The token has expired.
    #[error("the attestation result expired at {0} (Unix time)")]
    Expired(i64),
}

/// Makes and signs an EAR for an appraisal, valid for `validity` from `at`.
///
/// # Errors
/// When the key is not a P-256 PKCS#8 PEM private key, or signing fails.
pub fn issue_ear(a: &Appraisal, key_pem: &[u8], validity: Duration, at: SystemTime) -> Result<String, ResultError> {
    let text = std::str::from_utf8(key_pem).map_err(|_| ResultError::Key("not text".into()))?;
    p256::SecretKey::from_pkcs8_pem(text).map_err(|e| ResultError::Key(e.to_string()))?;
    let iat = unix(at);
    let mut appraisal = ear::Appraisal::new();
    appraisal.trust_vector = trust_vector(a);
    appraisal.update_status_from_trust_vector();
    appraisal.policy_ids = vec!["lamina-policy".into()];
    if let Some(claims) = &a.claims {
        appraisal.nonce = ear::Nonce::try_from(claims.nonce.as_slice()).ok();
    }
    let mut extra = BTreeMap::new();
    extra.insert("verified".to_owned(), RawValue::Bool(a.verified()));
    if let Some(platform) = a.platform {
        extra.insert("platform".to_owned(), RawValue::String(platform.to_string()));
    }
    if let Some(status) = &a.tcb_status {
        extra.insert("tcb_status".to_owned(), RawValue::String(status.clone()));
    }
    extra.insert(
        "measurements".to_owned(),
        RawValue::Map(
            a.measurements.iter().map(|(k, v)| (RawValue::String(k.clone()), RawValue::String(v.clone()))).collect(),
        ),
    );
    extra.insert("reasons".to_owned(), RawValue::Array(a.reasons().into_iter().map(RawValue::String).collect()));
    appraisal.verifier_claims = extra;
    let token = Ear {
        profile: ear::EAR_PROFILE.to_owned(),
        iat,
        exp: Some(iat.saturating_add(i64::try_from(validity.as_secs()).unwrap_or(i64::MAX))),
        vid: VerifierID { build: format!("lamina {}", env!("CARGO_PKG_VERSION")), developer: "lamina".into() },
        submods: BTreeMap::from([(SUBMODULE.to_owned(), appraisal)]),
        nonce: None,
        status: None,
        raw_evidence: None,
        topology: None,
        extensions: ear::Extensions::new(),
    };
    token.sign_jwt_pem(Algorithm::ES256, key_pem).map_err(|e| ResultError::Ear(e.to_string()))
}

/// Reads an EAR, checking its signature against the verifier's public key (PEM) and its expiry at `at`.
///
/// # Errors
/// When the signature does not verify, the token is malformed, or it has expired.
pub fn read_ear(token: &str, public_key_pem: &str, at: SystemTime) -> Result<Ear, ResultError> {
    let key = p256::PublicKey::from_public_key_pem(public_key_pem).map_err(|e| ResultError::Key(e.to_string()))?;
    let ear = Ear::from_jwt_jwk(token, Algorithm::ES256, key.to_jwk_string().as_bytes())
        .map_err(|e| ResultError::Ear(e.to_string()))?;
    match ear.exp {
        Some(exp) if exp <= unix(at) => Err(ResultError::Expired(exp)),
        _ => Ok(ear),
    }
}

fn trust_vector(a: &Appraisal) -> TrustVector {
    let mut tv = TrustVector::new();
    let genuine = a.checks.iter().filter(|c| !c.name.starts_with("policy.")).all(|c| c.ok) && !a.checks.is_empty();
    let sim = a.platform == Some(lamina_types::PlatformKind::Sim);
    tv.instance_identity.set(if a.verified() {
        TRUSTWORTHY_INSTANCE
    } else if genuine {
        UNTRUSTWORTHY_INSTANCE
    } else {
        CRYPTO_VALIDATION_FAILED
    });
    tv.hardware.set(match (genuine, sim) {
        (false, _) => CONTRAINDICATED_HARDWARE,
        (true, true) => UNSAFE_HARDWARE,
        (true, false) => GENUINE_HARDWARE,
    });
    let policy_failed = |prefix: &str| a.checks.iter().any(|c| !c.ok && c.name.starts_with(prefix));
    if a.checks.iter().any(|c| c.name == "policy.module_hash") {
        tv.executables.set(if policy_failed("policy.module_hash") { CONTRAINDICATED_FILES } else { APPROVED_FILES });
    }
    if a.checks.iter().any(|c| c.name.starts_with("policy.")) {
        let config_failed =
            a.checks.iter().any(|c| !c.ok && c.name.starts_with("policy.") && c.name != "policy.module_hash");
        tv.configuration.set(if config_failed { UNSAFE_CONFIG } else { APPROVED_CONFIG });
    }
    tv
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
