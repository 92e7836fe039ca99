//! Counts its runs and remembers who visited, in the sealed key-value store; lists visitors by
//! prefix and claims the "first visitor" once with compare-and-swap.
//!
//! lamina run visits.wasm --kv ./kv -- alice

use lamina_sdk::kv::Bucket;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "anonymous".into());
    let bucket = Bucket::open("visits")?;
    let count = bucket.increment("count", 1)?;
    bucket.set(&format!("visitor:{name}"), count.to_string().as_bytes())?;
    let first = bucket.compare_and_swap("first-visitor", None, name.as_bytes())?;
    let first_name = bucket.get("first-visitor")?.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
    println!("visit {count} by {name}; first visitor: {first_name}{}", if first { " (that is you)" } else { "" });
    println!("visitors: {}", bucket.keys_with_prefix("visitor:")?.join(", "));
    Ok(())
}
