//! etcd for the tests and the etcd benchmark: a certificate authority made for the run (rcgen),
//! and etcd clusters on loopback (Debian's etcd-server) whose members serve clients and peers
//! over TLS and admit only clients with a certificate of that authority, as an operator runs
//! them for a replicated control plane.
//!
//! The benchmark includes this file by path, so it uses nothing else of `common`.

#![allow(dead_code, unreachable_pub, reason = "the tests and the benchmark use different parts")]

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

/// Waits for `check`, panicking after `timeout`; returns how long it took.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority of its own, its certificate in `<dir>/<name>-ca.pem`.
pub struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
    /// The CA certificate (PEM).
    pub cert: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        let path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&path, cert.pem()).expect("write the CA certificate");
        Ca { issuer: rcgen::Issuer::new(params, key), dir: dir.to_owned(), cert: path }
    }

    /// Issues `<dir>/<name>.pem` and `<name>.key`: a certificate for `127.0.0.1` and
    /// `localhost` whose holder may serve (an etcd member) and be a client (a replica, etcdctl,
    /// a member to its peers).
    pub fn issue(&self, name: &str) -> Pair {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let pair = Pair { cert: self.dir.join(format!("{name}.pem")), key: self.dir.join(format!("{name}.key")) };
        std::fs::write(&pair.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&pair.key, key.serialize_pem()).expect("write the key");
        pair
    }

    /// `lamina control`'s flags to reach etcd with `client`'s certificate.
    pub fn replica_flags(&self, client: &Pair) -> Vec<OsString> {
        vec![
            "--etcd-ca".into(),
            self.cert.clone().into(),
            "--etcd-cert".into(),
            client.cert.clone().into(),
            "--etcd-key".into(),
            client.key.clone().into(),
        ]
    }
}

/// An etcd member, killed when dropped.
pub struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a cluster's members serve.
pub enum Security<'a> {
    /// Clients and peers over TLS with certificates of this CA, clients required to present one
    /// (`--client-cert-auth`, `--peer-client-cert-auth`).
    Tls(&'a Ca),
    /// Clients over TLS as above, and also over plain HTTP on a port of its own (the benchmark
    /// compares the two against the same member).
    TlsAndPlaintext(&'a Ca),
    /// Plain HTTP, no credentials.
    Plaintext,
}

/// An etcd cluster on loopback.
pub struct Cluster {
    pub members: Vec<Option<Member>>,
    /// Each member's client port (TLS, or plain HTTP for a plaintext cluster).
    pub clients: Vec<u16>,
    /// Each member's plain HTTP client port, for [`Security::TlsAndPlaintext`].
    pub plaintext: Vec<u16>,
    /// The CA certificate and a client certificate of it, for etcdctl, on a TLS cluster.
    pub tls: Option<(PathBuf, Pair)>,
}

impl Cluster {
    /// Starts `n` members with their data and logs under `dir`, and waits until they elect a
    /// leader.
    pub fn start(dir: &Path, n: usize, security: Security<'_>) -> Cluster {
        let ca = match security {
            Security::Tls(ca) | Security::TlsAndPlaintext(ca) => Some(ca),
            Security::Plaintext => None,
        };
        let scheme = if ca.is_some() { "https" } else { "http" };
        let (clients, peers): (Vec<u16>, Vec<u16>) = (0..n).map(|_| (free_port(), free_port())).unzip();
        let plaintext: Vec<u16> = match security {
            Security::TlsAndPlaintext(_) => (0..n).map(|_| free_port()).collect(),
            _ => Vec::new(),
        };
        let cluster: Vec<String> =
            peers.iter().enumerate().map(|(i, p)| format!("m{i}={scheme}://127.0.0.1:{p}")).collect();
        let members = (0..n)
            .map(|i| {
                let log = std::fs::File::create(dir.join(format!("etcd-{i}.log"))).expect("log");
                let mut listen = format!("{scheme}://127.0.0.1:{}", clients[i]);
                if let Some(p) = plaintext.get(i) {
                    listen.push_str(&format!(",http://127.0.0.1:{p}"));
                }
                let mut etcd = Command::new("etcd");
                etcd.args(["--name", &format!("m{i}")])
                    .arg("--data-dir")
                    .arg(dir.join(format!("etcd-{i}")))
                    .args(["--listen-client-urls", &listen])
                    .args(["--advertise-client-urls", &format!("{scheme}://127.0.0.1:{}", clients[i])])
                    .args(["--listen-peer-urls", &format!("{scheme}://127.0.0.1:{}", peers[i])])
                    .args(["--initial-advertise-peer-urls", &format!("{scheme}://127.0.0.1:{}", peers[i])])
                    .args(["--initial-cluster", &cluster.join(",")])
                    .args(["--initial-cluster-state", "new", "--initial-cluster-token", "lamina-test"]);
                if let Some(ca) = ca {
                    let member = ca.issue(&format!("etcd-m{i}"));
                    etcd.arg("--cert-file")
                        .arg(&member.cert)
                        .arg("--key-file")
                        .arg(&member.key)
                        .arg("--client-cert-auth")
                        .arg("--trusted-ca-file")
                        .arg(&ca.cert)
                        .arg("--peer-cert-file")
                        .arg(&member.cert)
                        .arg("--peer-key-file")
                        .arg(&member.key)
                        .arg("--peer-client-cert-auth")
                        .arg("--peer-trusted-ca-file")
                        .arg(&ca.cert);
                }
                let child = etcd
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("etcd runs (scripts/setup.sh installs Debian's etcd-server)");
                Some(Member(child))
            })
            .collect();
        let tls = ca.map(|ca| (ca.cert.clone(), ca.issue("etcdctl")));
        let etcd = Cluster { members, clients, plaintext, tls };
        wait_for("the etcd cluster to elect a leader", Duration::from_secs(30), || etcd.leader().is_some());
        etcd
    }

    /// `etcd://` and the members' client addresses, for `lamina control --store`.
    pub fn url(&self) -> String {
        let list: Vec<String> = self.clients.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("etcd://{}", list.join(","))
    }

    /// The members' plain HTTP addresses, for [`Security::TlsAndPlaintext`].
    pub fn plaintext_url(&self) -> String {
        let list: Vec<String> = self.plaintext.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("etcd://{}", list.join(","))
    }

    /// The live members' client URLs.
    fn endpoints(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let live: Vec<String> = self
            .clients
            .iter()
            .enumerate()
            .filter(|(i, _)| self.members[*i].is_some())
            .map(|(_, p)| format!("{scheme}://127.0.0.1:{p}"))
            .collect();
        live.join(",")
    }

    /// etcdctl (API v3) for the live members, with no credentials.
    pub fn etcdctl_anonymous(&self) -> Command {
        let mut etcdctl = Command::new("etcdctl");
        etcdctl.env("ETCDCTL_API", "3").args(["--endpoints", &self.endpoints(), "--command-timeout", "2s"]);
        etcdctl.args(["--dial-timeout", "2s"]);
        etcdctl
    }

    /// etcdctl (API v3) for the live members, with a client certificate of the cluster's CA on
    /// a TLS cluster.
    pub fn etcdctl(&self) -> Command {
        let mut etcdctl = self.etcdctl_anonymous();
        if let Some((ca, client)) = &self.tls {
            etcdctl.arg("--cacert").arg(ca).arg("--cert").arg(&client.cert).arg("--key").arg(&client.key);
        }
        etcdctl
    }

    /// The index of the member that leads, as the members say.
    pub fn leader(&self) -> Option<usize> {
        let out: Output = self.etcdctl().args(["endpoint", "status", "--write-out", "json"]).output().ok()?;
        let statuses: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        statuses.as_array()?.iter().find_map(|s| {
            let status = &s["Status"];
            (status["header"]["member_id"] == status["leader"] && status["leader"] != 0)
                .then(|| s["Endpoint"].as_str())
                .flatten()
                .and_then(|e| self.clients.iter().position(|p| e.ends_with(&format!(":{p}"))))
        })
    }
}
