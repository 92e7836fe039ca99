//! Sealed-volume throughput: sequential write (with the final commit) and sequential read of a
//! 64 MiB file in 64 KiB requests, side by side with the same on a plain host file.
//!
//! `cargo bench -p lamina-seal --bench volume`

use std::io::{Read as _, Write as _};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use lamina_seal::{OpenFlags, Opened, SealTo, Volume, VolumeOptions};
use lamina_tee::sim::SimPlatform;
use lamina_types::ModuleHash;

const SIZE: usize = 64 << 20;
const REQUEST: usize = 64 << 10;

fn throughput(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let sim = SimPlatform::open(&tmp.path().join("state")).expect("sim");
    let options =
        VolumeOptions { seal_to: SealTo::Module(ModuleHash::of(b"bench")), quota: u64::MAX, rollback_protection: true };
    let mut volume = Volume::open(&tmp.path().join("vol"), &sim, &options).expect("volume");
    let data: Vec<u8> = (0..REQUEST).map(|i| i as u8).collect();
    let plain_path = tmp.path().join("plain.bin");
    let create = OpenFlags { create: true, truncate: true, ..OpenFlags::default() };

    let mut group = c.benchmark_group("sequential 64 MiB");
    group.throughput(Throughput::Bytes(SIZE as u64)).sample_size(10).measurement_time(Duration::from_secs(8));
    group.bench_function("sealed write", |b| {
        b.iter(|| {
            let Opened::File(id) = volume.open_path("big", create).expect("opens") else { unreachable!() };
            for offset in (0..SIZE).step_by(REQUEST) {
                volume.write_at(&id, offset as u64, &data).expect("writes");
            }
            volume.commit().expect("commits");
            volume.close(&id).expect("closes");
        });
    });
    group.bench_function("plain write", |b| {
        b.iter(|| {
            let mut file = std::fs::File::create(&plain_path).expect("creates");
            for _ in (0..SIZE).step_by(REQUEST) {
                file.write_all(&data).expect("writes");
            }
            file.sync_data().expect("syncs");
        });
    });
    let mut buf = vec![0u8; REQUEST];
    group.bench_function("sealed read", |b| {
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
    group.bench_function("plain read", |b| {
        b.iter(|| {
            let mut file = std::fs::File::open(&plain_path).expect("opens");
            for _ in (0..SIZE).step_by(REQUEST) {
                file.read_exact(&mut buf).expect("reads");
            }
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c);
    c.final_summary();
}
