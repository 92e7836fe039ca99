//! A long-running guest: prints `tick N` every 100 ms, for N up to the first argument (forever
//! without one). The continuum tests deploy it and read its log.
use std::io::Write as _;

fn main() {
    let limit: Option<u64> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    let mut n = 0u64;
    loop {
        println!("tick {n}");
        let _ = std::io::stdout().flush();
        n += 1;
        if limit.is_some_and(|l| n >= l) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
