//! The compute suite: C kernels (bench/compute) built natively and for wasm32-wasip1 with the
//! same clang and flags, run side by side by every runner, interleaved, several repetitions.
//!
//! Each kernel times itself with CLOCK_MONOTONIC around the kernel alone and prints
//! `kernel=NAME size=SIZE ns=N checksum=HEX`; every runner must print the same checksum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::process::{Argv, Signer, existing, run_bounded};
use crate::stats;

/// A data size of the kernels (the argument they take).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Size {
    /// Milliseconds natively: for `--quick`.
    Small,
    /// Tens of milliseconds natively.
    Medium,
    /// Hundreds of milliseconds natively.
    Large,
}

impl Size {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

/// Who runs a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Runner {
    /// The kernel built natively with the same clang and flags.
    Native,
    /// `lamina run kernel.wasm` on the server profile (compiled through the compile cache;
    /// without `--timeout`, so without epoch checks, like `wasmtime run`).
    Lamina,
    /// `lamina run kernel.lamart`, an artifact made by `lamina compile`: interruptible (epoch
    /// checks), as everything a node runs.
    LaminaArtifact,
    /// `lamina run` of the kernel built with `-O3 -msimd128` (Wasm SIMD, as native x86_64 code
    /// has SSE2).
    LaminaSimd,
    /// The `wasmtime` command-line tool of the wasmtime version Lamina embeds.
    Wasmtime,
    /// Lamina's runtime-only build running a `pulley64` artifact in wasmtime's interpreter.
    Pulley,
}

impl Runner {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Runner::Native => "native",
            Runner::Lamina => "lamina run",
            Runner::LaminaArtifact => "lamina run (artifact, interruptible)",
            Runner::LaminaSimd => "lamina run (-msimd128 build)",
            Runner::Wasmtime => "wasmtime run",
            Runner::Pulley => "runtime-only, Pulley",
        }
    }
}

/// Where the programs are and what to run.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Built kernels: `native/<name>` and `wasm/<name>.wasm`.
    pub(crate) kernels: PathBuf,
    /// The full `lamina` build.
    pub(crate) lamina: PathBuf,
    /// The runtime-only `lamina` build (no compiler), for the Pulley runner.
    pub(crate) runtime_only: Option<PathBuf>,
    /// The `wasmtime` command-line tool.
    pub(crate) wasmtime: Option<PathBuf>,
    /// Sizes every runner measures.
    pub(crate) sizes: Vec<Size>,
    /// Sizes the interpreter measures (it is tens of times slower than compiled code).
    pub(crate) pulley_sizes: Vec<Size>,
    /// Repetitions of each (kernel, size, runner).
    pub(crate) reps: u32,
    /// Scratch space: artifacts and the compile cache.
    pub(crate) work: PathBuf,
    /// Only these kernels (all when empty).
    pub(crate) only: Vec<String>,
}

/// What one runner is, as the report describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunnerInfo {
    pub(crate) runner: Runner,
    pub(crate) label: String,
    /// The command for the `gemm` kernel, as an example.
    pub(crate) example: String,
}

/// One kernel at one size: the checksum every runner printed and each runner's times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KernelResult {
    pub(crate) kernel: String,
    pub(crate) size: Size,
    pub(crate) checksum: Option<String>,
    /// Kernel times in nanoseconds, per runner, in the order measured.
    pub(crate) samples_ns: BTreeMap<Runner, Vec<u64>>,
}

impl KernelResult {
    /// The median time of a runner, in nanoseconds.
    pub(crate) fn median_ns(&self, runner: Runner) -> Option<f64> {
        let samples: Vec<f64> = self.samples_ns.get(&runner)?.iter().map(|&n| n as f64).collect();
        stats::median(&samples)
    }

    /// The median time of `runner` over that of `base`.
    pub(crate) fn ratio(&self, runner: Runner, base: Runner) -> Option<f64> {
        Some(self.median_ns(runner)? / self.median_ns(base)?)
    }
}

/// The whole suite's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Compute {
    /// The compiler and flags, the same on both sides.
    pub(crate) build: String,
    pub(crate) reps: u32,
    pub(crate) runners: Vec<RunnerInfo>,
    /// Runners that were not measured, and why.
    pub(crate) skipped: Vec<String>,
    pub(crate) results: Vec<KernelResult>,
    /// Runs that failed or printed another checksum.
    pub(crate) errors: Vec<String>,
}

impl Compute {
    /// The sizes measured, smallest first.
    pub(crate) fn sizes(&self) -> Vec<Size> {
        self.sizes_where(|_| true)
    }

    /// The sizes at which a runner was measured, smallest first.
    pub(crate) fn at_runner_sizes(&self, runner: Runner) -> Vec<Size> {
        self.sizes_where(|r| r.samples_ns.contains_key(&runner))
    }

    fn sizes_where(&self, keep: impl Fn(&KernelResult) -> bool) -> Vec<Size> {
        let mut s: Vec<Size> = self.results.iter().filter(|r| keep(r)).map(|r| r.size).collect();
        s.sort();
        s.dedup();
        s
    }

    /// The results at one size.
    pub(crate) fn at(&self, size: Size) -> impl Iterator<Item = &KernelResult> {
        self.results.iter().filter(move |r| r.size == size)
    }

    /// The geometric mean over kernels of `runner`'s time over `base`'s, and how many kernels
    /// it covers (kernels either runner lacks are left out).
    pub(crate) fn geomean(&self, size: Size, runner: Runner, base: Runner) -> Option<(f64, usize)> {
        let ratios: Vec<f64> = self.at(size).filter_map(|r| r.ratio(runner, base)).collect();
        Some((stats::geomean(&ratios)?, ratios.len()))
    }

    /// Whether any result has samples of this runner.
    pub(crate) fn has(&self, runner: Runner) -> bool {
        self.results.iter().any(|r| r.samples_ns.contains_key(&runner))
    }
}

/// A kernel's programs.
struct Kernel {
    name: String,
    native: PathBuf,
    wasm: PathBuf,
    /// The `-msimd128` build, when there is one.
    simd: Option<PathBuf>,
    artifact: PathBuf,
    pulley: PathBuf,
}

/// What a kernel printed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KernelOutput {
    pub(crate) kernel: String,
    pub(crate) size: String,
    pub(crate) ns: u64,
    pub(crate) checksum: String,
}

/// Parses the `kernel=… size=… ns=… checksum=…` line of a kernel's output.
pub(crate) fn parse_output(stdout: &str) -> Option<KernelOutput> {
    let line = stdout.lines().find(|l| l.starts_with("kernel="))?;
    let mut fields = BTreeMap::new();
    for part in line.split_whitespace() {
        let (k, v) = part.split_once('=')?;
        fields.insert(k, v);
    }
    let checksum = fields.get("checksum")?;
    if checksum.len() != 16 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(KernelOutput {
        kernel: (*fields.get("kernel")?).to_owned(),
        size: (*fields.get("size")?).to_owned(),
        ns: fields.get("ns")?.parse().ok()?,
        checksum: (*checksum).to_owned(),
    })
}

/// One kernel run may take at most this long (the interpreter on a large size is the slowest).
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Prepares the artifacts and runs the suite, calling `progress` before each run.
pub(crate) fn run(config: &Config, progress: &dyn Fn(&str, u64)) -> anyhow::Result<Compute> {
    let lamina = existing(&config.lamina, "lamina")?;
    let kernels = discover(config)?;
    std::fs::create_dir_all(config.work.join("cache")).context("scratch directory")?;
    let mut skipped = Vec::new();
    let wasmtime = config.wasmtime.as_ref().filter(|w| w.is_file());
    if wasmtime.is_none() {
        skipped.push("wasmtime run: the wasmtime command-line tool is not installed".to_owned());
    }
    let runtime_only = config.runtime_only.as_ref().filter(|r| r.is_file());
    if runtime_only.is_none() {
        skipped.push("runtime-only, Pulley: the runtime-only build is missing".to_owned());
    }
    let mut runners = vec![Runner::Native, Runner::Lamina, Runner::LaminaArtifact];
    if kernels.iter().all(|k| k.simd.is_some()) {
        runners.push(Runner::LaminaSimd);
    } else {
        skipped.push("lamina run (-msimd128 build): the kernels' wasm-simd/ builds are missing".to_owned());
    }
    if wasmtime.is_some() {
        runners.push(Runner::Wasmtime);
    }
    if runtime_only.is_some() && !config.pulley_sizes.is_empty() {
        runners.push(Runner::Pulley);
    }

    progress("compiling the kernels' artifacts", 0);
    let signer = Signer::in_dir(&lamina, &config.work)?;
    for k in &kernels {
        run_bounded(
            &signer.compile(&lamina).args(&["--profile", "server"]).path(&k.wasm).args(&["-o"]).path(&k.artifact),
            RUN_LIMIT,
        )?;
        if runners.contains(&Runner::Pulley) {
            run_bounded(
                &signer
                    .compile(&lamina)
                    .args(&["--target", "pulley64", "--profile", "edge"])
                    .path(&k.wasm)
                    .args(&["-o"])
                    .path(&k.pulley),
                RUN_LIMIT,
            )?;
        }
    }

    let cache = config.work.join("cache");
    let command = |runner: Runner, k: &Kernel, size: Size| -> Argv {
        let size = size.name();
        match runner {
            Runner::Native => Argv::new(&k.native, &[size]),
            Runner::Lamina => Argv::new(&lamina, &["run", "--profile", "server", "--cache-dir"])
                .path(&cache)
                .path(&k.wasm)
                .args(&["--", size]),
            Runner::LaminaArtifact => signer.run(&lamina).path(&k.artifact).args(&["--", size]),
            Runner::LaminaSimd => Argv::new(&lamina, &["run", "--profile", "server", "--cache-dir"])
                .path(&cache)
                .path(k.simd.as_deref().unwrap_or(&k.wasm))
                .args(&["--", size]),
            Runner::Wasmtime => {
                Argv::new(wasmtime.map_or(Path::new("wasmtime"), |w| w.as_path()), &["run"]).path(&k.wasm).args(&[size])
            }
            Runner::Pulley => signer
                .run(runtime_only.map_or(Path::new("lamina"), |r| r.as_path()))
                .path(&k.pulley)
                .args(&["--", size]),
        }
    };
    let infos = runners
        .iter()
        .map(|&r| RunnerInfo {
            runner: r,
            label: r.label().to_owned(),
            example: kernels.iter().find(|k| k.name == "gemm").map_or_else(String::new, |k| {
                command(r, k, config.sizes.first().copied().unwrap_or(Size::Medium)).shown()
            }),
        })
        .collect();

    let mut results: Vec<KernelResult> = Vec::new();
    for &size in &config.sizes {
        for k in &kernels {
            results.push(KernelResult { kernel: k.name.clone(), size, checksum: None, samples_ns: BTreeMap::new() });
        }
    }
    let mut errors = Vec::new();
    for rep in 0..config.reps {
        for (i, k) in kernels.iter().enumerate() {
            for &size in &config.sizes {
                // Rotate the runners' order from one kernel and repetition to the next, so no
                // runner always follows the same one (caches, frequency).
                let mut order: Vec<Runner> = runners
                    .iter()
                    .copied()
                    .filter(|r| *r != Runner::Pulley || config.pulley_sizes.contains(&size))
                    .collect();
                let n = order.len();
                order.rotate_left((rep as usize + i) % n);
                let result =
                    results.iter_mut().find(|r| r.kernel == k.name && r.size == size).context("result slot")?;
                for runner in order {
                    progress(&format!("{} {} {} (repetition {})", k.name, size.name(), runner.label(), rep + 1), 1);
                    let argv = command(runner, k, size);
                    match run_bounded(&argv, RUN_LIMIT).and_then(|out| check(&out, &k.name, size, result)) {
                        Ok(ns) => result.samples_ns.entry(runner).or_default().push(ns),
                        Err(e) => errors.push(format!("{} {} {}: {e:#}", k.name, size.name(), runner.label())),
                    }
                }
            }
        }
    }
    Ok(Compute {
        build: "clang -O3 (native: x86_64 Linux; Wasm: --target=wasm32-wasi, wasi-libc)".to_owned(),
        reps: config.reps,
        runners: infos,
        skipped,
        results,
        errors,
    })
}

/// Checks a run's output against its kernel, size and the checksum seen first; returns its time.
fn check(stdout: &str, kernel: &str, size: Size, result: &mut KernelResult) -> anyhow::Result<u64> {
    let out = parse_output(stdout).with_context(|| format!("no result line in its output: {stdout:?}"))?;
    if out.kernel != kernel || out.size != size.name() {
        bail!("it reported kernel {} size {}", out.kernel, out.size);
    }
    match &result.checksum {
        Some(c) if *c != out.checksum => {
            bail!("checksum {} differs from {c}: it computed something else", out.checksum)
        }
        Some(_) => {}
        None => result.checksum = Some(out.checksum),
    }
    Ok(out.ns)
}

/// The kernels built under `config.kernels`: every native program with a Wasm twin.
fn discover(config: &Config) -> anyhow::Result<Vec<Kernel>> {
    let native_dir = config.kernels.join("native");
    let entries = std::fs::read_dir(&native_dir)
        .with_context(|| format!("cannot list {} (bench/run.sh builds the kernels)", native_dir.display()))?;
    let mut kernels = Vec::new();
    for entry in entries {
        let path = entry.context("listing kernels")?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !config.only.is_empty() && !config.only.contains(&name) {
            continue;
        }
        let wasm = config.kernels.join("wasm").join(format!("{name}.wasm"));
        if !wasm.is_file() {
            bail!("{} has no Wasm build at {}", name, wasm.display());
        }
        let simd = config.kernels.join("wasm-simd").join(format!("{name}.wasm"));
        kernels.push(Kernel {
            simd: simd.is_file().then_some(simd),
            artifact: config.work.join(format!("{name}.lamart")),
            pulley: config.work.join(format!("{name}.pulley.lamart")),
            name,
            native: path,
            wasm,
        });
    }
    if kernels.is_empty() {
        bail!("no kernels in {}", native_dir.display());
    }
    kernels.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(kernels)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_kernel_line_is_parsed() {
        let out = parse_output("noise\nkernel=gemm size=medium ns=12345 checksum=0123456789abcdef\n");
        assert_eq!(
            out,
            Some(KernelOutput {
                kernel: "gemm".into(),
                size: "medium".into(),
                ns: 12345,
                checksum: "0123456789abcdef".into()
            })
        );
        assert_eq!(parse_output("kernel=gemm size=medium ns=x checksum=0123456789abcdef"), None);
        assert_eq!(parse_output("kernel=gemm size=medium ns=1 checksum=short"), None);
        assert_eq!(parse_output(""), None);
    }

    #[test]
    fn another_checksum_is_an_error() {
        let mut r =
            KernelResult { kernel: "lu".into(), size: Size::Small, checksum: None, samples_ns: BTreeMap::new() };
        let line = |c: &str| format!("kernel=lu size=small ns=10 checksum={c}");
        assert_eq!(check(&line("0000000000000001"), "lu", Size::Small, &mut r).expect("first"), 10);
        assert!(check(&line("0000000000000001"), "lu", Size::Small, &mut r).is_ok());
        let e = check(&line("0000000000000002"), "lu", Size::Small, &mut r).expect_err("differs");
        assert!(e.to_string().contains("computed something else"), "{e}");
        assert!(check(&line("0000000000000001"), "gemm", Size::Small, &mut r).is_err());
    }

    #[test]
    fn ratios_and_their_geometric_mean() {
        let mut c = Compute {
            build: String::new(),
            reps: 3,
            runners: vec![],
            skipped: vec![],
            results: vec![],
            errors: vec![],
        };
        for (k, native, lamina) in [("a", [10, 10, 10], [20, 21, 19]), ("b", [10, 11, 9], [5, 5, 5])] {
            let mut samples = BTreeMap::new();
            samples.insert(Runner::Native, native.to_vec());
            samples.insert(Runner::Lamina, lamina.to_vec());
            c.results.push(KernelResult { kernel: k.into(), size: Size::Medium, checksum: None, samples_ns: samples });
        }
        let (g, n) = c.geomean(Size::Medium, Runner::Lamina, Runner::Native).expect("both measured");
        assert_eq!(n, 2);
        assert!((g - 1.0).abs() < 1e-12, "sqrt(2 * 0.5) = 1, got {g}");
        assert!(c.geomean(Size::Large, Runner::Lamina, Runner::Native).is_none());
        assert!(!c.has(Runner::Pulley));
    }

    proptest! {
        #[test]
        fn arbitrary_output_never_panics(s in ".{0,200}") {
            let _ = parse_output(&s);
        }
    }
}
