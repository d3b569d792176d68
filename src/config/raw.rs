//! The serde mirror of the TOML file: every key a user can write, with no meaning attached.
//!
//! Owns only the shape of the file (`deny_unknown_fields` everywhere, so a typo is an error, not
//! a silently ignored key). All parsing of values (addresses, durations, sizes) and every rule
//! that spans keys lives in `config/mod.rs` and `config/validate.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub headers: RawHeaders,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub monitoring: RawMonitoring,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub purge: RawPurge,
    #[serde(default)]
    pub pools: BTreeMap<String, RawPool>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// `[[listeners]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: Option<String>,
    pub addr: String,
    pub http2: Option<bool>,
    pub max_connections: Option<i64>,
    pub tls: Option<RawTls>,
    /// `"client"` (default) or `"cdn"`: a CDN-facing listener keeps the purge-tag headers.
    pub facing: Option<String>,
}

/// `[listeners.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
}

/// `[[listeners.tls.certificates]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: String,
    pub key: String,
    /// Server names this certificate answers for (SNI); empty means "the names in the
    /// certificate". `*.example.com` matches one label.
    #[serde(default)]
    pub names: Vec<String>,
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub addr: String,
}

/// `[timeouts]`: durations written as `"5s"`, `"250ms"`, `"2m"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<String>,
    pub request_header: Option<String>,
    pub upstream_response_header: Option<String>,
    pub idle: Option<String>,
    pub total: Option<String>,
    pub tls_handshake: Option<String>,
    pub shutdown_grace: Option<String>,
}

/// `[limits]`: sizes written as integers (bytes) or `"64KiB"`, `"10MiB"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_connections: Option<i64>,
    pub max_request_header_bytes: Option<RawSize>,
    pub max_headers: Option<i64>,
    pub max_request_body_bytes: Option<RawSize>,
}

/// A size: an integer number of bytes or a string with a unit.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

/// `[headers]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    pub forwarded: Option<bool>,
    pub x_forwarded: Option<bool>,
    pub via: Option<String>,
    pub preserve_host: Option<bool>,
    pub request_id: Option<bool>,
}

/// `[monitoring]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitoring {
    /// Sample process and host resources from /proc and evaluate alerts (default true).
    pub enabled: Option<bool>,
    /// Count and time every request by route (default true); off to measure what it costs.
    pub request_metrics: Option<bool>,
    pub sample_interval: Option<String>,
    pub alert_interval: Option<String>,
    /// The memory the process may use; the memory alert fires near it (default: none).
    pub memory_budget: Option<RawSize>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `"stdout"`, `"off"` or a file path.
    pub access: Option<String>,
}

/// `[pools.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    #[serde(default)]
    pub backends: Vec<RawBackend>,
    /// `"http"` (default) or `"https"`.
    pub scheme: Option<String>,
    /// `"h1"` (default) or `"h2"`.
    pub protocol: Option<String>,
    /// A PEM file of CA certificates to trust for `https` backends (default: none but the
    /// platform's... Sluice ships no bundle, so an https pool needs this).
    pub ca: Option<String>,
    /// The TLS server name to send and verify (default: the backend host).
    pub server_name: Option<String>,
    /// Load-balancing algorithm (default `"p2c_ewma"`).
    pub algorithm: Option<String>,
    /// What consistent hashing hashes: `"path"`, `"header:NAME"`, `"cookie:NAME"` or
    /// `"client_ip"` (default).
    pub hash_on: Option<String>,
    /// Bounded load of consistent hashing: a backend takes at most this many times its share.
    pub hash_load_factor: Option<f64>,
    /// Active health checks; none without this table.
    pub health: Option<RawHealth>,
    /// Passive outlier detection (on by default).
    pub outlier: Option<RawOutlier>,
    /// The ramp-up window of new and recovered backends (default: none).
    pub slow_start: Option<String>,
    pub retry_budget: Option<RawRetryBudget>,
    /// Response statuses retried on another backend (default: none, only connect failures).
    pub retry_on: Option<Vec<i64>>,
    /// Requests in flight to one backend at most (default: unlimited).
    pub max_connections_per_backend: Option<i64>,
    /// Requests in flight to the whole pool at most: the circuit breaker (default: unlimited).
    pub max_pending_requests: Option<i64>,
}

/// `[pools.NAME.health]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub jitter: Option<String>,
    pub timeout: Option<String>,
    /// `200`, or a range `"200-399"`.
    pub expected_status: Option<RawStatus>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
}

/// A status or a range of statuses.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawStatus {
    Code(i64),
    Range(String),
}

/// `[pools.NAME.outlier]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    pub enabled: Option<bool>,
    pub consecutive_5xx: Option<i64>,
    pub consecutive_connect_failures: Option<i64>,
    pub base_ejection: Option<String>,
    pub max_ejection: Option<String>,
    pub max_ejected_share: Option<f64>,
}

/// `[pools.NAME.retry_budget]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetryBudget {
    pub ratio: Option<f64>,
    pub min_per_second: Option<i64>,
}

/// `[[pools.NAME.backends]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub addr: String,
    pub weight: Option<i64>,
    /// Look the host name up again at its TTL (DNS discovery); default false.
    pub resolve: Option<bool>,
    /// Requests in flight to this backend at most (overrides the pool's
    /// `max_connections_per_backend`).
    pub max_connections: Option<i64>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub path_prefix: Option<String>,
    pub pool: String,
    /// Retry non-idempotent requests without a body too (default false).
    pub retryable: Option<bool>,
    /// `[routes.cache]`: caching on this route (off without the table).
    pub cache: Option<RawRouteCache>,
}

/// `[cache]`: the one store every caching route shares.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// The byte budget of the store: headers, bodies and metadata (default 256MiB).
    pub size: Option<RawSize>,
    /// Store shards (default: 4 per CPU, at least 16).
    pub shards: Option<i64>,
    /// How often expired entries are swept (default 1s).
    pub sweep_interval: Option<String>,
}

/// `[purge]`: who may purge.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurge {
    /// The bearer token for `POST /admin/purge` and `PURGE` (none: only `allow` may PURGE and
    /// the admin API refuses every purge).
    pub token: Option<String>,
    /// A file holding the token (its first line), instead of `token`.
    pub token_file: Option<String>,
    /// Client networks (CIDR) allowed to send `PURGE` on a data listener without a token.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// `[routes.cache]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCache {
    /// Cache on this route (default true once the table exists).
    pub enabled: Option<bool>,
    /// Freshness for storable responses whose origin gives none (default: none).
    pub default_ttl: Option<String>,
    /// Heuristic freshness from Last-Modified (default true).
    pub heuristic: Option<bool>,
    /// The cap on heuristic freshness (default 1d).
    pub heuristic_cap: Option<String>,
    pub max_object_size: Option<RawSize>,
    /// Methods whose responses are stored (default `["GET"]`).
    pub methods: Option<Vec<String>>,
    /// Statuses that may be stored (default: RFC 9111's).
    pub statuses: Option<Vec<i64>>,
    /// `"honour"` (default) or `"ignore"` a client's `Cache-Control: no-cache`.
    pub client_no_cache: Option<String>,
    /// `"skip"` (default) or `"store"` responses that set cookies.
    pub set_cookie: Option<String>,
    /// The most staleness ever served (default 1d).
    pub max_stale: Option<String>,
    /// How stale a response may be served while the origin is unreachable (default 60s; "0s"
    /// turns it off).
    pub stale_if_unreachable: Option<String>,
    /// How long an expired entry with a validator is kept for revalidation (default 1h).
    pub revalidation_window: Option<String>,
    /// How long a request waits for another's fetch of the same key (default 10s).
    pub coalesce_timeout: Option<String>,
    #[serde(default)]
    pub key: RawCacheKey,
}

/// `[routes.cache.key]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheKey {
    /// `"keep"` (default), `"ignore"` (the whole query) or a list of parameters to drop.
    pub query: Option<RawQuery>,
    /// Sort query parameters by name (default false).
    pub sort_query: Option<bool>,
    /// Request headers added to the key.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Cookies (by name) added to the key.
    #[serde(default)]
    pub cookies: Vec<String>,
}

/// `query = "keep" | "ignore" | ["utm_source", ...]`
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawQuery {
    Mode(String),
    Drop(Vec<String>),
}
