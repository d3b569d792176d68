//! Storability (RFC 9111 3): whether a response may be stored, and if so with what freshness,
//! Vary key, tags and stripped fields.
//!
//! Pure: a function of the request head, the response head, the route's [`CacheRules`] and the
//! request/response times. The lookup side (is a stored response usable now?) is in
//! `lookup.rs`; revalidation and client conditionals in `conditional.rs`.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderName, SET_COOKIE};

use super::directives::{FieldScope, RequestDirectives, ResponseDirectives};
use super::freshness::{Freshness, Revalidate, StaleRule, heuristically_cacheable};
use super::head::{RequestHead, ResponseHead};
use super::purge::tags_from_headers;
use super::rules::{CacheRules, SetCookie, StatusRule};
use super::vary::{VaryFields, VaryKey};

/// The policy's answer for one response.
#[derive(Debug)]
pub enum Cacheability {
    /// Store it (once the body is complete) with this plan.
    Store(StorePlan),
    /// Do not store it, and why (the `detail` of Cache-Status).
    Skip(NoCacheReason),
}

/// Why a response was not stored. `as_str` is the Cache-Status `detail` and a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoCacheReason {
    /// The request method is not cacheable on this route.
    Method,
    /// The status is not storable (1xx, 206, 304, or not allowed by the route).
    Status,
    /// The request said `no-store` (RFC 9111 5.2.1.5).
    RequestNoStore,
    /// The response said `no-store` (RFC 9111 5.2.2.5).
    NoStore,
    /// The response said `private` (RFC 9111 5.2.2.7).
    Private,
    /// The request carried Authorization and the response did not allow sharing (RFC 9111 3.5).
    Authorization,
    /// The response sets a cookie and the route does not store those.
    SetCookie,
    /// `Vary: *` (RFC 9111 4.1).
    VaryStar,
    /// The body is larger than the route's maximum object size.
    TooBig,
    /// The body did not arrive whole (upstream error or a length mismatch).
    Incomplete,
    /// Nothing makes the response reusable: no freshness, no validator, no stale-if-error.
    NoFreshness,
}

impl NoCacheReason {
    /// The label: the Cache-Status `detail` token.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::RequestNoStore => "request-no-store",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::SetCookie => "set-cookie",
            Self::VaryStar => "vary-star",
            Self::TooBig => "too-big",
            Self::Incomplete => "incomplete",
            Self::NoFreshness => "no-freshness",
        }
    }
}

/// What the store needs besides the response itself.
#[derive(Clone, Debug)]
pub struct StorePlan {
    pub freshness: Freshness,
    pub(crate) vary: VaryKey,
    pub(crate) tags: Vec<Box<str>>,
    /// Fields removed before storing (`private="..."`, `no-cache="..."`).
    pub(crate) strip: Vec<HeaderName>,
    pub keep_until: SystemTime,
    pub request_time: SystemTime,
    /// The largest body that may be stored: feed it to a `BodyCollector`.
    pub max_body: usize,
}

/// RFC 9111 3 for a shared cache: may this response be stored?
pub fn cacheability(
    request: RequestHead<'_>,
    response: ResponseHead<'_>,
    rules: &CacheRules,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Cacheability {
    match plan(request, response, rules, request_time, response_time) {
        Ok(plan) => Cacheability::Store(plan),
        Err(reason) => Cacheability::Skip(reason),
    }
}

fn plan(
    request: RequestHead<'_>,
    response: ResponseHead<'_>,
    rules: &CacheRules,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Result<StorePlan, NoCacheReason> {
    let status = response.status;
    let headers = response.headers;
    if !rules.methods.contains(request.method) {
        return Err(NoCacheReason::Method);
    }
    if RequestDirectives::parse(request.headers).no_store {
        return Err(NoCacheReason::RequestNoStore);
    }
    // Only complete, final responses: a 206 is stored by nobody here, a 304 updates (4.3.4).
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NoCacheReason::Status);
    }
    if let StatusRule::Only(allowed) = &rules.statuses
        && !allowed.contains(&status)
    {
        return Err(NoCacheReason::Status);
    }
    let directives = ResponseDirectives::parse(headers);
    // RFC 9111 5.2.2.3: must-understand overrides no-store for a status the cache knows.
    if directives.must_understand {
        if !understood(status) {
            return Err(NoCacheReason::Status);
        }
    } else if directives.no_store {
        return Err(NoCacheReason::NoStore);
    }
    let mut strip = Vec::new();
    match &directives.private {
        FieldScope::All => return Err(NoCacheReason::Private),
        FieldScope::Fields(fields) => strip.extend(fields.iter().cloned()),
        FieldScope::Absent => {}
    }
    if let FieldScope::Fields(fields) = &directives.no_cache {
        strip.extend(fields.iter().cloned());
    }
    if request.headers.contains_key(AUTHORIZATION)
        && !(directives.public || directives.must_revalidate || directives.s_maxage.is_some())
    {
        return Err(NoCacheReason::Authorization);
    }
    if headers.contains_key(SET_COOKIE)
        && rules.set_cookie == SetCookie::Skip
        && !strip.contains(&SET_COOKIE)
    {
        return Err(NoCacheReason::SetCookie);
    }
    let vary = match VaryFields::parse(headers) {
        VaryFields::Star => return Err(NoCacheReason::VaryStar),
        fields => VaryKey::new(&fields, request.headers),
    };
    let declared_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > rules.max_object_size as u64) {
        return Err(NoCacheReason::TooBig);
    }
    // RFC 9111 3: the response must carry explicit freshness or public, or have a
    // heuristically cacheable status (or one the route lists).
    let explicit = directives.public
        || directives.max_age.is_some()
        || directives.s_maxage.is_some()
        || headers.contains_key(http::header::EXPIRES);
    let listed = matches!(&rules.statuses, StatusRule::Only(list) if list.contains(&status));
    if !(explicit || heuristically_cacheable(status) || listed) {
        return Err(NoCacheReason::NoFreshness);
    }
    let freshness = Freshness::compute(
        &directives,
        status,
        headers,
        rules,
        request_time,
        response_time,
    );
    let validator = headers.contains_key(http::header::ETAG)
        || headers.contains_key(http::header::LAST_MODIFIED);
    let reusable_fresh =
        freshness.lifetime > freshness.initial_age && freshness.revalidate == Revalidate::WhenStale;
    let grace = stale_grace(&freshness, rules);
    if !(reusable_fresh || validator || grace > Duration::ZERO) {
        return Err(NoCacheReason::NoFreshness);
    }
    // Kept past its lifetime: for its own stale grants, for a cheap revalidation when it has
    // a validator, and for a disconnected origin.
    let window = if validator {
        grace.max(rules.revalidation_window)
    } else {
        grace
    }
    .max(unreachable_grace(&freshness, rules));
    let stale_at = freshness.stale_at();
    Ok(StorePlan {
        keep_until: stale_at.checked_add(window).unwrap_or(stale_at),
        freshness,
        vary,
        tags: tags_from_headers(headers),
        strip,
        request_time,
        max_body: rules.max_object_size,
    })
}

/// How long past its lifetime a response may be served under its own RFC 5861 grants, capped
/// by the route's `max_stale`.
pub(crate) fn stale_grace(freshness: &Freshness, rules: &CacheRules) -> Duration {
    if freshness.stale == StaleRule::Never {
        return Duration::ZERO;
    }
    freshness
        .stale_while_revalidate
        .max(freshness.stale_if_error)
        .min(rules.max_stale)
}

/// How stale a response may be served while the origin cannot be reached, though it granted
/// no stale-if-error: RFC 9111 4.2.4 lets a disconnected cache do so unless the response
/// requires revalidation. Capped by the route's `max_stale`.
pub(crate) fn unreachable_grace(freshness: &Freshness, rules: &CacheRules) -> Duration {
    if freshness.stale == StaleRule::Allowed {
        rules.stale_if_unreachable.min(rules.max_stale)
    } else {
        Duration::ZERO
    }
}

/// The plan for the headers of a 304 refresh: same computation, same times of the new
/// exchange (RFC 9111 4.3.4), the old Vary key kept by the caller.
pub(crate) fn refresh_plan(
    status: StatusCode,
    headers: &http::HeaderMap,
    rules: &CacheRules,
    request_time: SystemTime,
    response_time: SystemTime,
) -> StorePlan {
    let directives = ResponseDirectives::parse(headers);
    let freshness = Freshness::compute(
        &directives,
        status,
        headers,
        rules,
        request_time,
        response_time,
    );
    let stale_at = freshness.stale_at();
    let window = stale_grace(&freshness, rules).max(rules.revalidation_window);
    StorePlan {
        keep_until: stale_at.checked_add(window).unwrap_or(stale_at),
        freshness,
        vary: VaryKey::default(),
        tags: tags_from_headers(headers),
        strip: Vec::new(),
        request_time,
        max_body: rules.max_object_size,
    }
}

/// Statuses whose caching semantics Sluice implements (RFC 9111 5.2.2.3 must-understand).
fn understood(status: StatusCode) -> bool {
    heuristically_cacheable(status)
        || matches!(
            status.as_u16(),
            302 | 303 | 307 | 400 | 403 | 500 | 502 | 503 | 504
        )
}
