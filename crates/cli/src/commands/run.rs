//! `lamina run`: load (through the compile cache), instantiate under limits, run, report.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use lamina_runtime::{
    CacheStatus, CompileCache, Engine, EngineOptions, Exit, Limits, SealedMount, Services, TrapReason, WasiConfig,
};
use lamina_seal::{SealTo, Volume, VolumeOptions};
use lamina_types::{ModuleHash, Profile};
use sha2::Digest as _;

use crate::cli::{CacheArgs, RunArgs, SealToArg};
use crate::commands::platform::open_platform;
use crate::exit;

/// How long past `--timeout` a guest blocked in a host call (where epochs cannot interrupt it)
/// may linger before the whole process is stopped.
const BLOCKED_GRACE: Duration = Duration::from_secs(1);

pub(crate) fn run(args: RunArgs, verbose: u8) -> anyhow::Result<i32> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    // An artifact decides the profile it needs; a `.wasm` runs on the server profile by default.
    let profile = args.engine.profile.or_else(|| artifact_profile(&bytes)).unwrap_or(Profile::Server);
    let options = EngineOptions { profile, target: None, fuel: args.fuel.is_some() };
    let engine = Engine::new(options).context("cannot start the engine")?;
    let cache = cache(&args.cache);
    let program =
        engine.load(&bytes, cache.as_ref()).with_context(|| format!("cannot load {}", args.file.display()))?;
    if verbose > 0 {
        let cache_note = match program.cache_status() {
            CacheStatus::Unused if lamina_runtime::artifact::is_artifact(&bytes) => {
                "unused (precompiled artifact)".into()
            }
            status => status.to_string(),
        };
        eprintln!(
            "lamina: {} {} on the {profile} profile; compile cache: {cache_note}",
            program.kind(),
            program.hash()
        );
    }
    // Sealed directories first: their errors (another module's volume, a rollback) come before
    // the guest starts.
    let services = Services { sealed: sealed_mounts(&args, &bytes, program.hash())? };
    let program_name = args.file.file_name().map_or_else(|| "guest".into(), |n| n.to_string_lossy().into_owned());
    let wasi = WasiConfig {
        args: std::iter::once(program_name).chain(args.args).collect(),
        env: args.env,
        dirs: args.dirs,
        ..WasiConfig::default()
    };
    let limits = Limits { max_memory: args.max_memory, timeout: args.timeout, fuel: args.fuel };
    let mut instance = program.instantiate_with(&wasi, limits, services).context("cannot start the guest")?;
    let watchdog = args.timeout.map(spawn_watchdog);
    let outcome = instance.run();
    if let Some(done) = watchdog {
        // The receiver may already be gone if the watchdog fired; nothing to do then.
        let _ = done.send(());
    }
    if verbose > 0 {
        let usage = instance.usage();
        let fuel = usage.fuel_consumed.map(|f| format!(", fuel {f}")).unwrap_or_default();
        eprintln!("lamina: peak memory {}, wall time {:?}{fuel}", usage.peak_memory, usage.wall_time);
    }
    Ok(match outcome {
        Exit::Code(code) => code,
        Exit::Trap(trap) => {
            eprintln!("lamina: {}", trap.reason);
            if let Some(bt) = &trap.backtrace {
                eprintln!("{}", bt.trim_end());
            }
            match trap.reason {
                TrapReason::Timeout(_) | TrapReason::OutOfFuel(_) => exit::KILLED,
                _ => exit::TRAPPED,
            }
        }
    })
}

/// Reads the profile from an artifact header; `None` for anything else (errors come later).
fn artifact_profile(bytes: &[u8]) -> Option<Profile> {
    lamina_runtime::artifact::decode_header(bytes).ok().map(|h| h.profile)
}

fn cache(args: &CacheArgs) -> Option<CompileCache> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(|| dirs::cache_dir().map(|d| d.join("lamina")))?;
    Some(CompileCache::new(dir))
}

/// Epoch interruption stops a guest running Wasm code; a guest blocked in a host call (a long
/// sleep, a read from a silent stdin) is stopped here, by ending the process.
fn spawn_watchdog(timeout: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout + BLOCKED_GRACE) {
            eprintln!(
                "lamina: killed: exceeded the {} timeout (the guest was blocked in a host call)",
                humantime::format_duration(timeout)
            );
            std::process::exit(exit::KILLED);
        }
    });
    tx
}

/// Opens the `--sealed-dir` volumes with keys from the platform, bound as `--seal-to` says.
fn sealed_mounts(args: &RunArgs, bytes: &[u8], module: ModuleHash) -> anyhow::Result<Vec<SealedMount>> {
    if args.sealed_dirs.is_empty() {
        return Ok(Vec::new());
    }
    let seal_to = match &args.seal_to {
        SealToArg::Module => SealTo::Module(module),
        SealToArg::Signer(key) => SealTo::Signer(verify_signer(&args.file, bytes, key)?),
    };
    let platform = open_platform(&args.platform, Some(&module), false)?;
    let options = VolumeOptions { seal_to, quota: args.sealed_quota.bytes(), rollback_protection: true };
    args.sealed_dirs
        .iter()
        .map(|dir| {
            let volume = Volume::open(&dir.host, platform.as_ref(), &options)
                .with_context(|| format!("cannot open the sealed directory {}", dir.host.display()))?;
            Ok(SealedMount { guest: dir.guest.clone(), volume })
        })
        .collect()
}

/// Checks the module's detached signature (`<module>.sig`, DER ECDSA P-256 over SHA-256 of the
/// module, as `openssl dgst -sha256 -sign` makes it) with the signer's public key; returns the
/// SHA-256 of the key, the identity sealed state is bound to.
fn verify_signer(module: &std::path::Path, bytes: &[u8], key_file: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};

    if lamina_runtime::artifact::is_artifact(bytes) {
        anyhow::bail!("--seal-to signer needs the signed .wasm, not a compiled artifact");
    }
    let pem = std::fs::read_to_string(key_file)
        .with_context(|| format!("cannot read the signer key {}", key_file.display()))?;
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem)
        .with_context(|| format!("{} is not a P-256 public key in PEM", key_file.display()))?;
    let mut sig_path = module.as_os_str().to_owned();
    sig_path.push(".sig");
    let sig_path = std::path::PathBuf::from(sig_path);
    let der = std::fs::read(&sig_path).with_context(|| {
        format!(
            "cannot read the module's signature {} (make it with `openssl dgst -sha256 -sign KEY -out {} MODULE`)",
            sig_path.display(),
            sig_path.display()
        )
    })?;
    let signature = p256::ecdsa::DerSignature::try_from(der.as_slice())
        .with_context(|| format!("{} is not a DER ECDSA signature", sig_path.display()))?;
    key.verify(bytes, &signature).map_err(|_| {
        anyhow::anyhow!("{} does not verify with the signer key {}", sig_path.display(), key_file.display())
    })?;
    let spki = key.to_public_key_der().context("cannot encode the signer key")?;
    Ok(sha2::Sha256::digest(spki.as_bytes()).into())
}
