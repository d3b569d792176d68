//! The cache's counters: plain atomics, read by the metrics exporter through
//! [`CountersSnapshot`]. Labels stay bounded: purge kinds and lookup outcomes only.

use std::sync::atomic::{AtomicU64, Ordering};

use super::lookup::Lookup;
use super::purge::PurgeKind;

/// How a revalidation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revalidation {
    /// 304: the stored body was reused.
    NotModified,
    /// 200 (or another full response): the entry was replaced.
    Modified,
}

impl Revalidation {
    /// The metric label: `304` or `200`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotModified => "304",
            Self::Modified => "200",
        }
    }
}

/// Something the pipeline or the cache reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheEvent {
    /// A stale entry was served (stale-while-revalidate or stale-if-error).
    StaleServed,
    Revalidated(Revalidation),
    /// A request waited on another's fetch.
    CoalescedWait,
    /// ... and gave up waiting.
    CoalescedTimeout,
    Stored,
    /// The store refused an entry larger than a shard.
    RefusedTooBig,
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct CacheCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale_lookups: AtomicU64,
    stale_served: AtomicU64,
    revalidated_not_modified: AtomicU64,
    revalidated_modified: AtomicU64,
    coalesced_waits: AtomicU64,
    coalesced_timeouts: AtomicU64,
    stores: AtomicU64,
    refused_too_big: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    invalidations: AtomicU64,
    purges: [AtomicU64; 5],
}

/// One reading of every counter plus the store's gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub hits: u64,
    pub misses: u64,
    /// Lookups that found a stale entry (served or revalidated).
    pub stale_lookups: u64,
    pub stale_served: u64,
    pub revalidated_not_modified: u64,
    pub revalidated_modified: u64,
    pub coalesced_waits: u64,
    pub coalesced_timeouts: u64,
    pub stores: u64,
    pub refused_too_big: u64,
    pub evictions: u64,
    pub expired: u64,
    pub invalidations: u64,
    /// Purge requests by target kind, in [`PurgeKind::ALL`] order.
    pub purges: [u64; 5],
    pub bytes_stored: u64,
    pub objects_stored: u64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn purge_index(kind: PurgeKind) -> usize {
    match kind {
        PurgeKind::Url => 0,
        PurgeKind::Prefix => 1,
        PurgeKind::Tag => 2,
        PurgeKind::Host => 3,
        PurgeKind::Everything => 4,
    }
}

impl CacheCounters {
    pub(crate) fn observe_lookup(&self, lookup: &Lookup) {
        match lookup {
            Lookup::Hit(_) => bump(&self.hits, 1),
            Lookup::Stale(_) => bump(&self.stale_lookups, 1),
            Lookup::Miss(_) => bump(&self.misses, 1),
        }
    }

    pub(crate) fn record(&self, event: CacheEvent) {
        let counter = match event {
            CacheEvent::StaleServed => &self.stale_served,
            CacheEvent::Revalidated(Revalidation::NotModified) => &self.revalidated_not_modified,
            CacheEvent::Revalidated(Revalidation::Modified) => &self.revalidated_modified,
            CacheEvent::CoalescedWait => &self.coalesced_waits,
            CacheEvent::CoalescedTimeout => &self.coalesced_timeouts,
            CacheEvent::Stored => &self.stores,
            CacheEvent::RefusedTooBig => &self.refused_too_big,
        };
        bump(counter, 1);
    }

    pub(crate) fn add_evictions(&self, count: usize) {
        bump(&self.evictions, count as u64);
    }

    pub(crate) fn add_expired(&self, count: usize) {
        bump(&self.expired, count as u64);
    }

    pub(crate) fn add_invalidations(&self, count: usize) {
        bump(&self.invalidations, count as u64);
    }

    pub(crate) fn add_purge(&self, kind: PurgeKind) {
        if let Some(counter) = self.purges.get(purge_index(kind)) {
            bump(counter, 1);
        }
    }

    /// Reads every counter; `bytes` and `objects` are the store's gauges.
    pub fn snapshot(&self, bytes: usize, objects: usize) -> CountersSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CountersSnapshot {
            hits: read(&self.hits),
            misses: read(&self.misses),
            stale_lookups: read(&self.stale_lookups),
            stale_served: read(&self.stale_served),
            revalidated_not_modified: read(&self.revalidated_not_modified),
            revalidated_modified: read(&self.revalidated_modified),
            coalesced_waits: read(&self.coalesced_waits),
            coalesced_timeouts: read(&self.coalesced_timeouts),
            stores: read(&self.stores),
            refused_too_big: read(&self.refused_too_big),
            evictions: read(&self.evictions),
            expired: read(&self.expired),
            invalidations: read(&self.invalidations),
            purges: self.purges.each_ref().map(read),
            bytes_stored: bytes as u64,
            objects_stored: objects as u64,
        }
    }
}
