//! Consistent hashing: a hash ring with virtual nodes, and bounded load.
//!
//! Owns the ring (built once per pool rebuild, weighted by virtual-node count, `O(1)` lookups
//! through a bucket index) and the bounded-load walk of Mirrokni, Thorup and Zadimoghaddam's
//! "consistent hashing with bounded loads": a key whose backend already has more than `c` times
//! its share of the pool's in-flight requests goes on to the next backend along the ring, the
//! same one every time for that key. It does not extract keys from requests: the pipeline does.
//!
//! Why a ring and not Maglev: Maglev moves about 1/N of the keys when a backend joins only
//! with a table of about 1000 N slots, which takes seconds to fill for 10 000 backends; a
//! ring moves only the keys the new backend takes, and builds in linear time.

use std::sync::Arc;

use super::pool::Backend;
use super::rng::{hash_key, mix};
use super::view::{PROBES, View};

/// Virtual nodes per unit of (gcd-reduced) weight: about 6% spread in key share per backend.
const VNODES: u64 = 256;
/// The most points a ring holds; larger pools get fewer virtual nodes per backend.
const MAX_POINTS: u64 = 1 << 19;
const VNODE_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug, Clone, Copy)]
struct Point {
    hash: u64,
    owner: u32,
}

/// A consistent-hash ring over a pool's backends.
#[derive(Debug)]
pub(crate) struct Ring {
    /// Points sorted by hash.
    points: Vec<Point>,
    /// `starts[b]`: the first point whose hash has top bits `b`; one extra entry at the end.
    starts: Vec<u32>,
    shift: u32,
}

#[cfg(test)]
impl Ring {
    /// How many points each backend index holds.
    pub(crate) fn points_per_backend(&self, backends: usize) -> Vec<usize> {
        let mut counts = vec![0; backends];
        for point in &self.points {
            if let Some(count) = counts.get_mut(point.owner as usize) {
                *count += 1;
            }
        }
        counts
    }

    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// The owner of the first point at or after `hash` by a linear search.
    pub(crate) fn lookup_slowly(&self, hash: u64) -> Option<usize> {
        let first = self.points.iter().find(|p| p.hash >= hash);
        first.or(self.points.first()).map(|p| p.owner as usize)
    }

    pub(crate) fn is_sorted(&self) -> bool {
        self.points.is_sorted_by_key(|p| p.hash)
    }

    /// The backend index a hash maps to with no load bound and every backend eligible.
    pub(crate) fn lookup(&self, hash: u64) -> Option<usize> {
        let at = self.position(hash)?;
        self.points.get(at).map(|p| p.owner as usize)
    }
}

/// Virtual nodes per backend: `VNODES` per unit of weight after dividing by the weights' gcd
/// (so equal weights always get `VNODES`, whatever the pool size), scaled down to fit
/// `MAX_POINTS`. Backend `i`'s `j`-th point depends only on its address and `j`, so a backend
/// that loses or gains points keeps the rest.
pub(crate) fn vnode_counts(weights: &[u32]) -> Vec<u64> {
    let divisor = weights.iter().map(|w| u64::from(*w)).fold(0, gcd).max(1);
    let units: u64 = weights.iter().map(|w| u64::from(*w) / divisor).sum();
    let wanted = units.saturating_mul(VNODES).max(1);
    let scale = (MAX_POINTS as f64 / wanted as f64).min(1.0);
    weights
        .iter()
        .map(|&w| {
            if w == 0 {
                return 0;
            }
            let ideal = (VNODES * (u64::from(w) / divisor)) as f64 * scale;
            (ideal.round() as u64).max(1)
        })
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Ring {
    /// Places every backend's virtual nodes and sorts them: a counting sort on the hashes'
    /// top bits (they are uniform), then a sort inside each small bucket.
    pub(crate) fn build(backends: &[Arc<Backend>]) -> Ring {
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        let counts = vnode_counts(&weights);
        let total: u64 = counts.iter().sum();
        // About one point per bucket.
        let bits = (64 - total.leading_zeros()).saturating_sub(1).clamp(1, 24);
        let shift = 64 - bits;
        let buckets = 1usize << bits;
        let points_of = |index: usize| {
            let base = backends
                .get(index)
                .map_or(0, |b| hash_key(&address_bytes(b)));
            let owner = u32::try_from(index).unwrap_or(u32::MAX);
            let count = counts.get(index).copied().unwrap_or(0);
            (0..count).map(move |j| Point {
                hash: mix(base.wrapping_add((j + 1).wrapping_mul(VNODE_STEP))),
                owner,
            })
        };
        let mut points: Vec<Point> = (0..backends.len()).flat_map(points_of).collect();
        // Two counting sorts, so every scatter stays in cache: first into 256 coarse buckets
        // (256 sequential write streams), then inside each coarse bucket (a few thousand points)
        // into the fine buckets of the index.
        let coarse_bits = bits.min(8);
        let fine_per_coarse = 1usize << (bits - coarse_bits);
        let mut scratch = vec![Point { hash: 0, owner: 0 }; points.len()];
        let coarse = scatter(&points, &mut scratch, 1 << coarse_bits, |hash| {
            usize::try_from(hash >> (64 - coarse_bits)).unwrap_or(0)
        });
        let mut starts = vec![0u32; buckets + 1];
        for (c, pair) in coarse.windows(2).enumerate() {
            let [from, to] = *pair else { continue };
            let (from, to) = (from as usize, to as usize);
            let (Some(input), Some(output)) = (scratch.get(from..to), points.get_mut(from..to))
            else {
                continue;
            };
            let first_fine = c * fine_per_coarse;
            let local = scatter(input, output, fine_per_coarse, |hash| {
                usize::try_from(hash >> shift)
                    .unwrap_or(0)
                    .saturating_sub(first_fine)
            });
            for (offset, start) in local.iter().take(fine_per_coarse).enumerate() {
                if let Some(global) = starts.get_mut(first_fine + offset) {
                    *global = u32::try_from(from)
                        .unwrap_or(u32::MAX)
                        .saturating_add(*start);
                }
            }
        }
        if let Some(end) = starts.last_mut() {
            *end = u32::try_from(points.len()).unwrap_or(u32::MAX);
        }
        let mut sorted = points;
        for pair in starts.windows(2) {
            if let [from, to] = *pair
                && to > from + 1
                && let Some(bucket) = sorted.get_mut(from as usize..to as usize)
            {
                insertion_sort(bucket);
            }
        }
        Ring {
            points: sorted,
            starts,
            shift,
        }
    }

    /// The index of the first point at or after `hash`, wrapping to the first point.
    fn position(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let bucket = usize::try_from(hash >> self.shift).ok()?;
        let from = *self.starts.get(bucket)? as usize;
        let to = *self.starts.get(bucket + 1)? as usize;
        let inside = self
            .points
            .get(from..to)?
            .partition_point(|p| p.hash < hash);
        let at = from + inside;
        Some(if at >= self.points.len() { 0 } else { at })
    }

    /// Picks for `hash`: the first admitted backend along the ring from the key's point that
    /// is under its load bound (`ceil(c * (in_flight + 1) * weight / admitted_weight)`).
    pub(crate) fn pick(
        &self,
        view: &View<'_>,
        hash: u64,
        load_factor: Option<f64>,
    ) -> Option<usize> {
        let start = self.position(hash)?;
        let size = self.points.len();
        let steps = size.min(view.len().saturating_mul(4).saturating_add(PROBES));
        for step in 0..steps {
            let Some(point) = self.points.get((start + step) % size) else {
                continue;
            };
            let index = point.owner as usize;
            if !view.admits(index) {
                continue;
            }
            match load_factor {
                None => return Some(index),
                Some(c) if under_bound(view, index, c) => return Some(index),
                Some(_) => {}
            }
        }
        // The bound guarantees some admitted backend is under it; this finds it when the walk
        // above was unlucky, or settles for the admitted one least loaded for its weight.
        least_loaded(view)
    }
}

/// A counting sort of `input` into `output` (same length) by `bucket_of`, which must stay
/// below `buckets`; returns where each bucket starts, plus the end.
fn scatter(
    input: &[Point],
    output: &mut [Point],
    buckets: usize,
    bucket_of: impl Fn(u64) -> usize,
) -> Vec<u32> {
    let mut starts = vec![0u32; buckets + 1];
    for point in input {
        if let Some(count) = starts.get_mut(bucket_of(point.hash) + 1) {
            *count += 1;
        }
    }
    for b in 1..starts.len() {
        let previous = starts.get(b - 1).copied().unwrap_or(0);
        if let Some(start) = starts.get_mut(b) {
            *start += previous;
        }
    }
    let mut next = starts.clone();
    for point in input {
        if let Some(slot) = next.get_mut(bucket_of(point.hash)) {
            if let Some(place) = output.get_mut(*slot as usize) {
                *place = *point;
            }
            *slot += 1;
        }
    }
    starts
}

/// Sorts a bucket by hash; buckets hold one or two points on average.
fn insertion_sort(bucket: &mut [Point]) {
    for i in 1..bucket.len() {
        let mut j = i;
        while j > 0 && bucket.get(j - 1).map(|p| p.hash) > bucket.get(j).map(|p| p.hash) {
            bucket.swap(j - 1, j);
            j -= 1;
        }
    }
}

fn address_bytes(backend: &Backend) -> Vec<u8> {
    let mut bytes = match backend.addr.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    bytes.extend_from_slice(&backend.addr.port().to_be_bytes());
    bytes
}

fn under_bound(view: &View<'_>, index: usize, c: f64) -> bool {
    let Some(backend) = view.backends.get(index) else {
        return false;
    };
    let total_weight = view.summary.admitted_weight.max(1) as f64;
    let share = f64::from(backend.weight) / total_weight;
    let bound = (c * (view.pool_in_flight as f64 + 1.0) * share).ceil();
    (backend.state.in_flight() as f64) < bound
}

fn least_loaded(view: &View<'_>) -> Option<usize> {
    (0..view.len())
        .filter(|&index| view.admits(index))
        .map(|index| {
            let load = view.backends.get(index).map_or(0, |b| b.state.in_flight());
            (
                index,
                load as f64 / f64::from(view.backends.get(index).map_or(1, |b| b.weight)),
            )
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(index, _)| index)
}
