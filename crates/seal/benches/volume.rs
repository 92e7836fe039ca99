//! Sealed-volume throughput: sequential write (with the final commit) and sequential read of a
//! 64 MiB file in 64 KiB requests, side by side with the same on a plain host file. With
//! `LAMINA_BENCH_RECORDS` set it writes the throughputs as the `sealed-volume` record;
//! `LAMINA_BENCH_QUICK=1` makes the run brief.
//!
//! `cargo bench -p lamina-seal --bench volume`
#![allow(clippy::expect_used, reason = "a benchmark's set-up: a failure stops it with its message")]

use std::io::{Read as _, Write as _};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput};
use lamina_bench_record::{CriterionMedians, Record};
use lamina_seal::{OpenFlags, Opened, SealTo, Volume, VolumeOptions};
use lamina_tee::sim::SimPlatform;
use lamina_types::ModuleHash;

const SIZE: usize = 64 << 20;
const REQUEST: usize = 64 << 10;
const GROUP: &str = "sequential 64 MiB";

/// The benchmarks, as criterion names them, with the record's id and label of each.
const BENCHES: [(&str, &str, &str); 4] = [
    ("sealed write", "sealed_write", "sealed write (with commit)"),
    ("plain write", "plain_write", "plain write (with fsync)"),
    ("sealed read", "sealed_read", "sealed read"),
    ("plain read", "plain_read", "plain read"),
];

fn throughput(c: &mut Criterion, quick: bool) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let sim = SimPlatform::open(&tmp.path().join("state")).expect("sim");
    let options =
        VolumeOptions { seal_to: SealTo::Module(ModuleHash::of(b"bench")), quota: u64::MAX, rollback_protection: true };
    let mut volume = Volume::open(&tmp.path().join("vol"), &sim, &options).expect("volume");
    let data: Vec<u8> = (0..REQUEST).map(|i| i as u8).collect();
    let plain_path = tmp.path().join("plain.bin");
    let create = OpenFlags { create: true, truncate: true, ..OpenFlags::default() };

    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Bytes(SIZE as u64)).sample_size(10).measurement_time(Duration::from_secs(8));
    if quick {
        // Brief runs (the harness's quick mode): criterion's shortest measurement.
        group.measurement_time(lamina_bench_record::QUICK_MEASUREMENT).warm_up_time(lamina_bench_record::QUICK_WARM_UP);
    }
    group.bench_function(BENCHES[0].0, |b| {
        b.iter(|| {
            let Opened::File(id) = volume.open_path("big", create).expect("opens") else { unreachable!() };
            for offset in (0..SIZE).step_by(REQUEST) {
                volume.write_at(&id, offset as u64, &data).expect("writes");
            }
            volume.commit().expect("commits");
            volume.close(&id).expect("closes");
        });
    });
    group.bench_function(BENCHES[1].0, |b| {
        b.iter(|| {
            let mut file = std::fs::File::create(&plain_path).expect("creates");
            for _ in (0..SIZE).step_by(REQUEST) {
                file.write_all(&data).expect("writes");
            }
            file.sync_data().expect("syncs");
        });
    });
    let mut buf = vec![0u8; REQUEST];
    group.bench_function(BENCHES[2].0, |b| {
        b.iter(|| {
            let Opened::File(id) = volume.open_path("big", OpenFlags::default()).expect("opens") else {
                unreachable!()
            };
            for offset in (0..SIZE).step_by(REQUEST) {
                volume.read_at(&id, offset as u64, &mut buf).expect("reads");
            }
            volume.close(&id).expect("closes");
        });
    });
    group.bench_function(BENCHES[3].0, |b| {
        b.iter(|| {
            let mut file = std::fs::File::open(&plain_path).expect("opens");
            for _ in (0..SIZE).step_by(REQUEST) {
                file.read_exact(&mut buf).expect("reads");
            }
        });
    });
    group.finish();
}

/// The `sealed-volume` record: 64 MiB over criterion's median time of each benchmark.
fn record(medians: &CriterionMedians) -> Record {
    let mut record =
        Record::new("sealed-volume", "Sealed storage throughput", "cargo bench -p lamina-seal --bench volume");
    for (function, id, label) in BENCHES {
        match medians.median_ns(GROUP, Some(function), None) {
            Ok(ns) => {
                let mib_per_s = (SIZE as f64 / f64::from(1 << 20)) / (ns / 1e9);
                record.metric(id, label, mib_per_s, "MiB/s");
            }
            Err(e) => {
                eprintln!("volume: {e}");
                record.note(&format!("no criterion median for {function}: {e}"));
            }
        }
    }
    record.note("a 64 MiB file in 64 KiB requests; throughput from criterion's median time");
    record
}

fn main() {
    let medians = CriterionMedians::new().written_since(SystemTime::now());
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c, lamina_bench_record::quick());
    c.final_summary();
    // `cargo bench` passes `--bench`; under `cargo test` the bench only checks that it runs.
    if lamina_bench_record::measuring()
        && let Some(path) = record(&medians).write_if_requested().expect("writes the record")
    {
        eprintln!("record: {}", path.display());
    }
}
