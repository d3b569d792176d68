//! The cache's metrics: requests per route by cache outcome (counted by the pipeline), and the
//! store's own counters and gauges, read from the cache's atomics when Prometheus scrapes.
//!
//! Names are declared here, beside the rest of `metrics/`; the cache library only keeps
//! atomics and knows nothing of Prometheus.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::cache::{Cache, CountersSnapshot, PurgeKind};

/// How the cache answered one request on a caching route: a bounded label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from the cache, fresh.
    Hit,
    /// Served stale (stale-while-revalidate or stale-if-error).
    Stale,
    /// Waited on another request's fetch and got its response.
    Collapsed,
    /// Revalidated with the origin, which answered 304.
    Revalidated,
    /// Fetched from the origin (nothing usable was stored).
    Miss,
    /// Not cacheable on this route (method, upgrade): passed through.
    Bypass,
}

impl CacheOutcome {
    /// Every outcome, in label order.
    pub const ALL: [CacheOutcome; 6] = [
        CacheOutcome::Hit,
        CacheOutcome::Stale,
        CacheOutcome::Collapsed,
        CacheOutcome::Revalidated,
        CacheOutcome::Miss,
        CacheOutcome::Bypass,
    ];

    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Stale => "stale",
            CacheOutcome::Collapsed => "collapsed",
            CacheOutcome::Revalidated => "revalidated",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypass => "bypass",
        }
    }

    fn index(self) -> usize {
        match self {
            CacheOutcome::Hit => 0,
            CacheOutcome::Stale => 1,
            CacheOutcome::Collapsed => 2,
            CacheOutcome::Revalidated => 3,
            CacheOutcome::Miss => 4,
            CacheOutcome::Bypass => 5,
        }
    }
}

/// One route's cache request counters, looked up once per snapshot.
#[derive(Clone)]
pub struct RouteCacheMetrics {
    outcomes: [IntCounter; 6],
}

impl RouteCacheMetrics {
    /// Counts one request answered with `outcome`.
    pub fn observe(&self, outcome: CacheOutcome) {
        if let Some(counter) = self.outcomes.get(outcome.index()) {
            counter.inc();
        }
    }
}

/// `sluice_cache_requests_total{route,cache_status}`.
pub(crate) fn requests_counter() -> Result<IntCounterVec, prometheus::Error> {
    IntCounterVec::new(
        Opts::new(
            "sluice_cache_requests_total",
            "Requests on caching routes, by how the cache answered.",
        ),
        &["route", "cache_status"],
    )
}

pub(crate) fn route_handles(vec: &IntCounterVec, route: &str) -> RouteCacheMetrics {
    RouteCacheMetrics {
        outcomes: CacheOutcome::ALL
            .map(|outcome| vec.with_label_values(&[route, outcome.as_str()])),
    }
}

/// Exports the store's counters at scrape time.
struct StoreCollector {
    cache: Arc<Cache>,
    descs: Vec<Desc>,
}

/// (name, help, labels) of every family the collector exports, in `collect` order.
const FAMILIES: [(&str, &str, &[&str]); 13] = [
    (
        "sluice_cache_lookups_total",
        "Cache lookups, by result (hit, stale, miss).",
        &["result"],
    ),
    (
        "sluice_cache_stale_served_total",
        "Stale responses served (stale-while-revalidate, stale-if-error).",
        &[],
    ),
    (
        "sluice_cache_revalidations_total",
        "Revalidations with the origin, by its answer (304 or 200).",
        &["status"],
    ),
    (
        "sluice_cache_coalesced_waits_total",
        "Requests that waited on another request's fetch.",
        &[],
    ),
    (
        "sluice_cache_coalesced_timeouts_total",
        "Coalesced waits that timed out and went to the origin.",
        &[],
    ),
    ("sluice_cache_stores_total", "Responses stored.", &[]),
    (
        "sluice_cache_refused_total",
        "Responses refused by the store for being larger than a shard.",
        &[],
    ),
    (
        "sluice_cache_evictions_total",
        "Entries evicted to stay within the byte budget.",
        &[],
    ),
    (
        "sluice_cache_expired_total",
        "Expired entries removed by the sweeper.",
        &[],
    ),
    (
        "sluice_cache_invalidations_total",
        "Entries removed after unsafe methods (RFC 9111 4.4).",
        &[],
    ),
    (
        "sluice_cache_purges_total",
        "Purges, by target kind.",
        &["kind"],
    ),
    (
        "sluice_cache_stored_bytes",
        "Bytes charged to the store: headers, bodies and metadata.",
        &[],
    ),
    ("sluice_cache_stored_objects", "Entries in the store.", &[]),
];

fn counter_family(
    name: &str,
    help: &str,
    label: Option<&str>,
    values: &[(&str, u64)],
) -> MetricFamily {
    family(
        name,
        help,
        label,
        values,
        prometheus::proto::MetricType::COUNTER,
    )
}

fn family(
    name: &str,
    help: &str,
    label: Option<&str>,
    values: &[(&str, u64)],
    kind: prometheus::proto::MetricType,
) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(kind);
    for (label_value, value) in values {
        let mut metric = prometheus::proto::Metric::default();
        if let Some(label) = label {
            let mut pair = prometheus::proto::LabelPair::default();
            pair.set_name(label.to_string());
            pair.set_value((*label_value).to_string());
            metric.set_label(vec![pair]);
        }
        if kind == prometheus::proto::MetricType::COUNTER {
            let mut counter = prometheus::proto::Counter::default();
            counter.set_value(*value as f64);
            metric.set_counter(counter);
        } else {
            let mut gauge = prometheus::proto::Gauge::default();
            gauge.set_value(*value as f64);
            metric.set_gauge(gauge);
        }
        family.mut_metric().push(metric);
    }
    family
}

fn families(s: &CountersSnapshot) -> Vec<MetricFamily> {
    let gauge = prometheus::proto::MetricType::GAUGE;
    let mut purges = Vec::with_capacity(PurgeKind::ALL.len());
    for (kind, count) in PurgeKind::ALL.iter().zip(s.purges) {
        purges.push((kind.as_str(), count));
    }
    let single = |value: u64| [("", value)];
    let [
        lookups,
        stale,
        revalidations,
        waits,
        timeouts,
        stores,
        refused,
        evictions,
        expired,
        invalidations,
        purge,
        bytes,
        objects,
    ] = FAMILIES;
    vec![
        counter_family(
            lookups.0,
            lookups.1,
            Some("result"),
            &[
                ("hit", s.hits),
                ("stale", s.stale_lookups),
                ("miss", s.misses),
            ],
        ),
        counter_family(stale.0, stale.1, None, &single(s.stale_served)),
        counter_family(
            revalidations.0,
            revalidations.1,
            Some("status"),
            &[
                ("304", s.revalidated_not_modified),
                ("200", s.revalidated_modified),
            ],
        ),
        counter_family(waits.0, waits.1, None, &single(s.coalesced_waits)),
        counter_family(timeouts.0, timeouts.1, None, &single(s.coalesced_timeouts)),
        counter_family(stores.0, stores.1, None, &single(s.stores)),
        counter_family(refused.0, refused.1, None, &single(s.refused_too_big)),
        counter_family(evictions.0, evictions.1, None, &single(s.evictions)),
        counter_family(expired.0, expired.1, None, &single(s.expired)),
        counter_family(
            invalidations.0,
            invalidations.1,
            None,
            &single(s.invalidations),
        ),
        counter_family(purge.0, purge.1, Some("kind"), &purges),
        family(bytes.0, bytes.1, None, &single(s.bytes_stored), gauge),
        family(objects.0, objects.1, None, &single(s.objects_stored), gauge),
    ]
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        families(&self.cache.snapshot())
    }
}

/// Registers the store's counters with `registry`, read from `cache` at each scrape.
pub fn register_store(registry: &Registry, cache: Arc<Cache>) {
    let descs = FAMILIES
        .iter()
        .filter_map(|(name, help, labels)| {
            Desc::new(
                (*name).to_string(),
                (*help).to_string(),
                labels.iter().map(|l| (*l).to_string()).collect(),
                Default::default(),
            )
            .ok()
        })
        .collect();
    if let Err(error) = registry.register(Box::new(StoreCollector { cache, descs })) {
        tracing::error!(%error, "cache metrics registration failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::StoreConfig;

    #[test]
    fn store_counters_render_with_conventional_names() {
        let registry = Registry::new();
        let cache = Arc::new(Cache::new(StoreConfig::with_budget(1 << 20)));
        register_store(&registry, Arc::clone(&cache));
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("sluice_cache_lookups_total{result=\"hit\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("sluice_cache_purges_total{kind=\"tag\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE sluice_cache_stored_bytes gauge"),
            "{text}"
        );
        assert!(text.contains("sluice_cache_stored_objects 0"), "{text}");
    }
}
