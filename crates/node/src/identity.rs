//! Enrolment, and the identity a node keeps.

use std::path::Path;

use lamina_control::ControlClient;
use lamina_tee::Platform;
use lamina_types::{Claims, JoinToken};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    /// The credential the control plane issued.
    pub credential: String,
    /// The control plane's artifact signing key (PEM).
    pub artifact_key: String,
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

    fn save(&self, state: &Path) -> Result<(), AgentError> {
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

    /// A client of the control plane with this node's credential.
    ///
    /// # Errors
    /// When the saved fingerprint is malformed.
    pub fn client(&self) -> Result<ControlClient, AgentError> {
        let fp: [u8; 32] = hex::decode(&self.fingerprint)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| AgentError::State("the saved certificate fingerprint is malformed".into()))?;
        Ok(ControlClient::new(&self.control, fp, Some(self.credential.clone()))?)
    }
}

/// Evidence from the platform over a challenge of the control plane (hex of the envelope).
pub(crate) fn evidence(platform: &dyn Platform, nonce_hex: &str) -> Result<String, AgentError> {
    let nonce = hex::decode(nonce_hex).map_err(|_| AgentError::Protocol("the challenge is not hex".into()))?;
    let claims = Claims {
        platform: platform.info().kind,
        runtime_measurement: runtime_measurement(),
        module_hash: None,
        config_digest: None,
        instance_key: None,
        nonce,
        issued_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    let envelope = lamina_tee::attest(platform, &claims).map_err(|e| AgentError::Attest(e.to_string()))?;
    Ok(hex::encode(envelope.to_cbor()))
}

fn runtime_measurement() -> Vec<u8> {
    use sha2::Digest as _;
    std::env::current_exe()
        .and_then(std::fs::read)
        .map(|bytes| sha2::Sha256::digest(bytes).to_vec())
        .unwrap_or_else(|_| vec![0; 32])
}

/// Enrols with the control plane named in the token: a challenge, evidence over it, the
/// token; saves and returns the identity.
///
/// # Errors
/// [`AgentError`] when the control plane cannot be reached or refuses (a used or unknown
/// token, evidence that fails its policy).
pub fn enrol(token: &JoinToken, options: &NodeOptions, platform: &dyn Platform) -> Result<Identity, AgentError> {
    let anonymous = ControlClient::new(&token.control, token.fingerprint, None)?;
    let challenge: Value = anonymous.post("/v1/challenge", &json!({}))?;
    let nonce = challenge["nonce"].as_str().ok_or_else(|| AgentError::Protocol("no challenge nonce".into()))?;
    let request = json!({
        "token": token.encode(),
        "name": options.name,
        "target": options.target,
        "platform": platform.info().kind,
        "memory": options.memory,
        "labels": options.labels,
        "zone": options.zone,
        "nonce": nonce,
        "evidence": evidence(platform, nonce)?,
    });
    let answer: Value = anonymous.post("/v1/nodes/enroll", &request)?;
    let identity = Identity {
        control: token.control.clone(),
        fingerprint: hex::encode(token.fingerprint),
        name: options.name.clone(),
        credential: answer["credential"]
            .as_str()
            .ok_or_else(|| AgentError::Protocol("no credential".into()))?
            .to_owned(),
        artifact_key: answer["artifact_key"]
            .as_str()
            .ok_or_else(|| AgentError::Protocol("no artifact key".into()))?
            .to_owned(),
    };
    identity.save(&options.state)?;
    Ok(identity)
}
