//! The control plane's metrics: counters and timings kept as requests are served, and the
//! cluster's state (nodes, instances, placements, heartbeat lag) read at each scrape.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use lamina_metrics::prometheus_client::collector::Collector;
use lamina_metrics::prometheus_client::encoding::DescriptorEncoder;
use lamina_metrics::prometheus_client::metrics::counter::Counter;
use lamina_metrics::prometheus_client::metrics::histogram::Histogram;
use lamina_metrics::prometheus_client::registry::Registry;
use lamina_metrics::{CounterFamily, Labels, encode_values, label};

use crate::api::Control;

/// What the control plane counts as it serves.
#[derive(Debug)]
pub struct ControlMetrics {
    /// Appraisals of evidence by verdict (`pass`, `fail`, `stale`, `malformed`).
    pub attestations: CounterFamily,
    /// How long an appraisal takes.
    pub attestation_seconds: Histogram,
    /// Heartbeats received.
    pub heartbeats: Counter,
    /// Changes of nodes' desired states (placements made or moved).
    pub desired_changes: Counter,
    /// Secrets and topic-key releases by kind (`secrets`, `topic-keys`) and result.
    pub releases: CounterFamily,
}

impl Default for ControlMetrics {
    fn default() -> Self {
        ControlMetrics {
            attestations: CounterFamily::default(),
            attestation_seconds: lamina_metrics::seconds_histogram(),
            heartbeats: Counter::default(),
            desired_changes: Counter::default(),
            releases: CounterFamily::default(),
        }
    }
}

impl ControlMetrics {
    /// Counts an appraisal.
    pub(crate) fn appraised(&self, verdict: &str, seconds: f64) {
        self.attestations.get_or_create(&label("verdict", verdict)).inc();
        self.attestation_seconds.observe(seconds);
    }

    /// Counts a release.
    pub(crate) fn released(&self, kind: &str, ok: bool) {
        let labels = vec![("kind".to_owned(), kind.to_owned()), ("result".to_owned(), result(ok).to_owned())];
        self.releases.get_or_create(&labels).inc();
    }
}

fn result(ok: bool) -> &'static str {
    if ok { "ok" } else { "refused" }
}

/// The cluster's state, read at each scrape.
struct State(Arc<Mutex<Control>>);

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("State")
    }
}

impl Collector for State {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let now = crate::api::now();
        let (nodes, instances, lag, placements, unplaced) = {
            let control = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let cluster = control.cluster();
            let mut nodes: BTreeMap<&str, f64> =
                [("ready", 0.0), ("lost", 0.0), ("untrusted", 0.0), ("degraded", 0.0)].into();
            let mut instances: BTreeMap<&str, f64> = [("starting", 0.0), ("running", 0.0), ("failed", 0.0)].into();
            let mut lag = Vec::with_capacity(cluster.nodes.len());
            for node in cluster.nodes.values() {
                *nodes.entry(node.state.name()).or_default() += 1.0;
                for i in &node.instances {
                    *instances.entry(i.state.name()).or_default() += 1.0;
                }
                lag.push((label("node", &node.spec.name), now.saturating_sub(node.last_seen) as f64));
            }
            let unplaced: f64 = cluster.plan.unplaced.iter().map(|u| f64::from(u.missing)).sum();
            (nodes, instances, lag, cluster.plan.placements.len() as f64, unplaced)
        };
        let by = |name: &str, values: BTreeMap<&str, f64>| -> Vec<(Labels, f64)> {
            values.into_iter().map(|(k, v)| (label(name, k), v)).collect()
        };
        encode_values(&mut encoder, "nodes", "Enrolled nodes by state.", false, &by("state", nodes))?;
        encode_values(
            &mut encoder,
            "instances",
            "Instances by the state their nodes report.",
            false,
            &by("state", instances),
        )?;
        encode_values(
            &mut encoder,
            "placements",
            "Instances placed by the current plan.",
            false,
            &[(Labels::new(), placements)],
        )?;
        encode_values(
            &mut encoder,
            "unplaced_replicas",
            "Replicas the current plan could not place (see lamina status for why).",
            false,
            &[(Labels::new(), unplaced)],
        )?;
        encode_values(&mut encoder, "heartbeat_lag_seconds", "Seconds since each node's last heartbeat.", false, &lag)
    }
}

/// The control plane's registry of metrics, prefixed `lamina_control_`.
pub(crate) fn registry(control: Arc<Mutex<Control>>, metrics: &ControlMetrics) -> Registry {
    let mut registry = Registry::with_prefix("lamina_control");
    registry.register("attestations", "Appraisals of evidence by verdict", metrics.attestations.clone());
    registry.register(
        "attestation_seconds",
        "Time to appraise evidence (enrolment, re-attestation, releases)",
        metrics.attestation_seconds.clone(),
    );
    registry.register("heartbeats", "Heartbeats received", metrics.heartbeats.clone());
    registry.register(
        "desired_changes",
        "Changes of nodes' desired states (placements made or moved)",
        metrics.desired_changes.clone(),
    );
    registry.register("releases", "Releases of secrets and topic keys by kind and result", metrics.releases.clone());
    registry.register_collector(Box::new(State(control)));
    registry
}
