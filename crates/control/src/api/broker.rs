//! The key broker: secrets (set by the operator, encrypted at rest), and what is released to
//! attested instances only, encrypted to the key their evidence binds: secrets and sealing
//! roots, topic keys, and the cluster key to another replica.

use super::*;

/// Releases the cluster key to another replica of this control plane, over mutually attested
/// TLS: its evidence answers a challenge, binds the key of the certificate it connected with,
/// and passes the replica policy.
pub(super) async fn release_cluster_key(
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
    if let Err(refusal) = c.appraise_for(Audience::Replica, &req.nonce, &req.evidence, None, Some(&key)) {
        let e = ApiError::from(refusal);
        tracing::warn!(source = ?peer.source, "refused the cluster key to a replica: {}", e.message);
        return Err(e);
    }
    tracing::info!(source = ?peer.source, "released the cluster key to a replica that attested");
    Ok(Json(lamina_wire::ClusterKeyResponse { cluster_key: hex::encode(cluster_key.as_ref()) }))
}

fn check_secret_name(name: &str) -> Result<(), ApiError> {
    lamina_types::deploy::check_secret_name(name).map_err(ApiError::bad)
}

pub(super) async fn set_secret(
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

pub(super) async fn delete_secret(
    State(c): State<Shared>,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let c = lock(&c);
    check_secret_name(&name)?;
    let key = Control::secret_name(&name);
    if c.store.get(&key)?.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no secret `{name}`")));
    }
    c.store.write(&[], &[&key])?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_secrets(State(c): State<Shared>, _: Admin) -> ApiResult<Json<lamina_wire::SecretList>> {
    let c = lock(&c);
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
pub(super) async fn release(
    State(c): State<Shared>,
    node: Result<PassingNode, ApiError>,
    Json(req): Json<lamina_wire::ReleaseRequest>,
) -> ApiResult<Json<lamina_wire::release::Released>> {
    // A refused node is counted as a refused release, so the metric sees every attempt.
    let result = node.and_then(|node| release_once(&c, &node, &req));
    lock(&c).metrics.released("secrets", result.is_ok());
    result
}

fn release_once(
    c: &Shared,
    node: &PassingNode,
    req: &lamina_wire::ReleaseRequest,
) -> ApiResult<Json<lamina_wire::release::Released>> {
    let mut c = lock(c);
    let name = c.confirm_passing(node)?;
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
        let value = c.secret(secret.as_str())?;
        bundle.secrets.insert(secret.to_string(), base64::engine::general_purpose::STANDARD.encode(&*value));
    }
    let nonce = hex::decode(&req.nonce).map_err(|_| ApiError::bad("the nonce is not hex"))?;
    let released = lamina_wire::release::encrypt_to_instance(&bundle, &instance_key, &nonce, &module)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.to_string()))?;
    c.attested(name, &req.workload, req.replica, &instance_key)?;
    tracing::info!(node = %name, workload = %req.workload, replica = req.replica, "released {} secret(s)", spec.secrets.len());
    Ok(Json(released))
}

/// The file of the attested instances' keys.
pub(super) const INSTANCES: &str = "instances.json";

/// Releases topic keys to an instance: only over the node's attested TLS, only to an instance
/// assigned to it that attested (its key is the one its evidence bound), only for topics its
/// workload's patterns allow; encrypted to the instance's key.
pub(super) async fn topic_keys(
    State(c): State<Shared>,
    node: Result<PassingNode, ApiError>,
    Json(req): Json<lamina_wire::TopicKeysRequest>,
) -> ApiResult<Json<lamina_wire::release::Released>> {
    let result = node.and_then(|node| topic_keys_once(&c, &node, &req));
    lock(&c).metrics.released("topic-keys", result.is_ok());
    result
}

fn topic_keys_once(
    c: &Shared,
    node: &PassingNode,
    req: &lamina_wire::TopicKeysRequest,
) -> ApiResult<Json<lamina_wire::release::Released>> {
    let c = lock(c);
    let name = c.confirm_passing(node)?;
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
    let patterns: Vec<_> = spec.topics.iter().map(lamina_types::topic::TopicPattern::pattern).collect();
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
    let released = lamina_wire::release::encrypt_to_instance(&bundle, &key, &nonce, &module)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.to_string()))?;
    tracing::debug!(node = %name, workload = %req.workload, replica = req.replica, "released {} topic key(s)", req.topics.len());
    Ok(Json(released))
}

impl Control {
    pub(super) fn secret_name(name: &str) -> String {
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

    /// The spec of an instance assigned to node `name`.
    fn assigned(&self, name: &str, workload: &str, replica: u32) -> Result<WorkloadSpec, ApiError> {
        self.cluster
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
            .cluster
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
