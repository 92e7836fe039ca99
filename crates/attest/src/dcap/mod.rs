//! Intel SGX and TDX DCAP quotes, verified offline with dcap-qvl against collateral files.
//!
//! [`verify`] reads the quote itself first (kind, header, measurements, report data), then
//! checks that the collateral is present, well formed, in its validity window at the given time
//! and meant for this quote, and only then hands both to dcap-qvl, which verifies Intel's
//! signatures, the PCK chain and CRLs, the quoting enclave and the quote's signature, and
//! matches the platform's TCB level. dcap-qvl stops at its first failure with one message;
//! a table maps that message to the check it belongs to, and when it is a chain failure
//! that does not say which chain, the chains are walked to find the certificate at fault.
//!
//! Checks, in order (each stops the ones after it, except `dcap.debug`):
//! - `dcap.quote.parse`: the bytes are a DCAP quote;
//! - `dcap.quote.header`: SGX v3 or TDX v4/v5, Intel's quoting enclave, an ECDSA P-256 key;
//! - `dcap.debug`: the enclave or TD is not in a debug mode (its memory would be open to the host);
//! - `dcap.collateral`: collateral given, well formed, valid at the verification time, for this
//!   quote's TEE, FMSPC and PCK CA, and signed by Intel;
//! - `dcap.pck_chain`: the PCK certificate chains to a trusted Intel root, unrevoked;
//! - `dcap.qe_report`: the quoting enclave's report is signed by the PCK key, binds the
//!   attestation key and matches Intel's QE identity;
//! - `dcap.signature`: the attestation key signs the quote's header and report body;
//! - `dcap.tcb`: a TCB level matches the platform and is not revoked (the status, e.g.
//!   `UpToDate` or `OutOfDate`, is left to the policy);
//! - `dcap.attributes`: TD attributes a TD must have (no migration, SEPT_VE_DISABLE, no
//!   service TD binding);
//! - `dcap.verify`: a dcap-qvl failure this verifier does not recognise.
//!
//! Trust: the Intel SGX Root CA built into dcap-qvl, and [`TrustAnchors::intel_roots`]. dcap-qvl
//! verifies against one root per call; when extra roots are given, the one that signed the
//! collateral's root CA CRL is used.

mod chain;
mod classify;
mod collateral;
mod quote;
mod time;

use dcap_qvl::intel::PckExtension;
use dcap_qvl::quote::Quote;
use dcap_qvl::verify::{QuoteVerifier, VerifiedReport};
use lamina_types::PlatformKind;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use self::classify::{Failure, classify, done_after};
use self::collateral::Collateral;
use crate::{Appraisal, Inputs, TrustAnchors};

/// The checks this verifier records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Parse,
    Header,
    Debug,
    Collateral,
    PckChain,
    QeReport,
    Signature,
    Tcb,
    Attributes,
    Verify,
}

impl Check {
    /// dcap-qvl's checks, in its order.
    const DCAP_QVL: [Check; 6] =
        [Check::Collateral, Check::PckChain, Check::QeReport, Check::Signature, Check::Tcb, Check::Attributes];

    const fn name(self) -> &'static str {
        match self {
            Check::Parse => "dcap.quote.parse",
            Check::Header => "dcap.quote.header",
            Check::Debug => "dcap.debug",
            Check::Collateral => "dcap.collateral",
            Check::PckChain => "dcap.pck_chain",
            Check::QeReport => "dcap.qe_report",
            Check::Signature => "dcap.signature",
            Check::Tcb => "dcap.tcb",
            Check::Attributes => "dcap.attributes",
            Check::Verify => "dcap.verify",
        }
    }
}

/// Verifies an SGX (v3) or TDX (v4, v5) quote in `inputs.evidence` against the PCCS JSON
/// collateral in `inputs.collateral`, at `inputs.at`, offline.
///
/// Fills the platform, measurements and report data whenever the quote parses, even if the
/// collateral is missing; the TCB status and advisories when the quote verifies.
pub fn verify(inputs: &Inputs<'_>) -> Appraisal {
    let mut a = Appraisal::default();
    let quote = match quote::parse(inputs.evidence) {
        Ok(quote) => quote,
        Err(e) => {
            a.fail(Check::Parse.name(), e);
            return a;
        }
    };
    quote::measure(&quote, &mut a);
    a.pass(Check::Parse.name(), format!("{}, {} bytes", quote::describe(&quote), inputs.evidence.len()));
    if !a.check(Check::Header.name(), quote::check_header(&quote)) {
        return a;
    }
    a.check(Check::Debug.name(), check_debug(&quote));

    let Some(raw) = inputs.collateral else {
        a.fail(
            Check::Collateral.name(),
            "missing: a DCAP quote is verified against Intel's collateral (TCB info, QE identity, CRLs); \
             pass --collateral FILE with the quote's PCCS collateral JSON",
        );
        return a;
    };
    let collateral = match Collateral::parse(raw) {
        Ok(c) => c,
        Err(e) => {
            a.fail(Check::Collateral.name(), format!("malformed: {e}"));
            return a;
        }
    };
    let at = time::unix_secs(inputs.at);
    let at_signed = i64::try_from(at).unwrap_or(i64::MAX);
    let window = match collateral.check_window(at_signed) {
        Ok(window) => window,
        Err(e) => {
            a.fail(Check::Collateral.name(), e);
            return a;
        }
    };
    let pck_pem = collateral.inner.pck_certificate_chain.as_deref().map(str::as_bytes).or(quote::pck_chain_pem(&quote));
    let pck_certs = pck_pem.map(chain::pem_certs);
    let pck_leaf = pck_certs.as_ref().and_then(|c| c.as_ref().ok()).and_then(|c| c.first());
    let pck_ext = pck_leaf.and_then(|leaf| dcap_qvl::intel::parse_pck_extension(leaf).ok());
    let pck = pck_ext.as_ref().zip(pck_leaf.map(Vec::as_slice));
    let collateral_detail = match collateral.check_matches(&quote, pck) {
        Ok(matches) => format!("{matches}, {window}"),
        Err(e) => {
            a.fail(Check::Collateral.name(), e);
            return a;
        }
    };
    let platform_tcb = platform_tcb(&quote, pck_ext.as_ref());

    let root = select_root(inputs.anchors, &collateral.inner.root_ca_crl);
    let verifier = match &root {
        Root::BuiltIn => QuoteVerifier::new_prod(),
        Root::Anchor { der, .. } => QuoteVerifier::new(der.to_vec()),
    }
    // Debug enclaves and TDs are rejected by `dcap.debug` above, with their evidence verified.
    .allow_debug(true);
    match verifier.verify(inputs.evidence, &collateral.inner, at) {
        Ok(report) => record_verified(&mut a, &quote, &report, &root, &collateral_detail, &platform_tcb),
        Err(e) => {
            let mut failure = classify(&format!("{e:#}"));
            if failure.ambiguous_chain {
                failure = locate_chain_failure(failure, &collateral, pck_certs.as_ref(), &root, at_signed);
            }
            if failure.check == Check::Tcb {
                failure.detail = format!("{}; {platform_tcb}", failure.detail);
            }
            record_failure(&mut a, failure, &collateral_detail);
        }
    }
    a
}

/// The report data a quote binds, read without verifying anything (attested TLS uses it to
/// check that an RA-TLS certificate's key is the one the quote names).
pub fn quote_report_data(quote: &[u8]) -> Option<[u8; 64]> {
    quote::quote_report_data(quote)
}

/// The platform's TCB as the PCK certificate and the TD report state it, for details.
fn platform_tcb(q: &Quote, pck: Option<&PckExtension>) -> String {
    let mut out = match pck {
        Some(pck) => format!(
            "platform FMSPC {}, CPUSVN {}, PCESVN {}",
            hex::encode_upper(pck.fmspc),
            hex::encode(pck.cpu_svn),
            pck.pce_svn
        ),
        None => "platform TCB unknown (no readable PCK certificate)".to_owned(),
    };
    if let Some(svn) = quote::tee_tcb_svn(q) {
        out.push_str(&format!(", TEE TCB SVN {}", hex::encode(svn)));
    }
    out.push_str(&format!(", quoting enclave SVN {}", q.header.qe_svn));
    out
}

fn check_debug(q: &Quote) -> Result<String, String> {
    let what = if q.report.is_sgx() { "enclave" } else { "TD" };
    if quote::debug(q) {
        Err(format!("the {what} runs in a debug mode: the host can read and change its memory"))
    } else {
        Ok(format!("production {what} (not in a debug mode)"))
    }
}

/// The root dcap-qvl verifies against.
enum Root<'a> {
    /// The Intel SGX Root CA built into dcap-qvl.
    BuiltIn,
    /// A root from [`TrustAnchors::intel_roots`].
    Anchor { der: &'a [u8], subject: String },
}

impl Root<'_> {
    fn describe(&self) -> String {
        match self {
            Root::BuiltIn => "the Intel SGX Root CA built into dcap-qvl".into(),
            Root::Anchor { subject, .. } => format!("the trusted root {subject} (from the Intel trust anchors)"),
        }
    }

    fn der(&self) -> Option<&[u8]> {
        match self {
            Root::BuiltIn => None,
            Root::Anchor { der, .. } => Some(der),
        }
    }
}

/// The first extra root that signed the collateral's root CA CRL, else the built-in one.
fn select_root<'a>(anchors: &'a TrustAnchors, root_ca_crl: &[u8]) -> Root<'a> {
    if anchors.intel_roots.is_empty() {
        return Root::BuiltIn;
    }
    let Ok((_, crl)) = CertificateRevocationList::from_der(root_ca_crl) else {
        return Root::BuiltIn;
    };
    anchors
        .intel_roots
        .iter()
        .find_map(|der| {
            let (_, cert) = X509Certificate::from_der(der).ok()?;
            (cert.subject() == crl.issuer() && crl.verify_signature(cert.public_key()).is_ok())
                .then(|| Root::Anchor { der, subject: cert.subject().to_string() })
        })
        .unwrap_or(Root::BuiltIn)
}

/// Says which chain failed when dcap-qvl did not: the PCK chain, or one that signs collateral.
fn locate_chain_failure(
    failure: Failure,
    collateral: &Collateral,
    pck_certs: Option<&Result<Vec<Vec<u8>>, String>>,
    root: &Root<'_>,
    at: i64,
) -> Failure {
    let c = &collateral.inner;
    let crls = [c.root_ca_crl.as_slice(), c.pck_crl.as_slice()];
    // dcap-qvl verifies the chains that sign the collateral first, then the PCK chain.
    for (label, pem) in [
        ("tcbInfo signing chain", &c.tcb_info_issuer_chain),
        ("QE identity signing chain", &c.qe_identity_issuer_chain),
    ] {
        let found = match chain::pem_certs(pem.as_bytes()) {
            Ok(certs) => chain::diagnose(label, &certs, root.der(), &crls, at),
            Err(e) => Some(format!("the {label} does not decode: {e}")),
        };
        if let Some(found) = found {
            return Failure {
                check: Check::Collateral,
                step: 10,
                detail: format!("{found} ({})", failure.detail),
                ..failure
            };
        }
    }
    let pck = match pck_certs {
        Some(Ok(certs)) => chain::diagnose("PCK chain", certs, root.der(), &crls, at),
        Some(Err(e)) => Some(format!("the PCK chain does not decode: {e}")),
        None => None,
    };
    if let Some(found) = pck {
        return Failure {
            check: Check::PckChain,
            step: 30,
            detail: format!("{found} ({})", failure.detail),
            ..failure
        };
    }
    failure
}

fn record_failure(a: &mut Appraisal, failure: Failure, collateral: &str) {
    for check in Check::DCAP_QVL {
        if check != failure.check && done_after(check) < failure.step {
            let detail = match check {
                Check::Collateral => format!("{collateral}; signed by Intel"),
                _ => "verified (dcap-qvl stopped at a later check)".to_owned(),
            };
            a.pass(check.name(), detail);
        }
    }
    if failure.detail.contains("TCB status is invalid: Revoked") {
        a.tcb_status = Some("Revoked".into());
    }
    a.fail(failure.check.name(), failure.detail);
}

fn record_verified(
    a: &mut Appraisal,
    q: &Quote,
    report: &VerifiedReport,
    root: &Root<'_>,
    collateral: &str,
    platform_tcb: &str,
) {
    a.pass(Check::Collateral.name(), format!("{collateral}; tcbInfo, QE identity and CRLs signed by Intel"));
    a.pass(Check::PckChain.name(), format!("the PCK certificate chains to {}, unrevoked", root.describe()));
    a.pass(
        Check::QeReport.name(),
        "the QE report is signed by the PCK key, binds the attestation key and matches Intel's QE identity",
    );
    a.pass(Check::Signature.name(), "the attestation key signs the quote header and report body");
    let advisories = if report.advisory_ids.is_empty() {
        "no advisories".to_owned()
    } else {
        format!("advisories {}", report.advisory_ids.join(", "))
    };
    a.pass(
        Check::Tcb.name(),
        format!(
            "TCB status {} with {advisories} (platform {}, quoting enclave {}); {platform_tcb}",
            report.status, report.platform_status.status, report.qe_status.status
        ),
    );
    a.pass(
        Check::Attributes.name(),
        match quote::platform(q) {
            PlatformKind::Sgx => "enclave attributes accepted",
            _ => "TD attributes accepted: not migratable, SEPT_VE_DISABLE set, no service TD binding",
        },
    );
    a.tcb_status = Some(report.status.clone());
    a.advisories = report.advisory_ids.clone();
}
