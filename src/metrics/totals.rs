//! Reads a registry gather back into plain cumulative figures, for the dashboard's JSON and
//! the alert evaluator, so neither needs its own plumbing into the request path.
//!
//! It owns the names it reads (they must match what `Metrics` and the cache and pool code
//! export) and the histogram quantile estimate; it does not compute rates (that needs two
//! readings: see `alerts.rs` and the dashboard page).

use std::collections::BTreeMap;

use prometheus::proto::{MetricFamily, MetricType};
use serde::Serialize;

/// `sluice_requests_total{route,status_class}`.
pub const REQUESTS: &str = "sluice_requests_total";
/// `sluice_request_duration_seconds{route}`, a histogram.
pub const REQUEST_DURATION: &str = "sluice_request_duration_seconds";
/// `sluice_upstream_errors_total{route,kind}`.
pub const UPSTREAM_ERRORS: &str = "sluice_upstream_errors_total";
/// `sluice_response_body_bytes_total{route}`.
pub const RESPONSE_BYTES: &str = "sluice_response_body_bytes_total";
/// `sluice_connections_active{listener,protocol}`.
pub const CONNECTIONS_ACTIVE: &str = "sluice_connections_active";
/// `sluice_connections_accepted_total{listener}`.
pub const CONNECTIONS_ACCEPTED: &str = "sluice_connections_accepted_total";
/// `sluice_config_generation`.
pub const CONFIG_GENERATION: &str = "sluice_config_generation";
/// `sluice_config_reloads_total{outcome}`.
pub const CONFIG_RELOADS: &str = "sluice_config_reloads_total";
/// `sluice_cache_requests_total{route,cache_status}`.
pub const CACHE_REQUESTS: &str = "sluice_cache_requests_total";
/// `sluice_backend_healthy{pool,backend}`, 1 or 0.
pub const BACKEND_HEALTHY: &str = "sluice_backend_healthy";

/// Cache statuses that count as a hit (a response served from the cache).
pub const CACHE_HIT_STATUSES: &[&str] = &["hit", "stale", "collapsed"];
/// The cache status of requests the cache was not asked about: left out of the ratio.
pub const CACHE_BYPASS_STATUS: &str = "bypass";

/// A histogram's cumulative buckets (finite bounds only; `count` is the `+Inf` bucket).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistogramTotals {
    pub bounds: Vec<f64>,
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl HistogramTotals {
    fn add(&mut self, bounds: &[f64], cumulative: &[u64], count: u64, sum: f64) {
        if self.bounds.is_empty() && self.count == 0 {
            self.bounds = bounds.to_vec();
            self.cumulative = vec![0; bounds.len()];
        }
        if self.bounds.as_slice() != bounds {
            return; // Different bucket layouts cannot be summed; all of Sluice's share one.
        }
        for (total, value) in self.cumulative.iter_mut().zip(cumulative) {
            *total = total.saturating_add(*value);
        }
        self.count = self.count.saturating_add(count);
        self.sum += sum;
    }

    /// What was observed between `earlier` and `self`; `None` if the layouts differ.
    pub fn since(&self, earlier: &HistogramTotals) -> Option<HistogramTotals> {
        if earlier.count == 0 {
            return Some(self.clone());
        }
        (self.bounds == earlier.bounds).then(|| HistogramTotals {
            bounds: self.bounds.clone(),
            cumulative: self
                .cumulative
                .iter()
                .zip(&earlier.cumulative)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum - earlier.sum,
        })
    }

    /// The `q` quantile, interpolated inside its bucket the way PromQL's
    /// `histogram_quantile` does; `None` with no observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let mut lower = (0.0, 0u64);
        for (bound, count) in self.bounds.iter().zip(&self.cumulative) {
            if *count as f64 >= rank {
                let in_bucket = count.saturating_sub(lower.1) as f64;
                if in_bucket == 0.0 {
                    return Some(*bound);
                }
                let fraction = (rank - lower.1 as f64) / in_bucket;
                return Some(lower.0 + (bound - lower.0) * fraction);
            }
            lower = (*bound, *count);
        }
        // In the +Inf bucket: the highest finite bound is all that is known.
        self.bounds.last().copied()
    }
}

/// One route's requests by status class and its latency histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteTotals {
    pub by_status_class: BTreeMap<String, u64>,
    pub latency: HistogramTotals,
}

impl RouteTotals {
    /// Every request answered.
    pub fn requests(&self) -> u64 {
        self.by_status_class.values().sum()
    }

    /// Requests answered with a 5xx.
    pub fn server_errors(&self) -> u64 {
        self.by_status_class.get("5xx").copied().unwrap_or(0)
    }
}

/// One backend's health as the pool code reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendHealth {
    pub pool: String,
    pub backend: String,
    pub healthy: bool,
}

/// Everything the dashboard and the alerts read from the registry, cumulative since start.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RegistryTotals {
    pub routes: BTreeMap<String, RouteTotals>,
    pub upstream_errors: BTreeMap<String, u64>,
    pub response_bytes: u64,
    pub connections_active: BTreeMap<String, i64>,
    pub connections_accepted: BTreeMap<String, u64>,
    pub config_generation: Option<i64>,
    pub config_reloads: BTreeMap<String, u64>,
    /// By cache status, summed over routes; empty until the cache exports its metric.
    pub cache: BTreeMap<String, u64>,
    pub backends: Vec<BackendHealth>,
}

fn label<'a>(metric: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    metric
        .get_label()
        .iter()
        .find(|pair| pair.name() == name)
        .map_or("", |pair| pair.value())
}

fn counter(metric: &prometheus::proto::Metric, kind: MetricType) -> f64 {
    match kind {
        MetricType::GAUGE => metric.get_gauge().get_value(),
        _ => metric.get_counter().get_value(),
    }
}

fn add_to(map: &mut BTreeMap<String, u64>, key: &str, value: f64) {
    let entry = map.entry(key.to_string()).or_default();
    *entry = entry.saturating_add(value as u64);
}

impl RegistryTotals {
    /// Gathers `registry` and reads it.
    pub fn gather(registry: &prometheus::Registry) -> RegistryTotals {
        RegistryTotals::from_families(&registry.gather())
    }

    /// Reads already gathered families; names it does not know are ignored.
    pub fn from_families(families: &[MetricFamily]) -> RegistryTotals {
        let mut totals = RegistryTotals::default();
        for family in families {
            let kind = family.get_field_type();
            for metric in family.get_metric() {
                let value = counter(metric, kind);
                match family.name() {
                    REQUESTS => {
                        let route = totals
                            .routes
                            .entry(label(metric, "route").into())
                            .or_default();
                        add_to(
                            &mut route.by_status_class,
                            label(metric, "status_class"),
                            value,
                        );
                    }
                    REQUEST_DURATION => {
                        let histogram = metric.get_histogram();
                        let (bounds, cumulative): (Vec<f64>, Vec<u64>) = histogram
                            .get_bucket()
                            .iter()
                            .filter(|b| b.upper_bound().is_finite())
                            .map(|b| (b.upper_bound(), b.cumulative_count()))
                            .unzip();
                        let route = totals
                            .routes
                            .entry(label(metric, "route").into())
                            .or_default();
                        route.latency.add(
                            &bounds,
                            &cumulative,
                            histogram.get_sample_count(),
                            histogram.get_sample_sum(),
                        );
                    }
                    UPSTREAM_ERRORS => {
                        add_to(&mut totals.upstream_errors, label(metric, "kind"), value)
                    }
                    RESPONSE_BYTES => {
                        totals.response_bytes = totals.response_bytes.saturating_add(value as u64)
                    }
                    CONNECTIONS_ACTIVE => {
                        *totals
                            .connections_active
                            .entry(label(metric, "listener").into())
                            .or_default() += value as i64;
                    }
                    CONNECTIONS_ACCEPTED => add_to(
                        &mut totals.connections_accepted,
                        label(metric, "listener"),
                        value,
                    ),
                    CONFIG_GENERATION => totals.config_generation = Some(value as i64),
                    CONFIG_RELOADS => {
                        add_to(&mut totals.config_reloads, label(metric, "outcome"), value)
                    }
                    CACHE_REQUESTS => {
                        add_to(&mut totals.cache, label(metric, "cache_status"), value)
                    }
                    BACKEND_HEALTHY => totals.backends.push(BackendHealth {
                        pool: label(metric, "pool").into(),
                        backend: label(metric, "backend").into(),
                        healthy: value > 0.0,
                    }),
                    _ => {}
                }
            }
        }
        totals
    }

    /// All requests, summed over routes.
    pub fn requests(&self) -> u64 {
        self.routes.values().map(RouteTotals::requests).sum()
    }

    /// Requests answered from the cache (fresh or stale).
    pub fn cache_hits(&self) -> u64 {
        CACHE_HIT_STATUSES
            .iter()
            .filter_map(|status| self.cache.get(*status))
            .sum()
    }

    /// Requests the cache was asked about: everything but bypasses.
    pub fn cache_lookups(&self) -> u64 {
        self.cache
            .iter()
            .filter(|(status, _)| status.as_str() != CACHE_BYPASS_STATUS)
            .map(|(_, count)| count)
            .sum()
    }

    /// The latency histogram summed over routes.
    pub fn latency(&self) -> HistogramTotals {
        let mut sum = HistogramTotals::default();
        for route in self.routes.values() {
            let l = &route.latency;
            sum.add(&l.bounds, &l.cumulative, l.count, l.sum);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn histogram(bounds: &[f64], cumulative: &[u64], count: u64) -> HistogramTotals {
        HistogramTotals {
            bounds: bounds.to_vec(),
            cumulative: cumulative.to_vec(),
            count,
            sum: 0.0,
        }
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_promql() {
        // 100 observations: 50 under 0.1 s, 40 in (0.1, 0.5], 10 in (0.5, 1].
        let h = histogram(&[0.1, 0.5, 1.0], &[50, 90, 100], 100);
        assert!((h.quantile(0.5).unwrap() - 0.1).abs() < 1e-9);
        assert!((h.quantile(0.7).unwrap() - 0.3).abs() < 1e-9);
        assert!((h.quantile(0.99).unwrap() - 0.95).abs() < 1e-9);
        assert_eq!(histogram(&[0.1], &[0], 0).quantile(0.99), None);
        // Everything above the last bound: the last bound is reported.
        assert_eq!(histogram(&[0.1, 0.5], &[0, 0], 5).quantile(0.5), Some(0.5));
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let then = histogram(&[0.1, 1.0], &[10, 10], 10);
        let now = histogram(&[0.1, 1.0], &[10, 20], 20);
        let window = now.since(&then).unwrap();
        assert_eq!(window.cumulative, vec![0, 10]);
        assert_eq!(window.count, 10);
        assert!(window.quantile(0.5).unwrap() > 0.1);
    }

    #[test]
    fn the_lead_metrics_read_back_by_route_and_class() {
        let metrics = Metrics::new().unwrap();
        let route = metrics.route("api");
        route.observe(200, 0.002, 100);
        route.observe(200, 0.2, 100);
        route.observe(503, 0.002, 10);
        metrics.route("static").observe(404, 0.001, 5);
        metrics.reloaded(crate::metrics::ReloadOutcome::Success, 2);
        metrics
            .listener("main")
            .active(crate::metrics::ConnectionProtocol::Http1)
            .set(3);
        let totals = RegistryTotals::gather(metrics.registry());
        let api = totals.routes.get("api").unwrap();
        assert_eq!(api.requests(), 3);
        assert_eq!(api.server_errors(), 1);
        assert_eq!(api.latency.count, 3);
        assert_eq!(totals.requests(), 4);
        assert_eq!(totals.latency().count, 4);
        assert_eq!(totals.response_bytes, 215);
        assert_eq!(totals.config_generation, Some(2));
        assert_eq!(totals.config_reloads.get("success"), Some(&1));
        assert_eq!(totals.connections_active.get("main"), Some(&3));
        assert!(totals.backends.is_empty() && totals.cache.is_empty());
    }

    #[test]
    fn cache_and_backend_metrics_are_read_when_present() {
        let registry = prometheus::Registry::new();
        let cache = prometheus::IntCounterVec::new(
            prometheus::Opts::new(CACHE_REQUESTS, "c"),
            &["route", "cache_status"],
        )
        .unwrap();
        let healthy = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(BACKEND_HEALTHY, "h"),
            &["pool", "backend"],
        )
        .unwrap();
        registry.register(Box::new(cache.clone())).unwrap();
        registry.register(Box::new(healthy.clone())).unwrap();
        cache.with_label_values(&["a", "hit"]).inc_by(6);
        cache.with_label_values(&["b", "stale"]).inc_by(2);
        cache.with_label_values(&["a", "miss"]).inc_by(2);
        cache.with_label_values(&["a", "bypass"]).inc_by(50);
        healthy.with_label_values(&["web", "10.0.0.1:80"]).set(1);
        healthy.with_label_values(&["web", "10.0.0.2:80"]).set(0);
        let totals = RegistryTotals::gather(&registry);
        assert_eq!(totals.cache_hits(), 8);
        assert_eq!(totals.cache_lookups(), 10);
        assert_eq!(totals.backends.iter().filter(|b| b.healthy).count(), 1);
    }
}
