//! `lamina attest`: evidence from this machine's TEE, bound to claims about a module.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use lamina_types::{Claims, ModuleHash};
use rand_core::RngCore as _;

use crate::cli::AttestArgs;
use crate::commands::platform::{detect_options, open_platform};

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
    let platform = open_platform(&args.platform, module_hash.as_ref(), true)?;
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

/// The hash of the running `lamina` binary: what the claims call the runtime measurement.
pub(crate) fn runtime_measurement() -> anyhow::Result<Vec<u8>> {
    lamina_tee::runtime_measurement().context("cannot read the running lamina binary")
}

fn detect(args: &AttestArgs) -> anyhow::Result<i32> {
    for d in lamina_tee::detect(&detect_options(&args.platform)) {
        println!("{:<4} {d}", d.backend);
    }
    Ok(0)
}
