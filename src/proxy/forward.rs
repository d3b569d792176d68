//! Steps 5 and 6 of the pipeline: pick a backend, send the request upstream, and retry on
//! another backend when that is safe.
//!
//! A retry is safe when the request has no body to replay and its method is idempotent
//! (RFC 9110 9.2.2) or its route is marked `retryable`; it happens after a refused connection
//! (the request never reached a backend) or a status the pool lists in `retry_on`, and only
//! while the pool's retry budget allows. Sluice never buffers a body to replay it.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{ProxyError, RequestBody, RequestRecord};
use crate::balancer::{
    Admission, Algorithm, Backend, BackendPool, HashOn, Outcome, PickContext, RetryDecision,
};
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

/// Whether a request can be sent again: it has no body (Sluice never buffers one to replay
/// it), and its method is idempotent (RFC 9110 9.2.2) or its route allows retries.
fn replayable(outbound: &Outbound, route: &RouteRuntime) -> bool {
    outbound.body.is_none() && (route.config.retryable || idempotent(&outbound.method))
}

/// RFC 9110 9.2.2.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The balancer's verdict on one attempt.
fn outcome_of(result: &Result<Response<Incoming>, ProxyError>) -> Outcome {
    match result {
        Ok(response) if response.status().is_server_error() => Outcome::ServerError,
        Ok(_) => Outcome::Success,
        Err(ProxyError::Connect(_)) => Outcome::ConnectFailure,
        Err(ProxyError::UpstreamTimeout) => Outcome::Timeout,
        Err(ProxyError::UpstreamProtocol(_)) => Outcome::ServerError,
        // The client's side failed: says nothing about the backend.
        Err(_) => Outcome::Cancelled,
    }
}

/// The bytes a consistent-hashing pool hashes, from the request as it leaves.
fn hash_key<'a>(on: &HashOn, outbound: &'a Outbound, client: IpAddr) -> Option<Cow<'a, [u8]>> {
    match on {
        HashOn::Path => Some(Cow::Borrowed(outbound.path.path().as_bytes())),
        HashOn::Header(name) => outbound
            .headers
            .get(name.as_str())
            .map(|v| Cow::Borrowed(v.as_bytes())),
        HashOn::Cookie(name) => outbound
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then_some(Cow::Borrowed(value.as_bytes()))
            }),
        HashOn::ClientIp => Some(Cow::Owned(match client {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        })),
    }
}

/// Picks a backend, sends, and retries a replayable request on another backend after a
/// refused connection or a configured status, within the pool's retry budget. Every attempt's
/// outcome and latency go back to the balancer (EWMA, passive outlier detection).
pub(crate) async fn exchange(
    snapshot: &Snapshot,
    route: &RouteRuntime,
    pool: &PoolRuntime,
    mut outbound: Outbound,
    record: &mut RequestRecord,
    metrics: &Metrics,
) -> Result<Response<Incoming>, ProxyError> {
    let balancer = &pool.backends;
    if balancer.admit() != Admission::Admitted {
        pool.metrics.rejected();
        return Err(ProxyError::PoolSaturated);
    }
    balancer.retry_budget().deposit(Instant::now());
    let attempts = if replayable(&outbound, route) {
        MAX_ATTEMPTS.min(balancer.backends().len()).max(1)
    } else {
        1
    };
    let key: Option<Vec<u8>> = match &balancer.options().algorithm {
        Algorithm::ConsistentHash(options) => {
            hash_key(&options.on, &outbound, record.client.ip()).map(Cow::into_owned)
        }
        _ => None,
    };
    let mut tried: Option<usize> = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut context = PickContext::at(Instant::now());
        if let Some(key) = &key {
            context = context.with_key(key);
        }
        let (index, backend) =
            pick_other(balancer, &context, tried).ok_or(ProxyError::NoBackend)?;
        tried = Some(index);
        record.upstream = Some(backend.addr);
        let flight = backend.start();
        let backend_metrics = pool.metrics.backend(index);
        if let Some(m) = backend_metrics {
            m.started();
        }
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
        let result = pool.client.send(request, timeout).await;
        let elapsed = sent.elapsed();
        let outcome = outcome_of(&result);
        let now = Instant::now();
        if let Some(m) = backend_metrics {
            m.observe(outcome, elapsed);
        }
        if let Some(transition) = balancer.observe(flight.state(), outcome, elapsed, now) {
            pool.metrics.transition(index, &transition);
            tracing::warn!(
                pool = balancer.name(),
                backend = %backend.addr,
                transition = transition.as_str(),
                outcome = outcome.as_str(),
                "passive health check"
            );
        }
        let retry = match &result {
            Ok(response) => pool.retry_on.contains(&response.status().as_u16()),
            // The request never reached a backend.
            Err(ProxyError::Connect(_)) => true,
            // The connection broke (a backend killed mid-exchange, a stale keep-alive
            // connection): an idempotent request may be sent again (RFC 9110 9.2.2); one
            // that is only `retryable` by its route may not, it may have been applied.
            Err(ProxyError::UpstreamProtocol(_)) => idempotent(&outbound.method),
            Err(_) => false,
        };
        if retry && !last {
            match balancer.retry_budget().try_withdraw(now) {
                RetryDecision::Allowed => {
                    tracing::warn!(
                        request_id = %record.request_id,
                        backend = %backend.addr,
                        outcome = outcome.as_str(),
                        "retrying on another backend"
                    );
                    if let Err(error) = &result
                        && let Some(kind) = error.upstream_kind()
                    {
                        metrics.upstream_error(&route.name, kind);
                    }
                    route.metrics.retried();
                    pool.metrics.retried();
                    continue;
                }
                RetryDecision::Exhausted => {
                    tracing::debug!(
                        request_id = %record.request_id,
                        pool = balancer.name(),
                        "retry budget exhausted; answering with the failure"
                    );
                    pool.metrics.budget_exhausted();
                }
            }
        }
        let response = result?;
        record.upstream_elapsed = Some(elapsed);
        route.metrics.observe_upstream(elapsed.as_secs_f64());
        // The backend counts the request in flight until the response body's last byte.
        record._backend = Some(flight);
        return Ok(response);
    }
}

/// Picks a backend other than `tried` (when the pool has another).
fn pick_other<'a>(
    pool: &'a BackendPool,
    context: &PickContext<'_>,
    tried: Option<usize>,
) -> Option<(usize, &'a Arc<Backend>)> {
    let first = pool.pick_with(context)?;
    match tried {
        Some(previous) if first.0 == previous && pool.backends().len() > 1 => {
            // A hash pick is deterministic: take the next backend on from the tried one.
            let second = pool.pick_with(&PickContext::at(context.now))?;
            if second.0 != previous {
                return Some(second);
            }
            pool.pick_with(&PickContext::at(context.now))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(headers: &[(&str, &str)]) -> Outbound {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Outbound {
            method: Method::GET,
            path: PathAndQuery::from_static("/items/7?page=2"),
            headers: map,
            original_host: None,
            body: None,
        }
    }

    #[test]
    fn the_hash_key_is_the_configured_request_part() {
        let request = outbound(&[("x-user", "ann"), ("cookie", "a=1; session=s42; b=2")]);
        let client: IpAddr = "10.1.2.3".parse().unwrap();
        let key = |on: HashOn| hash_key(&on, &request, client).map(Cow::into_owned);
        assert_eq!(key(HashOn::Path), Some(b"/items/7".to_vec()));
        assert_eq!(key(HashOn::Header("x-user".into())), Some(b"ann".to_vec()));
        assert_eq!(key(HashOn::Cookie("session".into())), Some(b"s42".to_vec()));
        assert_eq!(key(HashOn::Cookie("missing".into())), None);
        assert_eq!(key(HashOn::ClientIp), Some(vec![10, 1, 2, 3]));
    }

    #[test]
    fn a_gateway_failure_is_an_outcome_the_balancer_counts_and_a_client_one_is_not() {
        assert_eq!(
            outcome_of(&Err(ProxyError::Connect("refused".into()))),
            Outcome::ConnectFailure
        );
        assert_eq!(
            outcome_of(&Err(ProxyError::UpstreamTimeout)),
            Outcome::Timeout
        );
        assert_eq!(
            outcome_of(&Err(ProxyError::DownstreamBody("reset".into()))),
            Outcome::Cancelled
        );
    }

    #[test]
    fn only_idempotent_methods_are_idempotent() {
        assert!(idempotent(&Method::GET) && idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
    }
}
