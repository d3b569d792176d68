//! Admission and eviction: S3-FIFO (Yang et al., SOSP 2023) weighted by bytes, one instance
//! per store shard.
//!
//! New objects enter a small FIFO (a tenth of the shard's bytes). When the small queue is over
//! its share, its oldest object is promoted to the main FIFO if it was hit while there, and
//! otherwise evicted and remembered in a ghost list of key hashes; an object whose key is in
//! the ghost list goes straight to main when it returns. The main queue evicts its oldest
//! object unless it was hit since its last pass, in which case it is reinserted with its hit
//! count (capped at 3) decremented. One-hit wonders and scans therefore pass through the small
//! queue without displacing the popular set, and a hit costs one relaxed atomic store (none
//! once the count is at its cap), so hits share a read lock.
//!
//! Why this and not a crate: see the measured comparison in `store.rs`. In short, the hit
//! ratio is within a point of the best candidate (quick_cache) and seven above plain LRU, and
//! owning the policy keeps the byte budget, the tag index, soft purge, expiry and Vary variants
//! under one lock per shard.
//!
//! Queues hold ids and are cleaned lazily: an id removed by purge or expiry stays in its
//! deque until popped or until the deque is compacted (when it holds more than twice the live
//! ids), so removal is O(1).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};

/// Hit counts saturate here (S3-FIFO uses two bits).
const MAX_FREQUENCY: u8 = 3;
/// The small queue's share of the shard's bytes, as a divisor (10%).
const SMALL_SHARE: usize = 10;
/// The ghost list remembers at least this many keys.
const MIN_GHOSTS: usize = 64;

/// Which FIFO an object is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queue {
    Small,
    Main,
}

/// The eviction state of one resident object, kept in the store's slot. Its hit count is a
/// [`Frequency`] kept apart, in the entry, since a hit reads the entry anyway.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) weight: usize,
    /// The key hash, remembered by the ghost list on eviction from the small queue.
    pub(crate) hash: u64,
    queue: Queue,
}

impl Meta {
    pub(crate) fn new(weight: usize, hash: u64) -> Self {
        Self {
            weight,
            hash,
            queue: Queue::Small,
        }
    }
}

/// An object's hit count since admission or since its last pass through a queue (0 to 3).
#[derive(Debug, Default)]
pub(crate) struct Frequency(AtomicU8);

impl Frequency {
    /// Records a hit. Called under the shard's read lock.
    pub(crate) fn touch(&self) {
        let frequency = self.get();
        if frequency < MAX_FREQUENCY {
            self.set(frequency.saturating_add(1));
        }
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, value: u8) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// Access to the residents' metadata and hit counts by id.
pub(crate) trait Residents {
    fn meta(&mut self, id: u64) -> Option<(&mut Meta, &Frequency)>;
}

/// One shard's S3-FIFO.
#[derive(Debug)]
pub(crate) struct S3Fifo {
    budget: usize,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    small_bytes: usize,
    main_bytes: usize,
    live: usize,
    ghost: Ghost,
}

impl S3Fifo {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            live: 0,
            ghost: Ghost::default(),
        }
    }

    /// Enters a new object (its hit count starts at 0): into main if its key was recently
    /// evicted from small, else small.
    pub(crate) fn admit(&mut self, id: u64, meta: &mut Meta) {
        meta.queue = if self.ghost.take(meta.hash) {
            Queue::Main
        } else {
            Queue::Small
        };
        match meta.queue {
            Queue::Small => {
                self.small.push_back(id);
                self.small_bytes = self.small_bytes.saturating_add(meta.weight);
            }
            Queue::Main => {
                self.main.push_back(id);
                self.main_bytes = self.main_bytes.saturating_add(meta.weight);
            }
        }
        self.live = self.live.saturating_add(1);
    }

    /// Accounts for an object leaving (evicted, purged, expired or replaced). Its id stays in
    /// the deque until popped or compacted.
    pub(crate) fn forget(&mut self, meta: &Meta) {
        match meta.queue {
            Queue::Small => self.small_bytes = self.small_bytes.saturating_sub(meta.weight),
            Queue::Main => self.main_bytes = self.main_bytes.saturating_sub(meta.weight),
        }
        self.live = self.live.saturating_sub(1);
    }

    /// The next object to evict, or `None` when nothing is resident. The caller removes it
    /// (and calls [`S3Fifo::forget`]).
    pub(crate) fn victim(&mut self, residents: &mut impl Residents) -> Option<u64> {
        loop {
            let small_over = self.small_bytes > self.budget / SMALL_SHARE || self.main_bytes == 0;
            if small_over && let Some(id) = self.small.pop_front() {
                let Some((meta, frequency)) = residents.meta(id) else {
                    continue;
                };
                if meta.queue != Queue::Small {
                    continue;
                }
                if frequency.get() > 0 {
                    frequency.set(0);
                    meta.queue = Queue::Main;
                    self.small_bytes = self.small_bytes.saturating_sub(meta.weight);
                    self.main_bytes = self.main_bytes.saturating_add(meta.weight);
                    self.main.push_back(id);
                    continue;
                }
                let hash = meta.hash;
                let capacity = self.live.max(MIN_GHOSTS);
                self.ghost.remember(hash, capacity);
                return Some(id);
            }
            let Some(id) = self.main.pop_front() else {
                // Main is empty: take from small whatever its share.
                if self.small.is_empty() {
                    return None;
                }
                self.main_bytes = 0;
                continue;
            };
            let Some((meta, frequency)) = residents.meta(id) else {
                continue;
            };
            if meta.queue != Queue::Main {
                continue;
            }
            let count = frequency.get();
            if count > 0 {
                frequency.set(count.saturating_sub(1));
                self.main.push_back(id);
                continue;
            }
            return Some(id);
        }
    }

    /// Drops dead ids once the deques hold more than twice the live objects.
    pub(crate) fn compact(&mut self, residents: &mut impl Residents) {
        let queued = self.small.len().saturating_add(self.main.len());
        if queued <= self.live.saturating_mul(2).saturating_add(64) {
            return;
        }
        self.small.retain(|id| {
            residents
                .meta(*id)
                .is_some_and(|(meta, _)| meta.queue == Queue::Small)
        });
        self.main.retain(|id| {
            residents
                .meta(*id)
                .is_some_and(|(meta, _)| meta.queue == Queue::Main)
        });
    }

    /// The shard budget this queue pair divides.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// Queued ids, live or not (for tests of the lazy cleaning).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.small.len().saturating_add(self.main.len())
    }
}

/// Recently evicted key hashes, bounded in count.
#[derive(Debug, Default)]
struct Ghost {
    order: VecDeque<(u64, u64)>,
    present: HashMap<u64, u64, IdBuildHasher>,
    sequence: u64,
}

impl Ghost {
    fn remember(&mut self, hash: u64, capacity: usize) {
        self.sequence = self.sequence.wrapping_add(1);
        self.present.insert(hash, self.sequence);
        self.order.push_back((hash, self.sequence));
        while self.order.len() > capacity {
            if let Some((old, sequence)) = self.order.pop_front()
                && self.present.get(&old) == Some(&sequence)
            {
                self.present.remove(&old);
            }
        }
    }

    fn take(&mut self, hash: u64) -> bool {
        self.present.remove(&hash).is_some()
    }
}

/// A hasher for keys that are already ids or hashes: one multiply to spread sequential ids
/// over the table's control bits.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IdBuildHasher = BuildHasherDefault<IdHasher>;
