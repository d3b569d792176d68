//! Unit tests of the balancer, one file per module under test. Shared builders live here.
//! Time is always a parameter: tests move a base instant forward, they never sleep.

mod algorithm;
mod hashing;
mod health;
mod pool;
mod retry;
mod rng;
mod slow_start;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Algorithm, Backend, BackendPool, PickContext, PoolOptions};

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Backends on ports 1.. with the given weights.
pub(super) fn weighted(weights: &[u32]) -> Vec<(SocketAddr, u32)> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| (addr(i as u16 + 1), *w))
        .collect()
}

pub(super) fn options(algorithm: Algorithm) -> PoolOptions {
    PoolOptions {
        algorithm,
        seed: Some(42),
        ..PoolOptions::default()
    }
}

pub(super) fn pool(algorithm: Algorithm, weights: &[u32]) -> BackendPool {
    BackendPool::with_options(
        "p",
        weighted(weights),
        None,
        options(algorithm),
        Instant::now(),
    )
}

/// How many of `picks` picks at `now` went to each backend index.
pub(super) fn counts(pool: &BackendPool, picks: usize, now: Instant) -> Vec<usize> {
    let mut counts = vec![0; pool.backends().len()];
    for _ in 0..picks {
        let (index, _) = pool.pick_with(&PickContext::at(now)).unwrap();
        counts[index] += 1;
    }
    counts
}

/// Asserts each count is within `tolerance` (a fraction) of `picks * weight / total`.
pub(super) fn assert_proportional(counts: &[usize], weights: &[u32], tolerance: f64) {
    let picks: usize = counts.iter().sum();
    let total: u32 = weights.iter().sum();
    for (count, weight) in counts.iter().zip(weights) {
        let expected = picks as f64 * f64::from(*weight) / f64::from(total);
        let error = (*count as f64 - expected).abs() / expected.max(1.0);
        assert!(
            error <= tolerance,
            "counts {counts:?} for weights {weights:?}: {count} is {error:.3} off {expected:.0}"
        );
    }
}

pub(super) fn index_of(pool: &BackendPool, backend: &Arc<Backend>) -> usize {
    pool.backends()
        .iter()
        .position(|b| Arc::ptr_eq(b, backend))
        .unwrap()
}
