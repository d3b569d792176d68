//! A recount of the store, for tests and debugging: O(entries), one shard at a time.

use super::Store;

impl Store {
    /// Recounts every shard's charges and index sizes: O(entries), for tests and debugging.
    pub fn audit(&self) -> Audit {
        let mut audit = Audit::default();
        for index in 0..self.shards.len() {
            let Some(shard) = self.read(index) else {
                continue;
            };
            audit.counted = audit.counted.saturating_add(shard.bytes);
            audit.actual = audit.actual.saturating_add(
                shard
                    .slots
                    .0
                    .values()
                    .map(|slot| slot.entry.charge())
                    .fold(0, usize::saturating_add),
            );
            audit.entries = audit.entries.saturating_add(shard.slots.0.len());
            audit.indexed = audit.indexed.saturating_add(shard.primaries.len());
            audit.tags = audit.tags.saturating_add(shard.tags.tag_count());
            audit.max_shard_bytes = audit.max_shard_bytes.max(shard.bytes);
        }
        audit
    }
}

/// A recount of the store (see [`Store::audit`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Bytes the shards believe they hold.
    pub counted: usize,
    /// Bytes their entries are charged.
    pub actual: usize,
    pub entries: usize,
    /// Ids listed under primary keys (equals `entries` when the index is consistent).
    pub indexed: usize,
    /// Distinct tags indexed.
    pub tags: usize,
    pub max_shard_bytes: usize,
}
