use std::time::Duration;

use tokio::time::Instant;

use crate::balancer::limits::{Admission, Limits};
use crate::balancer::retry::{RetryBudget, RetryBudgetConfig, RetryDecision};

fn budget(ratio: f64, min_per_second: u32) -> RetryBudget {
    RetryBudget::new(RetryBudgetConfig {
        ratio,
        min_per_second,
        window: Duration::from_secs(10),
    })
}

fn allowed(budget: &RetryBudget, now: Instant, tries: usize) -> usize {
    (0..tries)
        .filter(|_| budget.try_withdraw(now) == RetryDecision::Allowed)
        .count()
}

#[test]
fn retries_are_allowed_up_to_the_ratio_of_requests() {
    let budget = budget(0.2, 0);
    let now = Instant::now();
    for _ in 0..100 {
        budget.deposit(now);
    }
    assert_eq!(allowed(&budget, now, 50), 20);
    assert_eq!(budget.try_withdraw(now), RetryDecision::Exhausted);
    // Five more requests earn one more retry.
    for _ in 0..5 {
        budget.deposit(now);
    }
    assert_eq!(allowed(&budget, now, 5), 1);
}

#[test]
fn a_quiet_pool_may_still_retry_its_minimum_per_second() {
    let budget = budget(0.2, 3);
    let now = Instant::now();
    assert_eq!(allowed(&budget, now, 100), 30);
    assert_eq!(budget.balance(now), 0.0);
}

#[test]
fn the_minimum_and_the_ratio_add_up() {
    let budget = budget(0.5, 1);
    let now = Instant::now();
    for _ in 0..10 {
        budget.deposit(now);
    }
    assert_eq!(budget.balance(now), 15.0);
    assert_eq!(allowed(&budget, now, 100), 15);
}

#[test]
fn requests_and_retries_expire_with_the_window() {
    let budget = budget(0.2, 0);
    let start = Instant::now();
    for _ in 0..100 {
        budget.deposit(start);
    }
    assert_eq!(allowed(&budget, start, 10), 10);
    // Still inside the window: ten left.
    let inside = start + Duration::from_secs(8);
    assert_eq!(budget.balance(inside), 10.0);
    // Past the window: the requests no longer count.
    let past = start + Duration::from_secs(11);
    assert_eq!(budget.try_withdraw(past), RetryDecision::Exhausted);
    for _ in 0..50 {
        budget.deposit(past);
    }
    assert_eq!(allowed(&budget, past, 100), 10);
}

#[test]
fn a_retry_storm_is_cut_to_the_budget() {
    // Every request fails and wants a retry: only about a fifth get one.
    let budget = budget(0.2, 1);
    let mut now = Instant::now();
    let mut retried = 0;
    for _ in 0..10_000 {
        now += Duration::from_millis(1);
        budget.deposit(now);
        if budget.try_withdraw(now) == RetryDecision::Allowed {
            retried += 1;
        }
    }
    // 20% of 10 000, plus the reserve of 1/s over a 10 s window, which refills as the
    // oldest slot of the window expires.
    assert!((2000..=2020).contains(&retried), "{retried}");
}

#[test]
fn concurrent_retries_never_overspend_the_budget() {
    let budget = budget(0.0, 5);
    let now = Instant::now();
    let granted: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| allowed(&budget, now, 100)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(granted, 50);
}

#[test]
fn a_zero_window_allows_no_retries_and_does_not_panic() {
    let budget = RetryBudget::new(RetryBudgetConfig {
        ratio: 0.2,
        min_per_second: 10,
        window: Duration::ZERO,
    });
    let now = Instant::now();
    budget.deposit(now);
    assert_eq!(budget.try_withdraw(now), RetryDecision::Exhausted);
}

#[test]
fn the_circuit_breaker_and_the_connection_limit_compare_in_flight_counts() {
    let limits = Limits {
        max_in_flight_per_backend: std::num::NonZeroU64::new(2),
        max_in_flight_per_pool: std::num::NonZeroU64::new(10),
    };
    assert_eq!(limits.admit_pool(9), Admission::Admitted);
    assert_eq!(limits.admit_pool(10), Admission::PoolSaturated);
    assert_eq!(limits.backend_cap(), 2);
    assert_eq!(Limits::default().backend_cap(), u64::MAX);
    assert_eq!(Limits::default().admit_pool(u64::MAX), Admission::Admitted);
    assert_eq!(RetryDecision::Exhausted.as_str(), "exhausted");
    assert_eq!(Admission::PoolSaturated.as_str(), "pool_saturated");
}
