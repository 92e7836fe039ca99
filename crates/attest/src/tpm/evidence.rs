//! Lamina's TPM evidence format (defined in `lamina-types`, shared with `lamina-tee-tpm`).

pub use lamina_types::tpm_evidence::{EVIDENCE_FORMAT, MAX_EVIDENCE_LEN, TpmEvidence};
