//! The verifier `lamina run` gives guests for their self-attestation (`--verifier-policy`,
//! `--verifier-key`): appraise the evidence against the policy, sign an EAR.

use std::path::Path;
use std::sync::Arc;

use lamina_runtime::Appraiser;

/// How long the attestation results given to guests are valid.
#[cfg(feature = "verify")]
const RESULT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(3600);

#[cfg(feature = "verify")]
struct PolicyAppraiser {
    verifier: lamina_attest::Verifier,
    key_pem: zeroize::Zeroizing<Vec<u8>>,
}

#[cfg(feature = "verify")]
impl Appraiser for PolicyAppraiser {
    fn appraise(&self, envelope: &lamina_types::Envelope, nonce: &[u8]) -> Result<String, String> {
        let now = std::time::SystemTime::now();
        let expect = lamina_attest::Expect { nonce: Some(nonce), ..lamina_attest::Expect::now() };
        let appraisal = self.verifier.appraise(envelope, &expect);
        if !appraisal.verified() {
            tracing::warn!("a guest's evidence does not meet the policy: {}", appraisal.reasons().join("; "));
        }
        lamina_attest::issue_ear(&appraisal, &self.key_pem, RESULT_VALIDITY, now).map_err(|e| e.to_string())
    }
}

/// Loads the policy and the signing key.
#[cfg(feature = "verify")]
pub(crate) fn load(policy: &Path, key: &Path) -> anyhow::Result<Arc<dyn Appraiser>> {
    use anyhow::Context as _;
    let mut anchors = lamina_attest::TrustAnchors::default();
    let policy = lamina_attest::Policy::load(policy, &mut anchors).context("cannot use the verifier policy")?;
    let key_pem = std::fs::read(key)
        .map(zeroize::Zeroizing::new)
        .with_context(|| format!("cannot read the verifier key {}", key.display()))?;
    let verifier = lamina_attest::Verifier::new(Some(policy), anchors);
    Ok(Arc::new(PolicyAppraiser { verifier, key_pem }))
}

/// Without the verifier built in, there is nothing to appraise with.
#[cfg(not(feature = "verify"))]
pub(crate) fn load(_policy: &Path, _key: &Path) -> anyhow::Result<Arc<dyn Appraiser>> {
    anyhow::bail!("this lamina was built without the verifier (the `verify` feature); drop --verifier-policy")
}
