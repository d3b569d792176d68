//! Borrowed views of a request head and a response head: what the policy reads.
//!
//! The pipeline holds `http::request::Parts` or a `Request<B>`; these views let the pure policy
//! take either without cloning headers. They own nothing and do no I/O.

use http::{HeaderMap, Method, StatusCode, Uri, request, response};

/// The parts of a request the cache reads: method, target URI and header fields.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// A view of a request head from its three parts.
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        Self {
            method,
            uri,
            headers,
        }
    }
}

impl<'a> From<&'a request::Parts> for RequestHead<'a> {
    fn from(parts: &'a request::Parts) -> Self {
        Self::new(&parts.method, &parts.uri, &parts.headers)
    }
}

impl<'a, B> From<&'a http::Request<B>> for RequestHead<'a> {
    fn from(request: &'a http::Request<B>) -> Self {
        Self::new(request.method(), request.uri(), request.headers())
    }
}

/// The parts of a response the cache reads: status and header fields.
#[derive(Clone, Copy, Debug)]
pub struct ResponseHead<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
}

impl<'a> ResponseHead<'a> {
    /// A view of a response head from its status and headers.
    pub fn new(status: StatusCode, headers: &'a HeaderMap) -> Self {
        Self { status, headers }
    }
}

impl<'a> From<&'a response::Parts> for ResponseHead<'a> {
    fn from(parts: &'a response::Parts) -> Self {
        Self::new(parts.status, &parts.headers)
    }
}

impl<'a, B> From<&'a http::Response<B>> for ResponseHead<'a> {
    fn from(response: &'a http::Response<B>) -> Self {
        Self::new(response.status(), response.headers())
    }
}
