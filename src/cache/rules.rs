//! Per-route cache rules: what an operator may change about caching on one route.
//!
//! The config module builds a [`CacheRules`] per route from the TOML; the policy reads it. This
//! module holds only the types and their defaults, which follow RFC 9111 (nothing is cached
//! longer than the origin allows unless a rule says so).

use std::time::Duration;

use http::{Method, StatusCode};

use super::key::KeyRules;

/// The cache rules of one route.
#[derive(Clone, Debug)]
pub struct CacheRules {
    /// Freshness given to a storable response whose origin states none (no max-age, s-maxage,
    /// Expires). `None` (the default) leaves such responses to heuristic freshness.
    pub default_ttl: Option<Duration>,
    /// Heuristic freshness from Last-Modified (RFC 9111 4.2.2).
    pub heuristic: Heuristic,
    /// The largest body stored, in bytes; bigger responses stream through uncached.
    pub max_object_size: usize,
    /// Request methods whose responses are stored. HEAD is answered from a stored GET whatever
    /// this says.
    pub methods: Vec<Method>,
    /// Response statuses that may be stored.
    pub statuses: StatusRule,
    /// Whether a client's `Cache-Control: no-cache` forces revalidation.
    pub client_no_cache: ClientNoCache,
    /// Whether responses carrying Set-Cookie may be stored in this shared cache.
    pub set_cookie: SetCookie,
    /// The most staleness ever served, whatever stale-while-revalidate, stale-if-error or a
    /// client's max-stale allow.
    pub max_stale: Duration,
    /// How stale a response may be served when the origin cannot be reached (refused, reset,
    /// timed out) though it granted no stale-if-error: RFC 9111 4.2.4 lets a disconnected
    /// cache do so unless the response requires revalidation (must-revalidate,
    /// proxy-revalidate, no-cache, s-maxage). Zero turns it off; `max_stale` caps it.
    pub stale_if_unreachable: Duration,
    /// How long an expired entry that has a validator is kept so that it can be revalidated
    /// with a cheap 304 instead of fetched again.
    pub revalidation_window: Duration,
    /// How the cache key is built.
    pub key: KeyRules,
}

impl Default for CacheRules {
    fn default() -> Self {
        Self {
            default_ttl: None,
            heuristic: Heuristic::LastModified {
                cap: Duration::from_secs(24 * 3600),
            },
            max_object_size: 8 * 1024 * 1024,
            methods: vec![Method::GET],
            statuses: StatusRule::Rfc,
            client_no_cache: ClientNoCache::Honour,
            set_cookie: SetCookie::Skip,
            max_stale: Duration::from_secs(24 * 3600),
            stale_if_unreachable: Duration::from_secs(60),
            revalidation_window: Duration::from_secs(3600),
            key: KeyRules::default(),
        }
    }
}

/// Heuristic freshness (RFC 9111 4.2.2): a tenth of the time since Last-Modified, capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heuristic {
    LastModified { cap: Duration },
    Off,
}

/// Which statuses may be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusRule {
    /// RFC 9111 3: the heuristically cacheable statuses of RFC 9110 15.1, and any other final
    /// status whose response carries explicit freshness.
    Rfc,
    /// Exactly these statuses, and only with explicit freshness unless they are heuristically
    /// cacheable.
    Only(Vec<StatusCode>),
}

/// Whether a request's `no-cache` is obeyed (RFC 9111 5.2.1.4 lets a cache be configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientNoCache {
    Honour,
    Ignore,
}

/// Whether a response with Set-Cookie may be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCookie {
    Skip,
    Store,
}
