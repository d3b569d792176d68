//! Steps 5 and 6 of the pipeline: pick a backend, send the request upstream, and retry on
//! another backend when that is safe.
//!
//! A retry is safe when the request never reached a backend (the connection was refused or
//! timed out while connecting) and the request has no body to replay, and its method is
//! idempotent (RFC 9110 9.2.2). Sluice never buffers a body to replay it.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{ProxyError, RequestBody, RequestRecord};
use crate::metrics::Metrics;
use crate::shared::{PoolRuntime, RouteRuntime, Snapshot};

/// The request as it leaves for the backend, with its headers already rewritten.
pub struct Outbound {
    pub method: Method,
    pub path: PathAndQuery,
    pub headers: HeaderMap,
    /// The client's Host, sent upstream when the policy preserves it.
    pub original_host: Option<HeaderValue>,
    /// The client's body, when it has one.
    pub body: Option<Incoming>,
}

/// How many backends one request may try.
const MAX_ATTEMPTS: usize = 2;

/// Whether a request can be sent again: idempotent (RFC 9110 9.2.2) and without a body.
fn replayable(outbound: &Outbound) -> bool {
    outbound.body.is_none()
        && matches!(
            outbound.method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        )
}

/// Picks a backend, sends, and retries a request that never reached a backend on another one.
pub(crate) async fn exchange(
    snapshot: &Snapshot,
    route: &RouteRuntime,
    pool: &PoolRuntime,
    mut outbound: Outbound,
    record: &mut RequestRecord,
    metrics: &Metrics,
) -> Result<Response<Incoming>, ProxyError> {
    let attempts = if replayable(&outbound) {
        MAX_ATTEMPTS.min(pool.backends.backends().len()).max(1)
    } else {
        1
    };
    let mut tried: Option<usize> = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (index, backend) = pick_other(pool, tried).ok_or(ProxyError::NoBackend)?;
        tried = Some(index);
        record.upstream = Some(backend.addr);
        record._backend = Some(backend.start());
        let authority = pool
            .authority(index)
            .cloned()
            .ok_or(ProxyError::NoBackend)?;
        let last = attempt >= attempts;
        // Keep a copy of the headers only when a retry could need them.
        let headers = if last {
            std::mem::take(&mut outbound.headers)
        } else {
            outbound.headers.clone()
        };
        let body = outbound.body.take();
        let request = build(pool, &outbound, headers, authority, body, snapshot)?;
        let sent = Instant::now();
        let timeout = snapshot.config.timeouts.upstream_response_header;
        match pool.client.send(request, timeout).await {
            Ok(response) => {
                let elapsed = sent.elapsed();
                record.upstream_elapsed = Some(elapsed);
                route.metrics.observe_upstream(elapsed.as_secs_f64());
                return Ok(response);
            }
            // Only a request that never reached a backend is tried again.
            Err(error @ ProxyError::Connect(_)) if !last => {
                tracing::warn!(
                    request_id = %record.request_id,
                    backend = %backend.addr,
                    %error,
                    "upstream connect failed; retrying on another backend"
                );
                if let Some(kind) = error.upstream_kind() {
                    metrics.upstream_error(&route.name, kind);
                }
                route.metrics.retried();
            }
            Err(error) => return Err(error),
        }
    }
}

/// Picks a backend other than `tried` (when the pool has another).
fn pick_other(
    pool: &PoolRuntime,
    tried: Option<usize>,
) -> Option<(usize, &Arc<crate::balancer::Backend>)> {
    let first = pool.backends.pick()?;
    match tried {
        Some(previous) if first.0 == previous && pool.backends.backends().len() > 1 => {
            pool.backends.pick()
        }
        _ => Some(first),
    }
}

fn build(
    pool: &PoolRuntime,
    outbound: &Outbound,
    mut headers: HeaderMap,
    authority: http::uri::Authority,
    body: Option<Incoming>,
    snapshot: &Snapshot,
) -> Result<Request<RequestBody>, ProxyError> {
    match &outbound.original_host {
        // HTTP/2 carries the authority in :authority; Host would duplicate it.
        Some(host) if pool.client.version() != Version::HTTP_2 => {
            headers.insert(header::HOST, host.clone());
        }
        Some(_) => {}
        None => {
            headers.remove(header::HOST);
        }
    }
    let scheme = if pool.client.scheme() == "https" {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(outbound.path.clone())
        .build()
        .map_err(|_| ProxyError::BadRequest("unusable request target"))?;
    let body = match body {
        Some(body) => RequestBody::new(body, snapshot.config.limits.max_request_body_bytes),
        None => RequestBody::empty(),
    };
    let mut request = Request::new(body);
    *request.method_mut() = outbound.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = pool.client.version();
    *request.headers_mut() = headers;
    Ok(request)
}
