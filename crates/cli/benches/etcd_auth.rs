//! The cost of authenticating the control plane to etcd: a replica's state saves over TLS with
//! a client certificate against the same saves over plain HTTP, side by side.
//!
//! One etcd member on loopback (Debian's etcd-server, data on disk under the temporary
//! directory) serves its clients on two ports: TLS with `--client-cert-auth`, and plain HTTP.
//! Two [`EtcdStore`]s, one on each port and each under a prefix of its own, take the lead
//! (each its own leader key) and save a document as the control plane saves its registry: a
//! transaction on the condition that the replica still leads. Saves alternate between the two,
//! one at a time, so that both see the same etcd, disk and machine. It reports, per document
//! size, the median and 99th percentile of a save, and the median of a connection (a new
//! store: TCP, the TLS handshake with the client certificate, and a first read).
//!
//! `cargo bench -p lamina-cli --bench etcd_auth` (WRITES saves per size and transport, 1000 by
//! default). With `LAMINA_BENCH_RECORDS` set it writes the `etcd-auth` record;
//! `LAMINA_BENCH_QUICK=1` makes it brief (WRITES=20). Run by `cargo test` (without `--bench`)
//! it is a smoke run of 5 saves.
#![allow(clippy::expect_used, reason = "a benchmark's set-up: a failure stops it with its message")]

#[path = "../tests/common/etcd.rs"]
mod etcd;

use std::time::{Duration, Instant};

use lamina_bench_record::Record;
use lamina_control::etcd::{EtcdStore, EtcdTls, EtcdTransport, endpoints};

/// The document sizes saved: a small registry, and one of some hundreds of nodes.
const SIZES: [(usize, &str); 2] = [(1 << 10, "1 KiB"), (64 << 10, "64 KiB")];

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `p`-quantile (0 to 1) of sorted samples, nearest rank.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

fn main() {
    let measuring = lamina_bench_record::measuring();
    let quick = lamina_bench_record::quick();
    let writes: usize = if !measuring {
        5
    } else {
        std::env::var("WRITES").ok().and_then(|w| w.parse().ok()).unwrap_or(if quick { 20 } else { 1000 })
    };
    let connects = if measuring && !quick { 100 } else { 3 };

    let dir = tempfile::tempdir().expect("temp dir");
    let ca = etcd::Ca::new(dir.path(), "etcd");
    let cluster = etcd::Cluster::start(dir.path(), 1, etcd::Security::TlsAndPlaintext(&ca));
    let client = ca.issue("replica");
    let tls = EtcdTransport::Tls(EtcdTls::load(&ca.cert, &client.cert, &client.key).expect("the TLS files"));
    let transports = [
        ("TLS, client certificate", endpoints(&cluster.url()).expect("url"), tls),
        ("plain HTTP", endpoints(&cluster.plaintext_url()).expect("url"), EtcdTransport::DangerPlaintext),
    ];

    // Connections: a new store each time, the transports alternating.
    let mut connect: [Vec<f64>; 2] = Default::default();
    for round in 0..connects {
        for k in [round % 2, 1 - round % 2] {
            let (_, members, transport) = &transports[k];
            let started = Instant::now();
            let store = EtcdStore::connect(members, &format!("/bench-{k}"), transport).expect("connect");
            connect[k].push(millis(started.elapsed()));
            drop(store);
        }
    }

    // Saves: one store per transport, each leading under its own prefix.
    let stores: Vec<EtcdStore> = transports
        .iter()
        .enumerate()
        .map(|(k, (_, members, transport))| {
            let store = EtcdStore::connect(members, &format!("/bench-{k}"), transport).expect("connect");
            store.campaign("bench", tokio::sync::watch::channel(false).0).expect("lead");
            store
        })
        .collect();
    let mut saves: Vec<[Vec<f64>; 2]> = SIZES.iter().map(|_| Default::default()).collect();
    for (s, (size, _)) in SIZES.iter().enumerate() {
        let document: Vec<u8> = (0..*size).map(|i| b"{\"nodes\": [0123456789abcdef]}"[i % 28]).collect();
        for i in 0..writes {
            for k in [i % 2, 1 - i % 2] {
                let started = Instant::now();
                stores[k].write(&[("registry.json", &document)], &[]).expect("save");
                saves[s][k].push(millis(started.elapsed()));
            }
        }
    }

    let command = if cfg!(debug_assertions) {
        "cargo bench --profile dev -p lamina-cli --bench etcd_auth"
    } else {
        "cargo bench -p lamina-cli --bench etcd_auth"
    };
    let command = match std::env::var("WRITES") {
        Ok(w) => format!("WRITES={w} {command}"),
        Err(_) => command.to_owned(),
    };
    let mut record = Record::new("etcd-auth", "etcd authentication: TLS with client certificates", &command);
    println!("{:<26} {:>12} {:>12} {:>8}", "", "TLS", "plain HTTP", "ratio");
    let connect: Vec<Vec<f64>> = connect.into_iter().map(sorted).collect();
    let (tls_c, plain_c) = (quantile(&connect[0], 0.5), quantile(&connect[1], 0.5));
    println!("{:<26} {:>9.2} ms {:>9.2} ms {:>8.2}", "connection, p50", tls_c, plain_c, tls_c / plain_c);
    record.metric("tls.connect_p50_ms", "connection (TLS, client certificate), p50", tls_c, "ms");
    record.metric("plain.connect_p50_ms", "connection (plain HTTP), p50", plain_c, "ms");
    for (s, (_, name)) in SIZES.iter().enumerate() {
        let [t, p] = saves[s].clone().map(sorted);
        let id = name.replace(' ', "").to_lowercase();
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            let (tq, pq) = (quantile(&t, q), quantile(&p, q));
            println!("{:<26} {:>9.2} ms {:>9.2} ms {:>8.2}", format!("save of {name}, {label}"), tq, pq, tq / pq);
            record.metric(&format!("tls.save_{id}_{label}_ms"), &format!("save of {name} (TLS), {label}"), tq, "ms");
            record.metric(
                &format!("plain.save_{id}_{label}_ms"),
                &format!("save of {name} (plain HTTP), {label}"),
                pq,
                "ms",
            );
        }
        record.metric(
            &format!("save_{id}_ratio"),
            &format!("save of {name}, TLS over plain HTTP (p50)"),
            quantile(&t, 0.5) / quantile(&p, 0.5),
            "ratio",
        );
    }
    let build = if cfg!(debug_assertions) {
        "a debug build (`--profile dev`: Lamina's crates unoptimised, their dependencies at opt-level 1)"
    } else {
        "a release build"
    };
    record.note(&format!(
        "one etcd {} member on loopback serving the same data over both (ECDSA P-256 certificates, \
         `--client-cert-auth`), data directory on disk; {writes} saves per size and transport, alternating one \
         by one; {connects} connections each (a new store: TCP, handshake, first read); {build}",
        etcd_version()
    ));
    if measuring && let Some(path) = record.write_if_requested().expect("the record") {
        eprintln!("record: {}", path.display());
    }
}

/// etcd's version, as it says.
fn etcd_version() -> String {
    let out = std::process::Command::new("etcd").arg("--version").output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .unwrap_or("(unknown version)")
        .trim()
        .to_owned()
}
