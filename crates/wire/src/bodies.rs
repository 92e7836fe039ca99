//! The bodies of the control plane's API, as both sides read and write them.

use lamina_scheduler::Unplaced;
use lamina_types::{ModuleHash, SecretName};
use serde::{Deserialize, Serialize};

/// The body of every refusal: what went wrong, in words for the person who sent the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, and what to do about it.
    pub error: String,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`: an answer at all is the news.
    pub status: String,
    /// The SHA-256 fingerprint (hex) of the control plane's TLS key, as join tokens pin it.
    pub fingerprint: String,
    /// The public key artifacts and desired states are signed with (PEM).
    pub artifact_key: String,
}

/// `POST /v1/challenge`: a nonce for evidence to answer, good for a short while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The nonce (hex).
    pub nonce: String,
}

/// `POST /v1/tokens`: ask for a join token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// How long it is good for, in seconds (the control plane keeps it between a minute and a
    /// week; an hour when not given).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// The answer to [`TokenRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssued {
    /// The join token, for `lamina node --join`.
    pub token: String,
    /// How long it is good for, in seconds.
    pub expires_in_secs: u64,
}

/// `POST /v1/modules`: the module was stored under its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleUploaded {
    /// The module's hash, as deployments refer to it.
    pub module: ModuleHash,
}

/// `PUT /v1/deployments`: what was deployed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// The workloads of the deployment.
    pub deployed: Vec<lamina_types::WorkloadName>,
    /// Their replicas that could not be placed, and why.
    pub unplaced: Vec<Unplaced>,
}

/// `DELETE /v1/nodes/{name}`: the node is gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRemoved {
    /// Its name.
    pub removed: String,
}

/// `POST /v1/nodes/{name}/attest`: a node's fresh evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestRequest {
    /// The challenge it answers (hex).
    pub nonce: String,
    /// Its evidence envelope (canonical CBOR, hex in JSON).
    pub evidence: crate::Evidence,
}

/// The control plane's verdict on an [`AttestRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestVerdict {
    /// Whether the evidence passed the policy.
    pub verified: bool,
    /// Why not, when it did not.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The query of `GET /v1/nodes/{name}/desired`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredQuery {
    /// The generation the node has: the answer waits for another.
    #[serde(default)]
    pub after: Option<u64>,
    /// How long to wait for another, in milliseconds (the control plane waits 30 s at most).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `GET /v1/secrets`: the names of the secrets set (never their values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretList {
    /// The names, sorted.
    pub secrets: Vec<SecretName>,
}

/// `POST /v1/nodes/{name}/release`: release the secrets of one of the node's instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// The workload.
    pub workload: lamina_types::WorkloadName,
    /// The replica.
    pub replica: u32,
    /// The challenge it answers (hex).
    pub nonce: String,
    /// The instance's evidence (canonical CBOR, hex in JSON): claims with the workload's module
    /// hash and, as `instance_key`, the key to encrypt to.
    pub evidence: crate::Evidence,
}

/// `POST /v1/nodes/{name}/topic-keys`: the message keys of topics, for an instance that
/// attested.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicKeysRequest {
    /// The workload.
    pub workload: lamina_types::WorkloadName,
    /// The replica.
    pub replica: u32,
    /// The topics (no wildcards).
    pub topics: Vec<String>,
    /// A fresh random nonce (hex, 16 to 64 bytes): the salt of the encryption to the instance.
    pub nonce: String,
}

/// `GET /v1/workloads/{name}/logs`: a workload's recent output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// The workload.
    pub workload: lamina_types::WorkloadName,
    /// What each of its replicas printed lately.
    pub instances: Vec<InstanceLog>,
}

/// The recent output of one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceLog {
    /// The replica.
    pub replica: u32,
    /// The node it ran on last.
    pub node: String,
    /// The end of its output the control plane keeps.
    pub text: String,
    /// How many bytes it has printed in all since the control plane started: where `text`
    /// ends, so a follower prints each byte once.
    pub end: u64,
}

/// A signed artifact, as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedArtifact {
    /// The artifact, base64.
    pub artifact: String,
    /// Its signature (DER), base64.
    pub signature: String,
}

/// What a node sends to enrol.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// The join token, as `lamina token create` printed it.
    pub token: String,
    /// What it offers (name, architecture, TEE, memory, labels, zone).
    #[serde(flatten)]
    pub node: lamina_scheduler::NodeSpec,
    /// The device profile its engine runs (server when not given); artifacts are compiled for it.
    #[serde(default)]
    pub profile: lamina_types::Profile,
    /// The challenge it answers (hex).
    pub nonce: String,
    /// Its evidence envelope (canonical CBOR, hex in JSON) over claims carrying the nonce.
    pub evidence: crate::Evidence,
}

/// What the control plane answers a node that enrolled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrolResponse {
    /// Its artifact signing key (PEM): the node accepts artifacts and desired states signed
    /// with it.
    pub artifact_key: String,
    /// The seed of the node's NATS user (an NKey, `SU…`), when the control plane keeps the
    /// NATS server's users: the node connects with it and may use only the subjects of its
    /// instances.
    #[serde(default)]
    pub nats_seed: Option<String>,
}

/// What a control-plane replica sends the serving replica for the cluster key: evidence over
/// a challenge, binding the key of the client certificate it connects with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterKeyRequest {
    /// The challenge it answers (hex).
    pub nonce: String,
    /// Its evidence envelope (canonical CBOR, hex in JSON).
    pub evidence: crate::Evidence,
}

/// The serving replica's answer to a replica whose evidence passed its replica policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterKeyResponse {
    /// The cluster key (hex): it opens the keys the replicas share in etcd.
    pub cluster_key: String,
}

/// Output of one instance, as a node ships it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogChunk {
    /// The workload.
    pub workload: lamina_types::WorkloadName,
    /// The replica.
    pub replica: u32,
    /// What it wrote (lossy UTF-8).
    pub text: String,
}

/// A node's heartbeat: what it runs, what its instances wrote, and whether it can start more.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// Its instances.
    #[serde(default)]
    pub instances: Vec<crate::InstanceReport>,
    /// What its instances wrote since the last heartbeat.
    #[serde(default)]
    pub logs: Vec<LogChunk>,
    /// Why it cannot start instances now (a reason of its own: file descriptors, memory, its
    /// platform); `None` when it can. While it says so it gets no new placements.
    #[serde(default)]
    pub degraded: Option<String>,
    /// Where its ingress serves HTTP workloads (`https://HOST:PORT`), when it has one: only
    /// such nodes get them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
}

/// The most output a heartbeat may carry per instance.
pub const LOG_CHUNK: usize = 64 << 10;

/// The NATS subject prefix of the continuum's topics: a guest's topic `a.b` is the subject
/// `lamina.a.b`.
pub const MESSAGING_PREFIX: &str = "lamina";

/// The generation of topic keys (carried in each sealed message, for rotation).
pub const TOPIC_EPOCH: u32 = 1;
/// The most topics one `POST /v1/nodes/{name}/topic-keys` may ask keys for.
pub const MAX_TOPICS_PER_REQUEST: usize = 64;
