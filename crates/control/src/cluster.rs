//! The cluster: nodes, workloads and placements, and the step that keeps them consistent.

use std::collections::BTreeMap;
use std::time::Duration;

use lamina_scheduler::{Node, NodeSpec, Plan, Workload, schedule};
use lamina_types::{Deployment, WorkloadSpec};
use lamina_wire::{Assignment, DesiredState, InstanceReport, NodeRecord, NodeState};
use serde::{Deserialize, Serialize};

/// Timings of the control loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// A node not heard from for this long is lost, and its instances are placed elsewhere.
    pub lost_after: Duration,
    /// A node's attestation verdict is good for this long; a node must re-attest before.
    pub attestation_valid_for: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { lost_after: Duration::from_secs(15), attestation_valid_for: Duration::from_secs(600) }
    }
}

/// What happens to the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A node passed enrolment (token and evidence); re-enrolling updates its inventory.
    Enrolled {
        /// What it offers (state and times are set by the step).
        spec: NodeSpec,
        /// Its engine's device profile.
        profile: lamina_types::Profile,
    },
    /// A node's fresh evidence was appraised: `Ok` passed the policy, `Err` says why not.
    Attested {
        /// The node.
        node: String,
        /// The verdict.
        verdict: Result<(), String>,
    },
    /// A node is alive and reports its instances.
    Heartbeat {
        /// The node.
        node: String,
        /// Its instances.
        instances: Vec<InstanceReport>,
        /// Why it cannot start instances, if it cannot.
        degraded: Option<String>,
        /// Where its ingress serves, if it has one.
        ingress: Option<String>,
    },
    /// Workloads deployed (added or replaced by name).
    Deployed(Deployment),
    /// A workload removed.
    Undeployed(String),
    /// A node removed by the operator: its record and desired state go, its instances are
    /// placed elsewhere.
    Removed(String),
    /// The clock.
    Tick,
}

/// An event the cluster refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// A node that has not enrolled.
    #[error("no node `{0}` has enrolled")]
    UnknownNode(String),
    /// A workload that is not deployed.
    #[error("no workload `{0}` is deployed")]
    UnknownWorkload(String),
}

/// The control plane's state: serialisable, so it survives restarts as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Timings.
    pub settings: Settings,
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Workloads by name.
    pub workloads: BTreeMap<lamina_types::WorkloadName, WorkloadSpec>,
    /// The current plan.
    pub plan: Plan,
    /// Each node's desired state.
    pub desired: BTreeMap<String, DesiredState>,
}

impl Cluster {
    /// An empty cluster.
    pub fn new(settings: Settings) -> Self {
        Cluster { settings, ..Cluster::default() }
    }

    /// Applies one event at time `now` (seconds since the Unix epoch), then re-evaluates every
    /// node's standing and the plan. Returns the nodes whose desired state changed.
    ///
    /// # Errors
    /// [`StepError`] for an event about an unknown node or workload; the cluster is unchanged.
    pub fn step(&mut self, event: Event, now: u64) -> Result<Vec<String>, StepError> {
        match event {
            Event::Enrolled { spec, profile } => {
                let name = spec.name.clone();
                let previous = self.nodes.remove(&name);
                let record = NodeRecord {
                    spec,
                    profile,
                    last_seen: now,
                    // Enrolment includes a passing appraisal.
                    attested_at: Some(now),
                    attestation_failure: None,
                    state: NodeState::Ready,
                    ingress: previous.as_ref().and_then(|p| p.ingress.clone()),
                    instances: previous.map(|p| p.instances).unwrap_or_default(),
                    degraded: None,
                };
                self.nodes.insert(name, record);
            }
            Event::Attested { node, verdict } => {
                let record = self.nodes.get_mut(&node).ok_or(StepError::UnknownNode(node.clone()))?;
                match verdict {
                    Ok(()) => {
                        record.attested_at = Some(now);
                        record.attestation_failure = None;
                    }
                    Err(reason) => {
                        record.attested_at = None;
                        record.attestation_failure = Some(reason);
                    }
                }
            }
            Event::Heartbeat { node, instances, degraded, ingress } => {
                let record = self.nodes.get_mut(&node).ok_or(StepError::UnknownNode(node.clone()))?;
                record.last_seen = now;
                record.instances = instances;
                record.degraded = degraded;
                let ingress_changed = record.ingress != ingress;
                record.ingress = ingress;
                // A heartbeat that leaves the node's standing as it was changes no plan: the
                // common case, handled without re-planning (standings that lapse with time are
                // the tick's to find).
                let record = &self.nodes[&node];
                if !ingress_changed && self.standing(record, now) == record.state {
                    return Ok(Vec::new());
                }
            }
            Event::Deployed(deployment) => {
                for spec in deployment.workloads {
                    self.workloads.insert(spec.name.clone(), spec);
                }
            }
            Event::Undeployed(name) => {
                self.workloads.remove(name.as_str()).ok_or(StepError::UnknownWorkload(name))?;
            }
            Event::Removed(name) => {
                self.nodes.remove(&name).ok_or(StepError::UnknownNode(name.clone()))?;
                self.desired.remove(&name);
            }
            Event::Tick => {}
        }
        Ok(self.reconcile(now))
    }

    /// Where the HTTP workloads are served: each placed instance of one whose node has an
    /// ingress, in placement order. Computed from the plan, so an endpoint moves with its replica.
    pub fn endpoints(&self) -> Vec<lamina_wire::Endpoint> {
        self.plan
            .placements
            .iter()
            .filter_map(|p| {
                let service = self.workloads.get(&p.workload)?.http.clone()?;
                let node = self.nodes.get(&p.node)?;
                let url = node.ingress.clone()?;
                let running = node.instances.iter().any(|i| {
                    i.workload == p.workload && i.replica == p.replica && i.state == lamina_wire::InstanceState::Running
                });
                Some(lamina_wire::Endpoint {
                    workload: p.workload.clone(),
                    replica: p.replica,
                    node: p.node.clone(),
                    url,
                    service,
                    running,
                })
            })
            .collect()
    }

    fn standing(&self, node: &NodeRecord, now: u64) -> NodeState {
        if let Some(reason) = &node.attestation_failure {
            return NodeState::Untrusted { reason: format!("its evidence failed the policy: {reason}") };
        }
        match node.attested_at {
            None => return NodeState::Untrusted { reason: "it has not attested".into() },
            Some(at) if now.saturating_sub(at) > self.settings.attestation_valid_for.as_secs() => {
                return NodeState::Untrusted { reason: format!("its attestation is {}s old", now - at) };
            }
            Some(_) => {}
        }
        if now.saturating_sub(node.last_seen) > self.settings.lost_after.as_secs() {
            return NodeState::Lost;
        }
        if let Some(reason) = &node.degraded {
            return NodeState::Degraded { reason: reason.clone() };
        }
        NodeState::Ready
    }

    /// Re-evaluates standings, re-plans, and bumps the generation of every node whose
    /// assignments changed.
    fn reconcile(&mut self, now: u64) -> Vec<String> {
        let standings: Vec<(String, NodeState)> =
            self.nodes.values().map(|n| (n.spec.name.clone(), self.standing(n, now))).collect();
        for (name, state) in standings {
            if let Some(n) = self.nodes.get_mut(&name) {
                n.state = state;
            }
        }
        let nodes: Vec<Node> = self
            .nodes
            .values()
            .map(|n| Node { spec: n.spec.clone(), ready: n.state == NodeState::Ready, ingress: n.ingress.is_some() })
            .collect();
        let workloads: Vec<Workload> = self.workloads.values().map(Workload::from).collect();
        self.plan = schedule(&workloads, &nodes, &self.plan.placements);
        let mut changed = Vec::new();
        let mut by_node: std::collections::HashMap<&str, Vec<Assignment>> = std::collections::HashMap::new();
        for p in &self.plan.placements {
            if let Some(spec) = self.workloads.get(&p.workload) {
                by_node
                    .entry(p.node.as_str())
                    .or_default()
                    .push(Assignment { placement: p.clone(), spec: spec.clone() });
            }
        }
        for name in self.nodes.keys() {
            let mut assignments = by_node.remove(name.as_str()).unwrap_or_default();
            assignments.sort_by(|a, b| a.placement.cmp(&b.placement));
            let entry = self.desired.entry(name.clone()).or_insert_with(|| DesiredState {
                node: name.clone(),
                generation: 0,
                assignments: Vec::new(),
                messaging: None,
                control_planes: Vec::new(),
            });
            if entry.assignments != assignments || entry.generation == 0 {
                entry.assignments = assignments;
                entry.generation += 1;
                changed.push(name.clone());
            }
        }
        changed
    }

    /// Serialises the cluster (what the store keeps).
    ///
    /// # Errors
    /// Never in practice: every field is plain data.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }

    /// Restores a cluster the store kept.
    ///
    /// # Errors
    /// When the bytes are not a cluster.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests;
