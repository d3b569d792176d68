//! Conditional requests: revalidating a stored response with the origin (RFC 9111 4.3.1,
//! 4.3.3, 4.3.4) and answering a client's conditional from the cache (RFC 9111 4.3.2,
//! RFC 9110 13.1.1, 13.1.3).
//!
//! Pure functions of the stored entry and the heads exchanged; the pipeline sends and receives.

use std::time::SystemTime;

use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, DATE, ETAG, EXPIRES, HeaderName, HeaderValue,
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
    RANGE, VARY,
};
use http::{HeaderMap, Method, StatusCode};

use super::directives::CDN_CACHE_CONTROL;
use super::entry::{Entry, strip_hop_by_hop};
use super::freshness::header_date;
use super::head::{RequestHead, ResponseHead};
use super::policy::refresh_plan;
use super::rules::CacheRules;

/// Fields a 304 never replaces in the stored response (RFC 9111 3.2: Content-Length, and
/// fields describing the stored body's framing or range).
const NOT_UPDATED: [HeaderName; 3] = [
    CONTENT_LENGTH,
    http::header::CONTENT_RANGE,
    http::header::CONTENT_ENCODING,
];

/// Turns the headers of a request to be forwarded into a revalidation of `entry`: the client's
/// own preconditions are replaced by If-None-Match (from ETag) and If-Modified-Since (from
/// Last-Modified) (RFC 9111 4.3.1). Without a validator the request goes unconditional.
pub fn prepare_revalidation(headers: &mut HeaderMap, entry: &Entry) {
    for name in [
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_MATCH,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
    ] {
        headers.remove(name);
    }
    if let Some(etag) = entry.etag() {
        headers.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = entry.last_modified() {
        headers.insert(IF_MODIFIED_SINCE, modified.clone());
    }
}

/// The client fields the cache answers itself once it holds the whole representation: its
/// validators (RFC 9111 4.3.2) and Range (RFC 9110 14). A GET or HEAD miss that carries one of
/// them (or is a HEAD) asks the origin for the whole representation, with a plain GET without
/// them, stores it and answers the request from it, as nginx (`proxy_cache_convert_head` and
/// the request fields its cache clears) and Varnish do.
pub static ANSWERED_FROM_STORE: [HeaderName; 4] =
    [IF_NONE_MATCH, IF_MODIFIED_SINCE, RANGE, IF_RANGE];

/// The client preconditions the cache leaves to the origin (RFC 9110 13.1.1, 13.1.4): a miss
/// that carries one is forwarded as it is, and not stored.
pub static LEFT_TO_ORIGIN: [HeaderName; 2] = [IF_MATCH, IF_UNMODIFIED_SINCE];

/// The outcome of a 304 for a stored entry.
#[derive(Debug)]
pub enum Refresh {
    /// The entry with the 304's fields merged in and its freshness recomputed: store it in
    /// place of the old one (`Cache::store_entry`) and serve it.
    Updated(Box<Entry>),
    /// The 304 names another representation (its validator differs): fetch unconditionally.
    Mismatch,
}

/// RFC 9111 4.3.4: merges a 304's fields into `entry` when its validators match.
pub fn refresh(
    entry: &Entry,
    not_modified: ResponseHead<'_>,
    rules: &CacheRules,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Refresh {
    let new = not_modified.headers;
    let matches = match (new.get(ETAG), entry.etag()) {
        (Some(new_tag), Some(stored)) => weak_eq(new_tag.as_bytes(), stored.as_bytes()),
        (Some(_), None) => false,
        (None, _) => match (new.get(LAST_MODIFIED), entry.last_modified()) {
            (Some(new_date), Some(stored)) => new_date == stored,
            (Some(_), None) => false,
            (None, _) => true,
        },
    };
    if !matches {
        return Refresh::Mismatch;
    }
    let mut headers = entry.headers().clone();
    let mut updates = new.clone();
    strip_hop_by_hop(&mut updates);
    for name in updates.keys() {
        if !NOT_UPDATED.contains(name) {
            headers.remove(name);
        }
    }
    for (name, value) in updates.iter() {
        if !NOT_UPDATED.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let plan = refresh_plan(entry.status(), &headers, rules, request_time, response_time);
    Refresh::Updated(Box::new(entry.refreshed(headers, plan)))
}

/// How to answer a client's conditional request from a stored entry.
#[derive(Debug)]
pub enum ClientConditional {
    /// Send 304 with these fields (RFC 9110 15.4.5); add Age and Cache-Status.
    NotModified(HeaderMap),
    /// The preconditions do not hold (or there are none): send the stored response.
    Full,
}

/// RFC 9111 4.3.2: If-None-Match (weak comparison, `*` matches) takes precedence over
/// If-Modified-Since, which compares with Last-Modified (or Date when there is none). Only for
/// GET and HEAD of a 200.
pub fn answer_conditional(request: RequestHead<'_>, entry: &Entry) -> ClientConditional {
    answer(request, entry.status(), entry.headers())
}

/// The same answer for a response that was not stored, judged on its head: a miss asks the
/// origin for the whole representation without the client's If-None-Match / If-Modified-Since
/// (so that it can be stored), and answers them itself, as nginx's not_modified filter does.
pub fn answer_conditional_to(
    request: RequestHead<'_>,
    response: ResponseHead<'_>,
) -> ClientConditional {
    answer(request, response.status, response.headers)
}

/// `stored` is read only when the request is conditional: on a hit it is cold.
fn answer(request: RequestHead<'_>, status: StatusCode, stored: &HeaderMap) -> ClientConditional {
    if !matches!(*request.method, Method::GET | Method::HEAD) || status != StatusCode::OK {
        return ClientConditional::Full;
    }
    let not_modified = if request.headers.contains_key(IF_NONE_MATCH) {
        let etag = stored.get(ETAG).map(HeaderValue::as_bytes);
        request
            .headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .any(|value| none_match_hits(value.as_bytes(), etag))
    } else if let Some(since) = header_date(request.headers, IF_MODIFIED_SINCE) {
        let modified = header_date(stored, LAST_MODIFIED).or_else(|| header_date(stored, DATE));
        modified.is_some_and(|modified| modified <= since)
    } else {
        false
    };
    if !not_modified {
        return ClientConditional::Full;
    }
    let mut headers = HeaderMap::new();
    for name in [
        CACHE_CONTROL,
        CDN_CACHE_CONTROL.clone(),
        CONTENT_LOCATION,
        DATE,
        ETAG,
        EXPIRES,
        LAST_MODIFIED,
        VARY,
    ] {
        for value in stored.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    ClientConditional::NotModified(headers)
}

/// Whether one If-None-Match field line matches the stored ETag.
fn none_match_hits(list: &[u8], stored: Option<&[u8]>) -> bool {
    let Ok(text) = std::str::from_utf8(list) else {
        return false;
    };
    if text.trim() == "*" {
        return true;
    }
    let Some(stored) = stored else {
        return false;
    };
    entity_tags(text).any(|tag| weak_eq(tag.as_bytes(), stored))
}

/// Splits a list of entity-tags (`W/"a", "b,c"`) on commas outside quotes.
pub(crate) fn entity_tags(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let trimmed = rest.trim_start_matches([' ', '\t', ',']);
        if trimmed.is_empty() {
            return None;
        }
        let start = if trimmed.starts_with("W/") { 2 } else { 0 };
        let body = trimmed.get(start..).unwrap_or("");
        let end = match body.strip_prefix('"') {
            Some(inner) => inner
                .find('"')
                .map_or(body.len(), |close| close.saturating_add(2)),
            None => body.find(',').unwrap_or(body.len()),
        };
        let length = start.saturating_add(end);
        let tag = trimmed.get(..length).unwrap_or(trimmed);
        rest = trimmed.get(length..).unwrap_or("");
        Some(tag.trim())
    })
}

/// RFC 9110 8.8.3.2 weak comparison: the opaque tags are equal, W/ ignored.
pub(crate) fn weak_eq(a: &[u8], b: &[u8]) -> bool {
    opaque(a) == opaque(b)
}

/// RFC 9110 8.8.3.2 strong comparison: neither is weak and the opaque tags are equal.
pub(crate) fn strong_eq(a: &[u8], b: &[u8]) -> bool {
    !a.starts_with(b"W/") && !b.starts_with(b"W/") && a.trim_ascii() == b.trim_ascii()
}

fn opaque(tag: &[u8]) -> &[u8] {
    let tag = tag.trim_ascii();
    tag.strip_prefix(b"W/").unwrap_or(tag)
}
