//! The byte formats this platform writes: its evidence, and its sealed-root file.
//!
//! Evidence is canonical CBOR
//! `["lamina-tpm-evidence-v1", report_data, attest, signature, {pcr: value}, ak_public]`:
//! the 64-byte report data; the TPMS_ATTEST the attestation key signed (its qualifying data is
//! the report data's first 64, 48 or 32 bytes, as many as the TPM's `TPM2B_DATA` holds); the
//! TPMT_SIGNATURE; the SHA-256 values of the quoted PCRs by index (ascending); the attestation
//! key's TPMT_PUBLIC. [`TpmEvidence`] (in `lamina-types`) encodes and decodes it, for this crate and the verifier alike.
//!
//! The sealed root file is canonical CBOR `["lamina-tpm-sealed-v1", [pcr...], public, private]`:
//! the PCRs (SHA-256 bank) the policy covers, the sealed object's TPMT_PUBLIC, and its
//! TPM2B_PRIVATE contents (encrypted by the TPM under the storage root key).

use lamina_types::cbor::{self, Value};

pub use lamina_types::tpm_evidence::{EVIDENCE_FORMAT, TpmEvidence};

/// First item of the sealed root file.
const SEALED_FORMAT: &str = "lamina-tpm-sealed-v1";
/// The largest sealed root file read.
const MAX_SEALED_LEN: usize = 4096;

/// A sealed root as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SealedRoot {
    pub(crate) pcrs: Vec<u8>,
    pub(crate) public: Vec<u8>,
    pub(crate) private: Vec<u8>,
}

impl SealedRoot {
    pub(crate) fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            Value::Text(SEALED_FORMAT.into()),
            Value::Array(self.pcrs.iter().map(|p| Value::Integer((*p).into())).collect()),
            Value::Bytes(self.public.clone()),
            Value::Bytes(self.private.clone()),
        ]))
    }

    pub(crate) fn from_cbor(bytes: &[u8]) -> Result<Self, String> {
        let value = cbor::decode_one(bytes, MAX_SEALED_LEN).map_err(|e| e.to_string())?;
        let Value::Array(items) = value else { return Err("not a CBOR array".into()) };
        let [format, pcrs, public, private]: [Value; 4] =
            items.try_into().map_err(|_| "expected 4 items".to_owned())?;
        if format.as_text() != Some(SEALED_FORMAT) {
            return Err(format!("not {SEALED_FORMAT}"));
        }
        let Value::Array(pcrs) = pcrs else { return Err("the PCR list is not an array".into()) };
        let pcrs = pcrs
            .into_iter()
            .map(|p| {
                p.as_integer()
                    .and_then(|i| u8::try_from(i).ok())
                    .filter(|i| *i < 24)
                    .ok_or_else(|| "a PCR index is not an integer from 0 to 23".to_owned())
            })
            .collect::<Result<Vec<u8>, String>>()?;
        let bytes_of = |v: Value, what: &str| v.into_bytes().map_err(|_| format!("the {what} is not a byte string"));
        let sealed =
            Self { pcrs, public: bytes_of(public, "public area")?, private: bytes_of(private, "private area")? };
        if sealed.to_cbor() != bytes {
            return Err("not in canonical CBOR".into());
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_roots_round_trip() {
        let sealed = SealedRoot { pcrs: vec![7], public: vec![1, 2], private: vec![3] };
        assert_eq!(SealedRoot::from_cbor(&sealed.to_cbor()), Ok(sealed));
        assert!(SealedRoot::from_cbor(b"junk").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_sealed_files_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(sealed) = SealedRoot::from_cbor(&bytes) {
                proptest::prop_assert_eq!(sealed.to_cbor(), bytes);
            }
        }
    }
}
