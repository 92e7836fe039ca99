//! Blocks in a host call: prints `sleeping`, then sleeps for an hour (or the first argument's
//! seconds). The continuum tests undeploy it while it sleeps.
fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3600);
    println!("sleeping");
    std::thread::sleep(std::time::Duration::from_secs(secs));
    println!("woke");
}
