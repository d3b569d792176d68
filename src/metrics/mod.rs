//! Metrics: one Prometheus registry and typed handles, declared here and nowhere else.
//!
//! Owns every metric name and label set. The pipeline gets pre-resolved handles per route
//! ([`RouteMetrics`]) when a snapshot is built, so a request never looks a label up in a map.
//! It does not own the access log's format (see `access_log.rs`), only its plumbing.

pub mod access_log;
pub mod alerts;
pub mod backend_metrics;
pub mod cache_metrics;
pub mod connections;
pub mod procfs;
mod resource_metrics;
pub mod resources;
pub mod totals;

use std::sync::Arc;

pub use connections::{ConnectionProtocol, ListenerMetrics};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Status classes used as a label: bounded, unlike raw status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl StatusClass {
    /// The class of a status code.
    pub fn of(status: u16) -> StatusClass {
        match status {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }

    const ALL: [StatusClass; 5] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Latency buckets in seconds: 0.5 ms to 30 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric Sluice exports, with one registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    upstream_retries: IntCounterVec,
    response_bytes: IntCounterVec,
    connections_accepted: IntCounterVec,
    connections_active: IntGaugeVec,
    tls_handshakes: IntCounterVec,
    tls_handshake_errors: IntCounterVec,
    config_generation: IntGauge,
    config_reloads: IntCounterVec,
    access_log_dropped: IntCounter,
    cache_requests: IntCounterVec,
    backends: backend_metrics::BackendFamilies,
}

/// Handles for one route, resolved once per snapshot, or nothing when per-request metrics are
/// off (`[monitoring] request_metrics = false`). One `Arc`, so the clone each request takes is
/// one reference count, not one per handle.
#[derive(Clone)]
pub struct RouteMetrics(Option<Arc<RouteHandles>>);

struct RouteHandles {
    requests: [IntCounter; 5],
    duration: Histogram,
    upstream_duration: Histogram,
    response_bytes: IntCounter,
    retries: IntCounter,
}

impl RouteMetrics {
    /// Handles that record nothing: per-request metrics are off.
    pub fn disabled() -> RouteMetrics {
        RouteMetrics(None)
    }

    /// Records one finished request.
    pub fn observe(&self, status: u16, seconds: f64, bytes: u64) {
        let Some(handles) = &self.0 else { return };
        if let Some(counter) = handles.requests.get(StatusClass::of(status).index()) {
            counter.inc();
        }
        handles.duration.observe(seconds);
        handles.response_bytes.inc_by(bytes);
    }

    /// Counts a retry on another backend.
    pub fn retried(&self) {
        if let Some(handles) = &self.0 {
            handles.retries.inc();
        }
    }

    /// Records the time to an upstream response head.
    pub fn observe_upstream(&self, seconds: f64) {
        if let Some(handles) = &self.0 {
            handles.upstream_duration.observe(seconds);
        }
    }
}

/// Errors talking to a backend, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Protocol,
}

impl UpstreamErrorKind {
    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Protocol => "protocol",
        }
    }
}

/// Outcome of a configuration reload, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    Success,
    Failure,
}

impl ReloadOutcome {
    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReloadOutcome::Success => "success",
            ReloadOutcome::Failure => "failure",
        }
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Registration fails only on a duplicate name, which is a bug in this module and is caught
    // by the test below; a metric that is not registered still counts, it is just not exported.
    if let Err(error) = registry.register(Box::new(metric.clone())) {
        tracing::error!(%error, "metric registration failed");
    }
    metric
}

impl Metrics {
    /// Builds the registry and every metric.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_requests_total",
                    "Requests answered, by route and status class.",
                ),
                &["route", "status_class"],
            )?,
        );
        let request_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "sluice_request_duration_seconds",
                    "Time from the request head to the last byte of the response.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["route"],
            )?,
        );
        let upstream_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "sluice_upstream_response_duration_seconds",
                    "Time from sending a request upstream to its response head.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["route"],
            )?,
        );
        let upstream_errors = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_upstream_errors_total",
                    "Failed upstream exchanges, by kind.",
                ),
                &["route", "kind"],
            )?,
        );
        let upstream_retries = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_upstream_retries_total",
                    "Requests retried on another backend.",
                ),
                &["route"],
            )?,
        );
        let response_bytes = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_response_body_bytes_total",
                    "Response body bytes sent to clients.",
                ),
                &["route"],
            )?,
        );
        let connections_accepted = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_connections_accepted_total",
                    "Client connections accepted.",
                ),
                &["listener"],
            )?,
        );
        let connections_active = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "sluice_connections_active",
                    "Client connections open now, by listener and protocol (h1, h2, or \
                     pending: in the TLS handshake or before its first request).",
                ),
                &["listener", "protocol"],
            )?,
        );
        let tls_handshakes = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_tls_handshakes_total",
                    "TLS handshakes with clients begun (completed or failed).",
                ),
                &["listener"],
            )?,
        );
        let tls_handshake_errors = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_tls_handshake_errors_total",
                    "Failed TLS handshakes with clients.",
                ),
                &["listener"],
            )?,
        );
        let config_generation = register(
            &registry,
            IntGauge::new(
                "sluice_config_generation",
                "Generation of the live configuration.",
            )?,
        );
        let config_reloads = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sluice_config_reloads_total",
                    "Configuration reloads, by outcome.",
                ),
                &["outcome"],
            )?,
        );
        let access_log_dropped = register(
            &registry,
            IntCounter::new(
                "sluice_access_log_dropped_total",
                "Access log lines dropped because the writer fell behind.",
            )?,
        );
        let cache_requests = register(&registry, cache_metrics::requests_counter()?);
        // Both outcomes exist from the start, so increase() sees the first failure.
        for outcome in [ReloadOutcome::Success, ReloadOutcome::Failure] {
            config_reloads.with_label_values(&[outcome.as_str()]);
        }
        let backends = backend_metrics::BackendFamilies::new(&registry)?;
        Ok(Metrics {
            backends,
            registry,
            requests,
            request_duration,
            upstream_duration,
            upstream_errors,
            upstream_retries,
            response_bytes,
            connections_accepted,
            connections_active,
            tls_handshakes,
            tls_handshake_errors,
            config_generation,
            config_reloads,
            access_log_dropped,
            cache_requests,
        })
    }

    /// Cache outcome counters for the caching route called `route`.
    pub fn route_cache(&self, route: &str) -> cache_metrics::RouteCacheMetrics {
        cache_metrics::route_handles(&self.cache_requests, route)
    }

    /// Handles for the route called `route`.
    pub fn route(&self, route: &str) -> RouteMetrics {
        let requests =
            StatusClass::ALL.map(|class| self.requests.with_label_values(&[route, class.as_str()]));
        RouteMetrics(Some(Arc::new(RouteHandles {
            requests,
            duration: self.request_duration.with_label_values(&[route]),
            upstream_duration: self.upstream_duration.with_label_values(&[route]),
            response_bytes: self.response_bytes.with_label_values(&[route]),
            retries: self.upstream_retries.with_label_values(&[route]),
        })))
    }

    /// Handles for pool `pool` and its backends, by address, in pool order.
    pub fn pool(&self, pool: &str, backends: Vec<String>) -> backend_metrics::PoolMetrics {
        self.backends.pool(pool, backends)
    }

    /// Sets a backend's in-flight and healthy gauges (at scrape time, from its live state).
    pub fn set_backend_state(&self, pool: &str, backend: &str, in_flight: u64, healthy: bool) {
        self.backends.set_state(pool, backend, in_flight, healthy);
    }

    /// Forgets the series of a backend that left its pool.
    pub fn remove_backend(&self, pool: &str, backend: &str) {
        self.backends.remove(pool, backend);
    }

    /// Handles for the listener called `listener` (every protocol's gauge exists from the
    /// start, at 0).
    pub fn listener(&self, listener: &str) -> ListenerMetrics {
        let active = ConnectionProtocol::ALL.map(|protocol| {
            self.connections_active
                .with_label_values(&[listener, protocol.as_str()])
        });
        ListenerMetrics {
            accepted: self.connections_accepted.with_label_values(&[listener]),
            active,
            tls_handshakes: self.tls_handshakes.with_label_values(&[listener]),
            tls_errors: self.tls_handshake_errors.with_label_values(&[listener]),
        }
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, route: &str, kind: UpstreamErrorKind) {
        self.upstream_errors
            .with_label_values(&[route, kind.as_str()])
            .inc();
    }

    /// Records a reload and, on success, the new generation.
    pub fn reloaded(&self, outcome: ReloadOutcome, generation: u64) {
        self.config_reloads
            .with_label_values(&[outcome.as_str()])
            .inc();
        if outcome == ReloadOutcome::Success {
            self.config_generation
                .set(i64::try_from(generation).unwrap_or(i64::MAX));
        }
    }

    /// Records the live generation after a change that is not a file reload (admin, DNS).
    pub fn set_generation(&self, generation: u64) {
        self.config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// The counter of dropped access log lines.
    pub fn access_log_dropped(&self) -> IntCounter {
        self.access_log_dropped.clone()
    }

    /// The registry, for code that adds its own collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%error, "metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders() {
        let metrics = Metrics::new().unwrap();
        let route = metrics.route("api");
        route.observe(503, 0.01, 10);
        metrics.listener("main").accepted.inc();
        metrics.upstream_error("api", UpstreamErrorKind::Connect);
        metrics.reloaded(ReloadOutcome::Success, 3);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains("sluice_requests_total{route=\"api\",status_class=\"5xx\"} 1"));
        assert!(text.contains("sluice_config_generation 3"));
        assert!(text.contains("sluice_connections_accepted_total{listener=\"main\"} 1"));
    }

    #[test]
    fn status_classes_cover_every_code() {
        assert_eq!(StatusClass::of(101).as_str(), "1xx");
        assert_eq!(StatusClass::of(204).as_str(), "2xx");
        assert_eq!(StatusClass::of(304).as_str(), "3xx");
        assert_eq!(StatusClass::of(431).as_str(), "4xx");
        assert_eq!(StatusClass::of(599).as_str(), "5xx");
    }
}
