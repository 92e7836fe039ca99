//! Challenges and the appraisal of evidence over them: a typed verdict that handlers answer
//! with and metrics count.

use super::*;

/// Whose evidence is appraised: a node's (the node policy) or another replica's (the replica
/// policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Audience {
    /// A node: the node policy.
    Node,
    /// Another replica of this control plane: the replica policy.
    Replica,
}

/// Why evidence was not accepted: what a handler answers, and what the attestation metric
/// counts (`verdict="stale"`, `"malformed"` or `"fail"`). Evidence that is not a well-formed
/// envelope never gets here: reading the body refuses it ([`lamina_wire::Evidence`]).
#[derive(Debug)]
pub(super) enum Refusal {
    /// The challenge it answers was not accepted: malformed, not this control plane's,
    /// expired or used (ask for a new one), or too many answers to remember just now.
    Challenge(crate::challenge::ChallengeError),
    /// Evidence of a replica, and this control plane admits none.
    NoReplicaPolicy,
    /// It does not pass the policy, or binds another key or platform than the request's: why.
    Failed(String),
}

impl Refusal {
    /// The metric's verdict.
    fn verdict(&self) -> &'static str {
        use crate::challenge::ChallengeError as E;
        match self {
            Refusal::Challenge(E::Malformed) => "malformed",
            Refusal::Challenge(E::Forged | E::Expired | E::Replayed) => "stale",
            // Refused for the control plane's load, not the evidence; counted with failures
            // as before these were told apart.
            Refusal::Challenge(E::RateLimited { .. } | E::Busy) | Refusal::NoReplicaPolicy | Refusal::Failed(_) => {
                "fail"
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Challenge(e) => challenge_error(e),
            Refusal::NoReplicaPolicy => ApiError::new(
                StatusCode::FORBIDDEN,
                "this control plane releases the cluster key to no replica (start it with --replica-policy)",
            ),
            Refusal::Failed(reason) => ApiError::new(StatusCode::FORBIDDEN, reason),
        }
    }
}

/// A nonce for evidence to answer: made, not stored (see [`crate::challenge`]), so that asking
/// for any number of them fills nothing; each source gets its share.
pub(super) async fn challenge(
    State(c): State<Shared>,
    Extension(peer): Extension<Peer>,
) -> ApiResult<Json<lamina_wire::Challenge>> {
    let address = peer.source.unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    let mut c = lock(&c);
    // An enrolled node (its client certificate holds the key it enrolled with) has an
    // allowance of its own; anyone else shares their address's.
    let source = match &peer.key_hash {
        Some(hash) if c.credentials.values().any(|known| known == hash) => crate::challenge::Source::Node(hash.clone()),
        _ => crate::challenge::Source::from(address),
    };
    let nonce = c.challenges.issue(source, now(), std::time::Instant::now()).map_err(challenge_error)?;
    Ok(Json(lamina_wire::Challenge { nonce: hex::encode(nonce) }))
}

/// The answer to a challenge that was not issued or not accepted.
fn challenge_error(e: crate::challenge::ChallengeError) -> ApiError {
    use crate::challenge::ChallengeError as E;
    let status = match e {
        E::Malformed => StatusCode::BAD_REQUEST,
        E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        E::Busy => StatusCode::SERVICE_UNAVAILABLE,
        // Not 401: the requester's credentials are not in question, only the freshness of
        // its evidence, and a node must not take it for a refusal (it would drop its cached
        // secrets); it asks for a new challenge.
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, e.to_string())
}

impl Control {
    /// Checks evidence against a challenge this control plane issued (used up here, so a
    /// replayed envelope fails) and the policy.
    ///
    /// With `key`, the evidence's claims must bind it (the SubjectPublicKeyInfo of the TLS key
    /// the request came with), so that evidence relayed from another machine is refused.
    pub(super) fn appraise(
        &mut self,
        nonce_hex: &str,
        evidence: &lamina_wire::Evidence,
        platform: Option<PlatformKind>,
        key: Option<&[u8]>,
    ) -> Result<Claims, Refusal> {
        self.appraise_for(Audience::Node, nonce_hex, evidence, platform, key)
    }

    pub(super) fn appraise_for(
        &mut self,
        audience: Audience,
        nonce_hex: &str,
        evidence: &lamina_wire::Evidence,
        platform: Option<PlatformKind>,
        key: Option<&[u8]>,
    ) -> Result<Claims, Refusal> {
        let started = std::time::Instant::now();
        let result = self.appraise_once(audience, nonce_hex, evidence, platform, key);
        let verdict = match &result {
            Ok(_) => "pass",
            Err(refusal) => refusal.verdict(),
        };
        self.metrics.appraised(verdict, started.elapsed().as_secs_f64());
        result
    }

    fn appraise_once(
        &mut self,
        audience: Audience,
        nonce_hex: &str,
        evidence: &lamina_wire::Evidence,
        platform: Option<PlatformKind>,
        key: Option<&[u8]>,
    ) -> Result<Claims, Refusal> {
        let now = now();
        // Checked before the evidence (cheap), used up only once the evidence has passed: a
        // failed answer costs nothing to remember, and a passed one answers nothing else.
        let nonce = self.challenges.check(nonce_hex, now).map_err(Refusal::Challenge)?;
        let expect = Expect { nonce: Some(&nonce), ..Expect::now() };
        let verifier = match audience {
            Audience::Node => &self.verifier,
            Audience::Replica => self.replica_verifier.as_deref().ok_or(Refusal::NoReplicaPolicy)?,
        };
        let appraisal = verifier.appraise(&evidence.0, &expect);
        if !appraisal.verified() {
            return Err(Refusal::Failed(format!(
                "the evidence does not pass the policy: {}",
                appraisal.reasons().join("; ")
            )));
        }
        let Some(claims) = appraisal.claims else {
            return Err(Refusal::Failed("the evidence carries no Lamina claims".into()));
        };
        if key.is_some() && claims.instance_key.as_deref() != key {
            return Err(Refusal::Failed(
                "the evidence does not bind the TLS key this request came with (its claims' instance_key)".into(),
            ));
        }
        if let (Some(declared), Some(found)) = (platform, appraisal.platform)
            && declared != found
        {
            return Err(Refusal::Failed(format!("the node says it is {declared} but its evidence is {found}")));
        }
        self.challenges.consume(nonce_hex, now).map_err(Refusal::Challenge)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::ChallengeError as E;

    /// Each refusal is counted under the verdict and answered with the status it always had.
    #[test]
    fn refusals_are_counted_and_answered_by_kind() {
        let cases = [
            (Refusal::Challenge(E::Malformed), "malformed", StatusCode::BAD_REQUEST),
            (Refusal::Challenge(E::Replayed), "stale", StatusCode::CONFLICT),
            (Refusal::Challenge(E::Expired), "stale", StatusCode::CONFLICT),
            (Refusal::Challenge(E::Forged), "stale", StatusCode::CONFLICT),
            (Refusal::Challenge(E::Busy), "fail", StatusCode::SERVICE_UNAVAILABLE),
            (Refusal::NoReplicaPolicy, "fail", StatusCode::FORBIDDEN),
            (Refusal::Failed("no".into()), "fail", StatusCode::FORBIDDEN),
        ];
        for (refusal, verdict, status) in cases {
            assert_eq!(refusal.verdict(), verdict, "{refusal:?}");
            assert_eq!(ApiError::from(refusal).status, status);
        }
    }
}
