//! What one pick sees of a pool: which backends it may use and what each weighs now.
//!
//! Owns the eligibility rule (not draining, weight above zero, under its in-flight cap, and,
//! unless the pool fails open, healthy and not ejected), the pool summary that decides failing
//! open (counted in one pass, cached until health changes or an ejection ends) and the
//! effective weight with slow start. It does not choose a backend: `algorithm.rs` does.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};

use super::health::max_excluded;
use super::pool::Backend;
use super::rng::SharedRng;
use super::slow_start::Ramp;
use super::state::{self, BackendState};

/// Random probes a picker makes before it falls back to a scan.
pub(crate) const PROBES: usize = 16;

/// Which backends a pick may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// Only healthy, non-ejected ones.
    Normal,
    /// More than the allowed share is excluded: every active one, healthy or not.
    FailOpen,
    /// None (no backend is active with a weight above zero, or all are excluded and the
    /// allowed share is the whole pool).
    Empty,
}

impl PoolMode {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            PoolMode::Normal => "normal",
            PoolMode::FailOpen => "fail_open",
            PoolMode::Empty => "empty",
        }
    }

    fn code(self) -> u8 {
        match self {
            PoolMode::Normal => 0,
            PoolMode::FailOpen => 1,
            PoolMode::Empty => 2,
        }
    }

    fn from_code(code: u8) -> PoolMode {
        match code {
            0 => PoolMode::Normal,
            1 => PoolMode::FailOpen,
            _ => PoolMode::Empty,
        }
    }
}

/// A pool's eligibility counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) mode: PoolMode,
    /// Active backends with a weight above zero.
    pub(crate) serving: u64,
    /// Of those, the unhealthy or ejected ones.
    pub(crate) excluded: u64,
    /// Backends a pick may use in this mode, and their total weight.
    pub(crate) admitted: u64,
    pub(crate) admitted_weight: u64,
    /// The stamp when the earliest ejection ends: counts change then without an event.
    pub(crate) valid_until: i64,
    pub(crate) generation: u64,
}

/// Counts a pool in one pass at stamp `now`.
pub(crate) fn summarize(backends: &[Arc<Backend>], now: i64, share: f64) -> Summary {
    let generation = state::generation();
    let (mut serving, mut excluded, mut serving_weight, mut healthy_weight) =
        (0u64, 0u64, 0u64, 0u64);
    let mut valid_until = i64::MAX;
    for backend in backends {
        let flags = backend.state.flags();
        if backend.weight == 0 || BackendState::is_draining_flag(flags) {
            continue;
        }
        serving += 1;
        let weight = u64::from(backend.weight);
        serving_weight = serving_weight.saturating_add(weight);
        let until = backend.state.ejected_until_stamp();
        let ejected = until > now;
        if ejected {
            valid_until = valid_until.min(until);
        }
        if ejected || BackendState::is_unhealthy_flag(flags) {
            excluded += 1;
        } else {
            healthy_weight = healthy_weight.saturating_add(weight);
        }
    }
    let allowed = max_excluded(usize::try_from(serving).unwrap_or(usize::MAX), share);
    let fail_open = usize::try_from(excluded).unwrap_or(usize::MAX) > allowed;
    let (admitted, admitted_weight) = if fail_open {
        (serving, serving_weight)
    } else {
        (serving.saturating_sub(excluded), healthy_weight)
    };
    let mode = match (admitted, fail_open) {
        (0, _) => PoolMode::Empty,
        (_, true) => PoolMode::FailOpen,
        (_, false) => PoolMode::Normal,
    };
    Summary {
        mode,
        serving,
        excluded,
        admitted,
        admitted_weight,
        valid_until,
        generation,
    }
}

/// The last [`Summary`] of a pool behind a sequence lock of atomics: readers never wait, a
/// writer that finds another writer busy simply does not store.
#[derive(Debug, Default)]
pub(crate) struct SummaryCell {
    sequence: AtomicU64,
    mode: AtomicU8,
    serving: AtomicU64,
    excluded: AtomicU64,
    admitted: AtomicU64,
    admitted_weight: AtomicU64,
    valid_until: AtomicI64,
    /// Stored plus one, so a cell that was never written matches no generation.
    generation: AtomicU64,
}

impl SummaryCell {
    /// The summary at stamp `now`: the stored one while still valid, else a fresh count.
    pub(crate) fn get(&self, backends: &[Arc<Backend>], now: i64, share: f64) -> Summary {
        if let Some(summary) = self.read()
            && summary.generation == state::generation()
            && now < summary.valid_until
        {
            return summary;
        }
        let summary = summarize(backends, now, share);
        self.write(&summary);
        summary
    }

    fn read(&self) -> Option<Summary> {
        let before = self.sequence.load(Ordering::Acquire);
        if before % 2 == 1 {
            return None;
        }
        let summary = Summary {
            mode: PoolMode::from_code(self.mode.load(Ordering::Relaxed)),
            serving: self.serving.load(Ordering::Relaxed),
            excluded: self.excluded.load(Ordering::Relaxed),
            admitted: self.admitted.load(Ordering::Relaxed),
            admitted_weight: self.admitted_weight.load(Ordering::Relaxed),
            valid_until: self.valid_until.load(Ordering::Relaxed),
            generation: self.generation.load(Ordering::Relaxed).checked_sub(1)?,
        };
        fence(Ordering::Acquire);
        (self.sequence.load(Ordering::Relaxed) == before).then_some(summary)
    }

    fn write(&self, summary: &Summary) {
        let before = self.sequence.load(Ordering::Relaxed);
        if before % 2 == 1
            || self
                .sequence
                .compare_exchange(
                    before,
                    before.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        self.mode.store(summary.mode.code(), Ordering::Relaxed);
        self.serving.store(summary.serving, Ordering::Relaxed);
        self.excluded.store(summary.excluded, Ordering::Relaxed);
        self.admitted.store(summary.admitted, Ordering::Relaxed);
        self.admitted_weight
            .store(summary.admitted_weight, Ordering::Relaxed);
        self.valid_until
            .store(summary.valid_until, Ordering::Relaxed);
        self.generation
            .store(summary.generation.wrapping_add(1), Ordering::Relaxed);
        self.sequence
            .store(before.wrapping_add(2), Ordering::Release);
    }
}

/// Everything one pick reads, gathered once per pick.
pub(crate) struct View<'a> {
    pub(crate) backends: &'a [Arc<Backend>],
    pub(crate) summary: Summary,
    /// The pick's time as a stamp.
    pub(crate) now: i64,
    pub(crate) ramp: Option<Ramp>,
    pub(crate) rng: &'a SharedRng,
    pub(crate) cursor: &'a AtomicUsize,
    /// Requests in flight in the whole pool.
    pub(crate) pool_in_flight: u64,
}

impl View<'_> {
    /// The number of backends (eligible or not).
    pub(crate) fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the backend at `index` may take this request.
    pub(crate) fn admits(&self, index: usize) -> bool {
        let Some(backend) = self.backends.get(index) else {
            return false;
        };
        let state = &backend.state;
        let flags = state.flags();
        if backend.weight == 0
            || BackendState::is_draining_flag(flags)
            || state.in_flight() >= backend.cap()
        {
            return false;
        }
        match self.summary.mode {
            PoolMode::Normal => {
                !BackendState::is_unhealthy_flag(flags) && state.ejected_until_stamp() <= self.now
            }
            PoolMode::FailOpen => true,
            PoolMode::Empty => false,
        }
    }

    /// The slow-start factor of the backend at `index`, in `(0, 1]`.
    pub(crate) fn ramp_factor(&self, index: usize) -> f64 {
        match (self.ramp, self.backends.get(index)) {
            (Some(ramp), Some(backend)) => ramp.factor(backend.state.ramp_from_stamp(), self.now),
            _ => 1.0,
        }
    }

    /// The weight of the backend at `index` now: its configured weight times its ramp.
    pub(crate) fn effective_weight(&self, index: usize) -> f64 {
        let weight = self.backends.get(index).map_or(0, |b| b.weight);
        f64::from(weight) * self.ramp_factor(index)
    }

    /// Whether a probe lands: the backend is admitted and wins the slow-start lottery (a
    /// ramping backend is taken with probability equal to its ramp factor).
    pub(crate) fn accepts(&self, index: usize) -> bool {
        if !self.admits(index) {
            return false;
        }
        let factor = self.ramp_factor(index);
        factor >= 1.0 || self.rng.unit() < factor
    }

    /// The first admitted backend at or after `start`, wrapping: the fallback when probes
    /// keep missing (most of the pool is excluded).
    pub(crate) fn scan_from(&self, start: usize) -> Option<usize> {
        let n = self.len();
        (0..n)
            .map(|offset| start.wrapping_add(offset) % n)
            .find(|&index| self.admits(index))
    }

    /// A uniform random index, for probes.
    pub(crate) fn random_index(&self) -> usize {
        usize::try_from(self.rng.below(self.len() as u64)).unwrap_or(0)
    }

    /// The next value of the pool's rotating cursor.
    pub(crate) fn next_cursor(&self) -> usize {
        self.cursor.fetch_add(1, Ordering::Relaxed)
    }
}
