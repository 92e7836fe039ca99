//! Enrolment, and the identity a node keeps.

use std::path::Path;

use std::sync::Arc;

use lamina_attest::Verifier;
use lamina_attest::ratls::AttestedCert;
use lamina_tee::Platform;
use lamina_types::JoinToken;
use lamina_wire::ControlClient;
use serde::{Deserialize, Serialize};

use crate::agent::{AgentError, NodeOptions};

/// What a node keeps after enrolling (`<state>/node.json`, mode 0600).
#[derive(Clone, Serialize, Deserialize)]
pub struct Identity {
    /// The control plane's address.
    pub control: String,
    /// Its certificate's fingerprint (hex).
    pub fingerprint: String,
    /// This node's name.
    pub name: String,
    /// Its TLS key (ECDSA P-256, PKCS#8 DER, hex): the key its evidence bound when it
    /// enrolled, which the control plane knows it by.
    pub key: String,
    /// The control plane's artifact signing key (PEM).
    pub artifact_key: String,
    /// The seed of its NATS user (an NKey), when the control plane keeps the NATS server's
    /// users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_seed: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("control", &self.control).field("name", &self.name).finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads a saved identity, if the node enrolled before.
    ///
    /// # Errors
    /// When the file exists but cannot be read.
    pub fn load(state: &Path) -> Result<Option<Self>, AgentError> {
        let path = state.join("node.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AgentError::State(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::State(format!("{}: {e}", path.display()))),
        }
    }

    pub(crate) fn save(&self, state: &Path) -> Result<(), AgentError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::create_dir_all(state).map_err(|e| AgentError::State(format!("{}: {e}", state.display())))?;
        let path = state.join("node.json");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| AgentError::State(e.to_string()))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|e| AgentError::State(format!("{}: {e}", path.display())))
    }

    /// A client of the control plane over mutually attested TLS: it presents a certificate
    /// with fresh evidence for the node's key, and accepts the control plane only under the
    /// pinned key and, with a verifier, evidence that passes it.
    ///
    /// # Errors
    /// When the saved key or fingerprint is malformed, or the platform cannot attest.
    pub fn client(
        &self,
        platform: &dyn Platform,
        verifier: Option<Arc<Verifier>>,
    ) -> Result<ControlClient, AgentError> {
        let (fp, cert) = self.attested_cert(platform)?;
        Ok(ControlClient::attested(&self.control, fp, verifier, &cert)?)
    }

    /// The pinned fingerprint, and a certificate with fresh evidence for the node's key.
    fn attested_cert(&self, platform: &dyn Platform) -> Result<([u8; 32], AttestedCert), AgentError> {
        let fp: [u8; 32] = hex::decode(&self.fingerprint)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| AgentError::State("the saved certificate fingerprint is malformed".into()))?;
        let key = hex::decode(&self.key).map_err(|_| AgentError::State("the saved key is malformed".into()))?;
        Ok((fp, certificate(platform, &key)?))
    }

    /// The TLS configuration of [`Identity::client`], for an asynchronous HTTP client (a
    /// certificate with fresh evidence for the node's key, the control plane pinned).
    ///
    /// # Errors
    /// When the saved key or fingerprint is malformed, or the platform cannot attest.
    pub fn tls_config(
        &self,
        platform: &dyn Platform,
        verifier: Option<Arc<Verifier>>,
    ) -> Result<rustls::ClientConfig, AgentError> {
        let (fp, cert) = self.attested_cert(platform)?;
        Ok(lamina_wire::tls_config(&self.control, fp, verifier, Some(&cert))?)
    }
}

/// An attested certificate for the node's key (RA-TLS): the platform's evidence binds the key.
fn certificate(platform: &dyn Platform, key: &[u8]) -> Result<AttestedCert, AgentError> {
    lamina_wire::evidence::attested_certificate(platform, key).map_err(|e| AgentError::Attest(e.to_string()))
}

/// The SubjectPublicKeyInfo (DER) of a PKCS#8 P-256 key.
fn spki(key: &[u8]) -> Result<Vec<u8>, AgentError> {
    lamina_wire::evidence::spki(key).map_err(|e| AgentError::State(format!("the node key: {e}")))
}

impl Identity {
    /// The SubjectPublicKeyInfo of the node's key.
    pub(crate) fn spki(&self) -> Result<Vec<u8>, AgentError> {
        spki(&hex::decode(&self.key).map_err(|_| AgentError::State("the saved key is malformed".into()))?)
    }
}

/// How long enrolment keeps trying while the control plane says it is busy.
const ENROL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// The seconds a busy answer asks to wait (`… retry in N s`), if it says.
fn retry_after(message: &str) -> Option<u64> {
    let rest = &message[message.find("retry in ")? + "retry in ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// One enrolment request: a challenge, evidence over it bound to the node's key, the answer.
fn enrol_once(
    client: &ControlClient,
    token: &JoinToken,
    options: &NodeOptions,
    platform: &dyn Platform,
    identity: &Identity,
) -> Result<lamina_wire::EnrolResponse, AgentError> {
    let nonce = client.challenge()?.nonce;
    let request = lamina_wire::EnrolRequest {
        token: token.encode(),
        name: options.name.clone(),
        target: options.target,
        platform: platform.info().kind,
        memory: options.memory,
        labels: options.labels.clone(),
        zone: options.zone.clone(),
        profile: options.profile,
        evidence: evidence(platform, &nonce, &identity.spki()?)?,
        nonce,
    };
    Ok(client.enrol(&request)?)
}

/// Evidence from the platform over a challenge of the control plane (hex of the envelope).
pub(crate) fn evidence(platform: &dyn Platform, nonce_hex: &str, key: &[u8]) -> Result<String, AgentError> {
    lamina_wire::evidence::challenge_evidence(platform, nonce_hex, key).map_err(|e| match e {
        lamina_wire::evidence::EvidenceError::Challenge => AgentError::Protocol(e.to_string()),
        other => AgentError::Attest(other.to_string()),
    })
}

/// Enrols with the control plane named in the token: a challenge, evidence over it, the
/// token; saves and returns the identity.
///
/// # Errors
/// [`AgentError`] when the control plane cannot be reached or refuses (a used or unknown
/// token, evidence that fails its policy).
pub fn enrol(token: &JoinToken, options: &NodeOptions, platform: &dyn Platform) -> Result<Identity, AgentError> {
    use p256::pkcs8::EncodePrivateKey as _;
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let key = secret.to_pkcs8_der().map_err(|e| AgentError::State(format!("cannot make a key: {e}")))?;
    let mut identity = Identity {
        control: token.control.clone(),
        fingerprint: hex::encode(token.fingerprint),
        name: options.name.clone(),
        key: hex::encode(key.as_bytes()),
        artifact_key: String::new(),
        nats_seed: None,
    };
    let client = identity.client(platform, options.control_verifier.clone())?;
    // A busy control plane (429: too many challenges from this address, as when a fleet
    // behind one address enrols at once; 503) is waited for, with a spread, not taken for a
    // refusal.
    let started = std::time::Instant::now();
    let mut said = false;
    let answer = loop {
        match enrol_once(&client, token, options, platform, &identity) {
            Err(AgentError::Control(lamina_wire::ClientError::Refused { status: 429 | 503, message }))
                if started.elapsed() < ENROL_PATIENCE =>
            {
                if !said {
                    tracing::warn!("the control plane is busy ({message}); trying again");
                    said = true;
                }
                let spread = u64::from(rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 1000);
                let wait = retry_after(&message).unwrap_or(1).min(30) * 1000 + spread;
                std::thread::sleep(std::time::Duration::from_millis(wait));
            }
            other => break other?,
        }
    };
    identity.artifact_key = answer.artifact_key;
    identity.nats_seed = answer.nats_seed;
    identity.save(&options.state)?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_answer_says_how_long_to_wait() {
        assert_eq!(super::retry_after("too many challenges from this address; retry in 3 s"), Some(3));
        assert_eq!(super::retry_after("busy"), None);
        assert_eq!(super::retry_after("retry in soon"), None);
    }
}
