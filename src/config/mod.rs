//! Configuration: the validated `Config` the rest of Sluice sees, and how it is loaded.
//!
//! A file goes through two stages: `raw.rs` mirrors the TOML with serde (unknown keys are
//! errors), then `validate.rs` turns it into `Config`, collecting *every* problem with its file,
//! line and key instead of stopping at the first. This module knows nothing of sockets; the
//! listeners and the pipeline take what they need from `Config`.

mod cache;
pub mod locate;
mod pool;
pub mod raw;
pub mod route;
mod units;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cache::{CacheStoreConfig, Facing, PurgeConfig, RouteCache};
pub use pool::PoolBalance;
pub use units::{parse_duration, parse_size};

/// A validated configuration. Built only by [`Config::load`], [`Config::parse`] or code that
/// fills every field itself (`sluice proxy`).
#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    pub admin: Option<SocketAddr>,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub headers: HeaderPolicy,
    pub access_log: AccessLog,
    pub monitoring: Monitoring,
    /// The cache store (used only when a route caches).
    pub cache: CacheStoreConfig,
    /// Who may purge.
    pub purge: PurgeConfig,
    pub pools: Vec<PoolConfig>,
    pub routes: Vec<RouteConfig>,
}

/// One data listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub name: String,
    pub addr: SocketAddr,
    pub http2: bool,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: NonZeroUsize,
    pub tls: Option<TlsConfig>,
    /// Who the listener answers: a CDN keeps the purge-tag headers.
    pub facing: Facing,
}

/// TLS on a listener: one or more certificates, chosen by SNI.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub certificates: Vec<CertificateConfig>,
}

/// One certificate and key pair on disk.
#[derive(Debug, Clone)]
pub struct CertificateConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Explicit SNI names; empty means the names in the certificate.
    pub names: Vec<String>,
}

/// Every timeout, all required to be non-zero.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP (and TLS) connect to a backend.
    pub connect: Duration,
    /// Reading a client's request head (slowloris guard).
    pub request_header: Duration,
    /// From sending a request upstream to receiving the response head.
    pub upstream_response_header: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle: Duration,
    /// The whole exchange: from the request head to the last byte of the response.
    pub total: Duration,
    /// The TLS handshake with a client.
    pub tls_handshake: Duration,
    /// On SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request_header: Duration::from_secs(10),
            upstream_response_header: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(300),
            tls_handshake: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Limits on what one client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: NonZeroUsize,
    pub max_request_header_bytes: usize,
    pub max_headers: usize,
    pub max_request_body_bytes: u64,
}

impl Limits {
    /// The smallest HTTP/1 read buffer the listeners give hyper (room for a request line and a
    /// few headers). The buffer is `max(max_request_header_bytes, this)`, so with a header
    /// limit at least this large the buffer itself enforces it.
    pub const MIN_READ_BUFFER: usize = 8192;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            max_request_header_bytes: 64 * 1024,
            max_headers: 100,
            max_request_body_bytes: 1 << 30,
        }
    }
}

/// How request and response headers are rewritten.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    /// Add an RFC 7239 `Forwarded` header.
    pub forwarded: bool,
    /// Add `X-Forwarded-For`, `-Proto` and `-Host`.
    pub x_forwarded: bool,
    /// The pseudonym in `Via`.
    pub via: String,
    /// Send the client's Host upstream (otherwise the backend address).
    pub preserve_host: bool,
    /// Keep or generate `X-Request-Id`.
    pub request_id: bool,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        Self {
            forwarded: false,
            x_forwarded: true,
            via: "sluice".to_string(),
            preserve_host: true,
            request_id: true,
        }
    }
}

/// Resource sampling and built-in alerting.
#[derive(Debug, Clone, Copy)]
pub struct Monitoring {
    /// The resource sampler and the alert evaluator run.
    pub enabled: bool,
    /// Requests are counted and timed by route (`sluice_requests_total`, the duration
    /// histograms, bytes, retries). Off: those stay absent; connection, error, reload and
    /// resource metrics are still kept.
    pub request_metrics: bool,
    pub sample_interval: Duration,
    pub alert_interval: Duration,
    pub memory_budget: Option<u64>,
}

impl Default for Monitoring {
    fn default() -> Self {
        Self {
            enabled: true,
            request_metrics: true,
            sample_interval: Duration::from_secs(5),
            alert_interval: Duration::from_secs(10),
            memory_budget: None,
        }
    }
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Stdout,
    File(PathBuf),
}

/// How a pool talks to its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamScheme {
    Http,
    Https,
}

/// The HTTP version spoken to backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    Http2,
}

/// A named set of backends.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub name: String,
    pub backends: Vec<BackendConfig>,
    pub scheme: UpstreamScheme,
    pub protocol: UpstreamProtocol,
    pub ca: Option<PathBuf>,
    pub server_name: Option<String>,
    /// Algorithm, health checks, outlier detection, slow start, retries and limits.
    pub balance: PoolBalance,
}

/// One backend address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// `host:port` as written; a host name is resolved when the pool is built.
    pub addr: String,
    pub weight: u32,
    /// The host name is looked up again at its TTL and the pool follows its addresses.
    pub resolve: bool,
    /// Requests in flight to this backend (each of its addresses) at most.
    pub max_connections: Option<std::num::NonZeroU64>,
}

/// A host pattern of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Any host.
    Any,
    /// Exactly this host (lower case, no port).
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (stored with the leading dot).
    Suffix(String),
}

/// A route: host patterns and a path prefix mapped to a pool.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    pub path_prefix: String,
    pub pool: String,
    /// Caching on this route; `None` passes everything through.
    pub cache: Option<RouteCache>,
    /// Non-idempotent requests without a body may be retried too. A request whose body has
    /// been sent is never retried.
    pub retryable: bool,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}: {}", self.file, line, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

fn display_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl ConfigError {
    /// Every problem, one per line, as `sluice check` prints them.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Read { .. } => vec![self.to_string()],
            ConfigError::Invalid(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a file. Relative paths inside it (certificates, CA files)
    /// are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&source, &path.display().to_string(), base)
    }

    /// Parses and validates TOML text; `file` names it in errors, `base` resolves relative
    /// paths.
    pub fn parse(source: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        validate::parse(source, file, base)
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// The configuration `sluice proxy --listen ADDR --to ADDR.. [--admin ADDR]` stands for: one
/// listener (HTTP/1.1 and h2c), one pool of the given backends, one catch-all route, and the
/// safe defaults for everything else.
pub fn one_line(
    listen: SocketAddr,
    to: &[String],
    admin: Option<SocketAddr>,
    access_log: &str,
    cache: Option<&str>,
) -> Result<Config, ConfigError> {
    let mut source = String::new();
    if let Some(size) = cache {
        source.push_str(&format!("[cache]\nsize = {}\n\n", toml_string(size)));
    }
    source.push_str(&format!(
        "[[listeners]]\nname = \"main\"\naddr = \"{listen}\"\n\n"
    ));
    if let Some(admin) = admin {
        source.push_str(&format!("[admin]\naddr = \"{admin}\"\n\n"));
    }
    source.push_str(&format!("[log]\naccess = {}\n\n", toml_string(access_log)));
    source.push_str("[pools.main]\n");
    for backend in to {
        source.push_str(&format!(
            "[[pools.main.backends]]\naddr = {}\n",
            toml_string(backend)
        ));
    }
    source.push_str("\n[[routes]]\nname = \"main\"\npool = \"main\"\n");
    if cache.is_some() {
        source.push_str("[routes.cache]\n");
    }
    Config::parse(&source, "(command line)", Path::new("."))
}

fn toml_string(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec![],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}
