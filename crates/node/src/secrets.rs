//! An instance's secrets and sealing root: released by the control plane to the instance's
//! own key after it attests, and cached on the node sealed to the node's platform, so that the
//! instance can restart while the control plane is out of reach.

use std::path::PathBuf;

use lamina_tee::{CounterId, Evidence, MonotonicCounter, Platform, PlatformInfo, SealingRoot, TeeError};
use lamina_types::{Claims, ModuleHash};
use lamina_wire::release::{self, Bundle};
use lamina_wire::{Assignment, ClientError, ControlClient};
use zeroize::Zeroizing;

use crate::agent::AgentError;

/// Where the sealed copy of an instance's bundle is kept.
pub(crate) fn cache_path(state: &std::path::Path, workload: &str, replica: u32) -> PathBuf {
    state.join("secrets").join(format!("{workload}-{replica}.sealed"))
}

/// The key of the cache: from the node platform's sealing root, per workload and module.
fn cache_key(platform: &dyn Platform) -> Result<Zeroizing<[u8; 32]>, String> {
    let root = platform.sealing_root().map_err(|e| e.to_string())?;
    lamina_keys::derive(root.0.as_ref(), &lamina_keys::Purpose::NodeSecretCache).map_err(|e| e.to_string())
}

fn context(a: &Assignment, module: &ModuleHash) -> Vec<u8> {
    [a.placement.workload.as_bytes(), b"/", module.as_bytes()].concat()
}

/// The instance's bundle and the key it attested with: released by the control plane, or,
/// when it cannot be had now (out of reach, overloaded, an answer that makes no sense), the
/// cached copy (and no key). Only an explicit refusal from the pinned control plane (the node
/// or the instance no longer passes, the workload is gone) removes the cached copy: a flood that
/// overloads the control plane, or a transport error, never destroys the offline fallback.
pub(crate) fn bundle(
    client: &ControlClient,
    node: &str,
    state: &std::path::Path,
    platform: &dyn Platform,
    a: &Assignment,
    module: &ModuleHash,
    config_digest: [u8; 32],
) -> Result<(Bundle, Option<p256::SecretKey>), AgentError> {
    let path = cache_path(state, &a.placement.workload, a.placement.replica);
    match request(client, node, platform, a, module, config_digest) {
        Ok((bundle, key)) => {
            save(&path, platform, a, module, &bundle);
            Ok((bundle, Some(key)))
        }
        Err(e) if is_refusal(&e) => {
            tracing::warn!(
                "{}/{}: the control plane refuses the release ({e}); removing the cached secrets",
                a.placement.workload,
                a.placement.replica
            );
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
        Err(e) => {
            let cached = load(&path, platform, a, module).ok_or(e)?;
            tracing::info!(
                "{}/{}: the secrets cannot be had from the control plane now; using the cached sealed secrets",
                a.placement.workload,
                a.placement.replica
            );
            Ok((cached, None))
        }
    }
}

/// Whether an error is the control plane's explicit refusal to release: an answer over the
/// pinned TLS connection that the node's credentials (401), its standing or the instance's
/// (403), or the workload itself (404, 410) are no longer good. A challenge that no longer
/// holds (409), overload (429, 503), server errors and transport errors are not refusals.
fn is_refusal(e: &AgentError) -> bool {
    matches!(e, AgentError::Control(ClientError::Refused { status: 401 | 403 | 404 | 410, .. }))
}

/// Attests the instance (its module, a fresh key) over the control plane's challenge and opens
/// what it releases; the instance's key is returned with it.
fn request(
    client: &ControlClient,
    node: &str,
    platform: &dyn Platform,
    a: &Assignment,
    module: &ModuleHash,
    config_digest: [u8; 32],
) -> Result<(Bundle, p256::SecretKey), AgentError> {
    use p256::pkcs8::EncodePublicKey as _;
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let spki = secret.public_key().to_public_key_der().map_err(|e| AgentError::State(e.to_string()))?;
    let nonce_hex = client.challenge()?.nonce;
    let nonce = hex::decode(&nonce_hex).map_err(|_| AgentError::Protocol("the challenge is not hex".into()))?;
    let claims = Claims {
        platform: platform.info().kind,
        runtime_measurement: lamina_tee::runtime_measurement().unwrap_or_else(|_| vec![0; 32]),
        module_hash: Some(*module),
        config_digest: Some(config_digest),
        instance_key: Some(spki.as_bytes().to_vec()),
        nonce: nonce.clone(),
        issued_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    let envelope = lamina_tee::attest(platform, &claims).map_err(|e| AgentError::Attest(Box::new(e)))?;
    let released = client.release(
        node,
        &lamina_wire::ReleaseRequest {
            workload: a.placement.workload.clone(),
            replica: a.placement.replica,
            nonce: nonce_hex,
            evidence: lamina_wire::Evidence(envelope),
        },
    )?;
    let bundle = release::decrypt_as_instance(&released, &secret, &nonce, module)
        .map_err(|e| AgentError::Artifact(e.to_string()))?;
    Ok((bundle, secret))
}

fn save(path: &std::path::Path, platform: &dyn Platform, a: &Assignment, module: &ModuleHash, bundle: &Bundle) {
    let written = (|| -> Result<(), String> {
        let key = cache_key(platform).map_err(|e| e.to_string())?;
        let plain = Zeroizing::new(serde_json::to_vec(bundle).map_err(|e| e.to_string())?);
        let sealed = release::encrypt_at_rest(&key, &context(a, module), &plain).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        crate::state::write_atomically(path, &sealed).map_err(|e| e.to_string())
    })();
    if let Err(e) = written {
        tracing::warn!(
            "{}/{}: cannot cache the secrets sealed ({e}); it will need the control plane to restart",
            a.placement.workload,
            a.placement.replica
        );
    }
}

fn load(path: &std::path::Path, platform: &dyn Platform, a: &Assignment, module: &ModuleHash) -> Option<Bundle> {
    let sealed = std::fs::read(path).ok()?;
    let key = cache_key(platform).ok()?;
    match release::decrypt_at_rest(&key, &context(a, module), &sealed) {
        Ok(plain) => serde_json::from_slice(&plain).ok(),
        Err(e) => {
            tracing::error!("{}: {e}; ignoring the cached secrets", path.display());
            None
        }
    }
}

/// The node's platform with the sealing root the control plane released, for platforms without
/// sealing of their own (configfs-tsm guests): evidence and counters still come from the
/// platform.
pub(crate) struct ReleasedRoot<'a> {
    pub(crate) inner: &'a dyn Platform,
    pub(crate) root: Zeroizing<[u8; 32]>,
}

impl Platform for ReleasedRoot<'_> {
    fn info(&self) -> PlatformInfo {
        self.inner.info()
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, TeeError> {
        self.inner.evidence(report_data)
    }

    fn sealing_root(&self) -> Result<SealingRoot, TeeError> {
        Ok(SealingRoot(Zeroizing::new(*self.root)))
    }

    fn create_counter(&self) -> Result<(CounterId, Box<dyn MonotonicCounter>), TeeError> {
        self.inner.create_counter()
    }

    fn open_counter(&self, id: &CounterId) -> Result<Box<dyn MonotonicCounter>, TeeError> {
        self.inner.open_counter(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16) -> AgentError {
        AgentError::Control(ClientError::Refused { status, message: "x".into() })
    }

    #[test]
    fn only_an_explicit_refusal_removes_cached_secrets_not_a_flood_or_a_transport_error() {
        for status in [401, 403, 404, 410] {
            assert!(is_refusal(&refused(status)), "{status}");
        }
        // What a challenge flood, a stale challenge (409) or a restarting control plane
        // answers: keep the fallback.
        for status in [409, 429, 500, 502, 503, 504] {
            assert!(!is_refusal(&refused(status)), "{status}");
        }
        let unreachable = AgentError::Control(ClientError::Unreachable { url: "u".into(), reason: "r".into() });
        assert!(!is_refusal(&unreachable));
        assert!(!is_refusal(&AgentError::Control(ClientError::Malformed("x".into()))));
        assert!(!is_refusal(&AgentError::Protocol("no challenge nonce".into())));
    }
}
