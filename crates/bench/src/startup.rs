//! Process start-up: from spawning a hello program to its exit, for a native binary, `lamina
//! run` and `wasmtime run`, interleaved round-robin, warm caches.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::process::{Argv, Signer, existing, run_bounded, time_to_exit};
use crate::stats;

/// Where the programs are.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The hello program built natively.
    pub(crate) hello_native: PathBuf,
    /// The same program built for wasm32-wasip1.
    pub(crate) hello_wasm: PathBuf,
    pub(crate) lamina: PathBuf,
    pub(crate) runtime_only: Option<PathBuf>,
    pub(crate) wasmtime: Option<PathBuf>,
    /// Timed runs per command (after warm-up).
    pub(crate) runs: u32,
    /// Scratch space: artifacts and caches.
    pub(crate) work: PathBuf,
}

/// One command's start-to-exit times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Measured {
    /// A stable identifier (`lamina-wasm`).
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) command: String,
    pub(crate) samples_us: Vec<f64>,
}

impl Measured {
    pub(crate) fn p50_us(&self) -> Option<f64> {
        stats::median(&self.samples_us)
    }

    pub(crate) fn p99_us(&self) -> Option<f64> {
        stats::percentile(&self.samples_us, 99.0)
    }
}

/// The start-up results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Startup {
    pub(crate) runs: u32,
    pub(crate) commands: Vec<Measured>,
    pub(crate) skipped: Vec<String>,
}

impl Startup {
    pub(crate) fn get(&self, id: &str) -> Option<&Measured> {
        self.commands.iter().find(|m| m.id == id)
    }
}

const LIMIT: Duration = Duration::from_secs(60);

/// Prepares artifacts, checks every command prints what the native program prints, then times.
pub(crate) fn run(config: &Config, progress: &dyn Fn(&str, u64)) -> anyhow::Result<Startup> {
    let lamina = existing(&config.lamina, "lamina")?;
    let native = existing(&config.hello_native, "the native hello program")?;
    let wasm = existing(&config.hello_wasm, "the wasm32-wasip1 hello program")?;
    std::fs::create_dir_all(&config.work).context("scratch directory")?;
    let cache = config.work.join("lamina-cache");
    let artifact = config.work.join("hello.lamart");
    let pulley = config.work.join("hello.pulley.lamart");
    progress("compiling hello", 0);
    let signer = Signer::in_dir(&lamina, &config.work)?;
    run_bounded(&signer.compile(&lamina).path(&wasm).args(&["-o"]).path(&artifact), LIMIT)?;
    run_bounded(
        &signer
            .compile(&lamina)
            .args(&["--target", "pulley64", "--profile", "edge"])
            .path(&wasm)
            .args(&["-o"])
            .path(&pulley),
        LIMIT,
    )?;

    let mut commands: Vec<(&str, &str, Argv)> = vec![
        ("native", "native hello", Argv::new(&native, &[])),
        (
            "lamina-wasm",
            "lamina run hello.wasm (compile cache hit)",
            Argv::new(&lamina, &["run", "--cache-dir"]).path(&cache).path(&wasm),
        ),
        ("lamina-artifact", "lamina run --trust-signer KEY hello.lamart", signer.run(&lamina).path(&artifact)),
    ];
    let mut skipped = Vec::new();
    match config.wasmtime.as_deref().filter(|w| w.is_file()) {
        Some(w) => {
            let cwasm = config.work.join("hello.cwasm");
            run_bounded(&Argv::new(w, &["compile"]).path(&wasm).args(&["-o"]).path(&cwasm), LIMIT)?;
            commands.push((
                "wasmtime-wasm",
                "wasmtime run -C cache=y hello.wasm (cache hit)",
                Argv::new(w, &["run", "-C", "cache=y"]).path(&wasm),
            ));
            commands.push((
                "wasmtime-cwasm",
                "wasmtime run --allow-precompiled hello.cwasm",
                Argv::new(w, &["run", "--allow-precompiled"]).path(&cwasm),
            ));
        }
        None => skipped.push("wasmtime: the command-line tool is not installed".to_owned()),
    }
    match config.runtime_only.as_deref().filter(|r| r.is_file()) {
        Some(r) => {
            commands.push((
                "runtime-only-artifact",
                "runtime-only lamina run hello.lamart",
                signer.run(r).path(&artifact),
            ));
            commands.push((
                "runtime-only-pulley",
                "runtime-only lamina run hello.pulley.lamart (interpreter, edge profile)",
                signer.run(r).path(&pulley),
            ));
        }
        None => skipped.push("runtime-only build: missing".to_owned()),
    }

    // Every Wasm command must print what `lamina run` prints (the native program names its own
    // architecture), and these runs warm the caches.
    let expected = run_bounded(&commands[1].2, LIMIT)?;
    for (id, label, argv) in &commands {
        for _ in 0..3 {
            let out = run_bounded(argv, LIMIT)?;
            if *id != "native" && out != expected {
                bail!("{label} printed {out:?}, `lamina run` {expected:?}");
            }
        }
    }

    let mut measured: Vec<Measured> = commands
        .iter()
        .map(|(id, label, argv)| Measured {
            id: (*id).to_owned(),
            label: (*label).to_owned(),
            command: argv.shown(),
            samples_us: Vec::with_capacity(config.runs as usize),
        })
        .collect();
    for run in 0..config.runs {
        if run % 10 == 0 {
            progress(&format!("start-up, run {}/{}", run + 1, config.runs), 0);
        }
        for (m, (_, _, argv)) in measured.iter_mut().zip(&commands) {
            let t = time_to_exit(argv)?;
            m.samples_us.push(t.as_secs_f64() * 1e6);
        }
        progress("", 1);
    }
    Ok(Startup { runs: config.runs, commands: measured, skipped })
}
