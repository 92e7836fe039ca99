//! `lamina run`: load (through the compile cache), instantiate under limits, run, report.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use lamina_runtime::{CacheStatus, CompileCache, Engine, EngineOptions, Exit, Limits, TrapReason, WasiConfig};
use lamina_types::Profile;

use crate::cli::{CacheArgs, RunArgs};
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
    let program_name = args.file.file_name().map_or_else(|| "guest".into(), |n| n.to_string_lossy().into_owned());
    let wasi = WasiConfig {
        args: std::iter::once(program_name).chain(args.args).collect(),
        env: args.env,
        dirs: args.dirs,
        ..WasiConfig::default()
    };
    let limits = Limits { max_memory: args.max_memory, timeout: args.timeout, fuel: args.fuel };
    let mut instance = program.instantiate(&wasi, limits).context("cannot start the guest")?;
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
