//! Load balancing: pools of backends and how one is picked for a request.
//!
//! Owns the immutable [`BackendPool`] built from config and the live [`BackendState`] of each
//! backend (atomics that survive reloads); the algorithms ([`Algorithm`]); health as pure
//! state machines ([`ActiveHealth`] with its check schedule, [`OutlierDetector`]); slow start;
//! the retry budget and concurrency limits. It knows nothing of sockets or HTTP clients: the
//! pipeline asks for a backend and reports back when the request is done, and the checker task
//! sends the checks and feeds their results in.
//!
//! The pipeline's calls, per request:
//! 1. `pool.admit()` (circuit breaker), then `pool.pick_with(&PickContext::at(now).with_key(k))`;
//! 2. `backend.start()` for the [`InFlight`] guard;
//! 3. `pool.finish(guard, outcome, latency, now)`, which publishes health transitions;
//! 4. for a retry: `pool.retry_budget().try_withdraw(now)` (after one `deposit(now)` per
//!    request).

pub mod algorithm;
pub mod check;
pub mod discovery;
mod hashing;
pub mod health;
pub mod limits;
pub mod pool;
pub mod retry;
mod rng;
mod schedule;
pub mod slow_start;
mod state;
mod view;

pub use algorithm::{Algorithm, HashOn, HashOptions, PeakEwmaOptions};
pub use check::{
    ActiveHealth, CheckResult, ExpectedStatus, HealthCheckConfig, first_check_at, next_check_at,
};
pub use health::{
    EjectionPermission, HealthStatus, HealthTransition, Outcome, OutlierConfig, OutlierDetector,
    ejection_backoff, ejection_permission, max_excluded,
};
pub use limits::{Admission, Limits};
pub use pool::{Backend, BackendPool, InFlight, PickContext, PoolHealth, PoolOptions};
pub use retry::{RetryBudget, RetryBudgetConfig, RetryDecision};
pub use rng::{SharedRng, hash_key};
pub use slow_start::SlowStart;
pub use state::{AdminState, BackendState};
pub use view::PoolMode;

#[cfg(test)]
mod tests;
