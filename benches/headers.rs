//! What it measures: the header-rewrite step of the pipeline (`proxy::headers::prepare_request`
//! and `prepare_response`) on a typical browser request and a typical origin response: hop-by-hop
//! removal, X-Forwarded-*, Via and X-Request-Id.
//!
//! Run: `cargo bench --bench headers`. Criterion reports time per call; compare runs on the
//! same machine only.

#![allow(clippy::unwrap_used)] // fixed, valid inputs

use criterion::{Criterion, criterion_group, criterion_main};
use http::Version;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sluice::config::HeaderPolicy;
use sluice::proxy::headers::{Forwarding, Rewrite, prepare_request, prepare_response};
use std::hint::black_box;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn browser_request() -> HeaderMap {
    map(&[
        ("host", "shop.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=0123456789abcdef; theme=dark"),
        ("connection", "keep-alive"),
        ("upgrade-insecure-requests", "1"),
    ])
}

fn origin_response() -> HeaderMap {
    map(&[
        ("content-type", "application/json"),
        ("content-length", "1024"),
        ("cache-control", "public, max-age=60"),
        ("etag", "\"abc123\""),
        ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ("date", "Wed, 02 Dec 2026 10:00:00 GMT"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
    ])
}

fn bench(c: &mut Criterion) {
    let policy = Rewrite::new(&HeaderPolicy::default());
    let client = HeaderValue::from_static("192.0.2.7");
    let host = HeaderValue::from_static("shop.example.com");
    let forwarding = Forwarding {
        client: "192.0.2.7".parse().unwrap(),
        client_value: &client,
        host_value: Some(&host),
        proto: "http",
        host: Some("shop.example.com"),
        version: Version::HTTP_11,
        request_id: "0123456789abcdef",
        upgrade: None,
    };
    let request = browser_request();
    c.bench_function("prepare_request (browser GET)", |b| {
        b.iter_batched(
            || request.clone(),
            |mut headers| {
                prepare_request(&mut headers, black_box(&forwarding), &policy);
                headers
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let response = origin_response();
    c.bench_function("prepare_response (origin 200)", |b| {
        b.iter_batched(
            || response.clone(),
            |mut headers| {
                prepare_response(&mut headers, Version::HTTP_11, &policy, false);
                headers
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
