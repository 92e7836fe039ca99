//! The collateral: Intel's signed TCB info and QE identity, the root CA and PCK CRLs and their
//! issuer chains, in the PCCS JSON format (hex fields) that dcap-qvl's `QuoteCollateralV3`
//! reads.
//!
//! Before dcap-qvl verifies anything, the verifier checks here, cheaply, that the collateral
//! is in its validity window at the verification time and that it is the collateral of this
//! quote (same TEE type, FMSPC and PCK CA), so that those common failures get a precise reason.
//! Signatures are left to dcap-qvl.

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::intel::PckExtension;
use dcap_qvl::quote::Quote;
use serde::Deserialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::time::{fmt_secs, parse_rfc3339};

/// The largest collateral accepted. Real ones are 15 to 20 KiB; the PCK CRL grows slowly.
pub(super) const MAX_COLLATERAL_LEN: usize = 4 * 1024 * 1024;

/// The few fields of the TCB info and QE identity JSON this module needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dated {
    id: String,
    issue_date: String,
    next_update: String,
    #[serde(default)]
    fmspc: Option<String>,
}

/// When one item of the collateral is valid.
struct Window {
    what: &'static str,
    from: i64,
    until: Option<i64>,
}

impl Window {
    fn describe(&self) -> String {
        match self.until {
            Some(until) => format!("{} {}..{}", self.what, fmt_secs(self.from), fmt_secs(until)),
            None => format!("{} from {}", self.what, fmt_secs(self.from)),
        }
    }
}

/// Parsed collateral, with what the pre-checks need.
pub(super) struct Collateral {
    /// The collateral as dcap-qvl takes it.
    pub(super) inner: QuoteCollateralV3,
    tcb_info_id: String,
    tcb_fmspc: String,
    qe_identity_id: String,
    windows: [Window; 4],
    pck_crl_issuer: String,
}

impl Collateral {
    /// Parses PCCS JSON collateral; the error says what is malformed.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_COLLATERAL_LEN {
            return Err(format!("{} bytes, more than the {MAX_COLLATERAL_LEN} accepted", bytes.len()));
        }
        let inner: QuoteCollateralV3 = serde_json::from_slice(bytes)
            .map_err(|e| format!("not PCCS collateral JSON (QuoteCollateralV3 with hex fields): {e}"))?;
        let tcb: Dated = serde_json::from_str(&inner.tcb_info).map_err(|e| format!("tcbInfo: {e}"))?;
        let qe: Dated = serde_json::from_str(&inner.qe_identity).map_err(|e| format!("qeIdentity: {e}"))?;
        let (root_from, root_until, _) = crl_dates("root CA CRL", &inner.root_ca_crl)?;
        let (pck_from, pck_until, pck_crl_issuer) = crl_dates("PCK CRL", &inner.pck_crl)?;
        let windows = [
            Window {
                what: "tcbInfo",
                from: parse_rfc3339(&tcb.issue_date).map_err(|e| format!("tcbInfo issueDate: {e}"))?,
                until: Some(parse_rfc3339(&tcb.next_update).map_err(|e| format!("tcbInfo nextUpdate: {e}"))?),
            },
            Window {
                what: "QE identity",
                from: parse_rfc3339(&qe.issue_date).map_err(|e| format!("qeIdentity issueDate: {e}"))?,
                until: Some(parse_rfc3339(&qe.next_update).map_err(|e| format!("qeIdentity nextUpdate: {e}"))?),
            },
            Window { what: "PCK CRL", from: pck_from, until: pck_until },
            Window { what: "root CA CRL", from: root_from, until: root_until },
        ];
        Ok(Self {
            tcb_info_id: tcb.id,
            tcb_fmspc: tcb.fmspc.unwrap_or_default(),
            qe_identity_id: qe.id,
            windows,
            pck_crl_issuer,
            inner,
        })
    }

    /// Checks that every dated item is valid at `at` (issued before it, next update after it).
    pub(super) fn check_window(&self, at: i64) -> Result<String, String> {
        let expired: Vec<String> =
            self.windows.iter().filter(|w| w.until.is_some_and(|u| at > u)).map(Window::describe).collect();
        let early: Vec<String> = self.windows.iter().filter(|w| at < w.from).map(Window::describe).collect();
        let from = self.windows.iter().map(|w| w.from).max().unwrap_or(i64::MIN);
        let until = self.windows.iter().filter_map(|w| w.until).min();
        let window = match until {
            Some(until) => format!("{}..{}", fmt_secs(from), fmt_secs(until)),
            None => format!("from {}", fmt_secs(from)),
        };
        let at = fmt_secs(at);
        if !expired.is_empty() {
            return Err(format!(
                "expired: at {at} the collateral is out of date ({}); the collateral as a whole is valid {window}: \
                 fetch fresh collateral from a PCCS, or verify at a time inside that window",
                expired.join("; ")
            ));
        }
        if !early.is_empty() {
            return Err(format!(
                "not yet valid: at {at} the collateral was not yet issued ({}); the collateral as a whole is valid {window}",
                early.join("; ")
            ));
        }
        Ok(format!("valid at {at} (window {window})"))
    }

    /// Checks that the collateral is for this quote: its TEE type, its platform's FMSPC and
    /// the CA that issued its PCK certificate (`pck`, the leaf's Intel extension and DER, when
    /// they could be read).
    pub(super) fn check_matches(&self, quote: &Quote, pck: Option<(&PckExtension, &[u8])>) -> Result<String, String> {
        let sgx = quote.report.is_sgx();
        let (tee, tcb_id, qe_id) = if sgx { ("SGX", "SGX", "QE") } else { ("TDX", "TDX", "TD_QE") };
        let mut wrong = Vec::new();
        if self.tcb_info_id != tcb_id {
            wrong.push(format!("tcbInfo is for {:?}, not {tcb_id}", self.tcb_info_id));
        }
        if self.qe_identity_id != qe_id {
            wrong.push(format!("the QE identity is for {:?}, not {qe_id}", self.qe_identity_id));
        }
        let mut fmspc = None;
        if let Some((ext, leaf)) = pck {
            let quote_fmspc = hex::encode_upper(ext.fmspc);
            if !self.tcb_fmspc.eq_ignore_ascii_case(&quote_fmspc) {
                wrong.push(format!(
                    "tcbInfo is for FMSPC {}, the quote's PCK certificate is for FMSPC {quote_fmspc}",
                    self.tcb_fmspc
                ));
            }
            fmspc = Some(quote_fmspc);
            if let Ok((_, cert)) = X509Certificate::from_der(leaf) {
                let issuer = cert.issuer().to_string();
                if issuer != self.pck_crl_issuer {
                    wrong.push(format!(
                        "the PCK CRL is issued by {}, the quote's PCK certificate by {issuer}",
                        self.pck_crl_issuer
                    ));
                }
            }
        }
        if !wrong.is_empty() {
            return Err(format!("not the collateral of this {tee} quote: {}", wrong.join("; ")));
        }
        Ok(match fmspc {
            Some(fmspc) => format!("for {tee}, FMSPC {fmspc}"),
            None => format!("for {tee}"),
        })
    }
}

/// A CRL's thisUpdate, nextUpdate and issuer.
fn crl_dates(what: &str, der: &[u8]) -> Result<(i64, Option<i64>, String), String> {
    let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| format!("{what} is not a DER CRL: {e}"))?;
    Ok((crl.last_update().timestamp(), crl.next_update().map(|t| t.timestamp()), crl.issuer().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_collateral_says_what_is_wrong() {
        let err = |bytes: &[u8]| Collateral::parse(bytes).err().unwrap_or_default();
        assert!(err(b"").contains("not PCCS collateral JSON"));
        assert!(err(b"{}").contains("not PCCS collateral JSON"));
        assert!(err(&vec![b' '; MAX_COLLATERAL_LEN + 1]).contains("more than"));
    }
}
