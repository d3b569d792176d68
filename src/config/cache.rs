//! The cache and purge parts of the configuration: `[cache]`, `[purge]`, `[routes.cache]` and
//! a listener's `facing`, validated into the types the pipeline and the admin API read.
//!
//! Owns only the meaning of those keys. The cache rules themselves (`CacheRules`) are the cache
//! library's type; this module fills them in from the file.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method, StatusCode};
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use super::raw::{RawCache, RawCacheKey, RawPurge, RawQuery, RawRouteCache};
use super::validate::{Problems, count, duration, duration_or_off, size};
pub use crate::cache::Facing;
use crate::cache::{
    CacheRules, ClientNoCache, Heuristic, KeyRules, QueryOrder, QueryParams, SetCookie, StatusRule,
};

/// `[cache]`: the one store shared by every caching route. Its size is fixed at start; a
/// reload that changes it is reported as needing a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStoreConfig {
    /// The byte budget: headers, bodies and metadata.
    pub size: usize,
    /// Store shards; `None` chooses from the CPU count.
    pub shards: Option<usize>,
    /// How often expired entries are swept.
    pub sweep_interval: Duration,
}

impl Default for CacheStoreConfig {
    fn default() -> Self {
        Self {
            size: 256 * 1024 * 1024,
            shards: None,
            sweep_interval: Duration::from_secs(1),
        }
    }
}

/// `[purge]`: the bearer token and the networks allowed to send `PURGE`.
#[derive(Clone, Default)]
pub struct PurgeConfig {
    token: Option<String>,
    /// Client networks allowed to send `PURGE` without a token.
    pub allow: Vec<IpNet>,
}

impl std::fmt::Debug for PurgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PurgeConfig")
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("allow", &self.allow)
            .finish()
    }
}

impl PurgeConfig {
    /// A config with this token and no allowed networks (for `sluice proxy` and tests).
    pub fn with_token(token: Option<String>) -> Self {
        Self {
            token,
            allow: Vec::new(),
        }
    }

    /// Whether a token is configured at all.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether an `Authorization` value carries the configured bearer token, compared in
    /// constant time (the length may leak, the content does not).
    pub fn authorises(&self, authorization: Option<&http::HeaderValue>) -> bool {
        let (Some(token), Some(value)) = (self.token.as_deref(), authorization) else {
            return false;
        };
        let presented = value.as_bytes();
        let Some(presented) = presented
            .strip_prefix(b"Bearer ")
            .or_else(|| presented.strip_prefix(b"bearer "))
        else {
            return false;
        };
        bool::from(presented.trim_ascii().ct_eq(token.as_bytes()))
    }

    /// Whether a client at `peer` may send `PURGE` without a token.
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&peer))
    }
}

/// `[routes.cache]`: the route's cache rules and how long a request waits for a coalesced
/// fetch.
#[derive(Debug, Clone)]
pub struct RouteCache {
    pub rules: CacheRules,
    pub coalesce_timeout: Duration,
}

pub(super) fn facing(problems: &mut Problems<'_>, prefix: &str, raw: Option<&str>) -> Facing {
    match raw {
        None | Some("client") => Facing::Client,
        Some("cdn") => Facing::Cdn,
        Some(other) => {
            problems.add(
                format!("{prefix}.facing"),
                format!("{other:?} is not \"client\" or \"cdn\""),
            );
            Facing::Client
        }
    }
}

pub(super) fn store(problems: &mut Problems<'_>, raw: &RawCache) -> CacheStoreConfig {
    let defaults = CacheStoreConfig::default();
    let size = size(problems, "cache.size", &raw.size, defaults.size as u64);
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    CacheStoreConfig {
        size,
        shards: raw
            .shards
            .map(|_| count(problems, "cache.shards", raw.shards, 16)),
        sweep_interval: duration(
            problems,
            "cache.sweep_interval",
            &raw.sweep_interval,
            defaults.sweep_interval,
        ),
    }
}

pub(super) fn purge(problems: &mut Problems<'_>, raw: &RawPurge, base: &Path) -> PurgeConfig {
    let token = match (&raw.token, &raw.token_file) {
        (Some(_), Some(_)) => {
            problems.add("purge.token_file", "set token or token_file, not both");
            None
        }
        (Some(token), None) => Some(token.trim().to_string()),
        (None, Some(file)) => {
            let path = base.join(file);
            match std::fs::read_to_string(&path) {
                Ok(text) => text.lines().next().map(|line| line.trim().to_string()),
                Err(error) => {
                    problems.add(
                        "purge.token_file",
                        format!("{} cannot be read: {error}", path.display()),
                    );
                    None
                }
            }
        }
        (None, None) => None,
    };
    if let Some(token) = &token
        && token.len() < 16
    {
        let key = if raw.token.is_some() {
            "purge.token"
        } else {
            "purge.token_file"
        };
        problems.add(key, "the token must be at least 16 characters");
    }
    let allow = raw
        .allow
        .iter()
        .enumerate()
        .filter_map(|(i, text)| match parse_net(text) {
            Ok(net) => Some(net),
            Err(()) => {
                problems.add(
                    format!("purge.allow[{i}]"),
                    format!("{text:?} is not an address or CIDR network"),
                );
                None
            }
        })
        .collect();
    PurgeConfig { token, allow }
}

fn parse_net(text: &str) -> Result<IpNet, ()> {
    if let Ok(net) = IpNet::from_str(text) {
        return Ok(net);
    }
    IpAddr::from_str(text).map(IpNet::from).map_err(|_| ())
}

pub(super) fn route_cache(
    problems: &mut Problems<'_>,
    prefix: &str,
    raw: &RawRouteCache,
) -> Option<RouteCache> {
    if raw.enabled == Some(false) {
        return None;
    }
    let defaults = CacheRules::default();
    let key = |name: &str| format!("{prefix}.{name}");
    let default_ttl = raw.default_ttl.as_ref().map(|_| {
        duration(
            problems,
            &key("default_ttl"),
            &raw.default_ttl,
            Duration::ZERO,
        )
    });
    let heuristic = match raw.heuristic {
        Some(false) => Heuristic::Off,
        _ => Heuristic::LastModified {
            cap: duration(
                problems,
                &key("heuristic_cap"),
                &raw.heuristic_cap,
                Duration::from_secs(24 * 3600),
            ),
        },
    };
    let max_object_size = size(
        problems,
        &key("max_object_size"),
        &raw.max_object_size,
        defaults.max_object_size as u64,
    );
    let methods = match &raw.methods {
        None => defaults.methods.clone(),
        Some(methods) => methods
            .iter()
            .enumerate()
            .filter_map(|(i, name)| match name.to_ascii_uppercase().as_str() {
                "GET" => Some(Method::GET),
                "POST" => Some(Method::POST),
                _ => {
                    problems.add(
                        format!("{prefix}.methods[{i}]"),
                        format!("{name:?} cannot be cached (GET or POST)"),
                    );
                    None
                }
            })
            .collect(),
    };
    let statuses = match &raw.statuses {
        None => StatusRule::Rfc,
        Some(list) => StatusRule::Only(
            list.iter()
                .enumerate()
                .filter_map(|(i, code)| {
                    match u16::try_from(*code)
                        .ok()
                        .and_then(|c| StatusCode::from_u16(c).ok())
                    {
                        Some(status) if status.as_u16() >= 200 => Some(status),
                        _ => {
                            problems.add(
                                format!("{prefix}.statuses[{i}]"),
                                format!("{code} is not a final HTTP status"),
                            );
                            None
                        }
                    }
                })
                .collect(),
        ),
    };
    let client_no_cache = match raw.client_no_cache.as_deref() {
        None | Some("honour") | Some("honor") => ClientNoCache::Honour,
        Some("ignore") => ClientNoCache::Ignore,
        Some(other) => {
            problems.add(
                key("client_no_cache"),
                format!("{other:?} is not \"honour\" or \"ignore\""),
            );
            ClientNoCache::Honour
        }
    };
    let set_cookie = match raw.set_cookie.as_deref() {
        None | Some("skip") => SetCookie::Skip,
        Some("store") => SetCookie::Store,
        Some(other) => {
            problems.add(
                key("set_cookie"),
                format!("{other:?} is not \"skip\" or \"store\""),
            );
            SetCookie::Skip
        }
    };
    let rules = CacheRules {
        default_ttl,
        heuristic,
        max_object_size: usize::try_from(max_object_size).unwrap_or(usize::MAX),
        methods,
        statuses,
        client_no_cache,
        set_cookie,
        max_stale: duration(
            problems,
            &key("max_stale"),
            &raw.max_stale,
            defaults.max_stale,
        ),
        stale_if_unreachable: duration_or_off(
            problems,
            &key("stale_if_unreachable"),
            &raw.stale_if_unreachable,
            defaults.stale_if_unreachable,
        ),
        revalidation_window: duration(
            problems,
            &key("revalidation_window"),
            &raw.revalidation_window,
            defaults.revalidation_window,
        ),
        key: key_rules(problems, &key("key"), &raw.key),
    };
    Some(RouteCache {
        rules,
        coalesce_timeout: duration(
            problems,
            &key("coalesce_timeout"),
            &raw.coalesce_timeout,
            Duration::from_secs(10),
        ),
    })
}

fn key_rules(problems: &mut Problems<'_>, prefix: &str, raw: &RawCacheKey) -> KeyRules {
    let query = match &raw.query {
        None => QueryParams::Keep,
        Some(RawQuery::Mode(mode)) => match mode.as_str() {
            "keep" => QueryParams::Keep,
            "ignore" => QueryParams::IgnoreAll,
            other => {
                problems.add(
                    format!("{prefix}.query"),
                    format!("{other:?} is not \"keep\", \"ignore\" or a list of parameters"),
                );
                QueryParams::Keep
            }
        },
        Some(RawQuery::Drop(names)) => QueryParams::Ignore(names.clone()),
    };
    let headers = raw
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, name)| match HeaderName::from_str(name) {
            Ok(name) => Some(name),
            Err(_) => {
                problems.add(
                    format!("{prefix}.headers[{i}]"),
                    format!("{name:?} is not a header name"),
                );
                None
            }
        })
        .collect();
    KeyRules {
        query,
        order: if raw.sort_query == Some(true) {
            QueryOrder::Sorted
        } else {
            QueryOrder::AsSent
        },
        headers,
        cookies: raw.cookies.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> PurgeConfig {
        PurgeConfig::with_token(Some(text.to_string()))
    }

    #[test]
    fn a_bearer_token_is_accepted_only_when_it_matches() {
        let config = token("0123456789abcdef");
        let good = http::HeaderValue::from_static("Bearer 0123456789abcdef");
        let bad = http::HeaderValue::from_static("Bearer 0123456789abcdeX");
        let basic = http::HeaderValue::from_static("Basic 0123456789abcdef");
        assert!(config.authorises(Some(&good)));
        assert!(!config.authorises(Some(&bad)));
        assert!(!config.authorises(Some(&basic)));
        assert!(!config.authorises(None));
        assert!(!PurgeConfig::default().authorises(Some(&good)));
    }

    #[test]
    fn allowed_networks_match_v4_mapped_v6_peers() {
        let config = PurgeConfig {
            token: None,
            allow: vec![parse_net("10.0.0.0/8").unwrap(), parse_net("::1").unwrap()],
        };
        assert!(config.allows("10.1.2.3".parse().unwrap()));
        assert!(config.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(config.allows("::1".parse().unwrap()));
        assert!(!config.allows("192.168.0.1".parse().unwrap()));
    }

    const BASE: &str = "[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[pools.p]\nbackends = [{ addr = \"127.0.0.1:1\" }]\n\n[[routes]]\npool = \"p\"\n";

    fn problems(extra: &str) -> Vec<String> {
        super::super::Config::parse(&format!("{BASE}{extra}"), "t.toml", Path::new("."))
            .err()
            .map(|error| error.problems())
            .unwrap_or_default()
    }

    #[test]
    fn route_cache_keys_are_validated_with_file_line_and_key() {
        let found = problems(
            "[routes.cache]\nclient_no_cache = \"sometimes\"\nstatuses = [200, 99]\nmethods = [\"DELETE\"]\n\n[routes.cache.key]\nquery = \"drop\"\n",
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("t.toml:10: routes[0].cache.client_no_cache")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("routes[0].cache.statuses[1]")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("routes[0].cache.methods[0]")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("routes[0].cache.key.query")),
            "{found:?}"
        );
    }

    #[test]
    fn a_short_purge_token_and_a_bad_network_are_refused() {
        let found = problems("[purge]\ntoken = \"short\"\nallow = [\"10.0.0.0/33\"]\n");
        assert!(
            found
                .iter()
                .any(|p| p.contains("purge.token: the token must be at least 16")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("purge.allow[0]")),
            "{found:?}"
        );
    }

    #[test]
    fn stale_if_unreachable_takes_a_duration_and_zero_or_off_turns_it_off() {
        let parsed = |value: &str| {
            let text = format!("{BASE}[routes.cache]\nstale_if_unreachable = \"{value}\"\n");
            let config = super::super::Config::parse(&text, "t.toml", Path::new(".")).unwrap();
            config.routes[0]
                .cache
                .as_ref()
                .unwrap()
                .rules
                .stale_if_unreachable
        };
        for off in ["0s", "0ms", "0", "off"] {
            assert_eq!(parsed(off), Duration::ZERO, "{off}");
        }
        assert_eq!(parsed("5m"), Duration::from_secs(300));
        let found = problems("[routes.cache]\nstale_if_unreachable = \"soon\"\n");
        assert!(
            found
                .iter()
                .any(|p| p.contains("routes[0].cache.stale_if_unreachable")),
            "{found:?}"
        );
    }

    #[test]
    fn a_route_cache_table_turns_caching_on_with_rfc_defaults() {
        let config = super::super::Config::parse(
            &format!("{BASE}[routes.cache]\ndefault_ttl = \"30s\"\n\n[routes.cache.key]\nquery = [\"utm_source\"]\nsort_query = true\n"),
            "t.toml",
            Path::new("."),
        )
        .unwrap();
        let cache = config.routes[0].cache.as_ref().unwrap();
        assert_eq!(cache.rules.default_ttl, Some(Duration::from_secs(30)));
        assert_eq!(cache.rules.statuses, StatusRule::Rfc);
        assert_eq!(cache.rules.key.order, QueryOrder::Sorted);
        assert_eq!(
            cache.rules.key.query,
            QueryParams::Ignore(vec!["utm_source".into()])
        );
        assert_eq!(config.cache, CacheStoreConfig::default());
    }
}
