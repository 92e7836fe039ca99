//! What the control plane knows of its nodes and placements, as `lamina status` shows it.

use lamina_scheduler::{NodeSpec, Placement, Unplaced};
use serde::{Deserialize, Serialize};

use crate::InstanceReport;

/// How a node stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum NodeState {
    /// Attested, heard from recently: gets instances.
    Ready,
    /// Not heard from within the control plane's time to call a node lost.
    Lost,
    /// Its last evidence failed the policy, or its verdict expired; the reason says which.
    Untrusted {
        /// Why.
        reason: String,
    },
    /// It says it cannot start instances (for a reason of its own: file descriptors, memory,
    /// its platform): it gets no new placements, and its instances are placed elsewhere,
    /// until its heartbeats stop saying so.
    Degraded {
        /// What it said.
        reason: String,
    },
    /// A state this build does not know (a newer control plane's): shown, never acted on.
    #[serde(other)]
    Unknown,
}

impl NodeState {
    /// Its name, as the JSON tag and `lamina status` spell it.
    pub const fn name(&self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Lost => "lost",
            NodeState::Untrusted { .. } => "untrusted",
            NodeState::Degraded { .. } => "degraded",
            NodeState::Unknown => "unknown",
        }
    }
}

/// A node as the control plane records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// What it offers, as it enrolled (name, architecture, TEE, memory, labels, zone).
    #[serde(flatten)]
    pub spec: NodeSpec,
    /// The device profile its engine runs (artifacts are compiled for it).
    #[serde(default)]
    pub profile: lamina_types::Profile,
    /// Last heartbeat, seconds since the Unix epoch.
    pub last_seen: u64,
    /// When its evidence last passed the policy, seconds since the Unix epoch; `None` if it
    /// never did or its last evidence failed.
    pub attested_at: Option<u64>,
    /// Why its last evidence failed, if it did.
    pub attestation_failure: Option<String>,
    /// Standing, as of the last step.
    pub state: NodeState,
    /// What its instances reported in the last heartbeat.
    pub instances: Vec<InstanceReport>,
    /// Why it cannot start instances, as its last heartbeat said; `None` when it can.
    #[serde(default)]
    pub degraded: Option<String>,
    /// Where its ingress serves HTTP workloads, as its last heartbeat said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
}

/// Where one instance of an HTTP workload is served: `GET /v1/endpoints`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The workload.
    pub workload: lamina_types::WorkloadName,
    /// Which replica.
    pub replica: u32,
    /// The node it is placed on.
    pub node: String,
    /// The node's ingress (`https://HOST:PORT`).
    pub url: String,
    /// Its routes, host and attestation.
    pub service: lamina_types::ingress::HttpService,
    /// Whether the node last reported the instance running.
    pub running: bool,
}

/// `GET /v1/endpoints`: where the HTTP workloads are served, placement by placement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Every placed instance of an HTTP workload, in placement order.
    pub endpoints: Vec<Endpoint>,
}

/// `GET /v1/status`: the nodes, every placement, what could not be placed, and the workloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Every node the control plane knows.
    pub nodes: Vec<NodeRecord>,
    /// Every placement, sorted.
    pub placements: Vec<Placement>,
    /// Replicas that could not be placed.
    pub unplaced: Vec<Unplaced>,
    /// The names of the deployed workloads.
    pub workloads: Vec<lamina_types::WorkloadName>,
    /// Where the HTTP workloads are served (as `GET /v1/endpoints` says).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

impl Status {
    /// The node a placement is on, and what it last reported of that instance.
    pub fn report(&self, placement: &Placement) -> Option<&InstanceReport> {
        self.nodes
            .iter()
            .find(|n| n.spec.name == placement.node)?
            .instances
            .iter()
            .find(|i| i.workload == placement.workload && i.replica == placement.replica)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_state_is_named_as_its_json_tag() {
        for state in [
            NodeState::Ready,
            NodeState::Lost,
            NodeState::Untrusted { reason: "r".into() },
            NodeState::Degraded { reason: "r".into() },
        ] {
            let json = serde_json::to_value(&state).expect("serializes");
            assert_eq!(json["state"], state.name());
        }
    }

    #[test]
    fn a_state_from_a_newer_build_reads_as_unknown() {
        let node: NodeState = serde_json::from_str(r#"{"state":"draining","since":3}"#).expect("reads");
        assert_eq!(node, NodeState::Unknown);
        let instance: crate::InstanceState = serde_json::from_str(r#""paused""#).expect("reads");
        assert_eq!(instance, crate::InstanceState::Unknown);
    }
}
