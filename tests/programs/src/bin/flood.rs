//! Writes its standard output as fast as it can: lines of 64 KiB, forever (or as many MiB as
//! the first argument says). The continuum tests deploy it beside a quiet neighbour.
use std::io::Write as _;

fn main() {
    let limit: Option<u64> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    let mut line = vec![b'x'; 64 << 10];
    if let Some(last) = line.last_mut() {
        *last = b'\n';
    }
    let mut out = std::io::stdout().lock();
    let mut lines = 0u64;
    while limit.is_none_or(|mib| lines < mib * 16) {
        if out.write_all(&line).is_err() {
            return;
        }
        lines += 1;
    }
}
