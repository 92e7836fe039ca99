//! The control plane's API over TLS, in process: enrolment with a join token and sim evidence
//! answering a challenge, deployments, heartbeats that return the desired state, a restart that
//! keeps everything; and the refusals: no or wrong credentials, a reused token, replayed
//! evidence, a malformed manifest.

use std::path::Path;
use std::time::Duration;

use lamina_attest::{Policy, TrustAnchors, Verifier};
use lamina_control::{ServeOptions, Store, serve};
use lamina_types::{Claims, PlatformKind};
use serde_json::{Value, json};

fn verifier() -> Verifier {
    let mut anchors = TrustAnchors::default();
    let policy = Policy::parse("allow_sim = true\n", Path::new("."), &mut anchors).expect("policy");
    Verifier::new(Some(policy), anchors)
}

fn evidence(state: &Path, nonce_hex: &str) -> String {
    let sim = lamina_tee::sim::SimPlatform::open(state).expect("sim");
    let claims = Claims {
        platform: PlatformKind::Sim,
        runtime_measurement: vec![0; 32],
        module_hash: None,
        config_digest: None,
        instance_key: None,
        nonce: hex::decode(nonce_hex).expect("hex"),
        issued_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    hex::encode(lamina_tee::attest(&sim, &claims).expect("attests").to_cbor())
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(cert: &[u8], base: &str) -> Self {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_der(cert).expect("certificate"))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Client { http, base: base.replace("127.0.0.1", "localhost") }
    }

    async fn call(&self, method: reqwest::Method, path: &str, auth: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the request reaches the control plane");
        let status = resp.status().as_u16();
        let value = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, value)
    }

    async fn deploy(&self, admin: &str, manifest: &str) -> (u16, Value) {
        let resp = self
            .http
            .put(format!("{}/v1/deployments", self.base))
            .bearer_auth(admin)
            .body(manifest.to_owned())
            .send()
            .await
            .expect("reaches");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

const APP: &str = r#"
[[workload]]
name = "filter"
module = "filter.wasm"
replicas = 1
[workload.constraints]
zones = ["edge"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_deploy_heartbeat_and_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("control");
    let node_state = dir.path().join("node");
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        public_address: None,
        names: Vec::new(),
        tick: Duration::from_millis(200),
    };
    let running = serve(Store::open(&state).expect("store"), verifier(), options.clone()).await.expect("serves");
    let admin = lamina_control::admin_token(&state).expect("admin token");
    let c = Client::new(&running.certificate, &running.public_address);

    let (code, health) = c.call(reqwest::Method::GET, "/v1/health", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(health["fingerprint"], hex::encode(running.fingerprint));

    // The operator's endpoints need the admin token.
    assert_eq!(c.call(reqwest::Method::GET, "/v1/status", None, None).await.0, 401);
    assert_eq!(c.call(reqwest::Method::GET, "/v1/status", Some("wrong"), None).await.0, 401);
    let (code, token) = c.call(reqwest::Method::POST, "/v1/tokens", Some(&admin), Some(json!({}))).await;
    assert_eq!(code, 200);
    let token = token["token"].as_str().expect("a token").to_owned();

    // Enrol: a challenge, evidence over it, the token.
    let (_, ch) = c.call(reqwest::Method::POST, "/v1/challenge", None, None).await;
    let nonce = ch["nonce"].as_str().expect("nonce").to_owned();
    let ev = evidence(&node_state, &nonce);
    let enrol = |token: &str, nonce: &str, ev: &str, name: &str| {
        json!({
            "token": token, "name": name, "target": "aarch64-unknown-linux-gnu", "platform": "sim",
            "memory": 536870912u64, "zone": "edge", "nonce": nonce, "evidence": ev,
        })
    };
    let (code, enrolled) =
        c.call(reqwest::Method::POST, "/v1/nodes/enroll", None, Some(enrol(&token, &nonce, &ev, "edge-1"))).await;
    assert_eq!(code, 200, "{enrolled}");
    let credential = enrolled["credential"].as_str().expect("credential").to_owned();

    // The same token again, with a fresh challenge: refused as used.
    let (_, ch) = c.call(reqwest::Method::POST, "/v1/challenge", None, None).await;
    let fresh = ch["nonce"].as_str().expect("nonce").to_owned();
    let (code, e) = c
        .call(
            reqwest::Method::POST,
            "/v1/nodes/enroll",
            None,
            Some(enrol(&token, &fresh, &evidence(&node_state, &fresh), "edge-2")),
        )
        .await;
    assert_eq!(code, 401);
    assert!(e["error"].as_str().unwrap_or("").contains("already used by node `edge-1`"), "{e}");
    // Replayed evidence, with a new token: the challenge was used up.
    let (_, t2) = c.call(reqwest::Method::POST, "/v1/tokens", Some(&admin), Some(json!({}))).await;
    let t2 = t2["token"].as_str().expect("token").to_owned();
    let (code, e) =
        c.call(reqwest::Method::POST, "/v1/nodes/enroll", None, Some(enrol(&t2, &nonce, &ev, "edge-3"))).await;
    assert_eq!(code, 401);
    assert!(e["error"].as_str().unwrap_or("").contains("replayed"), "{e}");
    // A token that is not a token.
    let (code, e) =
        c.call(reqwest::Method::POST, "/v1/nodes/enroll", None, Some(enrol("hello", &fresh, &ev, "edge-4"))).await;
    assert_eq!(code, 401);
    assert!(e["error"].as_str().unwrap_or("").contains("not a Lamina join token"), "{e}");

    // Deploy: a malformed manifest is refused naming the line; a good one is placed.
    let (code, e) = c.deploy(&admin, &APP.replace("replicas = 1", "replicas = -1")).await;
    assert_eq!(code, 400);
    assert!(e["error"].as_str().unwrap_or("").contains("line 5: workload \"filter\": replicas"), "{e}");
    let (code, deployed) = c.deploy(&admin, APP).await;
    assert_eq!(code, 200, "{deployed}");

    // The node's heartbeat returns what it must run; only its own credential works.
    let path = "/v1/nodes/edge-1/heartbeat";
    assert_eq!(c.call(reqwest::Method::POST, path, Some(&admin), Some(json!({}))).await.0, 401);
    let (code, desired) = c.call(reqwest::Method::POST, path, Some(&credential), Some(json!({}))).await;
    assert_eq!(code, 200, "{desired}");
    assert_eq!(desired["assignments"][0]["placement"]["workload"], "filter");
    let generation = desired["generation"].clone();

    // A restart keeps the registry, the credentials and the certificate.
    let fingerprint = running.fingerprint;
    running.stop().await;
    let running = serve(Store::open(&state).expect("store"), verifier(), options).await.expect("serves again");
    assert_eq!(running.fingerprint, fingerprint, "the same certificate: tokens stay valid");
    let c = Client::new(&running.certificate, &running.public_address);
    let (code, desired) = c.call(reqwest::Method::POST, path, Some(&credential), Some(json!({}))).await;
    assert_eq!(code, 200, "{desired}");
    assert_eq!(desired["generation"], generation, "nothing re-planned");
    let (_, status) = c.call(reqwest::Method::GET, "/v1/status", Some(&admin), None).await;
    assert_eq!(status["nodes"][0]["name"], "edge-1");
    assert_eq!(status["placements"][0]["node"], "edge-1");
}
