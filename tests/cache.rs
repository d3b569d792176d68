//! The cache over real sockets: a scripted origin, Sluice in-process, an HTTP/1.1 client.
//! Staleness is made without waiting: the origin sends an `Age` past its `max-age`, so a
//! stored response is stale the moment it is stored (RFC 9111 4.2.3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use common::*;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use sluice::app::App;

const TOKEN: &str = "test-purge-token-0123456789";

fn cache_config(origin: SocketAddr, route_cache: &str) -> String {
    config_text(
        &[origin],
        &format!("[routes.cache]\n{route_cache}\n\n[purge]\ntoken = \"{TOKEN}\"\n"),
    )
}

async fn cached_proxy(origin: SocketAddr) -> App {
    start_proxy(&cache_config(origin, "")).await
}

/// A caching proxy started from a config file, so that a test can edit and reload it. The
/// directory lives as long as the returned guard.
async fn cached_proxy_from_file(
    origin: SocketAddr,
) -> (App, tempfile::TempDir, std::path::PathBuf) {
    start_from_file(&cache_config(origin, "")).await
}

/// The origin goes away: the pool now points at a port nobody listens on (the cache stays).
async fn point_at_a_closed_port(app: &App, path: &std::path::Path) {
    std::fs::write(path, cache_config(closed_port().await, "")).unwrap();
    app.reload().await.unwrap();
}

fn header<'a>(response: &'a Response<()>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (Response<()>, Bytes) {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(&h1_client(), builder.body(empty()).unwrap()).await
}

/// An origin answering `body` for every path with these headers.
async fn origin_with(
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> Origin {
    Origin::start(move |_| async move {
        let mut response = Response::new(full(body));
        for (name, value) in headers {
            response.headers_mut().insert(*name, value.parse().unwrap());
        }
        response
    })
    .await
}

async fn admin_purge(
    app: &App,
    token: Option<&str>,
    body: &str,
) -> (Response<()>, serde_json::Value) {
    let mut builder = Request::post(format!("http://{}/admin/purge", app.admin_addr().unwrap()));
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let (response, bytes) = send(&h1_client(), builder.body(full(body.to_string())).unwrap()).await;
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (response, value)
}

#[tokio::test]
async fn a_repeated_get_is_a_miss_then_a_hit_with_age() {
    let origin = origin_with(&[("cache-control", "public, max-age=300")], "hello").await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();

    let (first, body) = get(addr, "/a").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(body, "hello");
    assert!(
        header(&first, "cache-status").contains("fwd=uri-miss"),
        "{first:?}"
    );
    assert!(
        header(&first, "cache-status").contains("stored"),
        "{first:?}"
    );

    let (second, body) = get(addr, "/a").await;
    assert_eq!(body, "hello");
    assert!(
        header(&second, "cache-status").contains("sluice; hit"),
        "{second:?}"
    );
    assert!(!header(&second, "age").is_empty(), "a hit carries Age");
    assert_eq!(origin.count(), 1, "the hit did not reach the origin");

    let (other, _) = get(addr, "/b").await;
    assert!(header(&other, "cache-status").contains("fwd=uri-miss"));
    assert_eq!(origin.count(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn an_uncacheable_response_says_why_it_was_not_stored() {
    let origin = origin_with(&[("cache-control", "private, max-age=300")], "mine").await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    let (first, _) = get(addr, "/p").await;
    assert!(
        header(&first, "cache-status").contains("detail=private"),
        "{first:?}"
    );
    get(addr, "/p").await;
    assert_eq!(origin.count(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn vary_keeps_one_variant_per_accept_encoding() {
    let origin = Origin::start(|request: Request<Incoming>| async move {
        let gzip = request
            .headers()
            .get("accept-encoding")
            .is_some_and(|v| v.to_str().unwrap().contains("gzip"));
        let mut response = Response::new(full(if gzip { "zipped" } else { "plain" }));
        let headers = response.headers_mut();
        headers.insert("cache-control", "max-age=300".parse().unwrap());
        headers.insert("vary", "Accept-Encoding".parse().unwrap());
        response
    })
    .await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();

    let (_, body) = request(
        addr,
        Method::GET,
        "/v",
        &[("accept-encoding", "gzip, deflate")],
    )
    .await;
    assert_eq!(body, "zipped");
    let (plain, body) = request(addr, Method::GET, "/v", &[]).await;
    assert_eq!(body, "plain");
    assert!(
        header(&plain, "cache-status").contains("fwd=vary-miss"),
        "{plain:?}"
    );
    assert_eq!(origin.count(), 2);

    // Normalised to the set of acceptable codings: order, case and refused codings aside.
    let (hit, body) = request(
        addr,
        Method::GET,
        "/v",
        &[("accept-encoding", "Deflate, GZIP, br;q=0")],
    )
    .await;
    assert_eq!(body, "zipped");
    assert!(header(&hit, "cache-status").contains("hit"), "{hit:?}");
    let (hit, body) = request(addr, Method::GET, "/v", &[]).await;
    assert_eq!(body, "plain");
    assert!(header(&hit, "cache-status").contains("hit"), "{hit:?}");
    assert_eq!(origin.count(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_304_revalidation_merges_the_new_headers_into_the_stored_response() {
    let origin = Origin::start(|request: Request<Incoming>| async move {
        if request
            .headers()
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            let headers = response.headers_mut();
            headers.insert("etag", "\"v1\"".parse().unwrap());
            headers.insert("cache-control", "max-age=300".parse().unwrap());
            headers.insert("x-version", "b".parse().unwrap());
            return response;
        }
        let mut response = Response::new(full("body-v1"));
        let headers = response.headers_mut();
        headers.insert("etag", "\"v1\"".parse().unwrap());
        headers.insert("cache-control", "max-age=10".parse().unwrap());
        headers.insert("age", "20".parse().unwrap());
        headers.insert("x-version", "a".parse().unwrap());
        response
    })
    .await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();

    let (first, _) = get(addr, "/r").await;
    assert_eq!(header(&first, "x-version"), "a");
    let (second, body) = get(addr, "/r").await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(body, "body-v1", "the stored body is served after a 304");
    assert_eq!(
        header(&second, "x-version"),
        "b",
        "the 304's fields replace the stored ones"
    );
    let status = header(&second, "cache-status");
    assert!(
        status.contains("fwd=stale") && status.contains("fwd-status=304"),
        "{status}"
    );
    assert_eq!(
        origin.last().headers.get("if-none-match").unwrap(),
        "\"v1\""
    );
    assert_eq!(origin.count(), 2);

    let (third, _) = get(addr, "/r").await;
    assert!(
        header(&third, "cache-status").contains("hit"),
        "fresh again after the 304"
    );
    assert_eq!(origin.count(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_while_exactly_one_background_fetch_runs() {
    let release = Arc::new(tokio::sync::Notify::new());
    let fetches = Arc::new(AtomicUsize::new(0));
    let (gate, count) = (Arc::clone(&release), Arc::clone(&fetches));
    let origin = Origin::start(move |_| {
        let gate = Arc::clone(&gate);
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                let mut response = Response::new(full("old"));
                let headers = response.headers_mut();
                headers.insert(
                    "cache-control",
                    "max-age=10, stale-while-revalidate=600".parse().unwrap(),
                );
                headers.insert("age", "20".parse().unwrap());
                headers.insert("etag", "\"old\"".parse().unwrap());
                return response;
            }
            // The background refresh waits until the test has sent its stale requests.
            gate.notified().await;
            let mut response = Response::new(full("new"));
            response
                .headers_mut()
                .insert("cache-control", "max-age=600".parse().unwrap());
            response
        }
    })
    .await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();

    get(addr, "/swr").await;
    let mut stale = Vec::new();
    for _ in 0..20 {
        stale.push(tokio::spawn(async move { get(addr, "/swr").await }));
    }
    for task in stale {
        let (response, body) = task.await.unwrap();
        assert_eq!(body, "old");
        assert!(
            header(&response, "cache-status").contains("detail=stale-while-revalidate"),
            "{response:?}"
        );
    }
    eventually("the background fetch to start", || async {
        origin.count() == 2
    })
    .await;
    assert_eq!(
        origin.count(),
        2,
        "twenty stale hits made exactly one background fetch"
    );
    release.notify_one();
    eventually("the refreshed response to be served", || async {
        get(addr, "/swr").await.1 == "new"
    })
    .await;
    assert_eq!(origin.count(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn stale_if_error_serves_stale_on_a_5xx_and_cache_status_says_so() {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&failing);
    let origin = Origin::start(move |_| {
        let failing = flag.load(Ordering::SeqCst);
        async move {
            if failing {
                let mut response = Response::new(full("down"));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return response;
            }
            let mut response = Response::new(full("kept"));
            let headers = response.headers_mut();
            headers.insert(
                "cache-control",
                "max-age=10, stale-if-error=600".parse().unwrap(),
            );
            headers.insert("age", "20".parse().unwrap());
            response
        }
    })
    .await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    get(addr, "/sie").await;
    failing.store(true, Ordering::SeqCst);
    let (response, body) = get(addr, "/sie").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "kept");
    let status = header(&response, "cache-status");
    assert!(
        status.contains("fwd=stale") && status.contains("fwd-status=503"),
        "{status}"
    );
    assert!(status.contains("detail=stale-if-error"), "{status}");
    app.shutdown().await;
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_is_unreachable() {
    let origin = origin_with(
        &[
            ("cache-control", "max-age=10, stale-if-error=600"),
            ("age", "20"),
        ],
        "kept",
    )
    .await;
    let (app, _dir, path) = cached_proxy_from_file(origin.addr).await;
    let addr = app.addr().unwrap();
    get(addr, "/down").await;
    point_at_a_closed_port(&app, &path).await;
    let (response, body) = get(addr, "/down").await;
    assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    assert_eq!(body, "kept");
    let status = header(&response, "cache-status");
    assert!(
        status.contains("fwd=stale") && status.contains("detail=stale-if-error"),
        "{status}"
    );
    // Without stale-if-error the same outage is a 502.
    let (response, _) = get(addr, "/never-stored").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    app.shutdown().await;
}

#[tokio::test]
async fn a_hundred_concurrent_misses_make_one_origin_request() {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::clone(&release);
    let origin = Origin::start(move |_| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            let mut response = Response::new(full("shared"));
            response
                .headers_mut()
                .insert("cache-control", "max-age=300".parse().unwrap());
            response
        }
    })
    .await;
    // Longer than DEADLINE: on a loaded machine the waiters must not time out first.
    let app = start_proxy(&cache_config(origin.addr, "coalesce_timeout = \"120s\"")).await;
    let addr = app.addr().unwrap();
    let mut requests = Vec::new();
    for _ in 0..100 {
        requests.push(tokio::spawn(async move { get(addr, "/hot").await }));
    }
    let shared = Arc::clone(app.shared());
    // The leader's request may reach the origin after the 99 have started to wait.
    let count = Arc::clone(&origin.requests);
    eventually(
        "99 requests to wait on the first, whose request reached the origin",
        || {
            let shared = Arc::clone(&shared);
            let count = Arc::clone(&count);
            async move {
                shared.cache.snapshot().coalesced_waits == 99 && count.load(Ordering::SeqCst) >= 1
            }
        },
    )
    .await;
    assert_eq!(origin.count(), 1);
    release.notify_one();
    let mut collapsed = 0;
    for task in requests {
        let (response, body) = task.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, "shared");
        if header(&response, "cache-status").contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(collapsed, 99);
    assert_eq!(
        origin.count(),
        1,
        "100 concurrent misses made one origin request"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_uncacheable_answer_releases_coalesced_waiters_at_once() {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::clone(&release);
    let seen = Arc::new(AtomicUsize::new(0));
    let origin = Origin::start(move |_| {
        let gate = Arc::clone(&gate);
        let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                gate.notified().await;
            }
            let mut response = Response::new(full("private"));
            response
                .headers_mut()
                .insert("cache-control", "no-store".parse().unwrap());
            response
        }
    })
    .await;
    // Longer than DEADLINE: on a loaded machine the waiters must not time out first.
    let app = start_proxy(&cache_config(origin.addr, "coalesce_timeout = \"120s\"")).await;
    let addr = app.addr().unwrap();
    let mut requests = Vec::new();
    for _ in 0..10 {
        requests.push(tokio::spawn(async move { get(addr, "/nostore").await }));
    }
    let shared = Arc::clone(app.shared());
    eventually("9 requests to wait on the first", || {
        let shared = Arc::clone(&shared);
        async move { shared.cache.snapshot().coalesced_waits == 9 }
    })
    .await;
    release.notify_one();
    for task in requests {
        assert_eq!(task.await.unwrap().0.status(), StatusCode::OK);
    }
    // The leader's answer was not storable: each waiter went to the origin itself at once,
    // none after waiting out the coalescing timeout.
    assert_eq!(origin.count(), 10);
    assert_eq!(app.shared().cache.snapshot().coalesced_timeouts, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn post_put_and_delete_invalidate_the_stored_response() {
    let origin = origin_with(&[("cache-control", "max-age=300")], "item").await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let path = format!("/items/{method}");
        get(addr, &path).await;
        assert!(is_hit(addr, &path).await, "{path} is stored");
        let before = origin.count();
        let (response, _) = request(addr, method.clone(), &path, &[("content-length", "0")]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            header(&response, "cache-status").contains("fwd=bypass"),
            "{response:?}"
        );
        let (after, _) = get(addr, &path).await;
        assert!(
            header(&after, "cache-status").contains("fwd=uri-miss"),
            "{method} invalidated {path}: {after:?}"
        );
        assert_eq!(
            origin.count(),
            before + 2,
            "the {method} and the GET after it"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn range_and_head_are_answered_from_a_stored_get() {
    let origin = origin_with(
        &[("cache-control", "max-age=300"), ("etag", "\"r\"")],
        "0123456789",
    )
    .await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    get(addr, "/file").await;

    let (partial, body) = request(addr, Method::GET, "/file", &[("range", "bytes=2-5")]).await;
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, "2345");
    assert_eq!(header(&partial, "content-range"), "bytes 2-5/10");
    assert!(header(&partial, "cache-status").contains("hit"));

    let (unsatisfiable, _) = request(addr, Method::GET, "/file", &[("range", "bytes=50-")]).await;
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    let (head, body) = request(addr, Method::HEAD, "/file", &[]).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&head, "content-length"), "10");
    assert_eq!(header(&head, "accept-ranges"), "bytes");
    assert!(header(&head, "cache-status").contains("hit"));

    let (not_modified, _) =
        request(addr, Method::GET, "/file", &[("if-none-match", "\"r\"")]).await;
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(origin.count(), 1, "all answered from the one stored GET");
    app.shutdown().await;
}

#[tokio::test]
async fn head_range_and_conditional_misses_store_the_whole_response_and_are_answered_from_it() {
    let origin = origin_with(
        &[("cache-control", "max-age=300"), ("etag", "\"r\"")],
        "0123456789",
    )
    .await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();

    let (head, body) = request(addr, Method::HEAD, "/head", &[]).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&head, "content-length"), "10");
    assert!(
        header(&head, "cache-status").contains("fwd=uri-miss"),
        "{head:?}"
    );
    assert!(header(&head, "cache-status").contains("stored"), "{head:?}");

    let (partial, body) = request(addr, Method::GET, "/range", &[("range", "bytes=2-5")]).await;
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, "2345");
    assert_eq!(header(&partial, "content-range"), "bytes 2-5/10");

    let (not_modified, body) = request(
        addr,
        Method::GET,
        "/conditional",
        &[("if-none-match", "\"r\"")],
    )
    .await;
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());

    for seen in origin.all() {
        assert_eq!(seen.method, Method::GET, "{}", seen.uri);
        for name in ["range", "if-range", "if-none-match", "if-modified-since"] {
            assert!(
                !seen.headers.contains_key(name),
                "{name} went to the origin"
            );
        }
    }
    assert_eq!(origin.count(), 3);
    for path in ["/head", "/range", "/conditional"] {
        let (hit, body) = get(addr, path).await;
        assert_eq!(body, "0123456789", "{path}");
        assert!(
            header(&hit, "cache-status").contains("hit"),
            "{path}: {hit:?}"
        );
    }
    assert_eq!(
        origin.count(),
        3,
        "the misses stored what the GETs were served from"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_unstored_answer_to_a_head_range_or_conditional_miss_is_judged_on_its_head() {
    let origin = origin_with(
        &[("cache-control", "no-store"), ("etag", "\"u\"")],
        "0123456789",
    )
    .await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();

    let (head, body) = request(addr, Method::HEAD, "/u", &[]).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert!(
        header(&head, "cache-status").contains("detail=no-store"),
        "{head:?}"
    );
    // The range is cut out of the stream, as the length is declared.
    let (partial, body) = request(addr, Method::GET, "/u", &[("range", "bytes=2-5")]).await;
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, "2345");
    assert_eq!(header(&partial, "content-range"), "bytes 2-5/10");
    // An If-Range naming another version: the whole 200.
    let (whole, body) = request(
        addr,
        Method::GET,
        "/u",
        &[("range", "bytes=2-5"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(body, "0123456789");
    let (not_modified, _) = request(addr, Method::GET, "/u", &[("if-none-match", "\"u\"")]).await;
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    let (modified, body) = request(addr, Method::GET, "/u", &[("if-none-match", "\"x\"")]).await;
    assert_eq!(modified.status(), StatusCode::OK);
    assert_eq!(body, "0123456789");
    assert_eq!(origin.count(), 5);
    assert_eq!(app.shared().cache.store_ref().objects(), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_range_miss_over_the_object_limit_is_cut_from_the_stream_or_sent_whole() {
    let origin = Origin::start(|_| async {
        let mut chunks = vec![Bytes::from(vec![b'a'; 1024]); 4];
        chunks.push(Bytes::from_static(b"end"));
        let body = chunked(chunks, None);
        let mut response = Response::new(body);
        response
            .headers_mut()
            .insert("cache-control", "max-age=300".parse().unwrap());
        response
    })
    .await;
    let app = start_proxy(&cache_config(origin.addr, "max_object_size = \"1KiB\"")).await;
    let addr = app.addr().unwrap();
    let (response, body) = request(addr, Method::GET, "/big", &[("range", "bytes=0-1")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body.len(),
        4 * 1024 + 3,
        "the frames read before the limit and the rest"
    );
    assert!(body.ends_with(b"end"));
    let (head, body) = request(addr, Method::HEAD, "/big", &[]).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(
        app.shared().cache.store_ref().objects(),
        0,
        "too big to store"
    );
    assert_eq!(origin.count(), 2);
    app.shutdown().await;

    // A declared length over the limit: nothing is read ahead, the range is cut from the stream.
    let big: &'static str = Box::leak("0123456789".repeat(300).into_boxed_str());
    let origin = origin_with(&[("cache-control", "max-age=300")], big).await;
    let app = start_proxy(&cache_config(origin.addr, "max_object_size = \"1KiB\"")).await;
    let addr = app.addr().unwrap();
    let (partial, body) = request(addr, Method::GET, "/big", &[("range", "bytes=2995-")]).await;
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, "56789");
    assert_eq!(header(&partial, "content-range"), "bytes 2995-2999/3000");
    let (unsatisfiable, _) = request(addr, Method::GET, "/big", &[("range", "bytes=5000-")]).await;
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(app.shared().cache.store_ref().objects(), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn purge_tag_headers_are_stripped_for_clients_and_kept_for_a_cdn() {
    let origin = origin_with(
        &[
            ("cache-control", "max-age=300"),
            ("surrogate-key", "a b"),
            ("surrogate-control", "max-age=600"),
        ],
        "tagged",
    )
    .await;
    let text = cache_config(origin.addr, "").replace(
        "name = \"main\"\naddr = \"127.0.0.1:0\"",
        "name = \"main\"\naddr = \"127.0.0.1:0\"\nfacing = \"cdn\"",
    );
    let cdn = start_proxy(&text).await;
    let client = cached_proxy(origin.addr).await;
    for _ in 0..2 {
        let (response, _) = get(client.addr().unwrap(), "/t").await;
        assert_eq!(header(&response, "surrogate-key"), "");
        assert_eq!(header(&response, "surrogate-control"), "");
        let (response, _) = get(cdn.addr().unwrap(), "/t").await;
        assert_eq!(header(&response, "surrogate-key"), "a b");
        assert_eq!(header(&response, "surrogate-control"), "");
    }
    cdn.shutdown().await;
    client.shutdown().await;
}

/// An origin whose responses carry `Surrogate-Key: <tag of the path>` and an ETag, and whose
/// answers to conditional requests are 304.
async fn tagging_origin() -> Origin {
    Origin::start(|request: Request<Incoming>| async move {
        if request.headers().contains_key("if-none-match") {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
                .headers_mut()
                .insert("etag", "\"e\"".parse().unwrap());
            return response;
        }
        let path = request.uri().path().to_string();
        let tag = if path.starts_with("/products/") {
            "products"
        } else {
            "other"
        };
        let mut response = Response::new(full(path.clone()));
        let headers = response.headers_mut();
        headers.insert("cache-control", "max-age=300".parse().unwrap());
        headers.insert("etag", "\"e\"".parse().unwrap());
        headers.insert(
            "surrogate-key",
            format!("{tag} path-{}", path.replace('/', "-"))
                .parse()
                .unwrap(),
        );
        response
    })
    .await
}

async fn is_hit(addr: SocketAddr, path: &str) -> bool {
    header(&get(addr, path).await.0, "cache-status").contains("hit")
}

async fn warm(addr: SocketAddr, paths: &[&str]) {
    for path in paths {
        get(addr, path).await;
        assert!(is_hit(addr, path).await, "{path} is stored");
    }
}

#[tokio::test]
async fn purge_by_url_prefix_tag_host_and_everything_with_a_dry_run() {
    let origin = tagging_origin().await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    let paths = ["/products/1", "/products/2", "/about", "/contact"];
    warm(addr, &paths).await;
    let host = format!("127.0.0.1:{}", addr.port());

    let (response, outcome) =
        admin_purge(&app, Some(TOKEN), r#"{"tags":["products"],"dry_run":true}"#).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(outcome["matched"], 2);
    assert_eq!(outcome["dry_run"], true);
    assert!(
        is_hit(addr, "/products/1").await,
        "a dry run removes nothing"
    );

    let (_, outcome) = admin_purge(
        &app,
        Some(TOKEN),
        &format!(r#"{{"urls":["http://{host}/about"]}}"#),
    )
    .await;
    assert_eq!(outcome["matched"], 1);
    assert!(!is_hit(addr, "/about").await);
    assert!(is_hit(addr, "/contact").await);

    let (_, outcome) = admin_purge(
        &app,
        Some(TOKEN),
        &format!(r#"{{"prefixes":["http://{host}/products/"]}}"#),
    )
    .await;
    assert_eq!(outcome["matched"], 2);
    assert!(!is_hit(addr, "/products/1").await);
    assert!(
        !is_hit(addr, "/products/2").await,
        "both were purged by the prefix"
    );

    let (_, outcome) = admin_purge(&app, Some(TOKEN), r#"{"tags":["products"]}"#).await;
    assert_eq!(outcome["matched"], 2);
    assert!(!is_hit(addr, "/products/2").await);

    warm(addr, &paths).await;
    let (_, outcome) = admin_purge(&app, Some(TOKEN), r#"{"hosts":["127.0.0.1"]}"#).await;
    assert_eq!(outcome["matched"], 4);
    assert!(!is_hit(addr, "/contact").await);

    warm(addr, &paths).await;
    let (_, outcome) = admin_purge(&app, Some(TOKEN), r#"{"everything":true}"#).await;
    assert_eq!(outcome["matched"], 4);
    assert_eq!(app.shared().cache.store_ref().objects(), 0);

    let (response, _) = admin_purge(&app, Some(TOKEN), r#"{"unknown":1}"#).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (response, _) = admin_purge(&app, Some(TOKEN), r#"{}"#).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    app.shutdown().await;
}

#[tokio::test]
async fn a_purged_url_is_keyed_with_the_query_rules_of_its_route() {
    let origin = tagging_origin().await;
    let app = start_proxy(&cache_config(
        origin.addr,
        "\n[routes.cache.key]\nquery = [\"utm_source\"]\nsort_query = true",
    ))
    .await;
    let addr = app.addr().unwrap();
    let host = format!("127.0.0.1:{}", addr.port());
    warm(addr, &["/products/1?b=2&a=1", "/about?x=1"]).await;
    assert!(
        is_hit(addr, "/products/1?a=1&utm_source=mail&b=2").await,
        "the route sorts the query and drops utm_source"
    );

    // Named the way a client asked for it, not the way it is stored.
    let (_, outcome) = admin_purge(
        &app,
        Some(TOKEN),
        &format!(r#"{{"urls":["http://{host}/products/1?utm_source=x&b=2&a=1"]}}"#),
    )
    .await;
    assert_eq!(outcome["matched"], 1);
    assert!(!is_hit(addr, "/products/1?a=1&b=2").await);

    // Without a scheme: both http and https match.
    let (_, outcome) = admin_purge(
        &app,
        Some(TOKEN),
        &format!(r#"{{"urls":["{host}/about?x=1"]}}"#),
    )
    .await;
    assert_eq!(outcome["matched"], 1);
    assert!(!is_hit(addr, "/about?x=1").await);
    app.shutdown().await;
}

#[tokio::test]
async fn a_soft_purge_marks_stale_and_the_next_request_revalidates() {
    let origin = tagging_origin().await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    warm(addr, &["/products/9"]).await;
    let before = origin.count();
    let (_, outcome) = admin_purge(&app, Some(TOKEN), r#"{"tags":["products"],"soft":true}"#).await;
    assert_eq!(outcome["matched"], 1);
    assert_eq!(outcome["soft"], true);
    assert_eq!(
        app.shared().cache.store_ref().objects(),
        1,
        "a soft purge keeps the entry"
    );

    let (response, body) = get(addr, "/products/9").await;
    assert_eq!(body, "/products/9");
    let status = header(&response, "cache-status");
    assert!(
        status.contains("fwd=stale") && status.contains("fwd-status=304"),
        "{status}"
    );
    assert_eq!(origin.count(), before + 1);
    assert!(
        origin.last().headers.contains_key("if-none-match"),
        "revalidated conditionally"
    );
    assert!(
        is_hit(addr, "/products/9").await,
        "fresh again after the 304"
    );
    app.shutdown().await;
}

/// An origin whose representation has a version: ETag `"vN"`, body `N` repeated ten times; a
/// request whose If-None-Match names the current version gets a 304.
async fn versioned_origin(version: Arc<AtomicUsize>) -> Origin {
    Origin::start(move |request: Request<Incoming>| {
        let current = version.load(Ordering::SeqCst);
        async move {
            let etag = format!("\"v{current}\"");
            let same = request
                .headers()
                .get("if-none-match")
                .is_some_and(|value| value.as_bytes() == etag.as_bytes());
            let mut response = if same {
                let mut response = Response::new(empty());
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                response
            } else {
                Response::new(full(current.to_string().repeat(10)))
            };
            let headers = response.headers_mut();
            headers.insert("cache-control", "max-age=300".parse().unwrap());
            headers.insert("etag", etag.parse().unwrap());
            response
        }
    })
    .await
}

#[tokio::test]
async fn a_stale_entry_asked_for_by_range_or_head_is_revalidated_with_a_get_of_the_whole() {
    let version = Arc::new(AtomicUsize::new(1));
    let origin = versioned_origin(Arc::clone(&version)).await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    let soft_purge = || async {
        let (_, outcome) =
            admin_purge(&app, Some(TOKEN), r#"{"everything":true,"soft":true}"#).await;
        assert_eq!(outcome["matched"], 1, "{outcome}");
    };
    get(addr, "/doc").await;

    // Not modified: the 304 refreshes the entry, which answers the range.
    soft_purge().await;
    let (partial, body) = request(addr, Method::GET, "/doc", &[("range", "bytes=2-5")]).await;
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT, "{partial:?}");
    assert_eq!(body, "1111");
    let status = header(&partial, "cache-status");
    assert!(
        status.contains("fwd=stale") && status.contains("fwd-status=304"),
        "{status}"
    );

    // Modified: the 200 replaces the entry and answers the range, then the HEAD.
    version.store(2, Ordering::SeqCst);
    soft_purge().await;
    let (partial, body) = request(addr, Method::GET, "/doc", &[("range", "bytes=0-2")]).await;
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT, "{partial:?}");
    assert_eq!(body, "222");
    assert_eq!(header(&partial, "content-range"), "bytes 0-2/10");
    assert!(is_hit(addr, "/doc").await, "the new version is stored");
    version.store(3, Ordering::SeqCst);
    soft_purge().await;
    let (head, body) = request(addr, Method::HEAD, "/doc", &[]).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&head, "etag"), "\"v3\"");
    let (hit, body) = get(addr, "/doc").await;
    assert_eq!(body, "3333333333");
    assert!(header(&hit, "cache-status").contains("hit"), "{hit:?}");

    let seen = origin.all();
    assert_eq!(seen.len(), 4, "one fill and three revalidations");
    for (index, seen) in seen.iter().enumerate() {
        assert_eq!(seen.method, Method::GET);
        assert!(
            !seen.headers.contains_key("range"),
            "request {index} had a range"
        );
        assert_eq!(
            seen.headers.contains_key("if-none-match"),
            index > 0,
            "request {index}: only revalidations are conditional"
        );
    }
    app.shutdown().await;
}

/// Captures the `sluice::audit` log lines of this test binary.
fn audit_lines() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LINES: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    Arc::clone(LINES.get_or_init(|| {
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = Arc::clone(&lines);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("sluice::audit=info")
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&writer)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        lines
    }))
}

struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(lines: &std::sync::Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&lines.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn an_unauthorised_purge_is_refused_removes_nothing_and_is_audited() {
    let lines = audit_lines();
    let origin = tagging_origin().await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    warm(addr, &["/products/5"]).await;

    let (response, _) = admin_purge(&app, None, r#"{"tags":["products"]}"#).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (response, _) = admin_purge(
        &app,
        Some("wrong-token-wrong-token"),
        r#"{"tags":["audited-tag"]}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(is_hit(addr, "/products/5").await, "nothing was removed");
    assert_eq!(app.shared().cache.store_ref().objects(), 1);
    let log = logged(&lines);
    assert!(
        log.contains("purge refused") && log.contains("tag:audited-tag"),
        "{log}"
    );
    assert!(log.contains("bad token"), "{log}");

    let (response, outcome) = admin_purge(&app, Some(TOKEN), r#"{"tags":["products"]}"#).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(outcome["matched"], 1);
    let log = logged(&lines);
    assert!(
        log.contains("matched=1") && log.contains("credential=\"token\""),
        "{log}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_purge_method_needs_an_allowed_network_or_the_token() {
    let _lines = audit_lines();
    let origin = tagging_origin().await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    warm(addr, &["/about"]).await;

    let purge = Method::from_bytes(b"PURGE").unwrap();
    let (refused, _) = request(addr, purge.clone(), "/about", &[]).await;
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "no allowed networks here, a token is configured"
    );
    assert!(is_hit(addr, "/about").await);

    let bearer = format!("Bearer {TOKEN}");
    let (allowed, body) =
        request(addr, purge.clone(), "/about", &[("authorization", &bearer)]).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&body).contains("\"matched\":1"),
        "{body:?}"
    );
    assert!(!is_hit(addr, "/about").await);

    let text =
        cache_config(origin.addr, "").replace("[purge]\n", "[purge]\nallow = [\"127.0.0.0/8\"]\n");
    let open = start_proxy(&text).await;
    let addr = open.addr().unwrap();
    warm(addr, &["/contact"]).await;
    let (allowed, _) = request(addr, purge, "/contact", &[("soft-purge", "1")]).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let (after, _) = get(addr, "/contact").await;
    assert!(
        header(&after, "cache-status").contains("fwd-status=304"),
        "soft: revalidated"
    );
    open.shutdown().await;
    app.shutdown().await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_churn_the_store_never_exceeds_its_budget_and_rss_stays_bounded() {
    // Bodies of a size given by the path, so the test decides what is stored.
    let origin = Origin::start(|request: Request<Incoming>| async move {
        let size: usize = request
            .uri()
            .path()
            .trim_start_matches('/')
            .split('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut response = Response::new(full(vec![b'x'; size]));
        response
            .headers_mut()
            .insert("cache-control", "max-age=300".parse().unwrap());
        response
    })
    .await;
    let budget: u64 = 8 << 20;
    let text = cache_config(origin.addr, "max_object_size = \"1MiB\"")
        .replace("[purge]", "[cache]\nsize = \"8MiB\"\n\n[purge]");
    let app = start_proxy(&text).await;
    let addr = app.addr().unwrap();
    let store = || app.shared().cache.store_ref();
    assert_eq!(store().budget() as u64, budget);
    let client = h1_client();
    // A fixed pseudo-random sequence of sizes from 1 KiB to 512 KiB.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut stored: u64 = 0;
    let mut index = 0u64;
    let baseline = rss_bytes();
    let mut peak = baseline;
    while stored < 10 * budget {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let size = 1024 + seed % (512 * 1024);
        index += 1;
        let request = Request::get(format!("http://{addr}/{size}-{index}"))
            .body(empty())
            .unwrap();
        let (response, body) = send(&client, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body.len() as u64, size);
        stored += size;
        assert!(
            store().bytes() as u64 <= budget,
            "{} bytes charged over a {budget} budget",
            store().bytes()
        );
        if index.is_multiple_of(16) {
            peak = peak.max(rss_bytes());
        }
    }
    assert!(app.shared().cache.snapshot().evictions > 0);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < 6 * budget,
        "RSS grew {growth} bytes while {stored} bytes went through an {budget}-byte cache"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_demo_serves_repeats_from_cache_and_a_tag_purge_shows_an_update() {
    let text = sluice::app::DEMO_CONFIG
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace("access = \"stdout\"", "access = \"off\"");
    let seed_config = sluice::config::Config::parse(
        &text.replace("127.0.0.1:8081", "127.0.0.1:0"),
        "demo.toml",
        std::path::Path::new("."),
    )
    .unwrap();
    let backend = sluice::app::start_demo_backend(&seed_config, 200)
        .await
        .unwrap();
    let app = start_proxy(&text.replace("127.0.0.1:8081", &backend.addr.to_string())).await;
    let addr = app.addr().unwrap();

    // Repeated reads are served from the cache.
    let mut hits = 0;
    for _ in 0..10 {
        let (response, _) = get(addr, "/products/7").await;
        assert_eq!(response.status(), StatusCode::OK);
        if header(&response, "cache-status").contains("hit") {
            hits += 1;
        }
    }
    assert_eq!(hits, 9, "one miss, then hits");
    let (list, before) = get(addr, "/products").await;
    assert_eq!(list.status(), StatusCode::OK, "{list:?}");
    assert!(is_hit(addr, "/products").await);

    // An update through the proxy: the product's own URL is invalidated at once...
    let update = Request::put(format!("http://{addr}/products/7"))
        .header("content-type", "application/json")
        .body(full(r#"{"name":"Renamed by the cache test"}"#))
        .unwrap();
    let (updated, _) = send(&h1_client(), update).await;
    assert!(updated.status().is_success(), "{updated:?}");
    let (_, product) = get(addr, "/products/7").await;
    assert!(String::from_utf8_lossy(&product).contains("Renamed by the cache test"));
    // ... the listing still holds the old name until its tag is purged.
    // (The listing is fresh for 10 s: past that, as on a stalled machine, it is revalidated.)
    let (stale, stale_list) = get(addr, "/products").await;
    let status = header(&stale, "cache-status");
    if status.contains("hit") {
        assert_eq!(stale_list, before);
    } else {
        assert!(
            status.contains("fwd=stale"),
            "not a hit only once stale: {status}"
        );
    }
    let demo_token = "demo-purge-token-change-me";
    let (response, outcome) = admin_purge(&app, Some(demo_token), r#"{"tags":["products"]}"#).await;
    assert_eq!(response.status(), StatusCode::OK, "{outcome}");
    assert!(outcome["matched"].as_u64().unwrap() >= 1, "{outcome}");
    let (_, fresh_list) = get(addr, "/products").await;
    assert!(String::from_utf8_lossy(&fresh_list).contains("Renamed by the cache test"));
    app.shutdown().await;
    backend.stop().await;
}

#[tokio::test]
async fn a_response_over_the_object_limit_streams_through_and_releases_waiters_at_once() {
    use http_body_util::BodyExt;
    let rest = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::clone(&rest);
    let seen = Arc::new(AtomicUsize::new(0));
    let origin = Origin::start(move |_| {
        let gate = Arc::clone(&gate);
        let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let chunks = vec![Bytes::from(vec![b'a'; 4096]), Bytes::from_static(b"end")];
            let body = chunked(chunks, first.then_some(gate));
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert("cache-control", "max-age=300".parse().unwrap());
            response
        }
    })
    .await;
    let app = start_proxy(&cache_config(
        origin.addr,
        "max_object_size = \"1KiB\"\ncoalesce_timeout = \"120s\"",
    ))
    .await;
    let addr = app.addr().unwrap();
    let client = h1_client();
    // The leader: its head and first 4 KiB arrive, then the origin holds the rest.
    let leader = client
        .request(
            Request::get(format!("http://{addr}/big"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut leader_body = leader.into_body();
    let first = tokio::time::timeout(DEADLINE, leader_body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.data_ref().map(Bytes::len), Some(4096));
    // A request for the same URL now: released as soon as the leader gave up collecting,
    // it fetches on its own and finishes while the leader's body is still held.
    let (second, body) = get(addr, "/big").await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(body.len(), 4096 + 3);
    rest.notify_one();
    let mut total = 4096;
    while let Some(frame) = tokio::time::timeout(DEADLINE, leader_body.frame())
        .await
        .unwrap()
    {
        total += frame.unwrap().data_ref().map_or(0, Bytes::len);
    }
    assert_eq!(total, 4096 + 3);
    assert_eq!(
        app.shared().cache.store_ref().objects(),
        0,
        "too big to store"
    );
    assert_eq!(app.shared().cache.snapshot().coalesced_timeouts, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_stored_204_is_served_from_cache() {
    let origin = Origin::start(|_| async {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
            .headers_mut()
            .insert("cache-control", "max-age=300".parse().unwrap());
        response
    })
    .await;
    let app = cached_proxy(origin.addr).await;
    let addr = app.addr().unwrap();
    get(addr, "/empty").await;
    let (second, body) = get(addr, "/empty").await;
    assert_eq!(second.status(), StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert!(
        header(&second, "cache-status").contains("hit"),
        "{second:?}"
    );
    assert_eq!(
        header(&second, "content-length"),
        "",
        "RFC 9110 8.6: none on a 204"
    );
    assert_eq!(origin.count(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_briefly_stale_response_is_served_while_the_origin_is_unreachable_unless_it_must_revalidate()
 {
    let origin = Origin::start(|request: Request<Incoming>| async move {
        let strict = request.uri().path() == "/strict";
        let mut response = Response::new(full("kept"));
        let headers = response.headers_mut();
        let cache_control = if strict {
            "max-age=10, must-revalidate"
        } else {
            "max-age=10"
        };
        headers.insert("cache-control", cache_control.parse().unwrap());
        // 10 s stale at once: within the default stale_if_unreachable of 60 s.
        headers.insert("age", "20".parse().unwrap());
        headers.insert("etag", "\"k\"".parse().unwrap());
        response
    })
    .await;
    let (app, _dir, path) = cached_proxy_from_file(origin.addr).await;
    let addr = app.addr().unwrap();
    get(addr, "/plain").await;
    get(addr, "/strict").await;
    point_at_a_closed_port(&app, &path).await;
    let (plain, body) = get(addr, "/plain").await;
    assert_eq!(plain.status(), StatusCode::OK, "{plain:?}");
    assert_eq!(body, "kept");
    assert!(
        header(&plain, "cache-status").contains("fwd=stale"),
        "{plain:?}"
    );
    let (strict, _) = get(addr, "/strict").await;
    assert_eq!(
        strict.status(),
        StatusCode::BAD_GATEWAY,
        "must-revalidate: {strict:?}"
    );
    app.shutdown().await;
}
