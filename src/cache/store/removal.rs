//! Removal by criteria, the store's upkeep: the incremental expiry sweep and purges (by URL,
//! prefix, host, tag, everything; hard, soft or dry run). Both work one shard at a time under
//! that shard's write lock, so neither stops the whole store.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use std::sync::Arc;

use super::{RECLAIM_IN_BACKGROUND, Shard, Store};
use crate::cache::entry::Entry;
use crate::cache::eviction::IdBuildHasher;
use crate::cache::purge::{Matcher, PurgeMode, PurgeRun};

impl Store {
    /// Removes entries whose `keep_until` is at or before `now`, visiting shards in turn and
    /// doing at most `max_steps` heap pops in all. Returns how many were removed.
    pub fn sweep(&self, now: SystemTime, max_steps: usize) -> usize {
        let count = self.shards.len();
        let mut steps = 0usize;
        let mut removed = 0usize;
        for _ in 0..count {
            if steps >= max_steps {
                break;
            }
            let index = self.sweep_cursor.fetch_add(1, Ordering::Relaxed) % count.max(1);
            // Declared before the guard, so dropped after it: freed outside the lock.
            let mut graveyard = Vec::new();
            let Some(mut shard) = self.write(index) else {
                continue;
            };
            let mut freed = 0usize;
            let mut gone = 0usize;
            while steps < max_steps {
                let Some(Reverse((deadline, id))) = shard.expiry.peek().copied() else {
                    break;
                };
                if deadline > now {
                    break;
                }
                shard.expiry.pop();
                steps = steps.saturating_add(1);
                let current = shard.slots.0.get(&id).map(|slot| slot.entry.keep_until());
                if current == Some(deadline)
                    && let Some(weight) = shard.remove(id, &mut graveyard)
                {
                    gone = gone.saturating_add(1);
                    freed = freed.saturating_add(weight);
                }
            }
            shard.tidy();
            self.objects.fetch_sub(gone, Ordering::Relaxed);
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
            removed = removed.saturating_add(gone);
        }
        removed
    }

    /// Applies `matchers` shard by shard; returns (entries matched, bytes they are charged).
    pub(crate) fn purge(
        &self,
        matchers: &[Matcher],
        mode: PurgeMode,
        run: PurgeRun,
    ) -> (usize, usize) {
        // URL targets touch only the shard their hash names.
        let mut url_hashes: Vec<(usize, u64, &str)> = Vec::new();
        for matcher in matchers {
            if let Matcher::Urls(urls) = matcher {
                for url in urls {
                    let hash = self.hash(url);
                    url_hashes.push((self.shard_index(hash), hash, url));
                }
            }
        }
        let mut matched = 0usize;
        let mut bytes = 0usize;
        let mut garbage = Garbage::default();
        for index in 0..self.shards.len() {
            let Some(mut shard) = self.write(index) else {
                continue;
            };
            let everything = matchers.iter().any(|m| matches!(m, Matcher::Everything));
            if everything && mode == PurgeMode::Hard && run == PurgeRun::Apply {
                matched = matched.saturating_add(shard.slots.0.len());
                bytes = bytes.saturating_add(shard.bytes);
                self.objects
                    .fetch_sub(shard.slots.0.len(), Ordering::Relaxed);
                self.bytes.fetch_sub(shard.bytes, Ordering::Relaxed);
                garbage.entries = garbage.entries.saturating_add(shard.slots.0.len());
                garbage.shards.push(shard.take());
                continue;
            }
            let mut selected: HashSet<u64, IdBuildHasher> = HashSet::default();
            for (_, hash, url) in url_hashes
                .iter()
                .filter(|(shard_index, _, _)| *shard_index == index)
            {
                selected.extend(
                    shard
                        .primaries
                        .variants(*hash)
                        .filter(|variant| variant.entry.primary() == *url)
                        .map(|variant| variant.id),
                );
            }
            for matcher in matchers {
                match matcher {
                    Matcher::Urls(_) => {}
                    Matcher::Tag(tag) => selected.extend(shard.tags.ids(tag)),
                    walking => selected.extend(
                        shard
                            .slots
                            .0
                            .iter()
                            .filter(|(_, slot)| walking.selects(slot.entry.primary()))
                            .map(|(id, _)| *id),
                    ),
                }
            }
            let mut freed = 0usize;
            let mut gone = 0usize;
            if (run, mode) == (PurgeRun::Apply, PurgeMode::Hard) {
                // One allocation up front: growing the list by doubling under the lock costs
                // large reallocations, which glibc pays for by consolidating every small chunk
                // the removals just freed.
                garbage.removed.reserve(selected.len());
            }
            for id in selected {
                let Some(slot) = shard.slots.0.get(&id) else {
                    continue;
                };
                matched = matched.saturating_add(1);
                bytes = bytes.saturating_add(slot.meta.weight);
                match (run, mode) {
                    (PurgeRun::DryRun, _) => {}
                    (PurgeRun::Apply, PurgeMode::Soft) => slot.entry.soft_purge(),
                    (PurgeRun::Apply, PurgeMode::Hard) => {
                        if let Some(weight) = shard.remove(id, &mut garbage.removed) {
                            gone = gone.saturating_add(1);
                            freed = freed.saturating_add(weight);
                        }
                    }
                }
            }
            if gone > 0 {
                shard.tidy();
            }
            self.objects.fetch_sub(gone, Ordering::Relaxed);
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
        }
        garbage.entries = garbage.entries.saturating_add(garbage.removed.len());
        garbage.dispose();
        (matched, bytes)
    }
}

/// What a hard purge removed, to be freed once every lock is released.
#[derive(Default)]
struct Garbage {
    removed: Vec<Arc<Entry>>,
    shards: Vec<Shard>,
    entries: usize,
}

impl Garbage {
    /// Frees the entries: here for a small purge, on a short-lived thread for a large one, so
    /// that a purge of many entries returns once they are unreachable (already out of the
    /// byte accounting) rather than once the allocator has taken them back. The thread does
    /// nothing but drop memory and ends by itself; if it cannot be started the memory is
    /// freed here.
    fn dispose(self) {
        if self.entries < RECLAIM_IN_BACKGROUND {
            return;
        }
        let entries = self.entries;
        let spawned = std::thread::Builder::new()
            .name("sluice-cache-reclaim".into())
            .spawn(move || {
                let _span = tracing::debug_span!("cache_reclaim", entries).entered();
                drop(self);
            });
        if let Err(error) = spawned {
            tracing::debug!(%error, "cache reclaim thread not started; freeing inline");
        }
    }
}
