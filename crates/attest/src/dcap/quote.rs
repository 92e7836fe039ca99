//! Reading a quote: its kind, header, measurements and report data, before anything is verified.
//!
//! This runs first and on its own, so that a quote whose collateral is missing or wrong still
//! shows what it claims, and so that a rejected header gets a precise reason.

use dcap_qvl::INTEL_QE_VENDOR_ID;
use dcap_qvl::quote::{Quote, Report};
use lamina_types::PlatformKind;

use crate::Appraisal;

/// The largest quote accepted. Real quotes are about 5 KiB (the PCK chain is most of it).
pub(super) const MAX_QUOTE_LEN: usize = 64 * 1024;

const TEE_TYPE_SGX: u32 = 0x0000_0000;
const TEE_TYPE_TDX: u32 = 0x0000_0081;
const ATTESTATION_KEY_ECDSA_P256: u16 = 2;
const CERT_TYPE_PCK_CHAIN: u16 = 5;

/// The `DEBUG` bit of the first byte of an SGX enclave's attributes.
const SGX_DEBUG_ATTRIBUTE: u8 = 0x02;

/// Parses a quote, bounding its length first.
pub(super) fn parse(bytes: &[u8]) -> Result<Quote, String> {
    if bytes.len() > MAX_QUOTE_LEN {
        return Err(format!("the quote is {} bytes, more than the {MAX_QUOTE_LEN} a DCAP quote can be", bytes.len()));
    }
    Quote::parse(bytes).map_err(|e| format!("not a DCAP quote ({} bytes): {e:#}", bytes.len()))
}

/// The platform a parsed quote comes from.
pub(super) fn platform(quote: &Quote) -> PlatformKind {
    if quote.report.is_sgx() { PlatformKind::Sgx } else { PlatformKind::Tdx }
}

/// A short description, e.g. `SGX quote v3 (enclave report)`.
pub(super) fn describe(quote: &Quote) -> String {
    let body = match &quote.report {
        Report::SgxEnclave(_) => "enclave report",
        Report::TD10(_) => "TD 1.0 report",
        Report::TD15(_) => "TD 1.5 report",
        Report::TD15Ex(_) => "TD 1.5ex report",
    };
    let tee = if quote.report.is_sgx() { "SGX" } else { "TDX" };
    format!("{tee} quote v{} ({body})", quote.header.version)
}

/// The 64 bytes of report data the quote's report binds.
pub(super) fn report_data(quote: &Quote) -> [u8; 64] {
    match &quote.report {
        Report::SgxEnclave(r) => r.report_data,
        Report::TD10(r) => r.report_data,
        Report::TD15(r) => r.base.report_data,
        Report::TD15Ex(r) => r.base.base.report_data,
    }
}

/// Whether the enclave or TD runs in a debug mode: SGX `DEBUG` attribute, or any TDX
/// TD-under-debug bit (debug or profiling).
pub(super) fn debug(quote: &Quote) -> bool {
    match &quote.report {
        Report::SgxEnclave(r) => r.attributes[0] & SGX_DEBUG_ATTRIBUTE != 0,
        Report::TD10(_) | Report::TD15(_) | Report::TD15Ex(_) => {
            quote.report.as_td10().is_some_and(|td| td.td_attributes[0] != 0)
        }
    }
}

/// Fills the platform, the measurements (names fixed by [`Appraisal`]) and the report data.
pub(super) fn measure(quote: &Quote, a: &mut Appraisal) {
    a.platform = Some(platform(quote));
    a.report_data = report_data(quote).to_vec();
    let debug = debug(quote).to_string();
    if let Some(r) = quote.report.as_sgx() {
        a.measure("mr_enclave", hex::encode(r.mr_enclave));
        a.measure("mr_signer", hex::encode(r.mr_signer));
        a.measure("isv_prod_id", r.isv_prod_id.to_string());
        a.measure("isv_svn", r.isv_svn.to_string());
    } else if let Some(td) = quote.report.as_td10() {
        a.measure("mr_td", hex::encode(td.mr_td));
        for (i, rtmr) in [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3].iter().enumerate() {
            a.measure(format!("rtmr{i}"), hex::encode(rtmr));
        }
        a.measure("mr_config_id", hex::encode(td.mr_config_id));
        a.measure("mr_owner", hex::encode(td.mr_owner));
        a.measure("mr_seam", hex::encode(td.mr_seam));
    }
    a.measure("debug", debug);
}

/// Checks what the header must say for the quote to be verifiable at all.
pub(super) fn check_header(quote: &Quote) -> Result<String, String> {
    let h = &quote.header;
    match (h.tee_type, h.version) {
        (TEE_TYPE_SGX, 3) | (TEE_TYPE_TDX, 4 | 5) => {}
        (TEE_TYPE_SGX, v) => return Err(format!("SGX quote version {v}: only version 3 SGX quotes are verified")),
        (TEE_TYPE_TDX, v) => return Err(format!("TDX quote version {v}: only versions 4 and 5 are verified")),
        (t, _) => return Err(format!("unknown TEE type {t:#x} (expected SGX 0x0 or TDX 0x81)")),
    }
    if h.qe_vendor_id != INTEL_QE_VENDOR_ID {
        return Err(format!(
            "quoting enclave vendor {} is not Intel's ({})",
            hex::encode(h.qe_vendor_id),
            hex::encode(INTEL_QE_VENDOR_ID)
        ));
    }
    if h.attestation_key_type != ATTESTATION_KEY_ECDSA_P256 {
        return Err(format!(
            "attestation key type {} is not ECDSA P-256 ({ATTESTATION_KEY_ECDSA_P256})",
            h.attestation_key_type
        ));
    }
    Ok(format!("{}, Intel quoting enclave, ECDSA P-256 attestation key", describe(quote)))
}

/// The TEE TCB SVN of a TD report (the TDX module's and SEAM loader's SVNs).
pub(super) fn tee_tcb_svn(quote: &Quote) -> Option<[u8; 16]> {
    quote.report.as_td10().map(|td| td.tee_tcb_svn)
}

/// The PEM PCK certificate chain the quote carries, if it carries one (certification data type 5).
pub(super) fn pck_chain_pem(quote: &Quote) -> Option<&[u8]> {
    (quote.inner_cert_type() == CERT_TYPE_PCK_CHAIN).then(|| quote.inner_cert_data())
}

/// The report data of a quote, without verifying anything.
pub(super) fn quote_report_data(bytes: &[u8]) -> Option<[u8; 64]> {
    parse(bytes).ok().map(|q| report_data(&q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_oversized_and_empty_input() {
        assert!(parse(&vec![0; MAX_QUOTE_LEN + 1]).expect_err("too long").contains("more than"));
        assert!(parse(&[]).expect_err("empty").contains("not a DCAP quote"));
        assert_eq!(quote_report_data(&[3, 0, 2, 0]), None);
    }
}
