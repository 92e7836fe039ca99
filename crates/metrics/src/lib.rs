//! Prometheus metrics of the control plane and the nodes: the shared metric types and a
//! plain-HTTP `GET /metrics` endpoint in the OpenMetrics text format.
//!
//! The endpoint is separate from the control plane's attested TLS API: a Prometheus server
//! scrapes it without a node identity. It exposes counts and timings only (node and workload
//! names, no secrets); bind it to loopback or a monitoring network.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use prometheus_client;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A metric's labels: name and value pairs.
pub type Labels = Vec<(String, String)>;
/// Counters by labels.
pub type CounterFamily = Family<Labels, Counter>;
/// Gauges by labels.
pub type GaugeFamily = Family<Labels, Gauge>;
/// A gauge of floating-point values.
pub type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// One label.
pub fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_owned(), value.to_owned())]
}

/// A histogram of durations in seconds, from 1 ms to about 16 s.
pub fn seconds_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15))
}

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders a registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!("cannot encode the metrics: {e}");
    }
    out
}

/// Writes one counter or gauge family whose values are read at scrape time (from atomics or
/// state kept elsewhere), for a [`prometheus_client::collector::Collector`].
///
/// # Errors
/// When the encoder fails.
pub fn encode_values(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    counter: bool,
    values: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    use prometheus_client::encoding::EncodeMetric as _;
    let kind = if counter {
        prometheus_client::metrics::MetricType::Counter
    } else {
        prometheus_client::metrics::MetricType::Gauge
    };
    let encode = |metric: prometheus_client::encoding::MetricEncoder<'_>, value: f64| {
        if counter { ConstCounter::new(value).encode(metric) } else { ConstGauge::new(value).encode(metric) }
    };
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    if let [(labels, value)] = values
        && labels.is_empty()
    {
        return encode(family, *value);
    }
    for (labels, value) in values {
        encode(family.encode_family(labels)?, *value)?;
    }
    Ok(())
}

/// What an endpoint serves: the text of each scrape.
pub type Collect = Arc<dyn Fn() -> String + Send + Sync>;

/// A running `GET /metrics` endpoint; it stops when dropped.
pub struct Endpoint {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Listens on `addr` (port 0 picks one) and serves what `collect` returns, on a thread of
    /// its own.
    ///
    /// # Errors
    /// When the address cannot be bound or no runtime can be started.
    pub fn start(addr: SocketAddr, collect: Collect) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("lamina-metrics".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("metrics endpoint: {e}");
                        return;
                    }
                };
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let collect = collect.clone();
                        async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], collect()) }
                    }),
                );
                let served = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                if let Err(e) = served.await {
                    tracing::error!("metrics endpoint: {e}");
                }
            });
        })?;
        tracing::info!("metrics on http://{addr}/metrics");
        Ok(Endpoint { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a scraper gets: the HTTP response, headers and body.
    fn scrape(addr: SocketAddr) -> String {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(addr).expect("connects");
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n").expect("asks");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("reads");
        text
    }

    #[derive(Debug)]
    struct Fixed;

    impl prometheus_client::collector::Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            encode_values(&mut encoder, "things", "Things by kind.", false, &[(label("kind", "a"), 2.0)])?;
            encode_values(&mut encoder, "events", "Events.", true, &[(Labels::new(), 5.0)])
        }
    }

    #[test]
    fn the_endpoint_serves_the_registry_in_the_openmetrics_format() {
        let mut registry = Registry::with_prefix("lamina_test");
        let hits = CounterFamily::default();
        registry.register("hits", "Hits by result", hits.clone());
        let seconds = seconds_histogram();
        registry.register("latency_seconds", "Latency", seconds.clone());
        registry.register_collector(Box::new(Fixed));
        hits.get_or_create(&label("result", "hit")).inc_by(3);
        seconds.observe(0.004);
        let registry = Arc::new(registry);
        let endpoint =
            Endpoint::start("127.0.0.1:0".parse().expect("addr"), Arc::new(move || render(&registry))).expect("starts");
        let text = scrape(endpoint.addr());
        assert!(text.contains(&format!("content-type: {CONTENT_TYPE}")), "{text}");
        for line in [
            "lamina_test_hits_total{result=\"hit\"} 3",
            "lamina_test_latency_seconds_count 1",
            "lamina_test_latency_seconds_bucket{le=\"0.004\"} 1",
            "lamina_test_things{kind=\"a\"} 2",
            "lamina_test_events_total 5",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l.starts_with(line)), "no `{line}` in\n{text}");
        }
        drop(endpoint);
    }
}
