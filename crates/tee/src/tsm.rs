//! The `tsm` platform: Linux configfs-tsm, one interface for TDX, SEV-SNP and CCA guests.
//!
//! Since Linux 6.7 a confidential guest exposes `/sys/kernel/config/tsm/report`: making a
//! directory there makes a report entry; writing 64 bytes to its `inblob` and reading its
//! `outblob` yields the platform's native evidence for those bytes (a TDX quote, an SEV-SNP
//! report, a CCA token), `auxblob` holds extra material (the SNP certificate table), and
//! `provider` names the hardware. `generation` counts writes, so a reader can tell whether
//! someone else wrote the entry between its write and its read.
//!
//! Each request uses a fresh, uniquely named entry, removed afterwards; a race is retried a few
//! times, then reported. Before returning, the backend checks that the evidence is whole and
//! binds exactly the caller's report data, so a stale or truncated blob never leaves here.
//!
//! These platforms have no sealing key reachable this way: their sealing root is released by the
//! control plane after attestation, so [`Platform::sealing_root`] says so.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lamina_types::PlatformKind;
use lamina_types::cbor::{self, Value};

use crate::{Evidence, Platform, PlatformInfo, SealingRoot, TeeError};

/// Where the kernel exposes configfs-tsm reports.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/tsm/report";

/// How many times a request is retried when another writer races it.
pub const MAX_ATTEMPTS: u32 = 3;

/// The largest blob read from the kernel.
const MAX_BLOB_LEN: u64 = 1 << 20;

const NAME: &str = "configfs-tsm";

/// What the backend just did in a report entry.
///
/// The kernel reacts to these (it fills a new entry's attributes, bumps `generation` on a write,
/// drops the attributes with the entry); a [`KernelHook`] does the same in a plain directory,
/// so the backend can be exercised without a confidential VM.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum KernelEvent<'a> {
    /// The entry directory was just made.
    Created(&'a Path),
    /// The report data was just written to the entry's `inblob`.
    InblobWritten(&'a Path),
    /// The entry is about to be removed.
    Removing(&'a Path),
}

/// Stands in for the kernel's side of configfs-tsm (see [`KernelEvent`]); for tests.
pub type KernelHook = Arc<dyn Fn(KernelEvent<'_>) -> std::io::Result<()> + Send + Sync>;

/// The platform kind a configfs-tsm `provider` names, if Lamina knows it.
pub fn kind_of_provider(provider: &str) -> Option<PlatformKind> {
    match provider {
        "tdx_guest" => Some(PlatformKind::Tdx),
        "sev_guest" => Some(PlatformKind::Snp),
        "arm_cca_guest" => Some(PlatformKind::Cca),
        _ => None,
    }
}

/// A confidential guest's configfs-tsm.
pub struct TsmPlatform {
    root: PathBuf,
    provider: String,
    kind: PlatformKind,
    kernel: Option<KernelHook>,
}

impl std::fmt::Debug for TsmPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsmPlatform")
            .field("root", &self.root)
            .field("provider", &self.provider)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl TsmPlatform {
    /// Opens configfs-tsm at `root` (normally [`DEFAULT_ROOT`]) and learns its provider by
    /// making (and removing) one report entry.
    ///
    /// # Errors
    /// [`TeeError::NotFound`] when `root` does not exist (not a confidential VM, or a kernel
    /// older than 6.7), [`TeeError::Io`] when an entry cannot be made (configfs-tsm needs root),
    /// [`TeeError::Device`] when the provider is unknown.
    pub fn open(root: &Path) -> Result<Self, TeeError> {
        Self::open_inner(root, None)
    }

    /// Like [`open`](Self::open), with `kernel` doing the kernel's part in a plain directory.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with_kernel(root: &Path, kernel: KernelHook) -> Result<Self, TeeError> {
        Self::open_inner(root, Some(kernel))
    }

    fn open_inner(root: &Path, kernel: Option<KernelHook>) -> Result<Self, TeeError> {
        crate::platform::require_dir(NAME, root, "is this a confidential VM with a kernel ≥ 6.7?")?;
        let entry = Entry::create(root, kernel.as_ref())?;
        let provider = entry.read_text("provider")?;
        drop(entry);
        let kind = kind_of_provider(&provider).ok_or_else(|| {
            device(
                &root.join("*/provider"),
                format!("unknown provider `{provider}` (Lamina knows tdx_guest, sev_guest and arm_cca_guest)"),
            )
        })?;
        Ok(Self { root: root.into(), provider, kind, kernel })
    }

    /// The provider the kernel named (`tdx_guest`, `sev_guest` or `arm_cca_guest`).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Where configfs-tsm is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// One request in a fresh entry; `Ok(Err((before, after)))` when another writer raced it.
    fn request(&self, report_data: &[u8; 64]) -> Result<Result<Evidence, (u64, u64)>, TeeError> {
        let entry = Entry::create(&self.root, self.kernel.as_ref())?;
        let before = entry.generation()?;
        entry.write("inblob", report_data)?;
        entry.event(KernelEvent::InblobWritten(&entry.path))?;
        let outblob = entry.read_blob("outblob")?;
        let auxblob = match entry.read_blob("auxblob") {
            Ok(blob) => blob,
            Err(TeeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let provider = entry.read_text("provider")?;
        let after = entry.generation()?;
        if after != before.wrapping_add(1) {
            return Ok(Err((before, after)));
        }
        if provider != self.provider {
            return Err(device(
                &entry.path.join("provider"),
                format!("the provider changed from `{}` to `{provider}`", self.provider),
            ));
        }
        check_outblob(self.kind, &outblob, report_data)
            .map_err(|reason| device(&entry.path.join("outblob"), reason))?;
        let endorsements = if auxblob.is_empty() { Vec::new() } else { vec![auxblob] };
        Ok(Ok(Evidence { native: outblob, endorsements }))
    }
}

impl Platform for TsmPlatform {
    fn info(&self) -> PlatformInfo {
        let what = match self.kind {
            PlatformKind::Tdx => "Intel TDX trust domain",
            PlatformKind::Snp => "AMD SEV-SNP guest",
            _ => "Arm CCA realm",
        };
        PlatformInfo {
            kind: self.kind,
            description: format!("{what} (configfs-tsm provider {} at {})", self.provider, self.root.display()),
            hardware_backed: true,
        }
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, TeeError> {
        let mut raced = (0, 0);
        for _ in 0..MAX_ATTEMPTS {
            match self.request(report_data)? {
                Ok(evidence) => return Ok(evidence),
                Err(generations) => raced = generations,
            }
        }
        Err(device(
            &self.root,
            format!(
                "another writer changed the report entry during each of {MAX_ATTEMPTS} attempts \
                 (generation went from {} to {}, expected {}); try again",
                raced.0,
                raced.1,
                raced.0.wrapping_add(1)
            ),
        ))
    }

    fn sealing_root(&self) -> Result<SealingRoot, TeeError> {
        Err(TeeError::Unsupported {
            platform: self.kind.name(),
            what: "hardware sealing key",
            hint: "TDX, SEV-SNP and CCA guests get their sealing root from the control plane after attestation",
        })
    }
}

fn device(path: &Path, reason: String) -> TeeError {
    TeeError::Device { platform: NAME, path: path.into(), reason }
}

/// A report entry, removed when dropped.
struct Entry<'a> {
    path: PathBuf,
    kernel: Option<&'a KernelHook>,
}

impl<'a> Entry<'a> {
    fn create(root: &Path, kernel: Option<&'a KernelHook>) -> Result<Self, TeeError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut last = None;
        for _ in 0..8 {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let name = format!("lamina-{}-{}-{nanos:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
            let path = root.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let entry = Self { path, kernel };
                    entry.event(KernelEvent::Created(&entry.path))?;
                    return Ok(entry);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some((path, e)),
                Err(source) => return Err(TeeError::Io { action: "create the report entry", path, source }),
            }
        }
        let (path, source) = last.unwrap_or_else(|| (root.into(), std::io::ErrorKind::AlreadyExists.into()));
        Err(TeeError::Io { action: "create the report entry", path, source })
    }

    fn event(&self, event: KernelEvent<'_>) -> Result<(), TeeError> {
        match self.kernel {
            Some(kernel) => kernel(event).map_err(|source| TeeError::Io {
                action: "emulate the kernel in",
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    fn write(&self, attribute: &str, bytes: &[u8]) -> Result<(), TeeError> {
        let path = self.path.join(attribute);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|source| TeeError::Io { action: "write", path, source })
    }

    fn read_blob(&self, attribute: &str) -> Result<Vec<u8>, TeeError> {
        let path = self.path.join(attribute);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_BLOB_LEN + 1).read_to_end(&mut bytes))
            .map_err(|source| TeeError::Io { action: "read", path: path.clone(), source })?;
        if bytes.len() as u64 > MAX_BLOB_LEN {
            return Err(device(&path, format!("it holds more than {MAX_BLOB_LEN} bytes")));
        }
        Ok(bytes)
    }

    fn read_text(&self, attribute: &str) -> Result<String, TeeError> {
        let bytes = self.read_blob(attribute)?;
        let text = String::from_utf8(bytes).map_err(|_| device(&self.path.join(attribute), "it is not text".into()))?;
        Ok(text.trim().to_owned())
    }

    fn generation(&self) -> Result<u64, TeeError> {
        let text = self.read_text("generation")?;
        text.parse().map_err(|_| device(&self.path.join("generation"), format!("`{text}` is not a number")))
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        // Best effort: a leftover entry holds no secret, and the kernel frees it with the VM.
        let _ = self.event(KernelEvent::Removing(&self.path));
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Checks that a blob is whole evidence of its platform and binds exactly `report_data`.
pub(crate) fn check_outblob(kind: PlatformKind, blob: &[u8], report_data: &[u8; 64]) -> Result<(), String> {
    if blob.is_empty() {
        return Err("the outblob is empty".into());
    }
    let bound = match kind {
        PlatformKind::Tdx => tdx_report_data(blob)?,
        PlatformKind::Snp => snp_report_data(blob)?,
        PlatformKind::Cca => cca_challenge(blob)?,
        _ => return Ok(()),
    };
    if bound == report_data[..] {
        Ok(())
    } else {
        Err(format!("the {kind} evidence binds other report data than was written to inblob (a stale report?)"))
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes.get(at..at.checked_add(2)?).and_then(|b| b.try_into().ok()).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at.checked_add(4)?).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
}

/// A TDX quote's report data (quote v4: body at 48; v5: body descriptor at 48, body at 54).
fn tdx_report_data(quote: &[u8]) -> Result<Vec<u8>, String> {
    const REPORT_DATA_IN_BODY: usize = 520;
    let truncated =
        |need: usize| format!("the TDX quote is truncated: {} bytes, its structure needs {need}", quote.len());
    let version = u16_at(quote, 0).ok_or_else(|| truncated(48))?;
    let tee_type = u32_at(quote, 4).ok_or_else(|| truncated(48))?;
    if tee_type != 0x81 {
        return Err(format!("the outblob is not a TDX quote (TEE type {tee_type:#x})"));
    }
    let (body, body_len): (usize, usize) = match version {
        4 => (48, 584),
        5 => (54, u32_at(quote, 50).ok_or_else(|| truncated(54))? as usize),
        v => return Err(format!("TDX quote version {v} is not supported")),
    };
    if body_len < REPORT_DATA_IN_BODY + 64 {
        return Err(format!("the TDX quote body is {body_len} bytes, too short for report data"));
    }
    let signature_at = body.saturating_add(body_len);
    let signature_len = u32_at(quote, signature_at).ok_or_else(|| truncated(signature_at + 4))? as usize;
    let need = signature_at.saturating_add(4).saturating_add(signature_len);
    if quote.len() < need {
        return Err(truncated(need));
    }
    Ok(quote[body + REPORT_DATA_IN_BODY..body + REPORT_DATA_IN_BODY + 64].to_vec())
}

/// An SEV-SNP attestation report's report data.
fn snp_report_data(report: &[u8]) -> Result<Vec<u8>, String> {
    const REPORT_LEN: usize = 0x4a0;
    if report.len() < REPORT_LEN {
        return Err(format!("the SEV-SNP report is truncated: {} bytes, not {REPORT_LEN}", report.len()));
    }
    Ok(report[0x50..0x90].to_vec())
}

/// A CCA token's realm challenge: `399({44241: COSE_Sign1(realm claims {10: challenge})})`.
fn cca_challenge(token: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |what: &str| format!("the outblob is not a whole CCA token: {what}");
    let max = MAX_BLOB_LEN as usize;
    let value = cbor::decode_one(token, max).map_err(|e| bad(&e.to_string()))?;
    let Value::Tag(399, collection) = value else { return Err(bad("no CCA collection tag")) };
    let realm = entry_of(*collection, 44241).ok_or_else(|| bad("no realm token"))?;
    let Value::Bytes(realm) = realm else { return Err(bad("the realm token is not a byte string")) };
    let Value::Tag(18, sign1) = cbor::decode_one(&realm, max).map_err(|e| bad(&e.to_string()))? else {
        return Err(bad("the realm token is not a COSE_Sign1"));
    };
    let Value::Array(items) = *sign1 else { return Err(bad("the realm token is not a COSE_Sign1")) };
    let Some(Value::Bytes(payload)) = items.into_iter().nth(2) else {
        return Err(bad("the realm token has no payload"));
    };
    let claims = cbor::decode_one(&payload, max).map_err(|e| bad(&e.to_string()))?;
    match entry_of(claims, 10) {
        Some(Value::Bytes(challenge)) => Ok(challenge),
        _ => Err(bad("the realm token has no challenge")),
    }
}

fn entry_of(map: Value, key: u64) -> Option<Value> {
    let Value::Map(entries) = map else { return None };
    entries.into_iter().find(|(k, _)| *k == Value::Integer(key.into())).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_map_to_kinds() {
        assert_eq!(kind_of_provider("tdx_guest"), Some(PlatformKind::Tdx));
        assert_eq!(kind_of_provider("sev_guest"), Some(PlatformKind::Snp));
        assert_eq!(kind_of_provider("arm_cca_guest"), Some(PlatformKind::Cca));
        assert_eq!(kind_of_provider("tpm"), None);
    }

    #[test]
    fn snp_report_data_is_at_0x50() {
        let mut report = vec![0; 0x4a0];
        report[0x50..0x90].copy_from_slice(&[7; 64]);
        assert_eq!(check_outblob(PlatformKind::Snp, &report, &[7; 64]), Ok(()));
        assert!(check_outblob(PlatformKind::Snp, &report, &[8; 64]).expect_err("other").contains("stale"));
        assert!(check_outblob(PlatformKind::Snp, &report[..0x49f], &[7; 64]).expect_err("short").contains("truncated"));
    }

    #[test]
    fn tdx_quote_needs_its_signature_data() {
        let mut quote = vec![0; 48 + 584 + 4 + 10];
        quote[0] = 4;
        quote[4] = 0x81;
        quote[48 + 520..48 + 584].copy_from_slice(&[9; 64]);
        quote[632] = 10;
        assert_eq!(check_outblob(PlatformKind::Tdx, &quote, &[9; 64]), Ok(()));
        assert!(check_outblob(PlatformKind::Tdx, &quote[..645], &[9; 64]).expect_err("short").contains("needs 646"));
        quote[4] = 0;
        assert!(check_outblob(PlatformKind::Tdx, &quote, &[9; 64]).expect_err("sgx").contains("not a TDX quote"));
    }

    proptest::proptest! {
        #[test]
        fn outblob_checks_never_panic(blob in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1400)) {
            for kind in PlatformKind::ALL {
                let _ = check_outblob(kind, &blob, &[0; 64]);
            }
        }
    }
}
