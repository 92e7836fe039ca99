//! `lamina verify`: appraise evidence of any kind against a policy, optionally signing an
//! attestation result. Exit 0 accepted, 1 rejected, 2 usage error, 3 genuine but not accepted
//! for want of a policy: nothing is accepted unappraised.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use lamina_attest::{Appraisal, Expect, Inputs, Policy, TrustAnchors, Verifier};
use lamina_types::{Envelope, PlatformKind};

use crate::cli::{EvidenceKind, Format, VerifyArgs};

const ACCEPTED: i32 = 0;
const REJECTED: i32 = 1;
const USAGE: i32 = 2;
const NO_POLICY: i32 = 3;

pub(crate) fn verify(args: VerifyArgs) -> i32 {
    match appraise(&args) {
        Ok(a) => {
            let code = if a.verified() {
                ACCEPTED
            } else if only_the_policy_is_missing(&a) {
                NO_POLICY
            } else {
                REJECTED
            };
            match report(&args, &a) {
                Ok(()) => code,
                Err(e) => {
                    eprintln!("lamina: error: {e:#}");
                    USAGE
                }
            }
        }
        Err(e) => {
            eprintln!("lamina: error: {e:#}");
            USAGE
        }
    }
}

/// How long `--url` waits to connect and to finish the handshake.
const URL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Connects to an attested TLS server and appraises its certificate in the handshake, as a
/// relying party does before sending data: the appraisal the verifier made, accepted or not.
fn appraise_url(args: &VerifyArgs, url: &str) -> anyhow::Result<Appraisal> {
    use std::net::ToSocketAddrs as _;
    let uri: http::Uri = url.parse().context("--url is not a URL (e.g. https://127.0.0.1:8443)")?;
    if uri.scheme_str() != Some("https") {
        bail!("--url takes an https:// address (attested TLS), e.g. https://127.0.0.1:8443");
    }
    let authority = uri.authority().context("--url names no host")?;
    if authority.as_str().contains('@') {
        bail!("--url takes no user name or password");
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(443);
    let mut anchors = TrustAnchors::default();
    let policy = match &args.policy {
        Some(path) => Some(Policy::load(path, &mut anchors).context("cannot use the policy")?),
        None if args.danger_accept_any_measurement => Some(Policy::danger_any_measurement()),
        None => None,
    };
    let mut endorsements = Vec::new();
    for path in &args.certs {
        let file = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        add_cert(EvidenceKind::Ratls, &file, &mut anchors, &mut endorsements)
            .with_context(|| format!("cannot use {}", path.display()))?;
    }
    // A node's ingress declares the module behind each route: the policy's module rule is
    // applied to the one this URL reaches.
    let destination = lamina_attest::ratls::Destination::of_url(url).map_err(anyhow::Error::msg)?;
    let mut server = lamina_attest::ratls::AttestedServerVerifier::new(Verifier::new(policy, anchors))
        .with_cache_ttl(std::time::Duration::ZERO)
        .for_destination(destination);
    if let Some(path) = &args.collateral {
        server = server.with_collateral(
            std::fs::read(path).with_context(|| format!("cannot read the collateral {}", path.display()))?,
        );
    }
    let config = lamina_attest::ratls::relying_party_config(server.clone()).context("cannot configure TLS")?;
    let addr = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let mut socket = std::net::TcpStream::connect_timeout(&addr, URL_TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    socket.set_read_timeout(Some(URL_TIMEOUT))?;
    socket.set_write_timeout(Some(URL_TIMEOUT))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).context("the host in --url")?;
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).context("cannot start TLS")?;
    let mut handshake = Ok(());
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut socket) {
            handshake = Err(e);
            break;
        }
    }
    match (handshake, server.last_appraisal()) {
        (Ok(()), Some(appraisal)) => Ok(appraisal),
        // Refused in the handshake: the appraisal says why.
        (Err(_), Some(appraisal)) if !appraisal.verified() => Ok(appraisal),
        // The certificate verified but the handshake failed after it: the server did not prove
        // that it holds the certificate's key (a replayed certificate), or the connection broke.
        // Either way nothing was shown to be the attested server.
        (Err(e), _) => Err(anyhow::Error::new(e).context(format!(
            "the TLS handshake with {addr} failed (the server did not complete it with the certificate's key)"
        ))),
        (Ok(()), None) => bail!("the server at {addr} was not appraised"),
    }
}

/// Genuine evidence appraised without a policy: every check passed but the one that asks for a
/// policy.
fn only_the_policy_is_missing(a: &Appraisal) -> bool {
    let failed: Vec<&str> = a.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    failed == [lamina_attest::NO_POLICY]
}

fn appraise(args: &VerifyArgs) -> anyhow::Result<Appraisal> {
    if let Some(url) = &args.url {
        return appraise_url(args, url);
    }
    let file = args.file.as_deref().context("give the evidence file, or --url")?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut anchors = TrustAnchors::default();
    let policy = match &args.policy {
        Some(path) => Some(Policy::load(path, &mut anchors).context("cannot use the policy")?),
        None if args.danger_accept_any_measurement => Some(Policy::danger_any_measurement()),
        None => None,
    };
    let collateral = match &args.collateral {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read the collateral {}", path.display()))?)
        }
        None => None,
    };
    let kind = match args.kind {
        EvidenceKind::Auto => detect_kind(&bytes)
            .with_context(|| format!("cannot tell what {} is; say it with --kind", file.display()))?,
        k => k,
    };
    let mut endorsements = Vec::new();
    for path in &args.certs {
        let file = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        add_cert(kind, &file, &mut anchors, &mut endorsements)
            .with_context(|| format!("cannot use {}", path.display()))?;
    }
    let at = args.at.unwrap_or_else(SystemTime::now);
    let verifier = Verifier::new(policy, anchors);
    let expect = Expect {
        nonce: args.nonce.as_ref().map(|n| n.0.as_slice()),
        instance_key: None,
        collateral: collateral.as_deref(),
        endorsements: &endorsements,
        at,
    };
    let mut a = match kind {
        EvidenceKind::Envelope => verifier.appraise_envelope(&bytes, &expect),
        EvidenceKind::Ratls => {
            let der = lamina_attest::der_certificates(&bytes)
                .map_err(anyhow::Error::msg)?
                .into_iter()
                .next()
                .context("no certificate in the file")?;
            lamina_attest::ratls::appraise_certificate(&verifier, &der, collateral.as_deref(), at)
        }
        native => {
            let platform = match native {
                EvidenceKind::Sgx => PlatformKind::Sgx,
                EvidenceKind::Tdx => PlatformKind::Tdx,
                EvidenceKind::Snp => PlatformKind::Snp,
                EvidenceKind::Tpm => PlatformKind::Tpm,
                _ => PlatformKind::Cca,
            };
            let inputs = Inputs {
                evidence: &bytes,
                endorsements: &endorsements,
                collateral: collateral.as_deref(),
                anchors: &verifier.anchors,
                at,
            };
            verifier.appraise_native(platform, &inputs)
        }
    };
    if let Some(nonce) = &args.nonce
        && !matches!(kind, EvidenceKind::Envelope | EvidenceKind::Ratls)
    {
        check_native_nonce(&mut a, &nonce.0);
    }
    Ok(a)
}

/// For native evidence, the nonce is the report data itself (zero-padded to its length).
fn check_native_nonce(a: &mut Appraisal, nonce: &[u8]) {
    let matches = a.report_data.len() >= nonce.len()
        && a.report_data.starts_with(nonce)
        && a.report_data[nonce.len()..].iter().all(|b| *b == 0);
    if matches {
        a.pass("report_data.nonce", "the report data is the expected nonce");
    } else {
        a.fail(
            "report_data.nonce",
            format!("the report data {} is not the expected nonce {}", hex::encode(&a.report_data), hex::encode(nonce)),
        );
    }
}

fn add_cert(
    kind: EvidenceKind,
    file: &[u8],
    anchors: &mut TrustAnchors,
    endorsements: &mut Vec<Vec<u8>>,
) -> anyhow::Result<()> {
    if kind == EvidenceKind::Cca || file.first() == Some(&b'{') {
        // Veraison JSON: reference values or trust anchors, told apart by what parses.
        match (lamina_attest::cca::validate_reference_values(file), lamina_attest::cca::validate_anchors(file)) {
            (Ok(_), _) => anchors.cca_reference_values.push(file.to_vec()),
            (_, Ok(_)) => anchors.cca_anchors.push(file.to_vec()),
            (Err(rv), Err(ta)) => bail!(
                "neither CCA reference values ({rv}) nor CCA trust anchors ({ta}); pass Veraison JSON files such as \
                 rv.json or ta.json"
            ),
        }
        return Ok(());
    }
    let roots = match kind {
        EvidenceKind::Sgx | EvidenceKind::Tdx => &mut anchors.intel_roots,
        EvidenceKind::Snp => &mut anchors.amd_roots,
        EvidenceKind::Tpm => &mut anchors.tpm_roots,
        _ => {
            endorsements.push(file.to_vec());
            return Ok(());
        }
    };
    let certs = lamina_attest::der_certificates(file).map_err(anyhow::Error::msg)?;
    for der in certs {
        if lamina_attest::is_self_signed(&der) || kind == EvidenceKind::Tpm {
            roots.push(der);
        } else {
            endorsements.push(der);
        }
    }
    Ok(())
}

fn detect_kind(bytes: &[u8]) -> anyhow::Result<EvidenceKind> {
    if Envelope::from_cbor(bytes).is_ok() {
        return Ok(EvidenceKind::Envelope);
    }
    // DCAP quotes: version (u16 LE) 3, 4 or 5, then the attestation key type, then the TEE type (u32 LE).
    if let [v0, 0, _, _, t0, t1, t2, t3, ..] = bytes {
        let tee = u32::from_le_bytes([*t0, *t1, *t2, *t3]);
        match (*v0, tee) {
            (3..=5, 0) => return Ok(EvidenceKind::Sgx),
            (4 | 5, 0x81) => return Ok(EvidenceKind::Tdx),
            _ => {}
        }
    }
    // Certificates: PEM text, or DER that parses as X.509 (quotes carry PEM chains inside, so
    // this comes after the quote check and looks only at the start of the file).
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN CERTIFICATE")
        || (bytes.first() == Some(&0x30) && lamina_attest::der_certificates(bytes).is_ok())
    {
        return Ok(EvidenceKind::Ratls);
    }
    if looks_like_snp_report(bytes) {
        return Ok(EvidenceKind::Snp);
    }
    if bytes.starts_with(TPM_EVIDENCE_PREFIX) {
        return Ok(EvidenceKind::Tpm);
    }
    // CCA tokens are CBOR tag 399 (a collection of the platform and realm tokens).
    if bytes.starts_with(&[0xd9, 0x01, 0x8f]) {
        return Ok(EvidenceKind::Cca);
    }
    bail!("not an envelope, a DCAP quote, an SNP report, TPM evidence, a CCA token or a certificate")
}

/// The start of Lamina's TPM evidence: a CBOR array whose first item is its format name.
const TPM_EVIDENCE_PREFIX: &[u8] = b"\x85\x76lamina-tpm-evidence-v1";

/// The size of an SEV-SNP attestation report.
const SNP_REPORT_LEN: usize = 1184;

/// An SNP report: 1184 bytes (or their hex text) starting with a version from 2 to 5.
fn looks_like_snp_report(bytes: &[u8]) -> bool {
    let text: String;
    let raw = if bytes.len() == SNP_REPORT_LEN {
        bytes
    } else if let Ok(t) = std::str::from_utf8(bytes) {
        text = t.split_whitespace().collect();
        match hex::decode(&text) {
            Ok(decoded) if decoded.len() == SNP_REPORT_LEN => return matches!(decoded.first(), Some(2..=5)),
            _ => return false,
        }
    } else {
        return false;
    };
    matches!(raw, [2..=5, 0, 0, 0, ..])
}

#[derive(serde::Serialize)]
struct Report<'a> {
    verified: bool,
    #[serde(flatten)]
    appraisal: &'a Appraisal,
    reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<serde_json::Value>,
}

fn report(args: &VerifyArgs, a: &Appraisal) -> anyhow::Result<()> {
    if let (Some(key), Some(out)) = (&args.ear_key, &args.ear_out) {
        write_ear(a, key, out, args)?;
    }
    match args.format {
        Format::Json => {
            let claims = a.claims.as_ref().map(|c| {
                serde_json::json!({
                    "platform": c.platform,
                    "module_hash": c.module_hash.map(|h| h.to_string()),
                    "nonce": hex::encode(&c.nonce),
                    "issued_at": c.issued_at,
                    "runtime_measurement": hex::encode(&c.runtime_measurement),
                })
            });
            let report = Report { verified: a.verified(), appraisal: a, reasons: a.reasons(), claims };
            emit(&format!("{}\n", serde_json::to_string_pretty(&report)?));
        }
        Format::Text => emit(&text_report(a, args.danger_accept_any_measurement)),
    }
    Ok(())
}

fn text_report(a: &Appraisal, any_measurement: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let platform = a.platform.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    let verdict = if a.verified() && any_measurement {
        "ACCEPTED WITHOUT REFERENCE VALUES (--danger-accept-any-measurement): genuine, whatever it measures"
    } else if a.verified() {
        "ACCEPTED: genuine and allowed by the policy"
    } else if only_the_policy_is_missing(a) {
        "NOT ACCEPTED: no policy given (genuine so far as checked; pass --policy FILE)"
    } else {
        "REJECTED"
    };
    let _ = writeln!(out, "{verdict}");
    let _ = writeln!(out, "platform:    {platform}");
    if let Some(status) = &a.tcb_status {
        let _ = writeln!(out, "tcb status:  {status}");
    }
    if !a.advisories.is_empty() {
        let _ = writeln!(out, "advisories:  {}", a.advisories.join(", "));
    }
    if !a.report_data.is_empty() {
        let _ = writeln!(out, "report data: {}", hex::encode(&a.report_data));
    }
    if let Some(c) = &a.claims {
        let _ = writeln!(out, "module:      {}", c.module_hash.map_or_else(|| "none".to_owned(), |h| h.to_string()));
        let _ = writeln!(out, "nonce:       {}", hex::encode(&c.nonce));
    }
    if !a.measurements.is_empty() {
        let _ = writeln!(out, "measurements:");
        for (k, v) in &a.measurements {
            let _ = writeln!(out, "  {k:<28} {v}");
        }
    }
    let _ = writeln!(out, "checks:");
    for c in &a.checks {
        let _ = writeln!(out, "  [{}] {:<28} {}", if c.ok { " ok " } else { "FAIL" }, c.name, c.detail);
    }
    out
}

/// Prints to standard output; a closed pipe (`| head`) is not an error worth a panic.
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn write_ear(a: &Appraisal, key: &Path, out: &Path, args: &VerifyArgs) -> anyhow::Result<()> {
    let pem = std::fs::read(key).with_context(|| format!("cannot read the EAR key {}", key.display()))?;
    let at = args.at.unwrap_or_else(SystemTime::now);
    let token = lamina_attest::issue_ear(a, &pem, args.ear_validity, at).context("cannot sign the EAR")?;
    std::fs::write(out, token).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote a signed attestation result (EAR) to {}", out.display());
    Ok(())
}
