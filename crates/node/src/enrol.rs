//! Enrolment: a node's first contact with the control plane. It makes a key, attests it over
//! one of the control plane's challenges, redeems its join token, and keeps the identity it
//! gets (`identity.rs`).

use lamina_tee::Platform;
use lamina_types::JoinToken;
use lamina_wire::ControlClient;

use crate::agent::{AgentError, NodeOptions};
use crate::identity::Identity;

/// How long enrolment keeps trying while the control plane says it is busy.
const ENROL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// The seconds a busy answer asks to wait (`… retry in N s`), if it says.
fn retry_after(message: &str) -> Option<u64> {
    let rest = &message[message.find("retry in ")? + "retry in ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// One enrolment request: a challenge, evidence over it bound to the node's key, the answer.
fn enrol_once(
    client: &ControlClient,
    token: &JoinToken,
    options: &NodeOptions,
    platform: &dyn Platform,
    identity: &Identity,
) -> Result<lamina_wire::EnrolResponse, AgentError> {
    let nonce = client.challenge()?.nonce;
    let request = lamina_wire::EnrolRequest {
        token: token.encode(),
        node: lamina_wire::NodeSpec {
            name: options.name.clone(),
            target: options.target,
            platform: platform.info().kind,
            memory: options.memory,
            labels: options.labels.clone(),
            zone: options.zone.clone(),
        },
        profile: options.profile,
        evidence: evidence(platform, &nonce, &identity.spki()?)?,
        nonce,
    };
    Ok(client.enrol(&request)?)
}

/// Evidence from the platform over a challenge of the control plane.
pub(crate) fn evidence(
    platform: &dyn Platform,
    nonce_hex: &str,
    key: &[u8],
) -> Result<lamina_wire::Evidence, AgentError> {
    lamina_wire::evidence::challenge_evidence(platform, nonce_hex, key).map_err(|e| match e {
        lamina_wire::evidence::EvidenceError::Challenge => AgentError::Protocol(e.to_string()),
        other => AgentError::Attest(Box::new(other)),
    })
}

/// Enrols with the control plane named in the token: a challenge, evidence over it, the
/// token; saves and returns the identity.
///
/// # Errors
/// [`AgentError`] when the control plane cannot be reached or refuses (a used or unknown
/// token, evidence that fails its policy).
pub fn enrol(token: &JoinToken, options: &NodeOptions, platform: &dyn Platform) -> Result<Identity, AgentError> {
    use p256::pkcs8::EncodePrivateKey as _;
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let key = secret.to_pkcs8_der().map_err(|e| AgentError::State(format!("cannot make a key: {e}")))?;
    let mut identity = Identity {
        control: token.control.clone(),
        fingerprint: hex::encode(token.fingerprint),
        name: options.name.clone(),
        key: hex::encode(key.as_bytes()),
        artifact_key: String::new(),
        nats_seed: None,
    };
    let client = identity.client(platform, options.control_verifier.clone())?;
    // A busy control plane (429: too many challenges from this address, as when a fleet
    // behind one address enrols at once; 503) is waited for, with a spread, not taken for a
    // refusal.
    let started = std::time::Instant::now();
    let mut said = false;
    let answer = loop {
        match enrol_once(&client, token, options, platform, &identity) {
            Err(AgentError::Control(lamina_wire::ClientError::Refused { status: 429 | 503, message }))
                if started.elapsed() < ENROL_PATIENCE =>
            {
                if !said {
                    tracing::warn!("the control plane is busy ({message}); trying again");
                    said = true;
                }
                let spread = u64::from(rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 1000);
                let wait = retry_after(&message).unwrap_or(1).min(30) * 1000 + spread;
                std::thread::sleep(std::time::Duration::from_millis(wait));
            }
            other => break other?,
        }
    };
    identity.artifact_key = answer.artifact_key;
    identity.nats_seed = answer.nats_seed;
    identity.save(&options.state)?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_answer_says_how_long_to_wait() {
        assert_eq!(super::retry_after("too many challenges from this address; retry in 3 s"), Some(3));
        assert_eq!(super::retry_after("busy"), None);
        assert_eq!(super::retry_after("retry in soon"), None);
    }
}
