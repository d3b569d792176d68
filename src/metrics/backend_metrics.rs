//! Per-backend and per-pool balancing metrics: requests, errors, in-flight, latency, health,
//! ejections, retries, retry budget exhaustion and circuit-breaker rejections.
//!
//! Owns these metric names and their labels (`pool` and `backend` address, both bounded by
//! the configuration). Handles are resolved lazily per backend, the first time a backend
//! takes a request, so that building a snapshot of 10 000 backends does not pay 40 000 label
//! lookups. Gauges (in-flight, healthy) are set from the live state when metrics are
//! scraped, not per request. It does not own the state it reports (see `balancer/`).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::{DURATION_BUCKETS, register};
use crate::balancer::{HealthTransition, Outcome};

/// The metric families, registered once.
pub(crate) struct BackendFamilies {
    requests: IntCounterVec,
    errors: IntCounterVec,
    in_flight: IntGaugeVec,
    duration: HistogramVec,
    healthy: IntGaugeVec,
    ejections: IntCounterVec,
    retries: IntCounterVec,
    budget_exhausted: IntCounterVec,
    rejected: IntCounterVec,
}

const BACKEND: &[&str] = &["pool", "backend"];
const POOL: &[&str] = &["pool"];

impl BackendFamilies {
    pub(crate) fn new(registry: &Registry) -> Result<BackendFamilies, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).map(|m| register(registry, m))
        };
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), BACKEND).map(|m| register(registry, m))
        };
        Ok(BackendFamilies {
            requests: counter(
                "sluice_backend_requests_total",
                "Requests sent to a backend (each attempt counts).",
                BACKEND,
            )?,
            errors: counter(
                "sluice_backend_errors_total",
                "Attempts that failed: 5xx, connect failure, timeout or a broken exchange.",
                BACKEND,
            )?,
            in_flight: gauge(
                "sluice_backend_in_flight_requests",
                "Requests in flight to a backend, until their last response byte.",
            )?,
            duration: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "sluice_backend_response_duration_seconds",
                        "Time from sending a request to a backend to its response head.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    BACKEND,
                )?,
            ),
            healthy: gauge(
                "sluice_backend_healthy",
                "1 when a backend may be picked (healthy by active checks, not ejected, not draining), else 0.",
            )?,
            ejections: counter(
                "sluice_backend_ejections_total",
                "Times passive outlier detection ejected a backend.",
                BACKEND,
            )?,
            retries: counter(
                "sluice_pool_retries_total",
                "Requests sent again to another backend of the pool.",
                POOL,
            )?,
            budget_exhausted: counter(
                "sluice_pool_retry_budget_exhausted_total",
                "Retries refused because the pool's retry budget was spent.",
                POOL,
            )?,
            rejected: counter(
                "sluice_pool_rejected_requests_total",
                "Requests answered 503 at once because the pool had its maximum pending.",
                POOL,
            )?,
        })
    }

    /// The handles of pool `pool` with `backends` (addresses as labels), resolved lazily.
    pub(crate) fn pool(&self, pool: &str, backends: Vec<String>) -> PoolMetrics {
        PoolMetrics {
            retries: self.retries.with_label_values(&[pool]),
            budget_exhausted: self.budget_exhausted.with_label_values(&[pool]),
            rejected: self.rejected.with_label_values(&[pool]),
            per_request: true,
            pool: pool.to_string(),
            cells: backends.iter().map(|_| OnceLock::new()).collect(),
            addresses: backends,
            families: FamilyHandles {
                requests: self.requests.clone(),
                errors: self.errors.clone(),
                duration: self.duration.clone(),
                ejections: self.ejections.clone(),
            },
        }
    }

    /// Sets the gauges of one backend from its live state.
    pub(crate) fn set_state(&self, pool: &str, backend: &str, in_flight: u64, healthy: bool) {
        self.in_flight
            .with_label_values(&[pool, backend])
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        self.healthy
            .with_label_values(&[pool, backend])
            .set(i64::from(healthy));
    }

    /// Forgets a backend that left its pool and finished draining.
    pub(crate) fn remove(&self, pool: &str, backend: &str) {
        let labels = [pool, backend];
        let _ = self.requests.remove_label_values(&labels);
        let _ = self.errors.remove_label_values(&labels);
        let _ = self.in_flight.remove_label_values(&labels);
        let _ = self.duration.remove_label_values(&labels);
        let _ = self.healthy.remove_label_values(&labels);
        let _ = self.ejections.remove_label_values(&labels);
    }
}

#[derive(Clone)]
struct FamilyHandles {
    requests: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    ejections: IntCounterVec,
}

/// One pool's handles, built with each snapshot.
pub struct PoolMetrics {
    pool: String,
    addresses: Vec<String>,
    cells: Vec<OnceLock<BackendMetrics>>,
    families: FamilyHandles,
    retries: IntCounter,
    budget_exhausted: IntCounter,
    rejected: IntCounter,
    /// Whether [`PoolMetrics::backend`] hands out the per-attempt handles
    /// (`[monitoring] request_metrics`).
    per_request: bool,
}

/// One backend's handles.
pub struct BackendMetrics {
    requests: IntCounter,
    errors: IntCounter,
    duration: Histogram,
    ejections: IntCounter,
}

impl PoolMetrics {
    /// Without per-attempt metrics when `on` is false: [`PoolMetrics::backend`] returns `None`,
    /// so attempts are not counted or timed; health transitions still are.
    pub fn with_request_metrics(mut self, on: bool) -> PoolMetrics {
        self.per_request = on;
        self
    }

    /// The handles of the backend at `index` in the pool, for counting an attempt; `None` when
    /// per-request metrics are off.
    pub fn backend(&self, index: usize) -> Option<&BackendMetrics> {
        if self.per_request {
            self.handles(index)
        } else {
            None
        }
    }

    fn handles(&self, index: usize) -> Option<&BackendMetrics> {
        let (cell, address) = self.cells.get(index).zip(self.addresses.get(index))?;
        Some(cell.get_or_init(|| {
            let labels = [self.pool.as_str(), address.as_str()];
            BackendMetrics {
                requests: self.families.requests.with_label_values(&labels),
                errors: self.families.errors.with_label_values(&labels),
                duration: self.families.duration.with_label_values(&labels),
                ejections: self.families.ejections.with_label_values(&labels),
            }
        }))
    }

    /// Counts a health transition of the backend at `index`.
    pub fn transition(&self, index: usize, transition: &HealthTransition) {
        if matches!(transition, HealthTransition::Ejected { .. })
            && let Some(backend) = self.handles(index)
        {
            backend.ejections.inc();
        }
    }

    /// Counts a retry.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// Counts a retry the budget refused.
    pub fn budget_exhausted(&self) {
        self.budget_exhausted.inc();
    }

    /// Counts a request the circuit breaker refused.
    pub fn rejected(&self) {
        self.rejected.inc();
    }
}

impl BackendMetrics {
    /// Counts an attempt sent to the backend.
    pub fn started(&self) {
        self.requests.inc();
    }

    /// Records an attempt's outcome and time to its response head.
    pub fn observe(&self, outcome: Outcome, elapsed: Duration) {
        if outcome.is_failure() {
            self.errors.inc();
        }
        if outcome != Outcome::Cancelled {
            self.duration.observe(elapsed.as_secs_f64());
        }
    }
}
