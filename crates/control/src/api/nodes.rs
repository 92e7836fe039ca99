//! A node's routes: enrolment, removal, re-attestation, heartbeats and the long poll of its
//! desired state.

use super::*;

pub(super) async fn enroll(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    Json(req): Json<lamina_wire::EnrolRequest>,
) -> ApiResult<Json<lamina_wire::EnrolResponse>> {
    let mut c = lock(&c);
    let (Some(key), Some(key_hash)) = (peer.key.clone(), peer.key_hash.clone()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a node enrols over TLS with its attested certificate; the connection presented none",
        ));
    };
    let token: JoinToken = req
        .token
        .parse()
        .map_err(|e: lamina_types::TokenError| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    if token.fingerprint != c.fingerprint {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "this join token is for another control plane"));
    }
    lamina_types::deploy::check_name(&req.node.name).map_err(|e| ApiError::bad(e.replace("workload", "node")))?;
    if c.credentials.contains_key(&req.node.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a node named `{}` is already enrolled; give this one another --name", req.node.name),
        ));
    }
    c.appraise(&req.nonce, &req.evidence, Some(req.node.platform), Some(&key))?;
    let mut tokens = c.tokens.clone();
    tokens
        .redeem(&token.secret, &req.node.name, now())
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    c.tokens = tokens;
    c.credentials.insert(req.node.name.clone(), key_hash);
    let event = Event::Enrolled { spec: req.node.clone(), profile: req.profile };
    c.step(event, now()).map_err(|e| ApiError::internal(e.to_string()))?;
    c.persist()?;
    tracing::info!(node = %req.node.name, "enrolled");
    let nats_seed = c.nats_user(&req.node.name)?.map(|u| u.seed.to_string());
    Ok(Json(lamina_wire::EnrolResponse { artifact_key: c.artifact_key_pem(), nats_seed }))
}

/// Removes an enrolled node (admin): its credentials (TLS and NATS) stop working, its
/// instances are placed elsewhere. To come back it enrols again with a new join token.
pub(super) async fn remove_node(
    State(c): State<Shared>,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<lamina_wire::NodeRemoved>> {
    let mut c = lock(&c);
    if c.credentials.remove(&name).is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no node `{name}` is enrolled")));
    }
    let prefix = format!("{name}/");
    c.instances.retain(|k, _| !k.starts_with(&prefix));
    let instances = c.instances.clone();
    c.store.save(INSTANCES, &instances)?;
    c.signed.remove(&name);
    // A node known to the credentials but not the cluster cannot be; either way it is gone.
    if c.cluster.nodes.contains_key(&name) {
        c.step(Event::Removed(name.clone()), now()).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    c.persist()?;
    tracing::info!(node = %name, "removed");
    Ok(Json(lamina_wire::NodeRemoved { removed: name }))
}

pub(super) async fn attest(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
    node: EnrolledNode,
    Json(req): Json<lamina_wire::AttestRequest>,
) -> ApiResult<Json<lamina_wire::AttestVerdict>> {
    let mut c = lock(&c);
    let name = c.confirm(&node)?.to_owned();
    let key = peer.key.clone().unwrap_or_default();
    let verdict = match c.appraise(&req.nonce, &req.evidence, None, Some(&key)) {
        Ok(_) => Ok(()),
        // A verdict on the node; anything else (a stale challenge) is the request's fault.
        Err(Refusal::Failed(reason)) => Err(reason),
        Err(refusal) => return Err(refusal.into()),
    };
    let passed = verdict.is_ok();
    let reason = verdict.clone().err();
    c.step(Event::Attested { node: name, verdict }, now()).map_err(|e| ApiError::internal(e.to_string()))?;
    c.persist()?;
    Ok(Json(lamina_wire::AttestVerdict { verified: passed, reason }))
}

/// How much recent output the control plane keeps per instance (in memory).
const LOG_KEEP: usize = 256 << 10;

pub(super) async fn heartbeat(
    State(c): State<Shared>,
    node: EnrolledNode,
    Json(req): Json<lamina_wire::HeartbeatRequest>,
) -> ApiResult<Json<lamina_wire::SignedDesired>> {
    let mut c = lock(&c);
    let name = c.confirm(&node)?.to_owned();
    for chunk in req.logs {
        let assigned = c.cluster.desired.get(&name).is_some_and(|d| {
            d.assignments.iter().any(|a| a.placement.workload == chunk.workload && a.placement.replica == chunk.replica)
        });
        if !assigned || chunk.text.len() > 4 * LOG_CHUNK {
            continue;
        }
        let log = c.logs.entry((chunk.workload, chunk.replica)).or_default();
        log.0.clone_from(&name);
        log.1.push_str(&chunk.text);
        log.2 += chunk.text.len() as u64;
        if log.1.len() > LOG_KEEP {
            let mut cut = log.1.len() - LOG_KEEP;
            while !log.1.is_char_boundary(cut) {
                cut += 1;
            }
            log.1.drain(..cut);
        }
    }
    c.metrics.heartbeats.inc();
    let changed = c
        .step(
            Event::Heartbeat {
                node: name.clone(),
                instances: req.instances,
                degraded: req.degraded,
                ingress: req.ingress,
            },
            now(),
        )
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    if !changed.is_empty() {
        c.persist()?;
    }
    c.signed_desired(&name).map(Json)
}

/// How long `GET /v1/nodes/{name}/desired` may wait.
const MAX_WAIT_SECS: u64 = 30;

/// A node's desired state, as soon as its generation is not `after` (a long poll of at most
/// `wait_ms` milliseconds, 30 s at most): how a node hears of a deployment within a round trip instead of at its
/// next heartbeat.
pub(super) async fn desired(
    State(c): State<Shared>,
    node: EnrolledNode,
    axum::extract::Query(q): axum::extract::Query<lamina_wire::DesiredQuery>,
) -> ApiResult<Json<lamina_wire::SignedDesired>> {
    let wait =
        std::time::Duration::from_millis(q.wait_ms.unwrap_or(0)).min(std::time::Duration::from_secs(MAX_WAIT_SECS));
    let until = tokio::time::Instant::now() + wait;
    loop {
        let (name, changed) = {
            let c = lock(&c);
            // Again at every wake: a node removed while it waits gets no more.
            (c.confirm(&node)?.to_owned(), c.changed.clone())
        };
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut c = lock(&c);
            let generation = c.cluster.desired.get(&name).map_or(0, |d| d.generation);
            if q.after != Some(generation) || tokio::time::Instant::now() >= until {
                return c.signed_desired(&name).map(Json);
            }
        }
        let _ = tokio::time::timeout_at(until, notified).await;
    }
}
