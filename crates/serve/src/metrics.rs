//! The server's Prometheus metrics.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use lamina_metrics::prometheus_client::metrics::counter::Counter;
use lamina_metrics::prometheus_client::metrics::family::Family;
use lamina_metrics::prometheus_client::metrics::gauge::Gauge;
use lamina_metrics::prometheus_client::metrics::histogram::Histogram;
use lamina_metrics::prometheus_client::registry::Registry;
use lamina_metrics::{CounterFamily, label};
use lamina_runtime::HandleError;

/// Requests by status, their latency, requests and connections open, the guest's traps and
/// timeouts, and what was refused before reaching the guest.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// By status code: a label set that costs no allocation per request.
    requests: Family<[(&'static str, u16); 1], Counter>,
    /// The family's counter of status 200, kept: most requests count there without a lookup.
    ok: Counter,
    duration: Histogram,
    in_flight: Gauge<i64, AtomicI64>,
    connections: Gauge<i64, AtomicI64>,
    traps: Counter,
    timeouts: Counter,
    refused: CounterFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts a request out of flight when dropped.
pub(crate) struct InFlight(Gauge<i64, AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Fresh metrics, registered under `lamina_http_`.
    pub fn new() -> Self {
        let requests = Family::<[(&'static str, u16); 1], Counter>::default();
        let ok = requests.get_or_create_owned(&[("status", 200)]);
        let mut metrics = Self {
            registry: Registry::with_prefix("lamina_http"),
            requests,
            ok,
            duration: lamina_metrics::seconds_histogram(),
            in_flight: Gauge::default(),
            connections: Gauge::default(),
            traps: Counter::default(),
            timeouts: Counter::default(),
            refused: CounterFamily::default(),
        };
        let mut registry = Registry::with_prefix("lamina_http");
        metrics.register_into(&mut registry);
        metrics.registry = registry;
        metrics
    }

    /// Registers these metrics in another registry as well (a node's, under its prefix): the
    /// same counters, rendered by both.
    pub fn register_into(&self, registry: &mut Registry) {
        registry.register("requests", "Requests answered, by status code", self.requests.clone());
        registry.register("request_duration_seconds", "Time from request to response headers", self.duration.clone());
        registry.register("requests_in_flight", "Requests being answered", self.in_flight.clone());
        registry.register("connections_open", "Client connections open", self.connections.clone());
        registry.register("guest_traps", "Requests that ended in a trap of the guest", self.traps.clone());
        registry.register("guest_timeouts", "Requests the guest did not answer in time", self.timeouts.clone());
        registry.register("refused", "Requests refused before the guest saw them, by reason", self.refused.clone());
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        lamina_metrics::render(&self.registry)
    }

    pub(crate) fn request_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub(crate) fn request_finished(&self, status: u16, took: Duration) {
        if status == 200 {
            self.ok.inc();
        } else {
            self.requests.get_or_create(&[("status", status)]).inc();
        }
        self.duration.observe(took.as_secs_f64());
    }

    pub(crate) fn guest_failed(&self, e: &HandleError) {
        match e {
            HandleError::Timeout(_) => {
                self.timeouts.inc();
            }
            HandleError::Trap(_) | HandleError::OutOfFuel => {
                self.traps.inc();
            }
            _ => {}
        }
    }

    pub(crate) fn refused(&self, reason: &str) {
        self.refused.get_or_create(&label("reason", reason)).inc();
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.dec();
    }
}
