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
    /// Load-balancing algorithm (default `"round_robin"` until the pool issue lands).
    pub algorithm: Option<String>,
}

/// `[[pools.NAME.backends]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub addr: String,
    pub weight: Option<i64>,
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
}
