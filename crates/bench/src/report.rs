//! docs/benchmarks.md from a run's results: the summary of targets, the compute suite,
//! start-up and every other benchmark's figures, with SVG charts beside it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::charts::{self, Bars, Series};
use crate::compute::{Compute, Runner, Size};
use crate::results::Results;

/// Whether a target is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Met,
    NotMet,
    /// No target: the figure is reported.
    Reported,
    /// Not measured in this run.
    NotRun,
}

impl Verdict {
    fn of(met: bool) -> Self {
        if met { Verdict::Met } else { Verdict::NotMet }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Met => "yes",
            Verdict::NotMet => "**no**",
            Verdict::Reported => "reported",
            Verdict::NotRun => "not run",
        }
    }
}

/// One row of the summary.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) anchor: String,
    pub(crate) verdict: Verdict,
}

fn row(target: &str, measured: Option<String>, anchor: &str, verdict: impl FnOnce() -> Verdict) -> Row {
    let (measured, verdict) = match measured {
        Some(m) => (m, verdict()),
        None => ("—".to_owned(), Verdict::NotRun),
    };
    Row { target: target.to_owned(), measured, anchor: anchor.to_owned(), verdict }
}

/// The compute size the targets are judged on: the largest measured.
fn judged_size(c: &Compute) -> Option<Size> {
    c.sizes().into_iter().max()
}

/// The summary's rows: every target of the project, with the figure this run measured.
pub(crate) fn summary(r: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    let m = |suite: &str, id: &str| r.metric(suite, id);
    let compute = r.compute.as_ref();
    let size = compute.and_then(judged_size);
    let gm = |runner: Runner, base: Runner| compute.zip(size).and_then(|(c, s)| c.geomean(s, runner, base));
    let size_name = size.map_or("", Size::name);

    let wasm = gm(Runner::Lamina, Runner::Native);
    rows.push(row(
        "compute: geometric mean of Wasm time over native time ≤ 1.25 (x86_64)",
        wasm.map(|(g, n)| format!("**{g:.2}x** (`lamina run`, {n} kernels, {size_name})")),
        "WaTZ: Wasm in TrustZone at about half native speed; Wasm-versus-native studies: 1.2x to 2.5x",
        || Verdict::of(wasm.is_some_and(|(g, _)| g <= 1.25)),
    ));
    let vs = gm(Runner::Lamina, Runner::Wasmtime);
    rows.push(row(
        "compute: `lamina run` no slower than `wasmtime run` of the same version (≤ 1.02)",
        vs.map(|(g, n)| format!("**{g:.3}x** (geometric mean, {n} kernels, {size_name})")),
        "the wasmtime command-line tool, same module, same run",
        || Verdict::of(vs.is_some_and(|(g, _)| g <= 1.02)),
    ));
    let art = gm(Runner::LaminaArtifact, Runner::Native);
    rows.push(row(
        "compute: an interruptible `lamina compile` artifact (epoch checks, as on nodes)",
        art.map(|(g, _)| format!("{g:.2}x native")),
        "same kernels",
        || Verdict::Reported,
    ));
    let simd = gm(Runner::LaminaSimd, Runner::Native);
    rows.push(row(
        "compute: the kernels built with `-msimd128` (Wasm SIMD; native x86_64 code has SSE2)",
        simd.map(|(g, _)| format!("{g:.2}x native")),
        "same kernels",
        || Verdict::Reported,
    ));
    let pulley = compute.and_then(|c| {
        let s = c.at_runner_sizes(Runner::Pulley).into_iter().max()?;
        c.geomean(s, Runner::Pulley, Runner::Native).map(|(g, n)| (g, n, s))
    });
    rows.push(row(
        "compute: runtime-only build, Pulley interpreter (edge devices without a compiler)",
        pulley.map(|(g, n, s)| format!("{g:.1}x native ({n} kernels, {})", s.name())),
        "interpreters typically run 10x to 100x slower than compiled code",
        || Verdict::Reported,
    ));
    let inst = m("instantiate", "server.p50_us");
    rows.push(row(
        "instantiate-and-call of a precompiled module, p50 ≤ 10 µs",
        inst.map(|p| {
            let p99 = m("instantiate", "server.p99_us").map_or_else(String::new, |v| format!(", {v:.2} µs p99"));
            format!("**{p:.2} µs**{p99} (server profile, pooling)")
        }),
        &m("instantiate", "bare.p50_us").map_or_else(
            || "bare wasmtime, pooling, no WASI context".to_owned(),
            |b| format!("bare wasmtime, pooling, no WASI context: {b:.2} µs p50"),
        ),
        || Verdict::of(inst.is_some_and(|p| p <= 10.0)),
    ));
    for (id, what, bound) in [
        ("sim.ms", "sim attest + verify ≤ 1 ms", 1.0),
        ("swtpm.ms", "swtpm quote + verify ≤ 50 ms", 50.0),
        ("dcap_sgx.ms", "DCAP SGX quote verification ≤ 5 ms", 5.0),
        ("dcap_tdx.ms", "DCAP TDX quote verification ≤ 5 ms", 5.0),
        ("snp.ms", "SNP report verification ≤ 2 ms", 2.0),
    ] {
        let v = m("attestation", id);
        rows.push(row(what, v.map(|v| format!("**{v:.2} ms**")), "—", || Verdict::of(v.is_some_and(|v| v <= bound))));
    }
    let tls = m("attestation", "tls_ratio");
    rows.push(row(
        "attested TLS handshake ≤ 2x plain rustls, same key type",
        tls.map(|t| {
            format!(
                "{} vs {} (ratio **{t:.2}**)",
                fmt_opt(m("attestation", "tls_attested.ms"), "ms"),
                fmt_opt(m("attestation", "tls_plain.ms"), "ms")
            )
        }),
        "plain mutual TLS 1.3, ECDSA P-256",
        || Verdict::of(tls.is_some_and(|t| t <= 2.0)),
    ));
    // 500 MB/s in MiB/s.
    let mb500 = 500e6 / (1024.0 * 1024.0);
    for (id, plain, what) in [
        ("sealed_write", "plain_write", "sealed sequential write, one core, ≥ 500 MB/s"),
        ("sealed_read", "plain_read", "sealed sequential read, one core, ≥ 500 MB/s"),
    ] {
        let v = m("sealed-volume", id);
        rows.push(row(
            what,
            v.map(|v| format!("**{v:.0} MiB/s** (plain file {})", fmt_opt(m("sealed-volume", plain), "MiB/s"))),
            "a plain file, same run",
            || Verdict::of(v.is_some_and(|v| v >= mb500)),
        ));
    }
    let sqlite = m("sealed-sqlite", "ratio");
    rows.push(row(
        "SQLite inserts and point reads, sealed ≤ 1.3x plain",
        sqlite.map(|s| {
            format!(
                "**{s:.2}x** ({} vs {})",
                fmt_opt(m("sealed-sqlite", "sealed.ms"), "ms"),
                fmt_opt(m("sealed-sqlite", "plain.ms"), "ms")
            )
        }),
        "the same SQLite in a plain directory, rounds alternating",
        || Verdict::of(sqlite.is_some_and(|s| s <= 1.3)),
    ));
    let deploy = m("deploy-latency", "cached.p50_ms");
    rows.push(row(
        "deploy to first output over a 40 ms / 1% loss edge link, cached artifact, ≤ 500 ms",
        deploy.map(|d| format!("**{d:.0} ms** median, {} p90", fmt_opt(m("deploy-latency", "cached.p90_ms"), "ms"))),
        "orchestrated Wasm platforms: 0.4 to 19 s",
        || Verdict::of(deploy.is_some_and(|d| d <= 500.0)),
    ));
    let compiled = m("deploy-latency", "compiled.p50_ms");
    rows.push(row(
        "deploy to first output with compilation and download",
        compiled.map(|d| format!("{d:.0} ms median")),
        "same run",
        || Verdict::Reported,
    ));
    let rss = m("node-footprint", "runtime_only.rss_mib");
    rows.push(row(
        "node agent idle RSS, runtime-only build, ≤ 30 MB",
        rss.map(|v| format!("**{v:.1} MiB** (full build {})", fmt_opt(m("node-footprint", "full.rss_mib"), "MiB"))),
        "—",
        || Verdict::of(rss.is_some_and(|v| v * 1024.0 * 1024.0 <= 30e6)),
    ));
    let small = m("sealed-messaging", "burst.ratio.256");
    let large = m("sealed-messaging", "burst.ratio.4096");
    rows.push(row(
        "sealed messaging across two nodes through NATS ≥ 80% of unsealed throughput",
        small.map(|s| {
            format!(
                "**{:.0}%** at 256 B, {} at 4 KiB",
                s * 100.0,
                large.map_or("—".into(), |l| format!("{:.0}%", l * 100.0))
            )
        }),
        "unsealed messages, same run",
        || Verdict::of(small.is_some_and(|s| s >= 0.8) && large.is_none_or(|l| l >= 0.8)),
    ));
    let scale = r.record("control-scale").and_then(|rec| {
        rec.metrics
            .iter()
            .filter_map(|m| {
                m.id.strip_suffix(".placement_p50_s").and_then(|n| n.strip_prefix('n')?.parse::<u64>().ok())
            })
            .max()
    });
    rows.push(row(
        "one control plane, simulated nodes",
        scale.map(|n| {
            let g = |id: &str| m("control-scale", &format!("n{n}.{id}"));
            format!(
                "{n} nodes, {} instances: placement {} p50; {} heartbeats/s at {} p50; {} RSS",
                g("instances").map_or("?".into(), |v| format!("{v:.0}")),
                fmt_opt(g("placement_p50_s"), "s"),
                g("beats_per_s").map_or("?".into(), |v| format!("{v:.0}")),
                fmt_opt(g("heartbeat_p50_ms"), "ms"),
                fmt_opt(g("rss_mib"), "MiB"),
            )
        }),
        "—",
        || Verdict::Reported,
    ));
    let etcd = m("etcd-auth", "save_64kib_ratio");
    rows.push(row(
        "a replica's state save (64 KiB) in etcd over TLS with a client certificate",
        etcd.map(|ratio| {
            format!(
                "{} p50 vs {} over plain HTTP (ratio {ratio:.2}); connection {} vs {}",
                fmt_opt(m("etcd-auth", "tls.save_64kib_p50_ms"), "ms"),
                fmt_opt(m("etcd-auth", "plain.save_64kib_p50_ms"), "ms"),
                fmt_opt(m("etcd-auth", "tls.connect_p50_ms"), "ms"),
                fmt_opt(m("etcd-auth", "plain.connect_p50_ms"), "ms"),
            )
        }),
        "the same etcd member over plain HTTP, saves alternating",
        || Verdict::Reported,
    ));
    let start = r.startup.as_ref();
    let p50 = |id: &str| start.and_then(|s| s.get(id)).and_then(|m| m.p50_us());
    let lamina = p50("lamina-wasm");
    rows.push(row(
        "`lamina run` hello, process start to exit",
        lamina.map(|l| {
            let w = p50("wasmtime-wasm")
                .map_or_else(String::new, |w| format!(" vs `wasmtime run` {:.2} ms (ratio {:.2})", w / 1e3, l / w));
            format!("**{:.2} ms** p50{w}", l / 1e3)
        }),
        &p50("native").map_or_else(|| "native hello".to_owned(), |n| format!("native hello: {:.2} ms", n / 1e3)),
        || Verdict::Reported,
    ));
    rows
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "—".to_owned(),
        Some(v) => format!("{} {unit}", fmt_num(v)),
    }
}

/// A number with a precision that suits its size.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Writes `docs` (the Markdown report) and its charts into `charts_dir`, which `docs` links to
/// as `charts_link`; `results_link` is how it links to the raw JSON.
pub(crate) fn write(
    r: &Results,
    docs: &Path,
    charts_dir: &Path,
    charts_link: &str,
    results_link: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(charts_dir).with_context(|| format!("cannot create {}", charts_dir.display()))?;
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "<!-- Generated by bench/run.sh (crates/bench) from {results_link}; edit the harness, not this file. -->\n"
    );
    if r.quick {
        let _ = writeln!(
            w,
            "> **A quick run** (`--quick`): every benchmark ran briefly to check the harness; the figures below are not measurements to read.\n"
        );
    }
    let _ = writeln!(
        w,
        "Every figure here comes from one run of `bench/run.sh` on one machine, and every ratio from figures measured side by side in that run (runners interleaved, repetitions, medians). Raw results: [{results_link}]({results_link}). What limits the figures and how they came to be: [performance-notes.md](performance-notes.md).\n"
    );
    let _ = writeln!(
        w,
        "Machine: {}. Commit {}, measured {} in {:.0} minutes.\n",
        r.machine.summary(),
        r.machine.commit,
        r.started,
        r.minutes
    );
    if let Some(wt) = &r.machine.wasmtime_cli {
        let _ = writeln!(
            w,
            "Compared with: {wt} (the command-line tool, installed by `bench/run.sh` with cargo, pinned to the version Lamina embeds).\n"
        );
    }

    let _ = writeln!(w, "## Summary\n\n| target | measured | anchor | met |\n|---|---|---|---|");
    for row in summary(r) {
        let _ = writeln!(w, "| {} | {} | {} | {} |", row.target, row.measured, row.anchor, row.verdict.text());
    }
    let _ = writeln!(w);
    if !r.failures.is_empty() {
        let _ = writeln!(w, "Benchmarks that did not finish in this run (their rows say \"not run\"):\n");
        for f in &r.failures {
            let _ = writeln!(w, "- {}: `{}`: {}", f.suite, f.command, f.error);
        }
        let _ = writeln!(w);
    }

    if let Some(c) = &r.compute {
        compute_section(w, c, charts_dir, charts_link)?;
    }
    startup_section(w, r, charts_dir, charts_link)?;
    for rec in &r.records {
        if rec.suite == "instantiate" {
            continue; // Shown under start-up.
        }
        let _ = writeln!(w, "## {}\n\n`{}`\n", rec.title, rec.command);
        record_table(w, rec);
    }
    if let Some(dir) = docs.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(docs, md).with_context(|| format!("cannot write {}", docs.display()))
}

fn record_table(w: &mut String, rec: &lamina_bench_record::Record) {
    let _ = writeln!(w, "| figure | value |\n|---|---|");
    for m in &rec.metrics {
        let _ = writeln!(w, "| {} | {} {} |", m.label, fmt_num(m.value), m.unit);
    }
    let _ = writeln!(w);
    for note in &rec.notes {
        let _ = writeln!(w, "{note}\n");
    }
}

fn compute_section(w: &mut String, c: &Compute, charts_dir: &Path, charts_link: &str) -> anyhow::Result<()> {
    let _ = writeln!(w, "## Compute: numerical kernels, Wasm against native\n");
    let _ = writeln!(
        w,
        "{} kernels of the kinds PolyBench/C contains (linear algebra, stencils, dynamic programming, data mining), written for this project in C from their definitions (`bench/compute/`). Each is built with the same compiler and flags for both sides: {}. Each program times its kernel alone with CLOCK_MONOTONIC (inside Wasm: WASI's monotonic clock) and prints a checksum of its result (FNV-1a over the bits), which must be the same for every runner. Runners take turns on each kernel, in an order that rotates, {} repetitions; the tables show medians.\n",
        c.results.iter().map(|r| r.kernel.as_str()).collect::<std::collections::BTreeSet<_>>().len(),
        c.build,
        c.reps
    );
    let _ = writeln!(w, "| runner | how (gemm) |\n|---|---|");
    for info in &c.runners {
        let _ = writeln!(w, "| {} | `{}` |", info.label, info.example);
    }
    let _ = writeln!(w);
    for s in &c.skipped {
        let _ = writeln!(w, "Not measured: {s}.\n");
    }
    let wasm_runners: Vec<Runner> = [Runner::Lamina, Runner::LaminaArtifact, Runner::LaminaSimd, Runner::Wasmtime]
        .into_iter()
        .filter(|r| c.has(*r))
        .collect();
    for size in c.sizes() {
        let kernels: Vec<String> = c.at(size).map(|r| r.kernel.clone()).collect();
        let series: Vec<Series> = wasm_runners
            .iter()
            .map(|&runner| Series {
                label: runner.label().to_owned(),
                values: c.at(size).map(|r| r.ratio(runner, Runner::Native)).collect(),
            })
            .collect();
        let file = format!("compute-{}.svg", size.name());
        charts::horizontal_bars(
            &charts_dir.join(&file),
            &Bars {
                title: &format!("Kernel time over native time ({} size; lower is better)", size.name()),
                axis: "time / native time",
                categories: &kernels,
                series: &series,
                reference: Some((1.0, "native")),
            },
        )?;
        let _ = writeln!(
            w,
            "### {} size\n\n![Kernel time over native time, {} size]({charts_link}/{file})\n",
            size.name(),
            size.name()
        );
        let pulley = c.at(size).any(|r| r.samples_ns.contains_key(&Runner::Pulley));
        let _ = write!(w, "| kernel | native |");
        for r in &wasm_runners {
            let _ = write!(w, " {} |", r.label());
        }
        let lamina_vs_wasmtime = c.has(Runner::Wasmtime);
        if lamina_vs_wasmtime {
            let _ = write!(w, " lamina / wasmtime |");
        }
        if pulley {
            let _ = write!(w, " Pulley |");
        }
        let cols = 2 + wasm_runners.len() + usize::from(lamina_vs_wasmtime) + usize::from(pulley);
        let _ = writeln!(w, "\n|{}", "---|".repeat(cols));
        for k in c.at(size) {
            let _ = write!(w, "| {} | {} |", k.kernel, fmt_opt(k.median_ns(Runner::Native).map(|n| n / 1e6), "ms"));
            for &r in &wasm_runners {
                let _ = write!(w, " {} |", ratio_cell(k.median_ns(r), k.ratio(r, Runner::Native)));
            }
            if lamina_vs_wasmtime {
                let _ = write!(
                    w,
                    " {} |",
                    k.ratio(Runner::Lamina, Runner::Wasmtime).map_or("—".into(), |v| format!("{v:.3}"))
                );
            }
            if pulley {
                let _ = write!(
                    w,
                    " {} |",
                    ratio_cell(k.median_ns(Runner::Pulley), k.ratio(Runner::Pulley, Runner::Native))
                );
            }
            let _ = writeln!(w);
        }
        let _ = write!(w, "| **geometric mean** | |");
        for &r in &wasm_runners {
            let _ = write!(
                w,
                " **{}** |",
                c.geomean(size, r, Runner::Native).map_or("—".into(), |(g, _)| format!("{g:.2}x"))
            );
        }
        if lamina_vs_wasmtime {
            let _ = write!(
                w,
                " **{}** |",
                c.geomean(size, Runner::Lamina, Runner::Wasmtime).map_or("—".into(), |(g, _)| format!("{g:.3}"))
            );
        }
        if pulley {
            let _ = write!(
                w,
                " **{}** |",
                c.geomean(size, Runner::Pulley, Runner::Native).map_or("—".into(), |(g, _)| format!("{g:.1}x"))
            );
        }
        let _ = writeln!(w, "\n\nCells: median time, and in brackets the ratio to native.\n");
    }
    if !c.errors.is_empty() {
        let _ = writeln!(w, "Runs that failed:\n");
        for e in &c.errors {
            let _ = writeln!(w, "- {e}");
        }
        let _ = writeln!(w);
    }
    Ok(())
}

fn ratio_cell(median_ns: Option<f64>, ratio: Option<f64>) -> String {
    match (median_ns, ratio) {
        (Some(n), Some(r)) => format!("{} ({r:.2}x)", fmt_opt(Some(n / 1e6), "ms")),
        (Some(n), None) => fmt_opt(Some(n / 1e6), "ms"),
        _ => "—".to_owned(),
    }
}

fn startup_section(w: &mut String, r: &Results, charts_dir: &Path, charts_link: &str) -> anyhow::Result<()> {
    let _ = writeln!(w, "## Start-up\n");
    if let Some(rec) = r.record("instantiate") {
        let _ = writeln!(w, "### Instantiate and call, in one process\n\n`{}`\n", rec.command);
        let _ = writeln!(
            w,
            "A module with one memory page and an `add` export, loaded from a Lamina artifact (no compilation on the measured path); each iteration creates a store with a WASI context and limits, instantiates, calls `add(2, 40)` and drops it.\n"
        );
        record_table(w, rec);
    }
    let Some(s) = &r.startup else { return Ok(()) };
    let _ = writeln!(
        w,
        "### Process start to exit\n\nA hello program (`tests/programs/src/bin/hello.rs`) built for wasm32-wasip1 and natively; each command spawned and waited for {} times, the commands taking turns, after warm-up runs (warm caches) that also check that every Wasm command prints the same.\n",
        s.runs
    );
    let file = "startup.svg";
    let categories: Vec<String> = s.commands.iter().map(|m| m.label.clone()).collect();
    let series = [
        Series { label: "p50".into(), values: s.commands.iter().map(|m| m.p50_us().map(|v| v / 1e3)).collect() },
        Series { label: "p99".into(), values: s.commands.iter().map(|m| m.p99_us().map(|v| v / 1e3)).collect() },
    ];
    charts::horizontal_bars(
        &charts_dir.join(file),
        &Bars {
            title: "Process start to exit (lower is better)",
            axis: "ms",
            categories: &categories,
            series: &series,
            reference: None,
        },
    )?;
    let _ = writeln!(w, "![Process start to exit]({charts_link}/{file})\n");
    let _ = writeln!(w, "| command | p50 | p99 |\n|---|---|---|");
    for m in &s.commands {
        let _ = writeln!(
            w,
            "| `{}` | {} | {} |",
            m.label,
            fmt_opt(m.p50_us().map(|v| v / 1e3), "ms"),
            fmt_opt(m.p99_us().map(|v| v / 1e3), "ms")
        );
    }
    let _ = writeln!(w);
    for sk in &s.skipped {
        let _ = writeln!(w, "Not measured: {sk}.\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lamina_bench_record::Record;

    use super::*;
    use crate::compute::KernelResult;
    use crate::machine::Machine;
    use crate::results::SCHEMA;

    fn results() -> Results {
        let mut compute = Compute {
            build: "clang -O3".into(),
            reps: 3,
            runners: vec![],
            skipped: vec![],
            results: vec![],
            errors: vec![],
        };
        for (kernel, native, lamina, wasmtime) in [("gemm", 100, 120, 119), ("lu", 100, 110, 111)] {
            let mut samples = BTreeMap::new();
            samples.insert(Runner::Native, vec![native; 3]);
            samples.insert(Runner::Lamina, vec![lamina; 3]);
            samples.insert(Runner::Wasmtime, vec![wasmtime; 3]);
            compute.results.push(KernelResult {
                kernel: kernel.into(),
                size: Size::Large,
                checksum: None,
                samples_ns: samples,
            });
        }
        let mut attestation = Record::new("attestation", "Attestation", "cargo bench -p lamina-attest --bench verify");
        attestation.metric("sim.ms", "sim", 0.3, "ms").metric("snp.ms", "snp", 2.5, "ms");
        Results {
            schema: SCHEMA,
            quick: false,
            started: "2026-11-25T00:00:00Z".into(),
            minutes: 1.0,
            machine: Machine::default(),
            compute: Some(compute),
            startup: None,
            records: vec![attestation],
            failures: vec![],
        }
    }

    fn verdict(rows: &[Row], starts: &str) -> Verdict {
        rows.iter().find(|r| r.target.starts_with(starts)).map(|r| r.verdict).expect("row")
    }

    #[test]
    fn targets_are_judged_on_the_measured_figures() {
        let rows = summary(&results());
        // sqrt(1.2 * 1.1) = 1.149 <= 1.25; lamina/wasmtime sqrt(120/119 * 110/111) = 1.0 <= 1.02.
        assert_eq!(verdict(&rows, "compute: geometric mean"), Verdict::Met);
        assert_eq!(verdict(&rows, "compute: `lamina run` no slower"), Verdict::Met);
        assert_eq!(verdict(&rows, "sim attest"), Verdict::Met);
        assert_eq!(verdict(&rows, "SNP report"), Verdict::NotMet, "2.5 ms is over 2 ms");
        assert_eq!(verdict(&rows, "swtpm"), Verdict::NotRun);
        assert_eq!(verdict(&rows, "compute: runtime-only build, Pulley"), Verdict::NotRun);
    }

    #[test]
    fn the_report_has_its_sections_and_charts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let docs = dir.path().join("benchmarks.md");
        let charts = dir.path().join("benchmarks");
        write(&results(), &docs, &charts, "benchmarks", "benchmarks/results.json").expect("written");
        let md = std::fs::read_to_string(&docs).expect("report");
        for part in ["## Summary", "## Compute", "| gemm |", "**geometric mean**", "## Attestation", "![Kernel time"] {
            assert!(md.contains(part), "{part} missing from the report");
        }
        assert!(md.contains("| SNP report verification ≤ 2 ms | **2.50 ms** | — | **no** |"), "{md}");
        assert!(charts.join("compute-large.svg").is_file());
    }
}
