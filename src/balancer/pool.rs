//! An immutable pool of backends with live per-backend state.
//!
//! A `BackendPool` is rebuilt on every reload with its [`PoolOptions`]; the `BackendState` of
//! a backend that survives is carried over by address (health, in-flight, EWMA, ejections,
//! slow start), as are the pool's in-flight total and its retry budget. The pool answers
//! [`pick_with`](BackendPool::pick_with) and takes the request's result back in
//! [`finish`](BackendPool::finish), which feeds the latency estimate and passive health.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::algorithm::{Algorithm, PeakEwmaOptions, Picker};
use super::health::{self, HealthTransition, Outcome, OutlierConfig};
use super::limits::{Admission, Limits};
use super::retry::{RetryBudget, RetryBudgetConfig};
use super::rng::SharedRng;
use super::slow_start::{Ramp, SlowStart};
pub use super::state::BackendState;
use super::state::{nanos, stamp};
use super::view::{PoolMode, SummaryCell, View, summarize};

/// Everything about a pool other than its backends, as config gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOptions {
    pub algorithm: Algorithm,
    /// Passive outlier detection; `None` turns it off.
    pub outlier: Option<OutlierConfig>,
    /// The share of the pool that may be excluded (unhealthy or ejected); beyond it picks
    /// fail open and use every active backend. 0.5 by default.
    pub max_ejected_share: f64,
    /// The ramp of new and recovered backends; `None`: full weight at once.
    pub slow_start: Option<SlowStart>,
    pub ewma: PeakEwmaOptions,
    pub limits: Limits,
    /// Per-backend caps on requests in flight, overriding
    /// `limits.max_in_flight_per_backend` for these addresses.
    pub backend_caps: HashMap<SocketAddr, NonZeroU64>,
    pub retry_budget: RetryBudgetConfig,
    /// Seeds the pool's random choices; `None`: from the operating system.
    pub seed: Option<u64>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            algorithm: Algorithm::default(),
            outlier: Some(OutlierConfig::default()),
            max_ejected_share: 0.5,
            slow_start: None,
            ewma: PeakEwmaOptions::default(),
            limits: Limits::default(),
            backend_caps: HashMap::new(),
            retry_budget: RetryBudgetConfig::default(),
            seed: None,
        }
    }
}

/// What a pick may depend on besides the pool.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    /// The request's time (ejections end, slow start ramps and EWMA decays against it).
    pub now: Instant,
    /// The consistent-hashing key (path, header, cookie or client IP bytes, per
    /// [`HashOn`](super::HashOn)); ignored by other algorithms.
    pub key: Option<&'a [u8]>,
}

impl<'a> PickContext<'a> {
    /// A context at `now` without a hash key.
    pub fn at(now: Instant) -> PickContext<'a> {
        PickContext { now, key: None }
    }

    /// The same context with a hash key.
    pub fn with_key(self, key: &'a [u8]) -> PickContext<'a> {
        PickContext {
            key: Some(key),
            ..self
        }
    }
}

/// Requests in flight in a pool, shared by its generations.
#[derive(Debug, Default)]
pub(crate) struct PoolLoad {
    in_flight: AtomicU64,
}

/// One backend address in a pool.
#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    pub weight: u32,
    pub state: Arc<BackendState>,
    load: Arc<PoolLoad>,
    /// Requests in flight at most (`u64::MAX`: unlimited); a backend at it is passed over.
    cap: u64,
}

/// Marks a request in flight on a backend until dropped or given to
/// [`BackendPool::finish`].
#[derive(Debug)]
pub struct InFlight {
    state: Arc<BackendState>,
    load: Arc<PoolLoad>,
}

impl InFlight {
    /// The backend's state.
    pub fn state(&self) -> &Arc<BackendState> {
        &self.state
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Backend {
    /// The most requests it may have in flight (`u64::MAX`: unlimited).
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Counts a request as started; it stays in flight until the guard is dropped.
    pub fn start(&self) -> InFlight {
        self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        self.state.requests.fetch_add(1, Ordering::Relaxed);
        self.load.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            state: Arc::clone(&self.state),
            load: Arc::clone(&self.load),
        }
    }
}

/// A pool's eligibility at one moment, for the admin API and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolHealth {
    /// Active backends with a weight above zero.
    pub serving: u64,
    /// Of those, the unhealthy or ejected ones.
    pub excluded: u64,
    pub mode: PoolMode,
}

/// The atomics every pick writes, on their own cache lines so that picks on other cores do not
/// keep evicting the pool's read-only fields.
#[derive(Debug)]
#[repr(align(128))]
struct PickCounters {
    rng: SharedRng,
    cursor: AtomicUsize,
}

/// The backends of one pool, in a fixed order, and how to pick among them.
#[derive(Debug)]
pub struct BackendPool {
    name: String,
    backends: Vec<Arc<Backend>>,
    options: PoolOptions,
    picker: Picker,
    ramp: Option<Ramp>,
    picks: PickCounters,
    load: Arc<PoolLoad>,
    summary: SummaryCell,
    /// Serialises ejection decisions, so two backends failing together cannot both take the
    /// pool's last allowed exclusion.
    ejection: Mutex<()>,
    retry_budget: Arc<RetryBudget>,
}

impl BackendPool {
    /// Builds a pool from `(addr, weight)` pairs with default options (peak EWMA), reusing the
    /// state of backends found in `previous` by address.
    pub fn new(
        name: &str,
        backends: impl IntoIterator<Item = (SocketAddr, u32)>,
        previous: Option<&BackendPool>,
    ) -> BackendPool {
        BackendPool::with_options(
            name,
            backends,
            previous,
            PoolOptions::default(),
            Instant::now(),
        )
    }

    /// Builds a pool at `now`. Backends found in `previous` (by address) keep their state;
    /// new ones start healthy and, when `previous` is given and slow start is on, ramp up
    /// from `now` (not on the first build: a starting proxy has no traffic to protect).
    pub fn with_options(
        name: &str,
        backends: impl IntoIterator<Item = (SocketAddr, u32)>,
        previous: Option<&BackendPool>,
        options: PoolOptions,
        now: Instant,
    ) -> BackendPool {
        let surviving: HashMap<SocketAddr, &Arc<BackendState>> = previous
            .map(|p| p.backends.iter().map(|b| (b.addr, &b.state)).collect())
            .unwrap_or_default();
        let load = previous.map_or_else(Arc::default, |p| Arc::clone(&p.load));
        let ramp_from = (previous.is_some() && options.slow_start.is_some()).then_some(now);
        let initial = Some((options.ewma.initial_rtt, now));
        let backends: Vec<Arc<Backend>> = backends
            .into_iter()
            .map(|(addr, weight)| {
                let state = surviving.get(&addr).map_or_else(
                    || Arc::new(BackendState::fresh(ramp_from, initial)),
                    |state| Arc::clone(state),
                );
                let cap = options
                    .backend_caps
                    .get(&addr)
                    .map_or(options.limits.backend_cap(), |c| c.get());
                Arc::new(Backend {
                    addr,
                    weight,
                    state,
                    load: Arc::clone(&load),
                    cap,
                })
            })
            .collect();
        let retry_budget = previous
            .filter(|p| *p.retry_budget.config() == options.retry_budget)
            .map_or_else(
                || Arc::new(RetryBudget::new(options.retry_budget)),
                |p| Arc::clone(&p.retry_budget),
            );
        BackendPool {
            name: name.to_string(),
            picker: Picker::build(&options.algorithm, &backends, &options.ewma),
            ramp: options.slow_start.map(|s| s.ramp()),
            picks: PickCounters {
                rng: options
                    .seed
                    .map_or_else(SharedRng::from_entropy, SharedRng::new),
                cursor: AtomicUsize::new(0),
            },
            backends,
            options,
            load,
            summary: SummaryCell::default(),
            ejection: Mutex::new(()),
            retry_budget,
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every backend.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// The options the pool was built with.
    pub fn options(&self) -> &PoolOptions {
        &self.options
    }

    /// Requests in flight to the pool's backends (including backends that left it and are
    /// draining).
    pub fn in_flight(&self) -> u64 {
        self.load.in_flight.load(Ordering::Relaxed)
    }

    /// The pool's retry budget: [`deposit`](RetryBudget::deposit) once per request,
    /// [`try_withdraw`](RetryBudget::try_withdraw) before each retry.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.retry_budget
    }

    /// The circuit breaker: whether the pool may take one more request.
    pub fn admit(&self) -> Admission {
        self.options.limits.admit_pool(self.in_flight())
    }

    /// Picks a backend now, without a hash key; see [`pick_with`](Self::pick_with).
    pub fn pick(&self) -> Option<(usize, &Arc<Backend>)> {
        self.pick_with(&PickContext::at(Instant::now()))
    }

    /// Picks a backend with the pool's algorithm, with its index in
    /// [`backends`](Self::backends). Skips draining backends, those of weight zero, those at
    /// their in-flight cap and, unless the pool fails open, unhealthy and ejected ones.
    /// `None` when no backend may take the request.
    pub fn pick_with(&self, context: &PickContext<'_>) -> Option<(usize, &Arc<Backend>)> {
        let now = stamp(context.now);
        let summary = self
            .summary
            .get(&self.backends, now, self.options.max_ejected_share);
        if summary.mode == PoolMode::Empty {
            return None;
        }
        let view = View {
            backends: &self.backends,
            summary,
            now,
            ramp: self.ramp,
            rng: &self.picks.rng,
            cursor: &self.picks.cursor,
            pool_in_flight: self.in_flight(),
        };
        let index = self.picker.pick(&view, context.key)?;
        self.backends.get(index).map(|backend| (index, backend))
    }

    /// Ends a request: feeds its latency to the backend's peak EWMA (a failure counts as at
    /// least the failure penalty) and its outcome to passive outlier detection, and publishes
    /// any transition, which it returns for logs and metrics.
    pub fn finish(
        &self,
        flight: InFlight,
        outcome: Outcome,
        latency: Duration,
        now: Instant,
    ) -> Option<HealthTransition> {
        let state = Arc::clone(flight.state());
        drop(flight);
        self.observe(&state, outcome, latency, now)
    }

    /// [`finish`](Self::finish) without ending the request: feeds a response head's outcome
    /// and latency while the [`InFlight`] guard stays with the response body, so the backend
    /// counts the request in flight until its last byte.
    pub fn observe(
        &self,
        state: &Arc<BackendState>,
        outcome: Outcome,
        latency: Duration,
        now: Instant,
    ) -> Option<HealthTransition> {
        let at = stamp(now);
        if outcome != Outcome::Cancelled {
            let ewma = &self.options.ewma;
            let sample = if outcome.is_failure() {
                state.count_failure();
                latency.max(ewma.failure_penalty)
            } else {
                latency
            };
            state
                .ewma()
                .observe(nanos(sample) as f64, at, nanos(ewma.decay) as f64);
        }
        let config = self.options.outlier.as_ref()?;
        if !outcome.is_failure() && !state.is_counting() {
            return None;
        }
        let share = self.options.max_ejected_share;
        let mut detector = state.outlier();
        let mut decision = None;
        let transition = detector.observe(outcome, now, config, || {
            let guard = self.ejection.lock().unwrap_or_else(PoisonError::into_inner);
            let summary = summarize(&self.backends, at, share);
            decision = Some(guard);
            health::ejection_permission(
                usize::try_from(summary.excluded).unwrap_or(usize::MAX),
                usize::try_from(summary.serving).unwrap_or(usize::MAX),
                share,
            )
        });
        state.set_counting(detector.is_counting());
        if let Some(transition) = &transition {
            state.publish(transition, now);
        }
        drop(decision);
        transition
    }

    /// Counts the pool's eligible and excluded backends at `now`.
    pub fn health(&self, now: Instant) -> PoolHealth {
        let summary = self
            .summary
            .get(&self.backends, stamp(now), self.options.max_ejected_share);
        PoolHealth {
            serving: summary.serving,
            excluded: summary.excluded,
            mode: summary.mode,
        }
    }

    /// The backends of `previous` that this pool no longer has: drain them (they get no new
    /// picks from this pool) and close each once its in-flight count is zero.
    pub fn departed<'a>(&self, previous: &'a BackendPool) -> Vec<&'a Arc<Backend>> {
        let kept: std::collections::HashSet<SocketAddr> =
            self.backends.iter().map(|b| b.addr).collect();
        previous
            .backends
            .iter()
            .filter(|b| !kept.contains(&b.addr))
            .collect()
    }
}
