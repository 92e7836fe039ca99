use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lamina_host_messaging::{Broker, LocalBus, Message, MessagingError, Pattern};

use super::*;

/// Keys as the control plane would release them: one per topic, only on allowed patterns.
struct Keys {
    allowed: Vec<Pattern>,
    epoch: u32,
}

impl TopicKeys for Keys {
    fn key(&self, topic: &str) -> Result<TopicKey, MessagingError> {
        if !self.allowed.iter().any(|p| p.matches(topic)) {
            return Err(MessagingError::Denied(format!("no key for {topic}")));
        }
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"root"), topic.as_bytes());
        Ok(TopicKey::new(self.epoch, tag.as_ref().try_into().expect("32 bytes")))
    }
}

fn keys(patterns: &[&str]) -> Arc<Keys> {
    Arc::new(Keys { allowed: patterns.iter().map(|p| Pattern::parse(p).expect("pattern")).collect(), epoch: 1 })
}

fn sealed(bus: &LocalBus, patterns: &[&str], sender: &str) -> (EncryptedBroker, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let broker =
        EncryptedBroker::new(Arc::new(bus.clone()), keys(patterns), sender, stats.clone()).expect("sealed broker");
    (broker, stats)
}

fn message(topic: &str, data: &[u8]) -> Message {
    Message {
        topic: topic.into(),
        data: data.to_vec(),
        content_type: Some("text/plain".into()),
        metadata: vec![("unit".into(), "celsius".into()), (SENDER_HEADER.into(), "someone-else".into())],
    }
}

const WAIT: Duration = Duration::from_millis(200);

#[test]
fn messages_arrive_opened_with_their_sender_and_the_broker_sees_ciphertext_only() {
    let bus = LocalBus::new();
    let (publisher, out) = sealed(&bus, &["sensors.>"], "filter/0@edge-1");
    let (subscriber, inn) = sealed(&bus, &["sensors.>"], "aggregate/0@cloud-1");
    let mut inbox = subscriber.subscribe(Pattern::parse("sensors.>").expect("pattern")).expect("subscribe");
    let mut raw = bus.subscribe(Pattern::parse(">").expect("pattern")).expect("raw subscribe");

    publisher.publish(message("sensors.kitchen", b"21.5 degrees in the kitchen")).expect("publish");
    let got = inbox.receive(WAIT).expect("receive").expect("a message");
    assert_eq!(got.data, b"21.5 degrees in the kitchen");
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        got.metadata,
        vec![("unit".to_owned(), "celsius".to_owned()), (SENDER_HEADER.to_owned(), "filter/0@edge-1".to_owned())],
        "the guest's own sender header is replaced by the authenticated one"
    );

    let wire = raw.receive(WAIT).expect("receive").expect("the raw message");
    assert_eq!((wire.content_type, wire.metadata.len()), (None, 0), "headers travel sealed");
    for clear in [&b"kitchen"[..], b"21.5", b"celsius", b"text/plain"] {
        assert!(!wire.data.windows(clear.len()).any(|w| w == clear), "{:?} is in the clear", clear);
    }
    assert_eq!((out.sealed.load(Ordering::Relaxed), inn.opened.load(Ordering::Relaxed)), (1, 1));
}

#[test]
fn unsealed_tampered_replayed_and_moved_messages_are_dropped() {
    let bus = LocalBus::new();
    let (publisher, _) = sealed(&bus, &["sensors.>"], "filter/0@edge-1");
    let (subscriber, stats) = sealed(&bus, &["sensors.>", "other.>"], "aggregate/0@cloud-1");
    let mut inbox = subscriber.subscribe(Pattern::parse(">").expect("pattern")).expect("subscribe");
    let mut raw = bus.subscribe(Pattern::parse("sensors.>").expect("pattern")).expect("raw subscribe");

    publisher.publish(message("sensors.kitchen", b"21.5")).expect("publish");
    assert!(inbox.receive(WAIT).expect("receive").is_some());
    let wire = raw.receive(WAIT).expect("receive").expect("the raw message");

    // Plaintext from something that holds no key.
    bus.publish(message("sensors.kitchen", b"forged")).expect("raw publish");
    // The same envelope again.
    bus.publish(wire.clone()).expect("raw publish");
    // A flipped bit in the ciphertext, and in the clear header (the sender's name).
    let mut tampered = wire.clone();
    let last = tampered.data.len() - 1;
    tampered.data[last] ^= 1;
    bus.publish(tampered).expect("raw publish");
    let mut renamed = wire.clone();
    let at = renamed.data.windows(6).position(|w| w == b"filter").expect("sender in the header");
    renamed.data[at] = b'F';
    bus.publish(renamed).expect("raw publish");
    // The envelope moved to another topic the subscriber may read.
    bus.publish(Message { topic: "other.kitchen".into(), ..wire }).expect("raw publish");

    assert_eq!(inbox.receive(WAIT).expect("receive"), None, "every one of them is dropped");
    assert_eq!((stats.opened.load(Ordering::Relaxed), stats.rejected.load(Ordering::Relaxed)), (1, 5));

    // Later messages of the same publisher still arrive.
    publisher.publish(message("sensors.kitchen", b"22.0")).expect("publish");
    assert_eq!(inbox.receive(WAIT).expect("receive").expect("a message").data, b"22.0");
}

#[test]
fn an_instance_without_the_key_can_neither_publish_nor_read() {
    let bus = LocalBus::new();
    let (publisher, _) = sealed(&bus, &["sensors.>"], "filter/0@edge-1");
    let (outsider, stats) = sealed(&bus, &["other.>"], "intruder/0@edge-9");

    let refused = outsider.publish(message("sensors.kitchen", b"forged"));
    assert!(matches!(refused, Err(MessagingError::Denied(_))), "{refused:?}");
    let refused = outsider.subscribe(Pattern::parse("sensors.kitchen").expect("pattern"));
    assert!(matches!(refused, Err(MessagingError::Denied(_))), "a topic without wildcards is refused at once");

    // Through a wildcard it subscribes, and what arrives does not open.
    let mut inbox = outsider.subscribe(Pattern::parse("sensors.*").expect("pattern")).expect("subscribe");
    publisher.publish(message("sensors.kitchen", b"21.5")).expect("publish");
    assert_eq!(inbox.receive(WAIT).expect("receive"), None);
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
}

#[test]
fn messages_of_another_key_epoch_are_dropped() {
    let bus = LocalBus::new();
    let (publisher, _) = sealed(&bus, &["a.>"], "p/0@n");
    let stats = Arc::new(Stats::default());
    let keys = Arc::new(Keys { allowed: vec![Pattern::parse("a.>").expect("pattern")], epoch: 2 });
    let subscriber = EncryptedBroker::new(Arc::new(bus.clone()), keys, "s/0@n", stats.clone()).expect("sealed");
    let mut inbox = subscriber.subscribe(Pattern::parse("a.>").expect("pattern")).expect("subscribe");
    publisher.publish(message("a.b", b"x")).expect("publish");
    assert_eq!(inbox.receive(WAIT).expect("receive"), None);
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
}

#[test]
fn sender_identities_are_checked() {
    let bus = LocalBus::new();
    for bad in ["", &"x".repeat(256)] {
        let made = EncryptedBroker::new(Arc::new(bus.clone()), keys(&[">"]), bad, Arc::default());
        assert!(made.is_err(), "{bad:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever a peer publishes around the sealing, nothing opens.
    #[test]
    fn arbitrary_bytes_never_open(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        sealed_prefix in proptest::prelude::any::<bool>(),
    ) {
        let bus = LocalBus::new();
        let (subscriber, stats) = sealed(&bus, &["t"], "s/0@n");
        let mut inbox = subscriber.subscribe(Pattern::parse("t").expect("pattern")).expect("subscribe");
        let data = if sealed_prefix { [&envelope::MAGIC[..], &data].concat() } else { data };
        bus.publish(Message { topic: "t".into(), data, ..Message::default() }).expect("publish");
        proptest::prop_assert_eq!(inbox.receive(Duration::ZERO).expect("receive"), None);
        proptest::prop_assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
    }
}

/// A message sealed by hand under the right key, sent at `sent_at` (ms since the epoch).
fn sealed_at(topic: &str, sent_at: u64) -> Message {
    let key = keys(&[">"]).key(topic).expect("key");
    let session = [5; envelope::SESSION];
    let mut body = envelope::encode_body(None, &[], b"hello").expect("body");
    let mut data = envelope::header(key.epoch(), "p/0@n", &session, 1, sent_at);
    let aad = [data.as_slice(), topic.as_bytes()].concat();
    key.message_key(&session)
        .expect("a message key")
        .seal_in_place_append_tag(nonce(1), Aad::from(&aad), &mut body)
        .expect("seals");
    data.extend_from_slice(&body);
    Message { topic: topic.into(), data, ..Message::default() }
}

#[test]
fn messages_sent_too_long_ago_or_ahead_are_dropped() {
    let bus = LocalBus::new();
    let (subscriber, stats) = sealed(&bus, &["a.>"], "s/0@n");
    let mut inbox = subscriber.subscribe(Pattern::parse("a.>").expect("pattern")).expect("subscribe");
    let ten_minutes = 600_000;
    bus.publish(sealed_at("a.b", now_ms() - ten_minutes)).expect("publish");
    bus.publish(sealed_at("a.c", now_ms() + ten_minutes)).expect("publish");
    assert_eq!(inbox.receive(WAIT).expect("receive"), None);
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 2);
    // The same, sent now, opens: the hand-made envelope is a valid one.
    bus.publish(sealed_at("a.d", now_ms())).expect("publish");
    assert_eq!(inbox.receive(WAIT).expect("receive").expect("a message").data, b"hello");
}
