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

use crate::{Cluster, Event, Store, StoreError, TokenBook};

mod appraisal;
mod artifacts;
mod auth;
mod broker;
mod nodes;
mod operator;

use appraisal::*;
use artifacts::*;
use auth::*;
use broker::*;
use lamina_wire::{DesiredState, LOG_CHUNK, MAX_TOPICS_PER_REQUEST, SignedArtifact, TOPIC_EPOCH, paths};
use nodes::*;
use operator::*;

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

/// The control plane: its cluster, tokens, node credentials and verifier, kept in a [`Store`].
pub struct Control {
    store: Store,
    cluster: Cluster,
    tokens: TokenBook,
    /// Node name → SHA-256 (hex) of the SubjectPublicKeyInfo of its TLS key, which its
    /// evidence bound when it enrolled.
    credentials: BTreeMap<String, String>,
    /// (workload, replica) → the node it last ran on, its recent output, and how many bytes of
    /// output it has shipped in all (the end of the kept window).
    logs: BTreeMap<(lamina_types::WorkloadName, u32), (String, String, u64)>,
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
        f.debug_struct("Control").field("address", &self.address).field("nodes", &self.cluster.nodes.len()).finish()
    }
}

impl Control {
    /// Opens the control plane's state: the cluster and tokens as last saved, the node
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
        let cluster = store.cluster()?;
        let tokens = store.tokens()?;
        let credentials = store.load(crate::store::CREDENTIALS)?;
        let instances = store.load(INSTANCES)?;
        let artifact_key = artifact_key(&store)?;
        let challenges = crate::challenge::Challenges::new(master.as_ref())
            .map_err(|e| StoreError::Damaged { path: "the master key".into(), reason: e.to_string() })?;
        let mut cluster = cluster;
        // Heartbeats are not written to the store; after a restart every node gets a full
        // --lost-after to reconnect, so that nothing is re-planned because the control plane
        // was down.
        let started = now();
        for node in cluster.nodes.values_mut() {
            node.last_seen = node.last_seen.max(started);
        }
        Ok(Control {
            store,
            cluster,
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

    /// Applies an event to the cluster, counting the desired states it changes.
    fn step(&mut self, event: Event, now: u64) -> Result<Vec<String>, crate::StepError> {
        let changed = self.cluster.step(event, now)?;
        self.metrics.desired_changes.inc_by(changed.len() as u64);
        Ok(changed)
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Sets the timings of the control loop.
    pub fn set_settings(&mut self, settings: crate::Settings) {
        self.cluster.settings = settings;
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
        let text = crate::nats::render(&self.cluster, &self.credentials, self.master.as_ref())?;
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
        let text = match crate::nats::render(&self.cluster, &self.credentials, self.master.as_ref()) {
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
        self.store.save_state(&self.cluster, &self.tokens, &self.credentials)?;
        // Before nodes learn of new placements, the NATS server learns of their subjects.
        self.sync_nats();
        // Whatever changed, nodes waiting for a new desired state look again.
        self.changed.notify_waiters();
        Ok(())
    }

    /// A node's desired state, signed, with the messaging server and the replicas: signed once
    /// per generation (heartbeats and long polls return the same copy).
    fn signed_desired(&mut self, name: &str) -> Result<lamina_wire::SignedDesired, ApiError> {
        let generation = self.cluster.desired.get(name).map_or(0, |d| d.generation);
        if let Some((g, signed)) = self.signed.get(name)
            && *g == generation
        {
            return Ok(signed.clone());
        }
        let mut desired = self
            .cluster
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
        .route(paths::ENDPOINTS, get(endpoints))
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
