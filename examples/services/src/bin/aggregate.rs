//! The cloud stage of the two-stage sensor application (`examples/continuum/sensors.toml`):
//! receives the filtered readings on `sensors.>`, keeps per-sensor count, mean, minimum and
//! maximum in sealed storage (`/data/aggregate.txt`, so a restarted instance resumes where its
//! volume left off; a volume stays on its node, so an instance moved elsewhere starts afresh),
//! and prints them every second.
//!
//! lamina run aggregate.wasm --sealed-dir ./data::/data --with sensor-filter.wasm

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lamina_sdk::messaging;

/// count, sum, min, max
type Stats = (u64, f64, f64, f64);

const STATE: &str = "/data/aggregate.txt";

fn load() -> BTreeMap<String, Stats> {
    let text = std::fs::read_to_string(STATE).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [id, n, sum, min, max] => {
                    Some(((*id).to_owned(), (n.parse().ok()?, sum.parse().ok()?, min.parse().ok()?, max.parse().ok()?)))
                }
                _ => None,
            }
        })
        .collect()
}

fn save(stats: &BTreeMap<String, Stats>) -> std::io::Result<()> {
    let text: String = stats.iter().map(|(id, (n, sum, min, max))| format!("{id} {n} {sum} {min} {max}\n")).collect();
    std::fs::write(STATE, text)
}

/// The value of `"key":` in a flat JSON object.
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[start..];
    Some(rest[..rest.find([',', '}'])?].trim_matches('"'))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let readings = messaging::subscribe("sensors.>")?;
    let mut stats = load();
    let resumed: u64 = stats.values().map(|s| s.0).sum();
    println!("aggregate: started with {resumed} readings in sealed storage");
    let mut printed = Instant::now();
    loop {
        if let Some(m) = readings.receive(Duration::from_millis(500))? {
            let text = String::from_utf8_lossy(&m.data);
            let (Some(id), Some(celsius)) =
                (field(&text, "sensor"), field(&text, "celsius").and_then(|c| c.parse::<f64>().ok()))
            else {
                eprintln!("aggregate: ignoring a malformed reading on {}", m.topic);
                continue;
            };
            let s = stats.entry(id.to_owned()).or_insert((0, 0.0, f64::MAX, f64::MIN));
            *s = (s.0 + 1, s.1 + celsius, s.2.min(celsius), s.3.max(celsius));
            save(&stats)?;
        }
        if printed.elapsed() >= Duration::from_secs(1) {
            printed = Instant::now();
            for (id, (n, sum, min, max)) in &stats {
                println!("aggregate: {id} n={n} mean={:.2} min={min:.2} max={max:.2}", sum / *n as f64);
            }
        }
    }
}
