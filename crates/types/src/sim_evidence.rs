//! The `sim` platform's evidence format (produced by `lamina-tee`, appraised by `lamina-attest`).
//!
//! Canonical CBOR `["lamina-sim-evidence-v1", report_data, device_key, endorsement, signature]`:
//! the sim CA's ECDSA P-256 DER signature over [`DEVICE_TAG`] and the device key (SEC1,
//! uncompressed), and the device key's signature over [`EVIDENCE_TAG`] and the report data.

use crate::cbor::{self, Value};

/// First item of sim evidence.
pub const EVIDENCE_FORMAT: &str = "lamina-sim-evidence-v1";
/// Tag the device key signs in front of the report data.
pub const EVIDENCE_TAG: &[u8] = b"lamina-sim-evidence-v1\0";
/// Tag the CA signs in front of the device key.
pub const DEVICE_TAG: &[u8] = b"lamina-sim-device-v1\0";

/// Sim evidence, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimEvidence {
    /// The report data the device key signed.
    pub report_data: [u8; 64],
    /// The device's public key (SEC1, uncompressed).
    pub device_key: Vec<u8>,
    /// The CA's DER signature over [`DEVICE_TAG`] and the device key.
    pub endorsement: Vec<u8>,
    /// The device's DER signature over [`EVIDENCE_TAG`] and the report data.
    pub signature: Vec<u8>,
}

impl SimEvidence {
    /// Encodes the evidence in canonical CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        let value = Value::Array(vec![
            Value::Text(EVIDENCE_FORMAT.into()),
            Value::Bytes(self.report_data.to_vec()),
            Value::Bytes(self.device_key.clone()),
            Value::Bytes(self.endorsement.clone()),
            Value::Bytes(self.signature.clone()),
        ]);
        cbor::encode(&value)
    }

    /// Decodes sim evidence; the signatures are *not* checked here (that is the verifier's job).
    ///
    /// # Errors
    /// A message saying what is malformed.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, String> {
        let value = cbor::decode_one(bytes, 4096).map_err(|e| format!("sim evidence: {e}"))?;
        let Value::Array(items) = value else { return Err("not an array".into()) };
        let [format, report_data, device_key, endorsement, signature]: [Value; 5] =
            items.try_into().map_err(|_| "expected 5 items".to_owned())?;
        if format.as_text() != Some(EVIDENCE_FORMAT) {
            return Err(format!("not {EVIDENCE_FORMAT}"));
        }
        let bytes_of = |v: Value, what: &str| v.into_bytes().map_err(|_| format!("the {what} is not a byte string"));
        let report_data: [u8; 64] = bytes_of(report_data, "report data")?
            .try_into()
            .map_err(|_| "the report data is not 64 bytes".to_owned())?;
        let evidence = SimEvidence {
            report_data,
            device_key: bytes_of(device_key, "device key")?,
            endorsement: bytes_of(endorsement, "endorsement")?,
            signature: bytes_of(signature, "signature")?,
        };
        if evidence.to_cbor() != bytes {
            return Err("not in canonical CBOR".into());
        }
        Ok(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = SimEvidence::from_cbor(&bytes);
        }

        #[test]
        fn round_trips(rd in proptest::prelude::any::<[u8; 32]>(), key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70)) {
            let mut report_data = [0u8; 64];
            report_data[..32].copy_from_slice(&rd);
            let e = SimEvidence { report_data, device_key: key.clone(), endorsement: key.clone(), signature: key };
            proptest::prop_assert_eq!(SimEvidence::from_cbor(&e.to_cbor()), Ok(e));
        }
    }
}
