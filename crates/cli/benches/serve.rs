//! `lamina serve` against `wasmtime serve` of the same wasmtime version, side by side: the same
//! components, the same load generator (this file: keep-alive HTTP/1.1 connections, each
//! sending its next request when the last is answered, for a fixed time), the same machine,
//! the servers alternating run by run.
//!
//! - Requests per second, p50 and p99 latency, for a hello (`GET /`) and a 4 KiB JSON echo
//!   (`POST /echo`) at 1, 16 and 256 connections; for the WASI 0.3 service with a fresh
//!   instance per request and with instance reuse (wasmtime's defaults for 0.3: 128 requests per
//!   instance, 16 at once), and for the WASI 0.2 proxy (a fresh instance per request, as both
//!   do for 0.2).
//! - Attested HTTPS (`--attested-tls`, sim platform) against plain HTTPS (`--tls-cert`) of the
//!   same server: a new connection's handshake (the client appraising the server's evidence, or
//!   checking its certificate against a root), and requests per second on reused connections.
//! - Memory: the server's resident memory with 1,000 requests in flight (each waiting a second
//!   in the guest), less its resident memory idle.
//! - A node's ingress against `lamina serve`: the same WASI 0.3 component deployed as an HTTP
//!   workload to a sim node (`lamina node --ingress`, under a `lamina control` of its own) and
//!   served by `lamina serve --attested-tls`, both over attested HTTPS with a fresh instance
//!   per request, 16 connections; requests per second and CPU per request of the node's
//!   process against the server's.
//!
//! `cargo bench -p lamina-cli --bench serve` (SECONDS per run, 5 by default; ROUNDS pairs of
//! runs per case, 1 by default, the case's ratio the median pair's; CASES=WORD only the cases
//! whose label has it; CONNS=16,256 only these connection counts; WASMTIME names the wasmtime binary, else
//! `target/bench-tools/bin/wasmtime`; without one its runs are left out and the record says
//! so). With `LAMINA_BENCH_RECORDS` set it writes the `http-serve` record;
//! `LAMINA_BENCH_QUICK=1` makes it brief. Run by `cargo test` it is a smoke run.
#![allow(clippy::expect_used, reason = "a benchmark's set-up: a failure stops it with its message")]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use lamina_bench_record::Record;

/// A server under test, stopped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a command that prints `ready` on standard error when it listens on `addr`.
    fn start(mut cmd: Command, addr: SocketAddr, ready: &'static str) -> Self {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("server starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let said = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = Arc::clone(&said);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(ready)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(());
                }
                if let Ok(mut said) = sink.lock()
                    && said.len() < 8192
                {
                    said.push_str(&line);
                    said.push('\n');
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(300)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not say it listens: {cmd:?}\n{}",
                said.lock().map(|s| s.clone()).unwrap_or_default()
            );
        }
        Self { child, addr }
    }

    /// CPU time the server has used so far, user and system, over all its threads.
    fn cpu(&self) -> Option<Duration> {
        cpu_time(self.child.id())
    }

    /// Resident memory (VmRSS), bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

/// A process's CPU time (user and system, its threads' included, those that ended too), from
/// `/proc/PID/stat`, in clock ticks of `getconf CLK_TCK`.
fn cpu_time(pid: u32) -> Option<Duration> {
    static TICK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let hz = *TICK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's name, which ends at the last `)`: state is the first,
    // utime the 12th and stime the 13th.
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().skip(11);
    let ticks = rest.next()?.parse::<u64>().ok()? + rest.next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz.max(1)))
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr")
}

/// How instances are used.
#[derive(Clone, Copy)]
enum Mode {
    Fresh,
    Reuse,
}

fn lamina_serve(file: &Path, mode: Mode, extra: &[&str]) -> Server {
    let addr = free_addr();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lamina"));
    cmd.args(["serve", "--no-cache", "--addr", &addr.to_string(), "--max-concurrent-requests", "4000"]);
    if let Mode::Reuse = mode {
        cmd.args(["--instance-reuse", "128", "--instance-concurrency", "16"]);
    }
    cmd.args(extra).arg(file).env("LAMINA_LOG", "error");
    Server::start(cmd, addr, "lamina: serving")
}

fn wasmtime_serve(wasmtime: &Path, file: &Path, mode: Mode) -> Server {
    let addr = free_addr();
    let mut cmd = Command::new(wasmtime);
    cmd.args(["serve", "-Scli", "-Sp3", "-Wcomponent-model-async", "--addr", &addr.to_string()]);
    if let Mode::Fresh = mode {
        cmd.args(["--max-instance-reuse-count", "1"]);
    }
    // WASMTIME_FLAGS adds options (`-Wtimeout=30s` puts epoch checks in, as lamina always has).
    cmd.args(std::env::var("WASMTIME_FLAGS").unwrap_or_default().split_whitespace());
    cmd.args(["--max-concurrent-requests", "4000"]).arg(file);
    Server::start(cmd, addr, "Serving HTTP on")
}

/// One request shape.
#[derive(Clone)]
struct Shape {
    method: http::Method,
    path: &'static str,
    body: Bytes,
}

fn hello() -> Shape {
    Shape { method: http::Method::GET, path: "/", body: Bytes::new() }
}

/// A 4 KiB JSON document.
fn json_4k() -> Shape {
    let mut doc = String::from("{\"readings\":[");
    let mut i = 0;
    while doc.len() < 4096 - 40 {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&format!("{{\"t\":{i},\"v\":{}.5}}", i % 97));
        i += 1;
    }
    doc.push_str("]}");
    while doc.len() < 4096 {
        doc.insert(doc.len() - 1, ' ');
    }
    Shape { method: http::Method::POST, path: "/echo", body: Bytes::from(doc) }
}

/// What a load run measured.
#[derive(Default)]
struct Outcome {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
    /// The server's CPU time over the measured window, when known.
    cpu: Option<Duration>,
}

impl Outcome {
    /// Several runs as one: their requests over their time together.
    fn merged(runs: Vec<Outcome>) -> Outcome {
        // Known only when known for every run.
        let cpu = runs.iter().map(|run| run.cpu).sum::<Option<Duration>>();
        let mut all = runs.into_iter().fold(Outcome::default(), |mut all, run| {
            all.ok += run.ok;
            all.failed += run.failed;
            all.latencies_us.extend(run.latencies_us);
            all.elapsed += run.elapsed;
            all
        });
        all.cpu = cpu;
        all
    }

    /// The server's CPU time per answered request, microseconds.
    fn cpu_per_request_us(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.ok > 0).then(|| cpu.as_secs_f64() * 1e6 / self.ok as f64)
    }

    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1000.0
    }
}

type Tls = Option<(Arc<rustls::ClientConfig>, &'static str)>;

/// One keep-alive connection: a sender, after TCP (and TLS).
async fn connect(
    addr: SocketAddr,
    tls: &Tls,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    match tls {
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            Ok(sender)
        }
        Some((config, name)) => {
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
            let name = rustls::pki_types::ServerName::try_from(*name)?.to_owned();
            let stream = connector.connect(name, tcp).await?;
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            Ok(sender)
        }
    }
}

/// Drives `conns` connections for `duration` (after `warmup`), each sending its next request
/// when the last is answered.
fn drive(server: &Server, tls: Tls, shape: &Shape, conns: usize, warmup: Duration, duration: Duration) -> Outcome {
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let start = Instant::now() + warmup;
        let end = start + duration;
        // The server's CPU time over the measured window (the warm-up left out).
        let cpu_at_start = {
            let pid = server.child.id();
            tokio::spawn(async move {
                tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
                cpu_time(pid)
            })
        };
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let tls = tls.clone();
            let shape = shape.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Outcome::default();
                let mut sender = None;
                while Instant::now() < end {
                    if sender.is_none() {
                        match connect(addr, &tls).await {
                            Ok(s) => sender = Some(s),
                            Err(_) => {
                                out.failed += 1;
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        }
                    }
                    let Some(s) = sender.as_mut() else { continue };
                    let request = http::Request::builder()
                        .method(shape.method.clone())
                        .uri(shape.path)
                        .header(http::header::HOST, "bench")
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(shape.body.clone()))
                        .expect("request");
                    let sent = Instant::now();
                    let answered = match s.send_request(request).await {
                        Ok(response) => {
                            let ok = response.status() == 200;
                            response.into_body().collect().await.is_ok() && ok
                        }
                        Err(_) => false,
                    };
                    if sent >= start {
                        if answered {
                            out.ok += 1;
                            out.latencies_us.push(sent.elapsed().as_micros() as u64);
                        } else {
                            out.failed += 1;
                        }
                    }
                    if !answered {
                        sender = None;
                    }
                }
                out
            }));
        }
        let mut total = Outcome { elapsed: duration, ..Outcome::default() };
        for task in tasks {
            let out = task.await.expect("load task");
            total.ok += out.ok;
            total.failed += out.failed;
            total.latencies_us.extend(out.latencies_us);
        }
        // Requests sent before the end may be answered after it: the window ends here.
        let cpu_at_end = server.cpu();
        total.cpu = match (cpu_at_start.await.ok().flatten(), cpu_at_end) {
            (Some(a), Some(b)) => b.checked_sub(a),
            _ => None,
        };
        total
    })
}

fn components() -> (PathBuf, PathBuf) {
    (common::component("p3-service"), common::component("p2-proxy"))
}

fn main() {
    let measuring = lamina_bench_record::measuring();
    let quick = lamina_bench_record::quick();
    let seconds: f64 = std::env::var("SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(match (measuring, quick) {
        (false, _) => 0.2,
        (true, true) => 0.5,
        (true, false) => 5.0,
    });
    let duration = Duration::from_secs_f64(seconds);
    let warmup = Duration::from_secs_f64((seconds / 5.0).min(1.0));
    // CONNS=16,256: only these connection counts.
    let conn_counts: Vec<usize> = match std::env::var("CONNS") {
        Ok(list) => list.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) if measuring && !quick => vec![1, 16, 256],
        Err(_) => vec![1, 16],
    };
    // ROUNDS=N: N pairs of runs for each case (a case's ratio is the median pair's). One pair
    // spreads by about ±10% on two cores: Lamina against itself gave 0.87 to 1.03.
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let wasmtime = std::env::var_os("WASMTIME")
        .map(PathBuf::from)
        .or_else(|| Some(common_root().join("target/bench-tools/bin/wasmtime")))
        .filter(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()));
    let (p3, p2) = components();
    let command = if cfg!(debug_assertions) {
        "cargo bench --profile dev -p lamina-cli --bench serve"
    } else {
        "cargo bench -p lamina-cli --bench serve"
    };
    let mut record = Record::new("http-serve", "lamina serve against wasmtime serve; attested HTTPS", command);

    println!(
        "{:<34} {:>5} {:>10} {:>10} {:>6} {:>16} {:>16}",
        "component, mode, request", "conns", "lamina/s", "wasmtime/s", "ratio", "lamina p50/p99", "wasmtime p50/p99"
    );
    let cases: [(&str, &Path, Mode, &str); 3] =
        [("0.3", &p3, Mode::Fresh, "fresh"), ("0.3", &p3, Mode::Reuse, "reuse"), ("0.2", &p2, Mode::Fresh, "fresh")];
    let mut ratios = Vec::new();
    // CASES=reuse (a word of the case's label) runs only the matching cases.
    let only = std::env::var("CASES").unwrap_or_default();
    for (version, file, mode, mode_name) in cases {
        for (shape_name, shape) in [("hello", hello()), ("json4k", json_4k())] {
            for (round, &conns) in conn_counts.iter().enumerate() {
                if !only.is_empty() && !format!("WASI {version}, {mode_name}, {shape_name}").contains(&only) {
                    continue;
                }
                let id = format!("p{}_{mode_name}_{shape_name}_c{conns}", &version[2..]);
                // ROUNDS pairs of runs, alternating which server goes first, so that drift in
                // the machine is shared; each pair's ratio is of two runs next to each other.
                let mut lamina_runs = Vec::new();
                let mut wasmtime_runs = Vec::new();
                let mut pair_ratios = Vec::new();
                for pair in 0..rounds {
                    let lamina_first = (round + pair) % 2 == 0;
                    let (mut l, mut w) = (None, None);
                    for turn in 0..2 {
                        if (turn == 0) == lamina_first {
                            let server = lamina_serve(file, mode, &[]);
                            l = Some(drive(&server, None, &shape, conns, warmup, duration));
                        } else if let Some(binary) = &wasmtime {
                            let server = wasmtime_serve(binary, file, mode);
                            w = Some(drive(&server, None, &shape, conns, warmup, duration));
                        }
                    }
                    let l = l.expect("lamina ran");
                    if let Some(w) = w {
                        pair_ratios.push(l.rps() / w.rps());
                        wasmtime_runs.push(w);
                    }
                    lamina_runs.push(l);
                }
                let l = Outcome::merged(lamina_runs);
                let wasmtime_out = (!wasmtime_runs.is_empty()).then(|| Outcome::merged(wasmtime_runs));
                pair_ratios.sort_by(f64::total_cmp);
                let label = format!("WASI {version}, {mode_name}, {shape_name}");
                record.metric(
                    &format!("{id}.lamina_rps"),
                    &format!("{label}, {conns} conns: lamina req/s"),
                    l.rps(),
                    "req/s",
                );
                record.metric(
                    &format!("{id}.lamina_p50_ms"),
                    &format!("{label}, {conns} conns: lamina p50"),
                    l.quantile_ms(0.5),
                    "ms",
                );
                record.metric(
                    &format!("{id}.lamina_p99_ms"),
                    &format!("{label}, {conns} conns: lamina p99"),
                    l.quantile_ms(0.99),
                    "ms",
                );
                match &wasmtime_out {
                    Some(w) => {
                        // The median pair's ratio (of one pair, its own).
                        let ratio = pair_ratios[pair_ratios.len() / 2];
                        ratios.push(ratio);
                        record.metric(
                            &format!("{id}.wasmtime_rps"),
                            &format!("{label}, {conns} conns: wasmtime req/s"),
                            w.rps(),
                            "req/s",
                        );
                        record.metric(
                            &format!("{id}.wasmtime_p50_ms"),
                            &format!("{label}, {conns} conns: wasmtime p50"),
                            w.quantile_ms(0.5),
                            "ms",
                        );
                        record.metric(
                            &format!("{id}.wasmtime_p99_ms"),
                            &format!("{label}, {conns} conns: wasmtime p99"),
                            w.quantile_ms(0.99),
                            "ms",
                        );
                        record.metric(
                            &format!("{id}.ratio"),
                            &format!("{label}, {conns} conns: lamina over wasmtime req/s"),
                            ratio,
                            "ratio",
                        );
                        println!(
                            "{:<34} {:>5} {:>10.0} {:>10.0} {:>6.2} {:>7.2}/{:<8.2} {:>7.2}/{:<8.2}",
                            label,
                            conns,
                            l.rps(),
                            w.rps(),
                            ratio,
                            l.quantile_ms(0.5),
                            l.quantile_ms(0.99),
                            w.quantile_ms(0.5),
                            w.quantile_ms(0.99)
                        );
                    }
                    None => println!(
                        "{:<34} {:>5} {:>10.0} {:>10} {:>6} {:>7.2}/{:<8.2}",
                        label,
                        conns,
                        l.rps(),
                        "-",
                        "-",
                        l.quantile_ms(0.5),
                        l.quantile_ms(0.99)
                    ),
                }
                // CPU per request is steadier than requests per second where the load generator
                // shares the cores: it says whether a server does more work, not who got the CPU.
                if let Some(lc) = l.cpu_per_request_us() {
                    record.metric(
                        &format!("{id}.lamina_cpu_us"),
                        &format!("{label}, {conns} conns: lamina CPU per request"),
                        lc,
                        "us",
                    );
                    match wasmtime_out.as_ref().and_then(Outcome::cpu_per_request_us) {
                        Some(wc) => {
                            record.metric(
                                &format!("{id}.wasmtime_cpu_us"),
                                &format!("{label}, {conns} conns: wasmtime CPU per request"),
                                wc,
                                "us",
                            );
                            println!(
                                "    server CPU per request: lamina {lc:.1} µs, wasmtime {wc:.1} µs ({:.2}x)",
                                lc / wc
                            );
                        }
                        None => println!("    server CPU per request: lamina {lc:.1} µs"),
                    }
                }
                if pair_ratios.len() > 1 {
                    let shown: Vec<String> = pair_ratios.iter().map(|r| format!("{r:.2}")).collect();
                    println!("    ratio of each pair, sorted: {}", shown.join(" "));
                }
                if l.failed > 0 {
                    println!("    ({} lamina requests failed)", l.failed);
                }
            }
        }
    }
    if !ratios.is_empty() {
        let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        record.metric("ratio_geomean", "lamina over wasmtime req/s, geometric mean of every case", geomean, "ratio");
        record.metric("ratio_min", "lamina over wasmtime req/s, the lowest case", min, "ratio");
        println!("lamina over wasmtime, requests per second: geometric mean {geomean:.2}, lowest {min:.2}");
    }

    attested_against_plain(&p3, &mut record, warmup, duration, measuring && !quick);
    if only.is_empty() || "ingress".contains(&only) {
        ingress_against_serve(&p3, &mut record, warmup, duration, rounds);
    }
    memory_in_flight(&p3, wasmtime.as_deref(), &mut record, measuring);

    let build = if cfg!(debug_assertions) { "a debug build" } else { "a release build" };
    record.note(&format!(
        "{seconds} s per run after a {:.1} s warm-up, servers alternating; load from this process (tokio, \
         keep-alive HTTP/1.1); {}; {build} of lamina",
        warmup.as_secs_f64(),
        match &wasmtime {
            Some(w) => format!("wasmtime: {}", version_of(w)),
            None => "no wasmtime binary (set WASMTIME): its runs were left out".to_owned(),
        }
    ));
    if measuring && let Some(path) = record.write_if_requested().expect("the record") {
        eprintln!("record: {}", path.display());
    }
}

fn common_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn version_of(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Attested HTTPS against plain HTTPS of the same server: handshakes, and requests on reused
/// connections.
fn attested_against_plain(p3: &Path, record: &mut Record, warmup: Duration, duration: Duration, full: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Plain HTTPS: a self-signed certificate the client trusts as its root.
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["bench.lamina".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("key");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut plain = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    plain.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Attested: the sim platform; the client appraises each new server certificate.
    let state = dir.path().join("state");
    let policy_path = dir.path().join("policy.toml");
    let module = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(p3).expect("component")))
    };
    std::fs::write(&policy_path, format!("allow_sim = true\nmodule_hashes = [\"sha256:{module}\"]\n")).expect("policy");
    let mut anchors = lamina_attest::TrustAnchors::default();
    let policy = lamina_attest::Policy::load(&policy_path, &mut anchors).expect("policy");
    let verifier =
        lamina_attest::ratls::AttestedServerVerifier::new(lamina_attest::Verifier::new(Some(policy), anchors))
            .with_cache_ttl(Duration::ZERO);
    let mut attested = lamina_attest::ratls::relying_party_config(verifier).expect("config");
    attested.alpn_protocols = vec![b"http/1.1".to_vec()];

    let plain_server = lamina_serve(
        p3,
        Mode::Reuse,
        &["--tls-cert", cert_path.to_str().expect("utf-8"), "--tls-key", key_path.to_str().expect("utf-8")],
    );
    let attested_server = lamina_serve(
        p3,
        Mode::Reuse,
        &["--attested-tls", "--platform", "sim", "--state", state.to_str().expect("utf-8")],
    );
    let handshakes = if full { 200 } else { 10 };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let configs: [(&str, &Server, Arc<rustls::ClientConfig>); 2] =
        [("plain", &plain_server, Arc::new(plain)), ("attested", &attested_server, Arc::new(attested))];
    let mut times: [Vec<f64>; 2] = Default::default();
    for i in 0..handshakes {
        for k in [i % 2, 1 - i % 2] {
            let (_, server, config) = &configs[k];
            let started = Instant::now();
            runtime.block_on(async {
                let tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connects");
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let name = rustls::pki_types::ServerName::try_from("bench.lamina").expect("name");
                connector.connect(name, tcp).await.expect("handshake");
            });
            times[k].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (plain_ms, attested_ms) = (median(&mut times[0]), median(&mut times[1]));
    record.metric("tls.plain_handshake_p50_ms", "plain HTTPS: connection and handshake, p50", plain_ms, "ms");
    record.metric(
        "tls.attested_handshake_p50_ms",
        "attested HTTPS: connection, handshake and appraisal, p50",
        attested_ms,
        "ms",
    );
    record.metric("tls.handshake_ratio", "attested over plain HTTPS handshake (p50)", attested_ms / plain_ms, "ratio");
    println!(
        "handshake p50: plain HTTPS {plain_ms:.2} ms, attested {attested_ms:.2} ms ({:.2}x)",
        attested_ms / plain_ms
    );
    let mut rps = [0.0; 2];
    for (k, (name, server, config)) in configs.iter().enumerate() {
        let out = drive(server, Some((Arc::clone(config), "bench.lamina")), &hello(), 16, warmup, duration);
        rps[k] = out.rps();
        record.metric(
            &format!("tls.{name}_rps"),
            &format!("{name} HTTPS, 16 reused connections: req/s"),
            out.rps(),
            "req/s",
        );
    }
    record.metric("tls.rps_ratio", "attested over plain HTTPS req/s with reused connections", rps[1] / rps[0], "ratio");
    println!("reused connections, 16: plain HTTPS {:.0}/s, attested {:.0}/s ({:.2}x)", rps[0], rps[1], rps[1] / rps[0]);
}

/// A relying party's client configuration: the sim platform, the component's module, and the
/// route it calls (a node's ingress declares the module behind each route).
fn attested_client(module_file: &Path, dir: &Path) -> Arc<rustls::ClientConfig> {
    let module = lamina_types::ModuleHash::of(&std::fs::read(module_file).expect("component"));
    let policy_path = dir.join("client-policy.toml");
    std::fs::write(&policy_path, format!("allow_sim = true\nmodule_hashes = [\"{module}\"]\n")).expect("policy");
    let mut anchors = lamina_attest::TrustAnchors::default();
    let policy = lamina_attest::Policy::load(&policy_path, &mut anchors).expect("policy");
    let verifier =
        lamina_attest::ratls::AttestedServerVerifier::new(lamina_attest::Verifier::new(Some(policy), anchors))
            .for_destination(lamina_attest::ratls::Destination { host: Some("bench".into()), path: "/".into() });
    let mut config = lamina_attest::ratls::relying_party_config(verifier).expect("config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A node's ingress against `lamina serve` (see the module docs): the ratio of requests per
/// second, ingress over serve, the median of `rounds` alternating pairs.
fn ingress_against_serve(p3: &Path, record: &mut Record, warmup: Duration, duration: Duration, rounds: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lamina = env!("CARGO_BIN_EXE_lamina");
    let control_state = dir.path().join("control");
    let control = Command::new(lamina)
        .args(["control", "--danger-dev-allow-any-sim-node", "--listen", "127.0.0.1:0", "--state"])
        .arg(&control_state)
        .env("LAMINA_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lamina control starts");
    let _control = Server { child: control, addr: free_addr() };
    let ready = |what: &str, check: &mut dyn FnMut() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    ready("the control plane", &mut || control_state.join("address").exists());
    let cli = |args: &[&str]| {
        let out = Command::new(lamina)
            .args(args)
            .arg("--control-state")
            .arg(&control_state)
            .env_remove("LAMINA_ADMIN_TOKEN")
            .output()
            .expect("lamina runs");
        assert!(out.status.success(), "lamina {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let token = cli(&["token", "create"]);
    let ingress = free_addr();
    let node = Command::new(lamina)
        .args(["node", "--name", "bench-1", "--platform", "sim", "--heartbeat", "1s", "--ingress"])
        .arg(ingress.to_string())
        .args(["--join", &token, "--state"])
        .arg(dir.path().join("node"))
        .env("LAMINA_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lamina node starts");
    let node = Server { child: node, addr: ingress };
    let app = dir.path().join("app.toml");
    std::fs::write(
        &app,
        format!("[[workload]]\nname = \"web\"\nmodule = \"{}\"\n[workload.http]\nroutes = [\"/\"]\n", p3.display()),
    )
    .expect("app");
    ready("the node to enrol", &mut || cli(&["status", "--format", "json"]).contains("\"ready\""));
    cli(&["deploy", app.to_str().expect("utf-8")]);
    let tls = attested_client(p3, dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    ready("the ingress to serve the workload", &mut || {
        runtime.block_on(async {
            let Ok(mut sender) = connect(ingress, &Some((Arc::clone(&tls), "bench"))).await else { return false };
            let request = http::Request::get("/")
                .header(http::header::HOST, "bench")
                .body(Full::new(Bytes::new()))
                .expect("request");
            sender.send_request(request).await.is_ok_and(|r| r.status() == 200)
        })
    });
    let serve_state = dir.path().join("serve");
    for (shape_name, shape) in [("hello", hello()), ("json4k", json_4k())] {
        let (mut ingress_runs, mut serve_runs, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
        for pair in 0..rounds {
            let (mut i, mut s) = (None, None);
            for turn in 0..2 {
                if (turn == 0) == (pair % 2 == 0) {
                    i = Some(drive(&node, Some((Arc::clone(&tls), "bench")), &shape, 16, warmup, duration));
                } else {
                    let server = lamina_serve(
                        p3,
                        Mode::Fresh,
                        &["--attested-tls", "--platform", "sim", "--state", serve_state.to_str().expect("utf-8")],
                    );
                    s = Some(drive(&server, Some((Arc::clone(&tls), "bench")), &shape, 16, warmup, duration));
                }
            }
            let (i, s) = (i.expect("ingress ran"), s.expect("serve ran"));
            pairs.push(i.rps() / s.rps());
            ingress_runs.push(i);
            serve_runs.push(s);
        }
        pairs.sort_by(f64::total_cmp);
        let ratio = pairs[pairs.len() / 2];
        let (i, s) = (Outcome::merged(ingress_runs), Outcome::merged(serve_runs));
        record.metric(
            &format!("ingress.{shape_name}_rps"),
            &format!("node ingress, {shape_name}, 16 conns: req/s"),
            i.rps(),
            "req/s",
        );
        record.metric(
            &format!("ingress.serve_{shape_name}_rps"),
            &format!("lamina serve --attested-tls, {shape_name}, 16 conns: req/s"),
            s.rps(),
            "req/s",
        );
        record.metric(
            &format!("ingress.{shape_name}_ratio"),
            &format!("node ingress over lamina serve, {shape_name}: req/s"),
            ratio,
            "ratio",
        );
        println!(
            "node ingress against lamina serve, attested HTTPS, fresh, {shape_name}, 16 conns: {:.0}/s against {:.0}/s ({ratio:.2}x); p50 {:.2} against {:.2} ms",
            i.rps(),
            s.rps(),
            i.quantile_ms(0.5),
            s.quantile_ms(0.5)
        );
        if let (Some(ic), Some(sc)) = (i.cpu_per_request_us(), s.cpu_per_request_us()) {
            println!("    CPU per request: node {ic:.1} µs, lamina serve {sc:.1} µs ({:.2}x)", ic / sc);
        }
        if pairs.len() > 1 {
            let shown: Vec<String> = pairs.iter().map(|r| format!("{r:.2}")).collect();
            println!("    ratio of each pair, sorted: {}", shown.join(" "));
        }
        if i.failed > 0 {
            println!("    ({} ingress requests failed)", i.failed);
        }
    }
}

/// Resident memory with 1,000 requests in flight (each a second in the guest) less idle.
fn memory_in_flight(p3: &Path, wasmtime: Option<&Path>, record: &mut Record, measuring: bool) {
    let in_flight = if measuring { 1000 } else { 50 };
    let mut servers: Vec<(&str, Server)> = vec![(
        "lamina",
        lamina_serve(p3, Mode::Fresh, &["--instance-reuse", "100000", "--instance-concurrency", "16"]),
    )];
    if let Some(w) = wasmtime {
        servers.push(("wasmtime", wasmtime_serve(w, p3, Mode::Reuse)));
    }
    for (name, server) in &servers {
        // Warm: one round of requests, so that code and pools are resident.
        let _ = drive(server, None, &hello(), 16, Duration::ZERO, Duration::from_millis(300));
        let idle = server.rss();
        let addr = server.addr;
        let clients: Vec<_> = (0..in_flight)
            .map(|_| {
                std::thread::spawn(move || {
                    use std::io::{Read as _, Write as _};
                    let mut s = match std::net::TcpStream::connect(addr) {
                        Ok(s) => s,
                        Err(e) => return Err(format!("connect: {e}")),
                    };
                    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
                    if let Err(e) = s.write_all(b"GET /sleep HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n") {
                        return Err(format!("write: {e}"));
                    }
                    let mut raw = Vec::new();
                    let _ = s.read_to_end(&mut raw);
                    if raw.starts_with(b"HTTP/1.1 200") {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&raw[..raw.len().min(120)]).replace("\r\n", " "))
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        let busy = server.rss();
        let mut failures = std::collections::BTreeMap::<String, usize>::new();
        let mut answered = 0;
        for client in clients {
            match client.join() {
                Ok(Ok(())) => answered += 1,
                Ok(Err(e)) => *failures.entry(e).or_default() += 1,
                Err(_) => *failures.entry("client thread panicked".into()).or_default() += 1,
            }
        }
        for (failure, n) in &failures {
            println!("    {name}: {n} requests failed: {failure}");
        }
        let per_1000 = (busy.saturating_sub(idle)) as f64 / in_flight as f64 * 1000.0 / (1 << 20) as f64;
        record.metric(
            &format!("memory.{name}_per_1000_in_flight_mib"),
            &format!("{name}: resident memory per 1,000 requests in flight"),
            per_1000,
            "MiB",
        );
        record.metric(
            &format!("memory.{name}_idle_mib"),
            &format!("{name}: resident memory idle"),
            idle as f64 / (1 << 20) as f64,
            "MiB",
        );
        println!(
            "{name}: {:.1} MiB idle, {:.1} MiB per 1,000 requests in flight ({answered}/{in_flight} answered)",
            idle as f64 / (1 << 20) as f64,
            per_1000
        );
    }
}
