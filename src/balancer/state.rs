//! Live per-backend state: the atomics every snapshot of a pool shares.
//!
//! Owns [`BackendState`] (in-flight and request counts, published health, ejection, draining,
//! slow-start start, peak-EWMA latency) and the time stamps it stores. It does not decide
//! anything: health verdicts come from `health.rs` through [`BackendState::publish`], picks
//! read the atomics through `view.rs`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::health::{HealthStatus, HealthTransition, OutlierDetector};

/// Stamps are signed nanoseconds from this instant, so they fit one atomic.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Bumped on every change that can change which backends a pick may use (health, ejection,
/// draining); pools recount their summary when it moves. Such changes are rare.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The stamp meaning "never" or "not set".
pub(crate) const NEVER: i64 = i64::MIN;

const UNHEALTHY: u8 = 1;
const DRAINING: u8 = 2;

/// `now` as a stamp; saturates centuries away and never equals [`NEVER`].
pub(crate) fn stamp(now: Instant) -> i64 {
    let epoch = *EPOCH;
    match now.checked_duration_since(epoch) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => {
            let before = epoch.checked_duration_since(now).unwrap_or_default();
            i64::try_from(before.as_nanos())
                .map(|n| -n)
                .unwrap_or(-i64::MAX)
        }
    }
}

/// The instant of a stamp; `None` for [`NEVER`].
pub(crate) fn instant(stamp: i64) -> Option<Instant> {
    if stamp == NEVER {
        return None;
    }
    let epoch = *EPOCH;
    let distance = Duration::from_nanos(stamp.unsigned_abs());
    if stamp >= 0 {
        epoch.checked_add(distance)
    } else {
        epoch.checked_sub(distance)
    }
}

/// Nanoseconds in a duration, saturating.
pub(crate) fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The current eligibility generation.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

fn bump_generation() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Whether an operator has taken a backend out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Takes new requests.
    Active,
    /// Takes no new requests; in-flight ones finish.
    Draining,
}

impl AdminState {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            AdminState::Active => "active",
            AdminState::Draining => "draining",
        }
    }
}

/// Live state of one backend, shared between snapshots and carried over by address.
#[derive(Debug)]
pub struct BackendState {
    pub(crate) in_flight: AtomicU64,
    pub(crate) requests: AtomicU64,
    failures: AtomicU64,
    flags: AtomicU8,
    ejected_until: AtomicI64,
    ejections: AtomicU32,
    ramp_from: AtomicI64,
    ewma: Ewma,
    outlier: Mutex<OutlierDetector>,
    /// Mirrors `outlier.is_counting()`, so a success on a clean backend takes no lock.
    counting: AtomicBool,
}

impl Default for BackendState {
    /// Healthy, active, no history, no slow start.
    fn default() -> Self {
        BackendState::fresh(None, None)
    }
}

impl BackendState {
    /// A new backend: healthy and active; ramping up from `ramp_from` when given; with a
    /// latency estimate of `initial.0` taken at `initial.1` (it decays like a real sample)
    /// until the first response.
    pub(crate) fn fresh(ramp_from: Option<Instant>, initial: Option<(Duration, Instant)>) -> Self {
        let ewma = match initial {
            Some((rtt, at)) => Ewma::seeded(rtt, stamp(at)),
            None => Ewma::default(),
        };
        BackendState {
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            flags: AtomicU8::new(0),
            ejected_until: AtomicI64::new(NEVER),
            ejections: AtomicU32::new(0),
            ramp_from: AtomicI64::new(ramp_from.map_or(NEVER, stamp)),
            ewma,
            outlier: Mutex::new(OutlierDetector::new()),
            counting: AtomicBool::new(false),
        }
    }

    /// Requests sent to this backend and not yet finished.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests ever sent to this backend.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests that ended in a failure outcome (5xx, connect failure, timeout).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The verdict of active checks.
    pub fn health(&self) -> HealthStatus {
        if self.flags.load(Ordering::Acquire) & UNHEALTHY == 0 {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        }
    }

    /// Whether the backend takes new requests.
    pub fn admin(&self) -> AdminState {
        if self.flags.load(Ordering::Acquire) & DRAINING == 0 {
            AdminState::Active
        } else {
            AdminState::Draining
        }
    }

    /// Drains (no new picks; in-flight requests finish) or reactivates the backend. When
    /// draining, close it once [`in_flight`](Self::in_flight) reaches zero.
    pub fn set_admin(&self, admin: AdminState) {
        match admin {
            AdminState::Active => self.flags.fetch_and(!DRAINING, Ordering::AcqRel),
            AdminState::Draining => self.flags.fetch_or(DRAINING, Ordering::AcqRel),
        };
        bump_generation();
    }

    /// Whether a pick may use the backend at `now`: healthy by active checks, not ejected and
    /// not draining (a pool that fails open may still use an ineligible one).
    pub fn eligible(&self, now: Instant) -> bool {
        self.health() == HealthStatus::Healthy
            && self.admin() == AdminState::Active
            && !self.is_ejected(now)
    }

    /// Until when passive detection ejected the backend, if an ejection was ever published
    /// (the instant may be past).
    pub fn ejected_until(&self) -> Option<Instant> {
        instant(self.ejected_until.load(Ordering::Acquire))
    }

    /// Whether the backend is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.load(Ordering::Acquire) > stamp(now)
    }

    /// Ejections in a row (the backoff level).
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// When the backend's slow-start ramp began (new or recovered), if it ever did.
    pub fn ramp_from(&self) -> Option<Instant> {
        instant(self.ramp_from.load(Ordering::Relaxed))
    }

    /// The peak-EWMA latency estimate at `now` (decayed while idle, as picks see it) for the
    /// pool's decay time; `None` before the first response.
    pub fn latency(&self, now: Instant, decay: Duration) -> Option<Duration> {
        let estimate = self
            .ewma
            .estimate(stamp(now), nanos(decay) as f64, self.in_flight());
        estimate.map(|ns| Duration::from_nanos(ns as u64))
    }

    /// Publishes a health verdict. `now` starts the slow-start ramp of a recovering backend.
    pub fn publish(&self, transition: &HealthTransition, now: Instant) {
        match *transition {
            HealthTransition::BecameHealthy => {
                self.ramp_from.store(stamp(now), Ordering::Relaxed);
                self.flags.fetch_and(!UNHEALTHY, Ordering::AcqRel);
            }
            HealthTransition::BecameUnhealthy => {
                self.flags.fetch_or(UNHEALTHY, Ordering::AcqRel);
            }
            HealthTransition::Ejected { until, ejections } => {
                let until = stamp(until);
                self.ramp_from.store(until, Ordering::Relaxed);
                self.ejections.store(ejections, Ordering::Relaxed);
                self.ejected_until.store(until, Ordering::Release);
            }
            HealthTransition::Returned => {
                self.ejected_until.store(NEVER, Ordering::Release);
            }
            HealthTransition::EjectionRefused => return,
        }
        bump_generation();
    }

    /// Ends an ejection whose backoff has passed by `now` and publishes it (picks already
    /// ignore a past ejection; this reports the return, for logs and metrics).
    pub fn poll(&self, now: Instant) -> Option<HealthTransition> {
        let until = self.ejected_until.load(Ordering::Acquire);
        if until == NEVER || until > stamp(now) {
            return None;
        }
        let transition = self.outlier().poll(now)?;
        self.publish(&transition, now);
        Some(transition)
    }

    /// Whether passive detection is counting a run of failures (lock-free hint).
    pub(crate) fn is_counting(&self) -> bool {
        self.counting.load(Ordering::Relaxed)
    }

    pub(crate) fn set_counting(&self, counting: bool) {
        self.counting.store(counting, Ordering::Relaxed);
    }

    pub(crate) fn flags(&self) -> u8 {
        self.flags.load(Ordering::Acquire)
    }

    pub(crate) fn ejected_until_stamp(&self) -> i64 {
        self.ejected_until.load(Ordering::Acquire)
    }

    pub(crate) fn ramp_from_stamp(&self) -> i64 {
        self.ramp_from.load(Ordering::Relaxed)
    }

    pub(crate) fn ewma(&self) -> &Ewma {
        &self.ewma
    }

    pub(crate) fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The passive detector; a poisoned lock still holds a consistent detector (every update
    /// is a plain field write), so it is used as is.
    pub(crate) fn outlier(&self) -> MutexGuard<'_, OutlierDetector> {
        self.outlier.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_unhealthy_flag(flags: u8) -> bool {
        flags & UNHEALTHY != 0
    }

    pub(crate) fn is_draining_flag(flags: u8) -> bool {
        flags & DRAINING != 0
    }
}

/// Peak-EWMA latency (Finagle, linkerd): a slower response replaces the estimate at once; a
/// faster one blends in by how long ago the last sample was, with time constant `decay`.
///
/// Two atomics updated without a lock: a racing pair of updates can blend with a slightly
/// stale stamp, which only shifts the weight of one sample.
#[derive(Debug)]
pub(crate) struct Ewma {
    /// The estimate in nanoseconds, as `f64` bits.
    value: AtomicU64,
    /// When it was last updated; [`NEVER`] before the first sample.
    at: AtomicI64,
}

impl Default for Ewma {
    fn default() -> Self {
        Ewma {
            value: AtomicU64::new(0f64.to_bits()),
            at: AtomicI64::new(NEVER),
        }
    }
}

impl Ewma {
    fn seeded(rtt: Duration, at: i64) -> Ewma {
        Ewma {
            value: AtomicU64::new((nanos(rtt) as f64).to_bits()),
            at: AtomicI64::new(at),
        }
    }

    /// Adds one latency sample (nanoseconds) taken at `now`.
    pub(crate) fn observe(&self, sample: f64, now: i64, decay: f64) {
        let previous = self.at.swap(now, Ordering::AcqRel);
        let weight = if previous == NEVER || decay <= 0.0 {
            0.0
        } else {
            let elapsed = now.saturating_sub(previous).max(0) as f64;
            (-elapsed / decay).exp()
        };
        let _ = self
            .value
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                let old = f64::from_bits(bits);
                let next = if sample > old {
                    sample
                } else {
                    old * weight + sample * (1.0 - weight)
                };
                Some(next.to_bits())
            });
    }

    /// The estimate at `now` in nanoseconds, `None` before any sample. With nothing in flight
    /// it decays towards zero, so an idle backend gets probed again; with requests in flight
    /// it does not, since their silence is itself a sign of latency.
    pub(crate) fn estimate(&self, now: i64, decay: f64, in_flight: u64) -> Option<f64> {
        let at = self.at.load(Ordering::Acquire);
        if at == NEVER {
            return None;
        }
        let value = f64::from_bits(self.value.load(Ordering::Acquire));
        if in_flight > 0 || decay <= 0.0 {
            return Some(value);
        }
        let elapsed = now.saturating_sub(at).max(0) as f64;
        Some(value * (-elapsed / decay).exp())
    }
}
