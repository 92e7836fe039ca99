//! Waits for a subscriber's `ready` on `demo.control`, then publishes a few news items and
//! `demo.news.end`.
//!
//! lamina run subscriber.wasm --with publisher.wasm

use std::time::Duration;

use lamina_sdk::messaging;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let control = messaging::subscribe("demo.control")?;
    match control.receive(Duration::from_secs(10))? {
        Some(m) if m.data == b"ready" => {}
        Some(m) => return Err(format!("unexpected control message {:?}", m.data).into()),
        None => return Err("no subscriber said ready within 10 seconds".into()),
    }
    let items = ["sealed storage landed", "messaging landed", "attestation landed"];
    for (i, item) in items.iter().enumerate() {
        messaging::publish(&format!("demo.news.{i}"), item.as_bytes())?;
    }
    messaging::publish("demo.news.end", b"that is all")?;
    eprintln!("publisher: sent {} messages", items.len() + 1);
    Ok(())
}
