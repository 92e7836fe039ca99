//! A replicated control plane: two `lamina control` replicas keep their state in a three-member
//! etcd cluster on loopback (Debian's etcd-server, installed by scripts/setup.sh). One leads
//! and serves; the other stands by. The test:
//! 1. enrols a node through the leader and deploys to it;
//! 2. kills the leader (SIGKILL): within 20 s the other replica serves with the same state
//!    (node, deployment, secrets, the same key, so the join token's pin holds), the node turns
//!    to it on its own and its instance is never restarted; a new deployment reaches the node;
//!    a module of 2.5 MiB that the first replica stored (in chunks: etcd refuses requests over
//!    1.5 MiB) is read back and compiled by the second for a new node;
//! 3. kills the etcd leader: within 20 s the control plane writes again (a deployment lands)
//!    and has lost nothing;
//! 4. restarts the first replica, which stands by;
//! 5. starts a replica with another cluster key, which is refused at start.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_code, lamina, output, texts};
use serde_json::Value;

/// How long a failover may take (the lease is 5 s; nodes retry every heartbeat).
const FAILOVER: Duration = Duration::from_secs(20);

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

struct Etcd {
    members: Vec<Option<Process>>,
    clients: Vec<u16>,
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        let (clients, peers): (Vec<u16>, Vec<u16>) = (0..3).map(|_| (free_port(), free_port())).unzip();
        let cluster: Vec<String> =
            peers.iter().enumerate().map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}")).collect();
        let members = (0..3)
            .map(|i| {
                let log = std::fs::File::create(dir.join(format!("etcd-{i}.log"))).expect("log");
                let child = Command::new("etcd")
                    .args(["--name", &format!("m{i}")])
                    .arg("--data-dir")
                    .arg(dir.join(format!("etcd-{i}")))
                    .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", clients[i])])
                    .args(["--advertise-client-urls", &format!("http://127.0.0.1:{}", clients[i])])
                    .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", peers[i])])
                    .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", peers[i])])
                    .args(["--initial-cluster", &cluster.join(",")])
                    .args(["--initial-cluster-state", "new", "--initial-cluster-token", "lamina-test"])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("etcd runs (scripts/setup.sh installs Debian's etcd-server)");
                Some(Process(child))
            })
            .collect();
        let etcd = Etcd { members, clients };
        wait_for("the etcd cluster to elect a leader", Duration::from_secs(30), || etcd.leader().is_some());
        etcd
    }

    fn url(&self) -> String {
        let list: Vec<String> = self.clients.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("etcd://{}", list.join(","))
    }

    /// The index of the member that leads, as the members say.
    fn leader(&self) -> Option<usize> {
        let endpoints: Vec<String> = self
            .clients
            .iter()
            .enumerate()
            .filter(|(i, _)| self.members[*i].is_some())
            .map(|(_, p)| format!("http://127.0.0.1:{p}"))
            .collect();
        let out = output(
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &endpoints.join(","), "endpoint", "status", "--write-out", "json"])
                .args(["--command-timeout", "2s"]),
        );
        let statuses: Value = serde_json::from_str(&texts(&out).0).ok()?;
        statuses.as_array()?.iter().find_map(|s| {
            let status = &s["Status"];
            (status["header"]["member_id"] == status["leader"] && status["leader"] != 0)
                .then(|| s["Endpoint"].as_str())
                .flatten()
                .and_then(|e| self.clients.iter().position(|p| e.ends_with(&format!(":{p}"))))
        })
    }
}

struct Replica {
    state: PathBuf,
    listen: u16,
}

impl Replica {
    fn start(&self, etcd: &Etcd, key: &Path, log: &Path) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args([
                "control",
                "-v",
                "--danger-dev-allow-any-sim-node",
                "--listen",
                &format!("127.0.0.1:{}", self.listen),
                "--lost-after",
                "10s",
            ])
            .arg("--state")
            .arg(&self.state)
            .args(["--store", &etcd.url()])
            .arg("--cluster-key")
            .arg(key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("lamina control starts");
        Process(child)
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.listen)
    }

    fn serving(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.listen)).is_ok()
    }
}

/// `lamina` with an operator's view of the replica whose state directory is `state`.
fn cli(state: &Path, args: &[&str]) -> std::process::Output {
    output(lamina().args(args).arg("--control-state").arg(state).env_remove("LAMINA_ADMIN_TOKEN"))
}

fn status(state: &Path) -> Value {
    serde_json::from_str(&texts(&cli(state, &["status", "--format", "json"])).0).unwrap_or(Value::Null)
}

/// A manifest of one ticker workload; with `padding`, its module carries a custom section of
/// that many bytes (a module over etcd's request limit is stored in chunks).
fn manifest(dir: &Path, name: &str, padding: usize) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let mut wasm = std::fs::read(common::guest("ticker", common::Wasi::P2)).expect("the ticker guest");
    if padding > 0 {
        let mut section = vec![7u8];
        section.extend_from_slice(b"padding");
        section.resize(section.len() + padding, 0x5a);
        wasm.push(0);
        let mut len = section.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            wasm.push(if len == 0 { byte } else { byte | 0x80 });
            if len == 0 {
                break;
            }
        }
        wasm.extend_from_slice(&section);
    }
    let module = dir.join(format!("{name}.wasm"));
    std::fs::write(&module, wasm).expect("write");
    std::fs::write(&path, format!("[[workload]]\nname = \"{name}\"\nmodule = \"{}\"\n", module.display()))
        .expect("write");
    path
}

/// The instances every node reports.
fn instances(s: &Value) -> Vec<Value> {
    s["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["instances"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn running(s: &Value, workload: &str) -> bool {
    instances(s).iter().any(|i| i["workload"] == workload && i["state"] == "running")
}

fn restarts(s: &Value, workload: &str) -> u64 {
    instances(s).iter().find(|i| i["workload"] == workload).and_then(|i| i["restarts"].as_u64()).unwrap_or(u64::MAX)
}

#[test]
fn a_replicated_control_plane_survives_its_leader_and_the_etcd_leader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut etcd = Etcd::start(dir.path());
    let key = dir.path().join("cluster.key");
    let a = Replica { state: dir.path().join("a"), listen: free_port() };
    let b = Replica { state: dir.path().join("b"), listen: free_port() };
    let mut a_process = Some(a.start(&etcd, &key, &dir.path().join("a.log")));
    wait_for("replica a to lead", Duration::from_secs(30), || a.serving() && a.state.join("address").exists());
    let _b_process = b.start(&etcd, &key, &dir.path().join("b.log"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!b.serving(), "the second replica stands by while the first leads");

    // 1. A node enrols through the leader; a workload with a secret runs on it.
    let secret = dir.path().join("api-token");
    std::fs::write(&secret, "s3cret").expect("write");
    assert_code(&cli(&a.state, &["secret", "set", "api-token", secret.to_str().expect("utf-8")]), 0);
    let token = texts(&cli(&a.state, &["token", "create"])).0.trim().to_owned();
    let node_state = dir.path().join("node");
    let _node = Process(
        Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["node", "-v", "--name", "edge-1", "--platform", "sim", "--heartbeat", "500ms", "--state"])
            .arg(&node_state)
            .args(["--join", &token])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("node.log")).expect("log"))
            .spawn()
            .expect("lamina node starts"),
    );
    // Its module is 2.5 MiB larger than the ticker: etcd keeps it in chunks.
    let first = manifest(dir.path(), "first", 5 << 19);
    wait_for("the node to enrol", Duration::from_secs(30), || {
        status(&a.state)["nodes"][0]["state"]["state"] == "ready"
    });
    assert_code(&cli(&a.state, &["deploy", first.to_str().expect("utf-8")]), 0);
    wait_for("the first workload to run", Duration::from_secs(60), || running(&status(&a.state), "first"));
    // The node learns where both replicas are.
    let identity = node_state.join("node/node.json");
    wait_for("the node to learn the replicas", Duration::from_secs(20), || {
        std::fs::read_to_string(&identity).is_ok_and(|t| t.contains(&a.url()) && t.contains(&b.url()))
    });
    let log = node_state.join("node/logs/first-0.log");
    let ticks = |log: &Path| std::fs::read_to_string(log).map_or(0, |t| t.matches("tick").count());

    // 2. The leader dies: the other replica takes over with the same state.
    drop(a_process.take());
    let took = wait_for("replica b to serve", FAILOVER, || b.serving() && b.state.join("address").exists());
    eprintln!("replica b served {took:?} after replica a was killed");
    assert_eq!(
        std::fs::read_to_string(a.state.join("fingerprint")).expect("a's fingerprint"),
        std::fs::read_to_string(b.state.join("fingerprint")).expect("b's fingerprint"),
        "the replicas share one key: tokens and nodes' pins hold"
    );
    let listed = texts(&cli(&b.state, &["secret", "list"])).0;
    assert!(listed.contains("api-token"), "{listed}");
    wait_for("the node to report to replica b", FAILOVER, || {
        let s = status(&b.state);
        s["nodes"][0]["state"]["state"] == "ready" && running(&s, "first")
    });
    let before = ticks(&log);
    wait_for("the instance to keep running", Duration::from_secs(10), || ticks(&log) > before);
    assert_eq!(restarts(&status(&b.state), "first"), 0, "nothing restarted");
    let second = manifest(dir.path(), "second", 0);
    assert_code(&cli(&b.state, &["deploy", second.to_str().expect("utf-8")]), 0);
    wait_for("the second workload to run", Duration::from_secs(60), || running(&status(&b.state), "second"));
    // Replica b reads the chunked module back and compiles it for a node that has none.
    let _fresh = Process(
        Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["node", "--name", "edge-2", "--zone", "fresh", "--platform", "sim", "--heartbeat", "500ms"])
            .arg("--state")
            .arg(dir.path().join("node-2"))
            .args(["--join", texts(&cli(&b.state, &["token", "create"])).0.trim()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lamina node starts"),
    );
    let big = dir.path().join("big.toml");
    let module = dir.path().join("first.wasm");
    std::fs::write(
        &big,
        format!(
            "[[workload]]\nname = \"big\"\nmodule = \"{}\"\n[workload.constraints]\nzones = [\"fresh\"]\n",
            module.display()
        ),
    )
    .expect("write");
    assert_code(&cli(&b.state, &["deploy", big.to_str().expect("utf-8")]), 0);
    let big_log = dir.path().join("node-2/node/logs/big-0.log");
    wait_for("the chunked module to run on the new node", Duration::from_secs(60), || ticks(&big_log) > 0);

    // 3. The etcd leader dies: the cluster elects another; the control plane writes again.
    let leader = etcd.leader().expect("an etcd leader");
    drop(etcd.members[leader].take());
    let third = manifest(dir.path(), "third", 0);
    let took = wait_for("a deployment to land after the etcd leader died", FAILOVER, || {
        cli(&b.state, &["deploy", third.to_str().expect("utf-8")]).status.success()
    });
    eprintln!("a deployment landed {took:?} after the etcd leader was killed");
    wait_for("the third workload to run", Duration::from_secs(60), || running(&status(&b.state), "third"));
    let s = status(&b.state);
    assert!(running(&s, "first") && running(&s, "second"), "{s}");
    assert_eq!(restarts(&s, "first"), 0, "nothing restarted: {s}");

    // 4. The first replica comes back and stands by.
    let _a_again = a.start(&etcd, &key, &dir.path().join("a-again.log"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!a.serving(), "a replica that comes back stands by");
    assert!(b.serving());

    // 5. A replica given another cluster key is refused at start.
    let c = Replica { state: dir.path().join("c"), listen: free_port() };
    let other_key = dir.path().join("other.key");
    let mut wrong = c.start(&etcd, &other_key, &dir.path().join("c.log"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = wrong.0.try_wait().expect("wait") {
            break code;
        }
        assert!(Instant::now() < deadline, "a replica with another cluster key kept running");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!code.success());
    let log = std::fs::read_to_string(dir.path().join("c.log")).expect("log");
    assert!(log.contains("give every replica the same --cluster-key"), "{log}");
}
