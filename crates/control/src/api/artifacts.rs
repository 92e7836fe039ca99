//! Modules uploaded by the operator, and the artifacts built from them for each node: compiled
//! once per target and profile, cached, and signed with the control plane's artifact key.

use super::*;

/// The artifact signing key, made at first start and kept as `artifacts.key` (PKCS#8 PEM).
pub(super) fn artifact_key(store: &Store) -> Result<p256::ecdsa::SigningKey, StoreError> {
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

pub(super) async fn upload_module(
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

/// Where a module is kept in the store.
pub(super) fn module_name(hash: &lamina_types::ModuleHash) -> String {
    format!("modules/{}.wasm", hex::encode(hash.as_bytes()))
}

/// Compiles a module for a node's target (once; cached in the state directory) and signs it.
///
/// The cache holds what this control plane signed (the artifact and its signature, each
/// written atomically), and an entry is served only if its signature verifies with the
/// control plane's own key and its signed header is of this module, target, profile and
/// engine: a file swapped or patched in the state directory is compiled again, never signed.
/// A fresh artifact is decoded and checked the same way before it is signed.
pub(super) async fn artifact(
    State(c): State<Shared>,
    node: EnrolledNode,
    Path((_, hash)): Path<(String, String)>,
) -> ApiResult<Json<SignedArtifact>> {
    use base64::Engine as _;
    let (hash, target, profile, cache, key) = {
        let c = lock(&c);
        let name = c.confirm(&node)?;
        let hash: lamina_types::ModuleHash =
            hash.parse().map_err(|e: lamina_types::ParseHashError| ApiError::bad(e.to_string()))?;
        let node = c.cluster.nodes.get(name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such node"))?;
        let assigned = c
            .cluster
            .desired
            .get(name)
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
            node.spec.target.triple(),
            node.profile
        ));
        (hash, node.spec.target, node.profile, cache, c.artifact_key.clone())
    };
    let shared = c.clone();
    // Compiling takes time: outside the lock, on a blocking thread.
    let signed = tokio::task::spawn_blocking(move || -> Result<SignedArtifact, ApiError> {
        let sig_path = cache.with_extension("lamart.sig");
        let wanted = |bytes: &[u8], signature: &[u8]| -> Result<(), String> {
            let (decoded, _) = lamina_artifact::signing::verify(bytes, signature, &[*key.verifying_key()])
                .map_err(|e| e.to_string())?;
            let h = &decoded.header;
            if h.module_hash != hash || h.target != target || h.profile != profile {
                return Err(format!("it is {} for {} on {}", h.module_hash, h.target, h.profile));
            }
            if h.engine != lamina_artifact::Engine::version() {
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
        let options = lamina_artifact::EngineOptions {
            target: Some(target),
            ..lamina_artifact::EngineOptions::for_profile(profile)
        };
        let engine = lamina_artifact::Engine::new(options).map_err(|e| ApiError::internal(e.to_string()))?;
        let bytes = engine.compile(&wasm).map_err(|e| ApiError::bad(format!("the module does not compile: {e}")))?;
        let signature = lamina_artifact::signing::sign(&bytes, &key).map_err(|e| ApiError::internal(e.to_string()))?;
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
