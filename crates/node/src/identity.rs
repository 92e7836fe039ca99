//! The identity a node keeps once enrolled (`enrol.rs` makes it), and the attested TLS it
//! talks to the control plane with.

use std::path::Path;

use std::sync::Arc;

use lamina_attest::Verifier;
use lamina_attest::ratls::AttestedCert;
use lamina_tee::Platform;
use lamina_wire::ControlClient;
use serde::{Deserialize, Serialize};

use crate::agent::AgentError;

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
            Err(source) => Err(AgentError::io(&path, "read", source)),
        }
    }

    pub(crate) fn save(&self, state: &Path) -> Result<(), AgentError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::create_dir_all(state).map_err(|source| AgentError::io(state, "create", source))?;
        let path = state.join("node.json");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| AgentError::State(e.to_string()))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|source| AgentError::io(&path, "write", source))
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
    lamina_wire::evidence::attested_certificate(platform, key).map_err(|e| AgentError::Attest(Box::new(e)))
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
