//! TPM quotes come from nodes: every parser of the TPM verifier must reject, never panic, on
//! arbitrary bytes taken as Lamina TPM evidence, TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC, a
//! tpm2-tools PCR file, or an EK public area to make a credential for; and whatever evidence
//! decoding accepts must re-encode to the same bytes.
#![no_main]

use std::time::SystemTime;

use lamina_attest::tpm::{self, evidence::TpmEvidence, wire};
use lamina_attest::{Inputs, TrustAnchors};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(evidence) = TpmEvidence::from_cbor(data) {
        assert_eq!(evidence.to_cbor(), data, "accepted TPM evidence is canonical");
    }
    let _ = wire::Attest::parse(data);
    let _ = wire::Signature::parse(data);
    let _ = wire::Public::parse(data);
    let _ = wire::name_of(data);
    let _ = tpm::pcrs::parse(data);
    let anchors = TrustAnchors::default();
    let inputs = Inputs { evidence: data, endorsements: &[], collateral: None, anchors: &anchors, at: SystemTime::UNIX_EPOCH };
    let _ = tpm::verify(&inputs);
    let mut rng = rand_core::OsRng;
    let _ = tpm::credential::make_credential(data, &[0, 0x0b], &[1; 32], &mut rng);
});
