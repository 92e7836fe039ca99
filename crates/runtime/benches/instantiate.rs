//! Instantiate-and-call of a tiny precompiled module, the cost a node pays per request.
//!
//! Side by side in one run: Lamina's API on the server profile (pooling allocator) and on the
//! tiny profile (on-demand allocation), and bare wasmtime (a pre-linked module and an empty
//! store, no WASI context) as the floor. After criterion's estimates, the bench prints p50 and
//! p99 from individually timed iterations. With `LAMINA_BENCH_RECORDS` set it writes both as the
//! `instantiate` record; `LAMINA_BENCH_QUICK=1` makes the run brief.
//!
//! Run: `cargo bench -p lamina-runtime --bench instantiate`
#![allow(clippy::expect_used, reason = "a benchmark's set-up: a failure stops it with its message")]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use lamina_bench_record::{CriterionMedians, Record};
use lamina_runtime::{Engine, EngineOptions, Limits, Output, Program, Val, WasiConfig};
use lamina_types::Profile;

const TINY: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

fn program(profile: Profile) -> Program {
    let engine = Engine::new(EngineOptions::for_profile(profile)).expect("engine");
    let artifact = engine.compile(TINY.as_bytes()).expect("compiles");
    // Load the artifact, as a node does: precompiled and signed, no compilation on this path.
    let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("a valid scalar");
    let signature = lamina_runtime::signing::sign(&artifact, &key).expect("signs");
    let code = lamina_runtime::TrustedCode::signed(&artifact, &signature, &[*key.verifying_key()]).expect("verifies");
    Program::load_code(&engine, &code).expect("loads the artifact")
}

fn quiet() -> WasiConfig {
    WasiConfig { stdout: Output::Null, stderr: Output::Null, stdin: Some(Vec::new()), ..WasiConfig::default() }
}

fn lamina_once(program: &Program, wasi: &WasiConfig) {
    let mut instance = program.instantiate(wasi, Limits::default()).expect("instantiates");
    let out = instance.call("add", &[Val::I32(2), Val::I32(40)]).expect("calls");
    black_box(out);
}

struct Bare {
    store_engine: wasmtime::Engine,
    pre: wasmtime::InstancePre<()>,
}

fn bare() -> Bare {
    let mut config = wasmtime::Config::new();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::pooling());
    let engine = wasmtime::Engine::new(&config).expect("engine");
    let module = wasmtime::Module::new(&engine, TINY).expect("module");
    let pre = wasmtime::Linker::new(&engine).instantiate_pre(&module).expect("links");
    Bare { store_engine: engine, pre }
}

fn bare_once(b: &Bare) {
    let mut store = wasmtime::Store::new(&b.store_engine, ());
    let instance = b.pre.instantiate(&mut store).expect("instantiates");
    let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add").expect("export");
    black_box(add.call(&mut store, (2, 40)).expect("calls"));
}

const GROUP: &str = "instantiate_and_call";

/// The three runners: criterion's function name, the record's id prefix, and its label.
const RUNNERS: [(&str, &str, &str); 3] = [
    ("lamina_server_pooling", "server", "Lamina, server profile (pooling)"),
    ("lamina_tiny_on_demand", "tiny", "Lamina, tiny profile (on demand)"),
    ("bare_wasmtime_pooling_no_wasi", "bare", "bare wasmtime (pooling, no WASI)"),
];

fn bench(c: &mut Criterion) {
    let server = program(Profile::Server);
    let tiny = program(Profile::Tiny);
    let floor = bare();
    let wasi = quiet();
    let mut group = c.benchmark_group(GROUP);
    group.bench_function(RUNNERS[0].0, |b| b.iter(|| lamina_once(&server, &wasi)));
    group.bench_function(RUNNERS[1].0, |b| b.iter(|| lamina_once(&tiny, &wasi)));
    group.bench_function(RUNNERS[2].0, |b| b.iter(|| bare_once(&floor)));
    group.finish();
}

/// p50 and p99 of `n` individually timed iterations of each runner (in [`RUNNERS`]' order),
/// interleaved so that drift hits all alike; prints them.
fn percentiles(n: usize) -> [(Duration, Duration); 3] {
    let server = program(Profile::Server);
    let tiny = program(Profile::Tiny);
    let floor = bare();
    let wasi = quiet();
    let mut samples: [Vec<Duration>; 3] = [Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n)];
    for _ in 0..1_000 {
        lamina_once(&server, &wasi);
        lamina_once(&tiny, &wasi);
        bare_once(&floor);
    }
    for _ in 0..n {
        let t = Instant::now();
        lamina_once(&server, &wasi);
        samples[0].push(t.elapsed());
        let t = Instant::now();
        lamina_once(&tiny, &wasi);
        samples[1].push(t.elapsed());
        let t = Instant::now();
        bare_once(&floor);
        samples[2].push(t.elapsed());
    }
    println!("\ninstantiate_and_call, {n} interleaved iterations each:");
    println!("{:<34} {:>10} {:>10}", "runner", "p50", "p99");
    let mut result = [(Duration::ZERO, Duration::ZERO); 3];
    for (((name, _, _), s), r) in RUNNERS.iter().zip(&mut samples).zip(&mut result) {
        s.sort_unstable();
        *r = (s[n / 2], s[n * 99 / 100]);
        println!("{name:<34} {:>10.2?} {:>10.2?}", r.0, r.1);
    }
    println!(
        "ratio lamina_server / bare wasmtime at p50: {:.2}",
        result[0].0.as_secs_f64() / result[2].0.as_secs_f64()
    );
    result
}

/// The `instantiate` record: criterion's medians, then the percentiles.
fn record(medians: &CriterionMedians, percentiles: &[(Duration, Duration); 3], n: usize) -> Record {
    let mut record =
        Record::new("instantiate", "Instantiate and call", "cargo bench -p lamina-runtime --bench instantiate");
    for (function, id, label) in RUNNERS {
        match medians.median_ns(GROUP, Some(function), None) {
            Ok(ns) => {
                record.metric(&format!("{id}.median_us"), &format!("{label}, median"), ns / 1e3, "µs");
            }
            Err(e) => {
                eprintln!("instantiate: {e}");
                record.note(&format!("no criterion median for {function}: {e}"));
            }
        }
    }
    for ((_, id, label), (p50, p99)) in RUNNERS.iter().zip(percentiles) {
        let us = |d: &Duration| d.as_secs_f64() * 1e6;
        record.metric(&format!("{id}.p50_us"), &format!("{label}, p50"), us(p50), "µs");
        record.metric(&format!("{id}.p99_us"), &format!("{label}, p99"), us(p99), "µs");
    }
    record.note(&format!("p50 and p99 from {n} individually timed iterations of each, interleaved"));
    record
}

fn main() {
    // Brief runs (the harness's quick mode): criterion's shortest measurement, fewer iterations.
    let quick = lamina_bench_record::quick();
    let criterion = if quick {
        Criterion::default()
            .warm_up_time(lamina_bench_record::QUICK_WARM_UP)
            .measurement_time(lamina_bench_record::QUICK_MEASUREMENT)
            .sample_size(lamina_bench_record::QUICK_SAMPLES)
    } else {
        Criterion::default()
    };
    let medians = CriterionMedians::new().written_since(SystemTime::now());
    let mut criterion = criterion.configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes `--bench`; under `cargo test` the bench only checks that it runs.
    if !lamina_bench_record::measuring() {
        return;
    }
    let n = if quick { 1_000 } else { 20_000 };
    let percentiles = percentiles(n);
    if let Some(path) = record(&medians, &percentiles, n).write_if_requested().expect("writes the record") {
        eprintln!("record: {}", path.display());
    }
}
