//! What an instance runs with besides its module, as one type: what the claims' configuration
//! digest covers, the same way for `lamina run`, `lamina serve` and a node's instances.

use lamina_types::NetworkRules;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{Limits, WasiConfig};

/// Where an instance runs: part of its configuration, so that the same module and settings
/// under another host give another digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceHost {
    /// `lamina run`: a command, run once.
    Run,
    /// `lamina serve`: an HTTP service.
    Serve,
    /// A workload's replica on a node of the continuum.
    Node,
}

/// Everything that decides what an instance can see and do besides its module: arguments,
/// environment, directories, network rules, limits, and the names (never the values) of the
/// services it is given. Two instances with equal configurations have equal
/// [`InstanceConfig::digest`]s, and any difference changes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstanceConfig {
    /// Where it runs.
    pub host: InstanceHost,
    /// Its arguments, the program name first.
    pub args: Vec<String>,
    /// Its environment, in order.
    pub env: Vec<(String, String)>,
    /// Its plain directories, as `HOST::GUEST` with `:ro` when read-only.
    pub dirs: Vec<String>,
    /// What it may reach on the network.
    pub network: NetworkRules,
    /// The most linear memory it may have, in bytes.
    pub max_memory: Option<u64>,
    /// Its time bound, in milliseconds (per request when served).
    pub timeout_ms: Option<u64>,
    /// Its fuel.
    pub fuel: Option<u64>,
    /// The names of the secrets it is given.
    pub secrets: Vec<String>,
    /// Where it sees sealed directories.
    pub sealed_dirs: Vec<String>,
    /// What its volumes are sealed to (`module`, or `signer:` and the key's file).
    pub seal_to: String,
    /// The quota of its sealed key-value store, when it has one.
    pub kv_quota: Option<u64>,
    /// Whether it may attest itself.
    pub attestation: bool,
    /// The modules that share its secrets and message bus.
    pub peers: Vec<String>,
    /// The topic patterns it may message on.
    pub topics: Vec<String>,
    /// How a served component's instances are reused, when served: (requests per instance,
    /// requests at once in one instance).
    pub reuse: Option<(u64, u64)>,
    /// The engine's device profile.
    pub profile: String,
}

impl InstanceConfig {
    /// The configuration of what `wasi` and `limits` give an instance under `host`, with no
    /// services; the caller sets the fields of the services it gives.
    pub fn new(host: InstanceHost, wasi: &WasiConfig, limits: Limits) -> Self {
        InstanceConfig {
            host,
            args: wasi.args.clone(),
            env: wasi.env.clone(),
            dirs: wasi
                .dirs
                .iter()
                .map(|d| format!("{}::{}{}", d.host.display(), d.guest, if d.read_only { ":ro" } else { "" }))
                .collect(),
            network: wasi.network.clone(),
            max_memory: limits.max_memory.map(|m| m.bytes()),
            timeout_ms: limits.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            fuel: limits.fuel,
            secrets: Vec::new(),
            sealed_dirs: Vec::new(),
            seal_to: "module".into(),
            kv_quota: None,
            attestation: false,
            peers: Vec::new(),
            topics: Vec::new(),
            reuse: None,
            profile: lamina_types::Profile::Server.to_string(),
        }
    }

    /// SHA-256 over its JSON form (fields in declaration order): the claims' `config_digest`.
    pub fn digest(&self) -> [u8; 32] {
        // Serialising these plain fields cannot fail; were it to, the digest would be of the
        // debug form, still one per configuration, never one shared by all.
        let bytes = serde_json::to_vec(self).unwrap_or_else(|_| format!("{self:?}").into_bytes());
        Sha256::digest(bytes).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> InstanceConfig {
        let wasi = WasiConfig { args: vec!["app".into()], ..WasiConfig::default() };
        InstanceConfig::new(InstanceHost::Run, &wasi, Limits::default())
    }

    /// Every field counts: a change of any one changes the digest.
    #[test]
    fn any_difference_changes_the_digest_and_equal_configurations_agree() {
        let digest = base().digest();
        assert_eq!(base().digest(), digest);
        let changed: Vec<InstanceConfig> = vec![
            InstanceConfig { host: InstanceHost::Node, ..base() },
            InstanceConfig { args: vec!["app".into(), "-v".into()], ..base() },
            InstanceConfig { env: vec![("A".into(), "1".into())], ..base() },
            InstanceConfig { dirs: vec!["/srv::/data".into()], ..base() },
            InstanceConfig { max_memory: Some(1 << 20), ..base() },
            InstanceConfig { timeout_ms: Some(5), ..base() },
            InstanceConfig { fuel: Some(5), ..base() },
            InstanceConfig { secrets: vec!["api".into()], ..base() },
            InstanceConfig { sealed_dirs: vec!["/data".into()], ..base() },
            InstanceConfig { seal_to: "signer:key.pem".into(), ..base() },
            InstanceConfig { kv_quota: Some(1), ..base() },
            InstanceConfig { attestation: true, ..base() },
            InstanceConfig { peers: vec!["sha256:00".into()], ..base() },
            InstanceConfig { topics: vec!["a.>".into()], ..base() },
            InstanceConfig { reuse: Some((1, 1)), ..base() },
            InstanceConfig { profile: "tiny".into(), ..base() },
        ];
        let mut seen = std::collections::HashSet::from([digest]);
        for c in changed {
            assert!(seen.insert(c.digest()), "{c:?} has a digest already seen");
        }
    }
}
