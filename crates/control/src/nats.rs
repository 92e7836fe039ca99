//! Who may use the NATS server, kept by the control plane: one NATS user per enrolled node,
//! authenticated by an NKey (an Ed25519 key the control plane issues at enrolment), allowed to
//! publish and subscribe only on the subjects of the instances placed on it.
//!
//! The control plane writes the users into a file that nats-server's configuration includes
//! (`include "lamina-users.conf"`) and signals the server (SIGHUP, to the PID in its
//! `pid_file`) to reload it whenever the users or their subjects change. On a reload
//! nats-server re-checks every connection: a removed node's connection is closed and its key
//! refused from then on, and a node whose instances moved loses the subscriptions it may no
//! longer hold. The file always holds at least the control plane's own user, so the server
//! never runs without authentication because no node has enrolled yet.
//!
//! Why NKeys and a reloaded file rather than TLS client certificates or decentralised JWTs:
//! permissions that follow placements change many times in a node's life. With a reloaded
//! file they apply to live connections within one reload (milliseconds) and revocation is
//! immediate, with no resolver, account or operator JWTs to run and no client reconnects;
//! an NKey's challenge-response never sends a secret over the wire. The cost is that the
//! control plane that leads must be able to write the file and signal the server (the same
//! host, or a shared directory and PID namespace).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::cluster::Cluster;
use lamina_wire::NodeState;

use lamina_wire::MESSAGING_PREFIX as PREFIX;

/// Where the users are written and how nats-server is told.
#[derive(Clone, Debug)]
pub struct NatsAuthorization {
    /// The file nats-server's configuration includes.
    pub users_file: PathBuf,
    /// nats-server's PID file (its `pid_file`): the server is sent SIGHUP to reload. Without
    /// one the file is written and the operator reloads the server.
    pub pid_file: Option<PathBuf>,
}

/// An error of NATS authorization.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// A key could not be derived or made.
    #[error("cannot make a NATS key: {0}")]
    Key(String),
    /// The users file could not be written.
    #[error("cannot write the NATS users file {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A node's NATS user: its NKey seed (`SU…`, what the node connects with) and public key
/// (`U…`, what the server knows it by).
pub struct NodeUser {
    /// The seed; the node's secret.
    pub seed: zeroize::Zeroizing<String>,
    /// The public key.
    pub public: String,
}

impl std::fmt::Debug for NodeUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeUser").field("public", &self.public).finish_non_exhaustive()
    }
}

fn user(master: &[u8], purpose: &lamina_keys::Purpose<'_>) -> Result<NodeUser, NatsError> {
    let raw = lamina_keys::derive(master, purpose).map_err(|e| NatsError::Key(e.to_string()))?;
    let pair =
        nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, *raw).map_err(|e| NatsError::Key(e.to_string()))?;
    let seed = zeroize::Zeroizing::new(pair.seed().map_err(|e| NatsError::Key(e.to_string()))?);
    Ok(NodeUser { seed, public: pair.public_key() })
}

/// The NATS user of node `name` enrolled with the key whose hash is `key_hash`: derived from
/// the master key, so replicas that share it issue the same user and nothing is stored.
///
/// # Errors
/// [`NatsError::Key`] when it cannot be derived.
pub fn node_user(master: &[u8], name: &str, key_hash: &str) -> Result<NodeUser, NatsError> {
    user(master, &lamina_keys::Purpose::NatsUser { node: name, key: key_hash })
}

/// The control plane's own NATS user.
///
/// # Errors
/// [`NatsError::Key`] when it cannot be derived.
pub fn control_user(master: &[u8]) -> Result<NodeUser, NatsError> {
    user(master, &lamina_keys::Purpose::NatsControl)
}

/// The subjects node `name` may use: its assignments' topics under [`PREFIX`], none while it
/// is untrusted or in a state this build does not know (fail closed).
fn subjects(cluster: &Cluster, name: &str) -> BTreeSet<String> {
    if matches!(cluster.nodes.get(name).map(|n| &n.state), Some(NodeState::Untrusted { .. } | NodeState::Unknown)) {
        return BTreeSet::new();
    }
    let Some(desired) = cluster.desired.get(name) else { return BTreeSet::new() };
    desired
        .assignments
        .iter()
        .flat_map(|a| a.spec.topics.iter())
        // The manifest admits only dot-separated tokens of letters, digits, `-`, `_`, `*` and a
        // final `>`; anything else is left out rather than written into the server's config.
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.*>".contains(&b)))
        .map(|t| format!("{PREFIX}.{t}"))
        .collect()
}

/// The users file for `cluster` and the enrolled nodes' `credentials` (name → key hash).
///
/// # Errors
/// [`NatsError::Key`] when a user cannot be derived.
pub fn render(cluster: &Cluster, credentials: &BTreeMap<String, String>, master: &[u8]) -> Result<String, NatsError> {
    use std::fmt::Write as _;
    let mut text = String::from(
        "# Written by `lamina control`: the NATS users of the enrolled nodes. Do not edit;\n\
         # it is rewritten whenever nodes or placements change.\n\
         authorization {\n  users = [\n",
    );
    let control = control_user(master)?;
    let _ = writeln!(
        text,
        "    # the control plane (keeps authentication on when no node is enrolled)\n    {{ nkey: \"{}\", \
         permissions: {{ publish: {{ deny: [\">\"] }}, subscribe: {{ deny: [\">\"] }} }} }}",
        control.public
    );
    for (name, key_hash) in credentials {
        let node = node_user(master, name, key_hash)?;
        let subjects = subjects(cluster, name);
        let allowed = if subjects.is_empty() {
            "deny: [\">\"]".to_owned()
        } else {
            let list: Vec<String> = subjects.iter().map(|s| format!("\"{s}\"")).collect();
            format!("allow: [{}]", list.join(", "))
        };
        // Names are checked at enrolment; the comment keeps only their safe characters anyway.
        let shown: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let _ = writeln!(
            text,
            "    # node {shown}\n    {{ nkey: \"{}\", permissions: {{ publish: {{ {allowed} }}, subscribe: {{ {allowed} }} }} }}",
            node.public
        );
    }
    text.push_str("  ]\n}\n");
    Ok(text)
}

impl NatsAuthorization {
    /// Writes `text` as the users file (atomically, readable by the server's user: it holds
    /// public keys only) and signals the server to reload it. A server that is not running is
    /// not an error: it reads the file when it starts.
    ///
    /// # Errors
    /// [`NatsError::Write`] when the file cannot be written.
    pub fn apply(&self, text: &str) -> Result<(), NatsError> {
        use std::io::Write as _;
        use std::os::unix::fs::PermissionsExt as _;
        let path = &self.users_file;
        let failed = |e: std::io::Error| NatsError::Write { path: path.clone(), reason: e.to_string() };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or_else(|| std::path::Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
        tmp.write_all(text.as_bytes()).map_err(failed)?;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(failed)?;
        tmp.as_file().sync_all().map_err(failed)?;
        tmp.persist(path).map_err(|e| failed(e.error))?;
        self.reload();
        Ok(())
    }

    /// Sends nats-server SIGHUP, if its PID file names a running process.
    fn reload(&self) {
        let Some(pid_file) = &self.pid_file else { return };
        let pid = match std::fs::read_to_string(pid_file) {
            Ok(text) => text.trim().parse::<i32>().ok().and_then(rustix::process::Pid::from_raw),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(
                    "nats-server is not running ({} does not exist); it reads the users when it starts",
                    pid_file.display()
                );
                return;
            }
            Err(e) => {
                tracing::warn!("cannot read nats-server's PID file {}: {e}", pid_file.display());
                return;
            }
        };
        let Some(pid) = pid else {
            tracing::warn!("nats-server's PID file {} holds no PID", pid_file.display());
            return;
        };
        match rustix::process::kill_process(pid, rustix::process::Signal::HUP) {
            Ok(()) => tracing::debug!("nats-server (PID {}) reloads its users", pid.as_raw_nonzero()),
            Err(e) => {
                tracing::warn!("cannot signal nats-server (PID {}) to reload its users: {e}", pid.as_raw_nonzero())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_bound_to_the_node_and_its_key_and_the_file_always_requires_authentication() {
        let master = [7u8; 32];
        let a = node_user(&master, "edge-1", "aa").expect("user");
        assert!(a.public.starts_with('U') && a.seed.starts_with("SU"));
        assert_eq!(a.public, node_user(&master, "edge-1", "aa").expect("user").public, "replicas agree");
        assert_ne!(a.public, node_user(&master, "edge-1", "bb").expect("user").public, "re-enrolled: another key");
        assert_ne!(a.public, node_user(&master, "edge-2", "aa").expect("user").public);
        assert_ne!(a.public, node_user(&[8u8; 32], "edge-1", "aa").expect("user").public);

        let empty = render(&Cluster::default(), &BTreeMap::new(), &master).expect("renders");
        assert!(empty.contains(&control_user(&master).expect("user").public), "{empty}");
        let one =
            render(&Cluster::default(), &BTreeMap::from([("edge-1".into(), "aa".into())]), &master).expect("renders");
        assert!(one.contains(&a.public), "{one}");
        // A node with nothing placed on it may use no subject.
        assert_eq!(one.matches("deny: [\">\"]").count(), 4, "{one}");
        assert!(!one.contains(&*a.seed), "the file holds no secret");
        // Nothing from a name or a topic breaks out of its line or its string.
        let odd = render(&Cluster::default(), &BTreeMap::from([("x\n}\" evil".into(), "aa".into())]), &master)
            .expect("renders");
        assert!(!odd.contains("evil\""), "{odd}");
        assert!(odd.contains("    # node xevil\n    { nkey: "), "{odd}");
        assert_eq!(odd.lines().count(), 10, "{odd}");
    }

    /// A state a newer build wrote (read as `Unknown`) gets no subjects, as an untrusted node.
    #[test]
    fn a_node_in_a_state_this_build_does_not_know_may_use_no_subject() {
        use crate::cluster::{Event, Settings};
        let settings = Settings {
            lost_after: std::time::Duration::from_secs(15),
            attestation_valid_for: std::time::Duration::from_secs(600),
        };
        let mut cluster = Cluster::new(settings);
        let spec = lamina_wire::NodeSpec {
            name: "edge-1".into(),
            target: lamina_types::Target::Aarch64Linux,
            platform: lamina_types::PlatformKind::Sim,
            memory: lamina_types::ByteSize::mib(512),
            labels: BTreeMap::new(),
            zone: "edge".into(),
        };
        cluster.step(Event::Enrolled { spec, profile: lamina_types::Profile::Server }, 1000).expect("enrols");
        let app =
            format!("[[workload]]\nname = \"w\"\nmodule = \"sha256:{}\"\ntopics = [\"sensors.>\"]\n", "ab".repeat(32));
        let deployment = lamina_types::Deployment::parse(&app).expect("a manifest");
        cluster.step(Event::Deployed(deployment), 1000).expect("deploys");
        assert_eq!(subjects(&cluster, "edge-1"), BTreeSet::from([format!("{PREFIX}.sensors.>")]));
        if let Some(node) = cluster.nodes.get_mut("edge-1") {
            node.state = NodeState::Unknown;
        }
        assert!(subjects(&cluster, "edge-1").is_empty());
    }
}
