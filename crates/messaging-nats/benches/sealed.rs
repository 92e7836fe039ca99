//! Messaging across two nodes through a nats-server on loopback, sealed against unsealed, side
//! by side in one run: throughput (a burst of 500 messages published by one node and received
//! by the other) and latency (one message there, one reply back), for 256-byte and 4 KiB
//! payloads. Each node is its own NATS connection; the sealed path is the one instances use
//! (per-topic key, per-session AES-256-GCM, replay window); the unsealed path is the bare
//! broker.
//!
//! `cargo bench -p lamina-messaging-nats --bench sealed` (needs Debian's nats-server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use lamina_host_messaging::{Broker, Inbox, Message, MessagingError, Pattern};
use lamina_messaging_nats::NatsBroker;
use lamina_messaging_seal::{Sealed, TopicKey, TopicKeys};

/// A burst that fits a subscription's queue (4 MiB) at the largest payload.
const BURST: usize = 500;
const WAIT: Duration = Duration::from_secs(10);

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

/// One node: its broker as instances see it.
fn node(url: &str, sealed: bool, name: &str) -> Arc<dyn Broker> {
    let nats: Arc<dyn Broker> = Arc::new(NatsBroker::connect(url, "lamina").expect("connects"));
    if sealed {
        Arc::new(Sealed::new(nats, Arc::new(Keys::default()), name, Arc::default()).expect("sealed"))
    } else {
        nats
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

fn messaging(c: &mut Criterion) {
    let (_server, url) = start();
    let mut throughput = c.benchmark_group("burst of 500 across two nodes");
    throughput.sample_size(20).measurement_time(Duration::from_secs(6));
    for size in [256, 4096] {
        throughput.throughput(Throughput::Elements(BURST as u64));
        for sealed in [false, true] {
            let label = if sealed { "sealed" } else { "unsealed" };
            let (a, b) = (node(&url, sealed, "a/0@edge-1"), node(&url, sealed, "b/0@cloud-1"));
            let topic = format!("bench.{label}.{size}");
            let mut inbox = b.subscribe(Pattern::parse(&topic).expect("pattern")).expect("subscribes");
            ready(a.as_ref(), &mut inbox, &topic);
            throughput.bench_function(BenchmarkId::new(label, format!("{size} B")), |bench| {
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

    let mut latency = c.benchmark_group("round trip across two nodes");
    latency.sample_size(50).measurement_time(Duration::from_secs(5));
    for size in [256, 4096] {
        for sealed in [false, true] {
            let label = if sealed { "sealed" } else { "unsealed" };
            let (a, b) = (node(&url, sealed, "a/0@edge-1"), node(&url, sealed, "b/0@cloud-1"));
            let (ping, pong) = (format!("ping.{label}.{size}"), format!("pong.{label}.{size}"));
            let mut at_b = b.subscribe(Pattern::parse(&ping).expect("pattern")).expect("subscribes");
            let mut at_a = a.subscribe(Pattern::parse(&pong).expect("pattern")).expect("subscribes");
            ready(a.as_ref(), &mut at_b, &ping);
            ready(b.as_ref(), &mut at_a, &pong);
            latency.bench_function(BenchmarkId::new(label, format!("{size} B")), |bench| {
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
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    messaging(&mut c);
    c.final_summary();
}
