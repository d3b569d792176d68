//! Steps 3, 4, 7 and 8 of the pipeline on a caching route: lookup, coalescing, revalidation,
//! store and the cache's part of the response (`Age`, `Cache-Status`, Range, HEAD, 304s).
//!
//! The decisions are the cache library's (`cache::policy`, `cache::lookup`,
//! `cache::conditional`); this module sends and receives, following the call order in
//! `cache/mod.rs`. It never holds a store reference across an `.await`: lookups return `Arc`s.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, HOST, HeaderValue, RANGE};
use http::{HeaderMap, Method, Response, StatusCode, request, response};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use tracing::Instrument;

use super::body::Slice;
use super::tee::{PendingStore, Replay, Tee};
use super::{ProxyError, RequestRecord, ResponseBody, Side, Upstream, body_expected, headers};
use crate::cache::{
    ANSWERED_FROM_STORE, CACHE_STATUS, CacheEvent, CacheKey, CacheStatus, Cacheability,
    ClientConditional, Coalesced, Entry, Facing, Fwd, Join, LEFT_TO_ORIGIN, Leader, Lookup,
    MissKind, OnError, RangeAnswer, Refresh, RequestHead, ResponseHead, Revalidation, ServeStale,
    Stale, UpstreamFailure, answer_conditional, answer_conditional_to, cacheability,
    invalidation_targets, prepare_revalidation, range, refresh, set_age, stale_on_error,
    strip_for_client,
};
use crate::config::RouteCache;
use crate::metrics::cache_metrics::CacheOutcome;
use crate::shared::Shared;

/// One request on a caching route.
pub(super) async fn serve(
    shared: &Arc<Shared>,
    upstream: &Upstream<'_>,
    settings: &RouteCache,
    parts: request::Parts,
    body: Incoming,
    record: &mut RequestRecord,
) -> Result<Response<ResponseBody>, ProxyError> {
    let rules = &settings.rules;
    let readable = parts.method == Method::GET || parts.method == Method::HEAD;
    // The paths that go to the origin are boxed: the future of a hit stays small, so less is
    // moved per request.
    if !readable && !rules.methods.contains(&parts.method) {
        return Box::pin(pass(shared, upstream, settings, parts, body, record)).await;
    }
    let key = match CacheKey::new(&rules.key, upstream.scheme(), RequestHead::from(&parts)) {
        Ok(key) => key,
        Err(_) => return Box::pin(pass(shared, upstream, settings, parts, body, record)).await,
    };
    let body = body_expected(&parts, &body).then_some(body);
    let lookup = shared
        .cache
        .lookup(&key, RequestHead::from(&parts), rules, SystemTime::now());
    let facing = upstream.conn.facing;
    match lookup {
        Lookup::Hit(hit) => {
            observe(upstream, record, CacheOutcome::Hit);
            Ok(stored_response(
                &parts,
                &hit.entry,
                hit.age,
                &CacheStatus::hit(hit.ttl),
                facing,
            ))
        }
        Lookup::Stale(stale) if stale.serve == ServeStale::WhileRevalidating => {
            if let Some(leader) = shared.cache.try_lead(&key) {
                spawn_refresh(
                    shared,
                    upstream,
                    settings,
                    &parts,
                    key,
                    &stale.entry,
                    leader,
                );
            }
            shared.cache.record(CacheEvent::StaleServed);
            observe(upstream, record, CacheOutcome::Stale);
            let status = CacheStatus::hit(stale.ttl).detail("stale-while-revalidate");
            Ok(stored_response(
                &parts,
                &stale.entry,
                stale.age,
                &status,
                facing,
            ))
        }
        Lookup::Stale(stale) => {
            Box::pin(revalidate(
                shared, upstream, settings, parts, key, stale, record,
            ))
            .await
        }
        Lookup::Miss(MissKind::OnlyIfCached) => Err(ProxyError::OnlyIfCached),
        Lookup::Miss(kind) => {
            let fwd = match kind {
                MissKind::VaryMiss => Fwd::VaryMiss,
                _ => Fwd::UriMiss,
            };
            Box::pin(miss(
                shared, upstream, settings, parts, body, key, fwd, record,
            ))
            .await
        }
    }
}

fn observe(upstream: &Upstream<'_>, record: &mut RequestRecord, outcome: CacheOutcome) {
    record.cache = Some(outcome.as_str());
    if let Some(metrics) = &upstream.route.cache_metrics {
        metrics.observe(outcome);
    }
}

/// How a GET or HEAD miss goes to the origin.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MissShape {
    /// A plain GET: forwarded as it is, coalesced, streamed to the client while it is stored.
    Plain,
    /// A HEAD, or a GET with validators or a Range: the whole representation is fetched with a
    /// plain GET (coalesced with the other misses), stored, and then answers the request as a
    /// hit would (`fill`).
    Whole,
    /// Anything else (a request body, If-Match / If-Unmodified-Since, another stored method):
    /// forwarded as it is, on its own.
    AsIs,
}

impl MissShape {
    fn of(parts: &request::Parts, has_body: bool) -> MissShape {
        let get = parts.method == Method::GET;
        let has = |names: &[http::HeaderName]| names.iter().any(|n| parts.headers.contains_key(n));
        if has_body || !(get || parts.method == Method::HEAD) || has(&LEFT_TO_ORIGIN) {
            MissShape::AsIs
        } else if get && !has(&ANSWERED_FROM_STORE) {
            MissShape::Plain
        } else {
            MissShape::Whole
        }
    }
}

/// A GET of `parts` without the fields the cache answers itself (`MissShape::Whole`).
fn whole_get(parts: &request::Parts) -> request::Parts {
    let mut headers = parts.headers.clone();
    for name in &ANSWERED_FROM_STORE {
        headers.remove(name);
    }
    let mut request = request::Request::new(());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = headers;
    request.into_parts().0
}

/// Step 4 and on: nothing usable is stored.
#[allow(clippy::too_many_arguments)]
async fn miss(
    shared: &Arc<Shared>,
    upstream: &Upstream<'_>,
    settings: &RouteCache,
    parts: request::Parts,
    body: Option<Incoming>,
    key: CacheKey,
    fwd: Fwd,
    record: &mut RequestRecord,
) -> Result<Response<ResponseBody>, ProxyError> {
    let shape = MissShape::of(&parts, body.is_some());
    let leader = if shape == MissShape::AsIs {
        None
    } else {
        match shared.cache.coalesce(&key) {
            Join::Leader(leader) => Some(leader),
            Join::Waiter(waiter) => {
                match shared
                    .cache
                    .wait(waiter, &parts.headers, settings.coalesce_timeout)
                    .await
                {
                    Coalesced::Hit(entry) => {
                        observe(upstream, record, CacheOutcome::Collapsed);
                        let now = SystemTime::now();
                        let freshness = entry.freshness();
                        let status = CacheStatus::hit(freshness.ttl_seconds(now)).collapsed();
                        return Ok(stored_response(
                            &parts,
                            &entry,
                            freshness.current_age(now),
                            &status,
                            upstream.conn.facing,
                        ));
                    }
                    Coalesced::GoToOrigin(_) => None,
                }
            }
        }
    };
    observe(upstream, record, CacheOutcome::Miss);
    let sent = SystemTime::now();
    if shape == MissShape::Whole {
        let whole = whole_get(&parts);
        let mut headers = whole.headers.clone();
        announce_surrogate(&mut headers);
        let response = upstream.fetch(&whole, headers, None, record).await?;
        let received = SystemTime::now();
        let teed = tee_or_skip(
            shared, upstream, settings, &whole, key, leader, fwd, response, sent, received,
        );
        return fill(upstream, settings, &parts, teed).await;
    }
    let mut headers = parts.headers.clone();
    announce_surrogate(&mut headers);
    let response = upstream.fetch(&parts, headers, body, record).await?;
    let received = SystemTime::now();
    Ok(tee_or_skip(
        shared, upstream, settings, &parts, key, leader, fwd, response, sent, received,
    )
    .stream(upstream.conn.facing))
}

/// A response from the origin on its way to the client: teed into the store, or uncached.
/// `head` has not been prepared for the client yet (`client_head`).
struct Teed {
    head: response::Parts,
    status: CacheStatus,
    body: TeedBody,
}

enum TeedBody {
    /// Stored as it is read.
    Tee(Box<Tee>),
    /// Not storable: passed on as it is.
    Skip(Incoming),
}

impl Teed {
    /// Step 8 for a plain miss: the response streams to the client while it is stored.
    fn stream(self, facing: Facing) -> Response<ResponseBody> {
        let Teed {
            mut head,
            status,
            body,
        } = self;
        client_head(&mut head.headers, facing, &status);
        let body = match body {
            TeedBody::Tee(tee) => ResponseBody::boxed(UnsyncBoxBody::new(*tee)),
            TeedBody::Skip(incoming) => ResponseBody::upstream(incoming),
        };
        Response::from_parts(head, body)
    }
}

/// Step 7: whether the response may be stored; if so, a tee that stores it as it is read.
#[allow(clippy::too_many_arguments)]
fn tee_or_skip(
    shared: &Arc<Shared>,
    upstream: &Upstream<'_>,
    settings: &RouteCache,
    parts: &request::Parts,
    key: CacheKey,
    leader: Option<Leader<Arc<Entry>>>,
    fwd: Fwd,
    response: Response<Incoming>,
    sent: SystemTime,
    received: SystemTime,
) -> Teed {
    let (head, incoming) = upstream_head(upstream, parts, response);
    let decision = cacheability(
        RequestHead::from(parts),
        ResponseHead::new(head.status, &head.headers),
        &settings.rules,
        sent,
        received,
    );
    let status = CacheStatus::forward(fwd).fwd_status(head.status);
    match decision {
        Cacheability::Store(plan) => {
            let status = status.stored(plan.freshness.ttl_seconds(received));
            let pending = PendingStore {
                cache: Arc::clone(&shared.cache),
                key,
                plan,
                status: head.status,
                headers: head.headers.clone(),
                leader,
                declared: content_length(&head.headers),
            };
            let body = TeedBody::Tee(Box::new(Tee::new(incoming, pending)));
            Teed { head, status, body }
        }
        Cacheability::Skip(reason) => {
            if let Some(leader) = leader {
                leader.release();
            }
            let status = status.not_stored(reason);
            let body = TeedBody::Skip(incoming);
            Teed { head, status, body }
        }
    }
}

/// Step 7 and 8 for a `MissShape::Whole` miss: the whole representation is read and stored
/// first (up to the object limit, within the total timeout), then answers the request as a
/// hit would (304, 206, HEAD). A response that is not stored answers it uncached.
async fn fill(
    upstream: &Upstream<'_>,
    settings: &RouteCache,
    parts: &request::Parts,
    teed: Teed,
) -> Result<Response<ResponseBody>, ProxyError> {
    let facing = upstream.conn.facing;
    let Teed { head, status, body } = teed;
    let mut tee = match body {
        TeedBody::Skip(incoming) => {
            let body = ResponseBody::upstream(incoming);
            return Ok(uncached(parts, head, body, &status, facing));
        }
        TeedBody::Tee(tee) => tee,
    };
    let limit = settings.rules.max_object_size;
    let declared_over = content_length(&head.headers)
        .is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX));
    let read = if declared_over {
        Read::Over(Vec::new())
    } else {
        tokio::time::timeout(
            upstream.snapshot.config.timeouts.total,
            read_whole(&mut tee, limit),
        )
        .await
        .map_err(|_| ProxyError::UpstreamTimeout)?
        .map_err(|error| ProxyError::UpstreamProtocol(error.to_string()))?
    };
    match read {
        Read::Whole(frames) => match tee.stored() {
            Some(entry) => {
                let age = entry.freshness().current_age(SystemTime::now());
                Ok(stored_response(parts, entry, age, &status, facing))
            }
            // The store refused it (bigger than its budget allows, or a vary-star surprise).
            None => {
                let body = ResponseBody::full(concat(frames));
                Ok(uncached(parts, head, body, &status, facing))
            }
        },
        Read::Over(frames) => {
            let body = ResponseBody::boxed(UnsyncBoxBody::new(Replay::new(frames, *tee)));
            Ok(uncached(parts, head, body, &status, facing))
        }
    }
}

/// How far `read_whole` got.
enum Read {
    /// The body ended: all of its data frames.
    Whole(Vec<Bytes>),
    /// The body outgrew the object limit: the frames read so far (the rest is still to come).
    Over(Vec<Bytes>),
}

/// Reads `tee` to its end (which stores it), or until more than `limit` bytes came.
async fn read_whole(tee: &mut Tee, limit: usize) -> Result<Read, super::body::BoxError> {
    let mut frames = Vec::new();
    let mut size = 0usize;
    while let Some(frame) = tee.frame().await {
        if let Ok(data) = frame?.into_data() {
            size = size.saturating_add(data.len());
            frames.push(data);
            if size > limit {
                return Ok(Read::Over(frames));
            }
        }
    }
    Ok(Read::Whole(frames))
}

fn concat(frames: Vec<Bytes>) -> Bytes {
    match <[Bytes; 1]>::try_from(frames) {
        Ok([one]) => one,
        Err(frames) => frames.concat().into(),
    }
}

/// Step 8 for a response the cache did not store, to a request the cache would have answered
/// itself (`MissShape::Whole`): its validators are judged on the response head (304), a HEAD
/// gets no body, and a Range is cut out of the stream when the length is declared (otherwise
/// the whole 200, which RFC 9110 14.2 allows).
fn uncached(
    parts: &request::Parts,
    mut head: response::Parts,
    mut body: ResponseBody,
    status: &CacheStatus,
    facing: Facing,
) -> Response<ResponseBody> {
    client_head(&mut head.headers, facing, status);
    if let ClientConditional::NotModified(mut fields) =
        answer_conditional_to(RequestHead::from(parts), ResponseHead::from(&head))
    {
        fields.append(CACHE_STATUS.clone(), status.to_header_value());
        let mut response = Response::new(ResponseBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = fields;
        return response;
    }
    if parts.method == Method::HEAD {
        return Response::from_parts(head, ResponseBody::empty());
    }
    if parts.method == Method::GET
        && parts.headers.contains_key(RANGE)
        && let Some(length) =
            content_length(&head.headers).and_then(|length| usize::try_from(length).ok())
    {
        match range::select_streamed(&parts.headers, ResponseHead::from(&head), length) {
            RangeAnswer::Full => {}
            RangeAnswer::Partial {
                range,
                content_range,
            } => {
                head.status = StatusCode::PARTIAL_CONTENT;
                head.headers.insert(CONTENT_RANGE, content_range);
                head.headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(range.len()));
                body = ResponseBody::boxed(UnsyncBoxBody::new(Slice::new(body, range)));
            }
            RangeAnswer::Unsatisfiable { content_range } => {
                head.status = StatusCode::RANGE_NOT_SATISFIABLE;
                head.headers.insert(CONTENT_RANGE, content_range);
                head.headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
                body = ResponseBody::empty();
            }
        }
    }
    Response::from_parts(head, body)
}

/// The response head as the client and the store see it: hop-by-hop fields gone, Via added.
fn upstream_head(
    upstream: &Upstream<'_>,
    parts: &request::Parts,
    response: Response<Incoming>,
) -> (response::Parts, Incoming) {
    let (mut head, incoming) = response.into_parts();
    headers::prepare_response(
        &mut head.headers,
        head.version,
        &upstream.snapshot.rewrite,
        false,
    );
    head.version = parts.version;
    (head, incoming)
}

/// The `Surrogate-Capability` header (W3C Edge Architecture): tells the origin that a surrogate
/// called `sluice` is on the way, so it can aim `Surrogate-Control` directives at it with
/// `;sluice`. Appended, so surrogates in front of Sluice stay listed.
static SURROGATE_CAPABILITY: http::HeaderName =
    http::HeaderName::from_static("surrogate-capability");

fn announce_surrogate(headers: &mut HeaderMap) {
    headers.append(
        SURROGATE_CAPABILITY.clone(),
        HeaderValue::from_static("sluice=\"Surrogate/1.0\""),
    );
}

fn client_head(headers: &mut HeaderMap, facing: Facing, status: &CacheStatus) {
    strip_for_client(headers, facing);
    headers.append(CACHE_STATUS.clone(), status.to_header_value());
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
}

/// A stale entry that must be revalidated before use (RFC 9111 4.3.1), or served if the
/// origin fails and stale-if-error allows (RFC 5861 4).
#[allow(clippy::too_many_arguments)]
async fn revalidate(
    shared: &Arc<Shared>,
    upstream: &Upstream<'_>,
    settings: &RouteCache,
    parts: request::Parts,
    key: CacheKey,
    stale: Stale,
    record: &mut RequestRecord,
) -> Result<Response<ResponseBody>, ProxyError> {
    let rules = &settings.rules;
    let entry = stale.entry;
    let fwd = Fwd::of_stale(stale.reason);
    let conditional = entry.has_validator();
    // A HEAD, Range or conditional request revalidates with a GET of the whole representation
    // (as its miss would fetch it), so that a 200 can replace the stale entry and answer the
    // request from it, and a 304 refreshes the entry the request is then answered from.
    let whole = (MissShape::of(&parts, false) == MissShape::Whole).then(|| whole_get(&parts));
    let asked = whole.as_ref().unwrap_or(&parts);
    let mut headers = asked.headers.clone();
    announce_surrogate(&mut headers);
    if conditional {
        prepare_revalidation(&mut headers, &entry);
    }
    let sent = SystemTime::now();
    let result = upstream.fetch(asked, headers, None, record).await;
    let received = SystemTime::now();
    let facing = upstream.conn.facing;
    match result {
        Ok(response) if conditional && response.status() == StatusCode::NOT_MODIFIED => {
            let head = ResponseHead::from(&response);
            match refresh(&entry, head, rules, sent, received) {
                Refresh::Updated(updated) => {
                    shared
                        .cache
                        .record(CacheEvent::Revalidated(Revalidation::NotModified));
                    observe(upstream, record, CacheOutcome::Revalidated);
                    let served = shared.cache.store_entry(*updated).unwrap_or(entry);
                    let freshness = served.freshness();
                    let status = CacheStatus::forward(fwd)
                        .fwd_status(StatusCode::NOT_MODIFIED)
                        .stored(freshness.ttl_seconds(received));
                    Ok(stored_response(
                        &parts,
                        &served,
                        freshness.current_age(received),
                        &status,
                        facing,
                    ))
                }
                Refresh::Mismatch => {
                    drop(response);
                    miss(shared, upstream, settings, parts, None, key, fwd, record).await
                }
            }
        }
        Ok(response)
            if stale_on_error(
                &entry,
                &parts.headers,
                UpstreamFailure::Status(response.status()),
                rules,
                received,
            ) == OnError::ServeStale =>
        {
            tracing::warn!(
                request_id = %record.request_id,
                backend = record.upstream.map(|b| b.to_string()),
                status = response.status().as_u16(),
                "origin failed; serving stale (stale-if-error)"
            );
            let status = CacheStatus::forward(Fwd::Stale)
                .fwd_status(response.status())
                .ttl(entry.freshness().ttl_seconds(received))
                .detail("stale-if-error");
            Ok(serve_stale(
                shared, upstream, record, &parts, &entry, &status,
            ))
        }
        Ok(response) => {
            if conditional {
                shared
                    .cache
                    .record(CacheEvent::Revalidated(Revalidation::Modified));
            }
            observe(upstream, record, CacheOutcome::Miss);
            let teed = tee_or_skip(
                shared, upstream, settings, asked, key, None, fwd, response, sent, received,
            );
            match whole {
                Some(_) => fill(upstream, settings, &parts, teed).await,
                None => Ok(teed.stream(facing)),
            }
        }
        Err(error)
            if error.side() == Side::Upstream
                && stale_on_error(
                    &entry,
                    &parts.headers,
                    UpstreamFailure::Unreachable,
                    rules,
                    received,
                ) == OnError::ServeStale =>
        {
            error.log(&record.request_id, record.upstream);
            let status = CacheStatus::forward(Fwd::Stale)
                .ttl(entry.freshness().ttl_seconds(received))
                .detail("stale-if-error");
            Ok(serve_stale(
                shared, upstream, record, &parts, &entry, &status,
            ))
        }
        Err(error) => Err(error),
    }
}

fn serve_stale(
    shared: &Shared,
    upstream: &Upstream<'_>,
    record: &mut RequestRecord,
    parts: &request::Parts,
    entry: &Entry,
    status: &CacheStatus,
) -> Response<ResponseBody> {
    shared.cache.record(CacheEvent::StaleServed);
    observe(upstream, record, CacheOutcome::Stale);
    let age = entry.freshness().current_age(SystemTime::now());
    stored_response(parts, entry, age, status, upstream.conn.facing)
}

/// A request the cache does not answer on a caching route (an unsafe method): forwarded, and
/// on success the URIs it changed are invalidated (RFC 9111 4.4).
async fn pass(
    shared: &Arc<Shared>,
    upstream: &Upstream<'_>,
    settings: &RouteCache,
    mut parts: request::Parts,
    body: Incoming,
    record: &mut RequestRecord,
) -> Result<Response<ResponseBody>, ProxyError> {
    let mut host = HeaderMap::new();
    if let Some(value) = parts.headers.get(HOST) {
        host.insert(HOST, value.clone());
    }
    let has_body = body_expected(&parts, &body);
    let headers = std::mem::take(&mut parts.headers);
    let response = upstream
        .fetch(&parts, headers, has_body.then_some(body), record)
        .await?;
    let targets = invalidation_targets(
        RequestHead::new(&parts.method, &parts.uri, &host),
        upstream.scheme(),
        ResponseHead::from(&response),
    );
    if !targets.is_empty() {
        let removed = shared.cache.invalidate(&settings.rules.key, &targets);
        tracing::debug!(request_id = %record.request_id, removed, "invalidated after unsafe method");
    }
    observe(upstream, record, CacheOutcome::Bypass);
    let (mut head, incoming) = upstream_head(upstream, &parts, response);
    client_head(
        &mut head.headers,
        upstream.conn.facing,
        &CacheStatus::forward(Fwd::Bypass).fwd_status(head.status),
    );
    Ok(Response::from_parts(head, ResponseBody::upstream(incoming)))
}

/// Step 8 for a stored response: the client's conditional (304), Range (206 / 416), HEAD,
/// `Age` and `Cache-Status`. The body is the stored `Bytes`, shared, never copied.
pub(super) fn stored_response(
    parts: &request::Parts,
    entry: &Entry,
    age: Duration,
    status: &CacheStatus,
    facing: Facing,
) -> Response<ResponseBody> {
    let status_value = status.to_header_value();
    if let ClientConditional::NotModified(mut headers) =
        answer_conditional(RequestHead::from(parts), entry)
    {
        set_age(&mut headers, age);
        headers.append(CACHE_STATUS.clone(), status_value);
        let mut response = Response::new(ResponseBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = headers;
        return response;
    }
    let mut headers = entry.response_headers();
    if entry.has_surrogate_fields() {
        strip_for_client(&mut headers, facing);
    }
    set_age(&mut headers, age);
    headers.append(CACHE_STATUS.clone(), status_value);
    // The stored headers already carry Content-Length and Accept-Ranges (Entry::new); only a
    // partial answer changes the length.
    let mut code = entry.status();
    let mut body = entry.body().clone();
    if parts.method == Method::GET && parts.headers.contains_key(RANGE) {
        match range::select(&parts.headers, entry) {
            RangeAnswer::Full => {}
            RangeAnswer::Partial {
                range,
                content_range,
            } => {
                headers.insert(CONTENT_RANGE, content_range);
                code = StatusCode::PARTIAL_CONTENT;
                body = body.slice(range);
                headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
            RangeAnswer::Unsatisfiable { content_range } => {
                headers.insert(CONTENT_RANGE, content_range);
                code = StatusCode::RANGE_NOT_SATISFIABLE;
                body = Bytes::new();
                headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
            }
        }
    }
    let body = if parts.method == Method::HEAD {
        ResponseBody::empty()
    } else {
        ResponseBody::full(body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = code;
    *response.headers_mut() = headers;
    response
}

/// stale-while-revalidate (RFC 5861 3): one background refresh per key, led by `leader`; the
/// client has already been answered with the stale entry.
fn spawn_refresh(
    shared: &Arc<Shared>,
    upstream: &Upstream<'_>,
    settings: &RouteCache,
    parts: &request::Parts,
    key: CacheKey,
    entry: &Arc<Entry>,
    leader: Leader<Arc<Entry>>,
) {
    let shared = Arc::clone(shared);
    let snapshot = Arc::clone(upstream.snapshot);
    let route_index = upstream.route_index;
    let conn = upstream.conn.clone();
    let host = upstream.host.map(str::to_owned);
    let host_value = upstream.host_value.cloned();
    let settings = settings.clone();
    let entry = Arc::clone(entry);
    // The whole representation, whatever part of it the client asked for: a 200 replaces it.
    let request = whole_get(parts);
    let span = tracing::debug_span!("refresh", key = key.primary());
    tokio::spawn(
        async move {
            let (Some(route), Some(pool)) = (
                snapshot.routes.get(route_index),
                snapshot
                    .routes
                    .get(route_index)
                    .and_then(|r| snapshot.pools.get(r.pool)),
            ) else {
                return;
            };
            let upstream = Upstream {
                snapshot: &snapshot,
                route,
                route_index,
                pool,
                conn: &conn,
                host: host.as_deref(),
                host_value: host_value.as_ref(),
                metrics: &shared.metrics,
            };
            let deadline = snapshot.config.timeouts.total;
            let refreshed = tokio::time::timeout(
                deadline,
                background_refresh(&shared, &upstream, &settings, request, key, entry, leader),
            )
            .await;
            if refreshed.is_err() {
                tracing::warn!("background revalidation timed out");
            }
        }
        .instrument(span),
    );
}

async fn background_refresh(
    shared: &Arc<Shared>,
    upstream: &Upstream<'_>,
    settings: &RouteCache,
    parts: request::Parts,
    key: CacheKey,
    entry: Arc<Entry>,
    leader: Leader<Arc<Entry>>,
) {
    let mut record = RequestRecord::detached(shared, upstream.conn);
    let mut headers = parts.headers.clone();
    announce_surrogate(&mut headers);
    let conditional = entry.has_validator();
    if conditional {
        prepare_revalidation(&mut headers, &entry);
    }
    let sent = SystemTime::now();
    let response = match upstream.fetch(&parts, headers, None, &mut record).await {
        Ok(response) => response,
        Err(error) => {
            error.log(&record.request_id, record.upstream);
            leader.release();
            return;
        }
    };
    let received = SystemTime::now();
    if conditional && response.status() == StatusCode::NOT_MODIFIED {
        let head = ResponseHead::from(&response);
        match refresh(&entry, head, &settings.rules, sent, received) {
            Refresh::Updated(updated) => {
                shared
                    .cache
                    .record(CacheEvent::Revalidated(Revalidation::NotModified));
                match shared.cache.store_entry(*updated) {
                    Some(stored) => leader.publish(stored),
                    None => leader.release(),
                }
            }
            Refresh::Mismatch => leader.release(),
        }
        return;
    }
    if response.status().is_server_error() {
        // Keep serving what is stored; the next request past the window revalidates again.
        tracing::warn!(
            backend = record.upstream.map(|b| b.to_string()),
            status = response.status().as_u16(),
            "background revalidation failed"
        );
        leader.release();
        return;
    }
    if conditional {
        shared
            .cache
            .record(CacheEvent::Revalidated(Revalidation::Modified));
    }
    let teed = tee_or_skip(
        shared,
        upstream,
        settings,
        &parts,
        key,
        Some(leader),
        Fwd::Stale,
        response,
        sent,
        received,
    );
    // Drive the tee to its end so the body is stored; nobody reads it otherwise.
    let mut body = teed.stream(upstream.conn.facing).into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
}
