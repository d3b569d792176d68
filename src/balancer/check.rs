//! Active health checks as a pure state machine, and their schedule.
//!
//! Owns the check settings as plain data ([`HealthCheckConfig`]), rise/fall over results
//! ([`ActiveHealth`]) and when the next check is due, with jitter from a seedable RNG
//! ([`next_check_at`]). It does not own the checker task, sockets or HTTP: the checker sends
//! the request, maps the response to a [`CheckResult`] and publishes any transition.

use std::num::NonZeroU32;
use std::time::Duration;

use rand::{Rng, RngExt};
use tokio::time::Instant;

use super::health::{HealthStatus, HealthTransition};

/// The verdict of one active check, as the checker task saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    Passed,
    Failed,
}

/// The status codes an active check accepts, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedStatus {
    pub min: u16,
    pub max: u16,
}

impl ExpectedStatus {
    /// Whether a check response with `status` passes.
    pub fn matches(&self, status: u16) -> bool {
        (self.min..=self.max).contains(&status)
    }
}

impl Default for ExpectedStatus {
    /// 2xx and 3xx, as HAProxy counts them.
    fn default() -> Self {
        ExpectedStatus { min: 200, max: 399 }
    }
}

/// Active check settings of one pool, as plain data for config and the checker task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Time between two checks of one backend.
    pub interval: Duration,
    /// Each interval moves by a uniform amount in `[-jitter, +jitter]` so checks spread out.
    pub jitter: Duration,
    /// A check without a response in this time failed.
    pub timeout: Duration,
    /// The HTTP path the checker requests.
    pub path: String,
    /// The statuses that pass.
    pub expected: ExpectedStatus,
    /// Passes in a row that make an unhealthy backend healthy.
    pub rise: NonZeroU32,
    /// Failures in a row that make a healthy backend unhealthy.
    pub fall: NonZeroU32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            interval: Duration::from_secs(5),
            jitter: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            path: "/".to_string(),
            expected: ExpectedStatus::default(),
            rise: NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN),
            fall: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// When to check a backend first: uniform in `[now, now + interval)`, so a pool's backends
/// (and many pools) are not all checked in the same instant.
pub fn first_check_at(now: Instant, config: &HealthCheckConfig, rng: &mut impl Rng) -> Instant {
    let interval = u64::try_from(config.interval.as_nanos()).unwrap_or(u64::MAX);
    let offset = if interval == 0 {
        0
    } else {
        rng.random_range(0..interval)
    };
    now.checked_add(Duration::from_nanos(offset)).unwrap_or(now)
}

/// When to check a backend next, given the previous check started at `last`: `interval`
/// moved by a uniform amount in `[-jitter, +jitter]` (jitter capped at the interval).
pub fn next_check_at(last: Instant, config: &HealthCheckConfig, rng: &mut impl Rng) -> Instant {
    let jitter = config.jitter.min(config.interval);
    let low = config.interval.saturating_sub(jitter);
    let spread = u64::try_from(jitter.as_nanos().saturating_mul(2)).unwrap_or(u64::MAX);
    let extra = if spread == 0 {
        0
    } else {
        rng.random_range(0..=spread)
    };
    let delay = low.saturating_add(Duration::from_nanos(extra));
    last.checked_add(delay).unwrap_or(last)
}

/// Rise/fall over active check results, for one backend; owned by the checker task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHealth {
    status: HealthStatus,
    passes: u32,
    failures: u32,
}

impl ActiveHealth {
    /// Starts (or, after a reload, resumes) from `status`, with no run of results yet.
    pub fn new(status: HealthStatus) -> ActiveHealth {
        ActiveHealth {
            status,
            passes: 0,
            failures: 0,
        }
    }

    /// The current verdict.
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// Takes one check result; returns the transition when the verdict changes.
    pub fn observe(
        &mut self,
        result: CheckResult,
        config: &HealthCheckConfig,
    ) -> Option<HealthTransition> {
        match result {
            CheckResult::Passed => {
                self.failures = 0;
                self.passes = self.passes.saturating_add(1);
                if self.status == HealthStatus::Unhealthy && self.passes >= config.rise.get() {
                    self.status = HealthStatus::Healthy;
                    return Some(HealthTransition::BecameHealthy);
                }
            }
            CheckResult::Failed => {
                self.passes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.status == HealthStatus::Healthy && self.failures >= config.fall.get() {
                    self.status = HealthStatus::Unhealthy;
                    return Some(HealthTransition::BecameUnhealthy);
                }
            }
        }
        None
    }
}
