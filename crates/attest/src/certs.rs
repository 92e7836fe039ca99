//! Certificates as users and peers hand them over: DER, or PEM with one or more certificates.

/// The DER certificates in `bytes`: every `CERTIFICATE` block of PEM text, or the bytes
/// themselves when they are DER.
///
/// # Errors
/// When the bytes are PEM without a certificate, malformed PEM, or not a DER sequence.
pub fn der_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.first() == Some(&0x30) {
        return match x509_parser::parse_x509_certificate(bytes) {
            Ok(([], _)) => Ok(vec![bytes.to_vec()]),
            Ok(_) => Err("trailing bytes after the DER certificate".into()),
            Err(e) => Err(format!("not a DER X.509 certificate: {e}")),
        };
    }
    let mut certs = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("malformed PEM: {e}"))?;
        if pem.label == "CERTIFICATE" {
            certs.push(pem.contents);
        }
    }
    if let Some(bad) = certs.iter().find(|c| x509_parser::parse_x509_certificate(c).is_err()) {
        return Err(format!("a PEM CERTIFICATE block of {} bytes is not an X.509 certificate", bad.len()));
    }
    if certs.is_empty() {
        return Err("neither a DER certificate nor PEM with a CERTIFICATE block".into());
    }
    Ok(certs)
}

/// Whether a DER certificate is self-signed (its issuer is its subject and its own key verifies
/// its signature): a candidate trust anchor.
pub fn is_self_signed(der: &[u8]) -> bool {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert.subject() == cert.issuer() && cert.verify_signature(None).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = der_certificates(&bytes);
        }
    }

    #[test]
    fn reads_pem_bundles() {
        let bundle = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testvectors/trustee/src_snp_milan_ask_ark_asvk.pem"
        ))
        .expect("test vector");
        assert_eq!(der_certificates(&bundle).expect("certificates").len(), 3);
        assert!(der_certificates(b"hello").is_err());
    }
}
