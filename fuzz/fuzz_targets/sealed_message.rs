//! Sealed messages come from the broker, which anyone on it can publish to: the envelope and
//! body parsers must never panic, and arbitrary bytes must never open as a message.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use lamina_host_messaging::{Broker, LocalBus, Message, MessagingError, Pattern};
use lamina_messaging_crypto::{EncryptedBroker, TopicKey, TopicKeys, envelope};

struct Keys;

impl TopicKeys for Keys {
    fn key(&self, _topic: &str) -> Result<TopicKey, MessagingError> {
        Ok(TopicKey::new(1, [7; 32]))
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = envelope::parse(data);
    let _ = envelope::parse_body(data);
    let bus = LocalBus::new();
    let Ok(subscriber) = EncryptedBroker::new(Arc::new(bus.clone()), Arc::new(Keys), "fuzz/0@n", Arc::default()) else {
        return;
    };
    let Ok(mut inbox) = subscriber.subscribe(Pattern::parse("t").expect("pattern")) else { return };
    let _ = bus.publish(Message { topic: "t".into(), data: data.to_vec(), ..Message::default() });
    assert!(matches!(inbox.receive(Duration::ZERO), Ok(None)), "arbitrary bytes opened");
});
