use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::balancer::{HealthTransition, SlowStart};

fn ramp() -> SlowStart {
    SlowStart {
        window: Duration::from_secs(100),
        min_factor: 0.05,
    }
}

#[test]
fn the_ramp_rises_linearly_from_the_minimum_to_full_weight() {
    let slow = ramp();
    let start = Instant::now();
    let at = |secs| slow.factor(Some(start), start + Duration::from_secs(secs));
    assert_eq!(at(0), 0.05);
    assert_eq!(at(1), 0.05);
    assert!((at(25) - 0.25).abs() < 1e-9);
    assert!((at(50) - 0.5).abs() < 1e-9);
    assert_eq!(at(100), 1.0);
    assert_eq!(at(1000), 1.0);
    assert_eq!(slow.factor(None, start), 1.0);
    // A ramp that starts later (the end of an ejection) holds the minimum until then.
    assert_eq!(
        slow.factor(Some(start + Duration::from_secs(10)), start),
        0.05
    );
}

#[test]
fn a_zero_window_means_full_weight_at_once() {
    let slow = SlowStart {
        window: Duration::ZERO,
        min_factor: 0.1,
    };
    let now = Instant::now();
    assert_eq!(slow.factor(Some(now), now), 1.0);
}

fn ramping_pool(algorithm: Algorithm, start: Instant) -> BackendPool {
    let options = PoolOptions {
        slow_start: Some(ramp()),
        ..options(algorithm)
    };
    let first = BackendPool::with_options("p", weighted(&[1, 1]), None, options.clone(), start);
    // Backend 3 joins on a rebuild: it ramps, the others do not.
    BackendPool::with_options("p", weighted(&[1, 1, 1]), Some(&first), options, start)
}

#[test]
fn a_backend_added_on_rebuild_gets_its_share_ramped_up() {
    let start = Instant::now();
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
    ] {
        let pool = ramping_pool(algorithm.clone(), start);
        assert_eq!(pool.backends()[0].state.ramp_from(), None);
        let share = |secs: u64| {
            let counts = counts(&pool, 30_000, start + Duration::from_secs(secs));
            counts[2] as f64 / 30_000.0
        };
        // Factor f against two at full weight: a share of f / (2 + f).
        let (quarter, full) = (share(25), share(100));
        assert!(
            (quarter - 0.25 / 2.25).abs() < 0.03,
            "{}: {quarter:.3}",
            algorithm.as_str()
        );
        assert!(
            (full - 1.0 / 3.0).abs() < 0.03,
            "{}: {full:.3}",
            algorithm.as_str()
        );
    }
}

#[test]
fn peak_ewma_lets_a_ramping_backend_into_the_comparison_in_proportion_to_its_factor() {
    let start = Instant::now();
    let pool = ramping_pool(Algorithm::PeakEwma, start);
    let share = |secs: u64| {
        let counts = counts(&pool, 30_000, start + Duration::from_secs(secs));
        counts[2] as f64 / 30_000.0
    };
    // Idle and equal backends: in a pair two times in three, let in with probability f,
    // then one of two equals.
    let (quarter, full) = (share(25), share(100));
    assert!((quarter - 0.25 / 3.0).abs() < 0.02, "{quarter:.3}");
    assert!((full - 1.0 / 3.0).abs() < 0.02, "{full:.3}");
}

#[test]
fn least_request_gives_a_ramping_backend_held_requests_in_proportion_to_its_factor() {
    let start = Instant::now();
    let pool = ramping_pool(Algorithm::LeastRequest, start);
    let now = start + Duration::from_secs(50);
    let _guards: Vec<_> = (0..500)
        .map(|_| pool.pick_with(&PickContext::at(now)).unwrap().1.start())
        .collect();
    let held: Vec<usize> = pool
        .backends()
        .iter()
        .map(|b| b.state.in_flight() as usize)
        .collect();
    assert_proportional(&held, &[2, 2, 1], 0.03);
}

#[test]
fn a_recovered_backend_ramps_up_from_its_recovery() {
    let start = Instant::now();
    let options = PoolOptions {
        slow_start: Some(ramp()),
        ..options(Algorithm::Random)
    };
    let pool = BackendPool::with_options("p", weighted(&[1, 1]), None, options, start);
    let backend = &pool.backends()[1];
    backend
        .state
        .publish(&HealthTransition::BecameUnhealthy, start);
    let recovered = start + Duration::from_secs(60);
    backend
        .state
        .publish(&HealthTransition::BecameHealthy, recovered);
    assert_eq!(backend.state.ramp_from(), Some(recovered));
    let counts = counts(&pool, 20_000, recovered + Duration::from_secs(50));
    let share = counts[1] as f64 / 20_000.0;
    assert!((share - 0.5 / 1.5).abs() < 0.03, "{share:.3}");
}
