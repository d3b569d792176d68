//! Load-balancing algorithms: which eligible backend takes the next request.
//!
//! Owns the [`Algorithm`] a pool is configured with and the [`Picker`] built from it on every
//! pool rebuild (precomputed schedules and tables), and the pick itself over a [`View`]. Every
//! pick is lock-free: rotating cursors and the pool's RNG are atomics. It does not own
//! eligibility (`view.rs`), the hash ring (`hashing.rs`) or request accounting (`pool.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::hashing::Ring;
use super::pool::Backend;
use super::rng::hash_key;
use super::schedule::{Schedule, smooth_schedule};
use super::state::nanos;
use super::view::{PROBES, View};

/// How a pool picks a backend; changeable on reload.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Algorithm {
    /// Each backend in turn; weights are ignored.
    RoundRobin,
    /// nginx's smooth weighted round robin: each backend in proportion to its weight, spread
    /// out rather than in bursts.
    WeightedRoundRobin,
    /// The backend with the fewest requests in flight per unit of weight; ties go round robin.
    /// Pools of more than 32 backends compare 8 random ones instead of all.
    LeastRequest,
    /// Power of two random choices, the cheaper by peak-EWMA latency times in-flight requests
    /// over weight (Finagle, linkerd). Weights shape the share of concurrent requests, not of
    /// picks. The default.
    #[default]
    PeakEwma,
    /// Consistent hashing (a ring with virtual nodes) on a key the pipeline extracts, with
    /// bounded load.
    ConsistentHash(HashOptions),
    /// A random backend in proportion to its weight.
    Random,
}

impl Algorithm {
    /// The metric label and config name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::WeightedRoundRobin => "weighted_round_robin",
            Algorithm::LeastRequest => "least_request",
            Algorithm::PeakEwma => "peak_ewma",
            Algorithm::ConsistentHash(_) => "consistent_hash",
            Algorithm::Random => "random",
        }
    }
}

/// Consistent hashing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HashOptions {
    /// The request part the pipeline hashes.
    pub on: HashOn,
    /// Bounded load's `c`: a backend with more than `c` times its share of the pool's
    /// in-flight requests is passed over for the key's next backend (1.25 is Google's
    /// suggestion). `None`: no bound. Values below 1 count as 1.
    pub load_factor: Option<f64>,
}

impl Default for HashOptions {
    fn default() -> Self {
        HashOptions {
            on: HashOn::ClientIp,
            load_factor: Some(1.25),
        }
    }
}

/// The request part a consistent-hashing pool hashes; the pipeline extracts it and passes the
/// bytes in [`PickContext`](super::PickContext). A request without it gets a random key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    Path,
    Header(String),
    Cookie(String),
    ClientIp,
}

impl HashOn {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            HashOn::Path => "path",
            HashOn::Header(_) => "header",
            HashOn::Cookie(_) => "cookie",
            HashOn::ClientIp => "client_ip",
        }
    }
}

/// Peak-EWMA latency settings of a pool (kept whatever the algorithm, for the admin API).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakEwmaOptions {
    /// The decay time constant (linkerd and Finagle use 10 s).
    pub decay: Duration,
    /// The estimate of a backend before its first response (decays like a sample).
    pub initial_rtt: Duration,
    /// The latency a failed request counts as at least, so a backend that fails fast does
    /// not look fast.
    pub failure_penalty: Duration,
}

impl Default for PeakEwmaOptions {
    fn default() -> Self {
        PeakEwmaOptions {
            decay: Duration::from_secs(10),
            initial_rtt: Duration::from_millis(30),
            failure_penalty: Duration::from_millis(500),
        }
    }
}

/// An [`Algorithm`] built for one pool's backends.
#[derive(Debug)]
pub(crate) enum Picker {
    RoundRobin,
    WeightedRoundRobin(Schedule),
    LeastRequest,
    PeakEwma {
        decay: f64,
        initial: f64,
    },
    ConsistentHash {
        ring: Ring,
        load_factor: Option<f64>,
    },
    Random(WeightTable),
}

impl Picker {
    /// Precomputes what `algorithm` needs for `backends`.
    pub(crate) fn build(
        algorithm: &Algorithm,
        backends: &[Arc<Backend>],
        ewma: &PeakEwmaOptions,
    ) -> Picker {
        let weights = || backends.iter().map(|b| b.weight);
        match algorithm {
            Algorithm::RoundRobin => Picker::RoundRobin,
            Algorithm::WeightedRoundRobin => Picker::WeightedRoundRobin(smooth_schedule(weights())),
            Algorithm::LeastRequest => Picker::LeastRequest,
            Algorithm::PeakEwma => Picker::PeakEwma {
                decay: nanos(ewma.decay) as f64,
                initial: nanos(ewma.initial_rtt) as f64,
            },
            Algorithm::ConsistentHash(options) => Picker::ConsistentHash {
                ring: Ring::build(backends),
                load_factor: options
                    .load_factor
                    .map(|c| if c.is_nan() { 1.0 } else { c.max(1.0) }),
            },
            Algorithm::Random => Picker::Random(WeightTable::build(weights())),
        }
    }

    /// Picks an admitted backend's index; `key` is the consistent-hashing key.
    pub(crate) fn pick(&self, view: &View<'_>, key: Option<&[u8]>) -> Option<usize> {
        if view.len() == 0 {
            return None;
        }
        match self {
            Picker::RoundRobin => rotate(view, |cursor| Some(cursor % view.len())),
            Picker::WeightedRoundRobin(Schedule::Rotation) => {
                rotate(view, |cursor| Some(cursor % view.len()))
            }
            Picker::WeightedRoundRobin(Schedule::Slots(slots)) => rotate(view, |cursor| {
                let slot = slots.get(cursor % slots.len().max(1))?;
                usize::try_from(*slot).ok()
            }),
            Picker::LeastRequest => least_request(view),
            Picker::PeakEwma { decay, initial } => peak_ewma(view, *decay, *initial),
            Picker::ConsistentHash { ring, load_factor } => {
                let hash = key.map_or_else(|| view.rng.next_u64(), hash_key);
                ring.pick(view, hash, *load_factor)
            }
            Picker::Random(table) => {
                for _ in 0..PROBES {
                    let index = table.draw(view);
                    if view.accepts(index) {
                        return Some(index);
                    }
                }
                view.scan_from(view.random_index())
            }
        }
    }
}

/// Walks a rotating cursor through `slot_of` until a probe lands. Each probe takes its own
/// cursor value, so an excluded backend's turns spread over the others instead of going to
/// its neighbour.
fn rotate(view: &View<'_>, slot_of: impl Fn(usize) -> Option<usize>) -> Option<usize> {
    let mut last = 0;
    for _ in 0..PROBES.min(view.len().saturating_mul(2)).max(1) {
        last = view.next_cursor();
        if let Some(index) = slot_of(last)
            && view.accepts(index)
        {
            return Some(index);
        }
    }
    view.scan_from(last)
}

/// Pools up to this size are scanned whole; larger ones are sampled.
pub(crate) const EXACT_LEAST_REQUEST: usize = 32;
/// Random backends a large pool's least-request pick compares.
const LEAST_REQUEST_CHOICES: usize = 8;

/// The fewest in flight per unit of effective weight: exact (ties round robin) in small
/// pools; in large ones the best of a few random backends (as Envoy does), since a scan of
/// 10 000 backends costs tens of microseconds per request.
fn least_request(view: &View<'_>) -> Option<usize> {
    let n = view.len();
    let score = |index: usize| {
        let in_flight = view.backends.get(index).map_or(0, |b| b.state.in_flight());
        (in_flight as f64 + 1.0) / view.effective_weight(index)
    };
    let mut best: Option<(usize, f64)> = None;
    let mut consider = |index: usize| {
        if view.admits(index) {
            let score = score(index);
            if best.is_none_or(|(_, low)| score < low) {
                best = Some((index, score));
            }
        }
    };
    if n <= EXACT_LEAST_REQUEST {
        let start = view.next_cursor() % n;
        (0..n).for_each(|offset| consider((start + offset) % n));
    } else {
        (0..LEAST_REQUEST_CHOICES).for_each(|_| consider(view.random_index()));
    }
    match best {
        Some((index, _)) => Some(index),
        None => view.scan_from(view.random_index()),
    }
}

fn peak_ewma(view: &View<'_>, decay: f64, initial: f64) -> Option<usize> {
    let n = view.len();
    if n == 1 {
        return view.admits(0).then_some(0);
    }
    // Cost: latency (decayed while idle) times in-flight requests plus one, over weight.
    let cost = |index: usize| {
        let Some(backend) = view.backends.get(index) else {
            return f64::INFINITY;
        };
        let in_flight = backend.state.in_flight();
        let latency = backend
            .state
            .ewma()
            .estimate(view.now, decay, in_flight)
            .unwrap_or(initial);
        latency * (in_flight as f64 + 1.0) / f64::from(backend.weight.max(1))
    };
    for _ in 0..PROBES {
        let first = view.random_index();
        let mut second = usize::try_from(view.rng.below(n as u64 - 1)).unwrap_or(0);
        if second >= first {
            second += 1;
        }
        // Slow start is a lottery on entering the comparison, not a cost: a cost penalty
        // would starve a ramping backend whenever the pool is idle.
        match (view.accepts(first), view.accepts(second)) {
            (true, true) => {
                return Some(if cost(second) < cost(first) {
                    second
                } else {
                    first
                });
            }
            (true, false) => return Some(first),
            (false, true) => return Some(second),
            (false, false) => {}
        }
    }
    view.scan_from(view.random_index())
}

/// Weights for random picks.
#[derive(Debug)]
pub(crate) enum WeightTable {
    Uniform,
    /// Running sums of the weights, for a binary search.
    Cumulative {
        ends: Vec<u64>,
        total: u64,
    },
}

impl WeightTable {
    fn build(weights: impl Iterator<Item = u32>) -> WeightTable {
        let weights: Vec<u64> = weights.map(u64::from).collect();
        if weights.windows(2).all(|pair| pair.first() == pair.last()) {
            return WeightTable::Uniform;
        }
        let ends: Vec<u64> = weights
            .iter()
            .scan(0u64, |sum, w| {
                *sum = sum.saturating_add(*w);
                Some(*sum)
            })
            .collect();
        let total = ends.last().copied().unwrap_or(0);
        WeightTable::Cumulative { ends, total }
    }

    fn draw(&self, view: &View<'_>) -> usize {
        match self {
            WeightTable::Uniform => view.random_index(),
            WeightTable::Cumulative { ends, total } => {
                let point = view.rng.below(*total);
                ends.partition_point(|&end| end <= point)
            }
        }
    }
}
