//! Freshness: how long a stored response may be used (RFC 9111 4.2) and how old it is now.
//!
//! Computed once when a response is stored (and again when a 304 refreshes it) into a
//! [`Freshness`] kept beside the entry, so a lookup only adds the resident time. Pure: every
//! time comes in as a parameter.

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use super::directives::{DirectiveSource, FieldScope, ResponseDirectives, delta};
use super::rules::{CacheRules, Heuristic};

/// Where a response's freshness lifetime came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifetimeSource {
    SMaxAge,
    MaxAge,
    Expires,
    DefaultTtl,
    Heuristic,
    /// Nothing: the response is stale as soon as it is stored.
    None,
}

/// When a stored response may be served stale (RFC 9111 4.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleRule {
    /// Any permission: a client's max-stale, stale-while-revalidate, stale-if-error.
    Allowed,
    /// Only the origin's own stale-while-revalidate and stale-if-error: `s-maxage` carries
    /// proxy-revalidate semantics (RFC 9111 5.2.2.10), which Sluice reads as forbidding a
    /// client's max-stale while still honouring the origin's explicit RFC 5861 grants.
    ExplicitOnly,
    /// Never: no-cache, must-revalidate or proxy-revalidate (RFC 9111 5.2.2.2, 5.2.2.4, 5.2.2.8).
    Never,
}

/// Whether every reuse needs revalidation (response `no-cache`, RFC 9111 5.2.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revalidate {
    WhenStale,
    Always,
}

/// The freshness facts of one stored response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub lifetime: Duration,
    pub source: LifetimeSource,
    /// `corrected_initial_age` of RFC 9111 4.2.3.
    pub initial_age: Duration,
    pub response_time: SystemTime,
    pub stale: StaleRule,
    pub revalidate: Revalidate,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

impl Freshness {
    /// The freshness of a response received at `response_time` for a request sent at
    /// `request_time`.
    pub(crate) fn compute(
        directives: &ResponseDirectives,
        status: StatusCode,
        headers: &HeaderMap,
        rules: &CacheRules,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        let (lifetime, source) = lifetime(directives, status, headers, rules, response_time);
        let stale = if directives.no_cache == FieldScope::All
            || directives.must_revalidate
            || directives.proxy_revalidate
        {
            StaleRule::Never
        } else if directives.s_maxage.is_some() {
            StaleRule::ExplicitOnly
        } else {
            StaleRule::Allowed
        };
        let revalidate = if directives.no_cache == FieldScope::All {
            Revalidate::Always
        } else {
            Revalidate::WhenStale
        };
        Self {
            lifetime,
            source,
            initial_age: initial_age(headers, request_time, response_time),
            response_time,
            stale,
            revalidate,
            stale_while_revalidate: secs(directives.stale_while_revalidate),
            stale_if_error: secs(directives.stale_if_error),
        }
    }

    /// `current_age` of RFC 9111 4.2.3: the initial age plus the time resident here.
    pub fn current_age(&self, now: SystemTime) -> Duration {
        let resident = now.duration_since(self.response_time).unwrap_or_default();
        self.initial_age.saturating_add(resident)
    }

    /// Whether the response is fresh at `now` (RFC 9111 4.2: lifetime > current age).
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.lifetime > self.current_age(now)
    }

    /// How far past its lifetime the response is at `now` (zero while fresh).
    pub fn staleness(&self, now: SystemTime) -> Duration {
        self.current_age(now).saturating_sub(self.lifetime)
    }

    /// Remaining freshness in whole seconds, negative once stale (Cache-Status `ttl`).
    pub fn ttl_seconds(&self, now: SystemTime) -> i64 {
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let age = i64::try_from(self.current_age(now).as_secs()).unwrap_or(i64::MAX);
        lifetime.saturating_sub(age)
    }

    /// The wall-clock time at which the response turns stale.
    pub fn stale_at(&self) -> SystemTime {
        let remaining = self.lifetime.saturating_sub(self.initial_age);
        self.response_time
            .checked_add(remaining)
            .unwrap_or(self.response_time)
    }
}

fn secs(value: Option<u64>) -> Duration {
    Duration::from_secs(value.unwrap_or(0))
}

/// RFC 9110 5.6.7 HTTP-date, `None` when absent or invalid (see `date.rs`).
pub(crate) fn header_date(
    headers: &HeaderMap,
    name: http::header::HeaderName,
) -> Option<SystemTime> {
    let text = headers.get(name)?.to_str().ok()?;
    super::date::parse(text)
}

/// RFC 9111 4.2.3: `corrected_initial_age = max(apparent_age, age_value + response_delay)`.
pub(crate) fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let date = header_date(headers, DATE).unwrap_or(response_time);
    let apparent_age = response_time.duration_since(date).unwrap_or_default();
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or_default();
    // Age is a single delta-seconds; a list on one line (`7200, 0`, from a broken upstream)
    // counts by its first member, the way a list split over lines counts by its first line.
    let age_value = headers
        .get(AGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| delta(text.split(',').next()))
        .map_or(Duration::ZERO, Duration::from_secs);
    apparent_age.max(age_value.saturating_add(response_delay))
}

/// RFC 9110 15.1: the statuses that are heuristically cacheable.
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// RFC 9111 4.2.1 (explicit: s-maxage, max-age, Expires) then Sluice's default TTL, then 4.2.2
/// (heuristic).
fn lifetime(
    directives: &ResponseDirectives,
    status: StatusCode,
    headers: &HeaderMap,
    rules: &CacheRules,
    response_time: SystemTime,
) -> (Duration, LifetimeSource) {
    if let Some(seconds) = directives.s_maxage {
        return (Duration::from_secs(seconds), LifetimeSource::SMaxAge);
    }
    if let Some(seconds) = directives.max_age {
        return (Duration::from_secs(seconds), LifetimeSource::MaxAge);
    }
    // RFC 9213 2.2: a cache that uses a targeted field ignores Expires as well.
    if directives.source == DirectiveSource::CacheControl && headers.contains_key(EXPIRES) {
        // RFC 9111 5.3: an invalid Expires (such as "0") is a time in the past.
        let lifetime = header_date(headers, EXPIRES).map_or(Duration::ZERO, |expires| {
            let date = header_date(headers, DATE).unwrap_or(response_time);
            expires.duration_since(date).unwrap_or_default()
        });
        return (lifetime, LifetimeSource::Expires);
    }
    if let Some(ttl) = rules.default_ttl {
        return (ttl, LifetimeSource::DefaultTtl);
    }
    if let Heuristic::LastModified { cap } = rules.heuristic
        && (heuristically_cacheable(status) || directives.public)
        && let Some(modified) = header_date(headers, LAST_MODIFIED)
    {
        let date = header_date(headers, DATE).unwrap_or(response_time);
        let since = date.duration_since(modified).unwrap_or_default();
        return ((since / 10).min(cap), LifetimeSource::Heuristic);
    }
    (Duration::ZERO, LifetimeSource::None)
}
