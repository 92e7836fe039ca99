//! The edge stage of the two-stage sensor application (`examples/continuum/sensors.toml`):
//! reads a simulated temperature sensor every 200 ms, drops the readings a faulty sensor
//! produces (out of the sensor's -40..85 °C range, or a jump of more than 10 °C), and publishes
//! the rest on `sensors.<id>` for the cloud stage (`<id>`: the first argument, or the node it
//! runs on). Prints what it passed and dropped.
//!
//! lamina run aggregate.wasm --sealed-dir ./data::/data --with sensor-filter.wasm

use std::time::Duration;

use lamina_sdk::messaging;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The sensor: the first argument, or the node it runs on (the node agent sets LAMINA_NODE).
    let id = std::env::args().nth(1).or_else(|| std::env::var("LAMINA_NODE").ok()).unwrap_or_else(|| "s1".into());
    let limit: Option<u64> = std::env::args().nth(2).and_then(|n| n.parse().ok());
    let mut rng = id.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let (mut passed, mut dropped, mut last) = (0u64, 0u64, None::<f64>);
    for seq in 0.. {
        if limit.is_some_and(|l| seq >= l) {
            break;
        }
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let noise = ((rng >> 33) % 100) as f64 / 100.0 - 0.5;
        let mut celsius = 21.0 + 4.0 * (seq as f64 / 20.0).sin() + noise;
        if seq % 7 == 3 {
            celsius += 150.0; // the sensor glitches
        }
        let sane = (-40.0..=85.0).contains(&celsius) && last.is_none_or(|l: f64| (celsius - l).abs() <= 10.0);
        if sane {
            last = Some(celsius);
            let reading = format!("{{\"sensor\":\"{id}\",\"seq\":{seq},\"celsius\":{celsius:.2}}}");
            match messaging::publish(&format!("sensors.{id}"), reading.as_bytes()) {
                Ok(()) => passed += 1,
                Err(e) => {
                    eprintln!("filter {id}: cannot publish reading {seq}: {e}");
                    dropped += 1;
                }
            }
        } else {
            dropped += 1;
        }
        if seq % 10 == 9 {
            println!("filter {id}: passed {passed}, dropped {dropped}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("filter {id}: passed {passed}, dropped {dropped}");
    Ok(())
}
