use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::balancer::{
    AdminState, Admission, HealthStatus, HealthTransition, Outcome, OutlierConfig, PoolMode,
    RetryBudgetConfig, SlowStart,
};

fn outliers() -> OutlierConfig {
    OutlierConfig {
        consecutive_server_errors: NonZeroU32::new(3).unwrap(),
        consecutive_connect_failures: NonZeroU32::new(2).unwrap(),
        base_ejection: Duration::from_secs(10),
        max_ejection: Duration::from_secs(60),
        reset_after: Duration::from_secs(120),
    }
}

fn failing_pool(backends: usize, now: Instant) -> BackendPool {
    let options = PoolOptions {
        outlier: Some(outliers()),
        slow_start: Some(SlowStart::default()),
        ..options(Algorithm::RoundRobin)
    };
    BackendPool::with_options("p", weighted(&vec![1; backends]), None, options, now)
}

/// Sends `count` requests with `outcome` straight to backend `index`; returns the last
/// transition.
fn fail(
    pool: &BackendPool,
    index: usize,
    outcome: Outcome,
    count: usize,
    now: Instant,
) -> Option<HealthTransition> {
    let mut last = None;
    for _ in 0..count {
        let guard = pool.backends()[index].start();
        last = pool
            .finish(guard, outcome, Duration::from_millis(1), now)
            .or(last);
    }
    last
}

#[test]
fn an_empty_pool_picks_nothing() {
    let pool = BackendPool::new("p", [], None);
    assert!(pool.pick().is_none());
    assert_eq!(pool.health(Instant::now()).mode, PoolMode::Empty);
}

#[test]
fn the_plain_constructor_uses_peak_ewma_and_picks_every_backend() {
    let pool = BackendPool::new("p", weighted(&[1, 1, 1]), None);
    assert_eq!(pool.options().algorithm, Algorithm::PeakEwma);
    let mut seen = [false; 3];
    for _ in 0..100 {
        seen[pool.pick().unwrap().0] = true;
    }
    assert_eq!(seen, [true; 3]);
}

#[test]
fn state_of_a_surviving_backend_carries_over() {
    let now = Instant::now();
    let old = BackendPool::new("p", [(addr(1), 1), (addr(2), 1)], None);
    let guard = old.backends()[1].start();
    old.backends()[1]
        .state
        .publish(&HealthTransition::BecameUnhealthy, now);
    let until = now + Duration::from_secs(5);
    old.backends()[1].state.publish(
        &HealthTransition::Ejected {
            until,
            ejections: 2,
        },
        now,
    );
    let new = BackendPool::new("p", [(addr(2), 5), (addr(3), 1)], Some(&old));
    let carried = &new.backends()[0];
    assert!(Arc::ptr_eq(&carried.state, &old.backends()[1].state));
    assert_eq!(carried.weight, 5);
    assert_eq!(carried.state.in_flight(), 1);
    assert_eq!(carried.state.health(), HealthStatus::Unhealthy);
    assert_eq!(carried.state.ejections(), 2);
    assert_eq!(carried.state.ejected_until(), Some(until));
    assert_eq!(new.backends()[1].state.in_flight(), 0);
    assert_eq!(new.in_flight(), 1);
    drop(guard);
    assert_eq!(carried.state.in_flight(), 0);
    assert_eq!(new.in_flight(), 0);
}

#[test]
fn the_latency_estimate_carries_over_and_starts_from_the_initial_rtt() {
    let now = Instant::now();
    let old =
        BackendPool::with_options("p", weighted(&[1]), None, options(Algorithm::PeakEwma), now);
    let decay = old.options().ewma.decay;
    let initial = old.options().ewma.initial_rtt;
    assert_eq!(old.backends()[0].state.latency(now, decay), Some(initial));
    let guard = old.backends()[0].start();
    old.finish(guard, Outcome::Success, Duration::from_millis(80), now);
    let new = BackendPool::with_options(
        "p",
        weighted(&[1, 1]),
        Some(&old),
        options(Algorithm::PeakEwma),
        now,
    );
    assert_eq!(
        new.backends()[0].state.latency(now, decay),
        Some(Duration::from_millis(80))
    );
    // Idle, the estimate decays: after one decay time it is about 1/e.
    let later = new.backends()[0].state.latency(now + decay, decay).unwrap();
    assert!(
        (later.as_secs_f64() - 0.080 / std::f64::consts::E).abs() < 1e-4,
        "{later:?}"
    );
}

#[test]
fn a_failure_counts_as_at_least_the_failure_penalty() {
    let now = Instant::now();
    let pool = pool(Algorithm::PeakEwma, &[1]);
    let guard = pool.backends()[0].start();
    pool.finish(
        guard,
        Outcome::ConnectFailure,
        Duration::from_millis(1),
        now,
    );
    let options = pool.options().ewma;
    assert_eq!(
        pool.backends()[0].state.latency(now, options.decay),
        Some(options.failure_penalty)
    );
    assert_eq!(pool.backends()[0].state.failures(), 1);
}

#[test]
fn consecutive_failures_eject_a_backend_and_picks_avoid_it_until_the_backoff_ends() {
    let now = Instant::now();
    let pool = failing_pool(4, now);
    assert_eq!(fail(&pool, 1, Outcome::ServerError, 2, now), None);
    let until = now + Duration::from_secs(10);
    assert_eq!(
        fail(&pool, 1, Outcome::ServerError, 1, now),
        Some(HealthTransition::Ejected {
            until,
            ejections: 1
        })
    );
    assert!(pool.backends()[1].state.is_ejected(now));
    assert_eq!(pool.health(now).excluded, 1);
    assert_eq!(counts(&pool, 300, now)[1], 0);
    // Back after the backoff, on a slow-start ramp from the ejection's end.
    assert!(!pool.backends()[1].state.is_ejected(until));
    assert_eq!(pool.backends()[1].state.ramp_from(), Some(until));
    assert!(counts(&pool, 3000, until + Duration::from_secs(30))[1] > 500);
    assert_eq!(
        pool.backends()[1].state.poll(until),
        Some(HealthTransition::Returned)
    );
    assert_eq!(pool.backends()[1].state.ejected_until(), None);
}

#[test]
fn a_second_ejection_lasts_twice_as_long() {
    let now = Instant::now();
    let pool = failing_pool(4, now);
    fail(&pool, 0, Outcome::ConnectFailure, 2, now);
    let back = now + Duration::from_secs(10);
    assert_eq!(
        fail(&pool, 0, Outcome::ConnectFailure, 2, back),
        Some(HealthTransition::Ejected {
            until: back + Duration::from_secs(20),
            ejections: 2
        })
    );
}

#[test]
fn successes_reset_the_failure_run() {
    let now = Instant::now();
    let pool = failing_pool(2, now);
    for _ in 0..10 {
        fail(&pool, 0, Outcome::ServerError, 2, now);
        fail(&pool, 0, Outcome::Success, 1, now);
    }
    assert!(!pool.backends()[0].state.is_ejected(now));
}

#[test]
fn no_more_than_the_allowed_share_of_a_pool_is_ejected() {
    let now = Instant::now();
    let pool = failing_pool(4, now);
    for index in 0..4 {
        fail(&pool, index, Outcome::ConnectFailure, 2, now);
    }
    let ejected = pool
        .backends()
        .iter()
        .filter(|b| b.state.is_ejected(now))
        .count();
    assert_eq!(ejected, 2);
    assert_eq!(
        fail(&pool, 3, Outcome::ConnectFailure, 1, now),
        Some(HealthTransition::EjectionRefused)
    );
    let health = pool.health(now);
    assert_eq!(
        (health.serving, health.excluded, health.mode),
        (4, 2, PoolMode::Normal)
    );
}

#[test]
fn a_pool_with_too_many_unhealthy_backends_fails_open() {
    let now = Instant::now();
    let pool = failing_pool(4, now);
    for backend in &pool.backends()[..3] {
        backend
            .state
            .publish(&HealthTransition::BecameUnhealthy, now);
    }
    assert_eq!(pool.health(now).mode, PoolMode::FailOpen);
    assert!(counts(&pool, 400, now).iter().all(|c| *c == 100));
    pool.backends()[0]
        .state
        .publish(&HealthTransition::BecameHealthy, now);
    assert_eq!(pool.health(now).mode, PoolMode::Normal);
    // The recovered backend ramps up (slow start) from its recovery.
    assert!(counts(&pool, 400, now)[0] < 100);
    let ramped = now + SlowStart::default().window;
    assert_eq!(counts(&pool, 400, ramped), vec![200, 0, 0, 200]);
}

#[test]
fn a_draining_backend_gets_no_new_picks_while_its_requests_finish() {
    let now = Instant::now();
    let pool = pool(Algorithm::RoundRobin, &[1, 1]);
    let held = pool.backends()[0].start();
    pool.backends()[0].state.set_admin(AdminState::Draining);
    assert_eq!(counts(&pool, 10, now), vec![0, 10]);
    assert_eq!(pool.backends()[0].state.in_flight(), 1);
    drop(held);
    assert_eq!(pool.backends()[0].state.in_flight(), 0);
    pool.backends()[0].state.set_admin(AdminState::Active);
    assert_eq!(counts(&pool, 10, now), vec![5, 5]);
}

#[test]
fn departed_backends_are_listed_for_draining() {
    let old = BackendPool::new("p", weighted(&[1, 1, 1]), None);
    let new = BackendPool::new("p", weighted(&[1, 1]), Some(&old));
    let departed: Vec<_> = new.departed(&old).iter().map(|b| b.addr).collect();
    assert_eq!(departed, vec![addr(3)]);
}

#[test]
fn a_backend_added_on_reload_ramps_up_but_the_first_build_does_not() {
    let now = Instant::now();
    let options = PoolOptions {
        slow_start: Some(SlowStart::default()),
        ..options(Algorithm::Random)
    };
    let first = BackendPool::with_options("p", weighted(&[1]), None, options.clone(), now);
    assert_eq!(first.backends()[0].state.ramp_from(), None);
    let later = now + Duration::from_secs(5);
    let second = BackendPool::with_options("p", weighted(&[1, 1]), Some(&first), options, later);
    assert_eq!(second.backends()[0].state.ramp_from(), None);
    assert_eq!(second.backends()[1].state.ramp_from(), Some(later));
}

#[test]
fn the_circuit_breaker_counts_the_whole_pools_requests_in_flight() {
    let mut options = options(Algorithm::RoundRobin);
    options.limits.max_in_flight_per_pool = NonZeroU64::new(2);
    let pool = BackendPool::with_options("p", weighted(&[1, 1]), None, options, Instant::now());
    let first = pool.pick().unwrap().1.start();
    assert_eq!(pool.admit(), Admission::Admitted);
    let _second = pool.pick().unwrap().1.start();
    assert_eq!(pool.admit(), Admission::PoolSaturated);
    drop(first);
    assert_eq!(pool.admit(), Admission::Admitted);
}

#[test]
fn the_retry_budget_survives_a_reload_with_the_same_settings() {
    let now = Instant::now();
    let old = pool(Algorithm::RoundRobin, &[1]);
    for _ in 0..10 {
        old.retry_budget().deposit(now);
    }
    let same = BackendPool::with_options(
        "p",
        weighted(&[1]),
        Some(&old),
        options(Algorithm::RoundRobin),
        now,
    );
    assert_eq!(
        same.retry_budget().balance(now),
        old.retry_budget().balance(now)
    );
    let changed = PoolOptions {
        retry_budget: RetryBudgetConfig {
            ratio: 0.5,
            ..RetryBudgetConfig::default()
        },
        ..options(Algorithm::RoundRobin)
    };
    let other = BackendPool::with_options("p", weighted(&[1]), Some(&old), changed, now);
    assert_eq!(other.retry_budget().balance(now), 100.0);
}

#[test]
fn passive_detection_can_be_turned_off() {
    let now = Instant::now();
    let options = PoolOptions {
        outlier: None,
        ..options(Algorithm::RoundRobin)
    };
    let pool = BackendPool::with_options("p", weighted(&[1, 1]), None, options, now);
    assert_eq!(fail(&pool, 0, Outcome::ConnectFailure, 50, now), None);
    assert!(!pool.backends()[0].state.is_ejected(now));
}

#[test]
fn rebuilding_a_ten_thousand_backend_pool_keeps_every_state() {
    let now = Instant::now();
    let backends =
        |n: u16| (0..n).map(|i| (SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 80)), 1));
    let old = BackendPool::with_options(
        "p",
        backends(10_000),
        None,
        options(Algorithm::PeakEwma),
        now,
    );
    let new = BackendPool::with_options(
        "p",
        backends(10_000),
        Some(&old),
        options(Algorithm::PeakEwma),
        now,
    );
    assert!(
        old.backends()
            .iter()
            .zip(new.backends())
            .all(|(a, b)| Arc::ptr_eq(&a.state, &b.state))
    );
    let _ = index_of(&new, &new.backends()[9_999]);
}
