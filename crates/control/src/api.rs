//! The control plane's HTTP API (`docs/control-api.yaml`): the operator's endpoints, guarded by
//! the admin token, and the nodes' endpoints, guarded by the credential each node gets when it
//! enrols with a join token and evidence that passes the policy.
//!
//! Handlers hold the lock on [`Control`] only while they compute; nothing awaits under it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use lamina_attest::{Expect, Verifier};
use lamina_types::{Claims, Deployment, JoinToken, PlatformKind, WorkloadSpec};
use rand_core::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::{Event, Registry, Store, StoreError, TokenBook};
use lamina_wire::{DesiredState, LOG_CHUNK, MAX_TOPICS_PER_REQUEST, SignedArtifact, TOPIC_EPOCH, paths};

/// The largest module `POST /v1/modules` takes.
const MAX_MODULE: usize = 256 << 20;

/// The largest secret `PUT /v1/secrets/{name}` takes.
const MAX_SECRET: usize = 64 << 10;

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut b);
    b
}

/// The control plane: its registry, tokens, node credentials and verifier, kept in a [`Store`].
pub struct Control {
    store: Store,
    registry: Registry,
    tokens: TokenBook,
    /// Node name → SHA-256 (hex) of the SubjectPublicKeyInfo of its TLS key, which its
    /// evidence bound when it enrolled.
    credentials: BTreeMap<String, String>,
    /// (workload, replica) → the node it last ran on, its recent output, and how many bytes of
    /// output it has shipped in all (the end of the kept window).
    logs: BTreeMap<(String, u32), (String, String, u64)>,
    /// The challenges it issues (stateless) and the answered ones not yet expired.
    challenges: crate::challenge::Challenges,
    verifier: Verifier,
    admin_hash: String,
    address: String,
    fingerprint: [u8; 32],
    /// Signs the artifacts it builds; nodes get the public half when they enrol.
    artifact_key: p256::ecdsa::SigningKey,
    /// The NATS server nodes are told to use.
    messaging: Option<String>,
    /// The policy other replicas' evidence must pass to be given the cluster key; `None`
    /// admits none.
    replica_verifier: Option<Arc<Verifier>>,
    /// Who may use the NATS server, when the control plane keeps its users, and the users
    /// file as last written.
    nats: Option<(crate::nats::NatsAuthorization, String)>,
    /// Woken whenever the state is saved: nodes waiting on `GET /v1/nodes/{name}/desired`.
    changed: Arc<tokio::sync::Notify>,
    /// The root of the keys that protect secrets at rest and of the workloads' sealing roots:
    /// derived from the control plane's platform sealing root.
    master: zeroize::Zeroizing<[u8; 32]>,
    /// `node/workload/replica` → the key (SubjectPublicKeyInfo, hex) of the instance that
    /// attested last: topic keys are released to it alone.
    instances: BTreeMap<String, String>,
    /// What it counts as it serves.
    metrics: Arc<crate::metrics::ControlMetrics>,
    /// The replicas' addresses, when the control plane is replicated.
    replicas: Vec<String>,
    /// Each node's desired state as last signed, with its generation.
    signed: BTreeMap<String, (u64, lamina_wire::SignedDesired)>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("address", &self.address).field("nodes", &self.registry.nodes.len()).finish()
    }
}

impl Control {
    /// Opens the control plane's state: the registry and tokens as last saved, the node
    /// credentials, the admin token's hash.
    ///
    /// # Errors
    /// [`StoreError`] when the state cannot be read.
    pub fn open(
        store: Store,
        verifier: Verifier,
        admin_token: &str,
        address: String,
        fingerprint: [u8; 32],
        master: zeroize::Zeroizing<[u8; 32]>,
    ) -> Result<Self, StoreError> {
        let registry = store.registry()?;
        let tokens = store.tokens()?;
        let credentials = store.load(crate::store::CREDENTIALS)?;
        let instances = store.load(INSTANCES)?;
        let artifact_key = artifact_key(&store)?;
        let challenges = crate::challenge::Challenges::new(master.as_ref())
            .map_err(|e| StoreError::Damaged { path: "the master key".into(), reason: e.to_string() })?;
        let mut registry = registry;
        // Heartbeats are not written to the store; after a restart every node gets a full
        // --lost-after to reconnect, so that nothing is re-planned because the control plane
        // was down.
        let started = now();
        for node in registry.nodes.values_mut() {
            node.last_seen = node.last_seen.max(started);
        }
        Ok(Control {
            store,
            registry,
            tokens,
            credentials,
            challenges,
            logs: BTreeMap::new(),
            verifier,
            admin_hash: sha256_hex(admin_token.as_bytes()),
            address,
            fingerprint,
            artifact_key,
            master,
            instances,
            metrics: Arc::default(),
            replicas: Vec::new(),
            signed: BTreeMap::new(),
            messaging: None,
            nats: None,
            replica_verifier: None,
            changed: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The public key nodes check artifacts with (PEM).
    pub fn artifact_key_pem(&self) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        self.artifact_key.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap_or_default()
    }

    /// What it counts as it serves.
    pub fn metrics(&self) -> Arc<crate::metrics::ControlMetrics> {
        self.metrics.clone()
    }

    /// Applies an event to the registry, counting the desired states it changes.
    fn step(&mut self, event: Event, now: u64) -> Result<Vec<String>, crate::StepError> {
        let changed = self.registry.step(event, now)?;
        self.metrics.desired_changes.inc_by(changed.len() as u64);
        Ok(changed)
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets the timings of the control loop.
    pub fn set_settings(&mut self, settings: crate::Settings) {
        self.registry.settings = settings;
    }

    /// Sets the replicas' addresses that nodes are told of.
    pub fn set_replicas(&mut self, replicas: Vec<String>) {
        if replicas != self.replicas {
            self.replicas = replicas;
            self.signed.clear();
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Sets the NATS server nodes' instances exchange messages through.
    pub fn set_messaging(&mut self, url: Option<String>) {
        self.messaging = url;
        self.signed.clear();
    }

    /// Keeps the NATS server's users (one per enrolled node, allowed its instances' subjects)
    /// in the file `authorization` names, written now and whenever they change.
    ///
    /// # Errors
    /// [`crate::nats::NatsError`] when the file cannot be written or a user derived.
    pub fn set_nats_authorization(
        &mut self,
        authorization: crate::nats::NatsAuthorization,
    ) -> Result<(), crate::nats::NatsError> {
        let text = crate::nats::render(&self.registry, &self.credentials, self.master.as_ref())?;
        authorization.apply(&text)?;
        self.nats = Some((authorization, text));
        Ok(())
    }

    /// Admits replicas whose evidence passes `verifier` to the cluster key.
    pub fn set_replica_verifier(&mut self, verifier: Arc<Verifier>) {
        self.replica_verifier = Some(verifier);
    }

    /// The NATS user a node connects with, when the control plane keeps the server's users.
    fn nats_user(&self, name: &str) -> Result<Option<crate::nats::NodeUser>, ApiError> {
        match (&self.nats, self.credentials.get(name)) {
            (Some(_), Some(key_hash)) => crate::nats::node_user(self.master.as_ref(), name, key_hash)
                .map(Some)
                .map_err(|e| ApiError::internal(e.to_string())),
            _ => Ok(None),
        }
    }

    /// Writes the NATS users again if they changed; a failure is logged and tried again at the
    /// next change (the server keeps the users it had: nothing is opened that was closed).
    fn sync_nats(&mut self) {
        let Some((authorization, written)) = &self.nats else { return };
        let text = match crate::nats::render(&self.registry, &self.credentials, self.master.as_ref()) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!("cannot update the NATS users: {e}");
                return;
            }
        };
        if text == *written {
            return;
        }
        match authorization.apply(&text) {
            Ok(()) => {
                if let Some((_, written)) = &mut self.nats {
                    *written = text;
                }
            }
            Err(e) => tracing::error!("cannot update the NATS users: {e}; nodes keep the subjects they had"),
        }
    }

    /// The state directory.
    pub fn store_dir(&self) -> &std::path::Path {
        self.store.dir()
    }

    fn persist(&mut self) -> Result<(), ApiError> {
        self.store.save_state(&self.registry, &self.tokens, &self.credentials)?;
        // Before nodes learn of new placements, the NATS server learns of their subjects.
        self.sync_nats();
        // Whatever changed, nodes waiting for a new desired state look again.
        self.changed.notify_waiters();
        Ok(())
    }

    /// A node's desired state, signed, with the messaging server and the replicas: signed once
    /// per generation (heartbeats and long polls return the same copy).
    fn signed_desired(&mut self, name: &str) -> Result<lamina_wire::SignedDesired, ApiError> {
        let generation = self.registry.desired.get(name).map_or(0, |d| d.generation);
        if let Some((g, signed)) = self.signed.get(name)
            && *g == generation
        {
            return Ok(signed.clone());
        }
        let mut desired = self
            .registry
            .desired
            .get(name)
            .cloned()
            .unwrap_or_else(|| DesiredState { node: name.to_owned(), ..DesiredState::default() });
        desired.messaging.clone_from(&self.messaging);
        desired.control_planes.clone_from(&self.replicas);
        let signed = lamina_wire::SignedDesired::sign(&desired, &self.artifact_key)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        self.signed.insert(name.to_owned(), (generation, signed.clone()));
        Ok(signed)
    }

    /// Advances the clock: lost nodes, expired attestations, expired challenges.
    ///
    /// # Errors
    /// When the state cannot be saved.
    pub fn tick(&mut self) -> Result<(), ApiError> {
        let now = now();
        self.challenges.prune(now);
        let changed = self.step(Event::Tick, now).map_err(|e| ApiError::internal(e.to_string()))?;
        if !changed.is_empty() {
            tracing::info!("re-planned: desired state changed for {}", changed.join(", "));
            self.persist()?;
        }
        Ok(())
    }

    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match bearer(headers) {
            Some(token) if sha256_hex(token.as_bytes()) == self.admin_hash => Ok(()),
            Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "the admin token is wrong")),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this needs the admin token (Authorization: Bearer …; `lamina control` wrote it to its state directory)",
            )),
        }
    }

    /// Admits a request of node `name`: the connection's client certificate must hold the key
    /// the node enrolled with.
    fn node(&self, peer: &Peer, name: &str) -> Result<(), ApiError> {
        let Some(key) = &peer.key_hash else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this needs the node's attested TLS certificate (the connection presented none)",
            ));
        };
        match self.credentials.get(name) {
            Some(hash) if hash == key => Ok(()),
            Some(_) => {
                Err(ApiError::new(StatusCode::UNAUTHORIZED, format!("this TLS key is not the key of node `{name}`")))
            }
            None => Err(ApiError::new(StatusCode::UNAUTHORIZED, format!("no node `{name}` is enrolled"))),
        }
    }

    /// Checks evidence against a challenge this control plane issued (used up here, so a
    /// replayed envelope fails) and the policy.
    ///
    /// With `key`, the evidence's claims must bind it (the SubjectPublicKeyInfo of the TLS key
    /// the request came with), so that evidence relayed from another machine is refused.
    fn appraise(
        &mut self,
        nonce_hex: &str,
        evidence_hex: &str,
        platform: Option<PlatformKind>,
        key: Option<&[u8]>,
    ) -> Result<Claims, ApiError> {
        self.appraise_for(Audience::Node, nonce_hex, evidence_hex, platform, key)
    }

    fn appraise_for(
        &mut self,
        audience: Audience,
        nonce_hex: &str,
        evidence_hex: &str,
        platform: Option<PlatformKind>,
        key: Option<&[u8]>,
    ) -> Result<Claims, ApiError> {
        let started = std::time::Instant::now();
        let result = self.appraise_once(audience, nonce_hex, evidence_hex, platform, key);
        let verdict = match &result {
            Ok(_) => "pass",
            Err(e) if e.status == StatusCode::CONFLICT => "stale",
            Err(e) if e.status == StatusCode::BAD_REQUEST => "malformed",
            Err(_) => "fail",
        };
        self.metrics.appraised(verdict, started.elapsed().as_secs_f64());
        result
    }

    fn appraise_once(
        &mut self,
        audience: Audience,
        nonce_hex: &str,
        evidence_hex: &str,
        platform: Option<PlatformKind>,
        key: Option<&[u8]>,
    ) -> Result<Claims, ApiError> {
        let now = now();
        // Checked before the evidence (cheap), used up only once the evidence has passed: a
        // failed answer costs nothing to remember, and a passed one answers nothing else.
        let nonce = self.challenges.check(nonce_hex, now).map_err(challenge_error)?;
        let evidence = hex::decode(evidence_hex).map_err(|_| ApiError::bad("the evidence is not hex"))?;
        let expect = Expect { nonce: Some(&nonce), ..Expect::now() };
        let verifier = match audience {
            Audience::Node => &self.verifier,
            Audience::Replica => self.replica_verifier.as_deref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "this control plane releases the cluster key to no replica (start it with --replica-policy)",
                )
            })?,
        };
        let appraisal = verifier.appraise_envelope(&evidence, &expect);
        if !appraisal.verified() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("the evidence does not pass the policy: {}", appraisal.reasons().join("; ")),
            ));
        }
        let Some(claims) = appraisal.claims else {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "the evidence carries no Lamina claims"));
        };
        if key.is_some() && claims.instance_key.as_deref() != key {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the evidence does not bind the TLS key this request came with (its claims' instance_key)",
            ));
        }
        if let (Some(declared), Some(found)) = (platform, appraisal.platform)
            && declared != found
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("the node says it is {declared} but its evidence is {found}"),
            ));
        }
        self.challenges.consume(nonce_hex, now).map_err(challenge_error)?;
        Ok(claims)
    }
}

/// Whose evidence is appraised: a node's (the node policy) or another replica's (the replica
/// policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    Node,
    Replica,
}

/// The artifact signing key, made at first start and kept as `artifacts.key` (PKCS#8 PEM).
fn artifact_key(store: &Store) -> Result<p256::ecdsa::SigningKey, StoreError> {
    use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
    let damaged = |reason: String| StoreError::Damaged { path: store.dir().join("artifacts.key"), reason };
    let pem = store.material("artifacts.key", || {
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let pem = key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).map_err(|e| damaged(e.to_string()))?;
        Ok(pem.as_bytes().to_vec())
    })?;
    let pem = std::str::from_utf8(&pem).map_err(|e| damaged(e.to_string()))?;
    p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|e| damaged(e.to_string()))
}

/// The client certificate a connection presented; TLS has checked that the client holds its
/// key. Set by the server on every request.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// The certificate's SubjectPublicKeyInfo (DER).
    key: Option<Vec<u8>>,
    /// SHA-256 (hex) of it.
    key_hash: Option<String>,
    /// The address the connection came from.
    source: Option<std::net::IpAddr>,
}

impl Peer {
    /// The peer of a connection that presented `cert` (DER), or none.
    pub fn new(cert: Option<Vec<u8>>, source: std::net::IpAddr) -> Self {
        let key = cert
            .and_then(|der| x509_parser::parse_x509_certificate(&der).ok().map(|(_, c)| c.public_key().raw.to_vec()));
        let key_hash = key.as_ref().map(|k| sha256_hex(k));
        Peer { key, key_hash, source: Some(source) }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

/// An error answer: a status and a message that says what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("{e}");
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(lamina_wire::ErrorBody { error: self.message })).into_response()
    }
}

type Shared = Arc<Mutex<Control>>;
type ApiResult<T> = Result<T, ApiError>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Control> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The API's routes.
pub fn router(control: Shared) -> Router {
    Router::new()
        .route(paths::HEALTH, get(health))
        .route(paths::CHALLENGE, post(challenge))
        .route(paths::TOKENS, post(create_token))
        .route(paths::MODULES, post(upload_module).layer(axum::extract::DefaultBodyLimit::max(MAX_MODULE)))
        .route(paths::DEPLOYMENTS, put(deploy))
        .route(paths::ARTIFACT, get(artifact))
        .route(paths::DEPLOYMENT, delete(undeploy))
        .route(paths::STATUS, get(status))
        .route(paths::ENROL, post(enroll))
        .route(paths::NODE, delete(remove_node))
        .route(paths::CLUSTER_KEY, post(release_cluster_key))
        .route(paths::ATTEST, post(attest))
        .route(paths::HEARTBEAT, post(heartbeat))
        .route(paths::RELEASE, post(release))
        .route(paths::TOPIC_KEYS, post(topic_keys))
        .route(paths::DESIRED, get(desired))
        .route(paths::SECRETS, get(list_secrets))
        .route(paths::LOGS, get(logs))
        .route(
            paths::SECRET,
            put(set_secret).delete(delete_secret).layer(axum::extract::DefaultBodyLimit::max(MAX_SECRET)),
        )
        .with_state(control)
}

/// The operator, proved by the admin token: an extractor that runs before a handler's body is
/// read, so an unauthenticated request is refused (401) having cost its headers only, however
/// large the body it announces.
struct Admin;

impl axum::extract::FromRequestParts<Shared> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &Shared) -> Result<Self, ApiError> {
        lock(state).admin(&parts.headers)?;
        Ok(Admin)
    }
}

async fn health(State(c): State<Shared>) -> Json<lamina_wire::Health> {
    let c = lock(&c);
    Json(lamina_wire::Health {
        status: "ok".into(),
        fingerprint: hex::encode(c.fingerprint),
        artifact_key: c.artifact_key_pem(),
    })
}

/// A nonce for evidence to answer: made, not stored (see [`crate::challenge`]), so that asking
/// for any number of them fills nothing; each source gets its share.
async fn challenge(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
) -> ApiResult<Json<lamina_wire::Challenge>> {
    let address = peer.source.unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    let mut c = lock(&c);
    // An enrolled node (its client certificate holds the key it enrolled with) has an
    // allowance of its own; anyone else shares their address's.
    let source = match &peer.key_hash {
        Some(hash) if c.credentials.values().any(|known| known == hash) => crate::challenge::Source::Node(hash.clone()),
        _ => crate::challenge::Source::from(address),
    };
    let nonce = c.challenges.issue(source, now(), std::time::Instant::now()).map_err(challenge_error)?;
    Ok(Json(lamina_wire::Challenge { nonce: hex::encode(nonce) }))
}

/// The answer to a challenge that was not issued or not accepted.
fn challenge_error(e: crate::challenge::ChallengeError) -> ApiError {
    use crate::challenge::ChallengeError as E;
    let status = match e {
        E::Malformed => StatusCode::BAD_REQUEST,
        E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        E::Busy => StatusCode::SERVICE_UNAVAILABLE,
        // Not 401: the requester's credentials are not in question, only the freshness of
        // its evidence, and a node must not take it for a refusal (it would drop its cached
        // secrets); it asks for a new challenge.
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, e.to_string())
}

async fn create_token(
    _: Admin,
    State(c): State<Shared>,
    Json(req): Json<lamina_wire::TokenRequest>,
) -> ApiResult<Json<lamina_wire::TokenIssued>> {
    let mut c = lock(&c);
    let ttl = req.ttl_secs.unwrap_or(3600).clamp(60, 7 * 86_400);
    let (address, fingerprint) = (c.address.clone(), c.fingerprint);
    let token = c.tokens.issue(&address, fingerprint, random32(), now(), ttl);
    c.persist()?;
    Ok(Json(lamina_wire::TokenIssued { token: token.encode(), expires_in_secs: ttl }))
}

async fn upload_module(
    _: Admin,
    State(c): State<Shared>,
    body: axum::body::Bytes,
) -> ApiResult<Json<lamina_wire::ModuleUploaded>> {
    let c = lock(&c);
    if !body.starts_with(b"\0asm") {
        return Err(ApiError::bad("the body is not a WebAssembly binary"));
    }
    let hash = lamina_types::ModuleHash::of(&body);
    let name = module_name(&hash);
    if !c.store.exists(&name)? {
        c.store.write(&[(&name, &body)], &[])?;
    }
    Ok(Json(lamina_wire::ModuleUploaded { module: hash }))
}

async fn deploy(
    _: Admin,
    State(c): State<Shared>,
    Json(deployment): Json<Deployment>,
) -> ApiResult<Json<lamina_wire::Deployed>> {
    let mut c = lock(&c);
    for w in &deployment.workloads {
        lamina_types::deploy::check_name(&w.name).map_err(ApiError::bad)?;
        match &w.module {
            lamina_types::ModuleRef::Hash(h) => {
                if !c.store.exists(&module_name(h))? {
                    return Err(ApiError::bad(format!(
                        "workload \"{}\": module {h} is unknown to the control plane; deploy it by path so that `lamina deploy` uploads it",
                        w.name
                    )));
                }
            }
            lamina_types::ModuleRef::Path(p) => {
                return Err(ApiError::bad(format!(
                    "workload \"{}\": module {} is a path; upload it (`lamina deploy` does) and refer to its sha256",
                    w.name,
                    p.display()
                )));
            }
        }
    }
    for w in &deployment.workloads {
        for secret in &w.secrets {
            if !c.store.exists(&Control::secret_name(secret))? {
                return Err(ApiError::bad(format!(
                    "workload \"{}\": secret `{secret}` is not set; set it first with `lamina secret set {secret} FILE`",
                    w.name
                )));
            }
        }
    }
    let names: Vec<String> = deployment.workloads.iter().map(|w| w.name.clone()).collect();
    c.step(Event::Deployed(deployment), now()).map_err(|e| ApiError::bad(e.to_string()))?;
    c.persist()?;
    let unplaced: Vec<_> = c.registry.plan.unplaced.iter().filter(|u| names.contains(&u.workload)).cloned().collect();
    Ok(Json(lamina_wire::Deployed { deployed: names, unplaced }))
}

/// Where a module is kept in the store.
fn module_name(hash: &lamina_types::ModuleHash) -> String {
    format!("modules/{}.wasm", hex::encode(hash.as_bytes()))
}

/// Compiles a module for a node's target (once; cached in the state directory) and signs it.
///
/// The cache holds what this control plane signed (the artifact and its signature, each
/// written atomically), and an entry is served only if its signature verifies with the
/// control plane's own key and its signed header is of this module, target, profile and
/// engine: a file swapped or patched in the state directory is compiled again, never signed.
/// A fresh artifact is decoded and checked the same way before it is signed.
async fn artifact(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Path((name, hash)): Path<(String, String)>,
) -> ApiResult<Json<SignedArtifact>> {
    use base64::Engine as _;
    let (hash, target, profile, cache, key) = {
        let c = lock(&c);
        c.node(&peer, &name)?;
        let hash: lamina_types::ModuleHash =
            hash.parse().map_err(|e: lamina_types::ParseHashError| ApiError::bad(e.to_string()))?;
        let node = c.registry.nodes.get(&name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such node"))?;
        let assigned = c
            .registry
            .desired
            .get(&name)
            .is_some_and(|d| d.assignments.iter().any(|a| a.spec.module == lamina_types::ModuleRef::Hash(hash)));
        if !assigned {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("module {hash} is not assigned to node `{name}`"),
            ));
        }
        let cache = c.store.dir().join("artifacts").join(format!(
            "{}-{}-{}.lamart",
            hex::encode(hash.as_bytes()),
            node.target.triple(),
            node.profile
        ));
        (hash, node.target, node.profile, cache, c.artifact_key.clone())
    };
    let shared = c.clone();
    // Compiling takes time: outside the lock, on a blocking thread.
    let signed = tokio::task::spawn_blocking(move || -> Result<SignedArtifact, ApiError> {
        let sig_path = cache.with_extension("lamart.sig");
        let wanted = |bytes: &[u8], signature: &[u8]| -> Result<(), String> {
            let (decoded, _) = lamina_runtime::signing::verify(bytes, signature, &[*key.verifying_key()])
                .map_err(|e| e.to_string())?;
            let h = &decoded.header;
            if h.module_hash != hash || h.target != target || h.profile != profile {
                return Err(format!("it is {} for {} on {}", h.module_hash, h.target, h.profile));
            }
            if h.engine != lamina_runtime::Engine::version() {
                return Err(format!("it was compiled by {}", h.engine));
            }
            Ok(())
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        if let (Ok(bytes), Ok(signature)) = (std::fs::read(&cache), std::fs::read(&sig_path)) {
            match wanted(&bytes, &signature) {
                Ok(()) => return Ok(SignedArtifact { artifact: b64.encode(&bytes), signature: b64.encode(signature) }),
                Err(e) => tracing::warn!("the cached artifact {} is unusable ({e}); compiling again", cache.display()),
            }
        }
        let wasm = lock(&shared)
            .store
            .get(&module_name(&hash))?
            .ok_or_else(|| ApiError::internal(format!("module {hash} is missing from the store")))?;
        if lamina_types::ModuleHash::of(&wasm) != hash {
            return Err(ApiError::internal(format!("the store's copy of module {hash} has another hash")));
        }
        let options = lamina_runtime::EngineOptions {
            target: Some(target),
            ..lamina_runtime::EngineOptions::for_profile(profile)
        };
        let engine = lamina_runtime::Engine::new(options).map_err(|e| ApiError::internal(e.to_string()))?;
        let bytes = engine.compile(&wasm).map_err(|e| ApiError::bad(format!("the module does not compile: {e}")))?;
        let signature = lamina_runtime::signing::sign(&bytes, &key).map_err(|e| ApiError::internal(e.to_string()))?;
        wanted(&bytes, &signature)
            .map_err(|e| ApiError::internal(format!("the artifact just compiled is wrong: {e}")))?;
        if let Some(dir) = cache.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        for (path, data) in [(&sig_path, &signature), (&cache, &bytes)] {
            if let Err(e) = crate::store::write_atomically(path, data) {
                tracing::warn!("cannot keep the artifact in {}: {e}", path.display());
            }
        }
        Ok(SignedArtifact { artifact: b64.encode(&bytes), signature: b64.encode(signature) })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(signed))
}

async fn undeploy(State(c): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let mut c = lock(&c);
    c.admin(&headers)?;
    c.step(Event::Undeployed(name), now()).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    c.persist()?;
    Ok(StatusCode::NO_CONTENT)
}

async fn status(State(c): State<Shared>, headers: HeaderMap) -> ApiResult<Json<lamina_wire::Status>> {
    let c = lock(&c);
    c.admin(&headers)?;
    let r = &c.registry;
    Ok(Json(lamina_wire::Status {
        nodes: r.nodes.values().cloned().collect(),
        placements: r.plan.placements.clone(),
        unplaced: r.plan.unplaced.clone(),
        workloads: r.workloads.keys().cloned().collect(),
    }))
}

async fn enroll(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Json(req): Json<lamina_wire::EnrolRequest>,
) -> ApiResult<Json<lamina_wire::EnrolResponse>> {
    let mut c = lock(&c);
    let (Some(key), Some(key_hash)) = (peer.key.clone(), peer.key_hash.clone()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a node enrols over TLS with its attested certificate; the connection presented none",
        ));
    };
    let token: JoinToken = req
        .token
        .parse()
        .map_err(|e: lamina_types::TokenError| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    if token.fingerprint != c.fingerprint {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "this join token is for another control plane"));
    }
    lamina_types::deploy::check_name(&req.name).map_err(|e| ApiError::bad(e.replace("workload", "node")))?;
    if c.credentials.contains_key(&req.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a node named `{}` is already enrolled; give this one another --name", req.name),
        ));
    }
    c.appraise(&req.nonce, &req.evidence, Some(req.platform), Some(&key))?;
    let mut tokens = c.tokens.clone();
    tokens
        .redeem(&token.secret, &req.name, now())
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    c.tokens = tokens;
    c.credentials.insert(req.name.clone(), key_hash);
    let event = Event::Enrolled {
        name: req.name.clone(),
        target: req.target,
        platform: req.platform,
        memory: req.memory,
        labels: req.labels,
        zone: req.zone,
        profile: req.profile,
    };
    c.step(event, now()).map_err(|e| ApiError::internal(e.to_string()))?;
    c.persist()?;
    tracing::info!(node = %req.name, "enrolled");
    let nats_seed = c.nats_user(&req.name)?.map(|u| u.seed.to_string());
    Ok(Json(lamina_wire::EnrolResponse { artifact_key: c.artifact_key_pem(), nats_seed }))
}

/// Removes an enrolled node (admin): its credentials (TLS and NATS) stop working, its
/// instances are placed elsewhere. To come back it enrols again with a new join token.
async fn remove_node(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<lamina_wire::NodeRemoved>> {
    let mut c = lock(&c);
    c.admin(&headers)?;
    if c.credentials.remove(&name).is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no node `{name}` is enrolled")));
    }
    let prefix = format!("{name}/");
    c.instances.retain(|k, _| !k.starts_with(&prefix));
    let instances = c.instances.clone();
    c.store.save(INSTANCES, &instances)?;
    c.signed.remove(&name);
    // A node known to the credentials but not the registry cannot be; either way it is gone.
    if c.registry.nodes.contains_key(&name) {
        c.step(Event::Removed(name.clone()), now()).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    c.persist()?;
    tracing::info!(node = %name, "removed");
    Ok(Json(lamina_wire::NodeRemoved { removed: name }))
}

/// Releases the cluster key to another replica of this control plane, over mutually attested
/// TLS: its evidence answers a challenge, binds the key of the certificate it connected with,
/// and passes the replica policy.
async fn release_cluster_key(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Json(req): Json<lamina_wire::ClusterKeyRequest>,
) -> ApiResult<Json<lamina_wire::ClusterKeyResponse>> {
    let mut c = lock(&c);
    let Some(key) = peer.key.clone() else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a replica asks for the cluster key over TLS with its attested certificate; the connection presented none",
        ));
    };
    let Some(cluster_key) = c.store.cluster_key().copied().map(zeroize::Zeroizing::new) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "this control plane is not replicated"));
    };
    if let Err(e) = c.appraise_for(Audience::Replica, &req.nonce, &req.evidence, None, Some(&key)) {
        tracing::warn!(source = ?peer.source, "refused the cluster key to a replica: {}", e.message);
        return Err(e);
    }
    tracing::info!(source = ?peer.source, "released the cluster key to a replica that attested");
    Ok(Json(lamina_wire::ClusterKeyResponse { cluster_key: hex::encode(cluster_key.as_ref()) }))
}

async fn attest(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
    Json(req): Json<lamina_wire::AttestRequest>,
) -> ApiResult<Json<lamina_wire::AttestVerdict>> {
    let mut c = lock(&c);
    c.node(&peer, &name)?;
    let key = peer.key.clone().unwrap_or_default();
    let verdict = match c.appraise(&req.nonce, &req.evidence, None, Some(&key)) {
        Ok(_) => Ok(()),
        Err(e) if e.status == StatusCode::FORBIDDEN => Err(e.message.clone()),
        Err(e) => return Err(e),
    };
    let passed = verdict.is_ok();
    let reason = verdict.clone().err();
    c.step(Event::Attested { node: name, verdict }, now()).map_err(|e| ApiError::internal(e.to_string()))?;
    c.persist()?;
    Ok(Json(lamina_wire::AttestVerdict { verified: passed, reason }))
}

/// How much recent output the control plane keeps per instance (in memory).
const LOG_KEEP: usize = 256 << 10;

async fn heartbeat(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
    Json(req): Json<lamina_wire::HeartbeatRequest>,
) -> ApiResult<Json<lamina_wire::SignedDesired>> {
    let mut c = lock(&c);
    c.node(&peer, &name)?;
    for chunk in req.logs {
        let assigned = c.registry.desired.get(&name).is_some_and(|d| {
            d.assignments.iter().any(|a| a.placement.workload == chunk.workload && a.placement.replica == chunk.replica)
        });
        if !assigned || chunk.text.len() > 4 * LOG_CHUNK {
            continue;
        }
        let log = c.logs.entry((chunk.workload, chunk.replica)).or_default();
        log.0.clone_from(&name);
        log.1.push_str(&chunk.text);
        log.2 += chunk.text.len() as u64;
        if log.1.len() > LOG_KEEP {
            let mut cut = log.1.len() - LOG_KEEP;
            while !log.1.is_char_boundary(cut) {
                cut += 1;
            }
            log.1.drain(..cut);
        }
    }
    c.metrics.heartbeats.inc();
    let changed = c
        .step(Event::Heartbeat { node: name.clone(), instances: req.instances, degraded: req.degraded }, now())
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    if !changed.is_empty() {
        c.persist()?;
    }
    c.signed_desired(&name).map(Json)
}

/// How long `GET /v1/nodes/{name}/desired` may wait.
const MAX_WAIT_SECS: u64 = 30;

/// A node's desired state, as soon as its generation is not `after` (a long poll of at most
/// `wait_ms` milliseconds, 30 s at most): how a node hears of a deployment within a round trip instead of at its
/// next heartbeat.
async fn desired(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<lamina_wire::DesiredQuery>,
) -> ApiResult<Json<lamina_wire::SignedDesired>> {
    let wait =
        std::time::Duration::from_millis(q.wait_ms.unwrap_or(0)).min(std::time::Duration::from_secs(MAX_WAIT_SECS));
    let until = tokio::time::Instant::now() + wait;
    loop {
        let changed = {
            let c = lock(&c);
            c.node(&peer, &name)?;
            c.changed.clone()
        };
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut c = lock(&c);
            let generation = c.registry.desired.get(&name).map_or(0, |d| d.generation);
            if q.after != Some(generation) || tokio::time::Instant::now() >= until {
                return c.signed_desired(&name).map(Json);
            }
        }
        let _ = tokio::time::timeout_at(until, notified).await;
    }
}

impl Control {
    fn secret_name(name: &str) -> String {
        format!("secrets/{name}.sealed")
    }

    fn secrets_key(&self) -> Result<zeroize::Zeroizing<[u8; 32]>, ApiError> {
        lamina_keys::derive(self.master.as_ref(), &lamina_keys::Purpose::SecretsAtRest)
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// A secret's value, decrypted.
    fn secret(&self, name: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, ApiError> {
        let sealed = self.store.get(&Self::secret_name(name))?.ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!("secret `{name}` is not set; set it with `lamina secret set {name} FILE`"),
            )
        })?;
        lamina_wire::release::decrypt_at_rest(&*self.secrets_key()?, name.as_bytes(), &sealed).map_err(|_| {
            ApiError::internal(format!(
                "secret `{name}` does not open with this control plane's key (its platform's sealing root changed?)"
            ))
        })
    }

    /// The key of `topic` at `epoch`: only the control plane can derive it (from its root).
    fn topic_key(&self, epoch: u32, topic: &str) -> Result<zeroize::Zeroizing<[u8; 32]>, ApiError> {
        lamina_keys::derive(self.master.as_ref(), &lamina_keys::Purpose::TopicKey { epoch, topic })
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// A node that still passes the policy (a node that no longer does gets nothing).
    fn passing(&self, name: &str) -> Result<(), ApiError> {
        let node = self.registry.nodes.get(name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such node"))?;
        if let Some(reason) = &node.attestation_failure {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("node `{name}` no longer passes the policy ({reason}); nothing is released to it"),
            ));
        }
        Ok(())
    }

    /// The spec of an instance assigned to node `name`.
    fn assigned(&self, name: &str, workload: &str, replica: u32) -> Result<WorkloadSpec, ApiError> {
        self.registry
            .desired
            .get(name)
            .and_then(|d| {
                d.assignments.iter().find(|a| a.placement.workload == workload && a.placement.replica == replica)
            })
            .map(|a| a.spec.clone())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("instance {workload}/{replica} is not assigned to node `{name}`"),
                )
            })
    }

    /// Records the key of an instance that attested, forgetting instances no longer assigned.
    fn attested(&mut self, name: &str, workload: &str, replica: u32, key: &[u8]) -> Result<(), ApiError> {
        let assigned: std::collections::BTreeSet<String> = self
            .registry
            .desired
            .iter()
            .flat_map(|(n, d)| {
                d.assignments.iter().map(move |a| format!("{n}/{}/{}", a.placement.workload, a.placement.replica))
            })
            .collect();
        self.instances.retain(|k, _| assigned.contains(k));
        self.instances.insert(format!("{name}/{workload}/{replica}"), hex::encode(key));
        self.store.save(INSTANCES, &self.instances)?;
        Ok(())
    }

    /// The sealing root of a workload's volumes, for nodes whose platform has none.
    fn sealing_root(&self, workload: &str) -> Result<zeroize::Zeroizing<[u8; 32]>, ApiError> {
        lamina_keys::derive(self.master.as_ref(), &lamina_keys::Purpose::WorkloadSealingRoot { workload })
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

fn check_secret_name(name: &str) -> Result<(), ApiError> {
    lamina_types::deploy::check_secret_name(name).map_err(ApiError::bad)
}

async fn set_secret(
    _: Admin,
    State(c): State<Shared>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let c = lock(&c);
    check_secret_name(&name)?;
    let sealed = lamina_wire::release::encrypt_at_rest(&*c.secrets_key()?, name.as_bytes(), &body)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    c.store.write(&[(&Control::secret_name(&name), &sealed)], &[])?;
    tracing::info!(secret = %name, "secret set");
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_secret(State(c): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let c = lock(&c);
    c.admin(&headers)?;
    check_secret_name(&name)?;
    let key = Control::secret_name(&name);
    if c.store.get(&key)?.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no secret `{name}`")));
    }
    c.store.write(&[], &[&key])?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_secrets(State(c): State<Shared>, headers: HeaderMap) -> ApiResult<Json<lamina_wire::SecretList>> {
    let c = lock(&c);
    c.admin(&headers)?;
    // Every name was checked when it was set; one that does not parse is not listed.
    let mut secrets: Vec<lamina_types::SecretName> =
        c.store.list("secrets")?.iter().filter_map(|n| n.strip_suffix(".sealed")?.parse().ok()).collect();
    secrets.sort_unstable();
    Ok(Json(lamina_wire::SecretList { secrets }))
}

/// Releases a workload's secrets and sealing root to one instance: only to a node that is
/// enrolled (by its attested TLS key), currently attested, and assigned that instance, and only
/// for evidence over a fresh challenge that names the workload's module. Encrypted to the
/// instance key the evidence binds.
async fn release(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
    Json(req): Json<lamina_wire::ReleaseRequest>,
) -> ApiResult<Json<lamina_wire::release::Released>> {
    let result = release_once(&c, &peer, &name, &req);
    lock(&c).metrics.released("secrets", result.is_ok());
    result
}

fn release_once(
    c: &Shared,
    peer: &Peer,
    name: &str,
    req: &lamina_wire::ReleaseRequest,
) -> ApiResult<Json<lamina_wire::release::Released>> {
    let mut c = lock(c);
    c.node(peer, name)?;
    c.passing(name)?;
    let spec = c.assigned(name, &req.workload, req.replica)?;
    let lamina_types::ModuleRef::Hash(module) = spec.module else {
        return Err(ApiError::internal("an assignment names a module by path"));
    };
    let claims = c.appraise(&req.nonce, &req.evidence, None, None)?;
    if claims.module_hash != Some(module) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the evidence is not of workload {}'s module {module}", req.workload),
        ));
    }
    let Some(instance_key) = claims.instance_key else {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "the evidence binds no instance key to encrypt to"));
    };
    let mut bundle = lamina_wire::release::Bundle {
        sealing_root: hex::encode(*c.sealing_root(&req.workload)?),
        ..lamina_wire::release::Bundle::default()
    };
    use base64::Engine as _;
    for secret in &spec.secrets {
        let value = c.secret(secret)?;
        bundle.secrets.insert(secret.clone(), base64::engine::general_purpose::STANDARD.encode(&*value));
    }
    let nonce = hex::decode(&req.nonce).map_err(|_| ApiError::bad("the nonce is not hex"))?;
    let released = lamina_wire::release::seal(&bundle, &instance_key, &nonce, &module)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.to_string()))?;
    c.attested(name, &req.workload, req.replica, &instance_key)?;
    tracing::info!(node = %name, workload = %req.workload, replica = req.replica, "released {} secret(s)", spec.secrets.len());
    Ok(Json(released))
}

/// The file of the attested instances' keys.
const INSTANCES: &str = "instances.json";

/// Releases topic keys to an instance: only over the node's attested TLS, only to an instance
/// assigned to it that attested (its key is the one its evidence bound), only for topics its
/// workload's patterns allow; encrypted to the instance's key.
async fn topic_keys(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
    Json(req): Json<lamina_wire::TopicKeysRequest>,
) -> ApiResult<Json<lamina_wire::release::Released>> {
    let result = topic_keys_once(&c, &peer, &name, &req);
    lock(&c).metrics.released("topic-keys", result.is_ok());
    result
}

fn topic_keys_once(
    c: &Shared,
    peer: &Peer,
    name: &str,
    req: &lamina_wire::TopicKeysRequest,
) -> ApiResult<Json<lamina_wire::release::Released>> {
    let c = lock(c);
    c.node(peer, name)?;
    c.passing(name)?;
    let spec = c.assigned(name, &req.workload, req.replica)?;
    let instance = format!("{name}/{}/{}", req.workload, req.replica);
    let key = c.instances.get(&instance).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("instance {}/{} has not attested; it gets no topic keys", req.workload, req.replica),
        )
    })?;
    let key = hex::decode(key).map_err(|_| ApiError::internal("a recorded instance key is not hex"))?;
    if req.topics.is_empty() || req.topics.len() > MAX_TOPICS_PER_REQUEST {
        return Err(ApiError::bad(format!("ask for 1 to {MAX_TOPICS_PER_REQUEST} topics at a time")));
    }
    let nonce = hex::decode(&req.nonce).map_err(|_| ApiError::bad("the nonce is not hex"))?;
    if !(16..=64).contains(&nonce.len()) {
        return Err(ApiError::bad("the nonce must be 16 to 64 bytes"));
    }
    let patterns = spec
        .topics
        .iter()
        .map(|t| lamina_types::topic::Pattern::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal(format!("a topic pattern of workload {}: {e}", req.workload)))?;
    let mut bundle = lamina_wire::release::Bundle { epoch: TOPIC_EPOCH, ..lamina_wire::release::Bundle::default() };
    for topic in &req.topics {
        lamina_types::topic::check_topic(topic).map_err(ApiError::bad)?;
        if !patterns.iter().any(|p| p.matches(topic)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "workload {} may not use topic `{topic}` (its topics: {}); add it to `topics` in the deployment \
                     manifest",
                    req.workload,
                    spec.topics.join(", ")
                ),
            ));
        }
        bundle.topics.insert(topic.clone(), hex::encode(*c.topic_key(TOPIC_EPOCH, topic)?));
    }
    let lamina_types::ModuleRef::Hash(module) = spec.module else {
        return Err(ApiError::internal("an assignment names a module by path"));
    };
    let released = lamina_wire::release::seal(&bundle, &key, &nonce, &module)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.to_string()))?;
    tracing::debug!(node = %name, workload = %req.workload, replica = req.replica, "released {} topic key(s)", req.topics.len());
    Ok(Json(released))
}

/// The recent output of a workload's instances.
async fn logs(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<lamina_wire::Logs>> {
    let c = lock(&c);
    c.admin(&headers)?;
    if !c.registry.workloads.contains_key(&name) && !c.logs.keys().any(|(w, _)| *w == name) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no workload `{name}` is deployed")));
    }
    let instances = c
        .logs
        .iter()
        .filter(|((w, _), _)| *w == name)
        .map(|((_, replica), (node, text, end))| lamina_wire::InstanceLog {
            replica: *replica,
            node: node.clone(),
            text: text.clone(),
            end: *end,
        })
        .collect();
    Ok(Json(lamina_wire::Logs { workload: name, instances }))
}
