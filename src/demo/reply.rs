//! Responses of the demo app: the `Reply` type, cacheable representations (Cache-Control,
//! ETag, Last-Modified, Surrogate-Key, 304), and the one mapping from `RequestError` to a
//! status code and log level.
//!
//! Owns the header rules every route shares; not routing (`routes.rs`).

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, DATE, ETAG, HeaderName, HeaderValue,
    LAST_MODIFIED,
};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use tracing::{debug, error};

use super::edits::WriteError;
use super::validators::{Freshness, freshness, strong_etag};

/// The surrogate-key header: space-separated tags that purges can name.
pub(crate) const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

pub(crate) const JSON: &str = "application/json";

/// Cache-Control of each kind of response.
pub(crate) const PRODUCT_CACHE: &str = "public, max-age=60, stale-while-revalidate=30";
pub(crate) const LIST_CACHE: &str = "public, max-age=10";
pub(crate) const STATIC_CACHE: &str = "public, max-age=31536000, immutable";
pub(crate) const PAGE_CACHE: &str = "public, max-age=300";
pub(crate) const PRIVATE_CACHE: &str = "private, no-cache";
/// A short negative TTL for GET 404s, as origins commonly send.
const NOT_FOUND_CACHE: &str = "public, max-age=5";
const NO_STORE: &str = "no-store";

/// A response before it is turned into hyper's type: status, headers, full body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn new(
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    /// A response without a body (204, 304).
    pub(crate) fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// Sets a header; a value that is not a valid header value is dropped (and logged), which
    /// can only happen for values we build from stored data.
    pub(crate) fn header(mut self, name: HeaderName, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                self.headers.insert(name, value);
            }
            Err(_) => debug!(header = %name, "dropped an invalid header value"),
        }
        self
    }

    /// hyper's response: adds Date and Content-Length; a HEAD keeps the length, not the body.
    pub(crate) fn into_response(self, head: bool, now: SystemTime) -> Response<Full<Bytes>> {
        let Self {
            status,
            mut headers,
            body,
        } = self;
        if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
            headers.insert(DATE, date);
        }
        let bodiless = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
        if !bodiless {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let body = if head || bodiless { Bytes::new() } else { body };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// A cacheable GET representation and its caching metadata.
#[derive(Debug, Clone)]
pub(crate) struct Representation {
    pub(crate) body: Bytes,
    pub(crate) content_type: &'static str,
    pub(crate) cache_control: &'static str,
    pub(crate) surrogate_key: String,
    pub(crate) last_modified: SystemTime,
}

impl Representation {
    /// 200 with the body, or 304 if the request's validators match. Both carry the same
    /// ETag, Last-Modified, Cache-Control and Surrogate-Key, as RFC 9110 §15.4.5 asks.
    pub(crate) fn reply(self, request: &HeaderMap) -> Reply {
        let etag = strong_etag(&self.body);
        let reply = match freshness(request, &etag, self.last_modified) {
            Freshness::NotModified => Reply::empty(StatusCode::NOT_MODIFIED),
            Freshness::Send => Reply::new(StatusCode::OK, self.content_type, self.body),
        };
        reply
            .header(ETAG, &etag)
            .header(LAST_MODIFIED, &httpdate::fmt_http_date(self.last_modified))
            .header(CACHE_CONTROL, self.cache_control)
            .header(SURROGATE_KEY, &self.surrogate_key)
    }
}

/// Why a request failed. Clients see the message of client errors, never internal details.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("precondition failed: the product has changed")]
    PreconditionFailed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error response: `{"error": "..."}`. Internal errors are logged and shown as
    /// "internal error" only. A GET 404 may be cached briefly; nothing else may.
    pub(crate) fn reply(self, is_get: bool) -> Reply {
        let message = match &self {
            Self::Internal(detail) => {
                error!(%detail, "demo app request failed");
                "internal error".to_string()
            }
            other => {
                debug!(error = %other, "demo app refused a request");
                other.to_string()
            }
        };
        let body = serde_json::json!({ "error": message }).to_string();
        let cache_control = if is_get && matches!(self, Self::NotFound) {
            NOT_FOUND_CACHE
        } else {
            NO_STORE
        };
        let reply = Reply::new(self.status(), JSON, body).header(CACHE_CONTROL, cache_control);
        match self {
            Self::MethodNotAllowed { allow } => reply.header(ALLOW, allow),
            _ => reply,
        }
    }
}

impl From<WriteError> for RequestError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::NotFound => Self::NotFound,
            WriteError::Invalid(message) => Self::Unprocessable(message),
            WriteError::DuplicateSku => Self::Conflict(error.to_string()),
            WriteError::PreconditionFailed => Self::PreconditionFailed,
            WriteError::Database(_) | WriteError::Render(_) => Self::Internal(error.to_string()),
        }
    }
}

impl From<rusqlite::Error> for RequestError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Internal(format!("database: {error}"))
    }
}

impl From<serde_json::Error> for RequestError {
    fn from(error: serde_json::Error) -> Self {
        Self::Internal(format!("rendering: {error}"))
    }
}

impl From<tokio::task::JoinError> for RequestError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Internal(format!("blocking task: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
    use std::time::{Duration, UNIX_EPOCH};

    fn representation() -> Representation {
        Representation {
            body: Bytes::from_static(b"{\"id\":123}"),
            content_type: JSON,
            cache_control: PRODUCT_CACHE,
            surrogate_key: "product-123 category-books products".to_string(),
            last_modified: UNIX_EPOCH + Duration::from_secs(1_709_640_000),
        }
    }

    fn request(name: HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_709_650_000)
    }

    #[test]
    fn a_representation_carries_every_caching_header() {
        let response = representation()
            .reply(&HeaderMap::new())
            .into_response(false, now());
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[ETAG], strong_etag(b"{\"id\":123}").as_str());
        assert_eq!(headers[LAST_MODIFIED], "Tue, 05 Mar 2024 12:00:00 GMT");
        assert_eq!(headers[CACHE_CONTROL], PRODUCT_CACHE);
        assert_eq!(
            headers[SURROGATE_KEY],
            "product-123 category-books products"
        );
        assert_eq!(headers[DATE], httpdate::fmt_http_date(now()).as_str());
        assert_eq!(headers[CONTENT_LENGTH], "10");
        assert_eq!(headers[CONTENT_TYPE], JSON);
    }

    #[test]
    fn current_etag_in_if_none_match_gives_304_without_a_body() {
        let etag = strong_etag(b"{\"id\":123}");
        let reply = representation().reply(&request(IF_NONE_MATCH, &etag));
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
        assert!(reply.body.is_empty());
        let response = reply.into_response(false, now());
        let headers = response.headers();
        // RFC 9110 15.4.5: the validators and caching fields a 200 would have carried.
        assert_eq!(headers[ETAG], etag.as_str());
        assert_eq!(headers[CACHE_CONTROL], PRODUCT_CACHE);
        assert!(headers.contains_key(SURROGATE_KEY));
        assert!(headers.contains_key(LAST_MODIFIED));
        assert!(headers.contains_key(DATE));
        assert!(!headers.contains_key(CONTENT_LENGTH));
        assert!(!headers.contains_key(CONTENT_TYPE));
    }

    #[test]
    fn an_old_etag_or_an_earlier_date_gets_the_full_body() {
        let old = representation().reply(&request(IF_NONE_MATCH, "\"0000000000000000\""));
        assert_eq!(old.status, StatusCode::OK);
        assert_eq!(&old.body[..], b"{\"id\":123}");
        let earlier =
            representation().reply(&request(IF_MODIFIED_SINCE, "Tue, 05 Mar 2024 11:59:59 GMT"));
        assert_eq!(earlier.status, StatusCode::OK);
        let same =
            representation().reply(&request(IF_MODIFIED_SINCE, "Tue, 05 Mar 2024 12:00:00 GMT"));
        assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn head_keeps_the_length_but_drops_the_body() {
        let response = representation()
            .reply(&HeaderMap::new())
            .into_response(true, now());
        assert_eq!(response.headers()[CONTENT_LENGTH], "10");
        assert_eq!(
            hyper::body::Body::size_hint(response.body()).exact(),
            Some(0)
        );
    }

    #[test]
    fn internal_errors_hide_their_detail_and_are_not_cached() {
        let reply = RequestError::Internal("disk on fire at /var/db".to_string()).reply(true);
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(&reply.body[..], b"{\"error\":\"internal error\"}");
        assert_eq!(reply.headers[CACHE_CONTROL], "no-store");
        let missing = RequestError::NotFound.reply(true);
        assert_eq!(missing.headers[CACHE_CONTROL], "public, max-age=5");
        assert_eq!(
            RequestError::NotFound.reply(false).headers[CACHE_CONTROL],
            "no-store"
        );
    }
}
