//! Attested TLS end to end: Lamina certificates with sim evidence between two processes, the
//! refusals a verifier must make (policy, key binding, no evidence, tampering), and the real
//! Gramine and Intel SGX SDK certificates.
//!
//! The second process is this test binary itself, run again with `LAMINA_RATLS_PEER` set to a
//! directory: the test `ratls_peer_process` then serves one attested TLS connection from there
//! (and does nothing in an ordinary run). Unlike an example binary, the test binary always
//! exists when a test runs, whatever cargo (or nextest) was asked to build.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use lamina_attest::ratls::{
    AttestedCert, AttestedClientVerifier, AttestedServerVerifier, CertificateRequest, EVIDENCE_OID, HashAlgorithm,
    RatlsError, RatlsPayload, Refusal, appraise_certificate, client_config, decode_extension, lamina_extension,
    parse_extension, server_config,
};
use lamina_attest::{Appraisal, Policy, TrustAnchors, Verifier};
use lamina_tee::sim::SimPlatform;
use lamina_types::{ModuleHash, PlatformKind};
use proptest::prelude::*;
use rcgen::PublicKeyData as _;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection, StreamOwned};
use sha2::{Digest as _, Sha256};

const PEER_ENV: &str = "LAMINA_RATLS_PEER";
const CLIENT_MODULE: &[u8] = b"client.wasm";
const SERVER_MODULE: &[u8] = b"server.wasm";
/// A safety net so that a broken peer fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A test vector from `shared/testvectors` above the repository (found from the worktree too).
fn testvector(name: &str) -> Vec<u8> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = manifest
        .ancestors()
        .map(|dir| dir.join("shared/testvectors").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no shared/testvectors/{name} above {}", manifest.display()));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pem_cert(name: &str) -> Vec<u8> {
    let bytes = testvector(name);
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).expect("PEM");
    pem.contents
}

/// An attested certificate for `module`, with sim evidence from the state in `state`.
fn attested_cert(state: &Path, module: &[u8]) -> AttestedCert {
    let platform = SimPlatform::open(state).expect("sim platform");
    let request = CertificateRequest::new().expect("key");
    let claims = request.claims(PlatformKind::Sim, vec![1; 32], Some(ModuleHash::of(module)), None);
    let envelope = lamina_tee::attest(&platform, &claims).expect("envelope");
    request.finish(&envelope).expect("certificate")
}

fn ca_key(state: &Path) -> String {
    hex::encode(SimPlatform::open(state).expect("sim platform").ca_public_key())
}

fn policy(modules: &[&[u8]], ca_keys: &[String]) -> String {
    let modules: Vec<String> = modules.iter().map(|m| format!("\"{}\"", ModuleHash::of(m))).collect();
    let keys: Vec<String> = ca_keys.iter().map(|k| format!("\"{k}\"")).collect();
    format!("allow_sim = true\nmodule_hashes = [{}]\nsim_ca_keys = [{}]\n", modules.join(", "), keys.join(", "))
}

fn verifier(policy_toml: &str) -> Verifier {
    let mut anchors = TrustAnchors::default();
    let policy = Policy::parse(policy_toml, Path::new("."), &mut anchors).expect("policy");
    Verifier::new(Some(policy), anchors)
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("lamina-peer").expect("a DNS name")
}

/// Which side of an in-memory handshake failed.
#[derive(Debug)]
enum Failed {
    Client(rustls::Error),
    Server(rustls::Error),
}

fn pump(from: &mut impl WriteTls, to: &mut impl ReadTls) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).expect("write to memory");
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read from memory");
        to.process()?;
    }
    Ok(())
}

trait WriteTls {
    fn wants_write(&self) -> bool;
    fn write_tls(&mut self, out: &mut Vec<u8>) -> std::io::Result<usize>;
}
trait ReadTls {
    fn read_tls(&mut self, input: &mut &[u8]) -> std::io::Result<usize>;
    fn process(&mut self) -> Result<(), rustls::Error>;
}
macro_rules! tls_io {
    ($t:ty) => {
        impl WriteTls for $t {
            fn wants_write(&self) -> bool {
                std::ops::Deref::deref(self).wants_write()
            }
            fn write_tls(&mut self, out: &mut Vec<u8>) -> std::io::Result<usize> {
                std::ops::DerefMut::deref_mut(self).write_tls(out)
            }
        }
        impl ReadTls for $t {
            fn read_tls(&mut self, input: &mut &[u8]) -> std::io::Result<usize> {
                std::ops::DerefMut::deref_mut(self).read_tls(input)
            }
            fn process(&mut self) -> Result<(), rustls::Error> {
                self.process_new_packets().map(|_| ())
            }
        }
    };
}
tls_io!(ClientConnection);
tls_io!(ServerConnection);

/// Runs a handshake between two in-memory connections, then sends `ping` from the client.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), Failed> {
    for _ in 0..10 {
        pump(client, server).map_err(Failed::Server)?;
        pump(server, client).map_err(Failed::Client)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            client.writer().write_all(b"ping").expect("buffer");
            pump(client, server).map_err(Failed::Server)?;
            let mut got = [0; 4];
            server.reader().read_exact(&mut got).expect("the server reads the client's message");
            assert_eq!(&got, b"ping");
            return Ok(());
        }
    }
    panic!("the handshake did not finish");
}

/// In-process TLS: a server presenting `server_cert` to a client that appraises it with
/// `client_verifier`, and the other way round.
fn connect(
    client_cert: &AttestedCert,
    client_verifier: AttestedServerVerifier,
    server_cert: &AttestedCert,
    server_verifier: AttestedClientVerifier,
) -> Result<(), Failed> {
    let client_config = client_config(client_cert, client_verifier).expect("client config");
    let server_config = server_config(server_cert, server_verifier).expect("server config");
    let mut client = ClientConnection::new(Arc::new(client_config), server_name()).expect("client");
    let mut server = ServerConnection::new(Arc::new(server_config)).expect("server");
    handshake(&mut client, &mut server)
}

/// The refusal inside a rustls error, if it is one.
fn refusal(e: &rustls::Error) -> Option<&Refusal> {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other.0.downcast_ref::<Refusal>(),
        _ => None,
    }
}

fn passed(a: &Appraisal, name: &str) -> bool {
    a.checks.iter().any(|c| c.ok && c.name == name)
}

// ---------------------------------------------------------------------------------------------
// Two processes

/// The peer process: serves one attested TLS connection from the directory in `LAMINA_RATLS_PEER`
/// (`module`, `policy.toml`, `state/`), and reports on stdout: `PEER PORT <port>`, then
/// `PEER OK <client's module hash> <client's message>` or `PEER REFUSED <error>`.
#[test]
fn ratls_peer_process() {
    let Ok(dir) = std::env::var(PEER_ENV) else { return };
    let dir = PathBuf::from(dir);
    let module = std::fs::read(dir.join("module")).expect("module");
    let policy = std::fs::read_to_string(dir.join("policy.toml")).expect("policy");
    let cert = attested_cert(&dir.join("state"), &module);
    let verifier = AttestedClientVerifier::new(verifier(&policy));
    let config = server_config(&cert, verifier.clone()).expect("server config");

    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("non-blocking accept");
    println!("\nPEER PORT {}", listener.local_addr().expect("address").port());
    std::io::stdout().flush().expect("stdout");
    let started = Instant::now();
    let socket = loop {
        match listener.accept() {
            Ok((socket, _)) => break socket,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && started.elapsed() < DEADLINE => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("no client came: {e}"),
        }
    };
    socket.set_nonblocking(false).expect("blocking socket");
    socket.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut tls = StreamOwned::new(ServerConnection::new(Arc::new(config)).expect("server"), socket);
    let mut line = String::new();
    match BufReader::new(&mut tls).read_line(&mut line) {
        Ok(_) => {
            let client = verifier.last_appraisal().expect("the client was appraised");
            assert!(client.verified(), "{:?}", client.reasons());
            tls.write_all(b"hello from the server\n").expect("reply");
            tls.conn.send_close_notify();
            tls.flush().expect("flush");
            let module = client.measurements.get("module_hash").cloned().unwrap_or_default();
            println!("\nPEER OK {module} {}", line.trim());
        }
        Err(e) => {
            let reasons = verifier.last_appraisal().map(|a| a.reasons().join("; ")).unwrap_or_default();
            println!("\nPEER REFUSED {e} [{reasons}]");
        }
    }
}

/// A peer process, killed if the test ends before it does.
struct Peer {
    child: Child,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl Peer {
    /// Starts this binary's `ratls_peer_process` serving from `dir`, and waits for its port.
    fn spawn(dir: &Path) -> Peer {
        let exe = std::env::current_exe().expect("this test binary");
        let mut child = Command::new(exe)
            .args(["ratls_peer_process", "--exact", "--nocapture", "--test-threads=1"])
            .env(PEER_ENV, dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the peer");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut peer = Peer { child, stdout, port: 0 };
        let report = peer.next_report().expect("the peer reports its port");
        peer.port = report.strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("a port");
        peer
    }

    /// What follows `PEER ` on the next report line, or `None` when the output ends.
    fn next_report(&mut self) -> Option<String> {
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line).expect("the peer's output") == 0 {
                return None;
            }
            if let Some(at) = line.find("PEER ") {
                return Some(line[at + "PEER ".len()..].trim_end().to_owned());
            }
        }
    }

    /// The peer's outcome report, once it has exited successfully.
    fn finish(mut self) -> String {
        let report = self.next_report().expect("the peer reports its outcome");
        let status = self.child.wait().expect("the peer exits");
        assert!(status.success(), "the peer failed ({status}); it reported: {report}");
        report
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Only this test's own child; already reaped when `finish` ran.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two sim platforms, each with its own state: this process is the client, the peer the server.
struct Scenario {
    dir: tempfile::TempDir,
    client_ca: String,
    server_ca: String,
}

impl Scenario {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(dir.path().join("server")).expect("server directory");
        std::fs::write(dir.path().join("server/module"), SERVER_MODULE).expect("module");
        // Opening each state once creates its keys, so both CA keys can be pinned.
        let client_ca = ca_key(&dir.path().join("client"));
        let server_ca = ca_key(&dir.path().join("server/state"));
        Self { dir, client_ca, server_ca }
    }

    /// Connects to a peer serving with `server_policy`, appraising it with `client_policy`; says
    /// how the client fared (the server's reply, or the error), and what the peer reported.
    fn run(&self, client_policy: &str, server_policy: &str) -> (Result<String, std::io::Error>, Appraisal, String) {
        let server_dir = self.dir.path().join("server");
        std::fs::write(server_dir.join("policy.toml"), server_policy).expect("policy");
        let peer = Peer::spawn(&server_dir);

        let cert = attested_cert(&self.dir.path().join("client"), CLIENT_MODULE);
        let verifier = AttestedServerVerifier::new(verifier(client_policy));
        let config = client_config(&cert, verifier.clone()).expect("client config");
        let socket = TcpStream::connect(("127.0.0.1", peer.port)).expect("connect to the peer");
        socket.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let connection = ClientConnection::new(Arc::new(config), server_name()).expect("client");
        let mut tls = StreamOwned::new(connection, socket);
        let outcome = (|| {
            tls.write_all(b"hello from the client\n")?;
            tls.flush()?;
            let mut line = String::new();
            BufReader::new(&mut tls).read_line(&mut line)?;
            Ok(line)
        })();
        drop(tls);
        let report = peer.finish();
        let appraisal = verifier.last_appraisal().expect("the server was appraised");
        (outcome, appraisal, report)
    }
}

/// The refusal in an I/O error from a rustls stream.
fn io_refusal(e: &std::io::Error) -> Option<&Refusal> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).and_then(refusal)
}

#[test]
fn two_processes_attest_each_other_and_talk() {
    let s = Scenario::new();
    let both = policy(&[CLIENT_MODULE, SERVER_MODULE], &[s.client_ca.clone(), s.server_ca.clone()]);
    let (outcome, server, report) = s.run(&both, &both);

    assert_eq!(outcome.expect("the client's side succeeds"), "hello from the server\n");
    assert!(server.verified(), "{:?}", server.reasons());
    assert_eq!(server.measurements.get("module_hash"), Some(&ModuleHash::of(SERVER_MODULE).to_string()));
    for check in ["ratls.signature", "ratls.validity", "ratls.pubkey_hash", "ratls.instance_key", "claims.instance_key"]
    {
        assert!(passed(&server, check), "{check}: {:?}", server.checks);
    }
    let endorsement = server.checks.iter().find(|c| c.name == "sim.endorsement").expect("endorsement checked");
    assert!(endorsement.ok && endorsement.detail.contains("pinned"), "{endorsement:?}");
    assert_eq!(report, format!("OK {} hello from the client", ModuleHash::of(CLIENT_MODULE)));
}

#[test]
fn a_server_running_a_module_outside_the_policy_is_refused() {
    let s = Scenario::new();
    // Nothing pinned here: each side accepts the sim CA that comes with the evidence.
    let (outcome, server, report) =
        s.run(&policy(&[CLIENT_MODULE], &[]), &policy(&[CLIENT_MODULE, SERVER_MODULE], &[]));

    let e = outcome.expect_err("the client refuses the server");
    let refused = io_refusal(&e).unwrap_or_else(|| panic!("not a refusal: {e}"));
    assert!(refused.names("policy.module_hash"), "{refused}");
    assert!(e.to_string().contains("policy.module_hash"), "{e}");
    assert!(server.failed("policy.module_hash") && !server.failed("sim.signature"), "{:?}", server.reasons());
    assert!(report.starts_with("REFUSED"), "{report}");
}

#[test]
fn a_client_running_a_module_outside_the_policy_is_refused() {
    let s = Scenario::new();
    let (outcome, server, report) = s.run(
        &policy(&[CLIENT_MODULE, SERVER_MODULE], std::slice::from_ref(&s.server_ca)),
        &policy(&[SERVER_MODULE], &[]),
    );

    assert!(server.verified(), "the client accepted the server: {:?}", server.reasons());
    assert!(outcome.is_err(), "the server must not answer a refused client: {outcome:?}");
    assert!(report.starts_with("REFUSED") && report.contains("policy.module_hash"), "{report}");
}

// ---------------------------------------------------------------------------------------------
// One process

struct Pair {
    _dir: tempfile::TempDir,
    client: AttestedCert,
    server: AttestedCert,
    policy: String,
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().expect("temporary directory");
    let client = attested_cert(&dir.path().join("client"), CLIENT_MODULE);
    let server = attested_cert(&dir.path().join("server"), SERVER_MODULE);
    let policy = policy(
        &[CLIENT_MODULE, SERVER_MODULE],
        &[ca_key(&dir.path().join("client")), ca_key(&dir.path().join("server"))],
    );
    Pair { _dir: dir, client, server, policy }
}

#[test]
fn in_process_mutual_tls_reports_every_appraisal() {
    let p = pair();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let client_side = AttestedServerVerifier::new(verifier(&p.policy)).on_appraisal(move |a| {
        assert!(a.verified(), "{:?}", a.reasons());
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let server_side = AttestedClientVerifier::new(verifier(&p.policy));
    connect(&p.client, client_side.clone(), &p.server, server_side.clone()).expect("mutual attested TLS");
    // Again: the verifiers remember the certificates, and still report each appraisal.
    connect(&p.client, client_side.clone(), &p.server, server_side.clone()).expect("mutual attested TLS again");
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    let of_server = client_side.last_appraisal().expect("appraised");
    let of_client = server_side.last_appraisal().expect("appraised");
    assert_eq!(of_server.measurements.get("module_hash"), Some(&ModuleHash::of(SERVER_MODULE).to_string()));
    assert_eq!(of_client.measurements.get("module_hash"), Some(&ModuleHash::of(CLIENT_MODULE).to_string()));
    let spki = parse_extension(&p.client.cert_der).expect("parses").spki;
    assert_eq!(of_client.claims.and_then(|c| c.instance_key), Some(spki));

    // Without the cache every handshake appraises afresh, with the same verdict.
    let fresh = AttestedServerVerifier::new(verifier(&p.policy)).with_cache_ttl(Duration::ZERO);
    connect(&p.client, fresh.clone(), &p.server, server_side).expect("mutual attested TLS without cache");
    assert!(fresh.last_appraisal().expect("appraised").verified());
}

#[test]
fn a_certificate_whose_envelope_binds_another_key_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let platform = SimPlatform::open(dir.path()).expect("sim platform");
    let other = CertificateRequest::new().expect("key");
    let claims = other.claims(PlatformKind::Sim, vec![1; 32], Some(ModuleHash::of(SERVER_MODULE)), None);
    let envelope = lamina_tee::attest(&platform, &claims).expect("envelope");

    // The issuing API refuses to wrap an envelope that does not bind its own key.
    let request = CertificateRequest::new().expect("key");
    assert!(matches!(request.finish(&envelope), Err(RatlsError::KeyNotBound(_))));

    // Made by hand: a valid self-signed certificate whose pubkey-hash is right, but whose
    // envelope binds the other key (a replayed envelope).
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let spki = key.subject_public_key_info();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(&[2, 23, 133, 5, 4, 9], lamina_extension(&envelope, &spki)));
    let cert = params.self_signed(&key).expect("certificate");
    let forged = AttestedCert { cert_der: cert.der().to_vec(), key_der: key.serialize_der() };

    let policy = policy(&[CLIENT_MODULE, SERVER_MODULE], &[]);
    let a = appraise_certificate(&verifier(&policy), &forged.cert_der, None, SystemTime::now());
    assert!(!a.verified());
    assert!(passed(&a, "ratls.pubkey_hash") && passed(&a, "ratls.signature") && passed(&a, "sim.signature"));
    assert!(a.failed("ratls.instance_key") && a.failed("claims.instance_key"), "{:?}", a.reasons());

    let p = pair();
    let refused = connect(
        &p.client,
        AttestedServerVerifier::new(verifier(&p.policy)),
        &forged,
        AttestedClientVerifier::new(verifier(&p.policy)),
    )
    .expect_err("the client refuses the server");
    let Failed::Client(e) = refused else { panic!("the client must refuse: {refused:?}") };
    assert!(refusal(&e).expect("a refusal").names("claims.instance_key"), "{e}");
}

#[test]
fn a_plain_self_signed_certificate_is_refused() {
    let plain = rcgen::generate_simple_self_signed(vec!["lamina-peer".to_owned()]).expect("certificate");
    let plain = AttestedCert { cert_der: plain.cert.der().to_vec(), key_der: plain.signing_key.serialize_der() };
    assert_eq!(parse_extension(&plain.cert_der), Err(RatlsError::NoExtension));

    let p = pair();
    let a = appraise_certificate(&verifier(&p.policy), &plain.cert_der, None, SystemTime::now());
    assert!(passed(&a, "ratls.signature") && a.failed("ratls.extension"), "{:?}", a.checks);

    // As a server, and as a client.
    let refused = connect(
        &p.client,
        AttestedServerVerifier::new(verifier(&p.policy)),
        &plain,
        AttestedClientVerifier::new(verifier(&p.policy)),
    )
    .expect_err("refused");
    let Failed::Client(e) = refused else { panic!("the client must refuse: {refused:?}") };
    assert!(e.to_string().contains("ratls.extension"), "{e}");
    let refused = connect(
        &plain,
        AttestedServerVerifier::new(verifier(&p.policy)),
        &p.server,
        AttestedClientVerifier::new(verifier(&p.policy)),
    )
    .expect_err("refused");
    let Failed::Server(e) = refused else { panic!("the server must refuse: {refused:?}") };
    assert!(refusal(&e).expect("a refusal").names("ratls.extension"), "{e}");
}

#[test]
fn tampering_and_time_are_checked() {
    let p = pair();
    let v = verifier(&p.policy);
    let now = SystemTime::now();
    assert!(appraise_certificate(&v, &p.server.cert_der, None, now).verified());

    // The last byte is in the signature.
    let mut tampered = p.server.cert_der.clone();
    *tampered.last_mut().expect("bytes") ^= 1;
    let a = appraise_certificate(&v, &tampered, None, now);
    assert!(a.failed("ratls.signature"), "{:?}", a.reasons());

    let later = appraise_certificate(&v, &p.server.cert_der, None, now + Duration::from_secs(2 * 3600));
    assert!(later.failed("ratls.validity") && later.failed("policy.max_age"), "{:?}", later.reasons());
    let earlier = appraise_certificate(&v, &p.server.cert_der, None, now - Duration::from_secs(3600));
    assert!(earlier.failed("ratls.validity"), "{:?}", earlier.reasons());
    // Within its validity but past the policy's max_age (five minutes).
    let stale = appraise_certificate(&v, &p.server.cert_der, None, now + Duration::from_secs(600));
    assert!(passed(&stale, "ratls.validity") && stale.failed("policy.max_age"), "{:?}", stale.reasons());

    // Sim evidence is refused unless the policy allows it.
    let strict = verifier(&format!("module_hashes = [\"{}\"]", ModuleHash::of(SERVER_MODULE)));
    assert!(appraise_certificate(&strict, &p.server.cert_der, None, now).failed("policy.allow_sim"));
}

#[test]
fn lamina_certificates_carry_the_interoperable_extension() {
    let p = pair();
    let (_, cert) = x509_parser::parse_x509_certificate(&p.server.cert_der).expect("X.509");
    let ext = cert.extensions().iter().find(|e| e.oid.to_id_string() == EVIDENCE_OID).expect("the evidence extension");
    assert!(!ext.critical);
    assert_eq!(&ext.value[..4], &[0xd9, 0xea, 0x60, 0x82], "CBOR tag 60000 around a two-item array");
    assert!(cert.verify_signature(None).is_ok());

    let evidence = parse_extension(&p.server.cert_der).expect("parses");
    assert_eq!(evidence.spki, cert.public_key().raw);
    assert_eq!(decode_extension(ext.value).expect("decodes"), evidence.extension);
    assert_eq!(evidence.extension.pubkey_hash.algorithm, HashAlgorithm::Sha256);
    assert_eq!(evidence.extension.pubkey_hash.value, Sha256::digest(&evidence.spki).to_vec());
    let RatlsPayload::Lamina(envelope) = &evidence.extension.payload else { panic!("a Lamina envelope") };
    assert_eq!(envelope.platform, PlatformKind::Sim);
    assert_eq!(envelope.decode_claims().expect("claims").instance_key.as_deref(), Some(&evidence.spki[..]));
    assert!(evidence.binding().verified());
}

// ---------------------------------------------------------------------------------------------
// Gramine and the Intel SGX SDK

const INTEROP: [&str; 2] = ["ccc-interop-ra-tls/gramine-cert.pem", "ccc-interop-ra-tls/intel-sgxsdk-cert.pem"];

/// Where `part` (a slice of `whole`) begins in `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// Flips one byte of `der`, `from_end` bytes before the end of the only place `needle` occurs
/// in the certificate's evidence extension (the legacy extensions may hold the same quote).
fn flip_in(der: &[u8], needle: &[u8], from_end: usize) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("X.509");
    let value = cert.extensions().iter().find(|e| e.oid.to_id_string() == EVIDENCE_OID).expect("extension").value;
    let (start, end) = (offset_in(der, value), offset_in(der, value) + value.len());
    let places: Vec<usize> = (start..end.saturating_sub(needle.len()) + 1)
        .filter(|&i| der.get(i..i + needle.len()) == Some(needle))
        .collect();
    let [at] = places[..] else { panic!("{} places", places.len()) };
    let mut out = der.to_vec();
    out[at + needle.len() - 1 - from_end] ^= 0x01;
    out
}

/// Flips the last byte of the certificate's SubjectPublicKeyInfo (in the key's point).
fn flip_key(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("X.509");
    let spki = cert.public_key().raw;
    let mut out = der.to_vec();
    out[offset_in(der, spki) + spki.len() - 1] ^= 0x01;
    out
}

#[test]
fn gramine_and_sgx_sdk_certificates_bind_their_keys() {
    for name in INTEROP {
        let der = pem_cert(name);
        let evidence = parse_extension(&der).unwrap_or_else(|e| panic!("{name}: {e}"));
        let RatlsPayload::Quote(quote) = &evidence.extension.payload else { panic!("{name}: a bare quote") };
        assert_eq!(evidence.extension.platform(), Some(PlatformKind::Sgx), "{name}");
        assert!(dcap_qvl::quote::Quote::parse(quote).is_ok(), "{name}: an SGX quote");
        assert_eq!(evidence.extension.pubkey_hash.algorithm, HashAlgorithm::Sha256);
        let binding = evidence.binding();
        assert!(binding.verified(), "{name}: {:?}", binding.reasons());
        assert!(passed(&binding, "ratls.pubkey_hash") && passed(&binding, "ratls.claims_binding"));

        // A byte of the claims (the last byte of the key hash inside them).
        let claims = flip_in(&der, &evidence.extension.claims, 0);
        let b = parse_extension(&claims).expect("still parses").binding();
        assert!(b.failed("ratls.pubkey_hash") && b.failed("ratls.claims_binding"), "{name}: {:?}", b.checks);

        // A byte of the key.
        let key = flip_key(&der);
        let b = parse_extension(&key).expect("still parses").binding();
        assert!(b.failed("ratls.pubkey_hash") && passed(&b, "ratls.claims_binding"), "{name}: {:?}", b.checks);

        // A byte of the quote's report data (the SHA-256 of the claims).
        let report_data = flip_in(&der, &Sha256::digest(&evidence.extension.claims), 5);
        let b = parse_extension(&report_data).expect("still parses").binding();
        assert!(passed(&b, "ratls.pubkey_hash") && b.failed("ratls.claims_binding"), "{name}: {:?}", b.checks);
        let reasons = b.reasons().join("\n");
        assert!(reasons.contains("report data"), "{reasons}");
    }
}

#[test]
fn gramine_and_sgx_sdk_certificates_are_appraised_but_need_collateral() {
    // Within both certificates' validity (2021..2030).
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let v = verifier(&policy(&[SERVER_MODULE], &[]));
    for name in INTEROP {
        let a = appraise_certificate(&v, &pem_cert(name), None, at);
        for check in [
            "ratls.certificate",
            "ratls.signature",
            "ratls.validity",
            "ratls.extension",
            "ratls.pubkey_hash",
            "ratls.claims_binding",
        ] {
            assert!(passed(&a, check), "{name} {check}: {:?}", a.checks);
        }
        // Without DCAP collateral the quote cannot be verified, and a bare quote names no module.
        assert!(!a.verified());
        assert!(a.reasons().iter().any(|r| r.starts_with("dcap.")), "{name}: {:?}", a.reasons());
        assert!(a.failed("policy.module_hash"), "{name}: {:?}", a.reasons());
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input

fn lamina_cert() -> &'static [u8] {
    static CERT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    CERT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        attested_cert(dir.path(), SERVER_MODULE).cert_der
    })
}

fn tbs_range(der: &[u8]) -> std::ops::Range<usize> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("X.509");
    let tbs = cert.tbs_certificate.as_ref();
    let start = offset_in(der, tbs);
    start..start + tbs.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_a_certificate_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_extension(&bytes);
        let a = appraise_certificate(&Verifier::default(), &bytes, None, SystemTime::now());
        prop_assert!(!a.verified());
    }

    #[test]
    fn arbitrary_bytes_as_an_extension_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_extension(&bytes);
        // And behind a valid tag and array header.
        let mut tagged = vec![0xd9, 0xea, 0x60, 0x82];
        tagged.extend_from_slice(&bytes);
        let _ = decode_extension(&tagged);
    }

    #[test]
    fn a_changed_byte_never_panics_and_a_signed_one_is_refused(at in any::<prop::sample::Index>(), bit in 0..8u8) {
        let original = lamina_cert();
        let mut der = original.to_vec();
        let i = at.index(der.len());
        der[i] ^= 1 << bit;
        let _ = parse_extension(&der);
        let a = appraise_certificate(&verifier(&policy(&[SERVER_MODULE], &[])), &der, None, SystemTime::now());
        if tbs_range(original).contains(&i) {
            prop_assert!(!a.verified(), "byte {} of the signed part changed, yet accepted", i);
        }
        let gramine = pem_cert(INTEROP[0]);
        let mut der = gramine.clone();
        let i = at.index(der.len());
        der[i] ^= 1 << bit;
        if let Ok(evidence) = parse_extension(&der) {
            let _ = evidence.binding();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A node's ingress certificate: what it serves, bound by the evidence

fn served_table() -> lamina_types::ingress::ServedTable {
    use lamina_types::ingress::{EndpointAttestation, HttpService, ServedEndpoint, ServedTable};
    ServedTable::new(vec![ServedEndpoint {
        workload: "edge".parse().expect("name"),
        replica: 0,
        service: HttpService {
            routes: vec!["/readings".parse().expect("route")],
            host: None,
            attestation: EndpointAttestation::Node,
        },
        module: ModuleHash::of(SERVER_MODULE),
        config_digest: [7; 32],
    }])
}

#[test]
fn an_ingress_certificate_carries_the_served_table_its_evidence_binds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let platform = SimPlatform::open(dir.path()).expect("sim platform");
    let table = served_table();
    let request = CertificateRequest::new().expect("key").serving(&table);
    let claims = request.claims(PlatformKind::Sim, vec![1; 32], None, request.served_digest());
    let envelope = lamina_tee::attest(&platform, &claims).expect("envelope");
    let cert = request.finish(&envelope).expect("certificate");
    let v = verifier(&policy(&[], &[ca_key(dir.path())]));
    let a = appraise_certificate(&v, &cert.cert_der, None, SystemTime::now());
    assert!(a.verified(), "{a:?}");
    assert!(passed(&a, "ratls.served"), "{a:?}");
    let evidence = parse_extension(&cert.cert_der).expect("extension");
    let read = evidence.served_table().expect("a table").expect("well-formed");
    assert_eq!(read, table);
    let endpoint = read.endpoint_for(Some("10.0.0.2"), "/readings/today").expect("the endpoint");
    assert_eq!(endpoint.module, ModuleHash::of(SERVER_MODULE));
    // An ordinary instance certificate carries none.
    let plain = parse_extension(&attested_cert(dir.path(), SERVER_MODULE).cert_der).expect("extension");
    assert!(plain.served_table().is_none());
}

#[test]
fn an_ingress_certificate_whose_evidence_claims_another_table_or_a_module_is_not_issued() {
    let dir = tempfile::tempdir().expect("temp dir");
    let platform = SimPlatform::open(dir.path()).expect("sim platform");
    let table = served_table();
    // Claims for another table (the relabelled or swapped table an attacker would want).
    let request = CertificateRequest::new().expect("key").serving(&table);
    let claims = request.claims(PlatformKind::Sim, vec![1; 32], None, Some([0; 32]));
    let envelope = lamina_tee::attest(&platform, &claims).expect("envelope");
    assert!(matches!(request.finish(&envelope), Err(RatlsError::Issue(_))));
    // Claims naming one module for a node that serves several.
    let request = CertificateRequest::new().expect("key").serving(&table);
    let claims =
        request.claims(PlatformKind::Sim, vec![1; 32], Some(ModuleHash::of(SERVER_MODULE)), request.served_digest());
    let envelope = lamina_tee::attest(&platform, &claims).expect("envelope");
    assert!(matches!(request.finish(&envelope), Err(RatlsError::Issue(_))));
}

#[test]
fn a_served_table_swapped_into_a_genuine_certificate_fails_its_binding() {
    // A table the evidence does not hash to, in a certificate signed by the attested key
    // itself (the worst case: the node's own key signing a table its evidence never claimed).
    let dir = tempfile::tempdir().expect("temp dir");
    let platform = SimPlatform::open(dir.path()).expect("sim platform");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let spki = key.subject_public_key_info();
    let genuine = served_table();
    let claims = lamina_types::Claims {
        platform: PlatformKind::Sim,
        runtime_measurement: vec![1; 32],
        module_hash: None,
        config_digest: Some(lamina_types::ingress::ServedTable::digest_of(&genuine.encode())),
        instance_key: Some(spki.clone()),
        nonce: vec![9; 32],
        issued_at: SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs(),
    };
    let envelope = lamina_tee::attest(&platform, &claims).expect("envelope");
    let mut swapped = genuine.clone();
    swapped.endpoints[0].module = ModuleHash::of(b"someone else's module");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(
        &[2, 23, 133, 5, 4, 9],
        lamina_attest::ratls::lamina_extension_serving(&envelope, &spki, Some(&swapped.encode())),
    ));
    let cert = params.self_signed(&key).expect("certificate");
    let v = verifier(&policy(&[], &[ca_key(dir.path())]));
    let a = appraise_certificate(&v, cert.der(), None, SystemTime::now());
    assert!(!a.verified());
    let failed: Vec<_> = a.checks.iter().filter(|c| !c.ok).collect();
    assert!(
        failed.iter().any(|c| c.name == "ratls.served" && c.detail.contains("the table was replaced")),
        "{failed:?}"
    );
}

/// A relying party of a node's ingress: the appraisal of the ingress certificate by a client
/// going to `url`, with a policy listing `modules`.
fn appraise_ingress(dir: &Path, modules: &[&[u8]], url: Option<&str>) -> (bool, Appraisal) {
    let platform = SimPlatform::open(dir).expect("sim platform");
    let table = served_table();
    let request = CertificateRequest::new().expect("key").serving(&table);
    let claims = request.claims(PlatformKind::Sim, vec![1; 32], None, request.served_digest());
    let cert = request.finish(&lamina_tee::attest(&platform, &claims).expect("envelope")).expect("certificate");
    let mut verifier = AttestedServerVerifier::new(verifier(&policy(modules, &[ca_key(dir)])));
    if let Some(url) = url {
        verifier = verifier.for_destination(lamina_attest::ratls::Destination::of_url(url).expect("a URL"));
    }
    let config = lamina_attest::ratls::relying_party_config(verifier.clone()).expect("client config");
    let server = lamina_attest::ratls::open_server_config(&cert).expect("server config");
    let mut client = ClientConnection::new(Arc::new(config), server_name()).expect("client");
    let mut server = ServerConnection::new(Arc::new(server)).expect("server");
    let ok = handshake(&mut client, &mut server).is_ok();
    (ok, verifier.last_appraisal().expect("appraised"))
}

#[test]
fn a_client_of_an_ingress_checks_the_module_behind_the_route_it_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The route is declared and its module is one the policy lists.
    let (ok, a) = appraise_ingress(dir.path(), &[SERVER_MODULE], Some("https://10.0.0.2:8443/readings/today?x=1"));
    assert!(ok && a.verified(), "{a:?}");
    let route = a.checks.iter().find(|c| c.name == "ratls.route").expect("a route check");
    assert!(
        route.detail.contains("workload edge") && route.detail.contains(&ModuleHash::of(SERVER_MODULE).to_string())
    );
    // Its module is not one the policy lists: refused in the handshake.
    let (ok, a) = appraise_ingress(dir.path(), &[CLIENT_MODULE], Some("https://10.0.0.2:8443/readings"));
    assert!(!ok && !a.verified());
    assert!(a.checks.iter().any(|c| !c.ok && c.name == "policy.module_hash"), "{a:?}");
    // A route nothing serves: no module to check, refused.
    let (ok, a) = appraise_ingress(dir.path(), &[SERVER_MODULE], Some("https://10.0.0.2:8443/other"));
    assert!(!ok);
    assert!(a.checks.iter().any(|c| !c.ok && c.name == "ratls.route"), "{a:?}");
    // A client that says nothing of where it goes gets no module to check: a policy listing
    // modules refuses; one allowing any module accepts the node.
    let (ok, _) = appraise_ingress(dir.path(), &[SERVER_MODULE], None);
    assert!(!ok, "fail closed");
    let (ok, a) = appraise_ingress(dir.path(), &[], None);
    assert!(ok && a.verified(), "{a:?}");
}

#[test]
fn a_destination_is_read_from_a_url() {
    use lamina_attest::ratls::Destination;
    let d = Destination::of_url("https://sensor.example:8443/readings/1?x=2#f").expect("url");
    assert_eq!((d.host.as_deref(), d.path.as_str()), (Some("sensor.example"), "/readings/1"));
    let d = Destination::of_url("https://[::1]:8443").expect("url");
    assert_eq!((d.host.as_deref(), d.path.as_str()), (Some("::1"), "/"));
    assert!(Destination::of_url("https://user@host/").is_err());
    assert!(Destination::of_url("host/path").is_err());
    assert!(Destination::of_url("https://:8443/").is_err());
}
