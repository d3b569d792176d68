//! `RawConfig` -> `Config`: every rule that gives a key its meaning, collecting all problems.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use toml_edit::Document;

use super::locate::{line_of, path_at, span_of};
use super::raw::{RawConfig, RawSize};
use super::units::{parse_duration, parse_size};
use super::*;

/// Collects problems, each with the key path it is about; lines are found at the end.
pub(super) struct Problems<'a> {
    file: &'a str,
    source: &'a str,
    document: Option<Document<&'a str>>,
    found: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        let line = self
            .document
            .as_ref()
            .and_then(|d| span_of(d, &key))
            .map(|span| line_of(self.source, span.start));
        self.found.push(Problem {
            file: self.file.to_string(),
            line,
            key,
            message: message.into(),
        });
    }
}

pub(super) fn parse(source: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
    let document = match Document::parse(source) {
        Ok(document) => document,
        Err(error) => {
            let line = error.span().map(|s| line_of(source, s.start));
            return Err(ConfigError::Invalid(vec![Problem {
                file: file.to_string(),
                line,
                key: "(syntax)".to_string(),
                message: error.message().to_string(),
            }]));
        }
    };
    let raw: RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(error) => {
            let offset = error.span().map(|s| s.start);
            let line = offset.map(|o| line_of(source, o));
            let key = offset
                .and_then(|o| path_at(&document, o))
                .unwrap_or_else(|| "(top level)".to_string());
            return Err(ConfigError::Invalid(vec![Problem {
                file: file.to_string(),
                line,
                key,
                message: error.message().trim().to_string(),
            }]));
        }
    };
    let mut problems = Problems {
        file,
        source,
        document: Some(document),
        found: Vec::new(),
    };
    let config = build(raw, base, &mut problems);
    if problems.found.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(problems.found))
    }
}

pub(super) fn duration(
    problems: &mut Problems<'_>,
    key: &str,
    raw: &Option<String>,
    default: Duration,
) -> Duration {
    match raw {
        None => default,
        Some(text) => match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                problems.add(key, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(message) => {
                problems.add(key, message);
                default
            }
        },
    }
}

/// A duration where zero (any unit, or a bare `0`) and `"off"` turn a feature off.
pub(super) fn duration_or_off(
    problems: &mut Problems<'_>,
    key: &str,
    raw: &Option<String>,
    default: Duration,
) -> Duration {
    match raw.as_deref().map(str::trim) {
        None => default,
        Some("off" | "0") => Duration::ZERO,
        Some(text) => parse_duration(text).unwrap_or_else(|message| {
            problems.add(key, message);
            default
        }),
    }
}

pub(super) fn size(
    problems: &mut Problems<'_>,
    key: &str,
    raw: &Option<RawSize>,
    default: u64,
) -> u64 {
    let parsed = match raw {
        None => return default,
        Some(RawSize::Bytes(n)) => u64::try_from(*n).map_err(|_| format!("{n} is negative")),
        Some(RawSize::Text(text)) => parse_size(text),
    };
    match parsed {
        Ok(0) => {
            problems.add(key, "must be greater than zero");
            default
        }
        Ok(n) => n,
        Err(message) => {
            problems.add(key, message);
            default
        }
    }
}

pub(super) fn count(
    problems: &mut Problems<'_>,
    key: &str,
    raw: Option<i64>,
    default: usize,
) -> usize {
    match raw {
        None => default,
        Some(n) => match usize::try_from(n) {
            Ok(n) if n > 0 => n,
            _ => {
                problems.add(key, format!("{n} must be a positive whole number"));
                default
            }
        },
    }
}

fn socket_addr(problems: &mut Problems<'_>, key: &str, text: &str) -> Option<SocketAddr> {
    match text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            let message = if text.parse::<std::net::IpAddr>().is_ok() {
                format!("{text:?} is missing a port")
            } else {
                format!("{text:?} is not an address such as \"127.0.0.1:8080\" or \"[::1]:8080\"")
            };
            problems.add(key, message);
            None
        }
    }
}

/// A backend address: `ip:port` or `host:port`.
fn backend_addr(problems: &mut Problems<'_>, key: &str, text: &str) {
    if text.parse::<SocketAddr>().is_ok() {
        return;
    }
    if text.parse::<std::net::IpAddr>().is_ok() {
        problems.add(key, format!("{text:?} is missing a port"));
        return;
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            let valid = host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if !valid {
                problems.add(key, format!("{host:?} is not a valid host name"));
            }
        }
        Some((_, port)) if !port.is_empty() => {
            problems.add(key, format!("{text:?} has an invalid port {port:?}"))
        }
        _ => problems.add(key, format!("{text:?} is missing a port")),
    }
}

fn host_pattern(problems: &mut Problems<'_>, key: &str, text: &str) -> Option<HostPattern> {
    let lower = text.trim().to_ascii_lowercase();
    if lower == "*" {
        return Some(HostPattern::Any);
    }
    let (pattern, name) = match lower.strip_prefix("*.") {
        Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest.to_string()),
        None => (HostPattern::Exact(lower.clone()), lower.clone()),
    };
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Some(pattern)
    } else {
        problems.add(
            key,
            format!("{text:?} is not a host pattern (\"example.com\", \"*.example.com\" or \"*\")"),
        );
        None
    }
}

fn build(raw: RawConfig, base: &Path, problems: &mut Problems<'_>) -> Config {
    let defaults = Timeouts::default();
    let t = &raw.timeouts;
    let timeouts = Timeouts {
        connect: duration(problems, "timeouts.connect", &t.connect, defaults.connect),
        request_header: duration(
            problems,
            "timeouts.request_header",
            &t.request_header,
            defaults.request_header,
        ),
        upstream_response_header: duration(
            problems,
            "timeouts.upstream_response_header",
            &t.upstream_response_header,
            defaults.upstream_response_header,
        ),
        idle: duration(problems, "timeouts.idle", &t.idle, defaults.idle),
        total: duration(problems, "timeouts.total", &t.total, defaults.total),
        tls_handshake: duration(
            problems,
            "timeouts.tls_handshake",
            &t.tls_handshake,
            defaults.tls_handshake,
        ),
        shutdown_grace: duration(
            problems,
            "timeouts.shutdown_grace",
            &t.shutdown_grace,
            defaults.shutdown_grace,
        ),
    };

    let default_limits = Limits::default();
    let l = &raw.limits;
    let max_connections = count(
        problems,
        "limits.max_connections",
        l.max_connections,
        default_limits.max_connections.get(),
    );
    let limits = Limits {
        max_connections: NonZeroUsize::new(max_connections)
            .unwrap_or(default_limits.max_connections),
        max_request_header_bytes: usize::try_from(size(
            problems,
            "limits.max_request_header_bytes",
            &l.max_request_header_bytes,
            default_limits.max_request_header_bytes as u64,
        ))
        .unwrap_or(default_limits.max_request_header_bytes),
        max_headers: count(
            problems,
            "limits.max_headers",
            l.max_headers,
            default_limits.max_headers,
        ),
        max_request_body_bytes: size(
            problems,
            "limits.max_request_body_bytes",
            &l.max_request_body_bytes,
            default_limits.max_request_body_bytes,
        ),
    };
    if limits.max_request_header_bytes < Limits::MIN_READ_BUFFER {
        problems.add(
            "limits.max_request_header_bytes",
            "must be at least 8KiB (hyper's minimum read buffer)",
        );
    }

    let mut listeners = Vec::new();
    let mut listener_names = HashSet::new();
    if raw.listeners.is_empty() {
        problems.add("listeners", "at least one [[listeners]] entry is needed");
    }
    for (i, listener) in raw.listeners.iter().enumerate() {
        let prefix = format!("listeners[{i}]");
        let name = listener
            .name
            .clone()
            .unwrap_or_else(|| format!("listener{i}"));
        if !listener_names.insert(name.clone()) {
            problems.add(
                format!("{prefix}.name"),
                format!("{name:?} is used by another listener"),
            );
        }
        let addr = socket_addr(problems, &format!("{prefix}.addr"), &listener.addr);
        let max_connections = count(
            problems,
            &format!("{prefix}.max_connections"),
            listener.max_connections,
            limits.max_connections.get(),
        );
        let tls = listener.tls.as_ref().map(|tls| {
            if tls.certificates.is_empty() {
                problems.add(
                    format!("{prefix}.tls.certificates"),
                    "TLS needs at least one certificate",
                );
            }
            let certificates = tls
                .certificates
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let key = format!("{prefix}.tls.certificates[{j}]");
                    let cert = base.join(&c.cert);
                    let private_key = base.join(&c.key);
                    if !cert.is_file() {
                        problems.add(
                            format!("{key}.cert"),
                            format!("{} does not exist", cert.display()),
                        );
                    }
                    if !private_key.is_file() {
                        problems.add(
                            format!("{key}.key"),
                            format!("{} does not exist", private_key.display()),
                        );
                    }
                    for (n, name) in c.names.iter().enumerate() {
                        host_pattern(problems, &format!("{key}.names[{n}]"), name);
                    }
                    CertificateConfig {
                        cert,
                        key: private_key,
                        names: c.names.iter().map(|n| n.to_ascii_lowercase()).collect(),
                    }
                })
                .collect();
            TlsConfig { certificates }
        });
        if let Some(addr) = addr {
            listeners.push(ListenerConfig {
                name,
                addr,
                http2: listener.http2.unwrap_or(true),
                max_connections: NonZeroUsize::new(max_connections)
                    .unwrap_or(limits.max_connections),
                tls,
                facing: super::cache::facing(problems, &prefix, listener.facing.as_deref()),
            });
        }
    }

    let admin = raw
        .admin
        .as_ref()
        .and_then(|a| socket_addr(problems, "admin.addr", &a.addr));

    let header_defaults = HeaderPolicy::default();
    let headers = HeaderPolicy {
        forwarded: raw.headers.forwarded.unwrap_or(header_defaults.forwarded),
        x_forwarded: raw
            .headers
            .x_forwarded
            .unwrap_or(header_defaults.x_forwarded),
        via: raw.headers.via.clone().unwrap_or(header_defaults.via),
        preserve_host: raw
            .headers
            .preserve_host
            .unwrap_or(header_defaults.preserve_host),
        request_id: raw.headers.request_id.unwrap_or(header_defaults.request_id),
    };
    if headers.via.is_empty() || !headers.via.chars().all(|c| c.is_ascii_graphic()) {
        problems.add("headers.via", "must be a non-empty token without spaces");
    }

    let access_log = match raw.log.access.as_deref() {
        None | Some("stdout") => AccessLog::Stdout,
        Some("off") => AccessLog::Off,
        Some("") => {
            problems.add("log.access", "must be \"stdout\", \"off\" or a file path");
            AccessLog::Off
        }
        Some(path) => AccessLog::File(base.join(path)),
    };

    let monitoring_defaults = Monitoring::default();
    let m = &raw.monitoring;
    let monitoring = Monitoring {
        enabled: m.enabled.unwrap_or(monitoring_defaults.enabled),
        request_metrics: m
            .request_metrics
            .unwrap_or(monitoring_defaults.request_metrics),
        sample_interval: duration(
            problems,
            "monitoring.sample_interval",
            &m.sample_interval,
            monitoring_defaults.sample_interval,
        ),
        alert_interval: duration(
            problems,
            "monitoring.alert_interval",
            &m.alert_interval,
            monitoring_defaults.alert_interval,
        ),
        memory_budget: m
            .memory_budget
            .as_ref()
            .map(|_| size(problems, "monitoring.memory_budget", &m.memory_budget, 0)),
    };

    let mut pools = Vec::new();
    for (name, pool) in &raw.pools {
        let prefix = format!("pools.{name}");
        let scheme = match pool.scheme.as_deref() {
            None | Some("http") => UpstreamScheme::Http,
            Some("https") => UpstreamScheme::Https,
            Some(other) => {
                problems.add(
                    format!("{prefix}.scheme"),
                    format!("{other:?} is not \"http\" or \"https\""),
                );
                UpstreamScheme::Http
            }
        };
        let protocol = match pool.protocol.as_deref() {
            None | Some("h1") => UpstreamProtocol::Http1,
            Some("h2") => UpstreamProtocol::Http2,
            Some(other) => {
                problems.add(
                    format!("{prefix}.protocol"),
                    format!("{other:?} is not \"h1\" or \"h2\""),
                );
                UpstreamProtocol::Http1
            }
        };
        let balance = super::pool::balance(problems, &prefix, pool);
        let ca = pool.ca.as_ref().map(|c| base.join(c));
        if let Some(ca) = &ca
            && !ca.is_file()
        {
            problems.add(
                format!("{prefix}.ca"),
                format!("{} does not exist", ca.display()),
            );
        }
        if scheme == UpstreamScheme::Https && ca.is_none() {
            problems.add(
                format!("{prefix}.ca"),
                "an https pool needs a CA file to verify its backends",
            );
        }
        let mut backends = Vec::new();
        let mut seen = HashSet::new();
        for (i, backend) in pool.backends.iter().enumerate() {
            let key = format!("{prefix}.backends[{i}]");
            backend_addr(problems, &format!("{key}.addr"), &backend.addr);
            if !seen.insert(backend.addr.clone()) {
                problems.add(
                    format!("{key}.addr"),
                    format!("{:?} is listed twice", backend.addr),
                );
            }
            let weight = match backend.weight {
                None => 1,
                Some(w) => match u32::try_from(w) {
                    Ok(w) if w > 0 => w,
                    _ => {
                        problems.add(
                            format!("{key}.weight"),
                            format!("{w} must be between 1 and {}", u32::MAX),
                        );
                        1
                    }
                },
            };
            let resolve = backend.resolve.unwrap_or(false);
            if resolve && backend.addr.parse::<SocketAddr>().is_ok() {
                problems.add(
                    format!("{key}.resolve"),
                    "needs a host name to look up, not an address",
                );
            }
            let max_connections = super::pool::limit(
                problems,
                &format!("{key}.max_connections"),
                backend.max_connections,
            );
            backends.push(BackendConfig {
                addr: backend.addr.clone(),
                weight,
                resolve,
                max_connections,
            });
        }
        pools.push(PoolConfig {
            name: name.clone(),
            backends,
            scheme,
            protocol,
            ca,
            server_name: pool.server_name.clone(),
            balance,
        });
    }

    let mut routes = Vec::new();
    let mut route_names = HashSet::new();
    if raw.routes.is_empty() {
        problems.add("routes", "at least one [[routes]] entry is needed");
    }
    for (i, route) in raw.routes.iter().enumerate() {
        let prefix = format!("routes[{i}]");
        let name = route.name.clone().unwrap_or_else(|| format!("route{i}"));
        if !route_names.insert(name.clone()) {
            problems.add(
                format!("{prefix}.name"),
                format!("{name:?} is used by another route"),
            );
        }
        let hosts = if route.hosts.is_empty() {
            vec![HostPattern::Any]
        } else {
            route
                .hosts
                .iter()
                .enumerate()
                .filter_map(|(h, host)| {
                    host_pattern(problems, &format!("{prefix}.hosts[{h}]"), host)
                })
                .collect()
        };
        let path_prefix = route.path_prefix.clone().unwrap_or_else(|| "/".to_string());
        if !path_prefix.starts_with('/') {
            problems.add(
                format!("{prefix}.path_prefix"),
                format!("{path_prefix:?} must start with \"/\""),
            );
        }
        if !raw.pools.contains_key(&route.pool) {
            problems.add(
                format!("{prefix}.pool"),
                format!("no pool is called {:?}", route.pool),
            );
        }
        let cache = route
            .cache
            .as_ref()
            .and_then(|c| super::cache::route_cache(problems, &format!("{prefix}.cache"), c));
        routes.push(RouteConfig {
            name,
            hosts,
            path_prefix,
            pool: route.pool.clone(),
            cache,
            retryable: route.retryable.unwrap_or(false),
        });
    }

    let cache = super::cache::store(problems, &raw.cache);
    let purge = super::cache::purge(problems, &raw.purge, base);

    Config {
        listeners,
        admin,
        timeouts,
        limits,
        headers,
        access_log,
        monitoring,
        cache,
        purge,
        pools,
        routes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(source: &str) -> Result<Config, ConfigError> {
        parse(source, "test.toml", Path::new("."))
    }

    const VALID: &str = r#"
[[listeners]]
addr = "127.0.0.1:8080"

[pools.api]
backends = [{ addr = "127.0.0.1:9000", weight = 2 }, { addr = "app.internal:9001" }]

[[routes]]
hosts = ["*.example.com", "api.test"]
path_prefix = "/api"
pool = "api"
"#;

    #[test]
    fn a_valid_file_gives_parsed_values_and_defaults() {
        let config = parse_text(VALID).unwrap();
        assert_eq!(config.listeners[0].addr, "127.0.0.1:8080".parse().unwrap());
        assert!(config.listeners[0].http2);
        assert_eq!(config.pools[0].backends[0].weight, 2);
        assert_eq!(config.pools[0].backends[1].weight, 1);
        assert_eq!(
            config.routes[0].hosts,
            vec![
                HostPattern::Suffix(".example.com".into()),
                HostPattern::Exact("api.test".into())
            ]
        );
        assert_eq!(config.timeouts.connect, Duration::from_secs(5));
    }

    #[test]
    fn request_metrics_are_on_by_default_and_can_be_turned_off() {
        assert!(parse_text(VALID).unwrap().monitoring.request_metrics);
        let off = format!("{VALID}\n[monitoring]\nrequest_metrics = false\n");
        let config = parse_text(&off).unwrap();
        assert!(!config.monitoring.request_metrics);
        assert!(config.monitoring.enabled, "the sampler has its own switch");
    }

    #[test]
    fn a_backend_without_a_port_is_named_with_file_line_and_key() {
        let source = VALID.replace("127.0.0.1:9000", "10.0.0.1");
        let error = parse_text(&source).unwrap_err();
        assert_eq!(
            error.problems(),
            vec!["test.toml:6: pools.api.backends[0].addr: \"10.0.0.1\" is missing a port"]
        );
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let source = format!("{VALID}\n[timeouts]\nconnect = \"5 parsecs\"\nidle = \"0s\"\n")
            .replace("pool = \"api\"", "pool = \"missing\"");
        let problems = parse_text(&source).unwrap_err().problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains(":14: timeouts.connect:")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains(":15: timeouts.idle:")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains(":11: routes[0].pool: no pool is called")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_with_its_line() {
        let source = VALID.replace("path_prefix", "path_prefx");
        let problems = parse_text(&source).unwrap_err().problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("test.toml:10: routes[0].path_prefx: unknown field"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let source = VALID.replace("pool = \"api\"", "pool = ");
        let problems = parse_text(&source).unwrap_err().problems();
        assert!(problems[0].starts_with("test.toml:11:"), "{problems:?}");
    }

    #[test]
    fn a_bad_host_pattern_is_refused() {
        let source = VALID.replace("api.test", "api test");
        let problems = parse_text(&source).unwrap_err().problems();
        assert!(problems[0].contains("routes[0].hosts[1]"), "{problems:?}");
    }
}
