//! The continuum at scale: one control plane (`lamina control`, its own process) against many
//! simulated nodes in this process. Each simulated node has its own `sim` platform, its own
//! P-256 identity and join token, enrols through the node agent's own code (challenge, evidence
//! binding its key, attested TLS), then heartbeats every 2 s and long-polls for new desired
//! states between heartbeats over its own attested TLS connections, like the real agent. It does
//! not run instances: it reports each assigned instance running at once.
//!
//! For each node count it reports:
//! - enrolment: nodes per second (16 enrolling at a time);
//! - placement: a deployment of 10 instances per node, from the operator's request to each
//!   instance reaching its node, at the median and the 99th percentile;
//! - heartbeat load: heartbeats per second, their round trip, and the control plane's CPU;
//! - the control plane's memory (RSS) idle after enrolment and with every instance placed.
//!
//! `cargo bench -p lamina-cli --bench scale` (NODES="100 300 1000" by default, STEADY seconds of
//! heartbeats, 20 by default). Results: stdout and bench/out/scale.txt, and with
//! `LAMINA_BENCH_RECORDS` set the `control-scale` record. `LAMINA_BENCH_QUICK=1` makes it a brief
//! run: NODES="20" and STEADY=2 unless set, and bench/out/quick/scale.txt. Run by `cargo test`
//! (without `--bench`) it is a smoke run: 20 nodes, a 3-second window.
#![allow(clippy::expect_used, reason = "a benchmark's set-up: a failure stops it with its message")]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lamina_bench_record::Record;
use lamina_wire::{ControlClient, DesiredState, InstanceReport, InstanceState, SignedDesired};
use serde_json::{Value, json};

const HEARTBEAT: Duration = Duration::from_secs(2);
const ENROLLING_AT_ONCE: usize = 16;
const PER_NODE: usize = 10;
const REPLICAS_PER_WORKLOAD: usize = 100;

/// A `lamina control` process with a state directory of its own.
struct Plane {
    child: Child,
    state: PathBuf,
}

impl Drop for Plane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Plane {
    fn start(dir: &Path) -> Plane {
        let state = dir.join("control");
        let child = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args([
                "control",
                "--danger-dev-allow-any-sim-node",
                "--listen",
                "127.0.0.1:0",
                "--lost-after",
                "120s",
                "--state",
            ])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("control.log")).expect("log file"))
            .spawn()
            .expect("lamina control starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !state.join("address").exists() {
            assert!(Instant::now() < deadline, "the control plane did not start within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Plane { child, state }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.state.join(file)).expect("control plane state file").trim().to_owned()
    }

    fn operator(&self) -> ControlClient {
        let fingerprint: [u8; 32] = hex::decode(self.read("fingerprint")).expect("hex").try_into().expect("32 bytes");
        ControlClient::new(&self.read("address"), fingerprint, Some(self.read("admin.token"))).expect("client")
    }

    /// Resident memory in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }
}

/// User and system CPU time of a process, from its `stat` file (clock ticks of 10 ms).
fn cpu_seconds(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    // After the command name: state is field 3 of the whole line, utime 14, stime 15.
    (fields.get(11).copied().unwrap_or(0.0) + fields.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// One enrolled simulated node.
struct Sim {
    name: String,
    base: String,
    client: reqwest::Client,
}

/// Enrols `n` nodes, `ENROLLING_AT_ONCE` at a time; returns them and how long it took.
fn enrol(plane: &Plane, dir: &Path, n: usize) -> (Vec<Sim>, Duration) {
    let operator = plane.operator();
    let tokens: Vec<lamina_types::JoinToken> = (0..n)
        .map(|_| {
            let made: Value = operator.post("/v1/tokens", &json!({})).expect("a join token");
            made["token"].as_str().expect("token").parse().expect("a join token")
        })
        .collect();
    let next = AtomicUsize::new(0);
    let sims = Mutex::new(Vec::with_capacity(n));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..ENROLLING_AT_ONCE {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let name = format!("sim-{i:04}");
                    let state = dir.join("nodes").join(&name);
                    let platform = lamina_tee::sim::SimPlatform::open(&state.join("sim")).expect("sim platform");
                    let options = lamina_node::NodeOptions {
                        zone: if i.is_multiple_of(2) { "edge".into() } else { "cloud".into() },
                        heartbeat: HEARTBEAT,
                        ..lamina_node::NodeOptions::new(
                            state.clone(),
                            name.clone(),
                            lamina_types::Target::host().expect("a supported host"),
                        )
                    };
                    let identity = lamina_node::enrol(token, &options, &platform).expect("enrols");
                    let tls = identity.tls_config(&platform, None).expect("TLS configuration");
                    let client = reqwest::Client::builder()
                        .use_preconfigured_tls(tls)
                        .timeout(Duration::from_secs(30))
                        .build()
                        .expect("HTTP client");
                    sims.lock().unwrap_or_else(PoisonError::into_inner).push(Sim {
                        name,
                        base: identity.control.clone(),
                        client,
                    });
                }
            });
        }
    });
    (sims.into_inner().unwrap_or_else(PoisonError::into_inner), started.elapsed())
}

/// What the simulated nodes observe.
#[derive(Default)]
struct Observed {
    /// When each instance first reached its node.
    placed: Mutex<HashMap<(lamina_types::WorkloadName, u32), Instant>>,
    /// Heartbeat round trips, in seconds.
    round_trips: Mutex<Vec<f64>>,
    heartbeats: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

/// Takes a desired state: its generation, and each new instance's arrival.
fn take(
    signed: &SignedDesired,
    assigned: &mut BTreeSet<(lamina_types::WorkloadName, u32)>,
    observed: &Observed,
) -> u64 {
    let Ok(desired) = serde_json::from_str::<DesiredState>(&signed.state) else { return 0 };
    let now = Instant::now();
    let mut placed = observed.placed.lock().unwrap_or_else(PoisonError::into_inner);
    assigned.clear();
    for a in &desired.assignments {
        let key = (a.placement.workload.clone(), a.placement.replica);
        placed.entry(key.clone()).or_insert(now);
        assigned.insert(key);
    }
    desired.generation
}

/// A simulated node's loop: heartbeat, then long polls until the next one, as the agent does.
async fn agent(sim: Sim, observed: Arc<Observed>, offset: Duration) {
    tokio::time::sleep(offset).await;
    let heartbeat = format!("{}/v1/nodes/{}/heartbeat", sim.base, sim.name);
    let mut assigned = BTreeSet::new();
    let mut generation = 0;
    while !observed.stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let reports: Vec<InstanceReport> = assigned
            .iter()
            .map(|(workload, replica): &(lamina_types::WorkloadName, u32)| InstanceReport {
                workload: workload.clone(),
                replica: *replica,
                state: InstanceState::Running,
                restarts: 0,
            })
            .collect();
        let answer = sim.client.post(&heartbeat).json(&json!({ "instances": reports })).send().await;
        match answer {
            Ok(r) if r.status().is_success() => match r.json::<SignedDesired>().await {
                Ok(signed) => {
                    observed
                        .round_trips
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(sent.elapsed().as_secs_f64());
                    observed.heartbeats.fetch_add(1, Ordering::Relaxed);
                    generation = take(&signed, &mut assigned, &observed);
                }
                Err(_) => {
                    observed.errors.fetch_add(1, Ordering::Relaxed);
                }
            },
            _ => {
                observed.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let next = sent + HEARTBEAT;
        while !observed.stop.load(Ordering::Relaxed) {
            let left = next.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(20) {
                break;
            }
            let poll =
                format!("{}/v1/nodes/{}/desired?after={generation}&wait_ms={}", sim.base, sim.name, left.as_millis());
            let Ok(r) = sim.client.get(&poll).send().await else { break };
            let Ok(signed) = r.json::<SignedDesired>().await else { break };
            generation = take(&signed, &mut assigned, &observed);
        }
        tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
    }
}

/// The value at quantile `q` of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A deployment of `total` instances: workloads of up to 100 replicas, 16 MiB each.
fn deployment(module: &str, total: usize) -> lamina_types::Deployment {
    let mut text = String::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let replicas = left.min(REPLICAS_PER_WORKLOAD);
        text.push_str(&format!(
            "[[workload]]\nname = \"w{i:03}\"\nmodule = \"bench.wasm\"\nreplicas = {replicas}\nmemory = \"16MiB\"\n"
        ));
        left -= replicas;
        i += 1;
    }
    let mut d = lamina_types::Deployment::parse(&text).expect("a manifest");
    for w in &mut d.workloads {
        w.module = lamina_types::ModuleRef::Hash(module.parse().expect("a module hash"));
    }
    d
}

struct Row {
    nodes: usize,
    instances: usize,
    enrol_rate: f64,
    rss_idle: f64,
    deploy_request: f64,
    placement_p50: f64,
    placement_p99: f64,
    placed: usize,
    heartbeats_per_s: f64,
    heartbeat_p50: f64,
    heartbeat_p99: f64,
    cpu: f64,
    driver_cpu: f64,
    rss_placed: f64,
    errors: u64,
}

fn run(n: usize, steady: Duration) -> Row {
    let dir = tempfile::tempdir().expect("temp dir");
    let plane = Plane::start(dir.path());
    let (sims, took) = enrol(&plane, dir.path(), n);
    assert_eq!(sims.len(), n, "every node enrolled");
    let enrol_rate = n as f64 / took.as_secs_f64();
    eprintln!("scale: {n} nodes enrolled in {took:.1?} ({enrol_rate:.0}/s)");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let observed = Arc::new(Observed::default());
    let tasks: Vec<_> = sims
        .into_iter()
        .enumerate()
        .map(|(i, sim)| {
            // Heartbeats spread over the period, as independent nodes' would be.
            let offset = HEARTBEAT.mul_f64(i as f64 / n as f64);
            runtime.spawn(agent(sim, observed.clone(), offset))
        })
        .collect();
    std::thread::sleep(HEARTBEAT * 2);
    let rss_idle = plane.rss_mib();

    // Deploy 10 instances per node.
    let operator = plane.operator();
    let uploaded: Value = operator.post_bytes("/v1/modules", b"\0asm\x01\0\0\0".to_vec()).expect("uploads");
    let total = n * PER_NODE;
    let app = deployment(uploaded["module"].as_str().expect("module hash"), total);
    let deployed = Instant::now();
    let _: Value = operator.put("/v1/deployments", &app).expect("deploys");
    let deploy_request = deployed.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    while observed.placed.lock().unwrap_or_else(PoisonError::into_inner).len() < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut latencies: Vec<f64> = observed
        .placed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .map(|t| t.saturating_duration_since(deployed).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let placed = latencies.len();

    // The steady state: every instance placed and reported running.
    std::thread::sleep(HEARTBEAT * 2);
    observed.round_trips.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let (beats, errors) = (observed.heartbeats.load(Ordering::Relaxed), observed.errors.load(Ordering::Relaxed));
    let (cpu, driver_cpu) = (plane.cpu_seconds(), cpu_seconds("/proc/self/stat"));
    let window = Instant::now();
    std::thread::sleep(steady);
    let elapsed = window.elapsed().as_secs_f64();
    let heartbeats_per_s = (observed.heartbeats.load(Ordering::Relaxed) - beats) as f64 / elapsed;
    let cpu = (plane.cpu_seconds() - cpu) / elapsed * 100.0;
    let driver_cpu = (cpu_seconds("/proc/self/stat") - driver_cpu) / elapsed * 100.0;
    let mut trips = observed.round_trips.lock().unwrap_or_else(PoisonError::into_inner).clone();
    trips.sort_by(f64::total_cmp);
    let rss_placed = plane.rss_mib();
    let errors = observed.errors.load(Ordering::Relaxed) - errors;

    observed.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    Row {
        nodes: n,
        instances: total,
        enrol_rate,
        rss_idle,
        deploy_request,
        placement_p50: quantile(&latencies, 0.5),
        placement_p99: quantile(&latencies, 0.99),
        placed,
        heartbeats_per_s,
        heartbeat_p50: quantile(&trips, 0.5) * 1000.0,
        heartbeat_p99: quantile(&trips, 0.99) * 1000.0,
        cpu,
        driver_cpu,
        rss_placed,
        errors,
    }
}

/// The `control-scale` record: one group of figures per node count, as the table shows them.
fn record(rows: &[Row], nodes: &str, steady: Duration) -> Record {
    let command = format!("NODES=\"{nodes}\" STEADY={} cargo bench -p lamina-cli --bench scale", steady.as_secs());
    let mut record = Record::new("control-scale", "One control plane at scale", &command);
    for r in rows {
        let n = r.nodes;
        let figures = [
            ("instances", "instances", r.instances as f64, "count"),
            ("enrol_per_s", "enrolment", r.enrol_rate, "per s"),
            ("rss_idle_mib", "control plane RSS, idle", r.rss_idle, "MiB"),
            ("deploy_request_s", "deployment request", r.deploy_request, "s"),
            ("placement_p50_s", "placement p50", r.placement_p50, "s"),
            ("placement_p99_s", "placement p99", r.placement_p99, "s"),
            ("beats_per_s", "heartbeats", r.heartbeats_per_s, "per s"),
            ("heartbeat_p50_ms", "heartbeat round trip p50", r.heartbeat_p50, "ms"),
            ("heartbeat_p99_ms", "heartbeat round trip p99", r.heartbeat_p99, "ms"),
            ("cp_cpu_pct", "control plane CPU", r.cpu, "%"),
            ("driver_cpu_pct", "driver CPU", r.driver_cpu, "%"),
            ("rss_mib", "control plane RSS, every instance placed", r.rss_placed, "MiB"),
            ("errors", "errors", r.errors as f64, "count"),
        ];
        for (id, label, value, unit) in figures {
            let id = format!("n{n}.{id}");
            // JSON has no NaN (a quantile of no samples): leave the figure out and say so.
            if value.is_finite() {
                record.metric(&id, &format!("{n} nodes, {label}"), value, unit);
            } else {
                record.note(&format!("{id}: no samples"));
            }
        }
    }
    record.note(&format!(
        "{PER_NODE} instances per node; heartbeat every {}s; a {}-second steady window",
        HEARTBEAT.as_secs(),
        steady.as_secs()
    ));
    record
}

fn main() {
    let full = lamina_bench_record::measuring();
    // Brief runs (the harness's quick mode): one small row and a short window, unless set.
    let quick = lamina_bench_record::quick();
    let nodes = std::env::var("NODES").unwrap_or_else(|_| if quick { "20" } else { "100 300 1000" }.into());
    let counts: Vec<usize> = if full {
        nodes.split_whitespace().map(|n| n.parse().expect("NODES is a list of numbers")).collect()
    } else {
        vec![20]
    };
    let steady = Duration::from_secs(if full {
        std::env::var("STEADY").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 2 } else { 20 })
    } else {
        3
    });
    let header = format!(
        "{:>6} {:>9} {:>9} {:>8} {:>9} {:>13} {:>13} {:>8} {:>13} {:>13} {:>8} {:>8} {:>9} {:>6}",
        "nodes",
        "instances",
        "enrol/s",
        "rss idle",
        "deploy rq",
        "placement p50",
        "placement p99",
        "beats/s",
        "heartbeat p50",
        "heartbeat p99",
        "cp cpu",
        "drv cpu",
        "rss placed",
        "errors"
    );
    let mut lines = vec![header.clone()];
    let mut rows = Vec::new();
    println!("{header}");
    for n in counts {
        let r = run(n, steady);
        assert_eq!(r.placed, r.instances, "every instance reached its node");
        let line = format!(
            "{:>6} {:>9} {:>9.1} {:>6.1}Mi {:>8.2}s {:>12.2}s {:>12.2}s {:>8.1} {:>11.1}ms {:>11.1}ms {:>7.1}% {:>7.1}% {:>7.1}Mi {:>6}",
            r.nodes,
            r.instances,
            r.enrol_rate,
            r.rss_idle,
            r.deploy_request,
            r.placement_p50,
            r.placement_p99,
            r.heartbeats_per_s,
            r.heartbeat_p50,
            r.heartbeat_p99,
            r.cpu,
            r.driver_cpu,
            r.rss_placed,
            r.errors
        );
        println!("{line}");
        lines.push(line);
        rows.push(r);
    }
    if full {
        // A brief run's figures are not meant to be read: they do not replace a full run's.
        let out =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(if quick { "../../bench/out/quick" } else { "../../bench/out" });
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::write(out.join("scale.txt"), lines.join("\n") + "\n");
        let nodes = rows.iter().map(|r| r.nodes.to_string()).collect::<Vec<_>>().join(" ");
        if let Some(path) = record(&rows, &nodes, steady).write_if_requested().expect("writes the record") {
            eprintln!("record: {}", path.display());
        }
    }
}
