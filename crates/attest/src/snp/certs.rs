//! AMD certificates: the built-in and configured roots, the endorsements that come with a
//! report, AMD's X.509 extensions in VCEK and VLEK certificates, and the chain
//! ARK -> ASK (or ASVK) -> VCEK (or VLEK).
//!
//! Fields (names, validity, extensions) are read with `x509-parser`; signatures between
//! certificates are checked by the `sev` crate (RSASSA-PSS with SHA-384, as AMD signs).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::OnceLock;

use sev::certs::snp::{Certificate as SevCertificate, Verifiable};
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;

use super::report::Tcb;
use super::table::{CertKind, parse_cert_table};

/// The most endorsements looked at, and the most PEM blocks read from one endorsement.
const MAX_ENDORSEMENTS: usize = 32;
const MAX_PEM_BLOCKS: usize = 16;
/// The largest endorsement looked at, in bytes.
const MAX_ENDORSEMENT_LEN: usize = 1 << 20;

/// DER contents of AMD's OID arc 1.3.6.1.4.1.3704.1.
const AMD_ARC: [u8; 8] = [0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01];
/// DER contents of id-ecPublicKey (1.2.840.10045.2.1).
const ID_EC_PUBLIC_KEY: [u8; 7] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];

/// Where a certificate came from.
#[derive(Clone, Debug)]
pub(super) enum Origin {
    /// Built into the `sev` crate (Milan, Genoa, Turin).
    BuiltIn,
    /// `TrustAnchors::amd_roots[index]`.
    Anchor(usize),
    /// An untrusted endorsement: its description.
    Endorsement(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BuiltIn => f.write_str("built-in"),
            Self::Anchor(i) => write!(f, "trust anchor {}", i + 1),
            Self::Endorsement(what) => f.write_str(what),
        }
    }
}

/// The kind of endorsement key a certificate certifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VekKind {
    Vcek,
    Vlek,
}

impl VekKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Vcek => "VCEK",
            Self::Vlek => "VLEK",
        }
    }
}

/// One parsed certificate.
pub(super) struct Cert<'a> {
    pub(super) der: &'a [u8],
    pub(super) x509: X509Certificate<'a>,
    pub(super) origin: Origin,
    /// The `sev` crate's view, parsed when first needed.
    sev: OnceCell<Result<Cow<'a, SevCertificate>, String>>,
}

impl<'a> Cert<'a> {
    /// Parses a DER certificate (no trailing bytes).
    pub(super) fn parse(der: &'a [u8], origin: Origin) -> Result<Self, String> {
        match x509_parser::parse_x509_certificate(der) {
            Ok(([], x509)) => Ok(Self { der, x509, origin, sev: OnceCell::new() }),
            Ok((rest, _)) => Err(format!("{origin}: {} bytes after the certificate", rest.len())),
            Err(e) => Err(format!("{origin}: not an X.509 certificate ({e})")),
        }
    }

    /// The subject's common name, or the whole subject.
    pub(super) fn name(&self) -> String {
        common_name(self.x509.subject()).unwrap_or_else(|| self.x509.subject().to_string())
    }

    /// The issuer's common name, or the whole issuer.
    pub(super) fn issuer_name(&self) -> String {
        common_name(self.x509.issuer()).unwrap_or_else(|| self.x509.issuer().to_string())
    }

    /// `name (origin)`, for messages.
    pub(super) fn describe(&self) -> String {
        format!("{} ({})", self.name(), self.origin)
    }

    fn self_issued(&self) -> bool {
        self.x509.subject().as_raw() == self.x509.issuer().as_raw()
    }

    fn issued_by(&self, issuer: &Cert<'_>) -> bool {
        self.x509.issuer().as_raw() == issuer.x509.subject().as_raw()
    }

    /// Whether the key is an elliptic-curve key (VCEK and VLEK keys are; AMD's CA keys are RSA).
    fn is_ec(&self) -> bool {
        self.x509.public_key().algorithm.algorithm.as_bytes() == ID_EC_PUBLIC_KEY
    }

    /// What kind of endorsement key this is, from its subject (`SEV-VCEK` or `SEV-VLEK`), else
    /// from the presence of a hardware ID (only VCEKs have one). `None` for other certificates.
    pub(super) fn vek_kind(&self) -> Option<VekKind> {
        if !self.is_ec() {
            return None;
        }
        match self.name().as_str() {
            "SEV-VCEK" => Some(VekKind::Vcek),
            "SEV-VLEK" => Some(VekKind::Vlek),
            _ if self.amd_extension(&[0x04]).is_some() => Some(VekKind::Vcek),
            _ => None,
        }
    }

    /// The SEC1 public key bytes.
    pub(super) fn public_key_sec1(&self) -> &[u8] {
        &self.x509.public_key().subject_public_key.data
    }

    /// The `sev` crate's parse of this certificate.
    fn sev(&self) -> Result<&SevCertificate, String> {
        self.sev
            .get_or_init(|| SevCertificate::from_der(self.der).map(Cow::Owned).map_err(|e| e.to_string()))
            .as_ref()
            .map(|c| c.as_ref())
            .map_err(|e| format!("{}: {e}", self.describe()))
    }

    /// Checks that `signer`'s key signed this certificate.
    fn signed_by(&self, signer: &Cert<'_>) -> Result<(), String> {
        (signer.sev()?, self.sev()?)
            .verify()
            .map_err(|e| format!("{} is not signed by {}: {e}", self.describe(), signer.describe()))
    }

    /// Checks the validity window at `at` (seconds since the Unix epoch).
    pub(super) fn valid_at(&self, at: i64) -> Result<(), String> {
        let v = self.x509.validity();
        if at < v.not_before.timestamp() || at > v.not_after.timestamp() {
            return Err(format!(
                "{} is not valid at {}: valid from {} to {}",
                self.describe(),
                format_time(at),
                v.not_before,
                v.not_after
            ));
        }
        Ok(())
    }

    /// `valid until ...`, for messages.
    fn until(&self) -> String {
        format!("valid until {}", self.x509.validity().not_after)
    }

    /// The value of AMD extension 1.3.6.1.4.1.3704.1.`suffix`; an error if it appears twice.
    fn amd_extension(&self, suffix: &[u8]) -> Option<Result<&'a [u8], String>> {
        let mut found = self.x509.extensions().iter().filter(|e| {
            let oid = e.oid.as_bytes();
            oid.len() == AMD_ARC.len() + suffix.len() && oid.starts_with(&AMD_ARC) && oid.ends_with(suffix)
        });
        let first = found.next()?;
        if found.next().is_some() {
            return Some(Err(format!("{} has extension {} twice", self.describe(), amd_oid_text(suffix))));
        }
        Some(Ok(first.value))
    }

    /// The TCB this VCEK or VLEK certifies (extensions 1.3.6.1.4.1.3704.1.3.x).
    pub(super) fn tcb(&self) -> Result<Tcb, String> {
        let spl = |n: u8, name: &str| -> Result<Option<u8>, String> {
            match self.amd_extension(&[0x03, n]) {
                None => Ok(None),
                Some(value) => der_small_uint(value?).map(Some).ok_or_else(|| {
                    format!("{}: the {name} SPL extension is not a DER integer 0..=255", self.describe())
                }),
            }
        };
        let need =
            |v: Option<u8>, name: &str| v.ok_or_else(|| format!("{} has no {name} SPL extension", self.describe()));
        Ok(Tcb {
            bootloader: need(spl(1, "bootloader")?, "bootloader")?,
            tee: need(spl(2, "TEE")?, "TEE")?,
            snp: need(spl(3, "SNP")?, "SNP")?,
            microcode: need(spl(8, "microcode")?, "microcode")?,
            fmc: spl(9, "FMC")?,
        })
    }

    /// The hardware ID (extension 1.3.6.1.4.1.3704.1.4), if any. AMD puts the raw bytes in the
    /// extension value (64 bytes, 8 on Turin), not a DER OCTET STRING.
    pub(super) fn hw_id(&self) -> Option<Result<&'a [u8], String>> {
        self.amd_extension(&[0x04])
    }

    /// The product name (extension 1.3.6.1.4.1.3704.1.2), e.g. `Milan-B0`, if readable.
    pub(super) fn product(&self) -> Option<String> {
        let value = self.amd_extension(&[0x02])?.ok()?;
        let text = der_ia5_string(value)?;
        Some(text.to_owned())
    }
}

/// The first common name of a name.
fn common_name(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    name.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned)
}

/// `1.3.6.1.4.1.3704.1.<suffix>` as text.
fn amd_oid_text(suffix: &[u8]) -> String {
    let tail: Vec<String> = suffix.iter().map(u8::to_string).collect();
    format!("1.3.6.1.4.1.3704.1.{}", tail.join("."))
}

/// A DER INTEGER in `0..=255`: `02 01 vv` (vv < 0x80) or `02 02 00 vv` (vv >= 0x80).
fn der_small_uint(value: &[u8]) -> Option<u8> {
    match *value {
        [0x02, 0x01, v] if v < 0x80 => Some(v),
        [0x02, 0x02, 0x00, v] if v >= 0x80 => Some(v),
        _ => None,
    }
}

/// The contents of a DER value with the given tag (short or one-byte long length form).
fn der_contents(tag: u8, value: &[u8]) -> Option<&[u8]> {
    let (&t, rest) = value.split_first()?;
    if t != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = match len {
        0..=0x7F => (usize::from(len), rest),
        0x81 => {
            let (&l, rest) = rest.split_first()?;
            (usize::from(l), rest)
        }
        _ => return None,
    };
    (rest.len() == len).then_some(rest)
}

fn der_ia5_string(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(der_contents(0x16, value)?).ok()
}

/// Seconds since the epoch as RFC 3339, for messages.
pub(super) fn format_time(at: i64) -> String {
    match u64::try_from(at) {
        Ok(secs) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
        }
        Err(_) => format!("{at} s before 1970"),
    }
}

/// A built-in chain of the `sev` crate, decoded and checked once per process.
struct BuiltIn {
    ark: Vec<u8>,
    ask: Vec<u8>,
    ark_sev: SevCertificate,
    ask_sev: SevCertificate,
    /// Whether the ARK is self-signed and signs the ASK.
    verified: Result<(), String>,
}

fn built_ins() -> &'static [BuiltIn] {
    static BUILT_INS: OnceLock<Vec<BuiltIn>> = OnceLock::new();
    BUILT_INS.get_or_init(|| {
        use sev::certs::snp::builtin::{genoa, milan, turin};
        [(milan::ARK, milan::ASK), (genoa::ARK, genoa::ASK), (turin::ARK, turin::ASK)]
            .into_iter()
            .filter_map(|(ark_pem, ask_pem)| {
                let der = |pem: &[u8]| x509_parser::pem::parse_x509_pem(pem).ok().map(|(_, p)| p.contents);
                let (ark, ask) = (der(ark_pem)?, der(ask_pem)?);
                let ark_sev = SevCertificate::from_der(&ark).ok()?;
                let ask_sev = SevCertificate::from_der(&ask).ok()?;
                let verified = (&ark_sev, &ark_sev)
                    .verify()
                    .and_then(|()| (&ark_sev, &ask_sev).verify())
                    .map_err(|e| format!("the built-in chain does not verify: {e}"));
                Some(BuiltIn { ark, ask, ark_sev, ask_sev, verified })
            })
            .collect()
    })
}

/// Certificates found among endorsements, as DER, with a description of where each was.
pub(super) struct Found<'a> {
    pub(super) ders: Vec<(Cow<'a, [u8]>, String)>,
    /// Endorsements that were not certificates, and why.
    pub(super) notes: Vec<String>,
}

/// Collects the certificates from endorsements: DER, PEM (any number of certificates), or an
/// SNP certificate table whose entries are DER or PEM.
pub(super) fn collect_endorsements(endorsements: &[Vec<u8>]) -> Found<'_> {
    let mut found = Found { ders: Vec::new(), notes: Vec::new() };
    if endorsements.len() > MAX_ENDORSEMENTS {
        found.notes.push(format!("only the first {MAX_ENDORSEMENTS} of {} endorsements were read", endorsements.len()));
    }
    for (i, bytes) in endorsements.iter().take(MAX_ENDORSEMENTS).enumerate() {
        let label = format!("endorsement {}", i + 1);
        if bytes.len() > MAX_ENDORSEMENT_LEN {
            found.notes.push(format!("{label}: larger than {MAX_ENDORSEMENT_LEN} bytes, ignored"));
            continue;
        }
        if let Err(e) = collect_one(bytes, &label, &mut found.ders) {
            found.notes.push(format!("{label}: {e}"));
        }
    }
    found
}

fn collect_one<'a>(bytes: &'a [u8], label: &str, out: &mut Vec<(Cow<'a, [u8]>, String)>) -> Result<(), String> {
    if is_pem(bytes) {
        return collect_pem(bytes, &format!("{label} (PEM)"), out);
    }
    if matches!(x509_parser::parse_x509_certificate(bytes), Ok(([], _))) {
        out.push((Cow::Borrowed(bytes), format!("{label} (DER)")));
        return Ok(());
    }
    let table = parse_cert_table(bytes)
        .map_err(|e| format!("neither a DER or PEM certificate nor an SNP certificate table ({e})"))?;
    for (kind, data) in table {
        if matches!(kind, CertKind::Other(_)) {
            continue;
        }
        let what = format!("{label} (certificate table, {} entry)", kind.name());
        if is_pem(&data) {
            collect_pem(&data, &what, out)?;
        } else {
            out.push((Cow::Owned(data), what));
        }
    }
    Ok(())
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn collect_pem<'a>(bytes: &[u8], label: &str, out: &mut Vec<(Cow<'a, [u8]>, String)>) -> Result<(), String> {
    let mut n = 0;
    for pem in Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("{label}: bad PEM ({e})"))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        n += 1;
        if n > MAX_PEM_BLOCKS {
            return Err(format!("{label}: more than {MAX_PEM_BLOCKS} certificates"));
        }
        out.push((Cow::Owned(pem.contents), format!("{label} #{n}")));
    }
    Ok(())
}

/// Every certificate a verification can use: the trusted roots and the endorsements'.
pub(super) struct Pool<'a> {
    /// Trusted ARKs: built-in, then the anchors' self-issued certificates.
    arks: Vec<Cert<'a>>,
    /// For each ARK, whether it is trusted as such (built-in, or self-signed anchor), checked lazily.
    ark_ok: Vec<OnceCell<Result<(), String>>>,
    /// Candidate ASKs and ASVKs: built-in, anchors', endorsements' (deduplicated, in that order).
    asks: Vec<Cert<'a>>,
    /// For built-in ASKs, the index of their ARK (whose signature is already checked).
    ask_builtin_ark: Vec<Option<usize>>,
    /// Endorsement keys (VCEK, VLEK) from the endorsements.
    pub(super) veks: Vec<Cert<'a>>,
    /// Self-issued certificates from endorsements: never trusted, only named in messages.
    pub(super) untrusted_arks: Vec<String>,
    /// Certificates that could not be parsed, and why.
    pub(super) notes: Vec<String>,
}

impl<'a> Pool<'a> {
    /// Builds the pool from the built-in chains, the anchors (DER) and the endorsements' certificates.
    pub(super) fn new(anchors: &'a [Vec<u8>], found: &'a Found<'a>) -> Self {
        let mut pool = Pool {
            arks: Vec::new(),
            ark_ok: Vec::new(),
            asks: Vec::new(),
            ask_builtin_ark: Vec::new(),
            veks: Vec::new(),
            untrusted_arks: Vec::new(),
            notes: found.notes.clone(),
        };
        for b in built_ins() {
            let (Ok(ark), Ok(ask)) = (Cert::parse(&b.ark, Origin::BuiltIn), Cert::parse(&b.ask, Origin::BuiltIn))
            else {
                continue;
            };
            let _ = ark.sev.set(Ok(Cow::Borrowed(&b.ark_sev)));
            let _ = ask.sev.set(Ok(Cow::Borrowed(&b.ask_sev)));
            let ok = OnceCell::new();
            let _ = ok.set(b.verified.clone());
            pool.ask_builtin_ark.push(b.verified.is_ok().then_some(pool.arks.len()));
            pool.arks.push(ark);
            pool.ark_ok.push(ok);
            pool.asks.push(ask);
        }
        for (i, der) in anchors.iter().enumerate() {
            match Cert::parse(der, Origin::Anchor(i)) {
                Ok(cert) if cert.self_issued() => {
                    if !pool.arks.iter().any(|a| a.der == cert.der) {
                        pool.arks.push(cert);
                        pool.ark_ok.push(OnceCell::new());
                    }
                }
                Ok(cert) => pool.add_ask(cert),
                Err(e) => pool.notes.push(format!("{e} (trust anchors must be DER certificates)")),
            }
        }
        for (der, label) in &found.ders {
            match Cert::parse(der, Origin::Endorsement(label.clone())) {
                Ok(cert) if cert.self_issued() => pool.untrusted_arks.push(cert.describe()),
                Ok(cert) if cert.is_ec() => {
                    if !pool.veks.iter().any(|v| v.der == cert.der) {
                        pool.veks.push(cert);
                    }
                }
                Ok(cert) => pool.add_ask(cert),
                Err(e) => pool.notes.push(e),
            }
        }
        pool
    }

    fn add_ask(&mut self, cert: Cert<'a>) {
        if !self.asks.iter().any(|a| a.der == cert.der) {
            self.asks.push(cert);
            self.ask_builtin_ark.push(None);
        }
    }

    /// Whether ARK `i` is trusted: built-in (checked once per process) or a self-signed anchor.
    fn ark_trusted(&self, i: usize) -> Result<(), String> {
        let (Some(ark), Some(ok)) = (self.arks.get(i), self.ark_ok.get(i)) else {
            return Err("no such ARK".into());
        };
        ok.get_or_init(|| ark.signed_by(ark).map_err(|e| format!("the anchor is not self-signed: {e}"))).clone()
    }

    /// Finds a trusted ARK that signs `ask` (index `ask_i`).
    fn ark_for(&self, ask_i: usize, ask: &Cert<'_>) -> Result<usize, String> {
        if let Some(Some(ark)) = self.ask_builtin_ark.get(ask_i) {
            return Ok(*ark);
        }
        let mut errors = Vec::new();
        for (i, ark) in self.arks.iter().enumerate().filter(|(_, ark)| ask.issued_by(ark)) {
            match self.ark_trusted(i).and_then(|()| ask.signed_by(ark)) {
                Ok(()) => return Ok(i),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            let mut msg = format!(
                "no trusted ARK named {} (issuer of {}); trusted ARKs: {}",
                ask.issuer_name(),
                ask.describe(),
                self.arks.iter().map(Cert::describe).collect::<Vec<_>>().join(", ")
            );
            if !self.untrusted_arks.is_empty() {
                msg.push_str(&format!(
                    "; ARKs from the evidence are not trusted ({}): add the ARK to the AMD trust anchors",
                    self.untrusted_arks.join(", ")
                ));
            }
            return Err(msg);
        }
        Err(errors.join("; "))
    }

    /// Builds and checks the chain for `vek` at time `at`.
    pub(super) fn chain(&self, vek: &Cert<'_>, at: i64) -> ChainOutcome {
        let named: Vec<usize> =
            (0..self.asks.len()).filter(|&i| self.asks.get(i).is_some_and(|a| vek.issued_by(a))).collect();
        let candidates: Vec<usize> = if named.is_empty() { (0..self.asks.len()).collect() } else { named.clone() };

        let mut best: Option<Attempt> = None;
        for i in candidates {
            let Some(ask) = self.asks.get(i) else { continue };
            let vek_link = vek.signed_by(ask);
            if vek_link.is_err() && named.is_empty() {
                // Trying every ASK because none is named after the issuer: only a match counts.
                continue;
            }
            let ark = self.ark_for(i, ask);
            let attempt = Attempt { ask: i, ark, vek_link };
            let rank = attempt.rank();
            if best.as_ref().is_none_or(|b| rank > b.rank()) {
                best = Some(attempt);
            }
            if rank == 2 {
                break;
            }
        }

        let Some(attempt) = best else {
            let why = format!(
                "no ASK or ASVK named {} (issuer of {}) among the built-in chains, the AMD trust anchors or the \
                 endorsements",
                vek.issuer_name(),
                vek.describe()
            );
            return ChainOutcome {
                ark: Err("not checked: no ASK or ASVK for the endorsement key".into()),
                ask: Err(why),
                vek: Err("not checked: no ASK or ASVK for the endorsement key".into()),
            };
        };
        let Some(ask) = self.asks.get(attempt.ask) else {
            return ChainOutcome::all_err("internal: candidate out of range");
        };

        let ark_check = match &attempt.ark {
            Ok(i) => match self.arks.get(*i) {
                Some(ark) => ark.valid_at(at).map(|()| format!("{}, {}", ark.describe(), ark.until())),
                None => Err("internal: ARK out of range".into()),
            },
            Err(e) => Err(e.clone()),
        };
        let ask_check = match &attempt.ark {
            Ok(i) => {
                let ark_name = self.arks.get(*i).map(Cert::name).unwrap_or_default();
                ask.valid_at(at).map(|()| format!("{} signed by {ark_name}, {}", ask.describe(), ask.until()))
            }
            Err(_) => Err(format!("{} does not chain to a trusted ARK", ask.describe())),
        };
        let vek_check = match attempt.vek_link {
            Ok(()) => {
                vek.valid_at(at).map(|()| format!("{} signed by {}, {}", vek.describe(), ask.name(), vek.until()))
            }
            Err(e) => Err(e),
        };
        ChainOutcome { ark: ark_check, ask: ask_check, vek: vek_check }
    }
}

/// One try at a chain through one ASK.
struct Attempt {
    ask: usize,
    ark: Result<usize, String>,
    vek_link: Result<(), String>,
}

impl Attempt {
    /// 2: complete; 1: the ASK signs the endorsement key; 0: neither.
    fn rank(&self) -> u8 {
        match (&self.vek_link, &self.ark) {
            (Ok(()), Ok(_)) => 2,
            (Ok(()), Err(_)) => 1,
            _ => 0,
        }
    }
}

/// The outcome of the three links of a chain, each a check detail.
pub(super) struct ChainOutcome {
    pub(super) ark: Result<String, String>,
    pub(super) ask: Result<String, String>,
    pub(super) vek: Result<String, String>,
}

impl ChainOutcome {
    fn all_err(msg: &str) -> Self {
        Self { ark: Err(msg.into()), ask: Err(msg.into()), vek: Err(msg.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd_arc_encodes_the_amd_oid() {
        let oid = x509_parser::der_parser::oid::Oid::new(Cow::Borrowed(&AMD_ARC));
        assert_eq!(oid.to_id_string(), "1.3.6.1.4.1.3704.1");
        let ec = x509_parser::der_parser::oid::Oid::new(Cow::Borrowed(&ID_EC_PUBLIC_KEY));
        assert_eq!(ec.to_id_string(), "1.2.840.10045.2.1");
        assert_eq!(amd_oid_text(&[3, 8]), "1.3.6.1.4.1.3704.1.3.8");
    }

    #[test]
    fn small_der_integers() {
        assert_eq!(der_small_uint(&[0x02, 0x01, 0x00]), Some(0));
        assert_eq!(der_small_uint(&[0x02, 0x01, 0x73]), Some(115));
        assert_eq!(der_small_uint(&[0x02, 0x02, 0x00, 0xd1]), Some(209));
        // Negative, non-minimal, too large, wrong tag, trailing bytes.
        assert_eq!(der_small_uint(&[0x02, 0x01, 0xd1]), None);
        assert_eq!(der_small_uint(&[0x02, 0x02, 0x00, 0x10]), None);
        assert_eq!(der_small_uint(&[0x02, 0x02, 0x01, 0x00]), None);
        assert_eq!(der_small_uint(&[0x04, 0x01, 0x01]), None);
        assert_eq!(der_small_uint(&[0x02, 0x01, 0x01, 0x00]), None);
        assert_eq!(der_small_uint(&[]), None);
    }

    #[test]
    fn der_strings() {
        assert_eq!(der_contents(0x04, &[0x04, 0x02, 1, 2]), Some(&[1u8, 2][..]));
        assert_eq!(der_contents(0x04, &[0x04, 0x03, 1, 2]), None);
        assert_eq!(der_contents(0x16, &[0x04, 0x01, 1]), None);
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(der_contents(0x04, &long).map(<[u8]>::len), Some(0x80));
        assert_eq!(der_contents(0x04, &[0x04, 0x82, 0, 1, 1]), None);
        assert_eq!(der_ia5_string(b"\x16\x08Milan-B0"), Some("Milan-B0"));
        assert_eq!(der_ia5_string(b"\x16\x09Milan-B0"), None);
    }

    #[test]
    fn built_in_chains_verify() {
        let b = built_ins();
        assert_eq!(b.len(), 3, "Milan, Genoa and Turin");
        for chain in b {
            assert_eq!(chain.verified, Ok(()));
        }
    }

    #[test]
    fn times_format() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(-5), "-5 s before 1970");
    }
}
