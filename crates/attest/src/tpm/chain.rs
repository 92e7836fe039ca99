//! Endorsement-key certificate chains: from the EK certificate, through untrusted
//! intermediates, to one of the operator's TPM roots.
//!
//! EK certificates are odd by design (an empty or placeholder subject, a critical subject
//! alternative name holding the TPM's manufacturer and model), so a general path validator
//! would reject many genuine ones; this one checks what matters: every signature, every validity
//! period at the appraisal time, that every issuer met on the way is a CA, and that the path
//! ends at a trusted certificate.

use std::time::{SystemTime, UNIX_EPOCH};

use x509_parser::prelude::{ASN1Time, FromDer as _, X509Certificate};

/// The longest chain followed.
const MAX_DEPTH: usize = 8;

/// DER of a certificate given as DER or PEM.
pub(crate) fn to_der(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Some(bytes.to_vec());
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(bytes).ok()?;
    (pem.label == "CERTIFICATE").then_some(pem.contents)
}

/// Every certificate (DER or PEM, several PEM blocks allowed) in the inputs, as DER.
pub(crate) fn all_der(inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.first() == Some(&0x30) {
            out.push(input.clone());
            continue;
        }
        for pem in x509_parser::pem::Pem::iter_from_buffer(input).flatten() {
            if pem.label == "CERTIFICATE" {
                out.push(pem.contents);
            }
        }
    }
    out
}

fn time_of(at: SystemTime) -> Result<ASN1Time, String> {
    let secs = at.duration_since(UNIX_EPOCH).map_err(|_| "the appraisal time is before 1970")?.as_secs();
    let secs = i64::try_from(secs).map_err(|_| "the appraisal time is out of range")?;
    ASN1Time::from_timestamp(secs).map_err(|e| format!("the appraisal time: {e}"))
}

fn describe(cert: &X509Certificate<'_>) -> String {
    let subject = cert.subject().to_string();
    if subject.is_empty() { format!("serial {}", cert.raw_serial_as_string()) } else { subject }
}

fn parse_whole(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().filter(|(rest, _)| rest.is_empty()).map(|(_, c)| c)
}

/// Checks that `leaf` chains to one of `roots` through `helpers`, every certificate valid at
/// `at`. Says which root it reached, or what is wrong.
pub(crate) fn verify(leaf: &[u8], helpers: &[Vec<u8>], roots: &[Vec<u8>], at: SystemTime) -> Result<String, String> {
    let now = time_of(at)?;
    let (_, leaf_cert) =
        X509Certificate::from_der(leaf).map_err(|e| format!("the EK certificate does not parse: {e}"))?;
    let roots: Vec<(&[u8], X509Certificate<'_>)> =
        roots.iter().filter_map(|der| parse_whole(der).map(|c| (der.as_slice(), c))).collect();
    let helpers: Vec<X509Certificate<'_>> = helpers.iter().filter_map(|der| parse_whole(der)).collect();
    if roots.is_empty() {
        return Err("no TPM root certificates are configured (anchors.tpm_roots)".into());
    }
    if !leaf_cert.validity().is_valid_at(now) {
        return Err(format!(
            "the EK certificate is not valid at the appraisal time (valid {} to {})",
            leaf_cert.validity().not_before,
            leaf_cert.validity().not_after
        ));
    }
    let mut current = leaf_cert;
    let mut path = vec![describe(&current)];
    for _ in 0..MAX_DEPTH {
        if roots.iter().any(|(der, _)| *der == current.as_ref()) {
            return Ok(format!("chain {} ends at a trusted root", path.join(" <- ")));
        }
        let issued_by = |issuer: &X509Certificate<'_>| {
            issuer.subject() == current.issuer() && current.verify_signature(Some(issuer.public_key())).is_ok()
        };
        if let Some((_, root)) = roots.iter().find(|(_, root)| issued_by(root)) {
            if !root.validity().is_valid_at(now) {
                return Err(format!("the trusted root {} is not valid at the appraisal time", describe(root)));
            }
            path.push(describe(root));
            return Ok(format!("chain {} ends at a trusted root", path.join(" <- ")));
        }
        let Some(issuer) = helpers.iter().find(|h| issued_by(h)) else {
            return Err(format!(
                "no trusted root or supplied intermediate issued {} (issuer {}), or its signature does not verify",
                describe(&current),
                current.issuer()
            ));
        };
        if !issuer.is_ca() {
            return Err(format!("{} is not a CA certificate", describe(issuer)));
        }
        if !issuer.validity().is_valid_at(now) {
            return Err(format!("the intermediate {} is not valid at the appraisal time", describe(issuer)));
        }
        path.push(describe(issuer));
        current = issuer.clone();
    }
    Err(format!("no trusted root within {MAX_DEPTH} certificates"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testvectors/swtpm-local/");

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(format!("{VECTORS}{name}")).expect("test vector")
    }

    fn at() -> SystemTime {
        // 2027-01-01, after the vectors' certificates were issued.
        UNIX_EPOCH + Duration::from_secs(1_798_761_600)
    }

    #[test]
    fn swtpm_ek_chains_through_the_issuer_to_the_root() {
        let ek = vector("ekcert_ecc.der");
        let issuer = to_der(&vector("swtpm-localca-issuercert.pem")).expect("pem");
        let root = to_der(&vector("swtpm-localca-rootca-cert.pem")).expect("pem");
        let ok = verify(&ek, std::slice::from_ref(&issuer), std::slice::from_ref(&root), at()).expect("chains");
        assert!(ok.contains("swtpm-localca-rootca"), "{ok}");
        // Trusting the intermediate directly also works; without it the root alone cannot.
        assert!(verify(&ek, &[], std::slice::from_ref(&issuer), at()).is_ok());
        assert!(verify(&ek, &[], std::slice::from_ref(&root), at()).expect_err("no path").contains("no trusted root"));
        // Before the certificates were issued.
        let early = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(verify(&ek, &[issuer], &[root], early).expect_err("too early").contains("not valid"));
    }
}
