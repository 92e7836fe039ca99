//! `lamina-bench`: Lamina's evaluation harness.
//!
//! `bench/run.sh` builds what is measured (the kernels natively and for wasm32-wasip1, Lamina's
//! builds, the pinned wasmtime command-line tool) and then runs `lamina-bench run`, which
//! measures the compute suite and start-up itself, runs every other benchmark of the project
//! (each writes a `lamina-bench-record`), writes all of it with the machine's description to
//! `OUT/results.json`, and regenerates docs/benchmarks.md with its charts.

mod charts;
mod compute;
mod machine;
mod process;
mod report;
mod results;
mod startup;
mod stats;
mod suites;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::compute::Size;
use crate::machine::Machine;
use crate::results::{Results, SCHEMA};

#[derive(Debug, Parser)]
#[command(version, about = "Lamina's evaluation harness (run it through bench/run.sh, which builds what it measures)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmarks, write OUT/results.json and regenerate the report.
    Run(Box<RunArgs>),
    /// Regenerate the report from a results file.
    Report(ReportArgs),
}

/// A part of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// The C kernels, native against Wasm runners.
    Compute,
    /// Process start to exit.
    Startup,
    /// Every other benchmark of the project.
    Suites,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Run everything briefly (small sizes, one repetition, short benchmarks): checks that the
    /// harness works; the figures are not meant to be read.
    #[arg(long)]
    quick: bool,
    /// Where results, logs and scratch files go.
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
    /// Only these parts (repeatable); the report takes the others from OUT/results.json.
    #[arg(long, value_enum)]
    only: Vec<Part>,
    /// Only these suites of the other benchmarks (repeatable): see `--help` of the list below.
    #[arg(long, value_parser = suite_name)]
    suite: Vec<String>,
    /// Only these kernels (repeatable).
    #[arg(long)]
    kernel: Vec<String>,
    /// Repetitions of each kernel and runner [default: 5, quick: 1].
    #[arg(long)]
    reps: Option<u32>,
    /// Kernel sizes every runner measures [default: medium and large, quick: small].
    #[arg(long, value_enum, value_delimiter = ',')]
    sizes: Vec<Size>,
    /// Kernel sizes the Pulley interpreter measures [default: medium, quick: small].
    #[arg(long, value_enum, value_delimiter = ',')]
    pulley_sizes: Vec<Size>,
    /// Timed runs of each start-up command [default: 200, quick: 5].
    #[arg(long)]
    startup_runs: Option<u32>,
    /// The built kernels (native/<name> and wasm/<name>.wasm).
    #[arg(long)]
    kernels: PathBuf,
    /// The full lamina build.
    #[arg(long)]
    lamina: PathBuf,
    /// The runtime-only lamina build (no compiler).
    #[arg(long)]
    runtime_only: Option<PathBuf>,
    /// The wasmtime command-line tool of the version Lamina embeds.
    #[arg(long)]
    wasmtime: Option<PathBuf>,
    /// The hello program built for wasm32-wasip1.
    #[arg(long)]
    hello_wasm: PathBuf,
    /// The hello program built natively.
    #[arg(long)]
    hello_native: PathBuf,
    /// The cargo profile the other benchmarks build with (`dev` shares the test build).
    #[arg(long, default_value = "bench")]
    cargo_profile: String,
    /// Where the report goes [default: docs/benchmarks.md, quick: OUT/benchmarks.md].
    #[arg(long)]
    docs: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// The results file of a run.
    #[arg(long, default_value = "docs/benchmarks/results.json")]
    results: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "docs/benchmarks.md")]
    docs: PathBuf,
}

fn suite_name(s: &str) -> Result<String, String> {
    if suites::SUITES.iter().any(|x| x.name == s) {
        Ok(s.to_owned())
    } else {
        let names: Vec<&str> = suites::SUITES.iter().map(|x| x.name).collect();
        Err(format!("no suite `{s}`; the suites are {}", names.join(", ")))
    }
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Run(args) => exit(run(*args)),
        Command::Report(args) => exit(Results::read(&args.results).and_then(|r| write_report(&r, &args.docs))),
    }
}

fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lamina-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes the report at `docs` with its charts and a copy of the results in `<docs stem>/`.
fn write_report(r: &Results, docs: &Path) -> anyhow::Result<()> {
    let stem = docs.file_stem().and_then(|s| s.to_str()).context("the report's file name")?.to_owned();
    let charts = docs.with_file_name(&stem);
    r.write(&charts.join("results.json"))?;
    report::write(r, docs, &charts, &stem, &format!("{stem}/results.json"))?;
    eprintln!("lamina-bench: wrote {} and {}/", docs.display(), charts.display());
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let started_at = Instant::now();
    let started = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let quick = args.quick;
    let wants = |p: Part| args.only.is_empty() || args.only.contains(&p);
    let out = args.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let sizes = if !args.sizes.is_empty() {
        args.sizes.clone()
    } else if quick {
        vec![Size::Small]
    } else {
        vec![Size::Medium, Size::Large]
    };
    let pulley_sizes = if !args.pulley_sizes.is_empty() {
        args.pulley_sizes.clone()
    } else if quick {
        vec![Size::Small]
    } else {
        vec![Size::Medium]
    };
    let reps = args.reps.unwrap_or(if quick { 1 } else { 5 });
    let startup_runs = args.startup_runs.unwrap_or(if quick { 5 } else { 200 });
    let suites: Vec<&suites::Suite> = suites::SUITES
        .iter()
        .filter(|s| wants(Part::Suites) && (args.suite.is_empty() || args.suite.iter().any(|n| n == s.name)))
        .collect();
    if !wants(Part::Compute) && !wants(Part::Startup) && suites.is_empty() {
        bail!("nothing to run");
    }

    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .context("progress style")?
            .progress_chars("=> "),
    );
    let progress = |msg: &str, step: u64| {
        if !msg.is_empty() {
            bar.set_message(msg.to_owned());
        }
        bar.inc(step);
    };

    let mut results = Results {
        schema: SCHEMA,
        quick,
        started,
        minutes: 0.0,
        machine: Machine::describe(&args.lamina.display().to_string(), args.wasmtime.as_deref().and_then(Path::to_str)),
        compute: None,
        startup: None,
        records: Vec::new(),
        failures: Vec::new(),
    };
    eprintln!("lamina-bench: {}", results.machine.summary());

    if wants(Part::Compute) {
        let config = compute::Config {
            kernels: args.kernels.clone(),
            lamina: args.lamina.clone(),
            runtime_only: args.runtime_only.clone(),
            wasmtime: args.wasmtime.clone(),
            sizes,
            pulley_sizes,
            reps,
            work: out.join("compute"),
            only: args.kernel.clone(),
        };
        eprintln!("lamina-bench: compute suite, {reps} repetition(s)");
        bar.set_length(bar.length().unwrap_or(0) + estimate_compute_runs(&config)?);
        let c = compute::run(&config, &progress)?;
        for e in &c.errors {
            bar.suspend(|| eprintln!("lamina-bench: error: {e}"));
        }
        results.compute = Some(c);
    }
    if wants(Part::Startup) {
        eprintln!("lamina-bench: start-up, {startup_runs} runs per command");
        bar.set_length(bar.length().unwrap_or(0) + u64::from(startup_runs));
        results.startup = Some(startup::run(
            &startup::Config {
                hello_native: args.hello_native.clone(),
                hello_wasm: args.hello_wasm.clone(),
                lamina: args.lamina.clone(),
                runtime_only: args.runtime_only.clone(),
                wasmtime: args.wasmtime.clone(),
                runs: startup_runs,
                work: out.join("startup"),
            },
            &progress,
        )?);
    }
    if !suites.is_empty() {
        bar.set_length(bar.length().unwrap_or(0) + suites.len() as u64);
        let records = out.join("records");
        let logs = out.join("logs");
        let criterion = out.join("criterion");
        for suite in suites {
            let shown =
                format!("{}: {} (log: {})", suite.name, suite.what, logs.join(format!("{}.log", suite.name)).display());
            if bar.is_hidden() {
                // No terminal (CI): a line per suite instead of the bar's message.
                eprintln!("lamina-bench: {shown}");
            }
            progress(&shown, 0);
            match suites::run(suite, quick, &args.cargo_profile, &records, &logs, &criterion)? {
                Ok(record) => results.records.push(record),
                Err(failure) => {
                    bar.suspend(|| eprintln!("lamina-bench: error: {}: {}", failure.suite, failure.error));
                    results.failures.push(failure);
                }
            }
            progress("", 1);
        }
    }
    bar.finish_and_clear();
    results.minutes = started_at.elapsed().as_secs_f64() / 60.0;

    let results_path = out.join("results.json");
    if (!args.only.is_empty() || !args.suite.is_empty())
        // Merged only with an earlier run of the same kind (quick or full).
        && let Some(earlier) = Results::read(&results_path).ok().filter(|r| r.quick == quick)
    {
        results.fill_from(earlier);
    }
    results.write(&results_path)?;
    eprintln!("lamina-bench: results in {}", results_path.display());
    let docs = args
        .docs
        .clone()
        .unwrap_or_else(|| if quick { out.join("benchmarks.md") } else { "docs/benchmarks.md".into() });
    write_report(&results, &docs)?;

    for failure in &results.failures {
        eprintln!(
            "lamina-bench: {} did not finish: {}\n  command: {}\n  the last lines of {}:\n{}",
            failure.suite,
            failure.error,
            failure.command,
            failure.log,
            log_tail(Path::new(&failure.log), FAILURE_TAIL_LINES)
        );
    }
    let compute_errors = results.compute.as_ref().map_or(0, |c| c.errors.len());
    if compute_errors > 0 || !results.failures.is_empty() {
        bail!(
            "{compute_errors} kernel run(s) failed and {} benchmark(s) did not finish: see the report and {}",
            results.failures.len(),
            out.join("logs").display()
        );
    }
    Ok(())
}

/// How many lines of a failed suite's log the harness prints.
const FAILURE_TAIL_LINES: usize = 40;

/// How much of a failed suite's log the harness reads, from its end.
const FAILURE_TAIL_BYTES: u64 = 64 * 1024;

/// The last `lines` lines of a log (within its last [`FAILURE_TAIL_BYTES`]), indented, or why
/// it cannot be read.
fn log_tail(log: &Path, lines: usize) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(log)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(FAILURE_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    match read() {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].iter().map(|l| format!("    {l}\n")).collect()
        }
        Err(e) => format!("    (cannot read it: {e})\n"),
    }
}

/// How many kernel runs the compute suite makes, for the progress bar.
fn estimate_compute_runs(config: &compute::Config) -> anyhow::Result<u64> {
    let kernels = match std::fs::read_dir(config.kernels.join("native")) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| config.only.is_empty() || config.only.iter().any(|k| e.file_name().to_str() == Some(k)))
            .count() as u64,
        Err(_) => 0,
    };
    let runners = 3
        + u64::from(config.kernels.join("wasm-simd").is_dir())
        + u64::from(config.wasmtime.as_ref().is_some_and(|w| w.is_file()));
    let pulley = u64::from(config.runtime_only.as_ref().is_some_and(|r| r.is_file()));
    let per_rep = kernels
        * (config.sizes.len() as u64 * runners
            + config.pulley_sizes.iter().filter(|s| config.sizes.contains(s)).count() as u64 * pulley);
    Ok(per_rep * u64::from(config.reps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_suite_shows_the_end_of_its_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("suite.log");
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).expect("log");
        let tail = log_tail(&log, 3);
        assert_eq!(tail, "    line 48\n    line 49\n    line 50\n");
        // A huge log: only its end is read, and its last lines still come out.
        let big = dir.path().join("big.log");
        let mut text = "x".repeat(usize::try_from(FAILURE_TAIL_BYTES).expect("fits") * 4);
        text.push_str("\nthe end\n");
        std::fs::write(&big, text).expect("big log");
        assert!(log_tail(&big, 1).ends_with("    the end\n"));
        let missing = log_tail(&dir.path().join("none.log"), 3);
        assert!(missing.contains("cannot read it"), "{missing}");
    }
}
