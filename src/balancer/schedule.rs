//! Weighted round robin schedules: the order a pool visits its backends in, one period long.
//!
//! Owns the precomputation only (on every pool rebuild): nginx's smooth weighted sequence
//! when it is cheap, an equally smooth virtual-time sequence when nginx's `O(W n)` would slow
//! a reload. The pick walks the schedule with a rotating cursor (`algorithm.rs`).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// The order weighted round robin visits backends in, one period long.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// Equal weights: plain rotation over the backends.
    Rotation,
    /// Backend indices, one per slot.
    Slots(Vec<u32>),
}

/// The longest schedule kept; larger weight sums are scaled down to fit.
const MAX_SCHEDULE: u64 = 1 << 20;
/// Up to this much work (slots times backends) the schedule is nginx's exact sequence.
const NGINX_WORK: u128 = 1 << 22;

/// Builds the smooth weighted schedule for `weights` (index order): nginx's own sequence when
/// that is cheap to compute, else a virtual-time schedule that is as smooth and costs
/// `O(W log n)` (nginx's is `O(W n)`, too slow for 10 000 backends on reload).
pub(crate) fn smooth_schedule(weights: impl Iterator<Item = u32>) -> Schedule {
    let weights: Vec<u64> = weights.map(u64::from).collect();
    let divisor = weights.iter().copied().fold(0, gcd);
    if divisor == 0 || weights.iter().all(|&w| w == divisor) {
        return Schedule::Rotation;
    }
    let mut weights: Vec<u64> = weights.iter().map(|w| w / divisor).collect();
    let total: u64 = weights.iter().sum();
    if total > MAX_SCHEDULE {
        for weight in weights.iter_mut().filter(|w| **w > 0) {
            let scaled = u128::from(*weight) * u128::from(MAX_SCHEDULE) / u128::from(total);
            *weight = u64::try_from(scaled).unwrap_or(1).max(1);
        }
    }
    let total: u64 = weights.iter().sum();
    if u128::from(total) * weights.len() as u128 <= NGINX_WORK {
        Schedule::Slots(nginx_schedule(&weights))
    } else {
        Schedule::Slots(virtual_time_schedule(&weights))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// nginx's smooth weighted round robin, run for one period of `sum(weights)` picks: each step
/// every backend gains its weight, the highest is chosen and loses the total.
pub(crate) fn nginx_schedule(weights: &[u64]) -> Vec<u32> {
    let total: u64 = weights.iter().sum();
    let total = i128::from(total);
    let mut current = vec![0i128; weights.len()];
    let mut slots = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best: Option<(usize, i128)> = None;
        for (index, (value, weight)) in current.iter_mut().zip(weights).enumerate() {
            *value += i128::from(*weight);
            if *weight > 0 && best.is_none_or(|(_, high)| *value > high) {
                best = Some((index, *value));
            }
        }
        let Some((index, _)) = best else { break };
        if let Some(value) = current.get_mut(index) {
            *value -= total;
        }
        slots.push(u32::try_from(index).unwrap_or(u32::MAX));
    }
    slots
}

/// A smooth weighted schedule by virtual time (earliest deadline first): a backend of weight
/// `w` is due at `(k + 1/2) / w` for its `k`-th slot.
pub(crate) fn virtual_time_schedule(weights: &[u64]) -> Vec<u32> {
    #[derive(PartialEq)]
    struct Due {
        at: f64,
        index: u32,
    }
    impl Eq for Due {}
    impl PartialOrd for Due {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Due {
        fn cmp(&self, other: &Self) -> Ordering {
            self.at
                .total_cmp(&other.at)
                .then(self.index.cmp(&other.index))
        }
    }
    let total: u64 = weights.iter().sum();
    let mut heap: BinaryHeap<Reverse<Due>> = weights
        .iter()
        .enumerate()
        .filter(|(_, w)| **w > 0)
        .map(|(index, w)| {
            Reverse(Due {
                at: 0.5 / *w as f64,
                index: u32::try_from(index).unwrap_or(u32::MAX),
            })
        })
        .collect();
    let mut slots = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    while slots.len() < slots.capacity() {
        let Some(Reverse(due)) = heap.pop() else {
            break;
        };
        slots.push(due.index);
        let weight = weights.get(due.index as usize).copied().unwrap_or(1).max(1);
        heap.push(Reverse(Due {
            at: due.at + 1.0 / weight as f64,
            index: due.index,
        }));
    }
    slots
}
