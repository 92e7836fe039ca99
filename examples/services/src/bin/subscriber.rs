//! Subscribes to `demo.news.>`, tells publishers it is ready on `demo.control`, and prints the
//! news until `demo.news.end`. Run with the publisher on the same bus:
//!
//! lamina run subscriber.wasm --with publisher.wasm

use std::time::Duration;

use lamina_sdk::messaging;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let news = messaging::subscribe("demo.news.>")?;
    let mut received = 0;
    // Say "ready" until the first message comes: a publisher that starts later still hears it.
    for _ in 0..100 {
        messaging::publish("demo.control", b"ready")?;
        if let Some(first) = news.receive(Duration::from_millis(100))? {
            received += report(&first);
            if first.topic == "demo.news.end" {
                return done(received);
            }
            break;
        }
    }
    if received == 0 {
        return Err("no publisher answered within 10 seconds".into());
    }
    while let Some(message) = news.receive(Duration::from_secs(10))? {
        received += report(&message);
        if message.topic == "demo.news.end" {
            return done(received);
        }
    }
    Err("the publisher stopped before `demo.news.end`".into())
}

fn report(message: &messaging::Message) -> usize {
    println!("{}: {}", message.topic, String::from_utf8_lossy(&message.data));
    1
}

fn done(received: usize) -> Result<(), Box<dyn std::error::Error>> {
    println!("subscriber: {received} messages");
    Ok(())
}
