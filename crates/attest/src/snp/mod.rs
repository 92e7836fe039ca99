//! AMD SEV-SNP attestation reports: signature, certificate chain, TCB and chip binding.
//!
//! [`verify`] appraises one report, offline:
//!
//! 1. **`snp.report.parse`**: the evidence is the 1184-byte report, binary or as hex text
//!    (whitespace ignored); the `sev` crate parses it.
//! 2. **`snp.endorsement`**: the key that signed the report, a VCEK (chip-unique) or a VLEK
//!    (cloud provider's), as the report's `SIGNING_KEY` says. It is found among the endorsements:
//!    DER or PEM certificates, or an SNP certificate table (the extended report's, Linux
//!    configfs-tsm `auxblob`; see [`parse_cert_table`]). Certificates are classified by their
//!    contents, never by the GUID or position they came under.
//! 3. **`snp.chain.ark`**, **`snp.chain.ask`**, **`snp.chain.vcek`**: ARK -> ASK -> VCEK, or
//!    ARK -> ASVK -> VLEK (the same three check names). Trusted: the Milan, Genoa and Turin chains
//!    built into the `sev` crate, and the ARK, ASK and ASVK certificates in
//!    [`TrustAnchors::amd_roots`](crate::TrustAnchors) (an ARK there must be self-signed; an ASK
//!    or ASVK must be signed by a trusted ARK). ASKs from the endorsements may complete a chain
//!    but an ARK from the endorsements is never trusted. The ASK is picked by the endorsement
//!    key's issuer name (hence the product). Every certificate of the chain must be valid at
//!    `Inputs::at`. No revocation list is consulted (AMD's CRLs revoke ASKs; none is revoked).
//! 4. **`snp.signature`**: ECDSA P-384 with SHA-384 over the report's first 0x2A0 bytes as
//!    received; the unused high bytes of R and S and the reserved bytes after the signature must
//!    be zero, so no byte of the report can change unnoticed.
//! 5. **`snp.chip_id`** (VCEK only): the VCEK's hwID extension (1.3.6.1.4.1.3704.1.4) equals the
//!    report's `CHIP_ID` (Turin: the hwID is the first 8 bytes and the rest of `CHIP_ID` is
//!    zero). A masked chip ID passes with a note: the VCEK's signature already binds the chip.
//! 6. **`snp.tcb`**: the reported TCB (which selects the VCEK) is not above the TCB the
//!    certificate certifies (extensions 1.3.6.1.4.1.3704.1.3.1 boot loader, .2 TEE, .3 SNP,
//!    .8 microcode, .9 FMC on Turin), component by component, and both use the same layout
//!    (Turin's has an FMC component).
//!
//! The debug bit of the guest policy (bit 19) is reported as the measurement `debug`; whether
//! it is allowed is the policy's decision, so no check fails for it here.
//!
//! **Measurements** (see [`Appraisal`]): `measurement`, `host_data`, `policy` (the 64-bit guest
//! policy as 16 lowercase hex digits, no prefix), `debug`, `vmpl`, `tcb_bootloader`, `tcb_tee`,
//! `tcb_snp`, `tcb_microcode` (the reported TCB), `tcb_fmc` (Turin only), and `guest_svn`,
//! `family_id`, `image_id`, `id_key_digest`, `author_key_digest`, `report_version`. The report
//! data is the report's 64 `REPORT_DATA` bytes.
//!
//! **TCB status**, derived from the report's own TCB fields (this verifier is offline, so it
//! cannot know AMD's latest firmware; a minimum TCB is the policy's business, using the `tcb_*`
//! measurements):
//! - `UpToDate`: the reported TCB equals the committed TCB (the firmware's anti-rollback floor),
//!   and the launch TCB is not below it in any component;
//! - `OutOfDate`: the reported TCB, or the launch TCB, is below the committed TCB in some
//!   component (the signing key, or the firmware the guest was launched on, is older than what
//!   the platform has committed to);
//! - `Uncommitted`: the reported TCB is above the committed TCB (the firmware may still be rolled
//!   back below what the signing key certifies).
//!
//! The current TCB is not part of the status: it may run ahead of the committed TCB while an
//! update is pending, which weakens nothing the report vouches for.

mod certs;
mod report;
mod table;

use std::time::{SystemTime, UNIX_EPOCH};

use lamina_types::PlatformKind;
use sev::firmware::guest::AttestationReport;

use crate::{Appraisal, Inputs};
use certs::{Cert, Pool, VekKind, collect_endorsements};
pub use report::{REPORT_LEN, Tcb, parse_report, report_bytes, verify_signature};
pub use table::{
    CERT_TABLE_ENTRY_LEN, CertKind, MAX_CERT_TABLE_ENTRIES, MAX_CERT_TABLE_LEN, build_cert_table, parse_cert_table,
};

/// Why SNP bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnpError {
    /// The report (after hex decoding) is not 1184 bytes.
    #[error("an SEV-SNP report is {expected} bytes (binary) or their hex text; got {found} bytes")]
    ReportLength {
        /// The length found.
        found: usize,
        /// The length expected.
        expected: usize,
    },
    /// Hex text that does not decode.
    #[error("the report is not valid hex: {0}")]
    ReportHex(String),
    /// The `sev` crate rejected the report.
    #[error("the report does not parse: {0}")]
    Report(String),
    /// The certificate table is too large.
    #[error("certificate table of {len} bytes is larger than {max}")]
    TableTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The table has no all-zero terminating entry.
    #[error("certificate table ends after {entries} entries without its all-zero terminator")]
    TableUnterminated {
        /// The entries read.
        entries: usize,
    },
    /// The terminator's GUID is zero but its offset or length is not.
    #[error("certificate table entry {index} has a zero GUID but a non-zero offset or length")]
    TableBadTerminator {
        /// The entry.
        index: usize,
    },
    /// Too many entries.
    #[error("certificate table has more than {max} entries")]
    TableTooManyEntries {
        /// The limit.
        max: usize,
    },
    /// An entry of length zero.
    #[error("certificate table entry {index} is empty")]
    TableEmptyEntry {
        /// The entry.
        index: usize,
    },
    /// An entry whose data starts inside the entry array.
    #[error(
        "certificate table entry {index} points at offset {offset}, inside the entry array (which ends at {header_end})"
    )]
    TableEntryInHeader {
        /// The entry.
        index: usize,
        /// Its offset.
        offset: usize,
        /// The end of the entry array.
        header_end: usize,
    },
    /// An entry that ends past the end of the table.
    #[error("certificate table entry {index} ({len} bytes at offset {offset}) runs past the table's {table_len} bytes")]
    TableOutOfBounds {
        /// The entry.
        index: usize,
        /// Its offset.
        offset: usize,
        /// Its length.
        len: usize,
        /// The table's length.
        table_len: usize,
    },
    /// Two entries whose data overlap.
    #[error("certificate table entries {first} and {second} overlap")]
    TableOverlap {
        /// The first entry.
        first: usize,
        /// The second entry.
        second: usize,
    },
    /// A GUID that appears twice.
    #[error("certificate table entry {index} repeats the {guid} GUID")]
    TableDuplicate {
        /// The second entry with that GUID.
        index: usize,
        /// The GUID's name.
        guid: String,
    },
}

/// Appraises an SEV-SNP attestation report (see the module documentation for every check).
pub fn verify(inputs: &Inputs<'_>) -> Appraisal {
    let mut a = Appraisal::new(PlatformKind::Snp);
    let raw = match report_bytes(inputs.evidence) {
        Ok(raw) => raw,
        Err(e) => {
            a.fail("snp.report.parse", e.to_string());
            return a;
        }
    };
    let report = match parse_report(&raw) {
        Ok(report) => report,
        Err(e) => {
            a.fail("snp.report.parse", e.to_string());
            return a;
        }
    };
    let reported = Tcb::from(report.reported_tcb);
    a.pass(
        "snp.report.parse",
        format!(
            "version {} report, {} TCB layout, VMPL {}",
            report.version,
            if reported.fmc.is_some() { "Turin" } else { "pre-Turin" },
            report.vmpl
        ),
    );
    measure(&mut a, &report, &raw);

    let signing_key = match (report.key_info.mask_chip_key(), report.key_info.signing_key()) {
        (true, _) => None,
        (false, 0) => Some(VekKind::Vcek),
        (false, 1) => Some(VekKind::Vlek),
        (false, _) => None,
    };
    let Some(kind) = signing_key else {
        a.fail(
            "snp.signature",
            format!(
                "the report is not signed (MASK_CHIP_KEY {}, SIGNING_KEY {})",
                report.key_info.mask_chip_key(),
                report.key_info.signing_key()
            ),
        );
        return a;
    };

    let found = collect_endorsements(inputs.endorsements);
    let pool = Pool::new(&inputs.anchors.amd_roots, &found);
    let Some(vek) = pick_endorsement_key(&mut a, &pool, kind, &raw, &report) else {
        return a;
    };

    let at = unix_secs(inputs.at);
    let chain = pool.chain(vek, at);
    a.check("snp.chain.ark", chain.ark);
    a.check("snp.chain.ask", chain.ask);
    a.check("snp.chain.vcek", chain.vek);

    a.check(
        "snp.signature",
        verify_signature(&raw, &report, vek.public_key_sec1())
            .map(|()| format!("signed by {}", vek.describe()))
            .map_err(|e| format!("{e} ({})", vek.describe())),
    );
    if kind == VekKind::Vcek {
        a.check("snp.chip_id", check_chip_id(vek, &report));
    }
    let committed = Tcb::from(report.committed_tcb);
    let launch = Tcb::from(report.launch_tcb);
    let (status, why) = report::tcb_status(&reported, &committed, &launch);
    a.tcb_status = Some(status.to_owned());
    a.check("snp.tcb", check_tcb(vek, kind, &reported, &committed, &launch, status, &why));
    a
}

/// Chooses the VCEK or VLEK among the endorsements and records `snp.endorsement`.
///
/// Candidates of the kind the report names are tried in order (for a VCEK, those whose hwID is
/// the report's chip ID first); the first whose key verifies the report's signature is taken,
/// else the first candidate (and `snp.signature` will say why it fails).
fn pick_endorsement_key<'p, 'a>(
    a: &mut Appraisal,
    pool: &'p Pool<'a>,
    kind: VekKind,
    raw: &[u8],
    report: &AttestationReport,
) -> Option<&'p Cert<'a>> {
    let mut candidates: Vec<&Cert<'a>> = pool.veks.iter().filter(|c| c.vek_kind() == Some(kind)).collect();
    if candidates.is_empty() {
        let others: Vec<String> = pool.veks.iter().map(Cert::describe).collect();
        let mut detail =
            format!("the report is signed by a {}, and no {} certificate was given", kind.name(), kind.name());
        if !others.is_empty() {
            detail.push_str(&format!(" (found instead: {})", others.join(", ")));
        }
        detail.push_str(&match kind {
            VekKind::Vcek => format!(
                "; pass the chip's VCEK with `--cert vcek.der` (AMD KDS: {}), or an extended report's certificate table",
                kds_url(report)
            ),
            VekKind::Vlek => "; pass the VLEK certificate (from the cloud provider, or the extended report's \
                              certificate table) with `--cert vlek.der`"
                .to_owned(),
        });
        if !pool.notes.is_empty() {
            detail.push_str(&format!("; ignored: {}", pool.notes.join("; ")));
        }
        a.fail("snp.endorsement", detail);
        return None;
    }
    if kind == VekKind::Vcek {
        // Stable: candidates keep their order within each group.
        candidates.sort_by_key(|c| check_chip_id(c, report).is_err());
    }
    let chosen = if candidates.len() == 1 {
        candidates.first().copied()
    } else {
        candidates
            .iter()
            .copied()
            .find(|c| verify_signature(raw, report, c.public_key_sec1()).is_ok())
            .or_else(|| candidates.first().copied())
    }?;
    let product = chosen.product().map(|p| format!(", product {p}")).unwrap_or_default();
    a.pass("snp.endorsement", format!("{} {}{product}", kind.name(), chosen.describe()));
    Some(chosen)
}

/// The AMD KDS address of a report's VCEK, for messages. The product is known from the CPUID
/// fields of version 3 and later reports; version 2 reports come from Milan or Genoa.
fn kds_url(report: &AttestationReport) -> String {
    let t = Tcb::from(report.reported_tcb);
    let product = match (report.cpuid_fam_id, report.cpuid_mod_id) {
        (Some(family), Some(model)) => match sev::Generation::identify_cpu(family, model) {
            Ok(sev::Generation::Milan) => "Milan",
            Ok(sev::Generation::Genoa) => "Genoa",
            Ok(sev::Generation::Turin) => "Turin",
            Ok(sev::Generation::Venice) => "Venice",
            _ => "{product}",
        },
        _ => "{Milan|Genoa}",
    };
    let fmc = t.fmc.map(|fmc| format!("fmcSPL={fmc}&")).unwrap_or_default();
    // Turin and later VCEKs are named by the first 8 bytes of the chip ID.
    let hw_id = if t.fmc.is_some() { report.chip_id.get(..8).unwrap_or_default() } else { &report.chip_id[..] };
    format!(
        "https://kdsintf.amd.com/vcek/v1/{product}/{}?{fmc}blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
        hex::encode(hw_id),
        t.bootloader,
        t.tee,
        t.snp,
        t.microcode
    )
}

/// `snp.chip_id`: the VCEK's hwID is the report's chip ID.
fn check_chip_id(vek: &Cert<'_>, report: &AttestationReport) -> Result<String, String> {
    let chip = &report.chip_id;
    if chip.iter().all(|&b| b == 0) {
        return Ok("the report's chip ID is masked (MASK_CHIP_ID); the VCEK's signature binds the chip".into());
    }
    let hw_id = vek.hw_id().ok_or_else(|| format!("{} has no hwID extension", vek.describe()))??;
    let matches = match hw_id.len() {
        64 => hw_id == chip.as_slice(),
        // Turin: an 8-byte hardware ID, and the rest of the chip ID is zero.
        8 => chip.get(..8) == Some(hw_id) && chip.get(8..).is_some_and(|rest| rest.iter().all(|&b| b == 0)),
        n => return Err(format!("{}: hwID of {n} bytes (expected 64, or 8 on Turin)", vek.describe())),
    };
    if matches {
        Ok(format!("the VCEK's hwID is the report's chip ID {}", hex::encode(hw_id)))
    } else {
        Err(format!(
            "the VCEK is for chip {}, the report comes from chip {}",
            hex::encode(hw_id),
            hex::encode(chip.get(..hw_id.len()).unwrap_or_default())
        ))
    }
}

/// `snp.tcb`: the reported TCB is not above the certificate's, and the TCB status explained.
fn check_tcb(
    vek: &Cert<'_>,
    kind: VekKind,
    reported: &Tcb,
    committed: &Tcb,
    launch: &Tcb,
    status: &str,
    why: &str,
) -> Result<String, String> {
    let certified = vek.tcb()?;
    match (reported.fmc.is_some(), certified.fmc.is_some()) {
        (false, true) => {
            return Err(format!(
                "the {} certifies a Turin-layout TCB ({certified}) but the report uses the pre-Turin layout",
                kind.name()
            ));
        }
        (true, false) => {
            return Err(format!(
                "the report uses the Turin TCB layout but the {} certifies a pre-Turin TCB ({certified})",
                kind.name()
            ));
        }
        _ => {}
    }
    let above = reported.components_above(&certified);
    if !above.is_empty() {
        return Err(format!(
            "the reported TCB ({reported}) is above the TCB the {} certifies ({certified}) in {}",
            kind.name(),
            above.join(", ")
        ));
    }
    Ok(format!(
        "reported TCB ({reported}) within the {}'s ({certified}); committed ({committed}), launch ({launch}); status {status}: {why}",
        kind.name()
    ))
}

/// Fills the measurements and report data.
fn measure(a: &mut Appraisal, r: &AttestationReport, raw: &[u8]) {
    // The raw field: the `sev` crate's conversion to u64 sets the reserved bit 17.
    let policy = raw.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes).unwrap_or_default();
    let reported = Tcb::from(r.reported_tcb);
    a.measure("measurement", hex::encode(r.measurement));
    a.measure("host_data", hex::encode(r.host_data));
    a.measure("policy", format!("{policy:016x}"));
    a.measure("debug", r.policy.debug_allowed().to_string());
    a.measure("vmpl", r.vmpl.to_string());
    a.measure("tcb_bootloader", reported.bootloader.to_string());
    a.measure("tcb_tee", reported.tee.to_string());
    a.measure("tcb_snp", reported.snp.to_string());
    a.measure("tcb_microcode", reported.microcode.to_string());
    if let Some(fmc) = reported.fmc {
        a.measure("tcb_fmc", fmc.to_string());
    }
    a.measure("guest_svn", r.guest_svn.to_string());
    a.measure("family_id", hex::encode(r.family_id));
    a.measure("image_id", hex::encode(r.image_id));
    a.measure("id_key_digest", hex::encode(r.id_key_digest));
    a.measure("author_key_digest", hex::encode(r.author_key_digest));
    a.measure("report_version", r.version.to_string());
    a.report_data = r.report_data.to_vec();
}

/// Seconds since the Unix epoch (negative before it).
fn unix_secs(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map(|s| -s).unwrap_or(i64::MIN),
    }
}
