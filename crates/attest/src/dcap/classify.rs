//! From dcap-qvl's one error to the check that failed.
//!
//! dcap-qvl verifies a quote in a fixed order and stops at the first failure with an `anyhow`
//! message. Each rule below maps a fragment of such a message (as dcap-qvl 0.7 writes them) to
//! the check it belongs to, a plain explanation, and the step of dcap-qvl's order at which it
//! fails: every check wholly done before that step has passed.
//!
//! dcap-qvl's order: (10) root CA CRL, TCB info and QE identity signatures and windows, QE
//! identity for the quote's TEE; (30) PCK chain; (40) QE report signature, (50) its binding of
//! the attestation key, (60) QE identity policy, (65) QE TCB; (70) quote signature; (80) platform
//! TCB level; (90) revocation of the TCB; (100) TD attributes.

use super::Check;

/// Where a failure was found, and what it means.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Failure {
    /// The failed check.
    pub(super) check: Check,
    /// dcap-qvl's step at which it failed.
    pub(super) step: u8,
    /// A plain explanation, followed by dcap-qvl's own message.
    pub(super) detail: String,
    /// Whether the message is a certificate-chain failure that does not say which chain.
    pub(super) ambiguous_chain: bool,
}

/// The step after which each check is complete.
pub(super) fn done_after(check: Check) -> u8 {
    match check {
        Check::Collateral => 20,
        Check::PckChain => 30,
        Check::QeReport => 60,
        Check::Signature => 70,
        Check::Tcb => 90,
        Check::Attributes => 100,
        Check::Header | Check::Parse | Check::Debug | Check::Verify => 0,
    }
}

/// Rules, first match wins: a message fragment, the check, the step, an explanation.
const RULES: &[(&str, Check, u8, &str)] = &[
    // The header (also checked before dcap-qvl runs).
    ("Failed to decode quote", Check::Header, 5, "the quote does not decode"),
    ("Unsupported DCAP quote version", Check::Header, 5, "the quote version is not supported"),
    ("Unknown QE vendor ID", Check::Header, 5, "the quoting enclave is not Intel's"),
    ("Unsupported TEE type", Check::Header, 5, "the TEE type is not SGX or TDX"),
    ("quote must have version", Check::Header, 5, "the quote version does not suit its TEE type"),
    ("attestation key type", Check::Header, 5, "the attestation key is not ECDSA P-256"),
    // The QE report, before anything mentioning the QE identity.
    ("QE report validation failed", Check::QeReport, 60, "the quoting enclave runs in debug mode"),
    (
        "QE MRSIGNER",
        Check::QeReport,
        60,
        "the quoting enclave is not signed by Intel (its MRSIGNER is not the QE identity's)",
    ),
    ("QE ISVPRODID", Check::QeReport, 60, "the quoting enclave's product ID is not the QE identity's"),
    ("QE MISCSELECT", Check::QeReport, 60, "the quoting enclave's MISCSELECT is not the QE identity's"),
    ("QE ATTRIBUTES", Check::QeReport, 60, "the quoting enclave's attributes are not the QE identity's"),
    (
        "qe_report in quote",
        Check::QeReport,
        40,
        "the QE report's signature does not verify under the PCK certificate's key",
    ),
    (
        "QE report hash mismatch",
        Check::QeReport,
        50,
        "the QE report does not bind the attestation key (its report data is not the hash of the key and QE authentication data)",
    ),
    ("QE auth data", Check::QeReport, 50, "the QE authentication data has the wrong length"),
    ("Failed to decode QE report", Check::QeReport, 40, "the QE report does not decode"),
    ("QE ISVSVN", Check::Tcb, 65, "the quoting enclave's SVN is below every TCB level of the QE identity"),
    ("No TCB levels found in QE Identity", Check::Collateral, 65, "the QE identity lists no TCB level"),
    (
        "Unrecognized TCB status",
        Check::Collateral,
        80,
        "the collateral names a TCB status Intel's verifier does not accept there",
    ),
    ("component count mismatch", Check::Collateral, 80, "a TCB level of tcbInfo has the wrong number of components"),
    // The collateral's own fields and signatures.
    ("Failed to verify certificate chain", Check::PckChain, 30, "a certificate chain does not verify"),
    ("Failed to load root ca", Check::PckChain, 10, "the trusted root certificate does not load"),
    (
        "Failed to parse root CA CRL",
        Check::Collateral,
        10,
        "the root CA CRL is malformed or not signed by the trusted Intel root",
    ),
    ("Failed to parse PCK CRL", Check::Collateral, 10, "the PCK CRL is malformed"),
    ("InvalidCrlSignature", Check::Collateral, 10, "a CRL is not signed by its issuer"),
    ("CrlExpired", Check::Collateral, 10, "a CRL is out of date"),
    ("TDX TCB Info is missing", Check::Collateral, 80, "the TDX tcbInfo has no tdxModule"),
    ("tdxModule", Check::Collateral, 80, "the tcbInfo's tdxModule entry is malformed"),
    (
        "Unsupported QE Identity id/version",
        Check::Collateral,
        10,
        "the QE identity is for another TEE type: collateral of another quote",
    ),
    ("Fmspc mismatch", Check::Collateral, 80, "tcbInfo is for another platform (FMSPC): collateral of another quote"),
    ("TCB FMSPC", Check::Collateral, 80, "tcbInfo's FMSPC is malformed"),
    (
        "TCB info in the collateral",
        Check::Collateral,
        80,
        "tcbInfo is for another TEE type: collateral of another quote",
    ),
    ("TCBInfo expired", Check::Collateral, 10, "tcbInfo is out of date"),
    ("TCBInfo issue date", Check::Collateral, 10, "tcbInfo was issued after the verification time"),
    ("QE Identity expired", Check::Collateral, 10, "the QE identity is out of date"),
    ("QE Identity issue date", Check::Collateral, 10, "the QE identity was issued after the verification time"),
    ("TcbInfo", Check::Collateral, 10, "tcbInfo is malformed"),
    ("TCB Info", Check::Collateral, 10, "tcbInfo's signing certificate or chain is not valid"),
    ("tcb_info", Check::Collateral, 10, "tcbInfo's signature does not verify: it was altered or not signed by Intel"),
    ("QeIdentity", Check::Collateral, 10, "the QE identity is malformed"),
    ("QE Identity", Check::Collateral, 10, "the QE identity's signing certificate or chain is not valid"),
    (
        "qe_identity",
        Check::Collateral,
        10,
        "the QE identity's signature does not verify: it was altered or not signed by Intel",
    ),
    // The quote's signature.
    (
        "ISV enclave report signature",
        Check::Signature,
        70,
        "the attestation key's signature over the quote header and report body does not verify: the quote was altered or forged",
    ),
    ("signed quote scope", Check::Signature, 70, "the quote is too short for its signed part"),
    // The platform's TCB.
    (
        "No matching TCB level",
        Check::Tcb,
        80,
        "no TCB level of tcbInfo matches the platform: its TCB is below every level Intel lists",
    ),
    ("TDX module ISVSVN", Check::Tcb, 80, "the TDX module's SVN is below every TCB level of its identity"),
    ("TDX module TCB level", Check::Tcb, 80, "the TDX module's TCB level is not appraisable"),
    ("TEE_TCB_SVN2", Check::Tcb, 80, "the TD's current TCB (after a TD-preserving update) matches no TCB level"),
    ("TDX module MRSIGNER", Check::Tcb, 80, "the TDX module is not signed by Intel's TDX module signer"),
    ("SEAMATTRIBUTES", Check::Tcb, 80, "the TDX module's SEAM attributes are not the expected ones"),
    ("TDX module identity", Check::Tcb, 80, "the TDX module does not match its identity in tcbInfo"),
    ("TCB status is invalid", Check::Tcb, 90, "the platform's TCB is revoked"),
    // The report's attributes.
    ("Debug mode is enabled", Check::Attributes, 100, "the enclave or TD runs in debug mode"),
    ("TD profiling", Check::Attributes, 100, "TD profiling is enabled"),
    ("Reserved bits in TD attributes", Check::Attributes, 100, "reserved TD attribute bits are set"),
    ("TD migration", Check::Attributes, 100, "the TD is migratable"),
    ("SERVTD_EXT", Check::Attributes, 100, "the TD is bound to service TDs (SERVTD_EXT)"),
    ("SEPT_VE_DISABLE", Check::Attributes, 100, "SEPT_VE_DISABLE is not set: the host can inject #VE on pending pages"),
    ("MR service TD", Check::Attributes, 100, "the TD is bound to a service TD"),
    ("TD attributes", Check::Attributes, 100, "the TD attributes are malformed"),
    // The PCK certificate, after the PCK CRL rules above.
    (
        "Unsupported DCAP PCK cert format",
        Check::PckChain,
        30,
        "the quote carries no PCK certificate chain (certification data type 5) and the collateral has none",
    ),
    ("PCK", Check::PckChain, 30, "the PCK certificate chain is malformed"),
    ("Certificate chain is too short in quote", Check::PckChain, 30, "the PCK certificate chain is empty"),
    ("Intel extension", Check::PckChain, 30, "the PCK certificate has no Intel SGX extension"),
    ("Fmspc", Check::PckChain, 30, "the PCK certificate's FMSPC is malformed"),
    ("CpuSvn", Check::PckChain, 30, "the PCK certificate's CPUSVN is malformed"),
    ("PceSvn", Check::PckChain, 30, "the PCK certificate's PCESVN is malformed"),
    ("Failed to parse certs", Check::Collateral, 10, "an issuer chain of the collateral is not PEM"),
];

/// webpki's errors, which dcap-qvl passes on bare when it checks the root against its CRL.
const WEBPKI_CHAIN_ERRORS: &[&str] = &[
    "BadSignature",
    "CertExpired",
    "CertNotValidYet",
    "CertRevoked",
    "UnknownIssuer",
    "UnknownRevocationStatus",
    "InvalidSignatureForPublicKey",
    "UnsupportedSignatureAlgorithm",
];

/// Maps dcap-qvl's error message (all its contexts, `{:#}`) to the failed check.
pub(super) fn classify(message: &str) -> Failure {
    for (needle, check, step, explanation) in RULES {
        if message.contains(needle) {
            return Failure {
                check: *check,
                step: *step,
                detail: format!("{explanation} (dcap-qvl: {message})"),
                ambiguous_chain: *needle == "Failed to verify certificate chain",
            };
        }
    }
    if WEBPKI_CHAIN_ERRORS.iter().any(|e| message.starts_with(e)) {
        return Failure {
            check: Check::PckChain,
            step: 10,
            detail: format!("the trusted root fails its own CRL check (dcap-qvl: {message})"),
            ambiguous_chain: false,
        };
    }
    Failure {
        check: Check::Verify,
        step: 0,
        detail: format!("quote verification failed (dcap-qvl: {message})"),
        ambiguous_chain: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages dcap-qvl 0.7 produces, and where each must land.
    #[test]
    fn messages_map_to_the_check_that_failed() {
        let cases = [
            ("ISV enclave report signature is invalid", Check::Signature),
            ("No matching TCB level found", Check::Tcb),
            ("Failed to evaluate the current TDX TCB (TEE_TCB_SVN2): No matching TCB level found", Check::Tcb),
            ("TCB status is invalid: Revoked", Check::Tcb),
            ("QE ISVSVN 4 is below minimum required 5 from QE Identity", Check::Tcb),
            ("QE report validation failed: Debug mode is enabled", Check::QeReport),
            ("Signature is invalid for qe_report in quote", Check::QeReport),
            ("QE report hash mismatch", Check::QeReport),
            ("Unsupported QE Identity id/version for the quote TEE type: TD_QE version 2", Check::Collateral),
            ("Signature is invalid for tcb_info in quote_collateral", Check::Collateral),
            ("Signature is invalid for qe_identity in quote_collateral", Check::Collateral),
            ("Failed to decode TcbInfo: missing field `id`", Check::Collateral),
            ("TCBInfo expired", Check::Collateral),
            ("Fmspc mismatch", Check::Collateral),
            ("Failed to parse PCK CRL: BadDer", Check::Collateral),
            ("Failed to parse root CA CRL: InvalidCrlSignatureForPublicKey", Check::Collateral),
            ("Unrecognized TCB status Foo in TCB Info", Check::Collateral),
            ("Failed to extract PCK certificates from quote: Failed to parse certs: x", Check::PckChain),
            ("Unsupported DCAP PCK cert format: 3. Use get_collateral()", Check::PckChain),
            ("Failed to parse PCK certificate: BadDer", Check::PckChain),
            ("Failed to verify certificate chain: BadSignature", Check::PckChain),
            ("CertRevoked", Check::PckChain),
            ("TDX module identity check: TDX module MRSIGNER mismatch: expected A, got B", Check::Tcb),
            ("TDX module identity check: Failed to decode tdxModule.mrsigner as hex: x", Check::Collateral),
            ("SEPT_VE_DISABLE is not enabled", Check::Attributes),
            ("SGX component count mismatch: expected 16, got 15", Check::Collateral),
            ("TD migration is enabled", Check::Attributes),
            ("something new", Check::Verify),
        ];
        for (message, check) in cases {
            let failure = classify(message);
            assert_eq!(failure.check, check, "{message}");
            assert!(failure.detail.contains(message));
        }
        assert!(classify("Failed to verify certificate chain: CertExpired").ambiguous_chain);
    }

    #[test]
    fn steps_order_the_checks_that_passed_before_a_failure() {
        let qe_svn = classify("QE ISVSVN 4 is below minimum required 5 from QE Identity");
        assert!(qe_svn.step > done_after(Check::QeReport));
        assert!(qe_svn.step < done_after(Check::Signature));
        let sig = classify("ISV enclave report signature is invalid");
        assert!(sig.step > done_after(Check::PckChain) && sig.step <= done_after(Check::Signature));
    }
}
