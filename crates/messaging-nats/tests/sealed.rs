//! Sealed messaging through real nats-servers on loopback: a publisher on the hub and a
//! subscriber behind a leaf node exchange sealed messages; the bytes on the wire (read through
//! a relay in front of the hub) and what a raw NATS subscriber gets hold no plaintext; an
//! instance without the topic key cannot publish or read; a restarted server is reconnected to
//! and messaging resumes on its own within ten seconds.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lamina_host_messaging::{Broker, Inbox, Message, MessagingError, Pattern};
use lamina_messaging_crypto::{EncryptedBroker, SENDER_HEADER, Stats, TopicKey, TopicKeys};
use lamina_messaging_nats::NatsBroker;

/// How long the tests allow messaging to recover after a server restart.
const RECOVERY: Duration = Duration::from_secs(10);

mod support;

use support::{free_port, with_config as server};

/// Keys as the control plane releases them: one per topic, only on allowed patterns.
struct Keys(Vec<Pattern>);

impl TopicKeys for Keys {
    fn key(&self, topic: &str) -> Result<TopicKey, MessagingError> {
        if !self.0.iter().any(|p| p.matches(topic)) {
            return Err(MessagingError::Denied(format!("no key for {topic}")));
        }
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"root"), topic.as_bytes());
        Ok(TopicKey::new(1, tag.as_ref().try_into().expect("32 bytes")))
    }
}

fn sealed(url: &str, allowed: &str, sender: &str) -> (EncryptedBroker, Arc<Stats>) {
    let nats = NatsBroker::connect(url, "lamina").expect("connects");
    let stats = Arc::new(Stats::default());
    let keys = Arc::new(Keys(vec![Pattern::parse(allowed).expect("pattern")]));
    (EncryptedBroker::new(Arc::new(nats), keys, sender, stats.clone()).expect("sealed"), stats)
}

fn message(topic: &str, data: &[u8]) -> Message {
    Message {
        topic: topic.into(),
        data: data.to_vec(),
        content_type: Some("application/json".into()),
        metadata: vec![("site".into(), "PLANT-SEVEN".into())],
    }
}

/// Publishes until the subscription receives (subscriptions take a moment to reach across a
/// leaf node), within ten seconds.
fn until_received(publisher: &dyn Broker, inbox: &mut Box<dyn Inbox>, topic: &str) -> Message {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let _ = publisher.publish(message(topic, b"probe"));
        if let Some(m) = inbox.receive(Duration::from_millis(200)).expect("receives") {
            return m;
        }
        assert!(Instant::now() < deadline, "nothing arrived on {topic} within {RECOVERY:?}");
    }
}

/// A TCP relay that keeps a copy of every byte in both directions.
fn recording_relay(to: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else { return };
            for (mut from, mut into) in
                [(client.try_clone().expect("clone"), server.try_clone().expect("clone")), (server, client)]
            {
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        record.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                    let _ = into.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    (port, seen)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sealed_messages_cross_a_leaf_node_and_the_wire_holds_no_plaintext() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (hub_port, leaf_port, edge_port) = (free_port(), free_port(), free_port());
    let _hub = server(dir.path(), "hub", hub_port, &format!("leafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n"));
    let _edge = server(
        dir.path(),
        "edge",
        edge_port,
        &format!("leafnodes {{ remotes: [ {{ url: \"nats://127.0.0.1:{leaf_port}\" }} ] }}\n"),
    );
    let (relay, wire) = recording_relay(hub_port);

    // The publisher reaches the hub through the recording relay; the subscriber sits behind
    // the edge's leaf node; a raw client on the hub sees what the broker sees.
    let (publisher, _) = sealed(&format!("nats://127.0.0.1:{relay}"), "sensors.>", "filter/0@edge-1");
    let (subscriber, received) = sealed(&format!("nats://127.0.0.1:{edge_port}"), "sensors.>", "aggregate/0@cloud");
    let raw = NatsBroker::connect(&format!("nats://127.0.0.1:{hub_port}"), "lamina").expect("connects");
    let mut inbox = subscriber.subscribe(Pattern::parse("sensors.>").expect("pattern")).expect("subscribes");
    let mut raw_inbox = raw.subscribe(Pattern::parse(">").expect("pattern")).expect("subscribes");
    until_received(&publisher, &mut inbox, "sensors.edge-1");

    let reading = b"{\"celsius\":21.5,\"sensor\":\"SECRET-SENSOR\"}";
    publisher.publish(message("sensors.edge-1", reading)).expect("publishes");
    let got = loop {
        let m = inbox.receive(RECOVERY).expect("receives").expect("the reading");
        if m.data != b"probe" {
            break m;
        }
    };
    assert_eq!(got.data, reading);
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    assert!(got.metadata.contains(&("site".to_owned(), "PLANT-SEVEN".to_owned())));
    assert!(got.metadata.contains(&(SENDER_HEADER.to_owned(), "filter/0@edge-1".to_owned())));

    // What the broker and the network carried.
    std::thread::sleep(Duration::from_millis(300));
    let wire = wire.lock().expect("lock").clone();
    assert!(contains(&wire, b"lamina.sensors.edge-1"), "the relay saw the traffic");
    while let Some(m) = raw_inbox.receive(Duration::from_millis(200)).expect("receives") {
        assert!(m.data.starts_with(&lamina_messaging_crypto::envelope::MAGIC), "every message is sealed");
        assert!(m.content_type.is_none() && m.metadata.is_empty(), "headers travel sealed");
        assert!(!contains(&m.data, b"SECRET-SENSOR") && !contains(&m.data, b"probe"));
    }
    for clear in [&b"SECRET-SENSOR"[..], b"PLANT-SEVEN", b"application/json", b"probe"] {
        assert!(!contains(&wire, clear), "{} is on the wire in the clear", String::from_utf8_lossy(clear));
    }

    // An instance without the key (its workload is not on the topic) can neither publish nor
    // read; plaintext published around the sealing is dropped by subscribers.
    let (outsider, outsider_stats) = sealed(&format!("nats://127.0.0.1:{hub_port}"), "other.>", "intruder/0@edge-9");
    let refused = outsider.publish(message("sensors.edge-1", b"forged"));
    assert!(matches!(refused, Err(MessagingError::Denied(_))), "{refused:?}");
    assert!(matches!(outsider.subscribe(Pattern::parse("sensors.edge-1").expect("p")), Err(MessagingError::Denied(_))));
    let mut peek = outsider.subscribe(Pattern::parse("sensors.*").expect("pattern")).expect("a wildcard subscribes");
    let rejected_before = received.rejected.load(Ordering::Relaxed);
    raw.publish(message("sensors.edge-1", b"forged in the clear")).expect("raw publish");
    publisher.publish(message("sensors.edge-1", b"{\"celsius\":22}")).expect("publishes");
    let next = loop {
        let m = inbox.receive(RECOVERY).expect("receives").expect("the next reading");
        if m.data != b"probe" {
            break m;
        }
    };
    assert_eq!(next.data, b"{\"celsius\":22}", "the forged message never reaches the subscriber");
    // The two came over different connections, in either order.
    assert!(inbox.receive(Duration::from_millis(500)).expect("receives").is_none());
    assert_eq!(received.rejected.load(Ordering::Relaxed), rejected_before + 1);
    // Once its subscription is in place, what it gets does not open.
    let deadline = Instant::now() + RECOVERY;
    while outsider_stats.rejected.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the outsider's subscription never got a message");
        publisher.publish(message("sensors.edge-1", b"{\"celsius\":23}")).expect("publishes");
        assert!(peek.receive(Duration::from_millis(200)).expect("receives").is_none(), "nothing opens without the key");
    }
}

#[test]
fn messaging_resumes_on_its_own_after_the_server_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let nats = server(dir.path(), "only", port, "");
    let (publisher, _) = sealed(&url, "a.>", "p/0@n1");
    let (subscriber, _) = sealed(&url, "a.>", "s/0@n2");
    let mut inbox = subscriber.subscribe(Pattern::parse("a.>").expect("pattern")).expect("subscribes");
    until_received(&publisher, &mut inbox, "a.b");
    while inbox.receive(Duration::from_millis(300)).expect("receives").is_some() {}

    drop(nats);
    // Publishing while it is down buffers or fails; it never blocks for long or panics.
    let started = Instant::now();
    let _ = publisher.publish(message("a.b", b"while down"));
    assert!(started.elapsed() < Duration::from_secs(3));
    let _nats = server(dir.path(), "only", port, "");
    let restarted = Instant::now();
    let got = until_received(&publisher, &mut inbox, "a.b");
    assert_eq!(got.metadata.last().map(|(_, v)| v.as_str()), Some("p/0@n1"));
    eprintln!("messaging resumed {:?} after the server came back", restarted.elapsed());
}
