//! `ProxyError`: every way a request can fail, with its one mapping to a status code, a log
//! level and a side (whose fault it is, which decides logging and whether a retry may help).

use http::StatusCode;

use crate::metrics::UpstreamErrorKind;

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong.
    Downstream,
    /// The backend failed or was slow.
    Upstream,
    /// Sluice itself (configuration or a bug).
    Internal,
}

impl Side {
    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Side::Downstream => "downstream",
            Side::Upstream => "upstream",
            Side::Internal => "internal",
        }
    }
}

/// Why the pipeline answered with an error instead of a backend's response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches the request")]
    NoRoute,
    #[error("the pool has no backend to pick")]
    NoBackend,
    #[error("the pool has its maximum of requests in flight")]
    PoolSaturated,
    #[error("connecting to the backend failed: {0}")]
    Connect(String),
    #[error("the backend did not answer in time")]
    UpstreamTimeout,
    #[error("the backend broke the exchange: {0}")]
    UpstreamProtocol(String),
    #[error("the request body is larger than the limit")]
    BodyTooLarge,
    #[error("the request head is larger than the limit")]
    HeadTooLarge,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("the method is not allowed through a reverse proxy")]
    MethodNotAllowed,
    #[error("the client closed the request body early: {0}")]
    DownstreamBody(String),
    #[error("only-if-cached and nothing usable is stored")]
    OnlyIfCached,
    #[error("purge without a valid token")]
    PurgeUnauthorised,
    #[error("purge from a client that is not allowed")]
    PurgeForbidden,
}

impl ProxyError {
    /// The status sent to the client.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoBackend | ProxyError::PoolSaturated => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect(_) | ProxyError::UpstreamProtocol(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::BadRequest(_) | ProxyError::DownstreamBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::OnlyIfCached => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::PurgeUnauthorised => StatusCode::UNAUTHORIZED,
            ProxyError::PurgeForbidden => StatusCode::FORBIDDEN,
        }
    }

    /// Whose fault it is.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::NoRoute
            | ProxyError::BodyTooLarge
            | ProxyError::HeadTooLarge
            | ProxyError::BadRequest(_)
            | ProxyError::MethodNotAllowed
            | ProxyError::DownstreamBody(_)
            | ProxyError::OnlyIfCached
            | ProxyError::PurgeUnauthorised
            | ProxyError::PurgeForbidden => Side::Downstream,
            ProxyError::NoBackend
            | ProxyError::PoolSaturated
            | ProxyError::Connect(_)
            | ProxyError::UpstreamTimeout
            | ProxyError::UpstreamProtocol(_) => Side::Upstream,
        }
    }

    /// The short label used in logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no_route",
            ProxyError::NoBackend => "no_backend",
            ProxyError::PoolSaturated => "pool_saturated",
            ProxyError::Connect(_) => "connect",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::UpstreamProtocol(_) => "upstream_protocol",
            ProxyError::BodyTooLarge => "body_too_large",
            ProxyError::HeadTooLarge => "head_too_large",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::DownstreamBody(_) => "downstream_body",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::OnlyIfCached => "only_if_cached",
            ProxyError::PurgeUnauthorised => "purge_unauthorised",
            ProxyError::PurgeForbidden => "purge_forbidden",
        }
    }

    /// The upstream error kind for metrics, when the backend is at fault.
    pub fn upstream_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            ProxyError::Connect(_) => Some(UpstreamErrorKind::Connect),
            ProxyError::UpstreamTimeout => Some(UpstreamErrorKind::Timeout),
            ProxyError::UpstreamProtocol(_) => Some(UpstreamErrorKind::Protocol),
            _ => None,
        }
    }

    /// Logs the error once, at the level its side calls for: upstream faults are warnings ops
    /// must see; client mistakes are debug so a bad client cannot flood the log.
    pub fn log(&self, request_id: &str, backend: Option<std::net::SocketAddr>) {
        match self.side() {
            Side::Upstream => tracing::warn!(
                request_id,
                backend = backend.map(|b| b.to_string()),
                error = %self,
                status = self.status().as_u16(),
                "upstream error"
            ),
            Side::Internal => tracing::error!(request_id, error = %self, "internal error"),
            Side::Downstream => tracing::debug!(request_id, error = %self, "bad request"),
        }
    }

    /// The short body sent to the client: the status reason, never internal details.
    pub fn body(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "404 Not Found: no route for this host and path\n",
            ProxyError::NoBackend => "503 Service Unavailable: no backend available\n",
            ProxyError::PoolSaturated => "503 Service Unavailable: too many requests pending\n",
            ProxyError::Connect(_) | ProxyError::UpstreamProtocol(_) => "502 Bad Gateway\n",
            ProxyError::UpstreamTimeout => "504 Gateway Timeout\n",
            ProxyError::BodyTooLarge => "413 Content Too Large\n",
            ProxyError::HeadTooLarge => "431 Request Header Fields Too Large\n",
            ProxyError::BadRequest(_) | ProxyError::DownstreamBody(_) => "400 Bad Request\n",
            ProxyError::MethodNotAllowed => "405 Method Not Allowed\n",
            ProxyError::OnlyIfCached => "504 Gateway Timeout: not in cache (only-if-cached)\n",
            ProxyError::PurgeUnauthorised => "401 Unauthorized: purge needs a bearer token\n",
            ProxyError::PurgeForbidden => "403 Forbidden: purge not allowed\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_maps_to_its_gateway_status() {
        assert_eq!(
            ProxyError::Connect("refused".into()).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            ProxyError::UpstreamTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ProxyError::NoBackend.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ProxyError::HeadTooLarge.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn client_mistakes_are_downstream_and_backend_faults_upstream() {
        assert_eq!(ProxyError::BodyTooLarge.side(), Side::Downstream);
        assert_eq!(ProxyError::UpstreamTimeout.side(), Side::Upstream);
    }
}
