//! Lamina's TPM evidence format: `lamina-tee-tpm` produces it, `lamina-attest` appraises it.
//!
//! Canonical CBOR:
//! `["lamina-tpm-evidence-v1", report_data, attest, signature, {pcr: value}, ak_public]`
//! - `report_data` (bstr, 64): the report data the evidence binds; the quote's qualifying data
//!   is its first 32 to 64 bytes (all 64 where the TPM's `TPM2B_DATA` holds them, which needs
//!   SHA-512 support: `TPM2B_DATA` holds `sizeof(TPMT_HA)` bytes);
//! - `attest` (bstr): the TPMS_ATTEST the attestation key signed;
//! - `signature` (bstr): the TPMT_SIGNATURE;
//! - `{pcr: value}` (map, uint keys ascending → bstr): the SHA-256 bank values of the quoted PCRs;
//! - `ak_public` (bstr): the attestation key's TPMT_PUBLIC (its name is nameAlg ‖ H(ak_public)).

use std::collections::BTreeMap;

use crate::cbor::{self, Value};

/// First item of TPM evidence.
pub const EVIDENCE_FORMAT: &str = "lamina-tpm-evidence-v1";
/// The largest TPM evidence accepted.
pub const MAX_EVIDENCE_LEN: usize = 16 * 1024;
/// The highest PCR index accepted (PC Client TPMs have 24 PCRs).
const MAX_PCR: u64 = 23;

/// TPM evidence, decoded; nothing is verified here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmEvidence {
    /// The report data the quote's qualifying data is a prefix of.
    pub report_data: [u8; 64],
    /// The signed TPMS_ATTEST.
    pub attest: Vec<u8>,
    /// The TPMT_SIGNATURE over it.
    pub signature: Vec<u8>,
    /// SHA-256 PCR values by index.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// The attestation key's TPMT_PUBLIC.
    pub ak_public: Vec<u8>,
}

impl TpmEvidence {
    /// Encodes the evidence in canonical CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        let pcrs = self
            .pcrs
            .iter()
            .map(|(index, value)| (Value::Integer((*index).into()), Value::Bytes(value.clone())))
            .collect();
        cbor::encode(&Value::Array(vec![
            Value::Text(EVIDENCE_FORMAT.into()),
            Value::Bytes(self.report_data.to_vec()),
            Value::Bytes(self.attest.clone()),
            Value::Bytes(self.signature.clone()),
            Value::Map(pcrs),
            Value::Bytes(self.ak_public.clone()),
        ]))
    }

    /// Decodes TPM evidence, which must be canonical.
    ///
    /// # Errors
    /// A message saying what is malformed.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, String> {
        let value = cbor::decode_one(bytes, MAX_EVIDENCE_LEN).map_err(|e| format!("TPM evidence: {e}"))?;
        let Value::Array(items) = value else { return Err("TPM evidence is not a CBOR array".into()) };
        let [format, report_data, attest, signature, pcrs, ak_public]: [Value; 6] =
            items.try_into().map_err(|_| "TPM evidence has not 6 items".to_owned())?;
        if format.as_text() != Some(EVIDENCE_FORMAT) {
            return Err(format!("not {EVIDENCE_FORMAT}"));
        }
        let bytes_of = |v: Value, what: &str| v.into_bytes().map_err(|_| format!("the {what} is not a byte string"));
        let report_data: [u8; 64] = bytes_of(report_data, "report data")?
            .try_into()
            .map_err(|_| "the report data is not 64 bytes".to_owned())?;
        let Value::Map(entries) = pcrs else { return Err("the PCR values are not a map".into()) };
        let mut map = BTreeMap::new();
        for (key, value) in entries {
            let index = key
                .as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .filter(|i| *i <= MAX_PCR)
                .and_then(|i| u8::try_from(i).ok())
                .ok_or_else(|| format!("a PCR index is not an integer from 0 to {MAX_PCR}"))?;
            let value = bytes_of(value, "PCR value")?;
            if value.len() != 32 {
                return Err(format!("PCR {index} is {} bytes, not a SHA-256 value", value.len()));
            }
            if map.insert(index, value).is_some() {
                return Err(format!("PCR {index} appears twice"));
            }
        }
        let evidence = Self {
            report_data,
            attest: bytes_of(attest, "attestation")?,
            signature: bytes_of(signature, "signature")?,
            pcrs: map,
            ak_public: bytes_of(ak_public, "attestation key")?,
        };
        if evidence.to_cbor() != bytes {
            return Err("TPM evidence is not in canonical CBOR".into());
        }
        Ok(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TpmEvidence {
        TpmEvidence {
            report_data: [9; 64],
            attest: vec![1, 2, 3],
            signature: vec![4, 5],
            pcrs: [(0u8, vec![0; 32]), (23, vec![0xaa; 32])].into_iter().collect(),
            ak_public: vec![6],
        }
    }

    #[test]
    fn round_trips_and_rejects_non_canonical_forms() {
        let bytes = sample().to_cbor();
        assert_eq!(TpmEvidence::from_cbor(&bytes), Ok(sample()));
        // The same map with its keys out of order is not canonical.
        let reordered = cbor::encode(&Value::Array(vec![
            Value::Text(EVIDENCE_FORMAT.into()),
            Value::Bytes(vec![9; 64]),
            Value::Bytes(vec![1, 2, 3]),
            Value::Bytes(vec![4, 5]),
            Value::Map(vec![
                (Value::Integer(23.into()), Value::Bytes(vec![0xaa; 32])),
                (Value::Integer(0.into()), Value::Bytes(vec![0; 32])),
            ]),
            Value::Bytes(vec![6]),
        ]));
        assert!(TpmEvidence::from_cbor(&reordered).is_err());
    }

    #[test]
    fn rejects_bad_pcr_entries() {
        let mut bad = sample();
        bad.pcrs.insert(24, vec![0; 32]);
        assert!(TpmEvidence::from_cbor(&bad.to_cbor()).expect_err("bad index").contains("PCR index"));
        let mut short = sample();
        short.pcrs.insert(1, vec![0; 20]);
        assert!(TpmEvidence::from_cbor(&short.to_cbor()).expect_err("short value").contains("not a SHA-256"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(evidence) = TpmEvidence::from_cbor(&bytes) {
                proptest::prop_assert_eq!(evidence.to_cbor(), bytes);
            }
        }
    }
}
