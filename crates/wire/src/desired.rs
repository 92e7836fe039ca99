//! What a node must run and how its instances are doing: the desired state the control plane
//! signs for each node, and the reports nodes send back in heartbeats.

use lamina_scheduler::Placement;
use lamina_types::WorkloadSpec;
use serde::{Deserialize, Serialize};

/// How an instance is doing, as its node reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Being prepared (artifact, secrets) or starting.
    Starting,
    /// Running.
    Running,
    /// Exited or trapped; the node restarts it.
    Failed,
    /// A state this build does not know (a newer node's): counted and shown, never acted on.
    #[serde(other)]
    Unknown,
}

impl InstanceState {
    /// Its name, as JSON and `lamina status` spell it.
    pub const fn name(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Unknown => "unknown",
            InstanceState::Failed => "failed",
        }
    }
}

/// One instance in a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    /// Workload.
    pub workload: lamina_types::WorkloadName,
    /// Replica.
    pub replica: u32,
    /// State.
    pub state: InstanceState,
    /// Restarts so far.
    pub restarts: u32,
}

/// What a node must run: one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The replica.
    pub placement: Placement,
    /// The workload's specification.
    pub spec: WorkloadSpec,
}

/// Everything a node must run, with a generation that grows with every change, so a node can
/// tell a newer desired state from an older one (and a signed copy kept offline from a replay).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// The node.
    pub node: String,
    /// Grows with every change of this node's assignments.
    pub generation: u64,
    /// Its instances, sorted.
    pub assignments: Vec<Assignment>,
    /// The NATS server its instances exchange messages through (`nats://host:port`); without
    /// one, instances reach only the other instances on the same node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging: Option<String>,
    /// The addresses of the control plane's replicas (`https://host:port`), when it is
    /// replicated: where a node turns when the one it talks to is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub control_planes: Vec<String>,
}

/// A desired state as the control plane sends it: the JSON text and the control plane's
/// signature over it (its artifact key), so a node can keep a copy it can trust offline and
/// refuse one that was changed on its disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedDesired {
    /// [`DesiredState`] as JSON.
    pub state: String,
    /// ECDSA P-256 / SHA-256 (DER, hex) over [`SignedDesired::message`].
    pub signature: String,
}

impl SignedDesired {
    /// What is signed: a label, then the JSON text.
    pub fn message(state: &str) -> Vec<u8> {
        [b"lamina desired state v1\0".as_slice(), state.as_bytes()].concat()
    }

    /// Signs a desired state.
    ///
    /// # Errors
    /// When it cannot be serialized.
    pub fn sign(desired: &DesiredState, key: &p256::ecdsa::SigningKey) -> Result<Self, serde_json::Error> {
        use p256::ecdsa::signature::Signer as _;
        let state = serde_json::to_string(desired)?;
        let signature: p256::ecdsa::Signature = key.sign(&Self::message(&state));
        Ok(SignedDesired { state, signature: hex::encode(signature.to_der().as_bytes()) })
    }

    /// Checks the signature and that the state is `node`'s, and returns it.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn verify(&self, key: &p256::ecdsa::VerifyingKey, node: &str) -> Result<DesiredState, String> {
        use p256::ecdsa::signature::Verifier as _;
        let der = hex::decode(&self.signature).map_err(|_| "the signature is not hex".to_owned())?;
        let signature = p256::ecdsa::Signature::from_der(&der).map_err(|_| "the signature is malformed".to_owned())?;
        key.verify(&Self::message(&self.state), &signature)
            .map_err(|_| "the control plane's signature does not verify (changed, or from another control plane)")?;
        let desired: DesiredState = serde_json::from_str(&self.state).map_err(|e| e.to_string())?;
        if desired.node != node {
            return Err(format!("it is node `{}`'s desired state, not `{node}`'s", desired.node));
        }
        Ok(desired)
    }
}
