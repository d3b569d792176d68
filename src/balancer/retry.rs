//! The retry budget of a pool: retries allowed up to a share of recent requests.
//!
//! Owns [`RetryBudget`], after Finagle's and linkerd's: over a sliding window, retries may be
//! at most `ratio` of the requests plus a reserve of `min_per_second` for quiet pools, so
//! retries cannot amplify an outage. Time is a parameter. It does not decide whether a request
//! is retryable (idempotency, body sent): the pipeline does, then asks the budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::state::{nanos, stamp};

/// The window is kept as this many slots; the oldest slot expires as a whole.
const SLOTS: usize = 10;
const COUNT_BITS: u32 = 22;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - 2 * COUNT_BITS)) - 1;

/// Retry budget settings of one pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetConfig {
    /// Retries per request allowed over the window (0.2: one retry per five requests).
    pub ratio: f64,
    /// Retries per second allowed whatever the traffic, so a quiet pool can still retry.
    pub min_per_second: u32,
    /// How far back requests and retries count.
    pub window: Duration,
}

impl Default for RetryBudgetConfig {
    /// Finagle's defaults: 20% plus 10 per second over 10 seconds.
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// Whether a retry may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Go ahead; the retry has been counted.
    Allowed,
    /// The budget is spent: answer with the failure instead.
    Exhausted,
}

impl RetryDecision {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            RetryDecision::Allowed => "allowed",
            RetryDecision::Exhausted => "exhausted",
        }
    }
}

/// Requests and retries over a sliding window, lock-free.
///
/// Each slot is one atomic word holding the slot's time tag, its requests and its retries, so
/// a withdrawal checks and counts in one compare-and-swap and concurrent retries can never
/// overspend. Counts saturate at about four million per slot.
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    slot_length: i64,
    reserve: f64,
    slots: [AtomicU64; SLOTS],
}

impl RetryBudget {
    /// An empty budget.
    pub fn new(config: RetryBudgetConfig) -> RetryBudget {
        let window = nanos(config.window).max(SLOTS as i64);
        let ratio = if config.ratio.is_nan() {
            0.0
        } else {
            config.ratio.max(0.0)
        };
        RetryBudget {
            config: RetryBudgetConfig { ratio, ..config },
            slot_length: window / SLOTS as i64,
            reserve: f64::from(config.min_per_second) * config.window.as_secs_f64(),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The settings.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// Counts one original request (not a retry) at `now`.
    pub fn deposit(&self, now: Instant) {
        let bucket = self.bucket(now);
        let Some(slot) = self.slot(bucket) else {
            return;
        };
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            let (requests, retries) = counts(word, bucket);
            Some(pack(
                bucket,
                requests.saturating_add(1).min(COUNT_MAX),
                retries,
            ))
        });
    }

    /// Takes one retry from the budget at `now` if the budget allows it.
    pub fn try_withdraw(&self, now: Instant) -> RetryDecision {
        let bucket = self.bucket(now);
        let (old_requests, old_retries) = self.totals(bucket, 1);
        let Some(slot) = self.slot(bucket) else {
            return RetryDecision::Exhausted;
        };
        let outcome = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            let (requests, retries) = counts(word, bucket);
            let balance = self.balance_of(
                old_requests.saturating_add(requests),
                old_retries.saturating_add(retries),
            );
            (balance >= 1.0 && retries < COUNT_MAX).then(|| pack(bucket, requests, retries + 1))
        });
        match outcome {
            Ok(_) => RetryDecision::Allowed,
            Err(_) => RetryDecision::Exhausted,
        }
    }

    /// Retries the budget would allow at `now` (for the admin API and a gauge).
    pub fn balance(&self, now: Instant) -> f64 {
        let (requests, retries) = self.totals(self.bucket(now), 0);
        self.balance_of(requests, retries).max(0.0)
    }

    fn balance_of(&self, requests: u64, retries: u64) -> f64 {
        self.reserve + self.config.ratio * requests as f64 - retries as f64
    }

    /// Requests and retries of the slots from `skip` slots ago back to the window's start.
    fn totals(&self, bucket: i64, skip: usize) -> (u64, u64) {
        (skip..SLOTS).fold((0u64, 0u64), |(requests, retries), age| {
            let past = bucket.saturating_sub(age as i64);
            let (r, t) = self
                .slot(past)
                .map_or((0, 0), |slot| counts(slot.load(Ordering::Acquire), past));
            (requests.saturating_add(r), retries.saturating_add(t))
        })
    }

    fn bucket(&self, now: Instant) -> i64 {
        stamp(now).div_euclid(self.slot_length)
    }

    fn slot(&self, bucket: i64) -> Option<&AtomicU64> {
        let index = usize::try_from(bucket.rem_euclid(SLOTS as i64)).ok()?;
        self.slots.get(index)
    }
}

fn tag(bucket: i64) -> u64 {
    (bucket as u64) & TAG_MASK
}

fn pack(bucket: i64, requests: u64, retries: u64) -> u64 {
    (tag(bucket) << (2 * COUNT_BITS)) | (requests << COUNT_BITS) | retries
}

/// The counts a slot word holds for `bucket`; zero when the word is from an older bucket.
fn counts(word: u64, bucket: i64) -> (u64, u64) {
    if word >> (2 * COUNT_BITS) != tag(bucket) {
        return (0, 0);
    }
    ((word >> COUNT_BITS) & COUNT_MAX, word & COUNT_MAX)
}
