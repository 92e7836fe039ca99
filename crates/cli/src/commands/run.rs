//! `lamina run`: load (through the compile cache), instantiate under limits, run, report.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context as _, bail};
use lamina_runtime::{
    Attester, Broker, CacheKey, CacheStatus, CompileCache, Engine, EngineOptions, Exit, Identity, KvStore, Limits,
    LocalBus, Program, SealedMount, Secrets, Services, TrapReason, TrustedCode, WasiConfig,
};
use lamina_seal::{Absent, KnownVolumes, SealTo, Volume, VolumeOptions};
use lamina_types::{ModuleHash, NetworkRules, Profile, SecretName};
use sha2::Digest as _;

use crate::cli::{CacheArgs, NetworkArgs, RunArgs, SealToArg, SealedDirArg};
use crate::commands::platform::open_platform;
use crate::exit;

/// How long past `--timeout` a guest blocked in a host call (where epochs cannot interrupt it)
/// may linger before the whole process is stopped.
const BLOCKED_GRACE: Duration = Duration::from_secs(1);

pub(crate) fn run(args: RunArgs, verbose: u8) -> anyhow::Result<i32> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    // An artifact decides the profile it needs and whether it runs in the interpreter; a `.wasm`
    // runs on the server profile, compiled for this machine, by default.
    let header = lamina_runtime::artifact::decode_header(&bytes).ok();
    let profile = args.engine.profile.or(header.as_ref().map(|h| h.profile)).unwrap_or(Profile::Server);
    let target = match args.target {
        Some(t) if !t.runs_here() => bail!(
            "cannot run code for {t} on this machine: `--target` takes pulley64 (the interpreter); \
             to build for {t}, use `lamina compile --target {t}`"
        ),
        Some(t) => Some(t),
        None => header.as_ref().map(|h| h.target).filter(|t| t.is_interpreted()),
    };
    // Epoch checks serve timeouts; without one nothing interrupts the guest's code (Ctrl-C ends
    // the process), so a `.wasm` run without `--timeout` is compiled without them: tight loops
    // run up to 2-3x faster. Artifacts are always interruptible.
    let interruptible = args.timeout.is_some() || header.is_some();
    let options = EngineOptions { profile, target, fuel: args.fuel.is_some(), interruptible };
    let engine = Engine::new(options).context("cannot start the engine")?;
    let cache = cache(&args.cache, &args.platform);
    if !args.trust_signers.is_empty() && !lamina_runtime::artifact::is_artifact(&bytes) {
        bail!(
            "--trust-signer runs only signed artifacts, and {} is not an artifact (make one with `lamina compile --sign`)",
            args.file.display()
        );
    }
    let program = load(&engine, &args, &args.file, &bytes, cache.as_ref())?;
    if verbose > 0 {
        let cache_note = match program.cache_status() {
            CacheStatus::Unused if lamina_runtime::artifact::is_artifact(&bytes) => {
                format!("unused (precompiled artifact, {})", program.origin())
            }
            status => status.to_string(),
        };
        eprintln!(
            "lamina: {} {} on the {profile} profile; compile cache: {cache_note}",
            program.kind(),
            program.shown_hash()
        );
    }
    let peers = args
        .peers
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok((path.clone(), load(&engine, &args, path, &bytes, cache.as_ref())?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let program_name = args.file.file_name().map_or_else(|| "guest".into(), |n| n.to_string_lossy().into_owned());
    let wasi = WasiConfig {
        args: std::iter::once(program_name).chain(args.args.iter().cloned()).collect(),
        env: args.env.clone(),
        dirs: args.dirs.clone(),
        network: network_rules(&args.network)?,
        ..WasiConfig::default()
    };
    let limits = Limits { max_memory: args.max_memory, timeout: args.timeout, fuel: args.fuel };
    let secrets = Arc::new(read_secrets(&args.secrets)?);
    let bus: Arc<dyn Broker> = Arc::new(LocalBus::new());
    // Sealed storage and attestation first: their errors (another module's volume, a rollback)
    // come before any guest starts.
    let peer_hashes: Vec<ModuleHash> = peers.iter().map(|(_, p)| p.shown_hash()).collect();
    // Every guest of the run shares its secrets and bus, and the main guest's claims name the
    // peers: one unverified program (main or `--with`) leaves the whole run without identity.
    let all_verified = peers.iter().all(|(_, p)| p.identity().is_some());
    let mut services = match program.identity().filter(|_| all_verified) {
        Some(module) => {
            platform_services(&args, &bytes, module, config_digest(&args, &wasi, limits, &peer_hashes, profile))?
        }
        None => {
            refuse_identity_services(&args)?;
            Services::default()
        }
    };
    services.secrets = Some(secrets.clone());
    services.messaging = Some(bus.clone());
    let mut instance = program.instantiate_with(&wasi, limits, services).context("cannot start the guest")?;
    let watchdog = args.timeout.map(spawn_watchdog);
    let peers = peers
        .into_iter()
        .map(|(path, program)| spawn_peer(path, program, &wasi, limits, secrets.clone(), bus.clone()))
        .collect::<Vec<_>>();
    let outcome = instance.run();
    let mut code = exit_code(outcome, None);
    for (path, peer) in peers {
        let peer_code = match peer.join() {
            Ok(Ok(outcome)) => exit_code(outcome, Some(&path)),
            Ok(Err(e)) => {
                eprintln!("lamina: error: {e:#}");
                exit::FAILURE
            }
            Err(_) => bail!("the thread running {} panicked", path.display()),
        };
        if code == 0 {
            code = peer_code;
        }
    }
    if let Some(done) = watchdog {
        // The receiver may already be gone if the watchdog fired; nothing to do then.
        let _ = done.send(());
    }
    if verbose > 0 {
        let usage = instance.usage();
        let fuel = usage.fuel_consumed.map(|f| format!(", fuel {f}")).unwrap_or_default();
        eprintln!("lamina: peak memory {}, wall time {:?}{fuel}", usage.peak_memory, usage.wall_time);
    }
    Ok(code)
}

/// The network rules of `--allow-http`, `--allow-socket` and the opt-ins.
pub(crate) fn network_rules(args: &NetworkArgs) -> anyhow::Result<NetworkRules> {
    if args.danger_allow_all_network {
        eprintln!("lamina: DANGER: --danger-allow-all-network: the guest may reach any host and resolve any name");
        return Ok(NetworkRules::allow_all());
    }
    Ok(NetworkRules::parse(&args.http, &args.sockets, args.allow_name_lookup)?)
}

/// The process exit code for how a guest ended, reporting a trap on stderr.
fn exit_code(outcome: Exit, peer: Option<&Path>) -> i32 {
    match outcome {
        Exit::Code(code) => code,
        Exit::Trap(trap) => {
            match peer {
                Some(p) => eprintln!("lamina: {}: {}", p.display(), trap.reason),
                None => eprintln!("lamina: {}", trap.reason),
            }
            if let Some(bt) = &trap.backtrace {
                eprintln!("{}", bt.trim_end());
            }
            match trap.reason {
                TrapReason::Timeout(_) | TrapReason::OutOfFuel(_) => exit::KILLED,
                _ => exit::TRAPPED,
            }
        }
    }
}

/// Runs a `--with` module on a thread of its own, on the same bus.
fn spawn_peer(
    path: PathBuf,
    program: Program,
    wasi: &WasiConfig,
    limits: Limits,
    secrets: Arc<Secrets>,
    bus: Arc<dyn Broker>,
) -> (PathBuf, std::thread::JoinHandle<anyhow::Result<Exit>>) {
    let name = path.file_name().map_or_else(|| "peer".into(), |n| n.to_string_lossy().into_owned());
    let wasi = WasiConfig { args: vec![name], env: wasi.env.clone(), ..WasiConfig::default() };
    let shown = path.clone();
    let handle = std::thread::spawn(move || {
        let services = Services { secrets: Some(secrets), messaging: Some(bus), ..Services::default() };
        let mut instance = program
            .instantiate_with(&wasi, limits, services)
            .with_context(|| format!("cannot start {}", shown.display()))?;
        Ok(instance.run())
    });
    (path, handle)
}

/// Reads the `--secret` files. Their contents are never printed, even in errors.
pub(crate) fn read_secrets(given: &[(SecretName, PathBuf)]) -> anyhow::Result<Secrets> {
    let mut secrets = Secrets::new();
    for (name, file) in given {
        let value = std::fs::read(file)
            .map(zeroize::Zeroizing::new)
            .with_context(|| format!("cannot read the secret `{name}` from {}", file.display()))?;
        secrets.insert(name.as_str(), value).context("check the --secret names")?;
    }
    Ok(secrets)
}

/// Opens the platform if any service needs it, and with it the sealed directories, the sealed
/// key-value store and self-attestation.
fn platform_services(
    args: &RunArgs,
    bytes: &[u8],
    module: ModuleHash,
    config_digest: [u8; 32],
) -> anyhow::Result<Services> {
    let attestation = args.attestation || args.verifier_policy.is_some();
    if args.sealed_dirs.is_empty() && args.kv.is_none() && !attestation {
        return Ok(Services::default());
    }
    let platform = open_platform(&args.platform, Some(&module), false)?;
    let mut services = Services::default();
    if !args.sealed_dirs.is_empty() || args.kv.is_some() {
        let seal_to = match &args.seal_to {
            SealToArg::Module => SealTo::Module(module),
            SealToArg::Signer(key) => SealTo::Signer(verify_signer(&args.file, bytes, key)?),
        };
        let options = VolumeOptions { seal_to, quota: args.sealed_quota.bytes(), rollback_protection: true };
        let volumes = Volumes::new(platform.as_ref(), &args.platform, args.danger_sealed_start_over)?;
        services.sealed = sealed_mounts(&args.sealed_dirs, &volumes, &options)?;
        if let Some(dir) = &args.kv {
            let volume = volumes
                .open(dir, &options)
                .with_context(|| format!("cannot open the key-value store {}", dir.display()))?;
            services.keyvalue = Some(Arc::new(KvStore::new(volume)));
        }
    }
    if attestation {
        let identity = Identity {
            runtime_measurement: crate::commands::attest::runtime_measurement()?,
            module_hash: module,
            config_digest: Some(config_digest),
        };
        let appraiser = match (&args.verifier_policy, &args.verifier_key) {
            (Some(policy), Some(key)) => Some(crate::commands::appraiser::load(policy, key)?),
            _ => None,
        };
        services.attestation = Some(Arc::new(Attester::new(platform, identity, appraiser)));
    }
    Ok(services)
}

/// The guest's configuration digest, as [`lamina_runtime::InstanceConfig`] defines it for every
/// host.
fn config_digest(
    args: &RunArgs,
    wasi: &WasiConfig,
    limits: Limits,
    peers: &[ModuleHash],
    profile: Profile,
) -> [u8; 32] {
    lamina_runtime::InstanceConfig {
        secrets: args.secrets.iter().map(|(name, _)| name.to_string()).collect(),
        sealed_dirs: args.sealed_dirs.iter().map(|d| d.guest.clone()).collect(),
        seal_to: match &args.seal_to {
            SealToArg::Module => "module".to_owned(),
            SealToArg::Signer(key) => format!("signer:{}", key.display()),
        },
        kv_quota: args.kv.as_ref().map(|_| args.sealed_quota.bytes()),
        attestation: true,
        peers: peers.iter().map(ToString::to_string).collect(),
        profile: profile.to_string(),
        ..lamina_runtime::InstanceConfig::new(lamina_runtime::InstanceHost::Run, wasi, limits)
    }
    .digest()
}

/// Loads FILE: a `.wasm` through the authenticated compile cache, or an artifact whose
/// signature verifies against a `--trust-signer` key, or, on the dangerous opt-in, an
/// unverified artifact (with a warning, and no module identity).
fn load(
    engine: &Engine,
    args: &RunArgs,
    file: &Path,
    bytes: &[u8],
    cache: Option<&CompileCache>,
) -> anyhow::Result<Program> {
    let loading = || format!("cannot load {}", file.display());
    if !lamina_runtime::artifact::is_artifact(bytes) {
        return lamina_runtime::Program::load(engine, bytes, cache).with_context(loading);
    }
    let code = if !args.trust_signers.is_empty() {
        let keys = args
            .trust_signers
            .iter()
            .map(|path| crate::commands::compile::read_public_key(path))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sig_path = crate::commands::compile::signature_path(file);
        let signature = std::fs::read(&sig_path).with_context(|| {
            format!(
                "cannot read the artifact's signature {} (sign it with `lamina compile --sign`)",
                sig_path.display()
            )
        })?;
        let code = TrustedCode::signed(bytes, &signature, &keys)
            .with_context(|| format!("refusing to run {}", file.display()))?;
        tracing::info!("{} is {}", file.display(), code.origin());
        code
    } else if args.danger_run_unverified_native_code {
        eprintln!(
            "lamina: WARNING: running {} unverified: its compiled code is native code that runs outside the Wasm \
             sandbox with this process's rights, and nothing vouches for it; it gets no module identity",
            file.display()
        );
        TrustedCode::danger_unverified_native_code(bytes).with_context(loading)?
    } else {
        bail!(
            "refusing to run {}: an artifact is native code, and its header is only what the file says about itself. \
             Pass --trust-signer KEY.pem (with {}.sig beside it, from `lamina compile --sign`), run the .wasm instead, \
             or, knowing the risk, --danger-run-unverified-native-code",
            file.display(),
            file.display()
        );
    };
    lamina_runtime::Program::load_code(engine, &code).with_context(loading)
}

/// Unverified code gets no module identity: the services bound to one are refused.
fn refuse_identity_services(args: &RunArgs) -> anyhow::Result<()> {
    let asked: Vec<&str> = [
        (!args.sealed_dirs.is_empty(), "--sealed-dir"),
        (args.kv.is_some(), "--kv"),
        (args.attestation || args.verifier_policy.is_some(), "--attestation"),
        (!args.secrets.is_empty(), "--secret"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    if !asked.is_empty() {
        bail!(
            "unverified code has no module identity, so it cannot have {}: sign the artifact and pass --trust-signer",
            asked.join(", ")
        );
    }
    Ok(())
}

/// The compile cache, authenticated with this user's key in the state directory; `None` with
/// `--no-cache`, or (with a warning) when no key can be had.
pub(crate) fn cache(args: &CacheArgs, platform: &crate::cli::PlatformArgs) -> Option<CompileCache> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(|| dirs::cache_dir().map(|d| d.join("lamina")))?;
    let key = crate::commands::platform::state_dir(platform)
        .and_then(|state| {
            let path = state.join("compile-cache.key");
            CacheKey::load_or_create(&path)
                .with_context(|| format!("cannot use the compile-cache key {}", path.display()))
        })
        .map_err(|e| tracing::warn!("compiling without the cache: {e:#}"))
        .ok()?;
    Some(CompileCache::new(dir, key))
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

/// Opens sealed volumes with keys from the platform, through the state directory's record of
/// the volumes it has seen (a known one missing, emptied or swapped is refused unless the
/// operator starts over).
pub(crate) struct Volumes<'a> {
    platform: &'a dyn lamina_tee::Platform,
    known: KnownVolumes,
    absent: Absent,
}

impl<'a> Volumes<'a> {
    /// Volumes on this platform, recorded in `--state-dir`.
    pub(crate) fn new(
        platform: &'a dyn lamina_tee::Platform,
        args: &crate::cli::PlatformArgs,
        start_over: bool,
    ) -> anyhow::Result<Self> {
        let state = crate::commands::platform::state_dir(args)?;
        let absent = if start_over { Absent::StartOver } else { Absent::Refuse };
        Ok(Volumes { platform, known: KnownVolumes::in_state_dir(&state), absent })
    }

    /// Opens (or, where none was ever recorded, creates) the volume in `dir`.
    pub(crate) fn open(
        &self,
        dir: &std::path::Path,
        options: &VolumeOptions,
    ) -> Result<Volume, lamina_seal::SealError> {
        self.known.open(dir, self.platform, options, self.absent)
    }
}

/// Opens the `--sealed-dir` volumes, bound as `--seal-to` says.
pub(crate) fn sealed_mounts(
    dirs: &[SealedDirArg],
    volumes: &Volumes<'_>,
    options: &VolumeOptions,
) -> anyhow::Result<Vec<SealedMount>> {
    dirs.iter()
        .map(|dir| {
            let volume = volumes
                .open(&dir.host, options)
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
