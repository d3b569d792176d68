//! Slow start: the share of traffic of a new or recovered backend ramps up over a window.
//!
//! Owns the ramp: a factor in `(0, 1]` that weighted picks multiply a backend's weight by.
//! It does not own when a ramp starts: the pool starts it for backends added on a rebuild,
//! [`BackendState::publish`](super::BackendState::publish) for recovered ones.

use std::time::Duration;

use tokio::time::Instant;

use super::state::{NEVER, nanos, stamp};

/// Slow-start settings of one pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowStart {
    /// How long the ramp from `min_factor` to full weight takes.
    pub window: Duration,
    /// The share of its weight a backend gets at the start of the ramp (Envoy uses 10%), so a
    /// ramping backend in a small pool still sees some traffic.
    pub min_factor: f64,
}

impl Default for SlowStart {
    fn default() -> Self {
        SlowStart {
            window: Duration::from_secs(30),
            min_factor: 0.05,
        }
    }
}

impl SlowStart {
    /// The weight factor at `now` of a backend whose ramp began at `ramp_from`: linear from
    /// `min_factor` to 1 over the window; 1 without a ramp or after it.
    pub fn factor(&self, ramp_from: Option<Instant>, now: Instant) -> f64 {
        self.ramp()
            .factor(ramp_from.map_or(NEVER, stamp), stamp(now))
    }

    pub(crate) fn ramp(&self) -> Ramp {
        let min = if self.min_factor.is_nan() {
            1.0
        } else {
            self.min_factor.clamp(0.001, 1.0)
        };
        Ramp {
            window: nanos(self.window),
            min,
        }
    }
}

/// [`SlowStart`] in stamps, for the pick path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ramp {
    window: i64,
    min: f64,
}

impl Ramp {
    /// The factor on stamps; see [`SlowStart::factor`].
    pub(crate) fn factor(&self, ramp_from: i64, now: i64) -> f64 {
        if ramp_from == NEVER || self.window <= 0 {
            return 1.0;
        }
        let elapsed = now.saturating_sub(ramp_from);
        if elapsed >= self.window {
            return 1.0;
        }
        let linear = elapsed.max(0) as f64 / self.window as f64;
        linear.max(self.min)
    }
}
