//! Backend health as pure state machines: the words and passive outlier detection.
//!
//! Owns the decisions only: [`OutlierDetector`] (consecutive failures eject for a growing
//! backoff), the pool rule on how many backends may be excluded ([`max_excluded`]), and the
//! vocabulary both kinds of checks share ([`HealthStatus`], [`Outcome`],
//! [`HealthTransition`]); active checks live in `check.rs`. Every input is an event and the
//! time it happened; every output is a [`HealthTransition`] that the caller publishes into
//! [`BackendState`](super::BackendState). It does not own the checker task, sockets or HTTP.

use std::num::NonZeroU32;
use std::time::Duration;

use tokio::time::Instant;

/// Whether active checks consider a backend fit to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// How one proxied request to a backend ended, as the pipeline saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response the route does not count as a server error.
    Success,
    /// A 5xx response (or another status the route counts as a failure).
    ServerError,
    /// The connection could not be made or was refused.
    ConnectFailure,
    /// No response within the upstream timeout.
    Timeout,
    /// The downstream went away first: says nothing about the backend.
    Cancelled,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ServerError => "server_error",
            Outcome::ConnectFailure => "connect_failure",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Whether this outcome counts against the backend.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::ServerError | Outcome::ConnectFailure | Outcome::Timeout
        )
    }
}

/// A change of a backend's health, to publish and to count in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthTransition {
    /// Active checks passed `rise` times in a row.
    BecameHealthy,
    /// Active checks failed `fall` times in a row.
    BecameUnhealthy,
    /// Passive detection ejected the backend until `until`; `ejections` counts the ejections
    /// in a row that set the backoff.
    Ejected { until: Instant, ejections: u32 },
    /// The ejection backoff passed; the backend takes traffic again (slow start applies).
    Returned,
    /// The backend reached its failure threshold but the pool may not exclude more backends.
    EjectionRefused,
}

impl HealthTransition {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthTransition::BecameHealthy => "became_healthy",
            HealthTransition::BecameUnhealthy => "became_unhealthy",
            HealthTransition::Ejected { .. } => "ejected",
            HealthTransition::Returned => "returned",
            HealthTransition::EjectionRefused => "ejection_refused",
        }
    }
}

/// Passive outlier detection settings of one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    /// Failures in a row (5xx, connect failures, timeouts) that eject a backend.
    pub consecutive_server_errors: NonZeroU32,
    /// Connect failures or timeouts in a row that eject a backend (sooner: nothing answered).
    pub consecutive_connect_failures: NonZeroU32,
    /// The first ejection's length; each ejection in a row doubles it.
    pub base_ejection: Duration,
    /// The longest an ejection lasts.
    pub max_ejection: Duration,
    /// After this long back in service without an ejection, the backoff starts over.
    pub reset_after: Duration,
}

impl Default for OutlierConfig {
    /// Envoy's defaults for lengths (30 s doubling to 300 s); 5 errors or 3 connect failures.
    fn default() -> Self {
        OutlierConfig {
            consecutive_server_errors: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            consecutive_connect_failures: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            reset_after: Duration::from_secs(300),
        }
    }
}

/// The length of the `ejections`-th ejection in a row: `base * 2^(ejections - 1)`, capped.
pub fn ejection_backoff(ejections: u32, config: &OutlierConfig) -> Duration {
    let doublings = ejections.saturating_sub(1);
    let factor = 2u32.checked_pow(doublings).unwrap_or(u32::MAX);
    config
        .base_ejection
        .checked_mul(factor)
        .unwrap_or(config.max_ejection)
        .min(config.max_ejection)
}

/// Whether the pool lets one more backend be excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionPermission {
    Allowed,
    Refused,
}

/// How many of `serving` backends may be excluded (unhealthy or ejected) before the pool
/// fails open: `floor(share * serving)`, and at least one when there are two or more backends
/// and the share is not zero (as Envoy does, so small pools can still eject).
pub fn max_excluded(serving: usize, share: f64) -> usize {
    let share = if share.is_nan() {
        0.0
    } else {
        share.clamp(0.0, 1.0)
    };
    // Truncation is the floor here: both factors are non-negative.
    let allowed = (share * serving as f64) as usize;
    if allowed == 0 && share > 0.0 && serving >= 2 {
        1
    } else {
        allowed.min(serving)
    }
}

/// Whether one more of `serving` backends may be ejected when `excluded` already are.
pub fn ejection_permission(excluded: usize, serving: usize, share: f64) -> EjectionPermission {
    if excluded < max_excluded(serving, share) {
        EjectionPermission::Allowed
    } else {
        EjectionPermission::Refused
    }
}

/// Consecutive-failure ejection with a growing backoff, for one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlierDetector {
    server_errors: u32,
    connect_failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
    returned_at: Option<Instant>,
}

impl OutlierDetector {
    /// A detector with no history.
    pub fn new() -> OutlierDetector {
        OutlierDetector::default()
    }

    /// Until when the backend is ejected, if it is.
    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_until
    }

    /// Ejections in a row so far (the backoff level).
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// Whether a run of failures is being counted (a success then has work to do).
    pub fn is_counting(&self) -> bool {
        self.server_errors > 0 || self.connect_failures > 0 || self.ejected_until.is_some()
    }

    /// Ends an ejection whose backoff has passed by `now`.
    pub fn poll(&mut self, now: Instant) -> Option<HealthTransition> {
        match self.ejected_until {
            Some(until) if now >= until => {
                self.ejected_until = None;
                self.returned_at = Some(until);
                Some(HealthTransition::Returned)
            }
            _ => None,
        }
    }

    /// Takes one request outcome at `now`. When the backend reaches a threshold, `permission`
    /// is asked (only then) whether the pool may lose it. Outcomes while ejected are ignored:
    /// the pool may still send traffic when it fails open, and that must not extend the
    /// ejection.
    pub fn observe(
        &mut self,
        outcome: Outcome,
        now: Instant,
        config: &OutlierConfig,
        permission: impl FnOnce() -> EjectionPermission,
    ) -> Option<HealthTransition> {
        let returned = self.poll(now);
        if self.ejected_until.is_some() {
            return None;
        }
        if let Some(at) = self.returned_at
            && now.checked_duration_since(at).unwrap_or_default() >= config.reset_after
        {
            self.ejections = 0;
            self.returned_at = None;
        }
        match outcome {
            Outcome::Success => {
                self.server_errors = 0;
                self.connect_failures = 0;
                return returned;
            }
            Outcome::Cancelled => return returned,
            Outcome::ServerError => {
                self.server_errors = self.server_errors.saturating_add(1);
                self.connect_failures = 0;
            }
            Outcome::ConnectFailure | Outcome::Timeout => {
                self.server_errors = self.server_errors.saturating_add(1);
                self.connect_failures = self.connect_failures.saturating_add(1);
            }
        }
        let tripped = self.server_errors >= config.consecutive_server_errors.get()
            || self.connect_failures >= config.consecutive_connect_failures.get();
        if !tripped {
            return returned;
        }
        match permission() {
            EjectionPermission::Refused => Some(HealthTransition::EjectionRefused),
            EjectionPermission::Allowed => {
                self.ejections = self.ejections.saturating_add(1);
                let backoff = ejection_backoff(self.ejections, config);
                let until = now.checked_add(backoff).unwrap_or(now);
                self.ejected_until = Some(until);
                self.returned_at = None;
                self.server_errors = 0;
                self.connect_failures = 0;
                Some(HealthTransition::Ejected {
                    until,
                    ejections: self.ejections,
                })
            }
        }
    }
}
