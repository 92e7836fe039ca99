//! Instantiate-and-call of a tiny precompiled module, the cost a node pays per request.
//!
//! Side by side in one run: Lamina's API on the server profile (pooling allocator) and on the
//! tiny profile (on-demand allocation), and bare wasmtime (a pre-linked module and an empty
//! store, no WASI context) as the floor. After criterion's estimates, the bench prints p50 and
//! p99 from individually timed iterations.
//!
//! Run: `cargo bench -p lamina-runtime --bench instantiate`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use lamina_runtime::{Engine, EngineOptions, Limits, Output, Program, Val, WasiConfig};
use lamina_types::Profile;

const TINY: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

fn program(profile: Profile) -> Program {
    let engine = Engine::new(EngineOptions::for_profile(profile)).expect("engine");
    let artifact = engine.compile(TINY.as_bytes()).expect("compiles");
    // Load the artifact, as a node does: precompiled, no compilation on this path.
    engine.load(&artifact, None).expect("loads the artifact")
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

fn bench(c: &mut Criterion) {
    let server = program(Profile::Server);
    let tiny = program(Profile::Tiny);
    let floor = bare();
    let wasi = quiet();
    let mut group = c.benchmark_group("instantiate_and_call");
    group.bench_function("lamina_server_pooling", |b| b.iter(|| lamina_once(&server, &wasi)));
    group.bench_function("lamina_tiny_on_demand", |b| b.iter(|| lamina_once(&tiny, &wasi)));
    group.bench_function("bare_wasmtime_pooling_no_wasi", |b| b.iter(|| bare_once(&floor)));
    group.finish();
}

/// p50 and p99 of individually timed iterations, interleaved so that drift hits all alike.
fn percentiles() {
    // `cargo bench` passes `--bench`; under `cargo test` the bench only checks that it runs.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let server = program(Profile::Server);
    let tiny = program(Profile::Tiny);
    let floor = bare();
    let wasi = quiet();
    const N: usize = 20_000;
    let mut samples: [Vec<Duration>; 3] = [Vec::with_capacity(N), Vec::with_capacity(N), Vec::with_capacity(N)];
    for _ in 0..1_000 {
        lamina_once(&server, &wasi);
        lamina_once(&tiny, &wasi);
        bare_once(&floor);
    }
    for _ in 0..N {
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
    println!("\ninstantiate_and_call, {N} interleaved iterations each:");
    println!("{:<34} {:>10} {:>10}", "runner", "p50", "p99");
    let mut p50s = Vec::new();
    for (name, s) in
        ["lamina_server_pooling", "lamina_tiny_on_demand", "bare_wasmtime_pooling_no_wasi"].iter().zip(&mut samples)
    {
        s.sort_unstable();
        let (p50, p99) = (s[N / 2], s[N * 99 / 100]);
        p50s.push(p50);
        println!("{name:<34} {:>10.2?} {:>10.2?}", p50, p99);
    }
    println!("ratio lamina_server / bare wasmtime at p50: {:.2}", p50s[0].as_secs_f64() / p50s[2].as_secs_f64());
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    percentiles();
}
