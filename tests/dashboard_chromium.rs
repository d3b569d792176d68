//! The dashboard page in a real headless Chromium: it loads, polls the stats endpoint, shows
//! live data and no error, and a screenshot is saved for people to look at.
//!
//! Until the admin listener serves `/` and `/admin/stats`, the test serves `DASHBOARD_HTML`
//! and `stats_json` itself from a small hyper server on 127.0.0.1:0, fed by a real registry
//! with synthetic traffic, the real resource sampler and the real alert engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sluice::admin::dashboard::{DASHBOARD_HTML, stats_json};
use sluice::metrics::Metrics;
use sluice::metrics::alerts::{AlertBoard, AlertEngine, AlertThresholds};
use sluice::metrics::cache_metrics::CacheOutcome;
use sluice::metrics::resources::{ResourceHandle, ResourceSampler};
use sluice::metrics::totals::RegistryTotals;
use tokio::net::TcpListener;

struct Stats {
    /// When set, `/admin/stats` answers 503: the page must show its error state.
    failing: bool,
    metrics: Arc<Metrics>,
    resources: ResourceHandle,
    board: AlertBoard,
}

impl Stats {
    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let (body, kind) = match request.uri().path() {
            "/" => (
                Bytes::from_static(DASHBOARD_HTML.as_bytes()),
                "text/html; charset=utf-8",
            ),
            "/admin/stats" if self.failing => {
                let mut response = Response::new(Full::new(Bytes::from_static(b"down\n")));
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                return response;
            }
            "/admin/stats" => {
                let snapshot = self.resources.latest();
                let alerts = self.board.firing();
                let doc = stats_json(
                    self.metrics.registry(),
                    snapshot.as_deref(),
                    &alerts,
                    SystemTime::now(),
                );
                (Bytes::from(doc.to_string()), "application/json")
            }
            _ => {
                let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                return response;
            }
        };
        let mut response = Response::new(Full::new(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
        response
    }
}

/// Synthetic traffic on two routes, cache outcomes, pool metrics under the names the pool
/// code will export, the sampler and the alert engine, all running in the background.
fn start_feeding(metrics: &Arc<Metrics>) -> (ResourceHandle, AlertBoard) {
    let registry = metrics.registry();
    let cache = metrics.route_cache("static");
    // The pool code's own gauge, set as a scrape would from live backend state.
    for (backend, up) in [
        ("10.0.0.1:8080", true),
        ("10.0.0.2:8080", true),
        ("10.0.0.3:8080", false),
    ] {
        metrics.set_backend_state("api", backend, 0, up);
    }
    metrics.set_backend_state("static", "10.0.1.1:8080", 0, true);
    let mut sampler = ResourceSampler::new(registry)
        .unwrap()
        .with_memory_budget(Some(512 << 20));
    sampler.sample().unwrap();
    let resources = sampler.handle();
    let mut engine = AlertEngine::new(AlertThresholds {
        backend_down_for: Duration::ZERO,
        ..AlertThresholds::default()
    });
    let board = engine.board();
    let (api, assets) = (metrics.route("api"), metrics.route("static"));
    metrics
        .listener("main")
        .active(sluice::metrics::ConnectionProtocol::Http1)
        .set(12);
    metrics
        .listener("admin")
        .active(sluice::metrics::ConnectionProtocol::Http1)
        .set(1);
    let feeder = Arc::clone(metrics);
    tokio::spawn(async move {
        let mut tick = 0u64;
        loop {
            tick += 1;
            // Latencies spread over the buckets, a few 5xx and 4xx.
            let seconds = 0.002
                + (tick % 17) as f64 * 0.004
                + if tick.is_multiple_of(50) { 0.4 } else { 0.0 };
            api.observe(
                if tick.is_multiple_of(40) { 503 } else { 200 },
                seconds,
                2048,
            );
            assets.observe(
                if tick.is_multiple_of(9) { 404 } else { 200 },
                seconds / 4.0,
                16384,
            );
            cache.observe(if tick.is_multiple_of(5) {
                CacheOutcome::Miss
            } else {
                CacheOutcome::Hit
            });
            if tick.is_multiple_of(25) {
                let totals = RegistryTotals::gather(feeder.registry());
                let snapshot = sampler.sample().ok();
                engine.tick(
                    &totals,
                    snapshot.as_deref(),
                    tokio::time::Instant::now(),
                    SystemTime::now(),
                );
            }
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    });
    (resources, board)
}

async fn serve(stats: Arc<Stats>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = stats.respond(&request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Runs headless Chromium with `extra` arguments on `url` and returns its stdout.
async fn chromium(profile: &Path, url: &str, extra: &[&str]) -> String {
    let mut command = tokio::process::Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("chromium did not finish in 120 s")
        .expect("chromium could not start");
    assert!(
        output.status.success(),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An attribute of the `<body>` tag.
fn attribute<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let body = dom.get(dom.find("<body")?..)?;
    let body = body.get(..body.find('>')?)?;
    let start = body.find(&format!(" {name}=\""))? + name.len() + 3;
    let rest = body.get(start..)?;
    rest.get(..rest.find('"')?)
}

fn text_of<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let open = dom.find(&format!("id=\"{id}\""))?;
    let rest = dom.get(open..)?;
    let start = rest.find('>')? + 1;
    let rest = rest.get(start..)?;
    rest.get(..rest.find('<')?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_data_in_headless_chromium_and_saves_a_screenshot() {
    if !common::tool_available("chromium") {
        return;
    }
    let metrics = Arc::new(Metrics::new().unwrap());
    let (resources, board) = start_feeding(&metrics);
    let addr = serve(Arc::new(Stats {
        failing: false,
        metrics,
        resources,
        board,
    }))
    .await;
    let url = format!("http://{addr}/");
    let profile = tempfile::tempdir().unwrap();

    let dom = chromium(profile.path(), &url, &["--dump-dom"]).await;
    assert_eq!(
        attribute(&dom, "data-state"),
        Some("live"),
        "the page is not live:\n{dom}"
    );
    let samples: usize = attribute(&dom, "data-samples").unwrap().parse().unwrap();
    assert!(samples >= 2, "only {samples} polls arrived");
    assert!(
        text_of(&dom, "state") == Some("live"),
        "the status pill is not live"
    );
    let rps = text_of(&dom, "rps").unwrap();
    assert!(rps != "—" && !rps.is_empty(), "no request rate: {rps:?}");
    assert!(text_of(&dom, "p99").is_some_and(|p| p.ends_with("ms") || p.ends_with(" s")));
    assert!(
        dom.contains("SluiceBackendDown"),
        "the firing alert is not shown"
    );
    assert!(dom.contains("10.0.0.3:8080"), "the backends are not shown");

    let shot: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let screenshot = format!("--screenshot={}", shot.display());
    chromium(
        profile.path(),
        &url,
        &[
            screenshot.as_str(),
            "--window-size=1400,900",
            "--hide-scrollbars",
        ],
    )
    .await;
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    println!("dashboard screenshot: {} ({size} bytes)", shot.display());
    assert!(
        size > 20_000,
        "screenshot is too small to show anything: {size} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_its_error_state_when_the_stats_endpoint_fails() {
    if !common::tool_available("chromium") {
        return;
    }
    let addr = serve(Arc::new(Stats {
        failing: true,
        metrics: Arc::new(Metrics::new().unwrap()),
        resources: ResourceHandle::default(),
        board: AlertBoard::default(),
    }))
    .await;
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(profile.path(), &format!("http://{addr}/"), &["--dump-dom"]).await;
    assert_eq!(attribute(&dom, "data-state"), Some("error"), "{dom}");
    assert_eq!(attribute(&dom, "data-samples"), Some("0"));
    assert_eq!(text_of(&dom, "error-text"), Some("HTTP 503"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_admin_listener_serves_a_live_dashboard() {
    if !common::tool_available("chromium") {
        return;
    }
    let origin = common::Origin::fixed("ok").await;
    let text = common::config_text(
        &[origin.addr],
        "[monitoring]\nsample_interval = \"100ms\"\nalert_interval = \"100ms\"\n",
    );
    let app = common::start_proxy(&text).await;
    let addr = app.addr().unwrap();
    // Traffic while the page polls.
    let traffic = tokio::spawn(async move {
        for _ in 0..400 {
            let _ = common::get(addr, "/").await;
            tokio::task::yield_now().await;
        }
    });
    let admin = app.admin_addr().unwrap();
    let (response, body) = common::get(admin, "/admin/stats").await;
    assert_eq!(response.status(), http::StatusCode::OK);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    let (response, body) = common::get(admin, "/admin/alerts").await;
    assert_eq!(response.status(), http::StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("alerts"));
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(profile.path(), &format!("http://{admin}/"), &["--dump-dom"]).await;
    assert_eq!(
        attribute(&dom, "data-state"),
        Some("live"),
        "the page is not live:\n{dom}"
    );
    traffic.await.unwrap();
    app.shutdown().await;
}
