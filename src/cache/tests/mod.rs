//! Unit tests of the cache, one file per module under test. Policy tests name or cite the RFC
//! section they check. Shared builders live here.

mod body;
mod coalesce;
mod conditional;
mod directives;
mod face;
mod freshness;
mod invalidate;
mod key;
mod lookup;
mod policy;
mod purge;
mod range;
mod respond;
mod store;
mod vary;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, request, response};

use super::{
    CacheKey, CacheRules, Cacheability, Entry, KeyRules, RequestHead, ResponseHead, StorePlan,
    cacheability,
};

/// A fixed instant plus `seconds`.
pub(super) fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

/// The HTTP-date of `at(seconds)`.
pub(super) fn date(seconds: u64) -> String {
    httpdate::fmt_http_date(at(seconds))
}

pub(super) fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("request").into_parts().0
}

pub(super) fn get(uri: &str, headers: &[(&str, &str)]) -> request::Parts {
    request(Method::GET, uri, headers)
}

pub(super) fn response(status: u16, headers: &[(&str, &str)]) -> response::Parts {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("response").into_parts().0
}

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

/// The policy's verdict for a GET of `uri` answered by `response`, both at `at(0)`.
pub(super) fn verdict(
    request: &request::Parts,
    response: &response::Parts,
    rules: &CacheRules,
) -> Cacheability {
    cacheability(
        RequestHead::from(request),
        ResponseHead::from(response),
        rules,
        at(0),
        at(0),
    )
}

pub(super) fn plan(
    request: &request::Parts,
    response: &response::Parts,
    rules: &CacheRules,
) -> StorePlan {
    match verdict(request, response, rules) {
        Cacheability::Store(plan) => plan,
        Cacheability::Skip(reason) => panic!("expected Store, got Skip({reason:?})"),
    }
}

/// The default key of `request`; a request without a host is taken as `test.example`'s.
pub(super) fn key_of(request: &request::Parts) -> CacheKey {
    let mut fields = request.headers.clone();
    if !fields.contains_key(http::header::HOST) {
        fields.insert(http::header::HOST, HeaderValue::from_static("test.example"));
    }
    let head = RequestHead::new(&request.method, &request.uri, &fields);
    CacheKey::new(&KeyRules::default(), "http", head).expect("key")
}

/// An entry for `request` answered at `at(0)` by `response` with `body`.
pub(super) fn entry(
    request: &request::Parts,
    response: &response::Parts,
    rules: &CacheRules,
    body: &'static [u8],
) -> Entry {
    let plan = plan(request, response, rules);
    Entry::new(
        &key_of(request),
        plan,
        response.status,
        response.headers.clone(),
        Bytes::from_static(body),
    )
}

pub(super) fn ok() -> StatusCode {
    StatusCode::OK
}
