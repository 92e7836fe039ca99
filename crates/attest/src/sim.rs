//! Appraisal of `sim` evidence: Lamina's development platform, which has no hardware protection.
//!
//! The signatures prove only that whoever holds the sim CA's key file endorsed the device key
//! that signed the report data. The policy layer rejects sim evidence unless the policy says
//! `allow_sim = true`; this module only checks the signatures.

use lamina_types::PlatformKind;
use lamina_types::sim_evidence::{DEVICE_TAG, EVIDENCE_TAG, SimEvidence};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

use crate::{Appraisal, Inputs};

/// Checks sim evidence: the device key is endorsed by a sim CA the anchors list (or, when
/// none is listed, by the CA key that came with the evidence, which proves nothing and says so),
/// and the device key signed the report data.
pub fn verify(inputs: &Inputs<'_>) -> Appraisal {
    let mut a = Appraisal::new(PlatformKind::Sim);
    let evidence = match SimEvidence::from_cbor(inputs.evidence) {
        Ok(e) => e,
        Err(e) => {
            a.fail("sim.evidence.parse", e);
            return a;
        }
    };
    a.pass("sim.evidence.parse", "well-formed lamina-sim-evidence-v1");
    a.report_data = evidence.report_data.to_vec();
    a.measure("device_key", hex::encode(&evidence.device_key));
    a.pass("sim.hardware", "sim evidence: NO hardware protection (development only)");

    if p256::PublicKey::from_sec1_bytes(&evidence.device_key).is_err() {
        a.fail("sim.device_key", "the device key is not a P-256 public key");
        return a;
    }
    a.check("sim.endorsement", check_endorsement(&evidence, inputs));
    let signed = [EVIDENCE_TAG, &evidence.report_data[..]].concat();
    let signature = if verifies(&evidence.device_key, &signed, &evidence.signature) {
        Ok("the device key signed the report data".to_owned())
    } else {
        Err("the device key's signature over the report data does not verify".to_owned())
    };
    a.check("sim.signature", signature);
    a
}

fn check_endorsement(evidence: &SimEvidence, inputs: &Inputs<'_>) -> Result<String, String> {
    let signed = [DEVICE_TAG, &evidence.device_key[..]].concat();
    let endorses = |ca: &[u8]| verifies(ca, &signed, &evidence.endorsement);
    let pinned = &inputs.anchors.sim_ca_keys;
    if pinned.is_empty() {
        // Nothing pinned: accept the CA key shipped with the evidence, and say what that means.
        return match inputs.endorsements.iter().find(|ca| endorses(ca)) {
            Some(ca) => Ok(format!(
                "endorsed by the sim CA {} that came with the evidence (no sim CA is pinned, so this proves nothing \
                 about which machine made it)",
                short(ca)
            )),
            None => Err("the device key is not endorsed by the sim CA that came with the evidence".into()),
        };
    }
    match pinned.iter().find(|ca| endorses(ca)) {
        Some(ca) => Ok(format!("endorsed by the pinned sim CA {}", short(ca))),
        None => Err(format!(
            "the device key is not endorsed by any of the {} pinned sim CA key(s); add this machine's CA \
             (`lamina attest --platform sim` prints it) to the policy's sim_ca_keys",
            pinned.len()
        )),
    }
}

/// An ECDSA P-256 / SHA-256 DER signature check (ring's, the fastest at hand; the key is SEC1).
fn verifies(public_key: &[u8], message: &[u8], der_signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key).verify(message, der_signature).is_ok()
}

fn short(key: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", &hex::encode(sha2::Sha256::digest(key))[..16])
}
