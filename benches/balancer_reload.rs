//! What it measures: rebuilding a 10 000-backend pool from the previous 10 000-backend pool,
//! as a config reload does for each pool: every backend's live state is found by address and
//! carried over (health, in-flight, EWMA, ejections, slow start), the pool's in-flight total
//! and retry budget are carried, and the algorithm's tables are rebuilt (weighted round robin's
//! schedule, the consistent-hashing ring, the random weight table). One backend in a hundred
//! is replaced between builds, so the rebuild also creates fresh state. The drop of the new
//! pool is not timed. The target for a whole 10 000-backend reload is under 50 ms.
//!
//! Also the whole reload of a 10 000-backend config as `Reloader` does it: `snapshot_10000`
//! times `Snapshot::build` from the previous snapshot (every pool rebuilt with its state
//! carried over, authorities, metric handles, the upstream client reused), and
//! `parse_and_build_10000` adds reading the TOML text and validating it.
//!
//! Run: `cargo bench --bench balancer_reload -- --warm-up-time 1 --measurement-time 2`
//! (about a minute on two cores). Criterion reports time per rebuild.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // fixed, valid inputs

use std::hint::black_box;
use std::net::SocketAddr;

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::balancer::{Algorithm, BackendPool, HashOptions, PoolOptions};
use sluice::config::Config;
use sluice::metrics::Metrics;
use sluice::shared::Snapshot;
use tokio::time::Instant;

const BACKENDS: usize = 10_000;

/// Backends `first..first + BACKENDS`, weights 1..=4.
fn backends(first: usize) -> Vec<(SocketAddr, u32)> {
    (first..first + BACKENDS)
        .map(|i| {
            let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            (SocketAddr::from((ip, 8080)), 1 + (i % 4) as u32)
        })
        .collect()
}

fn reload(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("reload_10000");
    for algorithm in [
        Algorithm::PeakEwma,
        Algorithm::WeightedRoundRobin,
        Algorithm::ConsistentHash(HashOptions::default()),
        Algorithm::Random,
    ] {
        let options = PoolOptions {
            algorithm: algorithm.clone(),
            seed: Some(1),
            ..PoolOptions::default()
        };
        let previous = BackendPool::with_options("bench", backends(0), None, options.clone(), now);
        let next = backends(BACKENDS / 100);
        group.bench_function(algorithm.as_str(), |b| {
            b.iter_with_large_drop(|| {
                BackendPool::with_options(
                    "bench",
                    black_box(next.iter().copied()),
                    Some(&previous),
                    options.clone(),
                    now,
                )
            })
        });
    }
    group.finish();
}

/// A config with one pool of the backends from `first`: P2C-EWMA, outlier detection and slow
/// start on.
fn config_text(first: usize) -> String {
    let mut text = String::from(
        "[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[[routes]]\npool = \"big\"\n\n[pools.big]\nslow_start = \"30s\"\n\n",
    );
    for (addr, weight) in backends(first) {
        text.push_str(&format!(
            "[[pools.big.backends]]\naddr = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    text
}

fn parse(text: &str) -> Arc<Config> {
    Arc::new(Config::parse(text, "bench.toml", Path::new(".")).unwrap())
}

fn snapshot(c: &mut Criterion) {
    let metrics = Metrics::new().unwrap();
    let previous = Snapshot::build(parse(&config_text(0)), 1, None, &metrics).unwrap();
    let text = config_text(BACKENDS / 100);
    let next = parse(&text);
    let mut group = c.benchmark_group("reload_10000");
    group.bench_function("snapshot_10000", |b| {
        b.iter_with_large_drop(|| {
            Snapshot::build(Arc::clone(black_box(&next)), 2, Some(&previous), &metrics).unwrap()
        })
    });
    group.bench_function("parse_and_build_10000", |b| {
        b.iter_with_large_drop(|| {
            let config = parse(black_box(&text));
            Snapshot::build(config, 2, Some(&previous), &metrics).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, reload, snapshot);
criterion_main!(benches);
