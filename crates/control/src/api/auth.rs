//! Who may call what: the operator (the admin token), an enrolled node (its attested TLS key)
//! and a node that still passes the policy, each an extractor that runs before the handler's
//! body, so a handler that names one cannot forget a step.

use super::*;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

/// The operator, proved by the admin token: an extractor that runs before a handler's body is
/// read, so an unauthenticated request is refused (401) having cost its headers only, however
/// large the body it announces.
pub(super) struct Admin;

impl axum::extract::FromRequestParts<Shared> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &Shared) -> Result<Self, ApiError> {
        lock(state).admin(&parts.headers)?;
        Ok(Admin)
    }
}

/// A request of the enrolled node the route's `{name}` names, over TLS with the key it enrolled
/// with: an extractor that runs before the handler's body is read. The name is had only through
/// [`Control::confirm`], under the lock the handler acts under, so a node removed (or its name
/// given to a new machine) while its request's body was arriving is refused then too.
pub(super) struct EnrolledNode {
    name: String,
    peer: Peer,
}

impl axum::extract::FromRequestParts<Shared> for EnrolledNode {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &Shared) -> Result<Self, ApiError> {
        let name = route_node(parts, state).await?;
        let peer = parts.extensions.get::<Peer>().cloned().unwrap_or_default();
        lock(state).node(&peer, &name)?;
        Ok(EnrolledNode { name, peer })
    }
}

/// An [`EnrolledNode`] whose last evidence passed the policy: the only kind anything is
/// released to. Its name, too, is had only through [`Control::confirm_passing`].
pub(super) struct PassingNode(EnrolledNode);

impl axum::extract::FromRequestParts<Shared> for PassingNode {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &Shared) -> Result<Self, ApiError> {
        let node = EnrolledNode::from_request_parts(parts, state).await?;
        lock(state).passing(&node.name)?;
        Ok(PassingNode(node))
    }
}

/// The node the route's `{name}` segment names.
async fn route_node(parts: &mut axum::http::request::Parts, state: &Shared) -> Result<String, ApiError> {
    use axum::extract::FromRequestParts as _;
    let params = axum::extract::RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad(format!("the path: {e}")))?;
    params
        .iter()
        .find_map(|(key, value)| (key == "name").then(|| value.to_owned()))
        .ok_or_else(|| ApiError::internal("a node's route without a {name} segment"))
}

impl Control {
    /// The name of an enrolled node's request, checked again under the caller's lock: its TLS
    /// key is still the one the node enrolled with.
    pub(super) fn confirm<'a>(&self, node: &'a EnrolledNode) -> Result<&'a str, ApiError> {
        self.node(&node.peer, &node.name)?;
        Ok(&node.name)
    }

    /// [`Control::confirm`], and the node still passes the policy.
    pub(super) fn confirm_passing<'a>(&self, node: &'a PassingNode) -> Result<&'a str, ApiError> {
        let name = self.confirm(&node.0)?;
        self.passing(name)?;
        Ok(name)
    }

    /// Admits the operator: the request's bearer token is the admin token.
    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match bearer(headers) {
            Some(token) if sha256_hex(token.as_bytes()) == self.admin_hash => Ok(()),
            Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "the admin token is wrong")),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this needs the admin token (Authorization: Bearer …; `lamina control` wrote it to its state directory)",
            )),
        }
    }

    /// Admits a request of node `name`: the connection's client certificate must hold the key
    /// the node enrolled with.
    fn node(&self, peer: &Peer, name: &str) -> Result<(), ApiError> {
        let Some(key) = &peer.key_hash else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this needs the node's attested TLS certificate (the connection presented none)",
            ));
        };
        match self.credentials.get(name) {
            Some(hash) if hash == key => Ok(()),
            Some(_) => {
                Err(ApiError::new(StatusCode::UNAUTHORIZED, format!("this TLS key is not the key of node `{name}`")))
            }
            None => Err(ApiError::new(StatusCode::UNAUTHORIZED, format!("no node `{name}` is enrolled"))),
        }
    }

    /// A node that still passes the policy (a node that no longer does gets nothing).
    fn passing(&self, name: &str) -> Result<(), ApiError> {
        let node = self.cluster.nodes.get(name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such node"))?;
        if let Some(reason) = &node.attestation_failure {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("node `{name}` no longer passes the policy ({reason}); nothing is released to it"),
            ));
        }
        Ok(())
    }
}
