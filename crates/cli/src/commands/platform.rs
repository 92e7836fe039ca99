//! Opening the platform a command asked for (`--platform`, `--state-dir`, `--tcti`, …): shared by
//! `lamina attest` and `lamina run`.

use std::path::PathBuf;

use anyhow::Context as _;
#[cfg(not(feature = "tpm"))]
use anyhow::bail;
use lamina_tee::Platform;
use lamina_types::ModuleHash;

use crate::cli::{PlatformArgs, PlatformChoice};

pub(crate) fn state_dir(args: &PlatformArgs) -> anyhow::Result<PathBuf> {
    match &args.state_dir {
        Some(d) => Ok(d.clone()),
        None => dirs::state_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))
            .map(|d| d.join("lamina"))
            .context("no state directory: pass --state-dir DIR or set LAMINA_STATE_DIR"),
    }
}

pub(crate) fn detect_options(args: &PlatformArgs) -> lamina_tee::DetectOptions {
    lamina_tee::DetectOptions {
        tsm_root: args.tsm_root.clone(),
        sgx_root: args.sgx_root.clone(),
        tpm_tcti: args.tcti.clone(),
        ..lamina_tee::DetectOptions::default()
    }
}

pub(crate) fn open_platform(
    args: &PlatformArgs,
    module: Option<&ModuleHash>,
    announce: bool,
) -> anyhow::Result<Box<dyn Platform + Send>> {
    let choice = match args.platform {
        PlatformChoice::Auto => {
            let found = lamina_tee::detect(&detect_options(args)).into_iter().find(|d| d.available);
            match found.map(|d| d.backend) {
                Some("tsm") => PlatformChoice::Tsm,
                Some("sgx") => PlatformChoice::Sgx,
                Some("tpm") => PlatformChoice::Tpm,
                _ => {
                    eprintln!(
                        "warning: no hardware platform found (`lamina attest --detect` says why); using sim, which \
                         has NO hardware protection"
                    );
                    PlatformChoice::Sim
                }
            }
        }
        other => other,
    };
    match choice {
        PlatformChoice::Sim | PlatformChoice::Auto => {
            let dir = state_dir(args)?;
            let sim = lamina_tee::sim::SimPlatform::open(&dir)
                .with_context(|| format!("cannot open the sim platform in {}", dir.display()))?;
            Ok(Box::new(sim))
        }
        PlatformChoice::Tsm => {
            Ok(Box::new(lamina_tee::TsmPlatform::open(&args.tsm_root).context("cannot use configfs-tsm (--tsm-root)")?))
        }
        PlatformChoice::Sgx => Ok(Box::new(
            lamina_tee::SgxPlatform::open(&args.sgx_root)
                .context("cannot use Gramine's attestation files (--sgx-root)")?,
        )),
        PlatformChoice::Tpm => open_tpm(args, module, announce),
    }
}

#[cfg(feature = "tpm")]
fn open_tpm(
    args: &PlatformArgs,
    module: Option<&ModuleHash>,
    announce: bool,
) -> anyhow::Result<Box<dyn Platform + Send>> {
    let tcti = args
        .tcti
        .as_deref()
        .context("no TPM given: pass --tcti (e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321) or set TCTI")?;
    let dir = state_dir(args)?;
    let tpm =
        lamina_tee_tpm::TpmPlatform::open(tcti, &dir).with_context(|| format!("cannot use the TPM at `{tcti}`"))?;
    if let Some(module) = module {
        // Start the module PCR afresh so that its value is a function of this module alone.
        tpm.reset_module_pcr().context("cannot reset the module PCR")?;
        tpm.extend_module(module).context("cannot extend the module PCR")?;
    }
    if announce {
        eprintln!(
            "TPM attestation key name {} (enrol it, or list it in the policy's anchors.tpm_enrolled_aks)",
            hex::encode(tpm.ak_name())
        );
    }
    Ok(Box::new(tpm))
}

#[cfg(not(feature = "tpm"))]
fn open_tpm(
    _args: &PlatformArgs,
    _module: Option<&ModuleHash>,
    _announce: bool,
) -> anyhow::Result<Box<dyn Platform + Send>> {
    bail!("this lamina was built without TPM support (the `tpm` feature)")
}
