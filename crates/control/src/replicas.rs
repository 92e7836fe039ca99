//! How a replica of a replicated control plane gets the cluster key, the key that opens the
//! keys the replicas share in etcd (TLS, artifact signing, master, admin token), without an
//! operator carrying it between machines:
//!
//! 1. a replica that holds a sealed copy (`<state>/cluster-key.sealed`, sealed with a key
//!    derived from its platform's sealing root) opens it;
//! 2. the first replica of a cluster (etcd holds no cluster-key check yet) makes the key, and
//!    leaves the check in etcd (a transaction: of two first replicas, one wins and the other
//!    joins);
//! 3. any other replica asks the serving replica over mutually attested TLS: it presents a
//!    certificate with its platform's evidence, answers a challenge with evidence bound to that
//!    certificate's key, and the serving replica releases the key only when that evidence
//!    passes its replica policy. The joining replica accepts the serving one only under the
//!    control plane's key fingerprint (published in etcd) and evidence that passes its own
//!    replica policy.
//!
//! Either way the key is checked against etcd's check before it is used, then sealed locally.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lamina_attest::Verifier;
use lamina_tee::Platform;
use zeroize::Zeroizing;

use crate::etcd::EtcdStore;
use lamina_wire::ClusterKeyRequest;

/// The name of the check the first replica leaves in etcd: a known value encrypted under the
/// cluster key.
pub(crate) const CHECK: &str = "cluster-key-check";
/// The published fingerprint of the replicas' shared TLS key (hex, not secret).
pub(crate) const FINGERPRINT: &str = "tls-fingerprint";
/// The local sealed copy of the cluster key.
const SEALED: &str = "cluster-key.sealed";

/// Why a replica could not get the cluster key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// etcd could not be used.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// The platform cannot seal (and so cannot keep the key): give `--cluster-key FILE`.
    #[error("this platform cannot seal the cluster key ({0}); give every replica the same --cluster-key FILE")]
    NoSealing(String),
    /// The local sealed copy does not open (another platform, or tampered with).
    #[error("the sealed cluster key {path} does not open on this platform; remove it to join again")]
    Sealed {
        /// The file.
        path: std::path::PathBuf,
    },
    /// No serving replica released the key in time.
    #[error("no serving replica released the cluster key within {waited:?}: {last}")]
    NotReleased {
        /// How long it tried.
        waited: Duration,
        /// The last refusal or failure.
        last: String,
    },
    /// The key obtained does not open etcd's check: it belongs to another cluster.
    #[error("the cluster key does not open the check in etcd: it is another cluster's")]
    Mismatch,
    /// A local file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn seal_key(platform: &dyn Platform) -> Result<Zeroizing<[u8; 32]>, JoinError> {
    let root = platform.sealing_root().map_err(|e| JoinError::NoSealing(e.to_string()))?;
    lamina_keys::derive(root.0.as_ref(), &lamina_keys::Purpose::ClusterKeySeal)
        .map_err(|e| JoinError::NoSealing(e.to_string()))
}

fn opens_check(etcd: &EtcdStore, key: &[u8; 32]) -> Result<Option<bool>, JoinError> {
    Ok(etcd.get(CHECK)?.map(|sealed| lamina_wire::release::decrypt_at_rest(key, CHECK.as_bytes(), &sealed).is_ok()))
}

fn keep(state: &Path, platform: &dyn Platform, key: &[u8; 32]) -> Result<(), JoinError> {
    let path = state.join(SEALED);
    let sealed = lamina_wire::release::encrypt_at_rest(&*seal_key(platform)?, SEALED.as_bytes(), key)
        .map_err(|e| JoinError::NoSealing(e.to_string()))?;
    crate::store::write_private(&path, &sealed)?;
    Ok(())
}

/// The cluster key of the replicas on `etcd`, for the replica with state directory `state` on
/// `platform`: its sealed copy, a new key if it is the first, or the serving replica's, released
/// over mutually attested TLS to evidence that passes `policy` (which the serving replica's
/// evidence must pass too). Tries for up to `patience` while no replica serves.
///
/// # Errors
/// [`JoinError`].
pub fn cluster_key(
    state: &Path,
    etcd: &EtcdStore,
    platform: &dyn Platform,
    policy: Arc<Verifier>,
    patience: Duration,
) -> Result<Zeroizing<[u8; 32]>, JoinError> {
    std::fs::create_dir_all(state).map_err(|source| JoinError::Io { path: state.to_path_buf(), source })?;
    let path = state.join(SEALED);
    if let Ok(sealed) = std::fs::read(&path) {
        let plain = lamina_wire::release::decrypt_at_rest(&*seal_key(platform)?, SEALED.as_bytes(), &sealed)
            .map_err(|_| JoinError::Sealed { path: path.clone() })?;
        let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| JoinError::Sealed { path: path.clone() })?;
        return match opens_check(etcd, &key)? {
            Some(false) => Err(JoinError::Mismatch),
            _ => Ok(Zeroizing::new(key)),
        };
    }
    if etcd.get(CHECK)?.is_none() {
        let mut key = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, key.as_mut());
        let check = lamina_wire::release::encrypt_at_rest(&key, CHECK.as_bytes(), b"lamina")
            .map_err(|e| JoinError::NoSealing(e.to_string()))?;
        etcd.put_if_absent(CHECK, &check)?;
        // Of two first replicas, the one whose check is in etcd made the cluster's key.
        if opens_check(etcd, &key)? == Some(true) {
            keep(state, platform, &key)?;
            tracing::info!("made the cluster key (the first replica); sealed in {}", path.display());
            return Ok(key);
        }
    }
    let started = Instant::now();
    let mut last = String::from("no replica serves yet");
    let mut said = false;
    while started.elapsed() < patience {
        match ask(etcd, platform, policy.clone()) {
            Ok(key) => {
                if opens_check(etcd, &key)? != Some(true) {
                    return Err(JoinError::Mismatch);
                }
                keep(state, platform, &key)?;
                tracing::info!("the serving replica released the cluster key; sealed in {}", path.display());
                return Ok(key);
            }
            Err(Ask::Refused(why)) => return Err(JoinError::NotReleased { waited: started.elapsed(), last: why }),
            Err(Ask::Unavailable(why)) => {
                if !said {
                    eprintln!("lamina: waiting for a serving replica to release the cluster key ({why})");
                    said = true;
                }
                last = why;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Err(JoinError::NotReleased { waited: started.elapsed(), last })
}

/// Why one request for the key failed: worth trying again, or a verdict.
enum Ask {
    Unavailable(String),
    Refused(String),
}

fn ask(etcd: &EtcdStore, platform: &dyn Platform, policy: Arc<Verifier>) -> Result<Zeroizing<[u8; 32]>, Ask> {
    use p256::pkcs8::EncodePrivateKey as _;
    let unavailable = |e: &dyn std::fmt::Display| Ask::Unavailable(e.to_string());
    let fingerprint: [u8; 32] = match etcd.get(FINGERPRINT).map_err(|e| unavailable(&e))? {
        Some(hex_text) => hex::decode(&hex_text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Ask::Refused("the fingerprint in etcd is malformed".into()))?,
        None => return Err(Ask::Unavailable("no replica has served yet (no fingerprint in etcd)".into())),
    };
    // A fresh key for this request: the evidence binds it, the TLS handshake proves it.
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let key = secret.to_pkcs8_der().map_err(|e| Ask::Refused(e.to_string()))?;
    let spki = lamina_wire::evidence::spki(key.as_bytes()).map_err(|e| Ask::Refused(e.to_string()))?;
    let cert = lamina_wire::evidence::attested_certificate(platform, key.as_bytes())
        .map_err(|e| Ask::Refused(e.to_string()))?;
    let mut last = Ask::Unavailable("no replica is announced in etcd".into());
    for address in etcd.members().map_err(|e| unavailable(&e))? {
        let client = lamina_wire::ControlClient::attested(&address, fingerprint, Some(policy.clone()), &cert)
            .map_err(|e| Ask::Refused(e.to_string()))?;
        let challenge = match client.challenge() {
            Ok(c) => c,
            // The serving replica's evidence failed this replica's policy (or its key is not
            // the published one): a verdict, not worth waiting for.
            Err(lamina_wire::ClientError::Unreachable { reason, .. })
                if reason.contains("does not pass this client's policy") || reason.contains("not the expected") =>
            {
                return Err(Ask::Refused(format!("the replica at {address} is not trusted: {reason}")));
            }
            Err(e @ lamina_wire::ClientError::Unreachable { .. }) => {
                // A replica that stands by does not listen.
                last = Ask::Unavailable(e.to_string());
                continue;
            }
            Err(e) => return Err(Ask::Refused(e.to_string())),
        };
        let evidence = lamina_wire::evidence::challenge_evidence(platform, &challenge.nonce, &spki)
            .map_err(|e| Ask::Refused(e.to_string()))?;
        let request = ClusterKeyRequest { nonce: challenge.nonce, evidence };
        let answer = match client.cluster_key(&request) {
            Ok(a) => a,
            Err(e @ lamina_wire::ClientError::Unreachable { .. }) => {
                last = Ask::Unavailable(e.to_string());
                continue;
            }
            Err(e) => return Err(Ask::Refused(e.to_string())),
        };
        let bytes =
            Zeroizing::new(hex::decode(&answer.cluster_key).map_err(|_| Ask::Refused("the key is not hex".into()))?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Ask::Refused("the key is not 32 bytes".into()))?;
        return Ok(Zeroizing::new(key));
    }
    Err(last)
}
