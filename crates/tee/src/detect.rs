//! Which platform backends this machine can use, and why (or why not): `lamina attest --detect`.
//!
//! Detection only looks: it reads files and checks that devices exist, and for configfs-tsm it
//! makes and removes one report entry to learn the provider (no report is generated). It never
//! opens a TPM: a TCTI string or a TPM device file is enough to say the backend may work.

use std::path::PathBuf;

use lamina_types::PlatformKind;

use crate::sgx::SgxPlatform;
use crate::tsm::{KernelHook, TsmPlatform};
use crate::{Platform as _, TeeError};

/// Where to look.
#[derive(Clone)]
pub struct DetectOptions {
    /// configfs-tsm's report directory ([`crate::tsm::DEFAULT_ROOT`]).
    pub tsm_root: PathBuf,
    /// Stands in for the kernel's side of configfs-tsm (tests only; `None` on real machines).
    pub tsm_kernel: Option<KernelHook>,
    /// Gramine's attestation directory ([`crate::sgx::DEFAULT_ROOT`]).
    pub sgx_root: PathBuf,
    /// A TPM TCTI the user gave (e.g. `device:/dev/tpmrm0`, `swtpm:port=2321`).
    pub tpm_tcti: Option<String>,
    /// TPM device files, in order of preference (`/dev/tpmrm0`, `/dev/tpm0`).
    pub tpm_devices: Vec<PathBuf>,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self {
            tsm_root: crate::tsm::DEFAULT_ROOT.into(),
            tsm_kernel: None,
            sgx_root: crate::sgx::DEFAULT_ROOT.into(),
            tpm_tcti: None,
            tpm_devices: vec!["/dev/tpmrm0".into(), "/dev/tpm0".into()],
        }
    }
}

impl std::fmt::Debug for DetectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectOptions")
            .field("tsm_root", &self.tsm_root)
            .field("tsm_kernel", &self.tsm_kernel.as_ref().map(|_| ".."))
            .field("sgx_root", &self.sgx_root)
            .field("tpm_tcti", &self.tpm_tcti)
            .field("tpm_devices", &self.tpm_devices)
            .finish()
    }
}

/// What detection found for one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    /// The backend: `tsm`, `sgx`, `tpm` or `sim`.
    pub backend: &'static str,
    /// Whether it can be used here.
    pub available: bool,
    /// The platform kind it would attest as, when known (configfs-tsm learns it from the provider).
    pub kind: Option<PlatformKind>,
    /// Why it is or is not available, for people (starts with the interface's name, e.g.
    /// `configfs-tsm: ...`, `sgx: ...`).
    pub reason: String,
}

/// One line: `available   <reason>` or `unavailable <reason>`.
impl std::fmt::Display for Detection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = if self.available { "available" } else { "unavailable" };
        write!(f, "{status:<11} {}", self.reason)
    }
}

/// Detects every backend, hardware first, `sim` last.
pub fn detect(options: &DetectOptions) -> Vec<Detection> {
    vec![detect_tsm(options), detect_sgx(options), detect_tpm(options), detect_sim()]
}

fn detect_tsm(options: &DetectOptions) -> Detection {
    let root = &options.tsm_root;
    let opened = match &options.tsm_kernel {
        Some(kernel) => TsmPlatform::open_with_kernel(root, kernel.clone()),
        None => TsmPlatform::open(root),
    };
    let (available, kind, reason) = match opened {
        Ok(tsm) => {
            let info = tsm.info();
            (true, Some(info.kind), format!("configfs-tsm: {}", info.description))
        }
        Err(TeeError::NotFound { .. }) => (
            false,
            None,
            format!(
                "configfs-tsm: {} does not exist (not a confidential VM, or a kernel older than 6.7)",
                root.display()
            ),
        ),
        Err(e) => (false, None, format!("configfs-tsm is present but cannot be used: {e}")),
    };
    Detection { backend: "tsm", available, kind, reason }
}

fn detect_sgx(options: &DetectOptions) -> Detection {
    let root = &options.sgx_root;
    let (available, reason) = match SgxPlatform::open(root) {
        Ok(_) => (true, format!("sgx: Gramine's {} offers DCAP quotes", root.display())),
        Err(TeeError::NotFound { .. }) => {
            (false, format!("sgx: {} not found (not running under Gramine)", root.display()))
        }
        Err(e) => (false, format!("sgx: {e}")),
    };
    Detection { backend: "sgx", available, kind: available.then_some(PlatformKind::Sgx), reason }
}

fn detect_tpm(options: &DetectOptions) -> Detection {
    let (available, reason) = if let Some(tcti) = &options.tpm_tcti {
        (true, format!("tpm: TCTI `{tcti}` given (not opened by detection)"))
    } else if let Some(device) = options.tpm_devices.iter().find(|d| d.exists()) {
        (true, format!("tpm: {} present (not opened by detection)", device.display()))
    } else {
        let devices: Vec<String> = options.tpm_devices.iter().map(|d| d.display().to_string()).collect();
        (false, format!("tpm: no TCTI given and {} not found", devices.join(", ")))
    };
    Detection { backend: "tpm", available, kind: available.then_some(PlatformKind::Tpm), reason }
}

fn detect_sim() -> Detection {
    Detection {
        backend: "sim",
        available: true,
        kind: Some(PlatformKind::Sim),
        reason: "sim: always available, NO hardware protection".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::tsm::KernelEvent;

    fn nowhere(dir: &std::path::Path) -> DetectOptions {
        DetectOptions {
            tsm_root: dir.join("tsm"),
            tsm_kernel: None,
            sgx_root: dir.join("attestation"),
            tpm_tcti: None,
            tpm_devices: vec![dir.join("tpmrm0"), dir.join("tpm0")],
        }
    }

    #[test]
    fn a_plain_machine_has_only_sim() {
        let dir = tempfile::tempdir().expect("temp dir");
        let found = detect(&nowhere(dir.path()));
        let names: Vec<&str> = found.iter().map(|d| d.backend).collect();
        assert_eq!(names, ["tsm", "sgx", "tpm", "sim"]);
        let available: Vec<bool> = found.iter().map(|d| d.available).collect();
        assert_eq!(available, [false, false, false, true]);
        assert!(found[0].reason.contains("tsm does not exist (not a confidential VM"), "{}", found[0].reason);
        assert!(found[1].reason.contains("attestation not found (not running under Gramine)"), "{}", found[1].reason);
        assert!(found[2].reason.starts_with("tpm: no TCTI given and "), "{}", found[2].reason);
        assert!(found[2].reason.ends_with("tpm0 not found"), "{}", found[2].reason);
        assert_eq!(found[3].to_string(), "available   sim: always available, NO hardware protection");
        assert!(found[1].to_string().starts_with("unavailable sgx: "), "{}", found[1]);
    }

    #[test]
    fn tpm_is_found_by_tcti_or_device_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = nowhere(dir.path());
        options.tpm_tcti = Some("swtpm:port=2321".into());
        let tpm = &detect(&options)[2];
        assert!(tpm.available && tpm.reason.contains("`swtpm:port=2321`"), "{tpm:?}");
        options.tpm_tcti = None;
        std::fs::write(dir.path().join("tpm0"), b"").expect("fake device");
        let tpm = &detect(&options)[2];
        assert!(tpm.available && tpm.reason.contains("tpm0 present"), "{tpm:?}");
        assert_eq!(tpm.kind, Some(PlatformKind::Tpm));
    }

    #[test]
    fn sgx_needs_dcap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = nowhere(dir.path());
        std::fs::create_dir(&options.sgx_root).expect("fake root");
        std::fs::write(options.sgx_root.join("attestation_type"), b"none\n").expect("type");
        let sgx = &detect(&options)[1];
        assert!(!sgx.available);
        assert!(sgx.reason.contains("`none`, not `dcap`"), "{}", sgx.reason);
        std::fs::write(options.sgx_root.join("attestation_type"), b"dcap").expect("type");
        let sgx = &detect(&options)[1];
        assert!(sgx.available, "{sgx:?}");
        assert_eq!(sgx.kind, Some(PlatformKind::Sgx));
    }

    #[test]
    fn tsm_reports_its_provider() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = nowhere(dir.path());
        std::fs::create_dir(&options.tsm_root).expect("fake root");
        // A plain directory: the entry gets no provider file.
        let tsm = &detect(&options)[0];
        assert!(!tsm.available);
        assert!(tsm.reason.contains("present but cannot be used"), "{}", tsm.reason);
        options.tsm_kernel = Some(Arc::new(|event| match event {
            KernelEvent::Created(entry) => std::fs::write(entry.join("provider"), "sev_guest\n"),
            KernelEvent::Removing(entry) => std::fs::remove_file(entry.join("provider")),
            _ => Ok(()),
        }));
        let tsm = &detect(&options)[0];
        assert!(tsm.available, "{tsm:?}");
        assert_eq!(tsm.kind, Some(PlatformKind::Snp));
        assert!(tsm.reason.contains("AMD SEV-SNP guest (configfs-tsm provider sev_guest"), "{}", tsm.reason);
        let leftovers = std::fs::read_dir(&options.tsm_root).expect("root").count();
        assert_eq!(leftovers, 0, "the probe entry is removed");
    }
}
