//! The bodies of the control plane's API, as both sides read and write them.

use serde::{Deserialize, Serialize};

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
    /// The node's name.
    pub name: String,
    /// Its architecture.
    pub target: lamina_types::Target,
    /// Its platform.
    pub platform: lamina_types::PlatformKind,
    /// Memory it offers.
    pub memory: lamina_types::ByteSize,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Zone.
    pub zone: String,
    /// The device profile its engine runs (server when not given); artifacts are compiled for it.
    #[serde(default)]
    pub profile: lamina_types::Profile,
    /// The challenge it answers (hex).
    pub nonce: String,
    /// Its evidence envelope (CBOR, hex) over claims carrying the nonce.
    pub evidence: String,
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
    /// Its evidence envelope (CBOR, hex).
    pub evidence: String,
}

/// The serving replica's answer to a replica whose evidence passed its replica policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterKeyResponse {
    /// The cluster key (hex): it opens the keys the replicas share in etcd.
    pub cluster_key: String,
}

/// Output of one instance, as a node ships it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogChunk {
    /// The workload.
    pub workload: String,
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
