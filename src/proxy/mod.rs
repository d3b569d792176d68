//! The request pipeline: one client request in, one response out.
//!
//! [`Proxy::handle`] runs the steps of `docs/ARCHITECTURE.md` top to bottom: admit, route,
//! (cache lookup and coalescing: pass-through until the cache lands), pick, forward, respond,
//! and finish (metrics and the access log line, when the last body byte has gone). Each step
//! is a plain function; every failure is a [`ProxyError`] mapped to a response in one place.
//! This module knows nothing of listeners or TLS: it gets a request and a [`ConnInfo`].

pub mod body;
mod caching;
pub mod context;
pub mod error;
pub mod forward;
pub mod headers;
pub mod health_checker;
mod purge;
mod tee;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

pub use body::{RequestBody, ResponseBody};
pub use context::{ActiveRequest, ConnActivity, ConnInfo};
pub use error::{ProxyError, Side};

use crate::balancer::InFlight;
use crate::config::route;
use crate::metrics::access_log::{AccessLog, AccessRecord, millis, rfc3339};
use crate::metrics::{Metrics, RouteMetrics};
use crate::shared::{PoolRuntime, RouteRuntime, Shared, Snapshot};

/// The pipeline, shared by every connection of every listener.
pub struct Proxy {
    shared: Arc<Shared>,
}

/// The outcome of admission: go on, or answer now.
enum Flow {
    Continue,
    Respond(ProxyError),
}

/// Everything the finish step needs, carried by the response body until its last byte.
pub(crate) struct RequestRecord {
    access_log: AccessLog,
    metrics: Option<RouteMetrics>,
    wall: SystemTime,
    started: Instant,
    request_id: RequestId,
    client: SocketAddr,
    method: Method,
    host: String,
    path: String,
    version: Version,
    status: u16,
    route: Option<Arc<str>>,
    upstream: Option<SocketAddr>,
    upstream_elapsed: Option<std::time::Duration>,
    cache: Option<&'static str>,
    error: Option<&'static str>,
    _backend: Option<InFlight>,
    active: ActiveRequest,
}

impl RequestRecord {
    /// The record of a request Sluice makes on its own behalf (a background revalidation). It
    /// is never finished, so it is neither counted nor logged as a client request.
    pub(crate) fn detached(shared: &Shared, conn: &ConnInfo) -> RequestRecord {
        RequestRecord {
            access_log: shared.access_log.clone(),
            metrics: None,
            wall: SystemTime::now(),
            started: Instant::now(),
            request_id: RequestId::fresh(),
            client: conn.peer,
            method: Method::GET,
            host: String::new(),
            path: String::new(),
            version: Version::HTTP_11,
            status: 0,
            route: None,
            upstream: None,
            upstream_elapsed: None,
            cache: None,
            error: None,
            _backend: None,
            active: conn.activity.start(),
        }
    }
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

impl body::Finish for RequestRecord {
    fn finish(mut self: Box<Self>, bytes: u64, error: Option<&'static str>) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.started);
        self.active.ended_at(now);
        if let Some(metrics) = &self.metrics {
            metrics.observe(self.status, elapsed.as_secs_f64(), bytes);
        }
        if self.access_log.enabled() {
            self.access_log.log(&AccessRecord {
                time: rfc3339(self.wall),
                request_id: &self.request_id,
                client: self.client,
                method: self.method.as_str(),
                host: &self.host,
                path: &self.path,
                protocol: protocol_name(self.version),
                status: self.status,
                bytes,
                duration_ms: millis(elapsed),
                route: self.route.as_deref().unwrap_or("-"),
                upstream: self.upstream.map(|a| a.to_string()),
                upstream_duration_ms: self.upstream_elapsed.map(millis),
                cache: self.cache,
                error: self.error.or(error),
            });
        }
    }
}

/// The id of a request: the client's `X-Request-Id` when it sent a sane one, else a new one,
/// made on first use (a cache hit with the access log off never needs one).
pub(crate) struct RequestId(std::cell::OnceCell<String>);

impl RequestId {
    /// The client's id from `headers`, if sane; otherwise one is made when first read.
    fn from_headers(headers: &http::HeaderMap) -> RequestId {
        let cell = std::cell::OnceCell::new();
        if let Some(id) = headers
            .get(&headers::X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            && !id.is_empty()
            && id.len() <= 128
        {
            let _ = cell.set(id.to_string());
        }
        RequestId(cell)
    }

    /// An id made on first use.
    fn fresh() -> RequestId {
        RequestId(std::cell::OnceCell::new())
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.get_or_init(generate_request_id)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// 16 random hex digits.
fn generate_request_id() -> String {
    let mut id = String::with_capacity(16);
    let value = rand::random::<u64>();
    for shift in (0..16).rev() {
        let digit = ((value >> (shift * 4)) & 0xf) as u8;
        id.push(char::from(if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        }));
    }
    id
}

/// The host the client asked for, as a field value: the URI authority (HTTP/2, absolute
/// form) or a copy of `Host` (a reference count, not a copy of the bytes).
fn host_value(uri: &http::Uri, headers: &http::HeaderMap) -> Option<HeaderValue> {
    match uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => headers.get(header::HOST).cloned(),
    }
}

/// Step 1: limits and sanity checks hyper does not already make for every protocol.
fn admit(request: &http::request::Parts, snapshot: &Snapshot) -> Flow {
    let limits = &snapshot.config.limits;
    if request.headers.len() > limits.max_headers {
        return Flow::Respond(ProxyError::HeadTooLarge);
    }
    // An HTTP/1 head is already bounded by hyper's read buffer, which the listener sets to
    // this limit (validation keeps it at least `Limits::MIN_READ_BUFFER`; hyper answers 431
    // itself), so the sum is only needed for HTTP/2.
    let bounded_by_reader = request.version <= Version::HTTP_11
        && limits.max_request_header_bytes >= crate::config::Limits::MIN_READ_BUFFER;
    if !bounded_by_reader {
        let head_bytes: usize = request
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>()
            + request.uri.path_and_query().map_or(1, |p| p.as_str().len());
        if head_bytes > limits.max_request_header_bytes {
            return Flow::Respond(ProxyError::HeadTooLarge);
        }
    }
    if request.method == Method::CONNECT {
        return Flow::Respond(ProxyError::MethodNotAllowed);
    }
    if request.version == Version::HTTP_11
        && !request.headers.contains_key(header::HOST)
        && request.uri.authority().is_none()
    {
        return Flow::Respond(ProxyError::BadRequest("HTTP/1.1 request without Host"));
    }
    if let Some(length) = request.headers.get(header::CONTENT_LENGTH)
        && length
            .to_str()
            .ok()
            .and_then(|l| l.parse::<u64>().ok())
            .is_some_and(|l| l > limits.max_request_body_bytes)
    {
        return Flow::Respond(ProxyError::BodyTooLarge);
    }
    Flow::Continue
}

impl Proxy {
    /// A pipeline over `shared`.
    pub fn new(shared: Arc<Shared>) -> Proxy {
        Proxy { shared }
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Answers one client request. Never fails: every error becomes a response.
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let snapshot = self.shared.snapshot.load_full();
        let downstream_upgrade = headers::upgrade_request(request.headers(), request.version())
            .is_some()
            .then(|| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        // The host is borrowed from a copy of its field (a reference count, not a copy of the
        // bytes, for HTTP/1.1's Host), since `parts` moves on.
        let host_field = host_value(&parts.uri, &parts.headers);
        let host = host_field
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .map(route::normalise_host);
        // The log's own copies of host and path are made only when there is a log to write.
        let logging = self.shared.access_log.enabled();
        let mut record = Box::new(RequestRecord {
            access_log: self.shared.access_log.clone(),
            metrics: None,
            // The wall clock is only for the log line.
            wall: if logging {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            },
            started,
            request_id: RequestId::from_headers(&parts.headers),
            client: conn.peer,
            method: parts.method.clone(),
            host: if logging {
                host.unwrap_or_default().to_string()
            } else {
                String::new()
            },
            path: if logging {
                parts.uri.path().to_string()
            } else {
                String::new()
            },
            version: parts.version,
            status: 0,
            route: None,
            upstream: None,
            upstream_elapsed: None,
            cache: None,
            error: None,
            _backend: None,
            active: conn.activity.start_at(started),
        });
        let result = self
            .forward(
                &snapshot,
                parts,
                body,
                host,
                host_field.as_ref(),
                conn,
                &mut record,
                downstream_upgrade,
            )
            .await;
        let deadline = started + snapshot.config.timeouts.total;
        match result {
            Ok(response) => {
                record.status = response.status().as_u16();
                let (parts, body) = response.into_parts();
                Response::from_parts(parts, body.with_deadline(deadline).on_finish(record))
            }
            Err(error) => {
                error.log(&record.request_id, record.upstream);
                if let (Some(kind), Some(route)) = (error.upstream_kind(), record.route.as_deref())
                {
                    self.shared.metrics.upstream_error(route, kind);
                }
                record.status = error.status().as_u16();
                record.error = Some(error.as_str());
                error_response(&error, &record.request_id).map(|b| b.on_finish(record))
            }
        }
    }

    /// Steps 2 to 8 for one request; the finish step is the caller's.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        snapshot: &Arc<Snapshot>,
        mut parts: http::request::Parts,
        body: Incoming,
        host: Option<&str>,
        host_value: Option<&HeaderValue>,
        conn: &ConnInfo,
        record: &mut RequestRecord,
        downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        // 1 admit
        if let Flow::Respond(error) = admit(&parts, snapshot) {
            return Err(error);
        }
        // 2 route
        let index = route::find(
            &snapshot.config.routes,
            host.unwrap_or(""),
            parts.uri.path(),
        )
        .ok_or(ProxyError::NoRoute)?;
        let route = snapshot.routes.get(index).ok_or(ProxyError::NoRoute)?;
        record.route = Some(Arc::clone(&route.name));
        record.metrics = Some(route.metrics.clone());
        let pool = snapshot
            .pools
            .get(route.pool)
            .ok_or(ProxyError::NoBackend)?;
        let upstream = Upstream {
            snapshot,
            route,
            route_index: index,
            pool,
            conn,
            host,
            host_value,
            metrics: &self.shared.metrics,
        };
        if parts.method.as_str() == "PURGE" {
            return purge::handle(&self.shared, &upstream, &parts, &record.request_id);
        }
        // 3-4 lookup and coalescing, 7 store: the caching path.
        if let Some(settings) = route.config.cache.as_ref()
            && downstream_upgrade.is_none()
        {
            return caching::serve(&self.shared, &upstream, settings, parts, body, record).await;
        }
        // 5 pick, 6 forward
        let has_body = body_expected(&parts, &body);
        let headers = std::mem::take(&mut parts.headers);
        let mut response = upstream
            .fetch(&parts, headers, has_body.then_some(body), record)
            .await?;

        // 8 respond
        let upgraded =
            response.status() == StatusCode::SWITCHING_PROTOCOLS && downstream_upgrade.is_some();
        if upgraded && let Some(downstream) = downstream_upgrade {
            let upstream = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(downstream, upstream, record.request_id.to_string()));
        }
        let version = response.version();
        let (mut response_parts, incoming) = response.into_parts();
        headers::prepare_response(
            &mut response_parts.headers,
            version,
            &snapshot.rewrite,
            upgraded,
        );
        response_parts.version = parts.version;
        let body = if upgraded {
            ResponseBody::empty()
        } else {
            ResponseBody::upstream(incoming)
        };
        Ok(Response::from_parts(response_parts, body))
    }
}

/// Where a request goes upstream: everything steps 5 and 6 need, borrowed from the snapshot
/// the request loaded.
pub(crate) struct Upstream<'a> {
    pub snapshot: &'a Arc<Snapshot>,
    pub route: &'a RouteRuntime,
    /// The route's position in `snapshot.routes`.
    pub route_index: usize,
    pub pool: &'a PoolRuntime,
    pub conn: &'a ConnInfo,
    /// The route-matching form of the client's host (see `route::normalise_host`).
    pub host: Option<&'a str>,
    /// The client's host field as it came (URI authority or `Host`), for X-Forwarded-Host and
    /// a preserved Host.
    pub host_value: Option<&'a HeaderValue>,
    pub metrics: &'a Metrics,
}

impl Upstream<'_> {
    /// `"https"` when the client came over TLS: the scheme of cache keys.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.conn.tls { "https" } else { "http" }
    }

    /// Steps 5 and 6: rewrites the client's `headers`, picks a backend and sends.
    /// `head` gives the method, target and version (its own headers are not read: `headers`
    /// are the ones to send).
    pub(crate) async fn fetch(
        &self,
        head: &http::request::Parts,
        mut headers: http::HeaderMap,
        body: Option<Incoming>,
        record: &mut RequestRecord,
    ) -> Result<Response<Incoming>, ProxyError> {
        let upgrade = headers::upgrade_request(&headers, head.version).cloned();
        let rewrite = &self.snapshot.rewrite;
        let forwarding = headers::Forwarding {
            client: self.conn.peer.ip(),
            client_value: &self.conn.peer_value,
            host_value: self.host_value,
            proto: self.scheme(),
            host: self.host,
            version: head.version,
            request_id: &record.request_id,
            upgrade: upgrade.as_ref(),
        };
        headers::prepare_request(&mut headers, &forwarding, rewrite);
        let outbound = forward::Outbound {
            method: head.method.clone(),
            path: head
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            headers,
            original_host: if rewrite.policy.preserve_host {
                self.host_value.cloned()
            } else {
                None
            },
            body,
        };
        forward::exchange(
            self.snapshot,
            self.route,
            self.pool,
            outbound,
            record,
            self.metrics,
        )
        .await
    }
}

/// Whether a request can carry a body worth streaming: a body was announced, or the protocol
/// may send one without announcing its length (HTTP/2 DATA without content-length) and the
/// stream has not already ended with its head.
fn body_expected(parts: &http::request::Parts, body: &Incoming) -> bool {
    parts.headers.contains_key(header::CONTENT_LENGTH)
        || parts.headers.contains_key(header::TRANSFER_ENCODING)
        || (parts.version == Version::HTTP_2 && !hyper::body::Body::is_end_stream(body))
}

/// Copies bytes both ways between an upgraded client and backend until either side closes.
async fn tunnel(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    request_id: String,
) {
    let (downstream, upstream) = match tokio::try_join!(downstream, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(request_id, %error, "upgrade failed");
            return;
        }
    };
    let mut downstream = TokioIo::new(downstream);
    let mut upstream = TokioIo::new(upstream);
    if let Err(error) = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        tracing::debug!(request_id, %error, "upgraded connection ended with an error");
    }
}

/// The one place an error becomes a response.
fn error_response(error: &ProxyError, request_id: &str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(error.body()));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(headers::X_REQUEST_ID.clone(), id);
    }
    if matches!(error, ProxyError::PurgeUnauthorised) {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sluice purge\""),
        );
    }
    if matches!(
        error,
        ProxyError::BodyTooLarge | ProxyError::HeadTooLarge | ProxyError::BadRequest(_)
    ) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
