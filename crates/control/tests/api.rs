//! The control plane's API over TLS, in process: enrolment with a join token and sim evidence
//! answering a challenge, deployments, heartbeats that return the desired state, a restart that
//! keeps everything; and the refusals: no or wrong keys, evidence that binds another key, a control plane whose evidence
//! the node's policy refuses, a reused token, replayed
//! evidence, a malformed manifest.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::path::Path;
use std::time::Duration;

use lamina_attest::ratls::CertificateRequest;
use lamina_attest::{Policy, TrustAnchors, Verifier};
use lamina_control::{Running, ServeOptions, Store, serve};
use lamina_types::{Claims, PlatformKind};
use lamina_wire::{ClientError, ControlClient};
use serde_json::{Value, json};

fn verifier() -> Verifier {
    let mut anchors = TrustAnchors::default();
    let policy = Policy::parse("allow_sim = true\n", Path::new("."), &mut anchors).expect("policy");
    Verifier::new(Some(policy), anchors)
}

fn evidence(state: &Path, nonce_hex: &str, key: &[u8]) -> lamina_wire::Evidence {
    module_evidence(state, nonce_hex, key, None)
}

fn module_evidence(
    state: &Path,
    nonce_hex: &str,
    key: &[u8],
    module: Option<lamina_types::ModuleHash>,
) -> lamina_wire::Evidence {
    let sim = lamina_tee::sim::SimPlatform::open(state).expect("sim");
    let claims = Claims {
        platform: PlatformKind::Sim,
        runtime_measurement: vec![0; 32],
        module_hash: module,
        config_digest: None,
        instance_key: Some(key.to_vec()),
        nonce: hex::decode(nonce_hex).expect("hex"),
        issued_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    lamina_wire::Evidence(lamina_tee::attest(&sim, &claims).expect("attests"))
}

/// A node's TLS key: PKCS#8 DER and its SubjectPublicKeyInfo.
struct NodeKey {
    pkcs8: Vec<u8>,
    spki: Vec<u8>,
}

impl NodeKey {
    fn new() -> Self {
        use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        NodeKey {
            pkcs8: secret.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(),
            spki: secret.public_key().to_public_key_der().expect("spki").as_bytes().to_vec(),
        }
    }

    /// An attested certificate for this key (sim evidence from `state`).
    fn cert(&self, state: &Path) -> lamina_attest::ratls::AttestedCert {
        let sim = lamina_tee::sim::SimPlatform::open(state).expect("sim");
        let request = CertificateRequest::with_key(&self.pkcs8).expect("request");
        let claims = request.claims(PlatformKind::Sim, vec![0; 32], None, None);
        request.finish(&lamina_tee::attest(&sim, &claims).expect("attests")).expect("cert")
    }

    /// A client presenting an attested certificate for this key (sim evidence from `state`),
    /// checking the control plane's evidence with `verifier`.
    fn client(&self, server: &Server, state: &Path, verifier: Option<Verifier>) -> ControlClient {
        let r = server.running();
        ControlClient::attested(&r.public_address, r.fingerprint, verifier.map(std::sync::Arc::new), &self.cert(state))
            .expect("client")
    }

    /// Enrols as `name` with a fresh join token.
    fn enrol(&self, server: &Server, operator: &ControlClient, state: &Path, name: &str) {
        let node = self.client(server, state, None);
        let token = operator.create_token(&lamina_wire::TokenRequest::default()).expect("token").token;
        let nonce = node.challenge().expect("challenge").nonce;
        let request = lamina_wire::EnrolRequest {
            token,
            node: lamina_scheduler::NodeSpec {
                name: name.into(),
                target: lamina_types::Target::Aarch64Linux,
                platform: PlatformKind::Sim,
                memory: lamina_types::ByteSize::mib(512),
                labels: Default::default(),
                zone: "edge".into(),
            },
            profile: lamina_types::Profile::Server,
            evidence: evidence(state, &nonce, &self.spki),
            nonce,
        };
        node.enrol(&request).expect("enrols");
    }
}

fn platform(state: &Path) -> Box<dyn lamina_tee::Platform + Send> {
    Box::new(lamina_tee::sim::SimPlatform::open(state).expect("sim"))
}

/// Runs a control plane on a runtime of its own, so the test can use the blocking client.
struct Server {
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
}

impl Server {
    fn start(state: &Path, options: &ServeOptions) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let running = runtime
            .block_on(serve(Store::open(state).expect("store"), verifier(), platform(state), options.clone()))
            .expect("serves");
        Server { runtime, running: Some(running) }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    fn stop(mut self) {
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.stop());
        }
    }
}

/// A control plane on loopback, quick to declare nodes lost, with metrics.
fn options() -> ServeOptions {
    ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        public_address: None,
        names: Vec::new(),
        tick: Duration::from_millis(200),
        settings: lamina_control::Settings {
            lost_after: Duration::from_secs(2),
            ..lamina_control::Settings::default()
        },
        messaging: None,
        nats_authorization: None,
        replica_policy: None,
        metrics: Some("127.0.0.1:0".parse().expect("addr")),
    }
}

fn client(server: &Server, auth: Option<&str>) -> ControlClient {
    let r = server.running();
    ControlClient::new(&r.public_address, r.fingerprint, auth.map(str::to_owned)).expect("client")
}

/// What a Prometheus server gets from a metrics endpoint.
fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n").expect("asks");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("reads");
    text
}

fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Refused { status, message }) => (status, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const APP: &str = r#"
[[workload]]
name = "filter"
module = "filter.wasm"
replicas = 1
secrets = ["db-password"]
topics = ["sensors.*.celsius"]
[workload.constraints]
zones = ["edge"]
"#;

#[test]
fn enrol_deploy_heartbeat_and_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let node_state = dir.path().join("node");
    let options = options();
    let server = Server::start(&state, &options);
    let admin = lamina_control::admin_token(&state).expect("admin token");
    let anonymous = client(&server, None);
    let operator = client(&server, Some(&admin));

    let health: Value = anonymous.get("/v1/health").expect("health");
    assert_eq!(health["fingerprint"], hex::encode(server.running().fingerprint));

    // Pinning: a client expecting another certificate does not even connect.
    let wrong = ControlClient::new(&server.running().public_address, [0; 32], None).expect("client");
    let e = wrong.get::<Value>("/v1/health").expect_err("another fingerprint");
    assert!(e.to_string().contains("fingerprint"), "{e}");

    // The operator's endpoints need the admin token.
    assert_eq!(refused(anonymous.get::<Value>("/v1/status")).0, 401);
    assert_eq!(refused(client(&server, Some("wrong")).get::<Value>("/v1/status")).0, 401);
    let token: Value = operator.post("/v1/tokens", &json!({})).expect("token");
    let token = token["token"].as_str().expect("a token").to_owned();

    // Enrol over mutually attested TLS: the node checks the control plane's evidence, presents
    // its own certificate, and answers a challenge with evidence that binds its TLS key.
    let key = NodeKey::new();
    let node = key.client(&server, &node_state, Some(verifier()));
    let challenge = || -> String {
        let ch: Value = anonymous.post("/v1/challenge", &json!({})).expect("challenge");
        ch["nonce"].as_str().expect("nonce").to_owned()
    };
    let enrol = |token: &str, nonce: &str, ev: &lamina_wire::Evidence, name: &str| {
        json!({
            "token": token, "name": name, "target": "aarch64-unknown-linux-gnu", "platform": "sim",
            "memory": 536870912u64, "zone": "edge", "nonce": nonce, "evidence": ev,
        })
    };
    // A node whose policy for the control plane refuses sim does not even connect.
    let strict = {
        let mut anchors = TrustAnchors::default();
        Verifier::new(Some(Policy::parse("", Path::new("."), &mut anchors).expect("policy")), anchors)
    };
    let e = key.client(&server, &node_state, Some(strict)).get::<Value>("/v1/health").expect_err("refused");
    assert!(e.to_string().contains("does not pass this client's policy"), "{e}");
    // Without a client certificate, or with evidence that binds another key: refused.
    let nonce = challenge();
    let (code, message) = refused(anonymous.post::<_, Value>(
        "/v1/nodes/enroll",
        &enrol(&token, &nonce, &evidence(&node_state, &nonce, &key.spki), "edge-1"),
    ));
    assert_eq!(code, 401);
    assert!(message.contains("presented none"), "{message}");
    let nonce = challenge();
    let other = NodeKey::new();
    let (code, message) = refused(node.post::<_, Value>(
        "/v1/nodes/enroll",
        &enrol(&token, &nonce, &evidence(&node_state, &nonce, &other.spki), "edge-1"),
    ));
    assert_eq!(code, 403);
    assert!(message.contains("does not bind the TLS key"), "{message}");
    let nonce = challenge();
    let ev = evidence(&node_state, &nonce, &key.spki);
    let enrolled: Value = node.post("/v1/nodes/enroll", &enrol(&token, &nonce, &ev, "edge-1")).expect("enrols");

    // The same token again, with a fresh challenge: refused as used.
    let fresh = challenge();
    let (code, message) = refused(other.client(&server, &node_state, None).post::<_, Value>(
        "/v1/nodes/enroll",
        &enrol(&token, &fresh, &evidence(&node_state, &fresh, &other.spki), "edge-2"),
    ));
    assert_eq!(code, 401);
    assert!(message.contains("already used by node `edge-1`"), "{message}");
    // Replayed evidence, with a new token: the challenge was used up.
    let t2: Value = operator.post("/v1/tokens", &json!({})).expect("token");
    let t2 = t2["token"].as_str().expect("token").to_owned();
    let (code, message) = refused(node.post::<_, Value>("/v1/nodes/enroll", &enrol(&t2, &nonce, &ev, "edge-3")));
    assert_eq!(code, 409);
    assert!(message.contains("replayed"), "{message}");
    // A token that is not a token.
    let (code, message) = refused(node.post::<_, Value>("/v1/nodes/enroll", &enrol("hello", &fresh, &ev, "edge-4")));
    assert_eq!(code, 401);
    assert!(message.contains("not a Lamina join token"), "{message}");

    // Deploy: modules are uploaded first and referred to by hash; an unknown one is refused.
    let mut app = lamina_types::Deployment::parse(APP).expect("manifest");
    let (code, message) = refused(operator.put::<_, Value>("/v1/deployments", &app));
    assert_eq!(code, 400);
    assert!(message.contains("is a path"), "{message}");
    app.workloads[0].module = lamina_types::ModuleRef::Hash(lamina_types::ModuleHash::of(b"never uploaded"));
    let (code, message) = refused(operator.put::<_, Value>("/v1/deployments", &app));
    assert_eq!(code, 400);
    assert!(message.contains("unknown to the control plane"), "{message}");
    assert_eq!(refused(operator.post_bytes::<Value>("/v1/modules", b"not wasm".to_vec())).0, 400);
    let mut large = b"\0asm\x01\0\0\0".to_vec();
    large.resize(3 << 20, 0);
    let _: Value = operator.post_bytes("/v1/modules", large).expect("a 3 MiB module is taken");
    let wasm = b"\0asm\x01\0\0\0".to_vec();
    let uploaded: Value = operator.post_bytes("/v1/modules", wasm.clone()).expect("uploads");
    assert_eq!(uploaded["module"], lamina_types::ModuleHash::of(&wasm).to_string());
    app.workloads[0].module = lamina_types::ModuleRef::Hash(lamina_types::ModuleHash::of(&wasm));
    // Its secret must be set first; only the operator sets it; at rest it is ciphertext.
    let (code, message) = refused(operator.put::<_, Value>("/v1/deployments", &app));
    assert_eq!(code, 400);
    assert!(message.contains("secret `db-password` is not set"), "{message}");
    assert_eq!(refused(anonymous.put_text::<Value>("/v1/secrets/db-password", "x".into())).0, 401);
    assert_eq!(refused(operator.put_text::<Value>("/v1/secrets/bad%20name", "x".into())).0, 400);
    let _: Value = operator.put_text("/v1/secrets/db-password", "hunter2-hunter2".into()).expect("sets");
    let listed: Value = operator.get("/v1/secrets").expect("lists");
    assert_eq!(listed["secrets"], json!(["db-password"]));
    let at_rest = std::fs::read(state.join("secrets/db-password.sealed")).expect("stored");
    assert!(!at_rest.windows(7).any(|w| w == b"hunter2"), "secrets are encrypted at rest");
    let _: Value = operator.put("/v1/deployments", &app).expect("deploys");

    // The node's heartbeat returns what it must run; only its own key works.
    let path = "/v1/nodes/edge-1/heartbeat";
    assert_eq!(refused(operator.post::<_, Value>(path, &json!({}))).0, 401);
    let other_client = other.client(&server, &node_state, None);
    let (code, message) = refused(other_client.post::<_, Value>(path, &json!({})));
    assert_eq!(code, 401);
    assert!(message.contains("not the key of node `edge-1`"), "{message}");
    let artifact_key = {
        use p256::pkcs8::DecodePublicKey as _;
        let pem = enrolled["artifact_key"].as_str().expect("artifact key");
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem).expect("a P-256 key")
    };
    // Signed by the control plane, for this node: a copy the node can trust offline.
    let signed: lamina_wire::SignedDesired = node.post(path, &json!({})).expect("heartbeat");
    let desired = signed.verify(&artifact_key, "edge-1").expect("signed");
    assert_eq!(desired.assignments[0].placement.workload, "filter");
    let generation = desired.generation;
    assert!(signed.verify(&artifact_key, "edge-2").expect_err("another node's").contains("not `edge-2`"));
    let mut changed = signed.clone();
    changed.state = changed.state.replace("filter", "filtex");
    assert!(changed.verify(&artifact_key, "edge-1").expect_err("changed").contains("does not verify"));

    // Secrets are released to an instance that attests its module, encrypted to its key.
    let module = lamina_types::ModuleHash::of(&wasm);
    let instance = p256::SecretKey::random(&mut rand_core::OsRng);
    let instance_spki = {
        use p256::pkcs8::EncodePublicKey as _;
        instance.public_key().to_public_key_der().expect("spki").as_bytes().to_vec()
    };
    let release = |nonce: &str, module: lamina_types::ModuleHash, replica: u32| {
        json!({
            "workload": "filter", "replica": replica, "nonce": nonce,
            "evidence": module_evidence(&node_state, nonce, &instance_spki, Some(module)),
        })
    };
    // Topic keys go only to an instance that attested.
    let topic_keys = |topics: &[&str]| json!({ "workload": "filter", "replica": 0, "topics": topics, "nonce": hex::encode([7u8; 32]) });
    let (code, message) =
        refused(node.post::<_, Value>("/v1/nodes/edge-1/topic-keys", &topic_keys(&["sensors.a.celsius"])));
    assert_eq!(code, 403);
    assert!(message.contains("has not attested"), "{message}");
    let nonce = challenge();
    let released: lamina_wire::release::Released =
        node.post("/v1/nodes/edge-1/release", &release(&nonce, module, 0)).expect("released");
    let bundle =
        lamina_wire::release::decrypt_as_instance(&released, &instance, &hex::decode(&nonce).expect("hex"), &module)
            .expect("opens with the instance key");
    assert_eq!(bundle.values().expect("values")[0].1.as_slice(), b"hunter2-hunter2");
    assert!(!released.ciphertext.contains("hunter2"));
    // Now it attested: the keys of its topics, encrypted to its key, one per topic, the same
    // on every request; not for topics outside its patterns, nor through another node's key.
    let released: lamina_wire::release::Released = node
        .post("/v1/nodes/edge-1/topic-keys", &topic_keys(&["sensors.a.celsius", "sensors.b.celsius"]))
        .expect("topic keys");
    let keys = lamina_wire::release::decrypt_as_instance(&released, &instance, &[7u8; 32], &module).expect("opens");
    let (a, b) = (keys.topic_key("sensors.a.celsius").expect("hex"), keys.topic_key("sensors.b.celsius").expect("hex"));
    let (a, b) = (a.expect("key a"), b.expect("key b"));
    assert_ne!(*a, *b, "one key per topic");
    assert_eq!(keys.epoch, lamina_wire::TOPIC_EPOCH);
    let again: lamina_wire::release::Released =
        node.post("/v1/nodes/edge-1/topic-keys", &topic_keys(&["sensors.a.celsius"])).expect("topic keys");
    let again = lamina_wire::release::decrypt_as_instance(&again, &instance, &[7u8; 32], &module).expect("opens");
    assert_eq!(*again.topic_key("sensors.a.celsius").expect("hex").expect("key"), *a);
    let (code, message) =
        refused(node.post::<_, Value>("/v1/nodes/edge-1/topic-keys", &topic_keys(&["sensors.a.kelvin"])));
    assert_eq!(code, 403);
    assert!(message.contains("may not use topic `sensors.a.kelvin`"), "{message}");
    for bad in [&["sensors.*.celsius"][..], &[]] {
        assert_eq!(refused(node.post::<_, Value>("/v1/nodes/edge-1/topic-keys", &topic_keys(bad))).0, 400);
    }
    assert_eq!(
        refused(operator.post::<_, Value>("/v1/nodes/edge-1/topic-keys", &topic_keys(&["sensors.a.celsius"]))).0,
        401
    );
    // Replayed, for another module, for an instance not on this node, by another key: refused.
    assert_eq!(refused(node.post::<_, Value>("/v1/nodes/edge-1/release", &release(&nonce, module, 0))).0, 409);
    let nonce = challenge();
    let (code, message) = refused(
        node.post::<_, Value>("/v1/nodes/edge-1/release", &release(&nonce, lamina_types::ModuleHash::of(b"other"), 0)),
    );
    assert_eq!(code, 403);
    assert!(message.contains("is not of workload filter's module"), "{message}");
    let nonce = challenge();
    let (code, message) = refused(node.post::<_, Value>("/v1/nodes/edge-1/release", &release(&nonce, module, 7)));
    assert_eq!(code, 403);
    assert!(message.contains("not assigned to node `edge-1`"), "{message}");
    assert_eq!(
        refused(operator.post::<_, Value>("/v1/nodes/edge-1/release", &release(&challenge(), module, 0))).0,
        401
    );

    // The metrics endpoint counts what happened, and reads the registry's state.
    let metrics = scrape(server.running().metrics.as_ref().expect("a metrics endpoint").addr());
    for line in [
        "lamina_control_nodes{state=\"ready\"} 1",
        "lamina_control_attestations_total{verdict=\"pass\"}",
        "lamina_control_attestations_total{verdict=\"stale\"}",
        "lamina_control_attestations_total{verdict=\"fail\"}",
        "lamina_control_releases_total{kind=\"secrets\",result=\"ok\"} 1",
        "lamina_control_releases_total{kind=\"topic-keys\",result=\"refused\"}",
        "lamina_control_heartbeats_total",
        "lamina_control_placements 1",
        "lamina_control_heartbeat_lag_seconds{node=\"edge-1\"}",
        "lamina_control_attestation_seconds_count",
    ] {
        assert!(metrics.lines().any(|l| l.starts_with(line)), "no `{line}` in\n{metrics}");
    }

    // Its artifact: compiled for its target (aarch64), signed by the control plane's key.
    let module_hash = lamina_types::ModuleHash::of(&wasm).to_string();
    let signed: Value = node.get(&format!("/v1/nodes/edge-1/artifacts/{module_hash}")).expect("artifact");
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64")).expect("base64")
    };
    let (artifact, signature) = (b64(&signed["artifact"]), b64(&signed["signature"]));
    let (decoded, _) =
        lamina_artifact::signing::verify(&artifact, &signature, &[artifact_key]).expect("signed by the control plane");
    assert_eq!(decoded.header.target, lamina_types::Target::Aarch64Linux);
    // The attack: the control plane's artifact cache patched on disk (here, another module's
    // compiled code under this module's file name). The control plane does not sign it: the
    // cached copy fails its own signature check and the module is compiled again.
    let cached = state
        .join("artifacts")
        .join(format!("{}-aarch64-unknown-linux-gnu-server.lamart", module_hash.trim_start_matches("sha256:")));
    assert!(cached.exists(), "the artifact is cached at {}", cached.display());
    let mut patched = artifact.clone();
    let last = patched.len() - 1;
    patched[last] ^= 0x40;
    std::fs::write(&cached, &patched).expect("patch the cache");
    let again: Value = node.get(&format!("/v1/nodes/edge-1/artifacts/{module_hash}")).expect("artifact again");
    let (artifact_again, signature_again) = (b64(&again["artifact"]), b64(&again["signature"]));
    let (decoded, _) = lamina_artifact::signing::verify(&artifact_again, &signature_again, &[artifact_key])
        .expect("what it signs verifies");
    assert_eq!(
        decoded.code,
        &artifact[artifact.len() - decoded.code.len()..],
        "the code compiled again, not the patch"
    );
    assert_ne!(std::fs::read(&cached).expect("cache"), patched, "the patched file was replaced");
    let unassigned = format!("/v1/nodes/edge-1/artifacts/{}", lamina_types::ModuleHash::of(b"x"));
    assert_eq!(refused(node.get::<Value>(&unassigned)).0, 403, "only what is assigned to it");

    // A restart keeps the registry, the nodes' keys and the control plane's key.
    let fingerprint = server.running().fingerprint;
    server.stop();
    // Down for longer than --lost-after: the node still gets time to reconnect.
    std::thread::sleep(Duration::from_millis(2500));
    let server = Server::start(&state, &options);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(server.running().fingerprint, fingerprint, "the same key: tokens stay valid");
    let node = key.client(&server, &node_state, Some(verifier()));
    let signed: lamina_wire::SignedDesired = node.post(path, &json!({})).expect("heartbeat after a restart");
    assert_eq!(signed.verify(&artifact_key, "edge-1").expect("signed").generation, generation, "nothing re-planned");
    let status: Value = client(&server, Some(&admin)).get("/v1/status").expect("status");
    assert_eq!(status["nodes"][0]["name"], "edge-1");
    assert_eq!(status["placements"][0]["node"], "edge-1");

    // A node waiting for a new desired state hears of a deployment as soon as it is made.
    let wait = format!("/v1/nodes/edge-1/desired?after={generation}&wait_ms=20000");
    let operator = client(&server, Some(&admin));
    let mut more = app.clone();
    more.workloads[0].name = "filter-b".parse().expect("a workload name");
    let deployer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let _: Value = operator.put("/v1/deployments", &more).expect("deploys");
    });
    let started = std::time::Instant::now();
    let signed: lamina_wire::SignedDesired = node.get(&wait).expect("the long poll answers");
    let newer = signed.verify(&artifact_key, "edge-1").expect("signed");
    assert!(newer.generation > generation, "a newer generation");
    assert!(newer.assignments.iter().any(|a| a.placement.workload == "filter-b"));
    assert!(started.elapsed() < Duration::from_secs(15), "it answered on the change, not at the end of the wait");
    deployer.join().expect("the deployer");
    // With the generation it has and no wait, it answers at once with the same.
    let now: lamina_wire::SignedDesired =
        node.get(&format!("/v1/nodes/edge-1/desired?after={}", newer.generation)).expect("answers");
    assert_eq!(now.verify(&artifact_key, "edge-1").expect("signed").generation, newer.generation);
    let stranger = other.client(&server, &node_state, None);
    assert_eq!(refused(stranger.get::<Value>(&wait)).0, 401, "only the node itself");
    server.stop();
}

/// One unauthenticated client asks for 10,000 challenges as fast as it can, from its own
/// address: it is served its burst and then told to wait (429), the control plane keeps no
/// table of what it handed out, and a node at another address enrols and re-attests meanwhile.
#[test]
fn a_challenge_flood_from_one_client_does_not_stop_enrolment_or_reattestation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let node_state = dir.path().join("node");
    let server = Server::start(&state, &options());
    let admin = lamina_control::admin_token(&state).expect("admin token");
    let operator = client(&server, Some(&admin));
    let r = server.running();

    // The flooder: plain TLS (no client certificate) from 127.0.0.2, one kept-alive connection.
    let tls = lamina_wire::tls_config(&r.public_address, r.fingerprint, None, None).expect("tls");
    let flooder = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let url = format!("{}/v1/challenge", r.public_address);
    let (mut served, mut limited) = (0u32, 0u32);
    let mut flood_nonce = String::new();
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        let answer = flooder.post(&url).json(&json!({})).send().expect("answered");
        match answer.status().as_u16() {
            200 => {
                served += 1;
                let body: Value = answer.json().expect("json");
                flood_nonce = body["nonce"].as_str().expect("nonce").to_owned();
            }
            429 => limited += 1,
            other => panic!("the flood got {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowance = lamina_control::challenge::BURST + lamina_control::challenge::RATE_PER_SEC * (elapsed + 1.0);
    assert!(f64::from(served) <= allowance, "{served} served in {elapsed:.1} s");
    assert!(limited >= 10_000 - allowance as u32, "{limited} limited");

    // A node, from 127.0.0.1, enrols and re-attests as if nothing happened.
    let key = NodeKey::new();
    let node = key.client(&server, &node_state, Some(verifier()));
    let challenge = || -> String {
        let ch: Value = node.post("/v1/challenge", &json!({})).expect("a node gets its challenge during the flood");
        ch["nonce"].as_str().expect("nonce").to_owned()
    };
    let token: Value = operator.post("/v1/tokens", &json!({})).expect("token");
    let nonce = challenge();
    let enrolled: Value = node
        .post(
            "/v1/nodes/enroll",
            &json!({
                "token": token["token"], "name": "edge-1", "target": "aarch64-unknown-linux-gnu", "platform": "sim",
                "memory": 536870912u64, "zone": "edge", "nonce": nonce,
                "evidence": evidence(&node_state, &nonce, &key.spki),
            }),
        )
        .expect("enrols during the flood");
    assert!(enrolled["artifact_key"].is_string(), "{enrolled}");
    let nonce = challenge();
    let attested: Value = node
        .post(
            "/v1/nodes/edge-1/attest",
            &json!({ "nonce": nonce, "evidence": evidence(&node_state, &nonce, &key.spki) }),
        )
        .expect("re-attests during the flood");
    assert_eq!(attested["verified"], true, "{attested}");

    // A nonce the flooder got is good once, for evidence that passes: its own sim evidence
    // binding no key of an enrolled node gets nothing, and a made-up nonce is refused as such.
    let (code, message) = refused(node.post::<_, Value>(
        "/v1/nodes/edge-1/attest",
        &json!({ "nonce": "00".repeat(32), "evidence": evidence(&node_state, &flood_nonce, &key.spki) }),
    ));
    assert_eq!(code, 409, "{message}");
    assert!(message.contains("not issued by this control plane"), "{message}");

    // The flood from the node's own address (a neighbour behind the same NAT): the address's
    // allowance runs out, the enrolled node's does not, and it re-attests at once.
    let tls = lamina_wire::tls_config(&r.public_address, r.fingerprint, None, None).expect("tls");
    let neighbour = reqwest::blocking::Client::builder().use_preconfigured_tls(tls).build().expect("client");
    let mut limited = false;
    for _ in 0..1_000 {
        if neighbour.post(&url).json(&json!({})).send().expect("answered").status().as_u16() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the neighbour's flood ran out of its address's allowance");
    let nonce = challenge();
    let attested: Value = node
        .post(
            "/v1/nodes/edge-1/attest",
            &json!({ "nonce": nonce, "evidence": evidence(&node_state, &nonce, &key.spki) }),
        )
        .expect("re-attests while its address is flooded");
    assert_eq!(attested["verified"], true, "{attested}");

    // Evidence that is not an envelope (not hex, or hex of no envelope) is refused when the
    // body is read, before any appraisal: nothing is counted against the node, and the
    // challenge it named still answers real evidence.
    let nonce = challenge();
    for junk in ["zz", "00", "a0"] {
        let (code, message) =
            refused(node.post::<_, Value>("/v1/nodes/edge-1/attest", &json!({ "nonce": nonce, "evidence": junk })));
        assert_eq!(code, 422, "{message}");
        assert!(message.contains("evidence"), "{message}");
    }
    let attested: Value = node
        .post(
            "/v1/nodes/edge-1/attest",
            &json!({ "nonce": nonce, "evidence": evidence(&node_state, &nonce, &key.spki) }),
        )
        .expect("the challenge still answers real evidence");
    assert_eq!(attested["verified"], true, "{attested}");
    server.stop();
}

/// A body that waits for a word before it is sent: the request's headers arrive at once, its
/// body when the test says.
struct HeldBody {
    go: std::sync::mpsc::Receiver<()>,
    body: std::io::Cursor<Vec<u8>>,
    waited: bool,
}

impl std::io::Read for HeldBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.waited {
            self.waited = true;
            let _ = self.go.recv();
        }
        self.body.read(buf)
    }
}

/// A node's request whose body is slow to come: meanwhile the node is removed and its name
/// given to another machine. The request is refused when its body has come (the credentials
/// are checked again under the lock the handler acts under), not served as the new node's.
#[test]
fn a_node_removed_while_its_request_body_arrives_gets_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let server = Server::start(&state, &options());
    let admin = lamina_control::admin_token(&state).expect("admin token");
    let operator = client(&server, Some(&admin));
    let (old, new) = (NodeKey::new(), NodeKey::new());
    let (old_state, new_state) = (dir.path().join("old"), dir.path().join("new"));
    old.enrol(&server, &operator, &old_state, "edge-1");

    let r = server.running();
    let tls =
        lamina_wire::tls_config(&r.public_address, r.fingerprint, None, Some(&old.cert(&old_state))).expect("tls");
    let raw = reqwest::blocking::Client::builder().use_preconfigured_tls(tls).build().expect("client");
    let url = format!("{}{}", r.public_address, lamina_wire::paths::heartbeat("edge-1"));
    let (go, wait) = std::sync::mpsc::channel();
    let report = serde_json::to_vec(&lamina_wire::HeartbeatRequest::default()).expect("json");
    let held = HeldBody { go: wait, body: std::io::Cursor::new(report), waited: false };
    let sent = std::thread::spawn(move || {
        raw.post(&url)
            .header("content-type", "application/json")
            .body(reqwest::blocking::Body::new(held))
            .send()
            .expect("answered")
            .status()
            .as_u16()
    });
    // Its headers have passed the node's extractor; now the node is removed and its name
    // enrolled by another machine.
    std::thread::sleep(Duration::from_millis(500));
    operator.remove_node("edge-1").expect("removed");
    new.enrol(&server, &operator, &new_state, "edge-1");
    go.send(()).expect("the body goes");
    assert_eq!(sent.join().expect("the request"), 401);
    // The new machine is edge-1 now.
    let heartbeat = new.client(&server, &new_state, None).heartbeat("edge-1", &Default::default());
    assert!(heartbeat.is_ok(), "{heartbeat:?}");
    server.stop();
}

#[test]
fn a_deployment_whose_route_another_workload_serves_for_the_same_host_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let server = Server::start(&state, &options());
    let admin = lamina_control::admin_token(&state).expect("admin token");
    let operator = client(&server, Some(&admin));
    let wasm = b"\0asm\x01\0\0\0".to_vec();
    let _: Value = operator.post_bytes("/v1/modules", wasm.clone()).expect("uploads");
    let hash = lamina_types::ModuleHash::of(&wasm);
    let web = |name: &str, extra: &str| {
        let text = format!(
            "[[workload]]\nname = \"{name}\"\nmodule = \"{hash}\"\n[workload.http]\nroutes = [\"/readings\"]\n{extra}"
        );
        lamina_types::Deployment::parse(&text).expect("manifest")
    };
    let _: Value = operator.put("/v1/deployments", &web("edge", "")).expect("deploys");
    // Another workload on the same route for any host: one request could reach either.
    let (code, message) = refused(operator.put::<_, Value>("/v1/deployments", &web("edge-two", "")));
    assert_eq!(code, 409);
    assert!(message.contains("route `/readings` is also served by workload \"edge\" for the same host"), "{message}");
    // With a host of its own it is another endpoint; replacing a workload does not clash with
    // what it replaces.
    let _: Value = operator.put("/v1/deployments", &web("edge-two", "host = \"two.example\"")).expect("deploys");
    let _: Value = operator.put("/v1/deployments", &web("edge", "attestation = \"unattested-tls\"")).expect("replaces");
    // What the API is sent is checked as the manifest is: a route that is not one is refused.
    let mut raw = serde_json::to_value(web("edge-three", "host = \"three.example\"")).expect("json");
    raw["workloads"][0]["http"]["routes"] = json!(["../escape"]);
    let (code, message) = refused(operator.put::<_, Value>("/v1/deployments", &raw));
    assert!(code == 400 || code == 422, "{code}");
    assert!(message.contains("does not start with `/`"), "{message}");
    server.stop();
}
