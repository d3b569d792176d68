//! What it measures: one pass of the resource sampler (`ResourceSampler::sample`: nine `/proc`
//! reads, the fd listing, parsing and publishing to Prometheus) inside a tokio runtime; the
//! same reads alone (the kernel's share, which no build profile changes); the parsing alone on
//! captured text; and the registry read that the alerts and `/admin/stats` do each tick.
//!
//! Run: `cargo bench --bench sampler` (or `--profile dev` for a quick, pessimistic figure).
//! Criterion reports time per pass; compare runs on the same machine only.

#![allow(clippy::unwrap_used)] // fixed, valid inputs

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::admin::dashboard::stats_json;
use sluice::metrics::Metrics;
use sluice::metrics::procfs;
use sluice::metrics::resources::ResourceSampler;
use sluice::metrics::totals::RegistryTotals;

const FILES: [&str; 9] = [
    "/proc/self/stat",
    "/proc/self/status",
    "/proc/self/limits",
    "/proc/stat",
    "/proc/meminfo",
    "/proc/loadavg",
    "/proc/diskstats",
    "/proc/net/dev",
    "/proc/self/fd",
];

fn sampler(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let _inside = runtime.enter();
    let metrics = Metrics::new().unwrap();
    let mut sampler = ResourceSampler::new(metrics.registry()).unwrap();
    c.bench_function("sampler/sample", |b| {
        b.iter(|| black_box(sampler.sample().unwrap()))
    });

    c.bench_function("sampler/reads_only", |b| {
        let mut buffer = String::with_capacity(16 * 1024);
        b.iter(|| {
            for path in &FILES[..8] {
                buffer.clear();
                std::io::Read::read_to_string(&mut std::fs::File::open(path).unwrap(), &mut buffer)
                    .unwrap();
            }
            black_box(std::fs::read_dir(FILES[8]).unwrap().count())
        })
    });

    let texts: Vec<String> = FILES[..8]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    c.bench_function("sampler/parse_only", |b| {
        b.iter(|| {
            black_box(procfs::process_stat(&texts[0]));
            black_box(procfs::status_resident_kb(&texts[1]));
            black_box(procfs::limits_max_open_files(&texts[2]));
            black_box(procfs::host_stat(&texts[3]));
            black_box(procfs::meminfo(&texts[4]));
            black_box(procfs::loadavg(&texts[5]));
            black_box(procfs::diskstats(&texts[6], 16));
            black_box(procfs::net_dev(&texts[7], 16))
        })
    });

    // A registry with ten routes of traffic, as the alerts and the dashboard read it.
    for i in 0..10 {
        let route = metrics.route(&format!("route{i}"));
        for n in 0..100u32 {
            route.observe(200 + (n % 4) as u16 * 100, f64::from(n) / 1000.0, 1000);
        }
    }
    c.bench_function("totals/gather", |b| {
        b.iter(|| black_box(RegistryTotals::gather(metrics.registry())))
    });
    let snapshot = sampler.sample().unwrap();
    c.bench_function("dashboard/stats_json", |b| {
        b.iter(|| {
            black_box(
                stats_json(metrics.registry(), Some(&snapshot), &[], SystemTime::now()).to_string(),
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = sampler
}
criterion_main!(benches);
