//! TPM 2.0 quotes: Lamina's TPM evidence, and raw tpm2-tools quotes.
//!
//! A TPM proves its platform state with a *quote*: a TPMS_ATTEST holding a digest of selected
//! PCR values and the caller's qualifying data, signed by an attestation key (AK). The AK is
//! trusted once enrolled by credential activation ([`credential`]): the verifier then lists its
//! name in [`TrustAnchors::tpm_enrolled_aks`](crate::TrustAnchors). The endorsement key (EK)
//! certificate shows the TPM is genuine (it chains to a manufacturer's root).
//!
//! Checks, by name:
//! - `tpm.evidence.parse`: the evidence (CBOR, see [`evidence`]) and the TPM structures in it parse;
//! - `tpm.attest.magic`: the attestation is TPM-generated (`TPM_GENERATED_VALUE`) and a quote;
//! - `tpm.ak.attributes`: the AK is a restricted signing key fixed to its TPM (so it signs only
//!   structures the TPM generated, and cannot be copied out);
//! - `tpm.ak.signature`: the AK's signature over the attestation is valid (ECDSA P-256 or
//!   P-384; RSASSA or RSA-PSS; SHA-256, -384 or -512);
//! - `tpm.ak.enrolled`: the AK's name is one the operator enrolled;
//! - `tpm.qualifying_data`: the quote's qualifying data is the evidence's report data (or its
//!   first 32 bytes or more, when the TPM's `TPM2B_DATA` is smaller than 64 bytes);
//! - `tpm.pcr_digest`: the reported PCR values, digested in selection order with the
//!   signature's hash, equal the quote's PCR digest;
//! - `tpm.ek.chain`: the EK certificate (the first non-CA certificate among the endorsements)
//!   chains to [`TrustAnchors::tpm_roots`](crate::TrustAnchors) and every certificate is valid
//!   at the appraisal time.
//!
//! The EK chain proves that the node has a genuine TPM; that the quote comes from *that* TPM
//! rests on the enrolment, which bound the AK to the EK by credential activation.
//!
//! Measurements: `pcr0`..`pcr23`, the SHA-256 bank values quoted (lowercase hex). Lamina
//! extends each module's hash into [`MODULE_PCR`]; [`module_pcr_value`] gives the value a policy
//! expects after a fresh reset and given modules.

mod chain;
pub mod credential;
mod crypto;
pub mod evidence;
pub mod pcrs;
pub mod wire;

use std::time::SystemTime;

use lamina_types::{ModuleHash, PlatformKind};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::FromDer as _;

use crate::{Appraisal, Inputs, TrustAnchors};
use evidence::TpmEvidence;
use wire::{Attest, Public, PublicKey, Signature, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, alg, attr, curve};

/// The application PCR Lamina extends module hashes into (PC Client "application support",
/// resettable and extendable at locality 0).
pub const MODULE_PCR: u8 = 23;

/// Check names.
const PARSE: &str = "tpm.evidence.parse";
const MAGIC: &str = "tpm.attest.magic";
const AK_ATTRIBUTES: &str = "tpm.ak.attributes";
const AK_SIGNATURE: &str = "tpm.ak.signature";
const AK_ENROLLED: &str = "tpm.ak.enrolled";
const QUALIFYING_DATA: &str = "tpm.qualifying_data";
const PCR_DIGEST: &str = "tpm.pcr_digest";
const EK_CHAIN: &str = "tpm.ek.chain";

/// The shortest qualifying data accepted as binding the report data (bytes).
const MIN_QUALIFYING_DATA: usize = 32;

/// The value of [`MODULE_PCR`] after a reset and the extension of these module hashes, in order.
pub fn module_pcr_value(modules: &[ModuleHash]) -> [u8; 32] {
    modules.iter().fold([0u8; 32], |pcr, module| {
        Sha256::new().chain_update(pcr).chain_update(module.as_bytes()).finalize().into()
    })
}

/// Appraises Lamina TPM evidence (see [`evidence`]); `inputs.endorsements` carry the EK
/// certificate and any intermediates.
pub fn verify(inputs: &Inputs<'_>) -> Appraisal {
    let mut a = Appraisal::new(PlatformKind::Tpm);
    let evidence = match TpmEvidence::from_cbor(inputs.evidence) {
        Ok(evidence) => evidence,
        Err(e) => {
            a.fail(PARSE, e);
            return a;
        }
    };
    let (attest, sig, ak) = match (
        Attest::parse(&evidence.attest),
        Signature::parse(&evidence.signature),
        Public::parse(&evidence.ak_public),
    ) {
        (Ok(attest), Ok(sig), Ok(ak)) => (attest, sig, ak),
        (attest, sig, ak) => {
            let errors = [
                attest.err().map(|e| format!("attestation: {e}")),
                sig.err().map(|e| format!("signature: {e}")),
                ak.err().map(|e| format!("attestation key: {e}")),
            ];
            a.fail(PARSE, errors.into_iter().flatten().collect::<Vec<_>>().join("; "));
            return a;
        }
    };
    a.pass(PARSE, format!("TPM evidence with {} PCR values; {sig}", evidence.pcrs.len()));
    check_magic(&mut a, &attest);
    a.check(AK_ATTRIBUTES, ak_attributes(&ak));
    a.check(AK_SIGNATURE, crypto::verify(&ak.key, &sig, &evidence.attest).map(|d| format!("{d} (AK)")));
    a.check(AK_ENROLLED, enrolled(&evidence.ak_public, inputs.anchors));

    let n = attest.extra_data.len();
    let bound = n >= MIN_QUALIFYING_DATA && evidence.report_data.get(..n) == Some(attest.extra_data.as_slice());
    if bound {
        a.report_data = evidence.report_data.to_vec();
        let how =
            if n == 64 { "the report data".to_owned() } else { format!("the first {n} bytes of the report data") };
        a.pass(QUALIFYING_DATA, format!("the quote's qualifying data is {how}"));
    } else {
        a.report_data = attest.extra_data.clone();
        a.fail(
            QUALIFYING_DATA,
            format!(
                "the quote's qualifying data ({n} bytes, {}) is not the evidence's report data or its first 32 bytes or more",
                hex::encode(&attest.extra_data)
            ),
        );
    }

    let values: Vec<(u16, u8, Vec<u8>)> = evidence.pcrs.iter().map(|(i, v)| (alg::SHA256, *i, v.clone())).collect();
    check_pcrs(&mut a, &attest, sig.hash(), &values, false);
    check_ek_chain(&mut a, inputs.endorsements, &[], inputs.anchors, inputs.at);
    a
}

/// A quote as tpm2-tools leaves it (`tpm2_quote -m -s -o`), with the operator's AK.
#[derive(Clone, Copy, Debug)]
pub struct Parts<'a> {
    /// The TPMS_ATTEST (`quote.msg`).
    pub attest: &'a [u8],
    /// The TPMT_SIGNATURE (`quote.sig`).
    pub signature: &'a [u8],
    /// The PCR values in tpm2-tools' format (`quote.pcrs`, see [`pcrs`]).
    pub pcrs: &'a [u8],
    /// The AK's public key (SubjectPublicKeyInfo, PEM or DER). The operator vouches for it:
    /// its TPM attributes are not known here, so `tpm.ak.attributes` and `tpm.ak.enrolled`
    /// are not checked.
    pub ak_public_key: &'a [u8],
    /// The EK certificate (DER or PEM), if any.
    pub ek_certificate: Option<&'a [u8]>,
    /// Intermediate certificates (untrusted helpers).
    pub chain: &'a [Vec<u8>],
    /// The trusted roots (`tpm_roots`).
    pub anchors: &'a TrustAnchors,
    /// The time at which certificates must be valid.
    pub at: SystemTime,
}

/// Appraises a raw tpm2-tools quote. `report_data` is the quote's qualifying data as it is
/// (for instance a 32-byte nonce).
pub fn verify_parts(parts: &Parts<'_>) -> Appraisal {
    let mut a = Appraisal::new(PlatformKind::Tpm);
    let parsed = (
        Attest::parse(parts.attest).map_err(|e| format!("quote message: {e}")),
        Signature::parse(parts.signature).map_err(|e| format!("quote signature: {e}")),
        pcrs::parse(parts.pcrs).map_err(|e| format!("PCR file: {e}")),
        key_from_spki(parts.ak_public_key).map_err(|e| format!("AK public key: {e}")),
    );
    let (attest, sig, values, key) = match parsed {
        (Ok(attest), Ok(sig), Ok(values), Ok(key)) => (attest, sig, values, key),
        (attest, sig, values, key) => {
            let errors = [attest.err(), sig.err(), values.err(), key.err()];
            a.fail(PARSE, errors.into_iter().flatten().collect::<Vec<_>>().join("; "));
            return a;
        }
    };
    a.pass(PARSE, format!("quote, {sig} signature and {} PCR values", values.values.len()));
    check_magic(&mut a, &attest);
    a.check(AK_SIGNATURE, crypto::verify(&key, &sig, parts.attest).map(|d| format!("{d} (operator's AK)")));
    a.report_data = attest.extra_data.clone();
    let selection_matches = attest.quote.as_ref().is_some_and(|q| q.selection == values.selection);
    if attest.quote.is_some() && !selection_matches {
        a.fail(PCR_DIGEST, "the PCR file's selection is not the quote's");
    } else {
        check_pcrs(&mut a, &attest, sig.hash(), &values.values, true);
    }
    match parts.ek_certificate {
        Some(cert) => check_ek_chain(&mut a, &[cert.to_vec()], parts.chain, parts.anchors, parts.at),
        None => a.fail(EK_CHAIN, "no EK certificate was given"),
    }
    a
}

fn check_magic(a: &mut Appraisal, attest: &Attest) {
    let result = if attest.magic != TPM_GENERATED_VALUE {
        Err(format!("magic 0x{:08x} is not TPM_GENERATED_VALUE: the TPM did not generate this structure", attest.magic))
    } else if attest.kind != TPM_ST_ATTEST_QUOTE {
        Err(format!("structure type 0x{:04x} is not a quote (0x{TPM_ST_ATTEST_QUOTE:04x})", attest.kind))
    } else {
        let c = attest.clock_info;
        Ok(format!(
            "TPM-generated quote; reset count {}, restart count {}, clock {} ms{}",
            c.reset_count,
            c.restart_count,
            c.clock,
            if c.safe { "" } else { " (clock not safe)" }
        ))
    };
    a.check(MAGIC, result);
}

/// Whether a public area is an attestation key: restricted, signing, fixed to its TPM.
pub(crate) fn ak_attributes(ak: &Public) -> Result<String, String> {
    let needed = attr::FIXED_TPM | attr::FIXED_PARENT | attr::RESTRICTED | attr::SIGN;
    if !ak.has(needed) {
        let missing: Vec<&str> = [
            (attr::FIXED_TPM, "fixedTPM"),
            (attr::FIXED_PARENT, "fixedParent"),
            (attr::RESTRICTED, "restricted"),
            (attr::SIGN, "sign"),
        ]
        .into_iter()
        .filter(|(bit, _)| ak.attributes & bit == 0)
        .map(|(_, name)| name)
        .collect();
        return Err(format!("the AK lacks {} (attributes 0x{:08x})", missing.join(", "), ak.attributes));
    }
    if ak.has(attr::DECRYPT) {
        return Err(format!("the AK is also a decryption key (attributes 0x{:08x})", ak.attributes));
    }
    Ok(format!("restricted signing key fixed to its TPM (attributes 0x{:08x})", ak.attributes))
}

fn enrolled(ak_public: &[u8], anchors: &TrustAnchors) -> Result<String, String> {
    let name = wire::name_of(ak_public).map_err(|e| format!("the AK's name cannot be computed: {e}"))?;
    if anchors.tpm_enrolled_aks.iter().any(|n| n == &name) {
        Ok(format!("AK {} is enrolled", hex::encode(&name)))
    } else {
        Err(format!(
            "AK {} is not among the {} enrolled attestation keys",
            hex::encode(&name),
            anchors.tpm_enrolled_aks.len()
        ))
    }
}

/// Checks the PCR digest and records the SHA-256 values as measurements. `values` are
/// `(bank, index, value)`; with `ordered`, they are in selection order already (tpm2-tools),
/// else they are looked up by index in the SHA-256 bank (Lamina evidence).
fn check_pcrs(a: &mut Appraisal, attest: &Attest, hash_alg: u16, values: &[(u16, u8, Vec<u8>)], ordered: bool) {
    for (bank, index, value) in values {
        if *bank == alg::SHA256 {
            a.measure(format!("pcr{index}"), hex::encode(value));
        }
    }
    let Some(quote) = &attest.quote else {
        a.fail(PCR_DIGEST, "the attestation is not a quote, so it has no PCR digest");
        return;
    };
    let result = (|| {
        let mut concatenated = Vec::new();
        if ordered {
            for (_, _, value) in values {
                concatenated.extend_from_slice(value);
            }
        } else {
            for (bank, index) in quote.selection.pairs() {
                if bank != alg::SHA256 {
                    return Err(format!(
                        "the quote selects the {} bank; Lamina evidence carries SHA-256 values only",
                        wire::hash_name(bank)
                    ));
                }
                let value = values
                    .iter()
                    .find(|(_, i, _)| *i == index)
                    .ok_or_else(|| format!("PCR {index} is quoted but its value is missing"))?;
                concatenated.extend_from_slice(&value.2);
            }
            if let Some((_, extra, _)) = values.iter().find(|(_, i, _)| !quote.selection.pairs().any(|(_, s)| s == *i))
            {
                return Err(format!("PCR {extra} has a value but is not quoted"));
            }
        }
        let digest = crypto::hash(hash_alg, &[&concatenated])
            .ok_or_else(|| format!("unsupported hash {}", wire::hash_name(hash_alg)))?;
        if crypto::ct_eq(&digest, &quote.pcr_digest) {
            let pcrs: Vec<String> = quote.selection.pairs().map(|(_, i)| i.to_string()).collect();
            Ok(format!("the values of PCRs {} match the quote's {} digest", pcrs.join(","), wire::hash_name(hash_alg)))
        } else {
            Err(format!(
                "the reported PCR values digest to {}, the quote says {}",
                hex::encode(&digest),
                hex::encode(&quote.pcr_digest)
            ))
        }
    })();
    a.check(PCR_DIGEST, result);
}

fn check_ek_chain(
    a: &mut Appraisal,
    endorsements: &[Vec<u8>],
    chain: &[Vec<u8>],
    anchors: &TrustAnchors,
    at: SystemTime,
) {
    let mut certs = chain::all_der(endorsements);
    certs.extend(chain::all_der(chain));
    let is_leaf =
        |der: &Vec<u8>| x509_parser::certificate::X509Certificate::from_der(der).is_ok_and(|(_, cert)| !cert.is_ca());
    let Some(position) = certs.iter().position(is_leaf) else {
        a.fail(EK_CHAIN, "no EK certificate among the endorsements");
        return;
    };
    let leaf = certs.remove(position);
    let roots = chain::all_der(&anchors.tpm_roots);
    a.check(EK_CHAIN, chain::verify(&leaf, &certs, &roots, at));
}

/// A verifying key from a SubjectPublicKeyInfo (PEM `PUBLIC KEY` or DER).
fn key_from_spki(bytes: &[u8]) -> Result<PublicKey, String> {
    use x509_parser::public_key::PublicKey as Spki;
    let der = if bytes.first() == Some(&0x30) {
        bytes.to_vec()
    } else {
        let (_, pem) = x509_parser::pem::parse_x509_pem(bytes).map_err(|e| format!("not PEM: {e}"))?;
        if pem.label != "PUBLIC KEY" {
            return Err(format!("a PEM {} block, not a PUBLIC KEY", pem.label));
        }
        pem.contents
    };
    let (_, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(&der).map_err(|e| format!("not a public key: {e}"))?;
    match spki.parsed().map_err(|e| format!("the key does not parse: {e}"))? {
        Spki::EC(point) => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or("an EC key without a named curve")?;
            let (curve_id, size) = if curve_oid == x509_parser::oid_registry::OID_EC_P256 {
                (curve::NIST_P256, 32)
            } else if curve_oid == x509_parser::oid_registry::OID_NIST_EC_P384 {
                (curve::NIST_P384, 48)
            } else {
                return Err(format!("unsupported curve {curve_oid}"));
            };
            match point.data() {
                [4, rest @ ..] if rest.len() == 2 * size => {
                    let (x, y) = rest.split_at(size);
                    Ok(PublicKey::Ecc { curve: curve_id, x: x.to_vec(), y: y.to_vec() })
                }
                _ => Err("the EC point is not an uncompressed point of its curve".into()),
            }
        }
        Spki::RSA(key) => {
            let exponent = crypto::left_pad(key.exponent, 4)
                .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
                .map(u32::from_be_bytes)
                .ok_or("the RSA exponent is too large")?;
            let modulus: Vec<u8> = key.modulus.iter().skip_while(|b| **b == 0).copied().collect();
            let bits = u16::try_from(modulus.len() * 8).map_err(|_| "the RSA modulus is too large")?;
            Ok(PublicKey::Rsa { bits, exponent, modulus })
        }
        _ => Err("neither an EC nor an RSA key".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_pcr_value_extends_in_order() {
        let a = ModuleHash::of(b"a");
        let b = ModuleHash::of(b"b");
        assert_eq!(module_pcr_value(&[]), [0; 32]);
        let one: [u8; 32] = Sha256::new().chain_update([0u8; 32]).chain_update(a.as_bytes()).finalize().into();
        assert_eq!(module_pcr_value(&[a]), one);
        assert_ne!(module_pcr_value(&[a, b]), module_pcr_value(&[b, a]));
    }

    #[test]
    fn garbage_evidence_fails_the_parse_check() {
        let anchors = TrustAnchors::default();
        let inputs =
            Inputs { evidence: b"junk", endorsements: &[], collateral: None, anchors: &anchors, at: SystemTime::now() };
        let appraisal = verify(&inputs);
        assert!(appraisal.failed(PARSE));
        assert!(!appraisal.verified());
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let anchors = TrustAnchors::default();
            let inputs = Inputs { evidence: &bytes, endorsements: &[], collateral: None, anchors: &anchors, at: SystemTime::now() };
            let _ = verify(&inputs);
            let parts = Parts {
                attest: &bytes, signature: &bytes, pcrs: &bytes, ak_public_key: &bytes, ek_certificate: Some(&bytes),
                chain: &[], anchors: &anchors, at: SystemTime::now(),
            };
            let _ = verify_parts(&parts);
        }
    }
}
