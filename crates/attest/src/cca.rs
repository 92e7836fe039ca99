//! Appraisal of Arm CCA attestation tokens (RMM 1.0 legacy profile `http://arm.com/CCA-SSD/1.0.0`).
//!
//! A CCA token is a CBOR collection of two COSE_Sign1 tokens: the *platform* token, signed by
//! the platform's attestation key (CPAK), whose challenge is a hash of the realm's attestation
//! key (RAK); and the *realm* token, signed by that RAK, whose challenge is the 64 bytes of
//! report data. Trust flows from a CPAK the operator trusts (a trust anchor in Veraison's JSON
//! format) through the platform signature to the RAK and the realm's measurements.
//!
//! Claims are decoded by the `ccatoken` crate, which also appraises them against reference
//! values (Veraison's JSON) when the anchors carry some. The envelope and both signatures are
//! checked here first (`cca/cose.rs` says why), over exactly the bytes `ccatoken` then decodes.
//!
//! Checks: `cca.token.parse`, `cca.token.profile`, `cca.trust_anchor`, `cca.platform.signature`,
//! `cca.realm.signature`, `cca.realm.binding`, and `cca.appraisal` when reference values are given.

mod anchor;
mod cose;

use ccatoken::store::{IRefValueStore as _, MemoRefValueStore, RefValues};
use ccatoken::token::Evidence;
use lamina_types::PlatformKind;
use lamina_types::cbor::{self, Value};
use sha2::Digest as _;

use anchor::Anchor;
pub use anchor::CcaConfigError;
use cose::{Alg, Collection, VerifyError};

use crate::{Appraisal, Inputs};

/// The largest token accepted (real tokens are 1 to 3 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The platform token profile this verifier decodes.
pub const SUPPORTED_PROFILE: &str = "http://arm.com/CCA-SSD/1.0.0";

/// The platform claim that names the profile.
const PROFILE_CLAIM: i128 = 265;

/// Appraises a CCA attestation token against the CCA trust anchors and, when the anchors carry
/// any, the CCA reference values.
///
/// `report_data` is the realm challenge (64 bytes). Measurements: `realm_initial_measurement`,
/// `rem0`..`rem3`, `realm_personalization_value`, `realm_hash_algorithm`, `realm_public_key`,
/// `platform_implementation_id`, `platform_instance_id`, `platform_lifecycle` (decimal),
/// `platform_lifecycle_state` (e.g. `secured`), `debug` (a debug lifecycle state),
/// `platform_config`, `platform_hash_algorithm`, `platform_verification_service` (when present)
/// and `platform_sw.<component type>` (or `platform_sw.<index>` when a component's type is
/// absent, repeated or not a plain word): each software component's measurement.
pub fn verify(inputs: &Inputs<'_>) -> Appraisal {
    let mut a = Appraisal::new(PlatformKind::Cca);
    let Some((collection, mut evidence)) = parse(inputs.evidence, &mut a) else {
        return a;
    };
    record_claims(&mut a, &evidence);
    check_platform(&mut a, &collection, &evidence, &inputs.anchors.cca_anchors);
    check_realm(&mut a, &collection, &evidence);
    if !inputs.anchors.cca_reference_values.is_empty() {
        appraise(&mut a, &mut evidence, &inputs.anchors.cca_reference_values);
    }
    a
}

/// Checks that a trust anchor file can be used; returns how many CPAKs it holds.
///
/// # Errors
/// [`CcaConfigError`] saying what is wrong with the file.
pub fn validate_anchors(json: &[u8]) -> Result<usize, CcaConfigError> {
    anchor::parse(json).map(|anchors| anchors.len())
}

/// Checks that a reference value file can be used; returns how many platform and realm
/// reference values it holds.
///
/// # Errors
/// [`CcaConfigError`] saying what is wrong with the file.
pub fn validate_reference_values(json: &[u8]) -> Result<usize, CcaConfigError> {
    let values = parse_reference_values(json)?;
    let count = values.platform.map_or(0, |p| p.len()) + values.realm.map_or(0, |r| r.len());
    if count == 0 {
        return Err(CcaConfigError::Syntax { what: "reference value", reason: "it holds no reference values".into() });
    }
    Ok(count)
}

fn parse_reference_values(json: &[u8]) -> Result<RefValues, CcaConfigError> {
    let syntax = |reason: String| CcaConfigError::Syntax { what: "reference value", reason };
    let text = std::str::from_utf8(json).map_err(|_| syntax("not UTF-8 text".into()))?;
    RefValues::parse(text).map_err(|e| syntax(format!("{e}; expected {{\"platform\": [...], \"realm\": [...]}}")))
}

/// Parses the envelope, checks the profile, decodes the claims.
fn parse(token: &[u8], a: &mut Appraisal) -> Option<(Collection, Evidence)> {
    let collection = match Collection::parse(token, MAX_TOKEN_LEN) {
        Ok(c) => c,
        Err(e) => {
            a.fail("cca.token.parse", e);
            return None;
        }
    };
    if let Some(profile) = profile_of(&collection.platform.payload) {
        if profile != SUPPORTED_PROFILE {
            a.fail(
                "cca.token.profile",
                format!(
                    "the platform token's profile `{profile}` is not supported: this verifier decodes \
                     `{SUPPORTED_PROFILE}` tokens (RMM 1.0); newer profiles need a newer decoder"
                ),
            );
            return None;
        }
        a.pass("cca.token.profile", format!("platform token profile `{profile}`"));
    }
    let evidence = match Evidence::decode(&token.to_vec()) {
        Ok(e) => e,
        Err(e) => {
            a.fail("cca.token.parse", format!("the token's claims do not decode: {e}"));
            return None;
        }
    };
    if evidence.platform.payload != collection.platform.payload || evidence.realm.payload != collection.realm.payload {
        a.fail("cca.token.parse", "the token's signed payloads are ambiguous (two decoders read them differently)");
        return None;
    }
    a.pass(
        "cca.token.parse",
        format!(
            "platform token ({}, {} software components) and realm token ({})",
            collection.platform.alg.name(),
            evidence.platform_claims.sw_components.len(),
            collection.realm.alg.name()
        ),
    );
    Some((collection, evidence))
}

/// The platform profile claim, when the payload is a map that has a text one.
fn profile_of(payload: &[u8]) -> Option<String> {
    let Ok(Value::Map(claims)) = cbor::decode_one(payload, MAX_TOKEN_LEN) else {
        return None;
    };
    claims.into_iter().find_map(|(k, v)| match (cose::int_of(&k), v) {
        (Some(PROFILE_CLAIM), Value::Text(p)) => Some(p),
        _ => None,
    })
}

fn record_claims(a: &mut Appraisal, evidence: &Evidence) {
    let realm = &evidence.realm_claims;
    let platform = &evidence.platform_claims;
    a.report_data = realm.challenge.to_vec();
    a.measure("realm_initial_measurement", hex::encode(&realm.rim));
    for (i, rem) in realm.rem.iter().enumerate() {
        a.measure(format!("rem{i}"), hex::encode(rem));
    }
    a.measure("realm_personalization_value", hex::encode(realm.perso));
    a.measure("realm_hash_algorithm", &realm.hash_alg);
    a.measure("realm_public_key", hex::encode(realm.rak));
    a.measure("platform_implementation_id", hex::encode(platform.impl_id));
    a.measure("platform_instance_id", hex::encode(platform.inst_id));
    a.measure("platform_lifecycle", platform.lifecycle.to_string());
    let state = lifecycle_state(platform.lifecycle);
    a.measure("platform_lifecycle_state", state);
    a.measure("debug", matches!(state, "non-cca-platform-debug" | "recoverable-cca-platform-debug").to_string());
    a.measure("platform_config", hex::encode(&platform.config));
    a.measure("platform_hash_algorithm", &platform.hash_alg);
    if let Some(service) = &platform.verification_service {
        a.measure("platform_verification_service", service);
    }
    let components = &platform.sw_components;
    for (i, c) in components.iter().enumerate() {
        // A type names the measurement when it is a plain word (never a number, which would
        // read as another component's index) that no other component has.
        let plain = |t: &&String| {
            (1..=32).contains(&t.len())
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                && !t.bytes().all(|b| b.is_ascii_digit())
        };
        let unique = |t: &&String| components.iter().filter(|o| o.mtyp.as_ref() == Some(*t)).count() == 1;
        let name = match c.mtyp.as_ref().filter(plain).filter(unique) {
            Some(t) => format!("platform_sw.{t}"),
            None => format!("platform_sw.{i}"),
        };
        a.measure(name, hex::encode(&c.mval));
    }
}

/// The lifecycle state's name (CCA security lifecycle, the high byte of the claim).
fn lifecycle_state(lifecycle: u16) -> &'static str {
    match lifecycle >> 8 {
        0x00 => "unknown",
        0x10 => "assembly-and-test",
        0x20 => "cca-platform-rot-provisioning",
        0x30 => "secured",
        0x40 => "non-cca-platform-debug",
        0x50 => "recoverable-cca-platform-debug",
        0x60 => "decommissioned",
        _ => "invalid",
    }
}

/// Finds the CPAK for the token's platform and checks the platform token's signature with it.
fn check_platform(a: &mut Appraisal, collection: &Collection, evidence: &Evidence, files: &[Vec<u8>]) {
    let instance = evidence.platform_claims.inst_id;
    let implementation = evidence.platform_claims.impl_id;
    let mut anchors = Vec::new();
    let mut unreadable = Vec::new();
    for (i, file) in files.iter().enumerate() {
        match anchor::parse(file) {
            Ok(mut found) => anchors.append(&mut found),
            Err(e) => unreadable.push(format!("anchor file {i}: {e}")),
        }
    }
    let note = if unreadable.is_empty() {
        String::new()
    } else {
        format!(" ({} anchor files could not be used: {})", unreadable.len(), unreadable.join("; "))
    };
    let endorsed: Vec<&Anchor> = anchors.iter().filter(|t| t.instance_id == Some(instance)).collect();
    let candidates: Vec<&Anchor> = if endorsed.is_empty() {
        let key_only: Vec<&Anchor> = anchors.iter().filter(|t| t.instance_id.is_none()).collect();
        if key_only.is_empty() {
            a.fail(
                "cca.trust_anchor",
                format!(
                    "no CCA trust anchor (CPAK) for platform instance {} (implementation {}){note}; \
                     add the platform's CPAK to the CCA anchors",
                    hex::encode(instance),
                    hex::encode(implementation)
                ),
            );
            return;
        }
        a.pass(
            "cca.trust_anchor",
            format!(
                "no CPAK is endorsed for instance {}; trying {} key-only CPAK(s){note}",
                hex::encode(instance),
                key_only.len()
            ),
        );
        key_only
    } else {
        let matching: Vec<&Anchor> =
            endorsed.iter().copied().filter(|t| t.implementation_id == Some(implementation)).collect();
        if matching.is_empty() {
            let endorsed_for: Vec<String> =
                endorsed.iter().filter_map(|t| t.implementation_id.map(hex::encode)).collect();
            a.fail(
                "cca.trust_anchor",
                format!(
                    "the CPAK of platform instance {} is endorsed for implementation {}, but the token says {}",
                    hex::encode(instance),
                    endorsed_for.join(", "),
                    hex::encode(implementation)
                ),
            );
            return;
        }
        a.pass(
            "cca.trust_anchor",
            format!(
                "CPAK endorsed for platform instance {} (implementation {}){note}",
                hex::encode(instance),
                hex::encode(implementation)
            ),
        );
        matching
    };

    let alg = collection.platform.alg;
    let usable: Vec<&Anchor> = candidates.iter().copied().filter(|t| t.fits(alg)).collect();
    if usable.is_empty() {
        let curves: Vec<&str> = candidates.iter().map(|t| t.curve).collect();
        a.fail(
            "cca.platform.signature",
            format!("the platform token is signed with {} but the CPAK is a {} key", alg.name(), curves.join(" / ")),
        );
        return;
    }
    let mut last_error = VerifyError::Mismatch;
    for key in &usable {
        match collection.platform.verify(&key.key) {
            Ok(()) => {
                a.pass(
                    "cca.platform.signature",
                    format!("the platform token's {} signature verifies under the CPAK", alg.name()),
                );
                return;
            }
            Err(e) => last_error = e,
        }
    }
    let detail = match last_error {
        VerifyError::Key => format!("the CPAK is not a valid {} public key", alg.curve()),
        VerifyError::Signature => format!("the platform token's {} signature is not a valid (r, s) pair", alg.name()),
        VerifyError::Unsupported => format!("{} signatures are not supported by this build", alg.name()),
        VerifyError::Mismatch if usable.len() > 1 => {
            format!("the platform token's {} signature verifies under none of {} CPAKs", alg.name(), usable.len())
        }
        VerifyError::Mismatch => format!(
            "the platform token's {} signature does not verify under the CPAK: the platform token was altered \
             or signed by another key",
            alg.name()
        ),
    };
    a.fail("cca.platform.signature", detail);
}

/// Checks the realm token's signature by its own RAK, and that the platform token binds that RAK.
fn check_realm(a: &mut Appraisal, collection: &Collection, evidence: &Evidence) {
    let realm = &evidence.realm_claims;
    let signature = match (collection.realm.alg, collection.realm.verify(&realm.rak)) {
        (Alg::Es384, Ok(())) => {
            Ok("the realm token's ES384 signature verifies under its realm attestation key (RAK)".to_owned())
        }
        (Alg::Es384, Err(VerifyError::Key)) => Err("the realm attestation key (RAK) is not a P-384 public key".into()),
        (Alg::Es384, Err(VerifyError::Signature)) => {
            Err("the realm token's ES384 signature is not a valid (r, s) pair".into())
        }
        (Alg::Es384, Err(_)) => {
            Err("the realm token's ES384 signature does not verify under its realm attestation key (RAK): \
             the realm token was altered"
                .into())
        }
        (other, _) => Err(format!(
            "the realm token is signed with {}, but a realm attestation key is P-384 (ES384)",
            other.name()
        )),
    };
    a.check("cca.realm.signature", signature);

    let digest = match realm.rak_hash_alg.as_str() {
        "sha-256" => Some(sha2::Sha256::digest(realm.rak).to_vec()),
        "sha-512" => Some(sha2::Sha512::digest(realm.rak).to_vec()),
        _ => None,
    };
    let binding = match digest {
        None => Err(format!("the RAK hash algorithm `{}` is not supported", realm.rak_hash_alg)),
        Some(d) if d == evidence.platform_claims.challenge => {
            Ok(format!("the platform token's challenge is the {} of the realm attestation key", realm.rak_hash_alg))
        }
        Some(_) => Err(format!(
            "the platform token's challenge {} is not the {} of the realm attestation key: \
             the realm token does not belong to this platform token",
            hex::encode(&evidence.platform_claims.challenge),
            realm.rak_hash_alg
        )),
    };
    a.check("cca.realm.binding", binding);
}

/// A trust vector (`ccatoken`'s, from an `ear` version Lamina does not name) as the
/// `claim=value-name` pairs that are set.
macro_rules! describe {
    ($vector:expr) => {{
        let mut parts = Vec::new();
        for claim in $vector {
            if claim.is_set() {
                parts.push(format!("{}={}", claim.tag(), claim.value_name()));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }};
}

/// Appraises the claims against the reference values with `ccatoken`'s appraisal.
fn appraise(a: &mut Appraisal, evidence: &mut Evidence, files: &[Vec<u8>]) {
    let mut store = MemoRefValueStore::new();
    for (i, file) in files.iter().enumerate() {
        let loaded = std::str::from_utf8(file)
            .map_err(|_| "not UTF-8 text".to_owned())
            .and_then(|text| store.load_json(text).map_err(|e| e.to_string()));
        if let Err(e) = loaded {
            a.fail("cca.appraisal", format!("CCA reference value file {i} cannot be used: {e}"));
            return;
        }
    }
    if let Err(e) = evidence.appraise(&store) {
        a.fail("cca.appraisal", format!("the appraisal failed: {e}"));
        return;
    }
    let (platform, realm) = evidence.get_trust_vectors();
    let vectors = format!("platform trust vector {}; realm trust vector {}", describe!(platform), describe!(realm));
    // ccatoken sets hardware to "genuine" only when the configuration and every software
    // component match a reference value; realm executables to "approved" when the initial
    // (and, if given, extensible) measurements match.
    let platform_ok = platform.hardware.get() == 2;
    let realm_ok = matches!(realm.executables.get(), 2 | 3);
    let implementation = evidence.platform_claims.impl_id;
    let result = if platform_ok && realm_ok {
        Ok(format!("the platform and realm match the reference values: {vectors}"))
    } else if store.lookup_platform(&implementation).is_none() {
        Err(format!("no reference value for platform implementation {}: {vectors}", hex::encode(implementation)))
    } else if !platform_ok {
        Err(format!("the platform's configuration or software components match no reference value: {vectors}"))
    } else if store.lookup_realm(&evidence.realm_claims.rim).is_none() {
        Err(format!("the realm initial measurement matches no reference value: {vectors}"))
    } else {
        Err(format!("the realm's extensible measurements match no reference value: {vectors}"))
    };
    a.check("cca.appraisal", result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_states_follow_the_high_byte() {
        assert_eq!(lifecycle_state(0x3003), "secured");
        assert_eq!(lifecycle_state(0x0000), "unknown");
        assert_eq!(lifecycle_state(0x40ff), "non-cca-platform-debug");
        assert_eq!(lifecycle_state(0x5001), "recoverable-cca-platform-debug");
        assert_eq!(lifecycle_state(0x6000), "decommissioned");
        assert_eq!(lifecycle_state(0x7000), "invalid");
    }

    #[test]
    fn the_profile_is_read_from_the_platform_claims() {
        let claims = cbor::encode(&Value::Map(vec![
            (Value::Integer(10.into()), Value::Bytes(vec![0; 32])),
            (Value::Integer(265.into()), Value::Text("tag:arm.com,2023:cca_platform#1.0.0".into())),
        ]));
        assert_eq!(profile_of(&claims).as_deref(), Some("tag:arm.com,2023:cca_platform#1.0.0"));
        assert_eq!(profile_of(&[0xa0]), None);
        assert_eq!(profile_of(&[0xff]), None);
    }
}
