//! Appraisal of Lamina envelopes: the platform's evidence, its binding to the claims, freshness,
//! and the policy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lamina_types::{Claims, Envelope, PlatformKind, report_data_of};

use crate::{Appraisal, Inputs, Policy, TrustAnchors};

/// How far in the future a claims timestamp may be (clock skew between attester and verifier).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What the relying party expects of the evidence, beyond the policy.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The nonce the relying party gave the attester; the claims must carry exactly this.
    pub nonce: Option<&'a [u8]>,
    /// The key the attester must have bound in its claims (e.g. a TLS certificate's
    /// SubjectPublicKeyInfo, DER).
    pub instance_key: Option<&'a [u8]>,
    /// DCAP collateral (PCCS JSON) for SGX and TDX evidence.
    pub collateral: Option<&'a [u8]>,
    /// Extra untrusted endorsements (e.g. certificates the user passed).
    pub endorsements: &'a [Vec<u8>],
    /// The time of appraisal: certificates, collateral and claims must be valid then.
    pub at: SystemTime,
}

impl Expect<'_> {
    /// Nothing expected beyond the policy, at the current time.
    pub fn now() -> Expect<'static> {
        Expect { nonce: None, instance_key: None, collateral: None, endorsements: &[], at: SystemTime::now() }
    }
}

/// A verifier: trust anchors, and the policy evidence must pass.
#[derive(Clone, Debug, Default)]
pub struct Verifier {
    /// The operator's policy. Without one, genuineness is still appraised (every check is
    /// listed) but nothing is accepted: the check [`NO_POLICY`] fails, since no reference
    /// value, allowed module or sim rule was applied. To accept any genuine hardware
    /// evidence, give `Policy::default()` (which still rejects sim) explicitly.
    pub policy: Option<Policy>,
    /// The roots trusted besides the built-in vendor roots.
    pub anchors: TrustAnchors,
}

impl Verifier {
    /// A verifier with a policy and anchors.
    pub fn new(policy: Option<Policy>, anchors: TrustAnchors) -> Self {
        Self { policy, anchors }
    }

    /// Appraises a platform's native evidence (a quote, a report, a token) and applies the policy.
    pub fn appraise_native(&self, kind: PlatformKind, inputs: &Inputs<'_>) -> Appraisal {
        let mut a = verify_native(kind, inputs);
        match &self.policy {
            Some(policy) => policy.apply(&mut a),
            None => no_policy(&mut a),
        }
        a
    }

    /// Appraises an encoded envelope: the evidence is genuine, binds the claims, the claims are
    /// fresh and carry what is expected, and the policy accepts it all.
    pub fn appraise_envelope(&self, bytes: &[u8], expect: &Expect<'_>) -> Appraisal {
        match Envelope::from_cbor(bytes) {
            Ok(envelope) => self.appraise(&envelope, expect),
            Err(e) => {
                let mut a = Appraisal::default();
                a.fail("envelope.parse", e.to_string());
                a
            }
        }
    }

    /// Appraises a decoded envelope (see [`Verifier::appraise_envelope`]).
    pub fn appraise(&self, envelope: &Envelope, expect: &Expect<'_>) -> Appraisal {
        let mut endorsements = envelope.endorsements.clone();
        endorsements.extend_from_slice(expect.endorsements);
        let inputs = Inputs {
            evidence: &envelope.evidence,
            endorsements: &endorsements,
            collateral: expect.collateral,
            anchors: &self.anchors,
            at: expect.at,
        };
        let mut a = verify_native(envelope.platform, &inputs);
        a.platform = Some(envelope.platform);
        let claims = match Claims::from_cbor(&envelope.claims) {
            Ok(c) => c,
            Err(e) => {
                a.fail("claims.parse", e.to_string());
                return a;
            }
        };
        a.pass("claims.parse", "canonical Lamina claims");
        check_claims(&mut a, envelope, &claims, expect);
        a.claims = Some(claims);
        match &self.policy {
            Some(policy) => {
                policy.apply(&mut a);
                check_age(&mut a, policy.max_age, expect.at);
            }
            None => no_policy(&mut a),
        }
        a
    }
}

/// The check that fails when a verifier has no policy: nothing is accepted unappraised.
pub const NO_POLICY: &str = "policy.given";

fn no_policy(a: &mut Appraisal) {
    a.fail(NO_POLICY, "no policy: no reference value, allowed module or sim rule was checked, so nothing is accepted");
}

fn verify_native(kind: PlatformKind, inputs: &Inputs<'_>) -> Appraisal {
    match kind {
        PlatformKind::Sim => crate::sim::verify(inputs),
        PlatformKind::Tpm => crate::tpm::verify(inputs),
        PlatformKind::Sgx | PlatformKind::Tdx => crate::dcap::verify(inputs),
        PlatformKind::Snp => crate::snp::verify(inputs),
        #[cfg(feature = "cca")]
        PlatformKind::Cca => crate::cca::verify(inputs),
        #[cfg(not(feature = "cca"))]
        PlatformKind::Cca => {
            let mut a = Appraisal::new(PlatformKind::Cca);
            a.fail("platform", "this build of the verifier has no CCA support (the `cca` feature)");
            a
        }
        other => {
            let mut a = Appraisal::new(other);
            a.fail("platform", format!("this verifier does not know the platform {other}"));
            a
        }
    }
}

fn check_claims(a: &mut Appraisal, envelope: &Envelope, claims: &Claims, expect: &Expect<'_>) {
    if claims.platform == envelope.platform && a.platform == Some(envelope.platform) {
        a.pass("claims.platform", format!("{} evidence, {} claims", envelope.platform, claims.platform));
    } else {
        a.fail(
            "claims.platform",
            format!(
                "the envelope says {}, the claims say {}, the evidence is {}",
                envelope.platform,
                claims.platform,
                a.platform.map_or("unknown".into(), |p| p.to_string())
            ),
        );
    }
    let expected = report_data_of(&envelope.claims);
    if a.report_data == expected {
        a.pass("claims.binding", "the evidence's report data is the hash of these claims");
    } else {
        a.fail(
            "claims.binding",
            format!(
                "the evidence binds report data {}…, not the hash of these claims {}…: the claims were swapped or \
                 the evidence was made for other claims",
                hex::encode(a.report_data.get(..8).unwrap_or(&a.report_data)),
                hex::encode(&expected[..8])
            ),
        );
    }
    if let Some(nonce) = expect.nonce {
        if claims.nonce == nonce {
            a.pass("claims.nonce", "the claims carry the expected nonce");
        } else {
            a.fail(
                "claims.nonce",
                format!(
                    "the claims carry nonce {}, not the expected {}: a replay, or evidence made for someone else",
                    hex::encode(&claims.nonce),
                    hex::encode(nonce)
                ),
            );
        }
    }
    if let Some(key) = expect.instance_key {
        match &claims.instance_key {
            Some(k) if k == key => a.pass("claims.instance_key", "the claims bind the expected key"),
            Some(_) => a.fail("claims.instance_key", "the claims bind another key than the one presented"),
            None => a.fail("claims.instance_key", "the claims bind no key"),
        }
    }
    let issued = UNIX_EPOCH + Duration::from_secs(claims.issued_at);
    if issued > expect.at + MAX_CLOCK_SKEW {
        a.fail(
            "claims.time",
            format!("the claims were issued {} in the future", humantime::format_duration(since(expect.at, issued))),
        );
    }
    a.measure("module_hash", claims.module_hash.map_or_else(|| "none".into(), |h| h.to_string()));
}

fn check_age(a: &mut Appraisal, max_age: Duration, at: SystemTime) {
    let Some(claims) = &a.claims else { return };
    let issued = UNIX_EPOCH + Duration::from_secs(claims.issued_at);
    let age = since(issued, at);
    if issued <= at && age > max_age {
        a.fail(
            "policy.max_age",
            format!(
                "the claims are {} old, older than the policy's max_age {}",
                humantime::format_duration(age),
                humantime::format_duration(max_age)
            ),
        );
    } else {
        a.pass("policy.max_age", format!("issued {} before appraisal", humantime::format_duration(age)));
    }
}

fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}
