//! The broker against a real nats-server on loopback (Debian's `nats-server`, installed by
//! scripts/setup.sh): messages cross between two clients with their topic, content type and
//! metadata; wildcards work; a workload's scope is enforced; a broker made while the server is
//! down delivers once it is up.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lamina_host_messaging::{Broker, Message, Pattern, Scoped};
use lamina_messaging_nats::NatsBroker;

mod support;

use support::{Server, start};

fn message(topic: &str, data: &[u8]) -> Message {
    Message { topic: topic.into(), data: data.to_vec(), content_type: None, metadata: Vec::new() }
}

#[test]
fn messages_cross_between_clients_with_their_headers() {
    let (_server, url) = start();
    let a = NatsBroker::connect(&url, "lamina").expect("connects");
    let b = NatsBroker::connect(&url, "lamina").expect("connects");
    // Connecting returns before the connection is up; on a loaded machine that takes a while.
    a.wait_connected(Duration::from_secs(10)).expect("connected");
    b.wait_connected(Duration::from_secs(10)).expect("connected");
    let mut inbox = b.subscribe(Pattern::parse("sensors.>").expect("pattern")).expect("subscribes");
    let mut one = b.subscribe(Pattern::parse("sensors.*").expect("pattern")).expect("subscribes");
    b.flush(Duration::from_secs(5)).expect("the subscriptions reached the server");
    // A flush sends what is buffered; that the server has taken the subscriptions is shown by
    // a message from `b` itself coming back through them (the server handles one connection's
    // commands in order). Only then does `a`, on another connection, publish.
    b.publish(message("sensors.ready", b"")).expect("publishes");
    for inbox in [&mut inbox, &mut one] {
        let ready = inbox.receive(Duration::from_secs(10)).expect("receives").expect("the marker");
        assert_eq!(ready.topic, "sensors.ready");
    }

    let mut m = message("sensors.edge-1", b"{\"celsius\":21.5}");
    m.content_type = Some("application/json".into());
    m.metadata = vec![("site".into(), "plant-1".into()), ("site".into(), "plant-2".into())];
    a.publish(m.clone()).expect("publishes");
    a.publish(message("sensors.edge-1.raw", b"x")).expect("publishes");
    a.publish(message("other.topic", b"y")).expect("publishes");
    a.flush(Duration::from_secs(5)).expect("flushed");

    let got = inbox.receive(Duration::from_secs(10)).expect("receives").expect("a message");
    assert_eq!(got.topic, "sensors.edge-1");
    assert_eq!(got.data, m.data);
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    assert_eq!(got.metadata, m.metadata);
    let raw = inbox.receive(Duration::from_secs(5)).expect("receives").expect("the second");
    assert_eq!(raw.topic, "sensors.edge-1.raw");
    assert!(inbox.receive(Duration::from_millis(300)).expect("receives").is_none(), "not other.topic");
    // `sensors.*` matches one token only.
    assert_eq!(one.receive(Duration::from_secs(5)).expect("receives").expect("one").topic, "sensors.edge-1");
    assert!(one.receive(Duration::from_millis(300)).expect("receives").is_none());

    // Scoped to `sensors.>`: other topics are refused with the reason, for publishing and
    // subscribing.
    let scoped = Scoped::new(Arc::new(a), vec![Pattern::parse("sensors.>").expect("pattern")]);
    let e = scoped.publish(message("admin.reset", b"")).expect_err("out of scope");
    assert!(e.to_string().contains("not among this workload's topics"), "{e}");
    assert!(scoped.subscribe(Pattern::parse(">").expect("pattern")).is_err());
    scoped.publish(message("sensors.edge-2", b"z")).expect("in scope");
    assert_eq!(inbox.receive(Duration::from_secs(5)).expect("receives").expect("z").topic, "sensors.edge-2");
}

#[test]
fn a_broker_starts_while_the_server_is_out_of_reach_and_delivers_once_it_is_up() {
    let port = support::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    // No server yet: connecting returns at once; the client keeps trying.
    let started = Instant::now();
    let subscriber = NatsBroker::connect(&url, "lamina").expect("does not wait for the server");
    assert!(started.elapsed() < Duration::from_secs(3));
    let _server: Server = support::start_on(port);
    let mut inbox = subscriber.subscribe(Pattern::parse("a.>").expect("pattern")).expect("subscribes");
    subscriber.flush(Duration::from_secs(10)).expect("connected");
    let publisher = NatsBroker::connect(&url, "lamina").expect("connects");
    publisher.publish(message("a.b", b"hello")).expect("publishes");
    publisher.flush(Duration::from_secs(10)).expect("flushed");
    let got = inbox.receive(Duration::from_secs(10)).expect("receives").expect("the message");
    assert_eq!(got.data, b"hello");
}
