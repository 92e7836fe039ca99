//! `lamina status`: nodes, instances and what could not be placed, once or watched.

use super::control_client::client;
use crate::cli::{Format, StatusArgs};

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let client = client(&args.control, true)?;
    let Some(every) = args.watch else {
        let status = client.status()?;
        if args.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print_status(&status);
        }
        return Ok(0);
    };
    // Until interrupted: redraw every period; while the control plane is out of reach, say so
    // and keep asking.
    loop {
        let fetched = client.status();
        print!("\x1b[2J\x1b[H");
        println!(
            "every {} · {} · Ctrl-C to stop\n",
            humantime::format_duration(every),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        match fetched {
            Ok(status) if args.format == Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
            Ok(status) => print_status(&status),
            Err(e) => println!("the control plane is out of reach: {e}; trying again"),
        }
        std::io::Write::flush(&mut std::io::stdout())?;
        std::thread::sleep(every);
    }
}

/// The status as tables: nodes, then instances and what could not be placed.
fn print_status(status: &lamina_wire::Status) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!(
        "{:<16} {:<8} {:<10} {:<20} {:<12} {:<10} INSTANCES",
        "NODE", "STATE", "PLATFORM", "ATTESTED", "ARCH", "ZONE"
    );
    for n in &status.nodes {
        let attested = match n.attested_at {
            Some(at) => format!("ok, {}s ago", now.saturating_sub(at)),
            None => n.attestation_failure.as_ref().map_or("no".to_owned(), |r| format!("FAILED: {r}")),
        };
        let count = status.placements.iter().filter(|p| p.node == n.spec.name).count();
        println!(
            "{:<16} {:<8} {:<10} {:<20} {:<12} {:<10} {}",
            n.spec.name,
            n.state.name(),
            n.spec.platform.to_string(),
            attested,
            n.spec.target.arch(),
            n.spec.zone,
            count
        );
    }
    println!();
    println!("{:<20} {:<8} {:<16} {:<10} RESTARTS", "WORKLOAD", "REPLICA", "NODE", "STATE");
    for p in &status.placements {
        let report = status.report(p);
        println!(
            "{:<20} {:<8} {:<16} {:<10} {}",
            p.workload,
            p.replica,
            p.node,
            report.map_or("pending", |r| r.state.name()),
            report.map_or(0, |r| r.restarts)
        );
    }
    for u in &status.unplaced {
        let missing = format!("{}x", u.missing);
        println!("{:<20} {missing:<8} {:<16} unplaced: {}", u.workload, "-", u.reason);
    }
    if !status.endpoints.is_empty() {
        println!();
        println!("{:<20} {:<8} {:<16} {:<28} {:<10} ROUTES", "ENDPOINT", "REPLICA", "NODE", "URL", "ATTESTED");
        for e in &status.endpoints {
            let routes: Vec<String> = e.service.routes.iter().map(ToString::to_string).collect();
            let host = e.service.host.as_ref().map_or(String::new(), |h| format!(" (host {h})"));
            println!(
                "{:<20} {:<8} {:<16} {:<28} {:<10} {}{host}{}",
                e.workload,
                e.replica,
                e.node,
                e.url,
                e.service.attestation.name(),
                routes.join(" "),
                if e.running { "" } else { " [not running]" }
            );
        }
    }
}
