//! Concurrency limits: a circuit breaker on a pool's pending requests and a per-backend cap.
//!
//! Owns the checks only, as comparisons of in-flight counts with configured limits. The pool
//! applies the per-backend cap when picking (a backend at its cap is skipped); the pipeline asks
//! [`BackendPool::admit`](super::BackendPool::admit) before picking and answers 503 when the
//! pool is saturated.

use std::num::NonZeroU64;

/// Concurrency limits of one pool; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight to one backend at most (a connection limit).
    pub max_in_flight_per_backend: Option<NonZeroU64>,
    /// Requests in flight to the whole pool at most (the circuit breaker).
    pub max_in_flight_per_pool: Option<NonZeroU64>,
}

/// Whether a new request may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// The pool has its maximum of requests in flight.
    PoolSaturated,
}

impl Admission {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Admission::Admitted => "admitted",
            Admission::PoolSaturated => "pool_saturated",
        }
    }
}

impl Limits {
    /// Whether a pool with `in_flight` requests may take one more.
    pub fn admit_pool(&self, in_flight: u64) -> Admission {
        match self.max_in_flight_per_pool {
            Some(max) if in_flight >= max.get() => Admission::PoolSaturated,
            _ => Admission::Admitted,
        }
    }

    /// The per-backend cap as a number, `u64::MAX` when unlimited. A backend at its cap is
    /// skipped by the picker (`View::admits`), so the cap has no admission of its own.
    pub(crate) fn backend_cap(&self) -> u64 {
        self.max_in_flight_per_backend
            .map_or(u64::MAX, NonZeroU64::get)
    }
}
