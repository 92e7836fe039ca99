//! A replicated control plane: two `lamina control` replicas keep their state in a three-member
//! etcd cluster on loopback (Debian's etcd-server, installed by scripts/setup.sh) that serves
//! clients and peers over TLS and admits only clients with a certificate of its CA; each replica
//! has its own (`--etcd-ca`, `--etcd-cert`, `--etcd-key`). One leads and serves; the other
//! stands by. Replicas get the cluster key from each other over mutually attested TLS (no key
//! file). The first test:
//! 1. enrols a node through the leader and deploys to it;
//! 2. kills the leader (SIGKILL): within 20 s the other replica serves with the same state
//!    (node, deployment, secrets, the same key, so the join token's pin holds), the node turns
//!    to it on its own and its instance is never restarted; a new deployment reaches the node;
//!    a module of 2.5 MiB that the first replica stored (in chunks: etcd refuses requests over
//!    1.5 MiB) is read back and compiled by the second for a new node;
//! 3. kills the etcd leader: within 20 s the control plane writes again (a deployment lands)
//!    and has lost nothing;
//! 4. restarts the first replica, which stands by;
//! 5. starts a replica with another cluster key file, which is refused at start.
//!
//! Another shows that the serving replica gives the cluster key only to evidence that passes its
//! replica policy, and that a replica refuses a serving replica its own policy does not accept.
//! The others show that etcd's state is closed to clients without a certificate of its CA
//! (etcdctl, and replicas given the wrong certificate or CA), and that a replica without TLS
//! settings is refused at start unless it asks for plain HTTP with `--danger-etcd-plaintext`.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd::{Ca, Cluster, Security, free_port, wait_for};
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

struct Replica {
    state: PathBuf,
    listen: u16,
    /// How it reaches etcd (`--etcd-ca`, `--etcd-cert`, `--etcd-key`).
    etcd_flags: Vec<OsString>,
}

impl Replica {
    fn new(dir: &Path, name: &str, ca: &Ca) -> Replica {
        let client = ca.issue(&format!("replica-{name}"));
        Replica { state: dir.join(name), listen: free_port(), etcd_flags: ca.replica_flags(&client) }
    }

    /// Starts it; it gets the cluster key over attested TLS (the development replica policy).
    fn start(&self, etcd: &Cluster, log: &Path) -> Process {
        self.start_with(etcd, &[], log)
    }

    /// Starts it with more flags (a replica policy, a cluster key file).
    fn start_with(&self, etcd: &Cluster, extra: &[&std::ffi::OsStr], log: &Path) -> Process {
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
            .args(&self.etcd_flags)
            .args(extra)
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
    let ca = Ca::new(dir.path(), "etcd");
    let mut etcd = Cluster::start(dir.path(), 3, Security::Tls(&ca));
    let a = Replica::new(dir.path(), "a", &ca);
    let b = Replica::new(dir.path(), "b", &ca);
    let mut a_process = Some(a.start(&etcd, &dir.path().join("a.log")));
    wait_for("replica a to lead", Duration::from_secs(30), || a.serving() && a.state.join("address").exists());
    let _b_process = b.start(&etcd, &dir.path().join("b.log"));
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
    let _a_again = a.start(&etcd, &dir.path().join("a-again.log"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!a.serving(), "a replica that comes back stands by");
    assert!(b.serving());

    // 5. A replica given another cluster key is refused at start.
    let c = Replica::new(dir.path(), "c", &ca);
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, "11".repeat(32)).expect("write");
    let flags = [std::ffi::OsStr::new("--cluster-key"), other_key.as_os_str()];
    let (code, log) = refused(c.start_with(&etcd, &flags, &dir.path().join("c.log")), &dir.path().join("c.log"));
    assert!(!code.success());
    assert!(log.contains("another cluster's"), "{log}");
    // The replicas got the cluster key without a file: each keeps it sealed to its platform.
    assert!(a.state.join("cluster-key.sealed").exists() && b.state.join("cluster-key.sealed").exists());
}

/// The attack: a process that can produce evidence (a node of the same continuum, say, on a sim
/// platform of its own) asks the serving replica for the cluster key, which opens every key and
/// secret in etcd. The serving replica gives it only to evidence that passes its replica policy,
/// here one that names the sim CA the two real replicas share; and a replica whose policy does
/// not accept the serving replica's evidence refuses to take the key from it.
#[test]
fn a_replica_whose_evidence_fails_the_replica_policy_is_not_given_the_cluster_key() {
    use p256::pkcs8::EncodePrivateKey as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new(dir.path(), "etcd");
    let etcd = Cluster::start(dir.path(), 1, Security::Tls(&ca));
    let (a, b, c, d) = (
        Replica::new(dir.path(), "a", &ca),
        Replica::new(dir.path(), "b", &ca),
        Replica::new(dir.path(), "c", &ca),
        Replica::new(dir.path(), "d", &ca),
    );
    // A and B attest on sim platforms endorsed by one CA; the replica policy names it.
    let sim_ca = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let pem = sim_ca.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).expect("PEM");
    for replica in [&a, &b] {
        std::fs::create_dir_all(replica.state.join("sim")).expect("mkdir");
        std::fs::write(replica.state.join("sim/ca.key.pem"), pem.as_bytes()).expect("write");
    }
    let public = hex::encode(sim_ca.verifying_key().to_encoded_point(false).as_bytes());
    let policy = dir.path().join("replicas.toml");
    std::fs::write(&policy, format!("allow_sim = true\nsim_ca_keys = [\"{public}\"]\n")).expect("write");
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "allow_sim = false\n").expect("write");
    let with = |file: &Path| [std::ffi::OsString::from("--replica-policy"), file.as_os_str().to_owned()];
    let flags = with(&policy);
    let flags: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_os_str()).collect();

    let a_log = dir.path().join("a.log");
    let _a = a.start_with(&etcd, &flags, &a_log);
    wait_for("replica a to lead", Duration::from_secs(30), || a.serving() && a.state.join("address").exists());
    // B passes: it gets the key over attested TLS and keeps it sealed.
    let _b = b.start_with(&etcd, &flags, &dir.path().join("b.log"));
    wait_for("replica b to get the cluster key", Duration::from_secs(30), || {
        b.state.join("cluster-key.sealed").exists()
    });
    assert!(std::fs::read_to_string(&a_log).expect("log").contains("released the cluster key to a replica"));

    // C's sim platform has a CA of its own: refused, and told why.
    let c_log = dir.path().join("c.log");
    let (code, log) = refused(c.start_with(&etcd, &flags, &c_log), &c_log);
    assert!(!code.success());
    assert!(log.contains("does not pass the policy"), "{log}");
    assert!(!c.state.join("cluster-key.sealed").exists());
    assert!(std::fs::read_to_string(&a_log).expect("log").contains("refused the cluster key to a replica"));

    // D's policy does not accept sim: it refuses the serving replica's evidence, key or not.
    let strict_flags = with(&strict);
    let strict_flags: Vec<&std::ffi::OsStr> = strict_flags.iter().map(|f| f.as_os_str()).collect();
    let d_log = dir.path().join("d.log");
    let (code, log) = refused(d.start_with(&etcd, &strict_flags, &d_log), &d_log);
    assert!(!code.success());
    assert!(log.contains("is not trusted"), "{log}");
    assert!(!d.state.join("cluster-key.sealed").exists());
}

/// Waits for a replica that must not start to exit (within 20 s): its status and its log.
fn refused(mut replica: Process, log: &Path) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = replica.0.try_wait().expect("wait") {
            break code;
        }
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(Instant::now() < deadline, "a replica that must be refused kept running:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    (code, std::fs::read_to_string(log).expect("log"))
}

/// The attack: someone who reaches etcd's client port (a neighbour on the network, a process on
/// an etcd host) and talks to it directly, around the control plane. Without a certificate of
/// the CA etcd trusts, with one of another CA, or in plain HTTP, they read nothing; a replica
/// given such a certificate is refused at start with a message saying so, and a replica given
/// another CA refuses etcd's members.
#[test]
fn an_etcd_client_without_a_certificate_cannot_read_the_control_planes_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new(dir.path(), "etcd");
    let etcd = Cluster::start(dir.path(), 1, Security::Tls(&ca));
    let a = Replica::new(dir.path(), "a", &ca);
    let _a = a.start(&etcd, &dir.path().join("a.log"));
    wait_for("replica a to lead", Duration::from_secs(30), || a.serving() && a.state.join("address").exists());

    // The holder of a certificate of etcd's CA sees the control plane's state.
    let listing = output(etcd.etcdctl().args(["get", "--prefix", "--keys-only", "/lamina/"]));
    assert_code(&listing, 0);
    let keys = texts(&listing).0;
    assert!(keys.contains("/lamina/state/") && keys.contains("/lamina/leader"), "{keys}");

    let rogue_ca = Ca::new(dir.path(), "rogue");
    let rogue = rogue_ca.issue("rogue");
    let attempts: [(&str, Command); 3] = [
        ("no client certificate", {
            let mut c = etcd.etcdctl_anonymous();
            c.arg("--cacert").arg(&ca.cert);
            c
        }),
        ("a client certificate of another CA", {
            let mut c = etcd.etcdctl_anonymous();
            c.arg("--cacert").arg(&ca.cert).arg("--cert").arg(&rogue.cert).arg("--key").arg(&rogue.key);
            c
        }),
        ("plain HTTP", {
            let mut c = Command::new("etcdctl");
            let endpoint = format!("http://127.0.0.1:{}", etcd.clients[0]);
            c.env("ETCDCTL_API", "3").args(["--endpoints", &endpoint, "--command-timeout", "2s"]);
            c
        }),
    ];
    for (how, mut etcdctl) in attempts {
        let out = output(etcdctl.args(["get", "--prefix", "/lamina/"]));
        let (stdout, stderr) = texts(&out);
        assert!(!out.status.success(), "etcd answered a client with {how}:\n{stdout}");
        assert!(!stdout.contains("/lamina/"), "a client with {how} read the state:\n{stdout}");
        eprintln!("etcdctl with {how}: refused ({})", stderr.trim());
    }

    // A replica with another CA's certificate is refused, and says why.
    let b = Replica { state: dir.path().join("b"), listen: free_port(), etcd_flags: ca.replica_flags(&rogue) };
    let (code, log) = refused(b.start(&etcd, &dir.path().join("b.log")), &dir.path().join("b.log"));
    assert!(!code.success());
    assert!(log.contains("refused this replica's client certificate"), "{log}");
    // A replica that trusts another CA refuses etcd's members (a man in the middle would be
    // refused the same way).
    let c = Replica::new(dir.path(), "c", &rogue_ca);
    let (code, log) = refused(c.start(&etcd, &dir.path().join("c.log")), &dir.path().join("c.log"));
    assert!(!code.success());
    assert!(log.contains("certificate does not verify"), "{log}");
}

/// The mistake: a replica started against etcd without TLS settings, which would hand the
/// state to whoever reaches etcd. It is refused before it connects, with the flags to give;
/// incomplete settings are refused too; only `--danger-etcd-plaintext`, said out loud, runs it
/// over plain HTTP.
#[test]
fn a_replica_without_etcd_tls_is_refused_at_start_unless_it_says_danger() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("cluster.key");
    let control = |state: &str| {
        let mut cmd = lamina();
        cmd.args(["control", "--danger-dev-allow-any-sim-node", "--listen"])
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--state")
            .arg(dir.path().join(state))
            .arg("--cluster-key")
            .arg(&key);
        cmd
    };
    // Nothing listens on port 9: a replica that tried to connect would fail otherwise.
    let store = ["--store", "etcd://127.0.0.1:9"];
    let ca = Ca::new(dir.path(), "etcd");
    let client = ca.issue("replica");

    let out = output(control("a").args(store));
    assert_code(&out, 2);
    let stderr = texts(&out).1;
    for flag in ["--etcd-ca FILE", "--etcd-cert FILE", "--etcd-key FILE", "--danger-etcd-plaintext"] {
        assert!(stderr.contains(flag), "the refusal names {flag}: {stderr}");
    }
    assert!(!stderr.contains("keeping the state in etcd"), "refused before connecting: {stderr}");

    let out = output(control("a").args(store).arg("--etcd-cert").arg(&client.cert).arg("--etcd-key").arg(&client.key));
    assert_code(&out, 2);
    assert!(texts(&out).1.contains("give --etcd-ca too"), "{}", texts(&out).1);
    let out = output(control("a").args(store).arg("--etcd-ca").arg(&ca.cert).arg("--etcd-cert").arg(&client.cert));
    assert_code(&out, 2);
    assert!(texts(&out).1.contains("give --etcd-key too"), "{}", texts(&out).1);
    // TLS files without etcd, and plain HTTP with TLS files, are contradictions.
    assert_code(&output(control("a").arg("--etcd-ca").arg(&ca.cert)), 2);
    assert_code(&output(control("a").args(store).arg("--danger-etcd-plaintext").arg("--etcd-ca").arg(&ca.cert)), 2);

    // Said out loud, plain HTTP works, with a DANGER line.
    let etcd = Cluster::start(dir.path(), 1, Security::Plaintext);
    let log = dir.path().join("plaintext.log");
    let listen = free_port();
    let _replica = Process(
        lamina()
            .args(["control", "--danger-dev-allow-any-sim-node", "--listen", &format!("127.0.0.1:{listen}")])
            .arg("--state")
            .arg(dir.path().join("b"))
            .args(["--store", &etcd.url(), "--danger-etcd-plaintext", "--cluster-key"])
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("lamina control starts"),
    );
    wait_for("the plaintext replica to serve", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok()
    });
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(log.contains("DANGER: --danger-etcd-plaintext"), "{log}");
    assert!(log.contains(&format!("keeping the state in etcd at http://127.0.0.1:{}", etcd.clients[0])), "{log}");
}

/// The bug: a replica stopped with SIGTERM (as systemd stops it) panicked on its way out, when
/// the last reference to its etcd store, and with it the store's runtime, went on an async
/// thread; it exited with 101 instead of 0.
#[test]
fn a_replica_stopped_with_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new(dir.path(), "etcd");
    let etcd = Cluster::start(dir.path(), 1, Security::Tls(&ca));
    let a = Replica::new(dir.path(), "a", &ca);
    let log = dir.path().join("a.log");
    let replica = a.start(&etcd, &log);
    wait_for("replica a to lead", Duration::from_secs(30), || a.serving() && a.state.join("address").exists());
    assert_code(&output(Command::new("kill").args(["-TERM", &replica.0.id().to_string()])), 0);
    let (code, log) = refused(replica, &log);
    assert_eq!(code.code(), Some(0), "{log}");
    assert!(log.contains("stopping the control plane") && !log.contains("panicked"), "{log}");
}
