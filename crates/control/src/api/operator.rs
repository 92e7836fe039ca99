//! The operator's routes: health, join tokens, deployments, status and logs.

use super::*;

pub(super) async fn health(State(c): State<Shared>) -> Json<lamina_wire::Health> {
    let c = lock(&c);
    Json(lamina_wire::Health {
        status: "ok".into(),
        fingerprint: hex::encode(c.fingerprint),
        artifact_key: c.artifact_key_pem(),
    })
}

pub(super) async fn create_token(
    _: Admin,
    State(c): State<Shared>,
    Json(req): Json<lamina_wire::TokenRequest>,
) -> ApiResult<Json<lamina_wire::TokenIssued>> {
    let mut c = lock(&c);
    let ttl = req.ttl_secs.unwrap_or(3600).clamp(60, 7 * 86_400);
    let (address, fingerprint) = (c.address.clone(), c.fingerprint);
    let token = c.tokens.issue(&address, fingerprint, random32(), now(), ttl);
    c.persist()?;
    Ok(Json(lamina_wire::TokenIssued { token: token.encode(), expires_in_secs: ttl }))
}

pub(super) async fn deploy(
    _: Admin,
    State(c): State<Shared>,
    Json(deployment): Json<Deployment>,
) -> ApiResult<Json<lamina_wire::Deployed>> {
    let mut c = lock(&c);
    for w in &deployment.workloads {
        lamina_types::deploy::check_name(&w.name).map_err(ApiError::bad)?;
        match &w.module {
            lamina_types::ModuleRef::Hash(h) => {
                if !c.store.exists(&module_name(h))? {
                    return Err(ApiError::bad(format!(
                        "workload \"{}\": module {h} is unknown to the control plane; deploy it by path so that `lamina deploy` uploads it",
                        w.name
                    )));
                }
            }
            lamina_types::ModuleRef::Path(p) => {
                return Err(ApiError::bad(format!(
                    "workload \"{}\": module {} is a path; upload it (`lamina deploy` does) and refer to its sha256",
                    w.name,
                    p.display()
                )));
            }
        }
    }
    for w in &deployment.workloads {
        for secret in &w.secrets {
            if !c.store.exists(&Control::secret_name(secret.as_str()))? {
                return Err(ApiError::bad(format!(
                    "workload \"{}\": secret `{secret}` is not set; set it first with `lamina secret set {secret} FILE`",
                    w.name
                )));
            }
        }
    }
    let names: Vec<lamina_types::WorkloadName> = deployment.workloads.iter().map(|w| w.name.clone()).collect();
    // One request must reach one workload: the routes of what is deployed already (less what
    // this replaces) and of what comes may not meet for the same host.
    let staying = c.cluster.workloads.values().filter(|w| !names.contains(&w.name));
    if let Some(clash) = lamina_types::deploy::find_clash(deployment.workloads.iter().chain(staying)) {
        return Err(ApiError::new(StatusCode::CONFLICT, clash));
    }
    c.step(Event::Deployed(deployment), now()).map_err(|e| ApiError::bad(e.to_string()))?;
    c.persist()?;
    let unplaced: Vec<_> = c.cluster.plan.unplaced.iter().filter(|u| names.contains(&u.workload)).cloned().collect();
    Ok(Json(lamina_wire::Deployed { deployed: names, unplaced }))
}

pub(super) async fn undeploy(State(c): State<Shared>, _: Admin, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let mut c = lock(&c);
    c.step(Event::Undeployed(name), now()).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    c.persist()?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn status(_: Admin, State(c): State<Shared>) -> ApiResult<Json<lamina_wire::Status>> {
    let c = lock(&c);
    let r = &c.cluster;
    Ok(Json(lamina_wire::Status {
        nodes: r.nodes.values().cloned().collect(),
        placements: r.plan.placements.clone(),
        unplaced: r.plan.unplaced.clone(),
        workloads: r.workloads.keys().cloned().collect(),
        endpoints: r.endpoints(),
    }))
}

/// Where the HTTP workloads are served: each placed instance of one, on its node's ingress.
pub(super) async fn endpoints(_: Admin, State(c): State<Shared>) -> ApiResult<Json<lamina_wire::Endpoints>> {
    let c = lock(&c);
    Ok(Json(lamina_wire::Endpoints { endpoints: c.cluster.endpoints() }))
}

/// The recent output of a workload's instances.
pub(super) async fn logs(
    State(c): State<Shared>,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<lamina_wire::Logs>> {
    let c = lock(&c);
    let known =
        |n: &lamina_types::WorkloadName| c.cluster.workloads.contains_key(n) || c.logs.keys().any(|(w, _)| w == n);
    let Some(name) = name.parse::<lamina_types::WorkloadName>().ok().filter(known) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no workload `{name}` is deployed")));
    };
    let instances = c
        .logs
        .iter()
        .filter(|((w, _), _)| *w == name)
        .map(|((_, replica), (node, text, end))| lamina_wire::InstanceLog {
            replica: *replica,
            node: node.clone(),
            text: text.clone(),
            end: *end,
        })
        .collect();
    Ok(Json(lamina_wire::Logs { workload: name, instances }))
}
