//! Certificate chains, read with x509-parser: to find which chain failed and why.
//!
//! dcap-qvl verifies every chain itself (the PCK chain, the chains that sign the TCB info and
//! the QE identity) and reports a failure of any of them with the same message. When that
//! happens, the verifier walks each chain here to say which certificate is wrong and how. None
//! of this decides a verdict: the evidence is already rejected when it runs.

use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::time::fmt_secs;

/// The most certificates read from one chain (Intel's have three).
const MAX_CHAIN_LEN: usize = 8;

/// The DER certificates of a PEM chain, leaf first.
pub(super) fn pem_certs(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem).take(MAX_CHAIN_LEN) {
        let block = block.map_err(|e| format!("PEM block {} does not decode: {e}", out.len() + 1))?;
        out.push(block.contents);
    }
    if out.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(out)
}

/// The first problem found in a chain (leaf first) at time `at`, or `None` when every
/// certificate parses, is in its validity period, is signed by its issuer and is not revoked
/// by a CRL of its issuer.
///
/// A self-signed certificate at the end of the chain is the sender's copy of the root: like
/// dcap-qvl, the walk does not trust it and stops below it. The top certificate's issuer is
/// `root` when given; else (the root built into dcap-qvl) the copy stands in for it, which
/// only serves to name the likely culprit.
pub(super) fn diagnose(label: &str, certs: &[Vec<u8>], root: Option<&[u8]>, crls: &[&[u8]], at: i64) -> Option<String> {
    let mut parsed = Vec::with_capacity(certs.len());
    for (i, der) in certs.iter().enumerate() {
        match X509Certificate::from_der(der) {
            Ok((_, cert)) => parsed.push(cert),
            Err(e) => return Some(format!("certificate {} of the {label} does not parse: {e}", i + 1)),
        }
    }
    let root = match root.map(X509Certificate::from_der) {
        None => None,
        Some(Ok((_, cert))) => Some(cert),
        Some(Err(e)) => return Some(format!("the trusted root does not parse: {e}")),
    };
    let copy = match parsed.last() {
        Some(last) if parsed.len() > 1 && last.subject() == last.issuer() => parsed.pop(),
        _ => None,
    };
    let top_issuer = root.as_ref().or(copy.as_ref());
    let crls: Vec<CertificateRevocationList<'_>> =
        crls.iter().filter_map(|der| CertificateRevocationList::from_der(der).ok().map(|(_, crl)| crl)).collect();

    if let Some(leaf) = parsed.first()
        && leaf.is_ca()
    {
        return Some(format!("the {label} starts with the CA {}, not with a signing certificate", leaf.subject()));
    }
    for (i, cert) in parsed.iter().enumerate() {
        let name = format!("{} ({})", cert.subject(), position(i, parsed.len()));
        let validity = cert.validity();
        let (from, until) = (validity.not_before.timestamp(), validity.not_after.timestamp());
        if at < from {
            return Some(format!("{name} of the {label} is not valid before {} (at {})", fmt_secs(from), fmt_secs(at)));
        }
        if at > until {
            return Some(format!("{name} of the {label} expired at {} (at {})", fmt_secs(until), fmt_secs(at)));
        }
        let issuer = match parsed.get(i + 1) {
            Some(next) => Some(next),
            None if cert.subject() == cert.issuer() => Some(cert),
            None => top_issuer,
        };
        if let Some(issuer) = issuer {
            if cert.issuer() != issuer.subject() {
                return Some(format!(
                    "{name} of the {label} is issued by {}, not by {}",
                    cert.issuer(),
                    issuer.subject()
                ));
            }
            if cert.verify_signature(Some(issuer.public_key())).is_err() {
                return Some(format!(
                    "the signature on {name} of the {label} does not verify under the key of {}",
                    issuer.subject()
                ));
            }
        }
        for crl in crls.iter().filter(|crl| crl.issuer() == cert.issuer()) {
            if crl.iter_revoked_certificates().any(|r| r.raw_serial() == cert.raw_serial()) {
                return Some(format!(
                    "{name} of the {label} (serial {}) is revoked by the CRL of {}",
                    cert.raw_serial_as_string(),
                    crl.issuer()
                ));
            }
        }
    }
    None
}

fn position(i: usize, len: usize) -> &'static str {
    match (i, len.saturating_sub(i)) {
        (0, _) => "leaf",
        (_, 1) => "top",
        _ => "intermediate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_certs_rejects_text_without_certificates() {
        assert!(pem_certs(b"").is_err());
        assert!(pem_certs(b"hello\nworld\n").is_err());
        assert!(pem_certs(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").is_err());
        assert!(pem_certs(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
    }

    #[test]
    fn diagnose_names_unparsable_certificates() {
        let found = diagnose("PCK chain", &[vec![0x30, 0x03, 0x02, 0x01, 0x01]], None, &[], 0);
        assert!(found.is_some_and(|d| d.contains("certificate 1 of the PCK chain does not parse")));
    }
}
