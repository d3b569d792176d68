//! What it measures: rebuilding a 10 000-backend pool from the previous 10 000-backend pool,
//! as a config reload does for each pool: every backend's live state is found by address and
//! carried over (health, in-flight, EWMA, ejections, slow start), the pool's in-flight total
//! and retry budget are carried, and the algorithm's tables are rebuilt (weighted round robin's
//! schedule, the consistent-hashing ring, the random weight table). One backend in a hundred
//! is replaced between builds, so the rebuild also creates fresh state. The drop of the new
//! pool is not timed. The target for a whole 10 000-backend reload is under 50 ms.
//!
//! Run: `cargo bench --bench balancer_reload -- --warm-up-time 1 --measurement-time 2`
//! (about half a minute on two cores). Criterion reports time per rebuild.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // fixed, valid inputs

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::balancer::{Algorithm, BackendPool, HashOptions, PoolOptions};
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

criterion_group!(benches, reload);
criterion_main!(benches);
