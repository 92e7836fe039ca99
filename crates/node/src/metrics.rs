//! A node's metrics: instances by state, attestation results and time, heartbeat round trips
//! and failures, artifact cache hits, restarts, instance log volume (written, dropped,
//! rotated), and sealed messages in and out.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lamina_messaging_crypto::Stats;
use lamina_metrics::prometheus_client::collector::Collector;
use lamina_metrics::prometheus_client::encoding::DescriptorEncoder;
use lamina_metrics::prometheus_client::metrics::counter::Counter;
use lamina_metrics::prometheus_client::metrics::gauge::Gauge;
use lamina_metrics::prometheus_client::metrics::histogram::Histogram;
use lamina_metrics::prometheus_client::registry::Registry;
use lamina_metrics::{CounterFamily, GaugeFamily, encode_values, label};
use lamina_wire::InstanceState;

/// What a node counts.
#[derive(Debug)]
pub(crate) struct NodeMetrics {
    pub(crate) instances: GaugeFamily,
    pub(crate) attestations: CounterFamily,
    pub(crate) attestation_seconds: Histogram,
    pub(crate) heartbeat_seconds: Histogram,
    pub(crate) heartbeat_failures: Counter,
    pub(crate) artifacts: CounterFamily,
    pub(crate) restarts: Counter,
    pub(crate) lingering: Gauge,
    pub(crate) logs: crate::log::LogCounters,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            instances: GaugeFamily::default(),
            attestations: CounterFamily::default(),
            attestation_seconds: lamina_metrics::seconds_histogram(),
            heartbeat_seconds: lamina_metrics::seconds_histogram(),
            heartbeat_failures: Counter::default(),
            artifacts: CounterFamily::default(),
            restarts: Counter::default(),
            lingering: Gauge::default(),
            logs: crate::log::LogCounters::default(),
        }
    }
}

impl NodeMetrics {
    /// Sets the instance gauges from the states of the node's instances.
    pub(crate) fn instance_states(&self, states: impl Iterator<Item = InstanceState>) {
        let mut counts = [0i64; 3];
        for s in states {
            counts[match s {
                InstanceState::Starting => 0,
                InstanceState::Running => 1,
                InstanceState::Failed => 2,
                // This node's agent reports only the states above.
                InstanceState::Unknown => continue,
            }] += 1;
        }
        for (name, count) in ["starting", "running", "failed"].into_iter().zip(counts) {
            self.instances.get_or_create(&label("state", name)).set(count);
        }
    }

    /// Counts an attestation to the control plane.
    pub(crate) fn attested(&self, ok: bool, seconds: f64) {
        self.attestations.get_or_create(&label("result", if ok { "pass" } else { "fail" })).inc();
        self.attestation_seconds.observe(seconds);
    }

    /// Counts an artifact lookup.
    pub(crate) fn artifact(&self, hit: bool) {
        self.artifacts.get_or_create(&label("result", if hit { "hit" } else { "miss" })).inc();
    }
}

/// Sealed messages, read from the brokers' shared counts at each scrape.
#[derive(Debug)]
struct Messages(Arc<Stats>);

impl Collector for Messages {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let values = [
            (label("direction", "out"), self.0.sealed.load(Ordering::Relaxed) as f64),
            (label("direction", "in"), self.0.opened.load(Ordering::Relaxed) as f64),
        ];
        encode_values(
            &mut encoder,
            "messages",
            "Messages its instances sent and received through NATS.",
            true,
            &values,
        )?;
        encode_values(
            &mut encoder,
            "messages_rejected",
            "Messages received that were dropped: unsealed, tampered, replayed, or without a key.",
            true,
            &[(Vec::new(), self.0.rejected.load(Ordering::Relaxed) as f64)],
        )
    }
}

/// The node's registry of metrics, prefixed `lamina_node_`.
pub(crate) fn registry(metrics: &NodeMetrics, messages: Arc<Stats>, ingress: &lamina_serve::Metrics) -> Registry {
    let mut registry = Registry::with_prefix("lamina_node");
    // The ingress's requests, `lamina serve`'s metrics under `lamina_node_http_`.
    ingress.register_into(registry.sub_registry_with_prefix("http"));
    registry.register("instances", "Instances on this node by state", metrics.instances.clone());
    registry.register("attestations", "Attestations to the control plane by result", metrics.attestations.clone());
    registry.register(
        "attestation_seconds",
        "Time to attest to the control plane",
        metrics.attestation_seconds.clone(),
    );
    registry.register("heartbeat_seconds", "Heartbeat round trips", metrics.heartbeat_seconds.clone());
    registry.register("heartbeat_failures", "Heartbeats that failed", metrics.heartbeat_failures.clone());
    registry.register(
        "artifacts",
        "Artifact lookups by result (hit: from the node's cache)",
        metrics.artifacts.clone(),
    );
    registry.register("restarts", "Instances restarted after they ended", metrics.restarts.clone());
    registry.register(
        "instances_lingering",
        "Stopped instances whose thread has not ended yet (blocked in a host call when stopped)",
        metrics.lingering.clone(),
    );
    registry.register("log_bytes", "Bytes instances wrote to their logs", metrics.logs.written.clone());
    registry.register(
        "log_dropped_bytes",
        "Bytes of instance output dropped: over the instance's log rate, or refused by the disk",
        metrics.logs.dropped.clone(),
    );
    registry.register("log_rotations", "Instance log files rotated at their size cap", metrics.logs.rotations.clone());
    registry.register_collector(Box::new(Messages(messages)));
    registry
}
