//! Whether a stored response may answer a request now (RFC 9111 4, 4.2.4, 5.2.1; RFC 5861).
//!
//! Pure: [`evaluate`] takes the stored entry, the request's directives, the route's rules and
//! `now`, and says hit, stale (with what may be done with it) or miss. The store finds the
//! entry; `Cache::lookup` glues the two.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use super::directives::{MaxStale, RequestDirectives};
use super::entry::{Entry, PurgeState};
use super::freshness::{Revalidate, StaleRule};
use super::rules::{CacheRules, ClientNoCache};

/// The result of a cache lookup.
#[derive(Debug)]
pub enum Lookup {
    /// Serve the stored response now.
    Hit(Hit),
    /// A stored response exists but may not be served as is: see [`Stale::serve`].
    Stale(Stale),
    /// Nothing usable is stored.
    Miss(MissKind),
}

/// A usable stored response.
#[derive(Debug)]
pub struct Hit {
    pub entry: Arc<Entry>,
    /// The `Age` to send (RFC 9111 5.1).
    pub age: Duration,
    /// Remaining freshness in seconds (Cache-Status `ttl`), negative when served stale with
    /// the client's max-stale permission.
    pub ttl: i64,
}

/// A stored response that needs the origin.
#[derive(Debug)]
pub struct Stale {
    pub entry: Arc<Entry>,
    pub age: Duration,
    pub ttl: i64,
    pub reason: StaleReason,
    pub serve: ServeStale,
}

/// Why a stored response may not be served without the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleReason {
    /// Past its freshness lifetime.
    Expired,
    /// Marked stale by a soft purge.
    SoftPurged,
    /// The response said `no-cache`: every reuse is revalidated (RFC 9111 5.2.2.4).
    ResponseNoCache,
    /// The request said `no-cache` (RFC 9111 5.2.1.4).
    RequestNoCache,
    /// Older than the request's `max-age` (RFC 9111 5.2.1.1).
    RequestMaxAge,
    /// Fresh for less than the request's `min-fresh` (RFC 9111 5.2.1.3).
    RequestMinFresh,
}

/// What may be done with a stale response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeStale {
    /// stale-while-revalidate (RFC 5861 3): serve it now and refresh in the background (one
    /// refresh per key: take the coalescing leadership with `Cache::try_lead`).
    WhileRevalidating,
    /// Revalidate first (a conditional request when the entry has a validator); the entry may
    /// still answer if the origin fails and [`stale_on_error`] allows.
    AfterRevalidation,
}

/// Why nothing usable was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissKind {
    /// Nothing stored for the URL (Cache-Status `fwd=uri-miss`).
    UriMiss,
    /// Responses stored for the URL, none for this request's Vary values (`fwd=vary-miss`).
    VaryMiss,
    /// The request said only-if-cached and nothing could be served: answer 504 without
    /// contacting the origin (RFC 9111 5.2.1.7).
    OnlyIfCached,
}

impl Lookup {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Hit(_) => "hit",
            Self::Stale(stale) => match stale.serve {
                ServeStale::WhileRevalidating => "stale-while-revalidate",
                ServeStale::AfterRevalidation => "stale",
            },
            Self::Miss(kind) => kind.as_str(),
        }
    }
}

impl MissKind {
    /// The metric label (and the Cache-Status `fwd` token for the first two).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::OnlyIfCached => "only-if-cached",
        }
    }
}

impl StaleReason {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::SoftPurged => "soft-purged",
            Self::ResponseNoCache => "response-no-cache",
            Self::RequestNoCache => "request-no-cache",
            Self::RequestMaxAge => "request-max-age",
            Self::RequestMinFresh => "request-min-fresh",
        }
    }

    /// Whether the request (not the response's age) forced the origin: Cache-Status
    /// `fwd=request` rather than `fwd=stale` (RFC 9211 2.2).
    pub fn forced_by_request(&self) -> bool {
        matches!(
            self,
            Self::RequestNoCache | Self::RequestMaxAge | Self::RequestMinFresh
        )
    }
}

/// RFC 9111 4.2 and 5.2.1: can `entry` answer a request with `directives` at `now`?
pub(crate) fn evaluate(
    entry: Arc<Entry>,
    directives: &RequestDirectives,
    rules: &CacheRules,
    now: SystemTime,
) -> Lookup {
    let freshness = *entry.freshness();
    let age = freshness.current_age(now);
    let ttl = freshness.ttl_seconds(now);
    let stale = |reason, serve| {
        Lookup::Stale(Stale {
            entry: Arc::clone(&entry),
            age,
            ttl,
            reason,
            serve,
        })
    };
    if entry.purge_state() == PurgeState::SoftPurged {
        return stale(StaleReason::SoftPurged, ServeStale::AfterRevalidation);
    }
    if directives.no_cache && rules.client_no_cache == ClientNoCache::Honour {
        return stale(StaleReason::RequestNoCache, ServeStale::AfterRevalidation);
    }
    if freshness.revalidate == Revalidate::Always {
        return stale(StaleReason::ResponseNoCache, ServeStale::AfterRevalidation);
    }
    if directives
        .max_age
        .is_some_and(|max_age| age > Duration::from_secs(max_age))
    {
        return stale(StaleReason::RequestMaxAge, ServeStale::AfterRevalidation);
    }
    if freshness.is_fresh(now) {
        let remaining = freshness.lifetime.saturating_sub(age);
        if directives
            .min_fresh
            .is_some_and(|min_fresh| remaining < Duration::from_secs(min_fresh))
        {
            return stale(StaleReason::RequestMinFresh, ServeStale::AfterRevalidation);
        }
        return Lookup::Hit(Hit { entry, age, ttl });
    }
    let staleness = freshness.staleness(now);
    // RFC 9111 5.2.1.2: the client accepts this much staleness, unless the response forbids.
    let client_allows = freshness.stale == StaleRule::Allowed
        && staleness <= rules.max_stale
        && match directives.max_stale {
            Some(MaxStale::Any) => true,
            Some(MaxStale::Seconds(limit)) => staleness <= Duration::from_secs(limit),
            None => false,
        };
    if client_allows {
        return Lookup::Hit(Hit { entry, age, ttl });
    }
    let revalidate_window = freshness.stale_while_revalidate.min(rules.max_stale);
    if freshness.stale != StaleRule::Never && staleness <= revalidate_window {
        return stale(StaleReason::Expired, ServeStale::WhileRevalidating);
    }
    stale(StaleReason::Expired, ServeStale::AfterRevalidation)
}

/// RFC 9111 5.2.1.7: with only-if-cached, anything that would need the origin is a 504.
pub(crate) fn only_if_cached(lookup: Lookup) -> Lookup {
    match lookup {
        Lookup::Hit(_) => lookup,
        Lookup::Stale(ref stale) if stale.serve == ServeStale::WhileRevalidating => lookup,
        Lookup::Stale(_) | Lookup::Miss(_) => Lookup::Miss(MissKind::OnlyIfCached),
    }
}

/// How the origin failed, for stale-if-error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The origin answered with this status.
    Status(StatusCode),
    /// No answer: connect error, reset, timeout.
    Unreachable,
}

/// Whether to serve a stale entry instead of an upstream failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Serve the stored response (Cache-Status `fwd=stale; fwd-status=...`).
    ServeStale,
    /// Pass the failure on.
    PassError,
}

/// RFC 5861 4 (stale-if-error, from the response or the request) at `now`, capped by the
/// route's `max_stale`. Errors are 500, 502, 503, 504 and no answer at all; with no answer at
/// all the route's `stale_if_unreachable` applies too (RFC 9111 4.2.4), unless the response
/// requires revalidation.
pub fn stale_on_error(
    entry: &Entry,
    request: &HeaderMap,
    failure: UpstreamFailure,
    rules: &CacheRules,
    now: SystemTime,
) -> OnError {
    let is_error = match failure {
        UpstreamFailure::Unreachable => true,
        UpstreamFailure::Status(status) => matches!(status.as_u16(), 500 | 502 | 503 | 504),
    };
    let freshness = entry.freshness();
    if !is_error || freshness.stale == StaleRule::Never {
        return OnError::PassError;
    }
    let requested = RequestDirectives::parse(request)
        .stale_if_error
        .map_or(Duration::ZERO, Duration::from_secs);
    let granted = freshness.stale_if_error.max(requested).min(rules.max_stale);
    let window = if failure == UpstreamFailure::Unreachable {
        granted.max(super::policy::unreachable_grace(freshness, rules))
    } else {
        granted
    };
    if window > Duration::ZERO && freshness.staleness(now) <= window {
        OnError::ServeStale
    } else {
        OnError::PassError
    }
}
