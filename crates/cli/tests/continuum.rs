//! The continuum's commands against a real `lamina control` process: join tokens, deployments
//! (a malformed manifest names its line), status as a table and as JSON, undeploy, and the
//! refusals for a wrong admin token and an unknown workload.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{assert_code, lamina, output, texts};

struct ControlPlane {
    child: Child,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(state: &Path) -> ControlPlane {
    let child = Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(["control", "--danger-dev-allow-any-sim-node", "--listen", "127.0.0.1:0", "--state"])
        .arg(state)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("lamina control starts");
    let plane = ControlPlane { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !state.join("address").exists() {
        assert!(Instant::now() < deadline, "the control plane did not start within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    plane
}

fn cmd(state: &Path, args: &[&str]) -> std::process::Output {
    output(lamina().args(args).arg("--control-state").arg(state).env_remove("LAMINA_ADMIN_TOKEN"))
}

#[test]
fn tokens_deployments_and_status_through_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let _plane = start(&state);

    let token = cmd(&state, &["token", "create"]);
    assert_code(&token, 0);
    let line = texts(&token).0;
    assert!(line.trim().starts_with("lamina-join-1.") && line.trim().lines().count() == 1, "{line}");
    assert!(line.trim().parse::<lamina_types::JoinToken>().is_ok());

    let app = dir.path().join("app.toml");
    std::fs::write(&app, "[[workload]]\nname = \"filter\"\nmodule = \"f.wasm\"\nreplicas = 0\n").expect("write");
    let bad = cmd(&state, &["deploy", app.to_str().expect("utf-8")]);
    assert_code(&bad, 125);
    assert!(
        texts(&bad).1.contains("app.toml: line 4: workload \"filter\": replicas: must be 1 to 1000"),
        "{}",
        texts(&bad).1
    );

    let module = common::guest("hello", common::Wasi::P1);
    std::fs::write(&app, format!("[[workload]]\nname = \"filter\"\nmodule = \"{}\"\nreplicas = 2\n", module.display()))
        .expect("write");
    let deployed = cmd(&state, &["deploy", app.to_str().expect("utf-8")]);
    assert_code(&deployed, 0);
    assert!(texts(&deployed).0.contains("deployed filter"), "{}", texts(&deployed).0);
    assert!(texts(&deployed).1.contains("2 replica(s) not placed: no node has joined"), "{}", texts(&deployed).1);

    let table = cmd(&state, &["status"]);
    assert_code(&table, 0);
    assert!(texts(&table).0.contains("unplaced: no node has joined"), "{}", texts(&table).0);
    let json = cmd(&state, &["status", "--format", "json"]);
    assert_code(&json, 0);
    let v: serde_json::Value = serde_json::from_str(&texts(&json).0).expect("json");
    assert_eq!(v["unplaced"][0]["workload"], "filter");

    // `--watch` redraws until interrupted.
    let mut watch = lamina()
        .args(["status", "--watch", "200ms", "--control-state"])
        .arg(&state)
        .env_remove("LAMINA_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("lamina status --watch starts");
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let watched = watch.wait_with_output().expect("output");
    let screen = String::from_utf8_lossy(&watched.stdout);
    assert!(screen.matches("every 200ms").count() >= 2, "{screen}");
    assert!(screen.matches("unplaced: no node has joined").count() >= 2, "{screen}");
    assert!(lamina().args(["status", "--watch", "1ms"]).output().is_ok_and(|o| o.status.code() == Some(2)));

    let wrong = output(lamina().args(["status", "--admin-token", "wrong", "--control-state"]).arg(&state));
    assert_code(&wrong, 125);
    assert!(texts(&wrong).1.contains("the admin token is wrong"), "{}", texts(&wrong).1);

    let missing_module = dir.path().join("missing.toml");
    std::fs::write(&missing_module, "[[workload]]\nname = \"x\"\nmodule = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n")
        .expect("write");
    let unknown = cmd(&state, &["deploy", missing_module.to_str().expect("utf-8")]);
    assert_code(&unknown, 125);
    assert!(texts(&unknown).1.contains("is unknown to the control plane"), "{}", texts(&unknown).1);

    assert_code(&cmd(&state, &["undeploy", "filter"]), 0);
    let missing = cmd(&state, &["undeploy", "filter"]);
    assert_code(&missing, 125);
    assert!(texts(&missing).1.contains("no workload `filter` is deployed"), "{}", texts(&missing).1);
}

#[test]
fn commands_without_a_control_plane_say_what_to_pass() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = cmd(&dir.path().join("none"), &["status"]);
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("pass --control URL"), "{}", texts(&out).1);
}

#[test]
fn the_example_manifest_is_valid() {
    let text = std::fs::read_to_string(common::root().join("examples/continuum/app.toml")).expect("the example");
    let d = lamina_types::Deployment::parse(&text).expect("the example manifest parses");
    assert_eq!(d.workloads.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["filter", "aggregate"]);
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// As [`wait_for`], showing the log `log` when it times out.
fn wait_for_or(what: &str, timeout: Duration, log: &Path, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; {}:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_json(state: &Path) -> serde_json::Value {
    let out = cmd(state, &["status", "--format", "json"]);
    serde_json::from_str(&texts(&out).0).unwrap_or(serde_json::Value::Null)
}

#[test]
fn a_node_enrols_runs_its_instance_and_is_lost_when_it_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let child = Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args([
            "control",
            "--danger-dev-allow-any-sim-node",
            "--listen",
            "127.0.0.1:0",
            "--lost-after",
            "3s",
            "--state",
        ])
        .arg(&state)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("lamina control starts");
    let _plane = ControlPlane { child };
    wait_for("the control plane", Duration::from_secs(20), || state.join("address").exists());
    let token = texts(&cmd(&state, &["token", "create"])).0.trim().to_owned();

    let node_state = dir.path().join("node");
    let start_node = |join: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lamina"));
        c.args(["node", "--name", "edge-1", "--zone", "edge", "--platform", "sim", "--heartbeat", "200ms", "--state"])
            .arg(&node_state)
            .stderr(std::process::Stdio::null());
        if let Some(t) = join {
            c.args(["--join", t]);
        }
        Process(c.spawn().expect("lamina node starts"))
    };
    let node = start_node(Some(&token));
    wait_for("the node to enrol", Duration::from_secs(30), || {
        status_json(&state)["nodes"][0]["state"]["state"] == "ready"
    });

    let app = dir.path().join("app.toml");
    let ticker = common::guest("ticker", common::Wasi::P2);
    std::fs::write(
        &app,
        format!(
            "[[workload]]\nname = \"ticker\"\nmodule = \"{}\"\n[workload.constraints]\nzones = [\"edge\"]\n",
            ticker.display()
        ),
    )
    .expect("write");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let log = node_state.join("node/logs/ticker-0.log");
    wait_for("the instance's output", Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("tick 3"))
    });
    wait_for("the instance to be reported running", Duration::from_secs(10), || {
        status_json(&state)["nodes"][0]["instances"][0]["state"] == "running"
    });
    let table = texts(&cmd(&state, &["status"])).0;
    assert!(table.contains("edge-1") && table.contains("ready") && table.contains("running"), "{table}");

    // The node stops: after --lost-after the control plane marks it lost.
    drop(node);
    wait_for("the node to be lost", Duration::from_secs(20), || {
        status_json(&state)["nodes"][0]["state"]["state"] == "lost"
    });
    let lost = status_json(&state);
    assert!(lost["unplaced"][0]["reason"].as_str().unwrap_or("").contains("no node is ready"), "{lost}");

    // It comes back with the identity it kept (no token), and runs its instance again.
    let _node = start_node(None);
    wait_for("the node to be ready again", Duration::from_secs(30), || {
        status_json(&state)["nodes"][0]["state"]["state"] == "ready"
    });
    wait_for("the instance to run again", Duration::from_secs(30), || {
        status_json(&state)["nodes"][0]["instances"][0]["state"] == "running"
    });
}

fn start_control(state: &Path, extra: &[&str]) -> ControlPlane {
    let _ = std::fs::remove_file(state.join("address"));
    let child = Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(["control", "--lost-after", "3s", "--state"])
        .arg(state)
        .args(extra)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("lamina control starts");
    let plane = ControlPlane { child };
    wait_for("the control plane", Duration::from_secs(20), || state.join("address").exists());
    plane
}

fn log_len(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |l| l.lines().count())
}

#[test]
fn a_node_keeps_running_without_the_control_plane_with_its_secrets_and_is_drained_by_a_stricter_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    // A fixed port, so that the restarted control plane is where the node's identity says.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let listen = format!("127.0.0.1:{port}");
    let plane = start_control(&state, &["--danger-dev-allow-any-sim-node", "--listen", &listen]);
    let token = texts(&cmd(&state, &["token", "create"])).0.trim().to_owned();
    let node_state = dir.path().join("node");
    let start_node = |join: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lamina"));
        c.args(["node", "--name", "edge-1", "--zone", "edge", "--platform", "sim"])
            .args(["--heartbeat", "200ms", "--reattest", "1s", "--state"])
            .arg(&node_state)
            .stderr(std::process::Stdio::null());
        if let Some(t) = join {
            c.args(["--join", t]);
        }
        Process(c.spawn().expect("lamina node starts"))
    };
    let node = start_node(Some(&token));
    wait_for("the node to enrol", Duration::from_secs(30), || {
        status_json(&state)["nodes"][0]["state"]["state"] == "ready"
    });
    // A ticker, and a workload with a secret: the control plane releases it to the attested
    // instance only.
    let app = dir.path().join("app.toml");
    let ticker = common::guest("ticker", common::Wasi::P1);
    let consumer = common::example_for("services", "secret-consumer", "wasm32-wasip2");
    std::fs::write(
        &app,
        format!(
            "[[workload]]\nname = \"ticker\"\nmodule = \"{}\"\n\n[[workload]]\nname = \"consumer\"\nmodule = \"{}\"\n\
             secrets = [\"api-token\"]\n",
            ticker.display(),
            consumer.display()
        ),
    )
    .expect("write");
    let refused = cmd(&state, &["deploy", app.to_str().expect("utf-8")]);
    assert_code(&refused, 125);
    assert!(texts(&refused).1.contains("lamina secret set api-token FILE"), "{}", texts(&refused).1);
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, "s3cr3t-t0k3n-value").expect("write");
    assert_code(&cmd(&state, &["secret", "set", "api-token", token_file.to_str().expect("utf-8")]), 0);
    assert_eq!(texts(&cmd(&state, &["secret", "list"])).0.trim(), "api-token");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let log = node_state.join("node/logs/ticker-0.log");
    let consumer_log = node_state.join("node/logs/consumer-0.log");
    let got_secret =
        |path: &Path| std::fs::read_to_string(path).map_or(0, |l| l.matches("secret `api-token`: 18 bytes").count());
    wait_for("the instance's output", Duration::from_secs(60), || log_len(&log) > 3);
    wait_for("the secret to reach its instance", Duration::from_secs(60), || got_secret(&consumer_log) > 0);
    // Its output reaches the operator through the control plane.
    wait_for("`lamina logs`", Duration::from_secs(20), || {
        texts(&cmd(&state, &["logs", "consumer"])).0.contains("consumer/0@edge-1: secret `api-token`: 18 bytes")
    });
    // The node's copies (the desired state, the secrets) hold no secret in the clear.
    let cached = node_state.join("node/secrets/consumer-0.sealed");
    let bytes = std::fs::read(&cached).expect("the secrets are cached, sealed");
    assert!(!bytes.windows(6).any(|w| w == b"s3cr3t"));
    assert!(!std::fs::read_to_string(node_state.join("node/desired.json")).expect("desired").contains("s3cr3t"));
    // Kept for the rollback attack at the end: a signed desired state that assigns the ticker.
    let old_desired = std::fs::read(node_state.join("node/desired.json")).expect("desired");

    // The control plane goes away: the instances keep running; even a restarted node agent runs
    // them again from its signed copy of the desired state and its cached sealed secrets.
    drop(plane);
    let before = log_len(&log);
    wait_for("output while the control plane is down", Duration::from_secs(10), || log_len(&log) > before + 10);
    drop(node);
    let released = got_secret(&consumer_log);
    let node = start_node(None);
    wait_for("the instances to restart offline", Duration::from_secs(30), || got_secret(&consumer_log) > released);
    let before = log_len(&log);
    wait_for("the ticker to restart offline", Duration::from_secs(30), || log_len(&log) > before + 5);

    // It comes back: the node reconnects and nothing healthy restarts.
    let plane = start_control(&state, &["--danger-dev-allow-any-sim-node", "--listen", &listen]);
    let ticker_of = |s: &serde_json::Value| {
        s["nodes"][0]["instances"].as_array().and_then(|a| a.iter().find(|i| i["workload"] == "ticker").cloned())
    };
    wait_for("the node to reconnect", Duration::from_secs(30), || {
        let s = status_json(&state);
        s["nodes"][0]["state"]["state"] == "ready" && ticker_of(&s).is_some_and(|t| t["state"] == "running")
    });
    let s = status_json(&state);
    assert_eq!(ticker_of(&s).expect("ticker")["restarts"], 0, "the instance was not restarted");
    drop(plane);

    // A stricter policy: the node's next evidence fails it, and the node is drained.
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "allow_sim = false\n").expect("write");
    let plane = start_control(&state, &["--listen", &listen, "--policy", strict.to_str().expect("utf-8")]);
    wait_for("the node to be untrusted", Duration::from_secs(30), || {
        status_json(&state)["nodes"][0]["state"]["state"] == "untrusted"
    });
    let s = status_json(&state);
    assert!(s["nodes"][0]["attestation_failure"].as_str().unwrap_or("").contains("sim"), "{s}");
    assert!(s["placements"].as_array().is_some_and(Vec::is_empty), "drained: {s}");
    let stopped = log_len(&log);
    std::thread::sleep(Duration::from_secs(2));
    assert!(log_len(&log) <= stopped + 2, "the node stopped its instance");
    assert!(!cached.exists(), "and dropped its cached secrets");

    // The attack: the drained node's desired state rolled back to the older signed copy that
    // still assigns the ticker, and the node restarted while the control plane is away. The
    // node has seen a newer generation (kept sealed), so it runs nothing.
    drop(node);
    drop(plane);
    std::fs::write(node_state.join("node/desired.json"), &old_desired).expect("roll back");
    let node = start_node(None);
    let before = log_len(&log);
    std::thread::sleep(Duration::from_secs(4));
    assert!(log_len(&log) <= before, "the rolled-back desired state is refused: the undeployed ticker does not run");
    drop(node);
}

/// Fail closed: a control plane without a policy would admit anything, so it does not start
/// unless told, by a name that says so, to admit any sim node.
#[test]
fn control_plane_refuses_to_start_without_a_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = common::output(
        Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["control", "--listen", "127.0.0.1:0", "--state"])
            .arg(dir.path().join("control")),
    );
    assert_eq!(out.status.code(), Some(2), "{}", texts(&out).1);
    let stderr = texts(&out).1;
    assert!(stderr.contains("--policy") && stderr.contains("--danger-dev-allow-any-sim-node"), "{stderr}");
    assert!(!dir.path().join("control").join("address").exists(), "it never listened");
}

/// A control plane (`--danger-dev-allow-any-sim-node`) in `dir/control` and one sim node
/// `edge-1` in `dir/node` that heartbeats every 200 ms, started with `extra` arguments and
/// enrolled (`ready`). Both are killed when dropped, passed or not.
fn plane_and_node(dir: &Path, extra: &[&str]) -> (ControlPlane, Process) {
    let state = dir.join("control");
    let plane = start(&state);
    let token = texts(&cmd(&state, &["token", "create"])).0.trim().to_owned();
    let node = Process(
        Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["node", "--name", "edge-1", "--platform", "sim", "--heartbeat", "200ms"])
            .args(extra)
            .args(["--join", &token, "--state"])
            .arg(dir.join("node"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("lamina node starts"),
    );
    wait_for("the node to enrol", Duration::from_secs(30), || {
        status_json(&state)["nodes"][0]["state"]["state"] == "ready"
    });
    (plane, node)
}

/// A workload that writes its output as fast as it can, beside a quiet one on the same node:
/// its log stays within its cap (one rotated copy), what it writes over its rate is dropped and
/// counted in the node's metrics, and the neighbour's log and the node's heartbeats go on.
#[test]
fn a_guest_flooding_its_output_is_held_to_its_log_cap_and_its_neighbour_keeps_logging() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let node_state = dir.path().join("node");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let metrics_arg = metrics.to_string();
    let _running =
        plane_and_node(dir.path(), &["--log-max-file", "1MiB", "--log-rate", "256KiB", "--metrics", &metrics_arg]);
    let app = dir.path().join("app.toml");
    let mut manifest = String::new();
    for program in ["flood", "ticker"] {
        let module = common::guest(program, common::Wasi::P2);
        manifest.push_str(&format!("[[workload]]\nname = \"{program}\"\nmodule = \"{}\"\n", module.display()));
    }
    std::fs::write(&app, manifest).expect("write");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let logs = node_state.join("node/logs");
    // The flood writes gigabytes a second; the ticker 10 lines.
    wait_for("the neighbour's output", Duration::from_secs(60), || {
        std::fs::read_to_string(logs.join("ticker-0.log")).is_ok_and(|l| l.contains("tick 30"))
    });
    let on_disk = |name: &str| std::fs::metadata(logs.join(name)).map_or(0, |m| m.len());
    let flood = on_disk("flood-0.log") + on_disk("flood-0.log.1");
    assert!(flood <= 2 << 20, "the flooding instance's logs take {flood} bytes");
    assert!(on_disk("flood-0.log.1") > 0, "the flooding instance's log was rotated");
    let text = std::fs::read_to_string(logs.join("flood-0.log")).expect("reads");
    assert!(text.contains("bytes of this instance's output were dropped"), "the log says what was dropped");
    let scraped = {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(metrics).expect("metrics");
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("asks");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("reads");
        text
    };
    let dropped = scraped
        .lines()
        .find_map(|l| l.strip_prefix("lamina_node_log_dropped_bytes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_default();
    assert!(dropped > f64::from(10u32 << 20), "{scraped}");
    assert!(scraped.contains("lamina_node_log_rotations_total"), "{scraped}");
    let status = status_json(&state);
    assert_eq!(status["nodes"][0]["state"]["state"], "ready", "{status}");
    // The neighbour's log goes on.
    let before = log_len(&logs.join("ticker-0.log"));
    wait_for("the neighbour to go on", Duration::from_secs(10), || log_len(&logs.join("ticker-0.log")) > before + 5);
}

/// The control plane's peak resident memory (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the control plane runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Six unauthenticated clients each send a 250 MiB module to `POST /v1/modules` at once: each
/// is refused (401) after its headers, and the control plane's peak memory grows by a few MiB,
/// not by the 1.5 GiB they sent.
#[test]
fn unauthenticated_huge_uploads_are_refused_after_their_headers_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let plane = start(&state);
    let address = std::fs::read_to_string(state.join("address")).expect("address").trim().to_owned();
    let fingerprint: [u8; 32] =
        hex::decode(std::fs::read_to_string(state.join("fingerprint")).expect("fingerprint").trim())
            .expect("hex")
            .try_into()
            .expect("32 bytes");
    // Warm up (the first TLS handshakes, the first requests), then take the baseline.
    let tls = lamina_wire::tls_config(&address, fingerprint, None, None).expect("tls");
    let client = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    for _ in 0..3 {
        let _ = client.get(format!("{address}/v1/health")).send().expect("health");
    }
    let before = peak_rss(plane.child.id());
    const SIZE: u64 = 250 << 20;
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                let body = reqwest::blocking::Body::sized(std::io::Read::take(std::io::repeat(0), SIZE), SIZE);
                match client.post(format!("{address}/v1/modules")).body(body).send() {
                    Ok(answer) => assert_eq!(answer.status().as_u16(), 401),
                    // The control plane answered and closed while the body was still coming.
                    Err(e) => assert!(!e.is_timeout(), "{e}"),
                }
            });
        }
    });
    let grown = peak_rss(plane.child.id()).saturating_sub(before);
    assert!(grown < 32 << 20, "the control plane's peak memory grew by {} MiB", grown >> 20);
    // And it still serves.
    let health = client.get(format!("{address}/v1/health")).send().expect("health");
    assert!(health.status().is_success());

    // The refusal comes after the headers, without waiting for the body: a client that
    // announces 250 MiB and sends none of it gets its 401 at once.
    let config = std::sync::Arc::new(lamina_wire::tls_config(&address, fingerprint, None, None).expect("tls"));
    let host = address.trim_start_matches("https://");
    let tcp = std::net::TcpStream::connect(host).expect("connects");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let name = rustls::pki_types::ServerName::try_from("control.lamina").expect("name");
    let mut tls = rustls::StreamOwned::new(rustls::ClientConnection::new(config, name).expect("tls"), tcp);
    let head = format!("POST /v1/modules HTTP/1.1\r\nHost: {host}\r\nContent-Length: {SIZE}\r\n\r\n");
    std::io::Write::write_all(&mut tls, head.as_bytes()).expect("sends the headers");
    let mut answer = [0u8; 64];
    let n = std::io::Read::read(&mut tls, &mut answer).expect("an answer before the body");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

/// A workload blocked in a host call (an hour's sleep) is undeployed: the node is done with it
/// within a second and a heartbeat, stays ready, and keeps serving its neighbour; and SIGTERM
/// ends the node agent within its bound although the sleeper's thread is still asleep.
#[test]
fn undeploying_a_guest_blocked_in_a_host_call_does_not_hang_its_node_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let node_state = dir.path().join("node");
    let (_plane, mut node) = plane_and_node(dir.path(), &[]);
    let manifest = |programs: &[&str]| {
        let app = dir.path().join("app.toml");
        let mut text = String::new();
        for program in programs {
            let module = common::guest(program, common::Wasi::P1);
            text.push_str(&format!("[[workload]]\nname = \"{program}\"\nmodule = \"{}\"\n", module.display()));
        }
        std::fs::write(&app, text).expect("write");
        app
    };
    let app = manifest(&["sleeper", "ticker"]);
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let logs = node_state.join("node/logs");
    wait_for("the sleeper to sleep", Duration::from_secs(60), || {
        std::fs::read_to_string(logs.join("sleeper-0.log")).is_ok_and(|l| l.contains("sleeping"))
    });
    wait_for("both to run", Duration::from_secs(10), || {
        status_json(&state)["nodes"][0]["instances"].as_array().is_some_and(|i| i.len() == 2)
    });

    // The sleeper is undeployed while it sleeps.
    let undeployed = Instant::now();
    assert_code(&cmd(&state, &["undeploy", "sleeper"]), 0);
    wait_for("the node to report the sleeper gone", Duration::from_secs(8), || {
        status_json(&state)["nodes"][0]["instances"].as_array().is_some_and(|i| i.len() == 1)
    });
    // The stop takes at most STOP_WAIT (1 s); the rest is the long poll, a heartbeat (200 ms)
    // and `lamina status`, on a machine that may be busy.
    let took = undeployed.elapsed();
    assert!(took < Duration::from_secs(4), "the node took {took:?} to stop the sleeper");
    let before = log_len(&logs.join("ticker-0.log"));
    wait_for("the neighbour to go on", Duration::from_secs(10), || log_len(&logs.join("ticker-0.log")) > before + 5);
    let status = status_json(&state);
    assert_eq!(status["nodes"][0]["state"]["state"], "ready", "{status}");

    // A sleeper again, then SIGTERM: the agent exits within its bound (5 s).
    let app = manifest(&["sleeper", "ticker"]);
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    wait_for("the sleeper to sleep again", Duration::from_secs(30), || {
        std::fs::read_to_string(logs.join("sleeper-0.log")).is_ok_and(|l| l.matches("sleeping").count() >= 2)
    });
    let signalled = Instant::now();
    assert_code(&output(Command::new("kill").args(["-TERM", &node.0.id().to_string()])), 0);
    let deadline = signalled + Duration::from_secs(7);
    let exited = loop {
        if let Some(status) = node.0.try_wait().expect("waits") {
            break status;
        }
        if Instant::now() > deadline {
            panic!("the node agent did not exit within 7 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exited.code().is_some(), "it exited by itself ({exited:?})");
}

/// A node that cannot start an instance for a reason of its own (here its log directory is a
/// file) says so in its heartbeats: the control plane marks it `degraded` with that reason and
/// leaves the workload unplaced rather than on a node that cannot run it.
#[test]
fn a_node_that_cannot_start_instances_is_degraded_and_gets_no_placements() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let node_state = dir.path().join("node");
    let _running = plane_and_node(dir.path(), &[]);
    // Where the node keeps instance logs, a file: no instance can start.
    let logs = node_state.join("node/logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::write(&logs, "not a directory").expect("write");
    let app = dir.path().join("app.toml");
    let module = common::guest("ticker", common::Wasi::P1);
    std::fs::write(&app, format!("[[workload]]\nname = \"ticker\"\nmodule = \"{}\"\n", module.display()))
        .expect("write");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    wait_for("the node to be degraded", Duration::from_secs(30), || {
        status_json(&state)["nodes"][0]["state"]["state"] == "degraded"
    });
    let status = status_json(&state);
    let reason = status["nodes"][0]["state"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot start ticker/0") && reason.contains("logs"), "{status}");
    wait_for("the workload to be unplaced", Duration::from_secs(10), || {
        status_json(&state)["unplaced"][0]["workload"] == "ticker"
    });
}

/// A raw client of the NATS protocol, to see exactly what the server answers.
struct NatsProbe {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl NatsProbe {
    /// Connects and sends CONNECT, signed with the NKey `seed` when one is given; returns the
    /// probe and the server's answer to the PING that follows (`PONG` or an `-ERR`).
    fn connect(port: u16, seed: Option<&str>) -> (NatsProbe, String) {
        use base64::Engine as _;
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects to nats-server");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut probe =
            NatsProbe { reader: std::io::BufReader::new(stream.try_clone().expect("clone")), writer: stream };
        let info = probe.line();
        assert!(info.starts_with("INFO "), "{info}");
        let info: serde_json::Value = serde_json::from_str(&info[5..]).expect("INFO is JSON");
        let mut connect = serde_json::json!({ "verbose": false, "pedantic": false, "name": "probe" });
        if let Some(seed) = seed {
            let pair = nkeys::KeyPair::from_seed(seed).expect("an NKey seed");
            let nonce = info["nonce"].as_str().expect("the server sends a nonce to sign");
            let signature = pair.sign(nonce.as_bytes()).expect("signs");
            connect["nkey"] = pair.public_key().into();
            connect["sig"] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature).into();
        }
        let answer = probe.send(&format!("CONNECT {connect}\r\n"));
        (probe, answer)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        match std::io::BufRead::read_line(&mut self.reader, &mut line) {
            Ok(0) => "EOF".into(),
            Ok(_) => line.trim_end().to_owned(),
            Err(e) => format!("read error: {e}"),
        }
    }

    /// Sends `command` and a PING; the server's answer: its error if it refused, else `PONG`
    /// (or `EOF` when it closed the connection).
    fn send(&mut self, command: &str) -> String {
        use std::io::Write as _;
        if let Err(e) = self.writer.write_all(format!("{command}PING\r\n").as_bytes()) {
            return format!("write error: {e}");
        }
        let mut refused = None;
        loop {
            let line = self.line();
            if line.starts_with("-ERR") {
                refused.get_or_insert(line);
            } else if line == "PONG" || line == "EOF" || line.contains("error") {
                return refused.unwrap_or(line);
            }
        }
    }
}

/// The NATS server admits only the control plane's enrolled nodes, each with the NKey it was
/// issued at enrolment and allowed only the subjects of the instances placed on it; an outsider
/// is refused, and a removed node's credentials stop working, also on a connection it holds.
#[test]
fn an_outsider_or_a_removed_node_cannot_use_the_continuums_nats_and_a_node_only_its_instances_subjects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let url = format!("nats://127.0.0.1:{port}");
    let users = dir.path().join("nats-users.conf");
    let pid = dir.path().join("nats.pid");
    std::fs::write(
        dir.path().join("nats.conf"),
        format!("listen: 127.0.0.1:{port}\npid_file: \"{}\"\ninclude \"nats-users.conf\"\n", pid.display()),
    )
    .expect("write");

    // Without --nats-users the control plane refuses --nats, unless told it is dangerous.
    let refused =
        output(lamina().args(["control", "--danger-dev-allow-any-sim-node", "--nats", &url, "--state"]).arg(&state));
    assert_code(&refused, 2);
    assert!(texts(&refused).1.contains("--nats needs --nats-users FILE"), "{}", texts(&refused).1);

    // The control plane writes the users file before the server starts (its configuration
    // includes it), and signals the server on every change from then on.
    let _plane = start_control(
        &state,
        &[
            "--danger-dev-allow-any-sim-node",
            "--listen",
            "127.0.0.1:0",
            "--nats",
            &url,
            "--nats-users",
            users.to_str().expect("utf-8"),
            "--nats-pid-file",
            pid.to_str().expect("utf-8"),
        ],
    );
    assert!(users.exists(), "the users file is written at start");
    let _nats = ControlPlane {
        child: Command::new("nats-server")
            .arg("-c")
            .arg(dir.path().join("nats.conf"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts (scripts/setup.sh installs it)"),
    };
    wait_for("nats-server", Duration::from_secs(10), || {
        pid.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // An outsider is refused.
    let (_, answer) = NatsProbe::connect(port, None);
    assert!(answer.contains("Authorization Violation"), "an outsider got: {answer}");
    let forged = nkeys::KeyPair::new_user().seed().expect("seed");
    let (_, answer) = NatsProbe::connect(port, Some(&forged));
    assert!(answer.contains("Authorization Violation"), "an unknown key got: {answer}");

    // A node enrols and gets its NATS user; two workloads on it exchange messages through the
    // server with it.
    let token = texts(&cmd(&state, &["token", "create"])).0.trim().to_owned();
    let node_state = dir.path().join("node");
    let node = Process(
        Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["node", "-v", "--name", "edge-1", "--platform", "sim", "--heartbeat", "200ms"])
            .args(["--join", &token, "--state"])
            .arg(&node_state)
            .stderr(std::fs::File::create(dir.path().join("node.log")).expect("log"))
            .spawn()
            .expect("lamina node starts"),
    );
    wait_for("the node to enrol", Duration::from_secs(30), || {
        status_json(&state)["nodes"][0]["state"]["state"] == "ready"
    });
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node_state.join("node/node.json")).expect("node.json")).expect("JSON");
    let seed = identity["nats_seed"].as_str().expect("the node was issued NATS credentials").to_owned();
    // Nothing is placed on it yet: it may use no subject.
    let (mut probe, answer) = NatsProbe::connect(port, Some(&seed));
    assert_eq!(answer, "PONG");
    let answer = probe.send("SUB lamina.sensors.x 1\r\n");
    assert!(answer.contains("Permissions Violation for Subscription"), "{answer}");

    let app = dir.path().join("sensors.toml");
    std::fs::write(
        &app,
        format!(
            "[[workload]]\nname = \"sensor-filter\"\nmodule = \"{}\"\ntopics = [\"sensors.>\"]\n\n\
             [[workload]]\nname = \"aggregate\"\nmodule = \"{}\"\ntopics = [\"sensors.>\"]\n\
             sealed = [\"/data\"]\n",
            common::example_for("services", "sensor-filter", "wasm32-wasip2").display(),
            common::example_for("services", "aggregate", "wasm32-wasip2").display(),
        ),
    )
    .expect("write");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let node_log = dir.path().join("node.log");
    wait_for_or("readings to reach the aggregate through NATS", Duration::from_secs(60), &node_log, || {
        texts(&cmd(&state, &["logs", "aggregate"])).0.contains("aggregate: edge-1 n=")
    });

    // Its user may use its instances' subjects, and no other.
    let (mut probe, answer) = NatsProbe::connect(port, Some(&seed));
    assert_eq!(answer, "PONG");
    assert_eq!(probe.send("SUB lamina.sensors.edge-9 1\r\n"), "PONG");
    let answer = probe.send("SUB lamina.> 2\r\n");
    assert!(answer.contains("Permissions Violation for Subscription to \"lamina.>\""), "{answer}");
    let answer = probe.send("PUB lamina.billing.x 2\r\nhi\r\n");
    assert!(answer.contains("Permissions Violation for Publish to \"lamina.billing.x\""), "{answer}");
    let answer = probe.send("SUB _INBOX.> 3\r\n");
    assert!(answer.contains("Permissions Violation"), "{answer}");

    // Removed, its credentials stop working: the connection it holds is closed and a new one
    // is refused.
    drop(node);
    assert_code(&cmd(&state, &["remove-node", "edge-1"]), 0);
    wait_for("the removed node's connection to be closed", Duration::from_secs(10), || {
        let answer = probe.send("");
        answer.contains("Authorization Violation") || answer == "EOF" || answer.contains("error")
    });
    let (_, answer) = NatsProbe::connect(port, Some(&seed));
    assert!(answer.contains("Authorization Violation"), "a removed node got: {answer}");
    assert_eq!(status_json(&state)["nodes"].as_array().map(Vec::len), Some(0));
    let again = cmd(&state, &["remove-node", "edge-1"]);
    assert_code(&again, 125);
    assert!(texts(&again).1.contains("no node `edge-1` is enrolled"), "{}", texts(&again).1);
}

/// A fleet behind one address (an edge site behind NAT) enrolling at once asks for more
/// challenges than one address gets at once (100, then 20 a second): each node that is told
/// "too many challenges" waits as told, with a spread, and every one enrols.
#[test]
fn a_fleet_behind_one_address_enrolling_at_once_is_paced_not_refused() {
    const FLEET: usize = 130;
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let _plane = start_control(&state, &["--danger-dev-allow-any-sim-node", "--listen", "127.0.0.1:0"]);
    let read = |file: &str| std::fs::read_to_string(state.join(file)).expect("state file").trim().to_owned();
    let fingerprint: [u8; 32] = hex::decode(read("fingerprint")).expect("hex").try_into().expect("32 bytes");
    let operator =
        lamina_wire::ControlClient::new(&read("address"), fingerprint, Some(read("admin.token"))).expect("client");
    let tokens: Vec<lamina_types::JoinToken> = (0..FLEET)
        .map(|_| {
            let made: serde_json::Value = operator.post("/v1/tokens", &serde_json::json!({})).expect("a join token");
            made["token"].as_str().expect("token").parse().expect("a join token")
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let enrolled = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let node_state = dir.path().join("nodes").join(format!("n{i}"));
                    let platform = lamina_tee::sim::SimPlatform::open(&node_state.join("sim")).expect("sim platform");
                    let options = lamina_node::NodeOptions {
                        zone: "edge".into(),
                        ..lamina_node::NodeOptions::new(
                            node_state,
                            format!("n{i}"),
                            lamina_types::Target::host().expect("a supported host"),
                        )
                    };
                    lamina_node::enrol(token, &options, &platform).expect("every node of the fleet enrols");
                    enrolled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(enrolled.into_inner(), FLEET);
    assert_eq!(status_json(&state)["nodes"].as_array().map(Vec::len), Some(FLEET));
}

/// An HTTP server on loopback that answers 204 and counts the requests it is sent, for as long
/// as `stop` is not set.
fn counting_upstream() -> (String, Arc<AtomicUsize>, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr").to_string();
    let (served, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let (count, done) = (served.clone(), stop.clone());
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let _ =
                        stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (addr, served, stop, handle)
}

/// A workload's `[workload.network]` rules are what its instances on a node may reach: the
/// workload that lists its upstream reaches it; the same component whose rule names another
/// host is told its request was denied, and its upstream is never contacted.
#[test]
fn a_workloads_network_rules_let_its_instances_reach_what_they_name_and_nothing_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let logs = dir.path().join("node/node/logs");
    let (allowed_addr, allowed_hits, stop_allowed, allowed) = counting_upstream();
    let (denied_addr, denied_hits, stop_denied, denied) = counting_upstream();
    let _running = plane_and_node(dir.path(), &[]);
    let module = common::component("p3-command");
    let app = dir.path().join("app.toml");
    std::fs::write(
        &app,
        format!(
            "[[workload]]\nname = \"allowed\"\nmodule = \"{m}\"\nargs = [\"fetch:http://{allowed_addr}/x\"]\n\
             [workload.network]\nhttp = [\"http://{allowed_addr}\"]\n\n\
             [[workload]]\nname = \"denied\"\nmodule = \"{m}\"\nargs = [\"fetch:http://{denied_addr}/x\"]\n\
             [workload.network]\nhttp = [\"http://{allowed_addr}\"]\n",
            m = module.display()
        ),
    )
    .expect("write");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let log = |name: &str| std::fs::read_to_string(logs.join(format!("{name}-0.log"))).unwrap_or_default();
    wait_for_or("the allowed request", Duration::from_secs(90), &logs.join("allowed-0.log"), || {
        log("allowed").contains("status 204")
    });
    wait_for_or("the denied request", Duration::from_secs(30), &logs.join("denied-0.log"), || {
        log("denied").contains("HttpRequestDenied")
    });
    assert!(allowed_hits.load(Ordering::Relaxed) >= 1);
    assert_eq!(denied_hits.load(Ordering::Relaxed), 0, "the denied workload's upstream was never contacted");
    for (stop, thread) in [(stop_allowed, allowed), (stop_denied, denied)] {
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("upstream");
    }
}

/// The address of the ingress of the node serving `workload`, once the control plane has its
/// endpoint (the node listens on port 0 and reports where it listens: no port is guessed).
fn ingress_of(state: &Path, workload: &str) -> std::net::SocketAddr {
    let mut url = String::new();
    wait_for("the workload's endpoint", Duration::from_secs(90), || {
        let status = status_json(state);
        let found = status["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["workload"] == workload)
            .and_then(|e| e["url"].as_str().map(str::to_owned));
        url = found.unwrap_or_default();
        !url.is_empty()
    });
    url.trim_start_matches("https://").parse().expect("the ingress's address")
}

/// A request over attested TLS to a node's ingress, as a relying party makes it: the server's
/// certificate is appraised against `allow_sim = true` in the handshake, and with `route` it
/// must declare what serves the path (a refused handshake answers status 0). The status, the
/// body, and the certificate the server presented.
fn attested_get(addr: std::net::SocketAddr, server_name: &str, path: &str, route: bool) -> (u16, String, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let mut anchors = lamina_attest::TrustAnchors::default();
    let policy = lamina_attest::Policy::parse("allow_sim = true\n", Path::new("."), &mut anchors).expect("policy");
    let mut verifier =
        lamina_attest::ratls::AttestedServerVerifier::new(lamina_attest::Verifier::new(Some(policy), anchors));
    if route {
        verifier = verifier.for_destination(lamina_attest::ratls::Destination {
            host: Some(server_name.to_owned()),
            path: path.to_owned(),
        });
    }
    let mut config = lamina_attest::ratls::relying_party_config(verifier).expect("tls");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).expect("a server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let socket = std::net::TcpStream::connect(addr).expect("connects");
    socket.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, socket);
    if write!(tls, "GET {path} HTTP/1.0\r\nHost: {server_name}\r\n\r\n").and_then(|()| tls.flush()).is_err() {
        return (0, String::new(), Vec::new());
    }
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let Some(cert) = tls.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()) else {
        return (0, String::new(), Vec::new());
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body, cert)
}

/// An HTTP workload on a node with `--ingress`: served over TLS whose certificate the node's
/// platform attests and which declares the module behind each route (the module uploaded, by
/// its hash); `lamina verify --url` accepts it; a path no workload serves is a 404; once
/// undeployed its route is gone and the certificate no longer declares it.
#[test]
fn a_node_serves_an_http_workload_on_its_attested_ingress_until_it_is_undeployed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let _running = plane_and_node(dir.path(), &["--ingress", "127.0.0.1:0", "--metrics", &metrics.to_string()]);
    let module = common::component("p3-service");
    let module_hash = lamina_types::ModuleHash::of(&std::fs::read(&module).expect("the component"));
    let app = dir.path().join("app.toml");
    std::fs::write(
        &app,
        format!("[[workload]]\nname = \"web\"\nmodule = \"{}\"\n[workload.http]\nroutes = [\"/\"]\n", module.display()),
    )
    .expect("write");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let ingress = ingress_of(&state, "web");
    let mut answer = (0, String::new(), Vec::new());
    wait_for_or(
        "the workload to answer on the ingress",
        Duration::from_secs(90),
        &dir.path().join("node/node/logs/web-0.log"),
        || {
            answer = attested_get(ingress, "edge.example", "/", true);
            answer.0 == 200
        },
    );
    assert_eq!(answer.1, "hello from WASI 0.3\n");
    // The node counts what its ingress answered, beside its own metrics.
    let scraped = {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(metrics).expect("metrics");
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("asks");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("reads");
        text
    };
    assert!(scraped.contains("lamina_node_http_requests_total{status=\"200\"}"), "{scraped}");
    assert!(scraped.contains("lamina_node_instances"), "{scraped}");
    // The control plane says where it is served.
    wait_for("the endpoint to be running", Duration::from_secs(30), || {
        status_json(&state)["endpoints"][0]["running"] == true
    });
    let status = status_json(&state);
    assert_eq!(status["endpoints"][0]["url"], format!("https://{ingress}"), "{status}");
    assert_eq!(status["endpoints"][0]["node"], "edge-1");
    let table = texts(&cmd(&state, &["status"])).0;
    assert!(table.contains("ENDPOINT") && table.contains(&format!("https://{ingress}")), "{table}");
    // What the certificate declares: this route runs the module that was deployed.
    let evidence = lamina_attest::ratls::parse_extension(&answer.2).expect("an attested certificate");
    let table = evidence.served_table().expect("a table of served endpoints").expect("well-formed");
    let endpoint = table.endpoint_for(Some("edge.example"), "/").expect("the route's endpoint");
    assert_eq!(endpoint.module, module_hash);
    assert_eq!(endpoint.workload.as_str(), "web");
    // A relying party's command accepts the node.
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "allow_sim = true\n").expect("write");
    let verified = output(lamina().args(["verify", "--url", &format!("https://{ingress}/"), "--policy"]).arg(&policy));
    assert_code(&verified, 0);
    assert!(texts(&verified).0.contains("ratls.route"), "{}", texts(&verified).0);
    // A policy that lists the deployed module accepts the route; one listing another refuses it
    // in the handshake, before anything is sent.
    std::fs::write(&policy, format!("allow_sim = true\nmodule_hashes = [\"{module_hash}\"]\n")).expect("write");
    let url = format!("https://{ingress}/");
    assert_code(&output(lamina().args(["verify", "--url", &url, "--policy"]).arg(&policy)), 0);
    let other = lamina_types::ModuleHash::of(b"another module");
    std::fs::write(&policy, format!("allow_sim = true\nmodule_hashes = [\"{other}\"]\n")).expect("write");
    let refused = output(lamina().args(["verify", "--url", &url, "--policy"]).arg(&policy));
    assert_code(&refused, 1);
    assert!(texts(&refused).0.contains("is not in module_hashes"), "{}", texts(&refused).0);
    // The device example posts a reading once the route's module passes its policy, and sends
    // nothing to an endpoint whose module it does not trust.
    std::fs::write(&policy, format!("allow_sim = true\nmodule_hashes = [\"{module_hash}\"]\n")).expect("write");
    let device = common::host_example("device");
    let reading = r#"{"sensor":"s1","celsius":21.5}"#;
    let posted = output(Command::new(&device).arg("--policy").arg(&policy).arg(format!("{url}echo")).arg(reading));
    assert_code(&posted, 0);
    let said = texts(&posted).0;
    assert!(said.contains("verified: ") && said.contains("workload web"), "{said}");
    assert!(said.contains(&format!("200 {reading}")), "{said}");
    std::fs::write(&policy, format!("allow_sim = true\nmodule_hashes = [\"{other}\"]\n")).expect("write");
    let refused = output(Command::new(&device).arg("--policy").arg(&policy).arg(format!("{url}echo")).arg(reading));
    assert_code(&refused, 2);
    assert!(texts(&refused).1.contains("before sending anything"), "{}", texts(&refused).1);
    // Undeployed: the route goes, and the certificate says so (a connection made before the
    // certificate was reissued may still see the old one, with the route already gone).
    assert_code(&cmd(&state, &["undeploy", "web"]), 0);
    wait_for("the route and its declaration to go", Duration::from_secs(30), || {
        answer = attested_get(ingress, "edge.example", "/", false);
        let declared = lamina_attest::ratls::parse_extension(&answer.2)
            .ok()
            .and_then(|e| e.served_table())
            .and_then(Result::ok)
            .is_none_or(|t| !t.endpoints.is_empty());
        answer.0 == 404 && !declared
    });
    // A client that names where it goes is refused in the handshake: nothing declares the route.
    assert_eq!(attested_get(ingress, "edge.example", "/", true).0, 0);
}

/// A workload asking for an attested endpoint of its own (`attestation = "instance"`) is given
/// a certificate for its host whose evidence names its module, chosen by the name the client
/// asks for; other names get the node's certificate, which declares the table. An HTTP workload
/// is not placed on a node without `--ingress`, and the reason says so.
#[test]
fn an_instance_attested_endpoint_has_a_certificate_of_its_own_and_a_node_without_ingress_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let _running = plane_and_node(dir.path(), &["--ingress", "127.0.0.1:0"]);
    let module = common::component("p3-service");
    let module_hash = lamina_types::ModuleHash::of(&std::fs::read(&module).expect("the component"));
    let app = dir.path().join("app.toml");
    std::fs::write(
        &app,
        format!(
            "[[workload]]\nname = \"api\"\nmodule = \"{}\"\n[workload.http]\nroutes = [\"/\"]\nhost = \"api.example\"\n\
             attestation = \"instance\"\n",
            module.display()
        ),
    )
    .expect("write");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let ingress = ingress_of(&state, "api");
    let mut answer = (0, String::new(), Vec::new());
    wait_for("the workload to answer on its host", Duration::from_secs(90), || {
        answer = attested_get(ingress, "api.example", "/", true);
        answer.0 == 200
    });
    let evidence = lamina_attest::ratls::parse_extension(&answer.2).expect("an attested certificate");
    assert!(evidence.served_table().is_none(), "the instance's own certificate");
    let lamina_attest::ratls::RatlsPayload::Lamina(envelope) = &evidence.extension.payload else {
        panic!("Lamina evidence")
    };
    let claims = envelope.decode_claims().expect("claims");
    assert_eq!(claims.module_hash, Some(module_hash), "its evidence names its module");
    // Another name: the node's certificate, and no workload for that host.
    let other = attested_get(ingress, "other.example", "/", false);
    assert_eq!(other.0, 404);
    let table = lamina_attest::ratls::parse_extension(&other.2)
        .expect("an attested certificate")
        .served_table()
        .expect("the node's table")
        .expect("well-formed");
    assert_eq!(table.endpoints.len(), 1);

    // A second node without an ingress, the only one in zone `far`: the workload is not placed
    // there, and the control plane says why.
    let token = texts(&cmd(&state, &["token", "create"])).0.trim().to_owned();
    let _far = Process(
        Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["node", "--name", "far-1", "--platform", "sim", "--heartbeat", "200ms", "--zone", "far"])
            .args(["--join", &token, "--state"])
            .arg(dir.path().join("far"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("lamina node starts"),
    );
    std::fs::write(
        &app,
        format!(
            "[[workload]]\nname = \"far-web\"\nmodule = \"{}\"\n[workload.http]\nroutes = [\"/far\"]\n\
             [workload.constraints]\nzones = [\"far\"]\n",
            module.display()
        ),
    )
    .expect("write");
    wait_for("the second node to enrol", Duration::from_secs(30), || {
        status_json(&state)["nodes"].as_array().is_some_and(|n| n.len() == 2)
    });
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let status = status_json(&state);
    let unplaced = &status["unplaced"][0];
    assert_eq!(unplaced["workload"], "far-web", "{status}");
    assert_eq!(unplaced["reason"], "no node in zone far serves HTTP (start nodes with --ingress ADDR)", "{status}");
    assert!(status["nodes"].as_array().is_some_and(|n| n.iter().all(|n| n["degraded"].is_null())), "{status}");
}

/// A node serving an HTTP workload is lost in the middle of a request: the client's request
/// fails (it is not answered by anything else), the endpoint moves with the replica to the other
/// node with an ingress, and a client that resolves it again is served there, its certificate
/// declaring the same module.
#[test]
fn an_endpoint_moves_with_its_replica_when_its_node_is_lost_mid_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let _plane = start_control(&state, &["--danger-dev-allow-any-sim-node", "--listen", "127.0.0.1:0"]);
    let token = || texts(&cmd(&state, &["token", "create"])).0.trim().to_owned();
    let node = |name: &str| {
        Process(
            Command::new(env!("CARGO_BIN_EXE_lamina"))
                .args(["node", "--name", name, "--platform", "sim", "--heartbeat", "200ms"])
                .args(["--ingress", "127.0.0.1:0", "--join", &token(), "--state"])
                .arg(dir.path().join(name))
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("lamina node starts"),
        )
    };
    let mut nodes = [("edge-1", Some(node("edge-1"))), ("edge-2", Some(node("edge-2")))];
    wait_for("both nodes to enrol", Duration::from_secs(30), || {
        status_json(&state)["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["state"]["state"] == "ready"))
    });
    let module = common::component("p3-service");
    let module_hash = lamina_types::ModuleHash::of(&std::fs::read(&module).expect("the component"));
    let app = dir.path().join("app.toml");
    std::fs::write(
        &app,
        format!("[[workload]]\nname = \"web\"\nmodule = \"{}\"\n[workload.http]\nroutes = [\"/\"]\n", module.display()),
    )
    .expect("write");
    assert_code(&cmd(&state, &["deploy", app.to_str().expect("utf-8")]), 0);
    let first = ingress_of(&state, "web");
    let serving = status_json(&state)["endpoints"][0]["node"].as_str().expect("a node").to_owned();
    wait_for("the first node to answer", Duration::from_secs(60), || {
        attested_get(first, "edge.example", "/", true).0 == 200
    });

    // A request in flight (the guest answers after a second) when its node goes.
    let slow = std::thread::spawn(move || attested_get(first, "edge.example", "/sleep", true));
    std::thread::sleep(Duration::from_millis(300));
    let at = nodes.iter().position(|(name, _)| *name == serving).expect("the serving node");
    drop(nodes[at].1.take());
    let (status, _, _) = slow.join().expect("the client");
    assert_ne!(status, 200, "the request did not complete on a node that was killed");

    // The endpoint moves with the replica; resolved again, the workload answers there.
    let mut moved = first;
    wait_for("the endpoint to move", Duration::from_secs(30), || {
        let status = status_json(&state);
        let endpoint = &status["endpoints"][0];
        let ok = endpoint["node"].as_str().is_some_and(|n| n != serving);
        if ok {
            moved =
                endpoint["url"].as_str().unwrap_or_default().trim_start_matches("https://").parse().unwrap_or(first);
        }
        ok && moved != first
    });
    let mut answer = (0, String::new(), Vec::new());
    wait_for("the workload to answer on the other node", Duration::from_secs(60), || {
        answer = attested_get(moved, "edge.example", "/", true);
        answer.0 == 200
    });
    let table = lamina_attest::ratls::parse_extension(&answer.2)
        .expect("an attested certificate")
        .served_table()
        .expect("a table")
        .expect("well-formed");
    assert_eq!(table.endpoint_for(None, "/").map(|e| e.module), Some(module_hash));
    // The old address answers nothing.
    assert!(std::net::TcpStream::connect_timeout(&first, Duration::from_secs(2)).is_err());
}
