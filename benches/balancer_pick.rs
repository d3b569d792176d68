//! What it measures: the cost of one pick (`BackendPool::pick_with`) for each algorithm at
//! pool sizes 3, 100 and 10 000, all backends healthy and idle, one thread, `now` fixed (the
//! eligibility summary is cached, as between health changes in production). Consistent
//! hashing picks rotate over 1 024 keys of 16 bytes (hashing the key is included). Also one
//! full request cycle for the default algorithm: pick, `start`, `finish` (EWMA update).
//!
//! Run: `cargo bench --bench balancer_pick -- --warm-up-time 1 --measurement-time 2`
//! (about a minute on two cores). Filter with a group name, e.g. `-- pick/peak_ewma`.
//! Criterion reports time per pick; compare runs on the same machine only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // fixed, valid inputs

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sluice::balancer::{Algorithm, BackendPool, HashOptions, Outcome, PickContext, PoolOptions};
use tokio::time::Instant;

const SIZES: [usize; 3] = [3, 100, 10_000];

fn backends(n: usize) -> impl Iterator<Item = (SocketAddr, u32)> {
    (0..n).map(|i| {
        let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        // Weights 1..=4, so weighted algorithms do weighted work.
        (SocketAddr::from((ip, 8080)), 1 + (i % 4) as u32)
    })
}

fn algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastRequest,
        Algorithm::PeakEwma,
        Algorithm::ConsistentHash(HashOptions::default()),
        Algorithm::ConsistentHash(HashOptions {
            load_factor: None,
            ..HashOptions::default()
        }),
        Algorithm::Random,
    ]
}

fn name(algorithm: &Algorithm) -> String {
    match algorithm {
        Algorithm::ConsistentHash(HashOptions {
            load_factor: None, ..
        }) => "consistent_hash_unbounded".to_string(),
        Algorithm::ConsistentHash(_) => "consistent_hash_bounded".to_string(),
        other => other.as_str().to_string(),
    }
}

fn pool(algorithm: Algorithm, n: usize, now: Instant) -> BackendPool {
    let options = PoolOptions {
        algorithm,
        seed: Some(1),
        ..PoolOptions::default()
    };
    BackendPool::with_options("bench", backends(n), None, options, now)
}

fn pick(c: &mut Criterion) {
    let now = Instant::now();
    let keys: Vec<String> = (0..1024).map(|i| format!("/catalogue/{i:06}")).collect();
    for algorithm in algorithms() {
        let mut group = c.benchmark_group(format!("pick/{}", name(&algorithm)));
        for n in SIZES {
            let pool = pool(algorithm.clone(), n, now);
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                let mut next = 0usize;
                b.iter(|| {
                    next = (next + 1) & 1023;
                    let context = PickContext::at(now).with_key(keys[next].as_bytes());
                    black_box(pool.pick_with(black_box(&context)).map(|(i, _)| i))
                })
            });
        }
        group.finish();
    }
}

fn cycle(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("cycle/peak_ewma");
    for n in SIZES {
        let pool = pool(Algorithm::PeakEwma, n, now);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let (_, backend) = pool.pick_with(&PickContext::at(now)).unwrap();
                let flight = backend.start();
                black_box(pool.finish(flight, Outcome::Success, Duration::from_millis(3), now))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pick, cycle);
criterion_main!(benches);
