//! `lamina attest`: evidence from this machine's TEE, bound to claims about a module.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use lamina_tee::Platform;
use lamina_types::{Claims, ModuleHash};
use rand_core::RngCore as _;
use sha2::Digest as _;

use crate::cli::{AttestArgs, PlatformChoice};

pub(crate) fn attest(args: AttestArgs) -> anyhow::Result<i32> {
    if args.detect {
        return detect(&args);
    }
    let Some(output) = &args.output else { bail!("say where to write the envelope with -o FILE") };
    let module_hash = match &args.module {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read the module {}", path.display()))?;
            Some(ModuleHash::of(&bytes))
        }
        None => None,
    };
    let nonce = match args.nonce.as_ref().map(|n| &n.0) {
        Some(n) if !(8..=64).contains(&n.len()) => bail!("the nonce is {} bytes; give 8 to 64 bytes in hex", n.len()),
        Some(n) => n.clone(),
        None => {
            let mut n = vec![0u8; 32];
            rand_core::OsRng.fill_bytes(&mut n);
            n
        }
    };
    let platform = open_platform(&args, module_hash.as_ref())?;
    let info = platform.info();
    let claims = Claims {
        platform: info.kind,
        runtime_measurement: runtime_measurement()?,
        module_hash,
        config_digest: None,
        instance_key: None,
        nonce,
        issued_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    let envelope = lamina_tee::attest(platform.as_ref(), &claims).context("the platform could not attest")?;
    let bytes = envelope.to_cbor();
    std::fs::write(output, &bytes).with_context(|| format!("cannot write {}", output.display()))?;
    if !info.hardware_backed {
        eprintln!("warning: {}", info.description);
    }
    eprintln!(
        "wrote a {} envelope ({} bytes) to {}; nonce {}",
        info.kind,
        bytes.len(),
        output.display(),
        hex::encode(&claims.nonce)
    );
    Ok(0)
}

fn state_dir(args: &AttestArgs) -> anyhow::Result<PathBuf> {
    match &args.state_dir {
        Some(d) => Ok(d.clone()),
        None => dirs::state_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))
            .map(|d| d.join("lamina"))
            .context("no state directory: pass --state-dir DIR or set LAMINA_STATE_DIR"),
    }
}

/// The hash of the running `lamina` binary: what the claims call the runtime measurement.
fn runtime_measurement() -> anyhow::Result<Vec<u8>> {
    let exe = std::env::current_exe().context("cannot find the running lamina binary")?;
    let bytes = std::fs::read(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
    Ok(sha2::Sha256::digest(&bytes).to_vec())
}

fn detect_options(args: &AttestArgs) -> lamina_tee::DetectOptions {
    lamina_tee::DetectOptions {
        tsm_root: args.tsm_root.clone(),
        sgx_root: args.sgx_root.clone(),
        tpm_tcti: args.tcti.clone(),
        ..lamina_tee::DetectOptions::default()
    }
}

fn open_platform(args: &AttestArgs, module: Option<&ModuleHash>) -> anyhow::Result<Box<dyn Platform>> {
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
        PlatformChoice::Tpm => open_tpm(args, module),
    }
}

#[cfg(feature = "tpm")]
fn open_tpm(args: &AttestArgs, module: Option<&ModuleHash>) -> anyhow::Result<Box<dyn Platform>> {
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
    eprintln!(
        "TPM attestation key name {} (enrol it, or list it in the policy's anchors.tpm_enrolled_aks)",
        hex::encode(tpm.ak_name())
    );
    Ok(Box::new(tpm))
}

#[cfg(not(feature = "tpm"))]
fn open_tpm(_args: &AttestArgs, _module: Option<&ModuleHash>) -> anyhow::Result<Box<dyn Platform>> {
    bail!("this lamina was built without TPM support (the `tpm` feature)")
}

fn detect(args: &AttestArgs) -> anyhow::Result<i32> {
    for d in lamina_tee::detect(&detect_options(args)) {
        println!("{:<4} {d}", d.backend);
    }
    Ok(0)
}
