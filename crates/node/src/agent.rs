//! The agent's loop: heartbeat, re-attest, reconcile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lamina_runtime::{Engine, Exit, Limits, Output, Program, Secrets, Services, TrustedCode, WasiConfig};
use lamina_tee::Platform;
use lamina_types::error_chain as chain;
use lamina_types::{ByteSize, ModuleHash, ModuleRef, Target, WorkloadSpec};
use lamina_wire::{Assignment, ClientError, DesiredState, InstanceReport, SignedDesired};

use crate::enrol::evidence;
use crate::identity::Identity;
use crate::reconcile::{Action, InstanceKey, Phase, Seen};

/// The most a workload's sealed directory may hold on a node.
const VOLUME_QUOTA: u64 = 1 << 30;

/// The desired state last received, if its signed copy verifies; otherwise nothing runs until
/// the control plane answers.
fn load_desired(state: &std::path::Path, key: &p256::ecdsa::VerifyingKey, node: &str) -> DesiredState {
    let path = state.join("desired.json");
    let Ok(bytes) = std::fs::read(&path) else { return DesiredState::default() };
    let checked = serde_json::from_slice::<SignedDesired>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|signed| signed.verify(key, node));
    match checked {
        Ok(desired) => desired,
        Err(e) => {
            tracing::error!("ignoring the saved desired state {}: {e}", path.display());
            DesiredState::default()
        }
    }
}

/// How a node presents itself and paces its loop.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Its state directory: identity, artifacts, desired state, instance logs.
    pub state: PathBuf,
    /// Its name.
    pub name: String,
    /// Its architecture.
    pub target: Target,
    /// Memory it offers to workloads.
    pub memory: ByteSize,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Zone.
    pub zone: String,
    /// Time between heartbeats.
    pub heartbeat: Duration,
    /// Time between attestations.
    pub reattest: Duration,
    /// Checks the control plane's evidence (its RA-TLS certificate) on every connection;
    /// without one, only its key is checked against the join token's pin.
    pub control_verifier: Option<Arc<lamina_attest::Verifier>>,
    /// The NATS server this node's instances use in place of the control plane's (a leaf
    /// node beside an edge node, say); messaging stays off unless the control plane has it on.
    pub nats: Option<String>,
    /// Where to serve Prometheus metrics (plain HTTP, `GET /metrics`), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// Where to serve the routes of the HTTP instances placed on this node (attested HTTPS),
    /// if anywhere; without it, HTTP workloads do not start here.
    pub ingress: Option<std::net::SocketAddr>,
    /// How clients reach the ingress (`https://HOST:PORT`), as the control plane tells them;
    /// by default `https://` and the address it listens on, which must then name a host.
    pub ingress_url: Option<String>,
    /// The device profile of its engine: the control plane compiles its artifacts for it.
    pub profile: lamina_types::Profile,
    /// The bounds of each instance's output log.
    pub logs: crate::LogLimits,
    /// Where an instance's sealed directory (or the node's own sealed state) that this state
    /// directory has seen is missing, empty or holds another volume: refuse (the default) or
    /// start over with that, losing the data that was there.
    pub sealed_absent: lamina_seal::Absent,
}

impl NodeOptions {
    /// A node named `name` for `target`, keeping its state in `state`, with `lamina node`'s
    /// defaults for the rest: 1 GiB offered, zone `default`, no labels, a heartbeat every 2 s,
    /// attestation every 4 minutes, the server profile, no metrics, its own NATS server or
    /// none, sealed directories that must not go missing.
    pub fn new(state: PathBuf, name: String, target: Target) -> Self {
        NodeOptions {
            state,
            name,
            target,
            memory: ByteSize::gib(1),
            labels: BTreeMap::new(),
            zone: "default".into(),
            heartbeat: Duration::from_secs(2),
            reattest: Duration::from_secs(240),
            control_verifier: None,
            nats: None,
            metrics: None,
            ingress: None,
            ingress_url: None,
            profile: lamina_types::Profile::Server,
            logs: crate::LogLimits::default(),
            sealed_absent: lamina_seal::Absent::Refuse,
        }
    }
}

/// Why the agent stopped, or a step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The control plane could not be reached or refused.
    #[error(transparent)]
    Control(#[from] ClientError),
    /// A file or directory of the node's state could not be read or written.
    #[error("{what}")]
    Io {
        /// Which, and what was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node's state is not as it should be (a malformed key, an engine that will not start).
    #[error("node state: {0}")]
    State(String),
    /// The control plane answered something unexpected.
    #[error("unexpected answer from the control plane: {0}")]
    Protocol(String),
    /// The platform could not attest.
    #[error("the platform could not attest")]
    Attest(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An artifact could not be had or failed its checks.
    #[error("artifact: {0}")]
    Artifact(String),
}

impl AgentError {
    /// An I/O error on `path`, while doing `doing` (`create`, `open`, `write`).
    pub(crate) fn io(path: &std::path::Path, doing: &str, source: std::io::Error) -> Self {
        AgentError::Io { what: format!("cannot {doing} {}", path.display()), source }
    }
}

/// What an assigned instance's guest sees (its arguments, its environment with
/// `LAMINA_WORKLOAD`, `LAMINA_REPLICA` and `LAMINA_NODE`, which the manifest cannot set, and
/// what its workload's network rules let it reach) and its limits, on node `node`.
pub(crate) fn guest_view(node: &str, a: &Assignment) -> (WasiConfig, Limits) {
    let wasi = WasiConfig {
        args: std::iter::once(a.spec.name.to_string()).chain(a.spec.args.iter().cloned()).collect(),
        env: a
            .spec
            .env
            .iter()
            .filter(|(k, _)| !k.starts_with("LAMINA_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([
                ("LAMINA_WORKLOAD".to_owned(), a.placement.workload.to_string()),
                ("LAMINA_REPLICA".to_owned(), a.placement.replica.to_string()),
                ("LAMINA_NODE".to_owned(), node.to_owned()),
            ])
            .collect(),
        network: a.spec.network.clone(),
        ..WasiConfig::default()
    };
    (wasi, Limits { max_memory: Some(a.spec.memory), ..Limits::default() })
}

/// The configuration digest of an assigned instance on node `node`, as
/// [`lamina_runtime::InstanceConfig`] defines it for every host: what its evidence claims.
pub(crate) fn config_digest(node: &str, a: &Assignment, profile: lamina_types::Profile) -> [u8; 32] {
    let (wasi, limits) = guest_view(node, a);
    lamina_runtime::InstanceConfig {
        secrets: a.spec.secrets.iter().map(ToString::to_string).collect(),
        sealed_dirs: a.spec.sealed.clone(),
        topics: a.spec.topics.iter().map(ToString::to_string).collect(),
        profile: profile.to_string(),
        ..lamina_runtime::InstanceConfig::new(lamina_runtime::InstanceHost::Node, &wasi, limits)
    }
    .digest()
}

/// How long stopping instances waits for their threads. A guest that is running Wasm traps at
/// its next epoch check (milliseconds); one blocked in a host call (a long sleep, say) cannot
/// be interrupted there, so its thread is left to end by itself once the call returns, and
/// the node goes on: the instance is stopped as far as the node and the control plane are
/// concerned, and it runs no more Wasm.
pub const STOP_WAIT: Duration = Duration::from_secs(1);

/// The time limit of each request to an HTTP instance on the ingress.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a node stays degraded after an instance failed to start for a reason of its own,
/// once that instance is no longer its to run.
const DEGRADED_HOLD: Duration = Duration::from_secs(30);

/// An instance this node has: what it runs, how often it was restarted, and where it stands.
struct Instance {
    spec: WorkloadSpec,
    restarts: u32,
    run: Run,
}

/// Whether an instance's guest runs.
enum Run {
    /// On its thread, until `stop` is set.
    Guest {
        /// Set to stop it.
        stop: Arc<AtomicBool>,
        /// Its thread: the guest's exit, or `None` when it could not be instantiated.
        thread: JoinHandle<Option<Exit>>,
    },
    /// Its routes on the node's ingress, until taken out.
    Served,
    /// Not; started again at `retry_at`.
    BackingOff {
        /// When.
        retry_at: Instant,
    },
}

impl Instance {
    /// Where it stands now.
    fn phase(&self) -> Phase {
        match &self.run {
            Run::Guest { thread, .. } if thread.is_finished() => Phase::Ended,
            Run::Guest { .. } | Run::Served => Phase::Running,
            Run::BackingOff { retry_at } => Phase::BackingOff { retry_at: *retry_at },
        }
    }

    /// What the reconcile step sees of it.
    fn seen(&self) -> Seen {
        Seen { spec: self.spec.clone(), phase: self.phase(), restarts: self.restarts }
    }
}

/// The node agent.
pub struct Agent {
    identity: Identity,
    options: NodeOptions,
    platform: Box<dyn Platform + Send>,
    engine: Engine,
    artifact_key: p256::ecdsa::VerifyingKey,
    instances: BTreeMap<InstanceKey, Instance>,
    /// Threads of stopped instances that did not end within [`STOP_WAIT`] (blocked in a host
    /// call), until they do.
    lingering: Vec<(String, JoinHandle<Option<Exit>>)>,
    /// Instances whose last start failed for a reason of this node's (its state directory,
    /// file descriptors, threads, its platform), with the error: while there are any, the
    /// node's heartbeats say it is degraded. An entry stays for [`DEGRADED_HOLD`] after its
    /// instance was placed elsewhere, so that a node that cannot start anything does not take
    /// placements back at once.
    local_failures: BTreeMap<InstanceKey, (String, Instant)>,
    desired: DesiredState,
    /// The newest generation seen, sealed: an older desired state is refused.
    floor: crate::floor::GenerationFloor,
    attested: Option<Instant>,
    /// How much of each instance's log file the control plane has.
    shipped: BTreeMap<InstanceKey, u64>,
    /// The NATS client, once an instance needs it, and the server it is for.
    nats: std::sync::Mutex<Option<(String, Arc<dyn lamina_runtime::Broker>)>>,
    /// The node's own bus, when there is no NATS server.
    bus: lamina_runtime::LocalBus,
    /// Each instance's topic keys, kept across its restarts.
    topic_keys: std::sync::Mutex<BTreeMap<InstanceKey, Arc<crate::topics::ControlTopicKeys>>>,
    /// Counts of sealed messages.
    seal_stats: Arc<lamina_messaging_crypto::Stats>,
    metrics: Arc<crate::metrics::NodeMetrics>,
    /// The metrics endpoint, while the agent lives.
    _endpoint: Option<lamina_metrics::Endpoint>,
    /// The ingress, when the node serves HTTP.
    ingress: Option<crate::ingress::Ingress>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("name", &self.identity.name).field("instances", &self.instances.len()).finish()
    }
}

impl Agent {
    /// An agent for an enrolled node. The desired state it last received is restored, so it
    /// can run its instances before the control plane answers.
    ///
    /// # Errors
    /// When the saved artifact key is malformed or the engine cannot start.
    pub fn new(
        identity: Identity,
        options: NodeOptions,
        platform: Box<dyn Platform + Send>,
    ) -> Result<Self, AgentError> {
        use p256::pkcs8::DecodePublicKey as _;
        let artifact_key = p256::ecdsa::VerifyingKey::from_public_key_pem(&identity.artifact_key)
            .map_err(|e| AgentError::State(format!("the saved artifact key: {e}")))?;
        let engine = Engine::new(lamina_runtime::EngineOptions::for_profile(options.profile))
            .map_err(|e| AgentError::State(format!("cannot start the engine: {e}")))?;
        let floor = crate::floor::GenerationFloor::open(&options.state, platform.as_ref(), options.sealed_absent)
            .map_err(|e| AgentError::State(format!("the node's sealed state in {}: {e}", options.state.display())))?;
        let mut desired = load_desired(&options.state, &artifact_key, &identity.name);
        if desired.generation < floor.get() {
            tracing::error!(
                "the saved desired state is of generation {}, older than generation {} this node has seen (was it \
                 rolled back?): running nothing until the control plane answers",
                desired.generation,
                floor.get()
            );
            desired = DesiredState::default();
        }
        let seal_stats: Arc<lamina_messaging_crypto::Stats> = Arc::default();
        let metrics: Arc<crate::metrics::NodeMetrics> = Arc::default();
        let ingress_metrics = Arc::new(lamina_serve::Metrics::new());
        let endpoint = match options.metrics {
            Some(addr) => {
                let registry = Arc::new(crate::metrics::registry(&metrics, seal_stats.clone(), &ingress_metrics));
                let collect: lamina_metrics::Collect = Arc::new(move || lamina_metrics::render(&registry));
                Some(
                    lamina_metrics::Endpoint::start(addr, collect)
                        .map_err(|e| AgentError::State(format!("cannot serve metrics on {addr}: {e}")))?,
                )
            }
            None => None,
        };
        let ingress = options
            .ingress
            .map(|addr| {
                crate::ingress::Ingress::start(addr, options.ingress_url.clone(), platform.as_ref(), ingress_metrics)
            })
            .transpose()?;
        Ok(Agent {
            identity,
            options,
            platform,
            engine,
            artifact_key,
            instances: BTreeMap::new(),
            lingering: Vec::new(),
            local_failures: BTreeMap::new(),
            desired,
            floor,
            attested: None,
            shipped: BTreeMap::new(),
            nats: std::sync::Mutex::new(None),
            bus: lamina_runtime::LocalBus::new(),
            topic_keys: std::sync::Mutex::new(BTreeMap::new()),
            seal_stats,
            metrics,
            _endpoint: endpoint,
            ingress,
        })
    }

    /// Runs until `stop` is set: heartbeats, re-attestation, reconciliation. The instances are
    /// stopped when it returns.
    ///
    /// # Errors
    /// When the control plane revokes this node (its credential is refused).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), AgentError> {
        let mut client = self.identity.client(self.platform.as_ref(), self.options.control_verifier.clone())?;
        let mut offline_since: Option<Instant> = None;
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            if let Some(ingress) = &self.ingress {
                ingress.renew_if_due(self.platform.as_ref());
            }
            if self.attested.is_none_or(|t| t.elapsed() >= self.options.reattest) {
                // A new certificate with fresh evidence, then fresh evidence over the control
                // plane's challenge.
                match self.identity.client(self.platform.as_ref(), self.options.control_verifier.clone()) {
                    Ok(fresh) => client = fresh,
                    Err(e) => tracing::warn!("cannot renew the attested certificate: {}", chain(&e)),
                }
                let started = Instant::now();
                let attested = self.reattest(&client);
                self.metrics.attested(attested.as_ref().is_ok_and(|pass| *pass), started.elapsed().as_secs_f64());
                if let Err(e) = attested {
                    tracing::warn!("re-attestation failed: {}", chain(&e));
                }
            }
            let report = lamina_wire::HeartbeatRequest {
                instances: self.reports(),
                logs: self.new_output(),
                degraded: self.degraded(),
                ingress: self.ingress.as_ref().map(|i| i.url().to_owned()),
            };
            let sent = Instant::now();
            let answer =
                client.heartbeat(&self.identity.name, &report).map_err(AgentError::Control).and_then(|signed| {
                    let desired =
                        signed.verify(&self.artifact_key, &self.identity.name).map_err(AgentError::Protocol)?;
                    Ok((signed, desired))
                });
            match &answer {
                Ok(_) => self.metrics.heartbeat_seconds.observe(sent.elapsed().as_secs_f64()),
                Err(_) => {
                    self.metrics.heartbeat_failures.inc();
                }
            }
            match answer {
                Ok((signed, desired)) => {
                    if let Some(since) = offline_since.take() {
                        tracing::info!("the control plane is back after {:?}; reconciling", since.elapsed());
                    }
                    let replicas = desired.control_planes.clone();
                    self.apply(&signed, desired);
                    if self.learn_replicas(&replicas) {
                        match self.identity.client(self.platform.as_ref(), self.options.control_verifier.clone()) {
                            Ok(fresh) => client = fresh,
                            Err(e) => {
                                tracing::warn!(
                                    "cannot renew the client for the control plane's replicas: {}",
                                    chain(&e)
                                );
                            }
                        }
                    }
                }
                Err(AgentError::Control(ClientError::Refused { status: 401, message })) => {
                    break Err(AgentError::Control(ClientError::Refused { status: 401, message }));
                }
                Err(e) => {
                    if offline_since.is_none() {
                        tracing::warn!(
                            "the control plane is out of reach ({e}); keeping the {} instances of generation {}",
                            self.desired.assignments.len(),
                            self.desired.generation
                        );
                        offline_since = Some(Instant::now());
                    }
                }
            }
            self.reconcile(&client);
            if offline_since.is_none() {
                self.attest_unattested(&client);
            }
            let next_heartbeat = Instant::now() + self.options.heartbeat;
            while offline_since.is_none() && !stop.load(Ordering::Relaxed) {
                // Until the next heartbeat, wait for a new desired state: a deployment reaches
                // this node within a round trip.
                let left = next_heartbeat.saturating_duration_since(Instant::now());
                if left < Duration::from_millis(20) {
                    break;
                }
                let query = lamina_wire::DesiredQuery {
                    after: Some(self.desired.generation),
                    // Within the client's 20-second timeout.
                    wait_ms: Some(u64::try_from(left.min(Duration::from_secs(15)).as_millis()).unwrap_or(15_000)),
                };
                match client.desired(&self.identity.name, &query) {
                    Ok(signed) => match signed.verify(&self.artifact_key, &self.identity.name) {
                        Ok(desired) => {
                            if self.apply(&signed, desired) {
                                self.reconcile(&client);
                            }
                        }
                        Err(e) => {
                            tracing::warn!("a desired state that does not verify: {e}");
                            break;
                        }
                    },
                    Err(e) => {
                        tracing::debug!("waiting for a new desired state: {e}");
                        break;
                    }
                }
            }
            while Instant::now() < next_heartbeat && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        self.stop_all();
        result
    }

    /// Takes a desired state the control plane signed, if it differs from the current one;
    /// says whether it did.
    fn apply(&mut self, signed: &SignedDesired, desired: DesiredState) -> bool {
        if desired.generation < self.floor.get() {
            tracing::error!(
                "refusing a desired state of generation {}: this node has seen generation {}",
                desired.generation,
                self.floor.get()
            );
            return false;
        }
        if desired.generation == self.desired.generation
            && desired.assignments == self.desired.assignments
            && desired.messaging == self.desired.messaging
        {
            return false;
        }
        tracing::info!(generation = desired.generation, "new desired state: {} instances", desired.assignments.len());
        self.desired = desired;
        self.save_desired(signed);
        if let Err(e) = self.floor.raise(self.desired.generation) {
            tracing::warn!("cannot record generation {} in the node's sealed state: {e}", self.desired.generation);
        }
        // Keys of instances no longer here are forgotten.
        let here: BTreeSet<InstanceKey> =
            self.desired.assignments.iter().map(|a| (a.placement.workload.clone(), a.placement.replica)).collect();
        self.topic_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|k, _| here.contains(k));
        true
    }

    /// Attests, while they run, the instances that have no attested key (started from cached
    /// secrets while the control plane was out of reach), so that their topic keys can be
    /// released to them.
    fn attest_unattested(&self, client: &lamina_wire::ControlClient) {
        let waiting: Vec<(Assignment, Arc<crate::topics::ControlTopicKeys>)> = {
            let keys = self.topic_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.desired
                .assignments
                .iter()
                .filter_map(|a| {
                    let k = keys.get(&(a.placement.workload.clone(), a.placement.replica))?;
                    k.unattested().then(|| (a.clone(), k.clone()))
                })
                .collect()
        };
        for (a, keys) in waiting {
            let ModuleRef::Hash(module) = a.spec.module else { continue };
            let state = &self.options.state;
            let digest = config_digest(&self.identity.name, &a, self.options.profile);
            match crate::secrets::bundle(
                client,
                &self.identity.name,
                state,
                self.platform.as_ref(),
                &a,
                &module,
                digest,
            ) {
                Ok((_, Some(key))) => {
                    keys.attested(key, module);
                    tracing::info!(
                        "{}/{}: attested; its topic keys can be released",
                        a.placement.workload,
                        a.placement.replica
                    );
                }
                Ok((_, None)) => {}
                Err(e) => {
                    tracing::warn!("{}/{}: cannot attest: {}", a.placement.workload, a.placement.replica, chain(&e))
                }
            }
        }
    }

    /// Takes the control plane's replicas as the addresses to turn to (kept with the
    /// identity); says whether they changed.
    fn learn_replicas(&mut self, replicas: &[String]) -> bool {
        let known = replicas.join(",");
        if replicas.is_empty() || known == self.identity.control {
            return false;
        }
        tracing::info!("the control plane's replicas: {known}");
        self.identity.control = known;
        if let Err(e) = self.identity.save(&self.options.state) {
            tracing::warn!("cannot save the replicas' addresses: {e}");
        }
        true
    }

    /// Keeps the signed copy, for restarts while the control plane is out of reach.
    fn save_desired(&self, signed: &SignedDesired) {
        let path = self.options.state.join("desired.json");
        let written = serde_json::to_vec_pretty(signed)
            .map_err(std::io::Error::other)
            .and_then(|b| crate::state::write_atomically(&path, &b));
        if let Err(e) = written {
            tracing::warn!("cannot save the desired state to {}: {e}", path.display());
        }
    }

    /// Attests to the control plane; says whether the evidence passed.
    fn reattest(&mut self, client: &lamina_wire::ControlClient) -> Result<bool, AgentError> {
        let nonce = client.challenge()?.nonce;
        let evidence = evidence(self.platform.as_ref(), &nonce, &self.identity.spki()?)?;
        let verdict = client.attest(&self.identity.name, &lamina_wire::AttestRequest { nonce, evidence })?;
        self.attested = Some(Instant::now());
        if !verdict.verified {
            tracing::error!(
                "this node's evidence no longer passes the policy: {}",
                verdict.reason.as_deref().unwrap_or("no reason given")
            );
            return Ok(false);
        }
        Ok(true)
    }

    /// What each instance wrote since the last heartbeat (at most
    /// [`lamina_wire::LOG_CHUNK`] each; the rest follows with later heartbeats).
    fn new_output(&mut self) -> Vec<lamina_wire::LogChunk> {
        use std::io::{Read as _, Seek as _};
        let mut chunks = Vec::new();
        for (workload, replica) in self.instances.keys() {
            let path = self.options.state.join("logs").join(format!("{workload}-{replica}.log"));
            let Ok(mut file) = std::fs::File::open(&path) else { continue };
            let len = file.metadata().map_or(0, |m| m.len());
            let offset = self.shipped.entry((workload.clone(), *replica)).or_insert(len.saturating_sub(256 << 10));
            if len < *offset {
                *offset = 0;
            }
            if len == *offset || file.seek(std::io::SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut bytes = Vec::new();
            let limit = lamina_wire::LOG_CHUNK as u64;
            if file.take(limit).read_to_end(&mut bytes).is_err() {
                continue;
            }
            // Whole lines only, unless one line fills the chunk.
            let end = match bytes.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if bytes.len() as u64 == limit => bytes.len(),
                None => continue,
            };
            *offset += end as u64;
            chunks.push(lamina_wire::LogChunk {
                workload: workload.clone(),
                replica: *replica,
                text: String::from_utf8_lossy(&bytes[..end]).into_owned(),
            });
        }
        chunks
    }

    fn reports(&self) -> Vec<InstanceReport> {
        self.instances
            .iter()
            .map(|((workload, replica), i)| InstanceReport {
                workload: workload.clone(),
                replica: *replica,
                state: i.phase().reported(),
                restarts: i.restarts,
            })
            .collect()
    }

    /// One reconcile step: what [`crate::reconcile::step`] decides from the desired state and
    /// the instances as they are now, carried out (stops, then back-offs, then starts).
    fn reconcile(&mut self, client: &lamina_wire::ControlClient) {
        let now = Instant::now();
        let seen: BTreeMap<InstanceKey, Seen> = self.instances.iter().map(|(k, i)| (k.clone(), i.seen())).collect();
        let actions = crate::reconcile::step(&self.desired.assignments, &seen, now);
        let mut stopping = Vec::new();
        let mut forget = Vec::new();
        for action in &actions {
            if let Action::Stop { key, forget: gone } = action {
                stopping.extend(self.instances.remove(key).map(|i| (key.clone(), i)));
                if *gone {
                    forget.push(key.clone());
                }
            }
        }
        self.stop_instances(stopping);
        for (workload, replica) in forget {
            // No longer this node's: its cached secrets go too.
            let _ = std::fs::remove_file(crate::secrets::cache_path(&self.options.state, &workload, replica));
        }
        self.reap_lingering();
        for action in actions {
            match action {
                Action::Stop { .. } => {}
                Action::BackOff { key, restarts, retry_at } => {
                    let Some(instance) = self.instances.get_mut(&key) else { continue };
                    let exit = match std::mem::replace(&mut instance.run, Run::BackingOff { retry_at }) {
                        Run::Guest { thread, .. } => thread.join().ok().flatten(),
                        Run::Served | Run::BackingOff { .. } => None,
                    };
                    tracing::warn!("{}/{} ended ({exit:?}); restarting after a delay", key.0, key.1);
                    instance.restarts = restarts;
                    self.metrics.restarts.inc();
                }
                Action::Start { assignment, restarts } => {
                    let key = (assignment.placement.workload.clone(), assignment.placement.replica);
                    let run = match self.start(client, &assignment) {
                        Ok(run) => {
                            self.local_failures.remove(&key);
                            run
                        }
                        Err(e) => {
                            tracing::error!("cannot start {}/{}: {}", key.0, key.1, chain(&e));
                            if matches!(e, AgentError::Io { .. } | AgentError::State(_) | AgentError::Attest(_)) {
                                self.local_failures.insert(key.clone(), (chain(&e), Instant::now()));
                            }
                            Run::BackingOff { retry_at: Instant::now() + crate::reconcile::START_RETRY }
                        }
                    };
                    self.instances.insert(key, Instance { spec: assignment.spec, restarts, run });
                }
            }
        }
        let wanted: BTreeSet<InstanceKey> =
            self.desired.assignments.iter().map(|a| (a.placement.workload.clone(), a.placement.replica)).collect();
        self.local_failures.retain(|key, (_, at)| wanted.contains(key) || at.elapsed() < DEGRADED_HOLD);
        self.metrics.instance_states(self.instances.values().map(|i| i.phase().reported()));
    }

    /// Why this node cannot start instances, for its heartbeat: the first local failure (and
    /// how many more), or `None`.
    fn degraded(&self) -> Option<String> {
        let ((workload, replica), (error, _)) = self.local_failures.iter().next()?;
        let more = self.local_failures.len() - 1;
        Some(match more {
            0 => format!("cannot start {workload}/{replica}: {error}"),
            n => format!("cannot start {workload}/{replica}: {error} (and {n} more)"),
        })
    }

    /// The program of a module for this node: its signed artifact from the node's artifact
    /// directory, or from the control plane; either way loaded only if its signature verifies
    /// against the control plane's artifact key and its signed header names `hash`. A cached
    /// copy that does not verify (a crash mid-write, a file swapped on disk) is fetched again.
    fn program(&self, client: &lamina_wire::ControlClient, hash: &ModuleHash) -> Result<Program, AgentError> {
        let dir = self.options.state.join("artifacts");
        let name = hex::encode(hash.as_bytes());
        let (art_path, sig_path) = (dir.join(format!("{name}.lamart")), dir.join(format!("{name}.lamart.sig")));
        if let (Ok(bytes), Ok(signature)) = (std::fs::read(&art_path), std::fs::read(&sig_path)) {
            match self.load_signed(&bytes, &signature, hash) {
                Ok(program) => {
                    self.metrics.artifact(true);
                    return Ok(program);
                }
                Err(e) => tracing::warn!("the cached artifact of {hash} is unusable ({e}); fetching it again"),
            }
        }
        self.metrics.artifact(false);
        use base64::Engine as _;
        let signed = client.artifact(&self.identity.name, hash)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let bytes = b64.decode(signed.artifact).map_err(|e| AgentError::Artifact(e.to_string()))?;
        let signature = b64.decode(signed.signature).map_err(|e| AgentError::Artifact(e.to_string()))?;
        // Checked before it is kept: nothing unverified is written to the artifact directory.
        let program = self.load_signed(&bytes, &signature, hash)?;
        std::fs::create_dir_all(&dir).map_err(|source| AgentError::io(&dir, "create", source))?;
        for (path, data) in [(&sig_path, &signature), (&art_path, &bytes)] {
            crate::state::write_atomically(path, data).map_err(|source| AgentError::io(path, "write", source))?;
        }
        Ok(program)
    }

    /// Verifies a signed artifact of module `hash` and loads it.
    fn load_signed(&self, bytes: &[u8], signature: &[u8], hash: &ModuleHash) -> Result<Program, AgentError> {
        let code = TrustedCode::signed(bytes, signature, &[self.artifact_key])
            .map_err(|e| AgentError::Artifact(e.to_string()))?;
        if code.identity() != Some(*hash) {
            return Err(AgentError::Artifact(format!(
                "the artifact is of module {}, not {hash}",
                code.header().module_hash
            )));
        }
        lamina_runtime::Program::load_code(&self.engine, &code).map_err(|e| AgentError::Artifact(e.to_string()))
    }

    fn start(&self, client: &lamina_wire::ControlClient, a: &Assignment) -> Result<Run, AgentError> {
        let ModuleRef::Hash(hash) = &a.spec.module else {
            return Err(AgentError::Protocol("an assignment names a module by path".into()));
        };
        let program = self.program(client, hash)?;
        let logs = self.options.state.join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| AgentError::io(&logs, "create", source))?;
        let log_path = logs.join(format!("{}-{}.log", a.placement.workload, a.placement.replica));
        let log: Arc<dyn lamina_runtime::GuestOutput> =
            crate::log::InstanceLog::open(&log_path, self.options.logs, self.metrics.logs.clone())
                .map_err(|source| AgentError::io(&log_path, "open", source))?;
        let (view, limits) = guest_view(&self.identity.name, a);
        let wasi = WasiConfig {
            stdin: Some(Vec::new()),
            stdout: Output::Sink(log.clone()),
            stderr: Output::Sink(log),
            ..view
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut services = Services { stop: Some(stop.clone()), ..Services::default() };
        // Instances that message through NATS attest too: their topic keys are released to
        // the key they attest with.
        let sealed_messaging = !a.spec.topics.is_empty() && self.nats_url().is_some();
        let mut instance_key = None;
        if !a.spec.secrets.is_empty() || !a.spec.sealed.is_empty() || sealed_messaging {
            instance_key = self.provide(client, a, hash, &mut services)?;
        }
        if !a.spec.topics.is_empty() {
            services.messaging = Some(self.messaging(client, a, hash, instance_key)?);
        }
        if let Some(service) = &a.spec.http {
            return self.serve(a, service, &program, hash, wasi, limits, services);
        }
        let name = format!("{}/{}", a.placement.workload, a.placement.replica);
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || match program.instantiate_with(&wasi, limits, services) {
                Ok(mut instance) => Some(instance.run()),
                Err(e) => {
                    tracing::error!("{name}: cannot start: {e}");
                    None
                }
            })
            .map_err(|e| AgentError::State(e.to_string()))?;
        tracing::info!("started {}/{}", a.placement.workload, a.placement.replica);
        Ok(Run::Guest { stop, thread })
    }

    /// Serves an HTTP instance's routes on the ingress: a handler of the component, fresh
    /// instances per request under the workload's limits and a per-request time limit.
    #[allow(clippy::too_many_arguments, reason = "what `start` has gathered for the instance")]
    fn serve(
        &self,
        a: &Assignment,
        service: &lamina_types::ingress::HttpService,
        program: &Program,
        hash: &ModuleHash,
        wasi: WasiConfig,
        limits: lamina_runtime::Limits,
        services: Services,
    ) -> Result<Run, AgentError> {
        let Some(ingress) = &self.ingress else {
            return Err(AgentError::State(format!(
                "workload {} serves HTTP and this node has no ingress; start it with --ingress ADDR, or constrain the \
                 workload to nodes that have one",
                a.placement.workload
            )));
        };
        let config = lamina_runtime::HttpConfig {
            wasi,
            limits: lamina_runtime::Limits { timeout: Some(HTTP_REQUEST_TIMEOUT), ..limits },
            reuse: lamina_runtime::Reuse::FRESH,
            services: Services { stop: None, ..services },
        };
        let handler =
            lamina_runtime::HttpHandler::new(program, config).map_err(|e| AgentError::Artifact(e.to_string()))?;
        ingress.serve(
            self.platform.as_ref(),
            &a.placement.workload,
            a.placement.replica,
            service,
            *hash,
            config_digest(&self.identity.name, a, self.options.profile),
            &handler,
        )?;
        tracing::info!(
            "serving {}/{} on https://{}/ ({})",
            a.placement.workload,
            a.placement.replica,
            ingress.addr(),
            service.routes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
        );
        Ok(Run::Served)
    }

    /// The instance's secrets and sealed directories: the secrets released to it (or cached),
    /// its volumes under `<state>/volumes/<workload>-<replica>/`, sealed to its module with the
    /// platform's sealing root, or the released one where the platform has none.
    fn provide(
        &self,
        client: &lamina_wire::ControlClient,
        a: &Assignment,
        hash: &ModuleHash,
        services: &mut Services,
    ) -> Result<Option<p256::SecretKey>, AgentError> {
        let platform = self.platform.as_ref();
        let (bundle, instance_key) = crate::secrets::bundle(
            client,
            &self.identity.name,
            &self.options.state,
            platform,
            a,
            hash,
            config_digest(&self.identity.name, a, self.options.profile),
        )?;
        let mut secrets = Secrets::new();
        for (name, value) in bundle.values().map_err(|e| AgentError::Artifact(e.to_string()))? {
            secrets.insert(&name, value).map_err(|e| AgentError::Protocol(e.to_string()))?;
        }
        services.secrets = Some(Arc::new(secrets));
        if a.spec.sealed.is_empty() {
            return Ok(instance_key);
        }
        let released;
        let sealing: &dyn lamina_tee::Platform = match platform.sealing_root() {
            Ok(_) => platform,
            Err(_) => {
                let root = bundle.sealing_root().map_err(|e| AgentError::Artifact(e.to_string()))?;
                released = crate::secrets::ReleasedRoot { inner: platform, root };
                &released
            }
        };
        // Rollback protection needs the platform's monotonic counters (sim and TPM keep them);
        // elsewhere a volume is still confidential and tamper-evident.
        let rollback_protection =
            matches!(platform.info().kind, lamina_types::PlatformKind::Sim | lamina_types::PlatformKind::Tpm);
        if !rollback_protection {
            tracing::warn!(
                "{}/{}: the {} platform keeps no monotonic counters; its sealed directories are not protected \
                 against rollback",
                a.placement.workload,
                a.placement.replica,
                platform.info().kind
            );
        }
        let options = lamina_seal::VolumeOptions {
            seal_to: lamina_seal::SealTo::Module(*hash),
            quota: VOLUME_QUOTA,
            rollback_protection,
        };
        for (i, guest) in a.spec.sealed.iter().enumerate() {
            let dir = self
                .options
                .state
                .join("volumes")
                .join(format!("{}-{}", a.placement.workload, a.placement.replica))
                .join(i.to_string());
            let volume = lamina_seal::KnownVolumes::in_state_dir(&self.options.state)
                .open(&dir, sealing, &options, self.options.sealed_absent)
                .map_err(|e| AgentError::State(format!("sealed directory {guest} ({}): {e}", dir.display())))?;
            services.sealed.push(lamina_runtime::SealedMount { guest: guest.clone(), volume });
        }
        Ok(instance_key)
    }

    /// The NATS server instances message through: none unless the control plane has
    /// messaging on; then this node's own (`--nats`) or the control plane's.
    fn nats_url(&self) -> Option<&str> {
        let control = self.desired.messaging.as_deref()?;
        Some(self.options.nats.as_deref().unwrap_or(control))
    }

    /// A broker for an instance, limited to its workload's topics: through NATS (one client
    /// per node, shared), each message sealed under its topic's key and sent as
    /// `workload/replica@node`; without NATS the node's own bus.
    fn messaging(
        &self,
        client: &lamina_wire::ControlClient,
        a: &Assignment,
        module: &ModuleHash,
        instance_key: Option<p256::SecretKey>,
    ) -> Result<Arc<dyn lamina_runtime::Broker>, AgentError> {
        let allowed = a
            .spec
            .topics
            .iter()
            .map(|t| lamina_host_messaging::Pattern::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AgentError::Protocol(format!("a topic of the workload: {e}")))?;
        let Some(url) = self.nats_url() else {
            let bus: Arc<dyn lamina_runtime::Broker> = Arc::new(self.bus.clone());
            return Ok(Arc::new(lamina_host_messaging::Scoped::new(bus, allowed)));
        };
        let nats = {
            let mut nats = self.nats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*nats {
                Some((known, broker)) if known == url => broker.clone(),
                _ => {
                    let broker: Arc<dyn lamina_runtime::Broker> = Arc::new(
                        lamina_messaging_nats::NatsBroker::connect_with(
                            url,
                            lamina_wire::MESSAGING_PREFIX,
                            self.identity.nats_seed.as_deref(),
                        )
                        .map_err(|e| AgentError::State(e.to_string()))?,
                    );
                    tracing::info!("messaging through NATS at {url}, sealed end to end");
                    *nats = Some((url.to_owned(), broker.clone()));
                    broker
                }
            }
        };
        let keys = {
            let mut all = self.topic_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            all.entry((a.placement.workload.clone(), a.placement.replica))
                .or_insert_with(|| {
                    Arc::new(crate::topics::ControlTopicKeys::new(
                        client.clone(),
                        &self.identity.name,
                        &a.placement.workload,
                        a.placement.replica,
                    ))
                })
                .clone()
        };
        if let Some(key) = instance_key {
            keys.attested(key, *module);
        }
        let sender = format!("{}/{}@{}", a.placement.workload, a.placement.replica, self.identity.name);
        let sealed = lamina_messaging_crypto::EncryptedBroker::new(nats, keys, &sender, self.seal_stats.clone())
            .map_err(|e| AgentError::State(e.to_string()))?;
        Ok(Arc::new(lamina_host_messaging::Scoped::new(Arc::new(sealed), allowed)))
    }

    fn stop_all(&mut self) {
        let all = std::mem::take(&mut self.instances).into_iter().collect();
        self.stop_instances(all);
    }

    /// Stops instances within [`STOP_WAIT`] in all: every stop flag is set first, then their
    /// threads are waited for until one shared deadline. Those still running then are kept
    /// in `lingering` (and counted) until they end.
    fn stop_instances(&mut self, instances: Vec<(InstanceKey, Instance)>) {
        let mut threads = Vec::new();
        for ((workload, replica), instance) in instances {
            tracing::info!("stopping {workload}/{replica}");
            match instance.run {
                Run::Guest { stop, thread } => {
                    stop.store(true, Ordering::Relaxed);
                    threads.push((format!("{workload}/{replica}"), thread));
                }
                Run::Served => {
                    if let Some(ingress) = &self.ingress {
                        ingress.stop_serving(self.platform.as_ref(), &workload, replica, STOP_WAIT);
                    }
                }
                Run::BackingOff { .. } => {}
            }
        }
        let deadline = Instant::now() + STOP_WAIT;
        while threads.iter().any(|(_, t)| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for (name, t) in threads {
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    "{name} did not stop within {STOP_WAIT:?} (its guest is blocked in a host call); it runs no more \
                     Wasm and its thread ends when the call returns"
                );
                self.lingering.push((name, t));
            }
        }
        self.reap_lingering();
    }

    /// Joins the lingering threads that have ended.
    fn reap_lingering(&mut self) {
        let (ended, still): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.lingering).into_iter().partition(|(_, t)| t.is_finished());
        for (name, t) in ended {
            let _ = t.join();
            tracing::info!("{name}: its thread has ended");
        }
        self.lingering = still;
        self.metrics.lingering.set(i64::try_from(self.lingering.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an instance's evidence claims as its configuration: the same assignment on the same
    /// node agrees; another node (its `LAMINA_NODE`), replica, memory bound or network rule
    /// does not.
    #[test]
    fn an_instances_configuration_digest_covers_where_and_how_it_runs() {
        let spec = |memory: &str, network: &str| {
            let toml = format!(
                "[[workload]]\nname = \"w\"\nmodule = \"sha256:{}\"\nmemory = \"{memory}\"\nsecrets = [\"api\"]\n{network}",
                "ab".repeat(32)
            );
            lamina_types::Deployment::parse(&toml).expect("a manifest").workloads.remove(0)
        };
        let placement = |replica: u32| lamina_scheduler::Placement {
            workload: "w".parse().expect("a name"),
            replica,
            node: "edge-1".into(),
        };
        let assignment =
            |replica: u32, memory: &str| Assignment { placement: placement(replica), spec: spec(memory, "") };
        let reaching = |rule: &str| Assignment {
            placement: placement(0),
            spec: spec("64MiB", &format!("[workload.network]\nhttp = [\"{rule}\"]\n")),
        };
        let (view, _) = guest_view("edge-1", &reaching("https://api.example.com"));
        assert!(view.network.allows_http("https", "api.example.com", 443), "the guest gets its workload's rules");
        assert!(!view.network.allows_http("https", "other.example", 443));
        let profile = lamina_types::Profile::Server;
        let digest = config_digest("edge-1", &assignment(0, "64MiB"), profile);
        assert_eq!(config_digest("edge-1", &assignment(0, "64MiB"), profile), digest);
        assert_ne!(config_digest("edge-2", &assignment(0, "64MiB"), profile), digest);
        assert_ne!(config_digest("edge-1", &assignment(1, "64MiB"), profile), digest);
        assert_ne!(config_digest("edge-1", &assignment(0, "32MiB"), profile), digest);
        assert_ne!(config_digest("edge-1", &assignment(0, "64MiB"), lamina_types::Profile::Tiny), digest);
        let allowed = config_digest("edge-1", &reaching("https://api.example.com"), profile);
        assert_ne!(allowed, digest, "what it may reach is part of what it attests");
        assert_ne!(config_digest("edge-1", &reaching("https://*.example.com"), profile), allowed);
    }

    /// An I/O failure says which file and what was being done, and keeps the OS's reason as its
    /// source; logs and heartbeats show the whole chain.
    #[test]
    fn an_io_error_names_the_path_and_keeps_its_cause() {
        let e =
            AgentError::io(std::path::Path::new("/state/logs"), "create", std::io::ErrorKind::PermissionDenied.into());
        assert_eq!(e.to_string(), "cannot create /state/logs");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "permission denied");
        assert_eq!(chain(&e), "cannot create /state/logs: permission denied");
        let attest = AgentError::Attest(Box::new(lamina_wire::evidence::EvidenceError::Challenge));
        assert_eq!(chain(&attest), "the platform could not attest: the challenge is not hex");
    }
}
