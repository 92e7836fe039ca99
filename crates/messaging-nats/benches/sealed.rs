//! Messaging across two nodes through a nats-server on loopback, sealed against unsealed, side
//! by side in one run: throughput (a burst of 500 messages published by one node and received
//! by the other) and latency (one message there, one reply back), for 256-byte and 4 KiB
//! payloads. Each node is its own NATS connection; the sealed path is the one instances use
//! (per-topic key, per-session AES-256-GCM, replay window); the unsealed path is the bare
//! broker. With `LAMINA_BENCH_RECORDS` set it writes the medians as the `sealed-messaging`
//! record; `LAMINA_BENCH_QUICK=1` makes the run brief.
//!
//! The cost of NATS authentication is measured beside them: the sealed path again through a
//! second server that admits only NKey users with subject permissions, as `lamina control
//! --nats-users` configures it (`sealed+nkey`), and the time to connect (handshake to the
//! first round trip) with and without an NKey.
//!
//! `cargo bench -p lamina-messaging-nats --bench sealed` (needs Debian's nats-server).
#![allow(clippy::expect_used, reason = "a benchmark's set-up: a failure stops it with its message")]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use lamina_bench_record::{CriterionMedians, Record};
use lamina_host_messaging::{Broker, Inbox, Message, MessagingError, Pattern};
use lamina_messaging_crypto::{EncryptedBroker, TopicKey, TopicKeys};
use lamina_messaging_nats::NatsBroker;

/// A burst that fits a subscription's queue (4 MiB) at the largest payload.
const BURST: usize = 500;
const WAIT: Duration = Duration::from_secs(10);
/// Payload sizes, in bytes.
const SIZES: [usize; 2] = [256, 4096];
const BURST_GROUP: &str = "burst of 500 across two nodes";
const RTT_GROUP: &str = "round trip across two nodes";

#[path = "../tests/support/mod.rs"]
mod support;

use support::start;

/// A key per topic, as if released by the control plane and cached by the node, as the node's
/// keys are (the release itself is not measured: it happens once per topic and instance).
#[derive(Default)]
struct Keys(std::sync::Mutex<std::collections::HashMap<String, TopicKey>>);

impl TopicKeys for Keys {
    fn key(&self, topic: &str) -> Result<TopicKey, MessagingError> {
        let mut keys = self.0.lock().expect("lock");
        let key = keys.entry(topic.to_owned()).or_insert_with(|| {
            let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"bench"), topic.as_bytes());
            TopicKey::new(1, tag.as_ref().try_into().expect("32 bytes"))
        });
        Ok(key.clone())
    }
}

/// How a node reaches the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The bare broker, no credentials.
    Unsealed,
    /// Sealed, no credentials.
    Sealed,
    /// Sealed, through the server that admits only NKey users with subject permissions.
    Authenticated,
}

const MODES: [Mode; 3] = [Mode::Unsealed, Mode::Sealed, Mode::Authenticated];

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Unsealed => "unsealed",
            Mode::Sealed => "sealed",
            Mode::Authenticated => "sealed+nkey",
        }
    }
}

/// The two servers: one open, one with NKey users (a seed per node) allowed `lamina.>` subjects
/// of the benchmark only, as the control plane writes them.
struct Servers {
    _open: support::Server,
    open: String,
    _authenticated: support::Server,
    authenticated: String,
    seeds: [String; 2],
    _dir: tempfile::TempDir,
}

impl Servers {
    fn start() -> Servers {
        let (open_server, open) = start();
        let dir = tempfile::tempdir().expect("temp dir");
        let pairs = [nkeys::KeyPair::new_user(), nkeys::KeyPair::new_user()];
        let subjects = r#"["lamina.bench.>", "lamina.ping.>", "lamina.pong.>"]"#;
        let users: Vec<String> = pairs
            .iter()
            .map(|p| {
                format!(
                    "{{ nkey: \"{}\", permissions: {{ publish: {{ allow: {subjects} }}, subscribe: {{ allow: {subjects} }} }} }}",
                    p.public_key()
                )
            })
            .collect();
        let port = support::free_port();
        let config = format!("authorization {{ users = [\n{}\n] }}\n", users.join("\n"));
        let server = support::with_config(dir.path(), "authenticated", port, &config);
        Servers {
            _open: open_server,
            open,
            _authenticated: server,
            authenticated: format!("nats://127.0.0.1:{port}"),
            seeds: pairs.map(|p| p.seed().expect("seed")),
            _dir: dir,
        }
    }

    /// Node `which` (0 or 1): its broker as instances see it.
    fn node(&self, mode: Mode, which: usize, name: &str) -> Arc<dyn Broker> {
        let nats = match mode {
            Mode::Authenticated => NatsBroker::connect_with(&self.authenticated, "lamina", Some(&self.seeds[which])),
            _ => NatsBroker::connect(&self.open, "lamina"),
        }
        .expect("connects");
        nats.wait_connected(WAIT).expect("connected");
        let nats: Arc<dyn Broker> = Arc::new(nats);
        if mode == Mode::Unsealed {
            nats
        } else {
            Arc::new(EncryptedBroker::new(nats, Arc::new(Keys::default()), name, Arc::default()).expect("sealed"))
        }
    }
}

fn message(topic: &str, size: usize) -> Message {
    Message {
        topic: topic.into(),
        data: vec![b'x'; size],
        content_type: Some("application/octet-stream".into()),
        metadata: Vec::new(),
    }
}

fn receive(inbox: &mut Box<dyn Inbox>) -> Message {
    inbox.receive(WAIT).expect("receives").expect("a message within ten seconds")
}

/// Waits until a subscription is in place on the server.
fn ready(from: &dyn Broker, inbox: &mut Box<dyn Inbox>, topic: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        from.publish(message(topic, 1)).expect("publishes");
        if inbox.receive(Duration::from_millis(100)).expect("receives").is_some() {
            while inbox.receive(Duration::from_millis(100)).expect("receives").is_some() {}
            return;
        }
        assert!(Instant::now() < deadline, "the subscription never got a message");
    }
}

/// Criterion's name for one benchmark of a group: the mode, then the size.
fn id(mode: Mode, size: usize) -> (&'static str, String) {
    (mode.label(), format!("{size} B"))
}

const CONNECT_GROUP: &str = "connect to the server";

fn messaging(c: &mut Criterion, quick: bool) {
    // Brief runs (the harness's quick mode): criterion's shortest measurement.
    let brief = |group: &mut criterion::BenchmarkGroup<'_, _>| {
        if quick {
            group
                .sample_size(lamina_bench_record::QUICK_SAMPLES)
                .measurement_time(lamina_bench_record::QUICK_MEASUREMENT)
                .warm_up_time(lamina_bench_record::QUICK_WARM_UP);
        }
    };
    let servers = Servers::start();
    let mut throughput = c.benchmark_group(BURST_GROUP);
    throughput.sample_size(20).measurement_time(Duration::from_secs(6));
    brief(&mut throughput);
    for size in SIZES {
        throughput.throughput(Throughput::Elements(BURST as u64));
        for mode in MODES {
            let (label, size_label) = id(mode, size);
            let (a, b) = (servers.node(mode, 0, "a/0@edge-1"), servers.node(mode, 1, "b/0@cloud-1"));
            let topic = format!("bench.{label}.{size}");
            let mut inbox = b.subscribe(Pattern::parse(&topic).expect("pattern")).expect("subscribes");
            ready(a.as_ref(), &mut inbox, &topic);
            throughput.bench_function(BenchmarkId::new(label, size_label), |bench| {
                bench.iter(|| {
                    for _ in 0..BURST {
                        a.publish(message(&topic, size)).expect("publishes");
                    }
                    for _ in 0..BURST {
                        receive(&mut inbox);
                    }
                });
            });
            assert_eq!(inbox.dropped(), 0, "a burst fits the subscription's queue");
        }
    }
    throughput.finish();

    let mut latency = c.benchmark_group(RTT_GROUP);
    latency.sample_size(50).measurement_time(Duration::from_secs(5));
    brief(&mut latency);
    for size in SIZES {
        for mode in MODES {
            let (label, size_label) = id(mode, size);
            let (a, b) = (servers.node(mode, 0, "a/0@edge-1"), servers.node(mode, 1, "b/0@cloud-1"));
            let (ping, pong) = (format!("ping.{label}.{size}"), format!("pong.{label}.{size}"));
            let mut at_b = b.subscribe(Pattern::parse(&ping).expect("pattern")).expect("subscribes");
            let mut at_a = a.subscribe(Pattern::parse(&pong).expect("pattern")).expect("subscribes");
            ready(a.as_ref(), &mut at_b, &ping);
            ready(b.as_ref(), &mut at_a, &pong);
            latency.bench_function(BenchmarkId::new(label, size_label), |bench| {
                bench.iter(|| {
                    a.publish(message(&ping, size)).expect("publishes");
                    let m = receive(&mut at_b);
                    b.publish(Message { topic: pong.clone(), ..m }).expect("replies");
                    receive(&mut at_a);
                });
            });
        }
    }
    latency.finish();

    // A node's connection: from nothing to its first round trip with the server.
    let mut connect = c.benchmark_group(CONNECT_GROUP);
    connect.sample_size(20).measurement_time(Duration::from_secs(5));
    brief(&mut connect);
    for mode in [Mode::Sealed, Mode::Authenticated] {
        let label = if mode == Mode::Authenticated { "nkey" } else { "none" };
        connect.bench_function(BenchmarkId::new(label, "connect"), |bench| {
            bench.iter(|| {
                let nats = match mode {
                    Mode::Authenticated => {
                        NatsBroker::connect_with(&servers.authenticated, "lamina", Some(&servers.seeds[0]))
                    }
                    _ => NatsBroker::connect(&servers.open, "lamina"),
                }
                .expect("connects");
                nats.flush(WAIT).expect("a round trip");
            });
        });
    }
    connect.finish();
}

/// The `sealed-messaging` record: burst throughput and round trips from criterion's medians.
fn record(medians: &CriterionMedians) -> Record {
    let mut record = Record::new(
        "sealed-messaging",
        "Sealed messaging across two nodes",
        "cargo bench -p lamina-messaging-nats --bench sealed",
    );
    let mut median_s = |group: &str, mode: Mode, size: usize| -> Option<f64> {
        let (label, size_label) = id(mode, size);
        match medians.median_ns(group, Some(label), Some(&size_label)) {
            Ok(ns) => Some(ns / 1e9),
            Err(e) => {
                eprintln!("sealed: {e}");
                record.note(&format!("no criterion median for {group}/{label}/{size_label}: {e}"));
                None
            }
        }
    };
    let mut figures = Vec::new();
    for size in SIZES {
        let burst = [Mode::Sealed, Mode::Unsealed, Mode::Authenticated].map(|m| median_s(BURST_GROUP, m, size));
        let rtt = [Mode::Sealed, Mode::Unsealed, Mode::Authenticated].map(|m| median_s(RTT_GROUP, m, size));
        figures.push((size, burst, rtt));
    }
    let connect = ["none", "nkey"].map(|label| medians.median_ns(CONNECT_GROUP, Some(label), Some("connect")).ok());
    let rate = |s: f64| BURST as f64 / s;
    for (size, [burst_sealed, burst_plain, burst_auth], [rtt_sealed, rtt_plain, rtt_auth]) in figures {
        if let (Some(auth), Some(sealed)) = (burst_auth, burst_sealed) {
            record.metric(
                &format!("burst.nkey.{size}"),
                &format!("burst, sealed, NKey user, {size} B"),
                rate(auth),
                "msg/s",
            );
            record.metric(
                &format!("burst.nkey_ratio.{size}"),
                &format!("burst, sealed with NKey / sealed without, {size} B"),
                rate(auth) / rate(sealed),
                "ratio",
            );
        }
        if let Some(s) = rtt_auth {
            record.metric(
                &format!("rtt.nkey.{size}"),
                &format!("round trip, sealed, NKey user, {size} B"),
                s * 1e6,
                "µs",
            );
        }
        if let Some(s) = burst_sealed {
            record.metric(&format!("burst.sealed.{size}"), &format!("burst, sealed, {size} B"), rate(s), "msg/s");
        }
        if let Some(s) = burst_plain {
            record.metric(&format!("burst.plain.{size}"), &format!("burst, unsealed, {size} B"), rate(s), "msg/s");
        }
        if let (Some(sealed), Some(plain)) = (burst_sealed, burst_plain) {
            let ratio = rate(sealed) / rate(plain);
            record.metric(
                &format!("burst.ratio.{size}"),
                &format!("burst, sealed / unsealed, {size} B"),
                ratio,
                "ratio",
            );
        }
        if let Some(s) = rtt_sealed {
            record.metric(&format!("rtt.sealed.{size}"), &format!("round trip, sealed, {size} B"), s * 1e6, "µs");
        }
        if let Some(s) = rtt_plain {
            record.metric(&format!("rtt.plain.{size}"), &format!("round trip, unsealed, {size} B"), s * 1e6, "µs");
        }
    }
    if let [Some(none), Some(nkey)] = connect {
        record.metric("connect.none", "connect to the server, no credentials", none / 1e6, "ms");
        record.metric("connect.nkey", "connect to the server, NKey user", nkey / 1e6, "ms");
    }
    record.note(&format!(
        "a burst is {BURST} messages from one node to the other; its rate is {BURST} / criterion's median time"
    ));
    record
}

fn main() {
    let medians = CriterionMedians::new().written_since(SystemTime::now());
    let mut c = Criterion::default().configure_from_args();
    messaging(&mut c, lamina_bench_record::quick());
    c.final_summary();
    // `cargo bench` passes `--bench`; under `cargo test` the bench only checks that it runs.
    if lamina_bench_record::measuring()
        && let Some(path) = record(&medians).write_if_requested().expect("writes the record")
    {
        eprintln!("record: {}", path.display());
    }
}
