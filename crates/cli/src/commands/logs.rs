//! `lamina logs`: a workload's recent output, once or followed.

use std::time::Duration;

use super::control_client::client;
use crate::cli::LogsArgs;

pub(crate) fn logs(args: LogsArgs) -> anyhow::Result<i32> {
    let control = client(&args.control, true)?;
    // How far each replica's output has been printed (bytes since the control plane started).
    let mut printed: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    loop {
        let answer = control.logs(&args.workload)?;
        for i in &answer.instances {
            let (replica, node, text, end) = (i.replica, &i.node, &i.text, i.end);
            let start = end.saturating_sub(text.len() as u64);
            let done = printed.entry(replica).or_insert(start);
            let mut from = usize::try_from(done.saturating_sub(start)).unwrap_or(usize::MAX).min(text.len());
            while !text.is_char_boundary(from) {
                from += 1;
            }
            for line in text[from..].lines() {
                println!("{}/{replica}@{node}: {line}", args.workload);
            }
            *done = end;
        }
        if !args.follow {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
