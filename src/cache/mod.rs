//! The HTTP cache (RFC 9111, with RFC 5861 stale controls, RFC 9211 Cache-Status and RFC 9213
//! targeted fields): a library the request pipeline calls. It knows nothing of sockets, hyper
//! servers or configuration files; it owns the store, the purge index, the coalescing table
//! and the cache's counters.
//!
//! # How the pipeline calls it
//!
//! ```text
//! 3 lookup   key = CacheKey::new(&rules.key, scheme, head)?          (HEAD uses the GET key)
//!            match cache.lookup(&key, head, &rules, now) {
//!              Hit(hit)      -> answer_conditional / range::select, set_age(hit.age),
//!                               Cache-Status: CacheStatus::hit(hit.ttl); done
//!              Stale(stale)  -> WhileRevalidating: serve it (CacheStatus::hit(ttl)
//!                                 .detail("stale-while-revalidate"), record StaleServed) and,
//!                                 if cache.try_lead(&key) gives a leader, refresh in the
//!                                 background (steps 5-7 with prepare_revalidation).
//!                               AfterRevalidation: prepare_revalidation(&mut headers, &entry)
//!                                 and forward (step 5); keep the entry for 304 / errors.
//!              Miss(OnlyIfCached) -> 504; Miss(_) -> step 4
//!            }
//! 4 coalesce a GET or HEAD miss without LEFT_TO_ORIGIN preconditions (If-Match,
//!            If-Unmodified-Since) and without a body; a HEAD or a GET with one of
//!            ANSWERED_FROM_STORE (validators, Range) asks the origin for the whole
//!            representation with a plain GET without them, reads it into the store first,
//!            then answers as a hit would (answer_conditional_to judges what was not stored).
//!            match cache.coalesce(&key) {
//!              Leader(leader) -> forward; then publish or release (dropping it releases)
//!              Waiter(waiter) -> match cache.wait(waiter, headers, timeout).await {
//!                                  Coalesced::Hit(entry) -> serve (Cache-Status collapsed)
//!                                  Coalesced::GoToOrigin(_) -> forward, not coalesced
//!                                }
//!            }
//! 5 forward  on a 304 for a stale entry: conditional::refresh(..) -> Updated(entry):
//!              cache.store_entry(*entry), record Revalidated(NotModified), serve it.
//!            on 5xx / unreachable with a stale entry: lookup::stale_on_error(..) ->
//!              ServeStale: serve it with CacheStatus::forward(Fwd::Stale).fwd_status(..).
//!            after an unsafe method: cache.invalidate(&rules.key,
//!              &invalidation_targets(head, scheme, response_head)).
//! 7 store    match policy::cacheability(head, response_head, &rules, sent, received) {
//!              Store(plan) -> tee: BodyCollector::new(plan.max_body) fed every frame;
//!                             at end of stream: finish(content_length) ->
//!                             Complete(body) -> cache.store(&key, plan, status, headers,
//!                             body) -> Some(entry) -> leader.publish(entry)
//!              Skip(reason) -> leader.release(); Cache-Status ...not_stored(reason)
//!            }
//! 8 respond  strip_for_client(headers, facing); Age on everything served from cache;
//!            Cache-Status on every response.
//! maintenance tick: cache.sweep(now, steps) every second or so.
//! ```
//!
//! Submodules: [`key`] (the key format), [`policy`] (storability), [`lookup`] (reuse),
//! [`freshness`], [`conditional`] (revalidation, 304 merge, client conditionals), [`range`],
//! [`invalidate`], [`respond`] (Age, Cache-Status, stripping), [`store`] and `eviction`
//! (S3-FIFO), [`purge`], [`coalesce`], [`body`] (the tee).

pub mod body;
pub mod coalesce;
pub mod conditional;
mod counters;
mod date;
pub(crate) mod directives;
pub mod entry;
pub(crate) mod eviction;
pub mod freshness;
pub mod head;
pub mod invalidate;
pub mod key;
pub mod lookup;
pub mod policy;
pub mod purge;
pub mod range;
pub mod respond;
pub mod rules;
mod shape;
pub mod store;
pub mod vary;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};

pub use body::{BodyCollector, Collected, Collecting};
pub use coalesce::{Join, Leader, Release, Waiter};
pub use conditional::{
    ANSWERED_FROM_STORE, ClientConditional, LEFT_TO_ORIGIN, Refresh, answer_conditional,
    answer_conditional_to, prepare_revalidation, refresh,
};
pub use counters::{CacheCounters, CacheEvent, CountersSnapshot, Revalidation};
pub use entry::{Entry, PurgeState};
pub use head::{RequestHead, ResponseHead};
pub use invalidate::invalidation_targets;
pub use key::{CacheKey, KeyError, KeyRules, QueryOrder, QueryParams};
pub use lookup::{
    Hit, Lookup, MissKind, OnError, ServeStale, Stale, StaleReason, UpstreamFailure, stale_on_error,
};
pub use policy::{Cacheability, NoCacheReason, StorePlan, cacheability};
pub use purge::{
    Credential, PurgeActor, PurgeKind, PurgeMode, PurgeOutcome, PurgeRequest, PurgeRun,
    PurgeTarget, audit,
};
pub use range::RangeAnswer;
pub use respond::{CACHE_STATUS, CacheStatus, Facing, Fwd, set_age, strip_for_client};
pub use rules::{CacheRules, ClientNoCache, Heuristic, SetCookie, StatusRule};
pub use store::{Audit, Found, Inserted, Store, StoreConfig};

use coalesce::{Coalescer, Waited};
use directives::RequestDirectives;
use purge::Matcher;

/// What a coalesced wait gave.
#[derive(Debug)]
pub enum Coalesced {
    /// The leader's stored response, selected by this request too.
    Hit(Arc<Entry>),
    /// Fetch from the origin yourself.
    GoToOrigin(Release),
}

/// The cache: store, purge index, coalescing table and counters. One per process, in
/// `Shared`; every method takes `&self` and none blocks on I/O.
#[derive(Debug)]
pub struct Cache {
    store: Store,
    coalescer: Coalescer<Arc<Entry>>,
    counters: CacheCounters,
}

impl Cache {
    /// An empty cache whose store has this budget and shape. Built once, at start.
    pub fn new(config: StoreConfig) -> Self {
        Self {
            store: Store::new(config),
            coalescer: Coalescer::new(),
            counters: CacheCounters::default(),
        }
    }

    /// Step 3: the stored response for this request, if one may be used at `now`.
    pub fn lookup(
        &self,
        key: &CacheKey,
        request: RequestHead<'_>,
        rules: &CacheRules,
        now: SystemTime,
    ) -> Lookup {
        let directives = RequestDirectives::parse(request.headers);
        let lookup = match self.store.find(key, request.headers) {
            Found::Entry(entry) => lookup::evaluate(entry, &directives, rules, now),
            Found::VaryMiss => Lookup::Miss(MissKind::VaryMiss),
            Found::UriMiss => Lookup::Miss(MissKind::UriMiss),
        };
        let lookup = if directives.only_if_cached {
            lookup::only_if_cached(lookup)
        } else {
            lookup
        };
        self.counters.observe_lookup(&lookup);
        lookup
    }

    /// Step 4: lead the origin fetch for `key`, or wait for the request that does.
    pub fn coalesce(&self, key: &CacheKey) -> Join<Arc<Entry>> {
        self.coalescer.join(&flight_key(key))
    }

    /// Leads a fetch of `key` only if none is in flight (stale-while-revalidate refresh).
    pub fn try_lead(&self, key: &CacheKey) -> Option<Leader<Arc<Entry>>> {
        self.coalescer.try_lead(&flight_key(key))
    }

    /// Step 4, waiting side: at most `timeout`, then the leader's entry if this request's Vary
    /// values select it.
    pub async fn wait(
        &self,
        waiter: Waiter<Arc<Entry>>,
        request: &HeaderMap,
        timeout: Duration,
    ) -> Coalesced {
        self.counters.record(CacheEvent::CoalescedWait);
        match waiter.wait(timeout).await {
            Waited::Ready(entry) if entry.vary().matches(request) => Coalesced::Hit(entry),
            Waited::Ready(_) => Coalesced::GoToOrigin(Release::OtherVariant),
            Waited::GoToOrigin(release) => {
                if release == Release::TimedOut {
                    self.counters.record(CacheEvent::CoalescedTimeout);
                }
                Coalesced::GoToOrigin(release)
            }
        }
    }

    /// Step 7: stores a complete response the policy said to store. `None` when it is larger
    /// than a store shard can hold.
    pub fn store(
        &self,
        key: &CacheKey,
        plan: StorePlan,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    ) -> Option<Arc<Entry>> {
        self.store_entry(Entry::new(key, plan, status, headers, body))
    }

    /// Stores a built entry (a 304 refresh from [`conditional::refresh`], unboxed), replacing the
    /// variant it selects the same way.
    pub fn store_entry(&self, entry: Entry) -> Option<Arc<Entry>> {
        match self.store.insert(entry) {
            Inserted::Stored { entry, evicted } => {
                self.counters.record(CacheEvent::Stored);
                self.counters.add_evictions(evicted);
                Some(entry)
            }
            Inserted::TooBig => {
                self.counters.record(CacheEvent::RefusedTooBig);
                None
            }
        }
    }

    /// Purges (admin API, PURGE method). Counted by target kind; an entry selected by several
    /// targets counts once in `matched`.
    pub fn purge(&self, request: &PurgeRequest) -> PurgeOutcome {
        let matchers: Vec<Matcher> = request.targets.iter().map(Matcher::new).collect();
        let (matched, bytes) = self.store.purge(&matchers, request.mode, request.run);
        if request.run == PurgeRun::Apply {
            for target in &request.targets {
                self.counters.add_purge(target.kind());
            }
        }
        PurgeOutcome {
            matched,
            bytes,
            mode: request.mode,
            run: request.run,
        }
    }

    /// RFC 9111 4.4: removes every variant of each target URI (from
    /// [`invalidation_targets`]), keyed with the route's key rules. Returns entries removed.
    pub fn invalidate(&self, rules: &KeyRules, targets: &[Uri]) -> usize {
        let urls: Vec<String> = targets
            .iter()
            .filter_map(|uri| CacheKey::for_url(rules, uri).ok())
            .map(|key| key.primary().to_owned())
            .collect();
        if urls.is_empty() {
            return 0;
        }
        let (matched, _) =
            self.store
                .purge(&[Matcher::Urls(urls)], PurgeMode::Hard, PurgeRun::Apply);
        self.counters.add_invalidations(matched);
        matched
    }

    /// Maintenance: drops entries past their `keep_until`, at most `max_steps` heap pops.
    pub fn sweep(&self, now: SystemTime, max_steps: usize) -> usize {
        let removed = self.store.sweep(now, max_steps);
        self.counters.add_expired(removed);
        removed
    }

    /// Records what the pipeline decided (stale served, revalidation outcomes).
    pub fn record(&self, event: CacheEvent) {
        self.counters.record(event);
    }

    /// The counters, for the metrics exporter.
    pub fn counters(&self) -> &CacheCounters {
        &self.counters
    }

    /// All counters and the store's gauges at once, for the metrics exporter.
    pub fn snapshot(&self) -> CountersSnapshot {
        self.counters
            .snapshot(self.store.bytes(), self.store.objects())
    }

    /// The store, for gauges, audits and benches.
    pub fn store_ref(&self) -> &Store {
        &self.store
    }
}

/// The coalescing key: the URL and the key extras (Vary is checked after the wait).
fn flight_key(key: &CacheKey) -> String {
    if key.extra().is_empty() {
        key.primary().to_owned()
    } else {
        let mut flight =
            String::with_capacity(key.primary().len().saturating_add(key.extra().len()));
        flight.push_str(key.primary());
        flight.push_str(key.extra());
        flight
    }
}
