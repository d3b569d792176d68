//! The primary index of a shard: URL hash -> its variants, newest first.
//!
//! Open addressing with linear probing over 64-byte slots, each holding a hash and the newest
//! variant under it (its id, check hash, entry and the entry's value-and-body block), one
//! cache line each. A hit on a store far larger than the CPU caches then reads one line of
//! the index, and from it loads the entry and the block side by side (`entry::warm`, which
//! has the measurements; the price is 64 MB more index per million objects); a SwissTable
//! (hashbrown) reads a control byte group and then the bucket, two dependent misses in two
//! pages, since the control bytes sit after all the buckets.
//! Nearly every URL has one variant; older variants (Vary, key extras) and the rare other URL
//! whose 64-bit hash collides live in a side map, read only when the newest does not match.
//!
//! The table keeps at most half its slots full (about 1.5 probes per hit, the second in the
//! next line) and doubles when it would pass that; removal shifts the following run back rather
//! than leaving tombstones, so lookups never slow down with churn.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::entry::Entry;
use crate::cache::eviction::IdBuildHasher;

/// One stored variant as the primary index sees it.
#[derive(Debug)]
pub(super) struct Variant {
    pub(super) id: u64,
    /// A second, independently seeded hash of the primary key: with the index's hash it names
    /// the URL by 128 bits, so a hit need not read the key's text (one cache miss fewer).
    pub(super) check: u64,
    pub(super) entry: Arc<Entry>,
    /// The entry's [`Entry::block`]: with both pointers in the slot, a hit starts loading
    /// the block while the entry loads ([`Variant::warm`]).
    block: Bytes,
}

impl Variant {
    pub(super) fn new(id: u64, check: u64, entry: Arc<Entry>) -> Self {
        Self {
            id,
            check,
            block: entry.block().clone(),
            entry,
        }
    }

    /// Starts loading the entry's block, before the entry is read (see `entry::warm`).
    pub(super) fn warm(&self) {
        crate::cache::entry::warm(&self.block);
    }
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    hash: u64,
    /// `None`: the slot is free.
    newest: Option<Variant>,
}

const MIN_SLOTS: usize = 64;

/// The index (see the module doc).
#[derive(Debug)]
pub(super) struct Index {
    slots: Box<[Slot]>,
    /// Occupied slots (distinct hashes).
    used: usize,
    /// Variants after the newest, per hash, newest first.
    older: HashMap<u64, Vec<Variant>, IdBuildHasher>,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            slots: empty_slots(MIN_SLOTS),
            used: 0,
            older: HashMap::default(),
        }
    }
}

fn empty_slots(count: usize) -> Box<[Slot]> {
    std::iter::repeat_with(Slot::default).take(count).collect()
}

impl Index {
    fn mask(&self) -> usize {
        self.slots.len().saturating_sub(1)
    }

    fn home(&self, hash: u64) -> usize {
        // Truncation is the point: the low bits pick the slot (the shard used the high ones).
        (hash as usize) & self.mask()
    }

    /// The slot holding `hash`, if any.
    fn position(&self, hash: u64) -> Option<usize> {
        let mask = self.mask();
        let mut at = self.home(hash);
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(at)?;
            match &slot.newest {
                None => return None,
                Some(_) if slot.hash == hash => return Some(at),
                Some(_) => at = (at + 1) & mask,
            }
        }
        None
    }

    /// The variants under `hash`, newest first.
    pub(super) fn variants(&self, hash: u64) -> impl Iterator<Item = &Variant> {
        let newest = self
            .position(hash)
            .and_then(|at| self.slots.get(at))
            .and_then(|slot| slot.newest.as_ref());
        let older = match newest {
            Some(_) => self.older.get(&hash).map(Vec::as_slice).unwrap_or(&[]),
            None => &[],
        };
        newest.into_iter().chain(older)
    }

    /// Adds `variant` under `hash` as the newest.
    pub(super) fn push_front(&mut self, hash: u64, variant: Variant) {
        if let Some(at) = self.position(hash)
            && let Some(slot) = self.slots.get_mut(at)
        {
            if let Some(previous) = slot.newest.replace(variant) {
                self.older.entry(hash).or_default().insert(0, previous);
            }
            return;
        }
        if (self.used + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.place(hash, variant);
        self.used += 1;
    }

    /// Puts a new hash in its first free slot from home (the table has room).
    fn place(&mut self, hash: u64, variant: Variant) {
        let mask = self.mask();
        let mut at = self.home(hash);
        while let Some(slot) = self.slots.get_mut(at) {
            if slot.newest.is_none() {
                *slot = Slot {
                    hash,
                    newest: Some(variant),
                };
                return;
            }
            at = (at + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let count = self.slots.len().saturating_mul(2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, empty_slots(count));
        for slot in old {
            if let Some(variant) = slot.newest {
                self.place(slot.hash, variant);
            }
        }
    }

    /// Removes variant `id` from under `hash`; returns whether it was there.
    pub(super) fn remove(&mut self, hash: u64, id: u64) -> bool {
        let Some(at) = self.position(hash) else {
            return false;
        };
        let newest_is_it = self
            .slots
            .get(at)
            .and_then(|slot| slot.newest.as_ref())
            .is_some_and(|newest| newest.id == id);
        if !newest_is_it {
            let Some(older) = self.older.get_mut(&hash) else {
                return false;
            };
            let before = older.len();
            older.retain(|variant| variant.id != id);
            let removed = older.len() != before;
            if older.is_empty() {
                self.older.remove(&hash);
            }
            return removed;
        }
        let next = match self.older.get_mut(&hash) {
            Some(older) if !older.is_empty() => {
                let next = older.remove(0);
                if older.is_empty() {
                    self.older.remove(&hash);
                }
                Some(next)
            }
            _ => None,
        };
        match next {
            Some(next) => {
                if let Some(slot) = self.slots.get_mut(at) {
                    slot.newest = Some(next);
                }
            }
            None => self.vacate(at),
        }
        true
    }

    /// Frees slot `at` and shifts back the entries after it that probed past it, so every
    /// entry stays reachable from its home without tombstones.
    fn vacate(&mut self, mut at: usize) {
        let mask = self.mask();
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = Slot::default();
        }
        self.used = self.used.saturating_sub(1);
        let mut next = (at + 1) & mask;
        loop {
            let Some(slot) = self.slots.get(next) else {
                return;
            };
            if slot.newest.is_none() {
                return;
            }
            let home = self.home(slot.hash);
            // The entry at `next` may move into the hole at `at` unless its home lies
            // cyclically in (at, next].
            let stays = if at <= next {
                at < home && home <= next
            } else {
                at < home || home <= next
            };
            if !stays {
                let moved = self.slots.get_mut(next).map(std::mem::take);
                if let (Some(moved), Some(hole)) = (moved, self.slots.get_mut(at)) {
                    *hole = moved;
                }
                at = next;
            }
            next = (next + 1) & mask;
        }
    }

    /// Variants listed, over all hashes (for the audit).
    pub(super) fn len(&self) -> usize {
        self.older
            .values()
            .map(Vec::len)
            .fold(self.used, usize::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheRules;
    use crate::cache::tests::{entry, get, response};

    fn entry_for(url: &str) -> Entry {
        let reply = response(200, &[("cache-control", "max-age=60")]);
        entry(&get(url, &[]), &reply, &CacheRules::default(), b"x")
    }

    fn variant(id: u64, entry: &Arc<Entry>) -> Variant {
        Variant::new(id, id.wrapping_mul(31), Arc::clone(entry))
    }

    fn ids(index: &Index, hash: u64) -> Vec<u64> {
        index.variants(hash).map(|variant| variant.id).collect()
    }

    #[test]
    fn a_slot_fills_one_cache_line_and_never_straddles_one() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
        assert_eq!(std::mem::align_of::<Slot>(), 64);
    }

    #[test]
    fn variants_come_newest_first_and_the_next_takes_the_slot_when_the_newest_goes() {
        let entry = Arc::new(entry_for("http://a/"));
        let mut index = Index::default();
        for id in 1..=3 {
            index.push_front(7, variant(id, &entry));
        }
        assert_eq!(ids(&index, 7), [3, 2, 1]);
        assert!(index.remove(7, 3));
        assert_eq!(ids(&index, 7), [2, 1]);
        assert!(index.remove(7, 1));
        assert!(!index.remove(7, 1));
        assert_eq!(ids(&index, 7), [2]);
        assert!(index.remove(7, 2));
        assert_eq!(ids(&index, 7), Vec::<u64>::new());
        assert_eq!(index.len(), 0);
        assert!(index.older.is_empty());
    }

    /// Random inserts and removals with many hashes sharing home slots (and wrapping round
    /// the table's end) agree with a plain map at every step.
    #[test]
    fn linear_probing_with_backward_shift_agrees_with_a_map_under_churn() {
        let entry = Arc::new(entry_for("http://a/"));
        let mut index = Index::default();
        let mut model: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for id in 1..=20_000u64 {
            let roll = next();
            // 64 home slots at most (none until the table passes 1 024 slots): long probe
            // runs that wrap round the end; the high bits keep 32 000 hashes distinct.
            let hash = (roll % 64) * 1024 + (((roll >> 20) % 500) << 32);
            if roll % 3 == 0 {
                let Some(existing) = model.get_mut(&hash) else {
                    continue;
                };
                let pick = existing.get(usize::try_from(roll % 5).unwrap_or(0) % existing.len());
                let Some(&victim) = pick else { continue };
                existing.retain(|other| *other != victim);
                if existing.is_empty() {
                    model.remove(&hash);
                }
                assert!(index.remove(hash, victim));
            } else {
                index.push_front(hash, variant(id, &entry));
                model.entry(hash).or_default().insert(0, id);
            }
            if id % 997 == 0 {
                for (hash, expected) in &model {
                    assert_eq!(&ids(&index, *hash), expected, "hash {hash:#x}");
                }
                assert_eq!(index.len(), model.values().map(Vec::len).sum::<usize>());
            }
        }
        for (hash, expected) in &model {
            assert_eq!(&ids(&index, *hash), expected);
        }
        assert_eq!(ids(&index, 0xdead_0000), Vec::<u64>::new());
        assert!(index.used * 2 <= index.slots.len());
    }
}
