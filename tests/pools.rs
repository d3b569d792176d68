//! Backend pools on real sockets: failover, P2C-EWMA, ejection and recovery, slow start,
//! draining, the retry budget, reload consistency and the admin pool API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use http::{Request, Response, StatusCode};
use serde_json::Value;
use sluice::app::App;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// An origin whose connections all end when it is killed (the shared `Origin` only stops
/// accepting), answering with its name, or 500 while `failing`, after `delay` while `slow`.
struct Backend {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    /// Connection tasks not yet dropped.
    open: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    async fn start(name: &'static str, delay: Duration) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let slow = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let (s, f, w) = (Arc::clone(&served), Arc::clone(&failing), Arc::clone(&slow));
        let o = Arc::clone(&open);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let (s, f, w) = (Arc::clone(&s), Arc::clone(&f), Arc::clone(&w));
                let open = OpenConnection::count(&o);
                connections.spawn(async move {
                    let _open = open;
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let (s, f, w) = (Arc::clone(&s), Arc::clone(&f), Arc::clone(&w));
                            async move {
                                if request.uri().path() == "/healthz" {
                                    let status = if f.load(Ordering::SeqCst) { 500 } else { 200 };
                                    let mut response = Response::new(full("check"));
                                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                                    return Ok::<_, std::convert::Infallible>(response);
                                }
                                if w.load(Ordering::SeqCst) {
                                    tokio::time::sleep(delay).await;
                                }
                                s.fetch_add(1, Ordering::SeqCst);
                                let via = request
                                    .headers()
                                    .get("via")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string();
                                let mut response = Response::new(full(format!("{name}|{via}")));
                                if f.load(Ordering::SeqCst) {
                                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                                }
                                Ok(response)
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Backend {
            addr,
            served,
            open,
            failing,
            slow,
            task,
        }
    }

    async fn named(name: &'static str) -> Backend {
        Backend::start(name, Duration::ZERO).await
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes every open connection; returns once nothing of the backend
    /// can serve any more (a connection task that was mid-request when aborted finishes that
    /// poll first, so its request may still count as served before this returns).
    async fn kill(&self) {
        self.task.abort();
        let (addr, open) = (self.addr, Arc::clone(&self.open));
        eventually(
            "the killed backend to refuse connections and close them all",
            || {
                let open = Arc::clone(&open);
                async move {
                    open.load(Ordering::SeqCst) == 0
                        && tokio::net::TcpStream::connect(addr).await.is_err()
                }
            },
        )
        .await;
    }
}

/// Counts a backend connection task for as long as it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn count(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(open))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The test config with `keys` added to `[pools.main]` and `extra` at the end.
fn pool_config(backends: &[SocketAddr], keys: &str, extra: &str) -> String {
    config_text(backends, extra).replace("[pools.main]\n", &format!("[pools.main]\n{keys}\n"))
}

async fn admin_json(app: &App, path: &str) -> Value {
    let (response, body) = get(app.admin_addr().unwrap(), path).await;
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_slice(&body).unwrap()
}

async fn admin_post(app: &App, path: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(format!("http://{}{path}", app.admin_addr().unwrap()))
        .body(full(body.to_string()))
        .unwrap();
    let (response, body) = send(&h1_client(), request).await;
    (response.status(), serde_json::from_slice(&body).unwrap())
}

/// The admin API's view of one backend of pool `main`.
async fn backend_view(app: &App, addr: SocketAddr) -> Value {
    let pools = admin_json(app, "/admin/pools").await;
    pools["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["addr"] == addr.to_string())
        .cloned()
        .unwrap_or(Value::Null)
}

async fn metric(app: &App, prefix: &str) -> f64 {
    let (_, body) = get(app.admin_addr().unwrap(), "/metrics").await;
    let text = String::from_utf8_lossy(&body).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Clients sending GETs until `stop`; each returns its non-200 statuses and bodies seen.
fn steady_load(
    addr: SocketAddr,
    clients: usize,
    stop: &Arc<AtomicBool>,
    ok: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<(Vec<StatusCode>, Vec<String>)>> {
    (0..clients)
        .map(|_| {
            let (stop, ok) = (Arc::clone(stop), Arc::clone(ok));
            tokio::spawn(async move {
                let client = h1_client();
                let (mut failures, mut bodies) = (Vec::new(), Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let request = Request::get(format!("http://{addr}/"))
                        .body(empty())
                        .unwrap();
                    let (response, body) = send(&client, request).await;
                    if response.status() == StatusCode::OK {
                        ok.fetch_add(1, Ordering::Relaxed);
                        let via = response
                            .headers()
                            .get("via")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        bodies.push(format!("{}|{via}", String::from_utf8_lossy(&body)));
                    } else {
                        failures.push(response.status());
                    }
                }
                (failures, bodies)
            })
        })
        .collect()
}

async fn until_more_ok(ok: &Arc<AtomicUsize>, more: usize) {
    let before = ok.load(Ordering::Relaxed);
    eventually("more requests answered", || {
        let ok = Arc::clone(ok);
        async move { ok.load(Ordering::Relaxed) >= before + more }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_during_steady_get_load_fails_no_client_request() {
    let backends = [
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let app = start_proxy(&config_text(&addrs, "")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let clients = steady_load(app.addr().unwrap(), 4, &stop, &ok);
    until_more_ok(&ok, 200).await;
    backends[1].kill().await;
    until_more_ok(&ok, 400).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let (failures, _) = client.await.unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
    assert!(backends[0].served() > 0 && backends[2].served() > 0);
    // The dead backend was tried (a connect error each time) and every such request retried.
    let errors = format!(
        "sluice_backend_errors_total{{backend=\"{}\",pool=\"main\"}}",
        backends[1].addr
    );
    assert!(
        metric(&app, &errors).await >= 1.0,
        "the killed backend was never tried"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_turns_slow_gets_less_traffic_under_p2c_ewma() {
    let backends = [
        Backend::start("fast1", Duration::from_millis(40)).await,
        Backend::start("slow", Duration::from_millis(40)).await,
        Backend::start("fast2", Duration::from_millis(40)).await,
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    // p2c_ewma is the default; said here because the test is about it.
    let app = start_proxy(&pool_config(&addrs, "algorithm = \"p2c_ewma\"", "")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let clients = steady_load(app.addr().unwrap(), 4, &stop, &ok);
    until_more_ok(&ok, 60).await;
    backends[1].slow.store(true, Ordering::SeqCst);
    let before: Vec<usize> = backends.iter().map(Backend::served).collect();
    until_more_ok(&ok, 600).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        assert!(client.await.unwrap().0.is_empty());
    }
    let after: Vec<usize> = backends
        .iter()
        .zip(&before)
        .map(|(b, before)| b.served() - before)
        .collect();
    let slow = after[1];
    let fast = after[0].min(after[2]);
    assert!(
        slow * 3 < fast,
        "the slow backend got {slow}, the fast ones {} and {}",
        after[0],
        after[2]
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_is_ejected_and_returns_after_its_backoff() {
    let bad = Backend::named("bad").await;
    let good = Backend::named("good").await;
    let app = start_proxy(&pool_config(
        &[bad.addr, good.addr],
        "algorithm = \"round_robin\"",
        "[pools.main.outlier]\nconsecutive_5xx = 2\nbase_ejection = \"1s\"\nmax_ejection = \"1s\"\n",
    ))
    .await;
    let addr = app.addr().unwrap();
    bad.failing.store(true, Ordering::SeqCst);
    eventually("the failing backend to be ejected", || async {
        get(addr, "/").await;
        backend_view(&app, bad.addr).await["ejected"] == Value::Bool(true)
    })
    .await;
    bad.failing.store(false, Ordering::SeqCst);
    // While ejected, every request goes to the good backend (the ejection may end meanwhile on
    // a slow machine: then the bad one is back, which the next step waits for anyway).
    let served = bad.served();
    let (response, body) = get(addr, "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    if backend_view(&app, bad.addr).await["ejected"] == Value::Bool(true) {
        assert!(body.starts_with(b"good"));
        assert_eq!(bad.served(), served);
    }
    eventually("the ejected backend to serve again", || async {
        get(addr, "/").await;
        bad.served() > served
    })
    .await;
    // At least one: on a slow machine the first ejection may end before the loop above saw
    // it, and the still-failing backend is ejected again.
    let series = format!(
        "sluice_backend_ejections_total{{backend=\"{}\",pool=\"main\"}} ",
        bad.addr
    );
    let ejections = metric(&app, &series).await;
    assert!(ejections >= 1.0, "{series}{ejections}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_checks_take_an_unhealthy_backend_out_and_bring_it_back() {
    let sick = Backend::named("sick").await;
    let well = Backend::named("well").await;
    let app = start_proxy(&pool_config(
        &[sick.addr, well.addr],
        "algorithm = \"round_robin\"",
        "[pools.main.health]\npath = \"/healthz\"\ninterval = \"50ms\"\njitter = \"10ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n",
    ))
    .await;
    sick.failing.store(true, Ordering::SeqCst);
    eventually("the sick backend to be marked unhealthy", || async {
        backend_view(&app, sick.addr).await["health"] == "unhealthy"
    })
    .await;
    let (_, metrics) = get(app.admin_addr().unwrap(), "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    let gauge = format!(
        "sluice_backend_healthy{{backend=\"{}\",pool=\"main\"}} 0",
        sick.addr
    );
    assert!(metrics.contains(&gauge), "{metrics}");
    let served = sick.served();
    for _ in 0..10 {
        let (response, body) = get(app.addr().unwrap(), "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(body.starts_with(b"well"));
    }
    assert_eq!(sick.served(), served);
    sick.failing.store(false, Ordering::SeqCst);
    eventually("the backend to be healthy again", || async {
        backend_view(&app, sick.addr).await["health"] == "healthy"
    })
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_new_backend_up_over_its_window() {
    let old = Backend::named("old").await;
    let new = Backend::named("new").await;
    let app = start_proxy(&pool_config(
        &[old.addr],
        "algorithm = \"round_robin\"\nslow_start = \"5s\"",
        "",
    ))
    .await;
    let (status, _) = admin_post(
        &app,
        "/admin/pools/main/add",
        serde_json::json!({"addr": new.addr.to_string()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..100 {
        get(app.addr().unwrap(), "/").await;
    }
    let early = new.served();
    let factor = backend_view(&app, new.addr).await["slow_start_factor"]
        .as_f64()
        .unwrap();
    // The factor only grows, so over these 100 requests the new backend's weight was at most
    // `factor` against the old one's 1: its share is bounded by factor / (1 + factor), however
    // long the requests took on a loaded machine (a slow machine only loosens the bound).
    let bound = 100.0 * factor / (1.0 + factor) + 10.0;
    assert!(
        early as f64 <= bound,
        "the new backend took {early} of the first 100 requests, more than {bound:.0} \
         (factor now {factor})"
    );
    eventually("the ramp to end", || async {
        backend_view(&app, new.addr).await["slow_start_factor"] == 1.0
    })
    .await;
    for _ in 0..100 {
        get(app.addr().unwrap(), "/").await;
    }
    let late = new.served() - early;
    assert!(
        (40..=60).contains(&late),
        "after the ramp the new backend took {late} of 100 requests"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backend_drains_its_in_flight_requests() {
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(AtomicUsize::new(0));
    let (r, s) = (Arc::clone(&release), Arc::clone(&started));
    let leaving = Origin::start(move |_| {
        let (r, s) = (Arc::clone(&r), Arc::clone(&s));
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            r.notified().await;
            Response::new(full("finished"))
        }
    })
    .await;
    let staying = Backend::named("staying").await;
    let app = Arc::new(start_proxy(&config_text(&[leaving.addr], "")).await);
    let addr = app.addr().unwrap();
    let slow = tokio::spawn(async move { get(addr, "/").await });
    eventually("the slow request to reach its backend", || {
        let started = Arc::clone(&started);
        async move { started.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let add = serde_json::json!({"addr": staying.addr.to_string()});
    assert_eq!(
        admin_post(&app, "/admin/pools/main/add", add).await.0,
        StatusCode::OK
    );
    let remove = serde_json::json!({"addr": leaving.addr.to_string()});
    assert_eq!(
        admin_post(&app, "/admin/pools/main/remove", remove).await.0,
        StatusCode::OK
    );
    let pools = admin_json(&app, "/admin/pools").await;
    assert_eq!(
        pools["pools"][0]["departed"][0]["addr"],
        leaving.addr.to_string()
    );
    assert_eq!(pools["pools"][0]["departed"][0]["in_flight"], 1);
    for _ in 0..5 {
        let (response, body) = get(addr, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(body.starts_with(b"staying"));
    }
    // notify_one keeps a permit if the handler has not started waiting yet.
    release.notify_one();
    let (response, body) = slow.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "finished");
    eventually("the departed backend to be forgotten", || async {
        admin_json(&app, "/admin/pools").await["pools"][0]["departed"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    assert_eq!(leaving.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_stops_a_retry_storm() {
    let a = Backend::named("a").await;
    let b = Backend::named("b").await;
    a.failing.store(true, Ordering::SeqCst);
    b.failing.store(true, Ordering::SeqCst);
    let app = start_proxy(&pool_config(
        &[a.addr, b.addr],
        "retry_on = [500]",
        "[pools.main.retry_budget]\nratio = 0.1\nmin_per_second = 0\n[pools.main.outlier]\nenabled = false\n",
    ))
    .await;
    for _ in 0..200 {
        let (response, _) = get(app.addr().unwrap(), "/").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    let attempts = a.served() + b.served();
    // Without a budget every request would be tried twice (400 attempts).
    assert!(
        (200..=222).contains(&attempts),
        "{attempts} attempts for 200 requests"
    );
    assert!(
        metric(
            &app,
            "sluice_pool_retry_budget_exhausted_total{pool=\"main\"}"
        )
        .await
            >= 170.0
    );
    assert!(metric(&app, "sluice_pool_retries_total{pool=\"main\"}").await <= 22.0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_fail_nothing_and_each_request_sees_one_config() {
    let backends = [
        Backend::named("a1").await,
        Backend::named("a2").await,
        Backend::named("b1").await,
        Backend::named("b2").await,
    ];
    let set_a = [backends[0].addr, backends[1].addr];
    let set_b = [backends[2].addr, backends[3].addr];
    let text = |set: &[SocketAddr], via: &str| {
        pool_config(set, "", &format!("[headers]\nvia = \"{via}\"\n"))
    };
    let (app, _dir, path) = start_from_file(&text(&set_a, "set-a")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let clients = steady_load(app.addr().unwrap(), 6, &stop, &ok);
    for i in 0..100 {
        let (set, via) = if i % 2 == 0 {
            (&set_b, "set-b")
        } else {
            (&set_a, "set-a")
        };
        std::fs::write(&path, text(set, via)).unwrap();
        app.reload().await.unwrap();
        until_more_ok(&ok, 3).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::HashSet::new();
    for client in clients {
        let (failures, bodies) = client.await.unwrap();
        assert!(failures.is_empty(), "failed: {failures:?}");
        for body in bodies {
            // body: "NAME|via the backend saw|via the client saw"
            let parts: Vec<&str> = body.split('|').collect();
            let set = &parts[0][..1];
            assert!(
                parts[1].ends_with(&format!("set-{set}"))
                    && parts[2].ends_with(&format!("set-{set}")),
                "a request mixed two configs: {body}"
            );
            seen.insert(parts[0].to_string());
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_broken_pool_config_on_reload_keeps_the_old_one_and_says_why() {
    let origin = Backend::named("old").await;
    let (app, _dir, path) = start_from_file(&config_text(&[origin.addr], "")).await;
    std::fs::write(
        &path,
        pool_config(&[origin.addr], "algorithm = \"fastest\"", ""),
    )
    .unwrap();
    let request = Request::post(format!("http://{}/admin/reload", app.admin_addr().unwrap()))
        .body(empty())
        .unwrap();
    let (response, body) = send(&h1_client(), request).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(
            "sluice.toml:12: pools.main.algorithm: \\\"fastest\\\" is not a known algorithm"
        ),
        "{text}"
    );
    let (response, body) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body.starts_with(b"old"));
    // The file watcher may have tried the broken file too: one failure or two, never a swap.
    assert!(metric(&app, "sluice_config_reloads_total{outcome=\"failure\"}").await >= 1.0);
    assert_eq!(admin_json(&app, "/admin/pools").await["generation"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_shows_pools_and_reweights_drains_and_reactivates_backends() {
    let a = Backend::named("a").await;
    let b = Backend::named("b").await;
    let app = start_proxy(&pool_config(
        &[a.addr, b.addr],
        "algorithm = \"weighted_round_robin\"",
        "",
    ))
    .await;
    let pools = admin_json(&app, "/admin/pools").await;
    let pool = &pools["pools"][0];
    assert_eq!(pool["name"], "main");
    assert_eq!(pool["algorithm"], "weighted_round_robin");
    assert_eq!(pool["backends"].as_array().unwrap().len(), 2);
    let weight = serde_json::json!({"addr": a.addr.to_string(), "weight": 3});
    let (status, reply) = admin_post(&app, "/admin/pools/main/weight", weight).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(backend_view(&app, a.addr).await["weight"], 3);
    for _ in 0..40 {
        get(app.addr().unwrap(), "/").await;
    }
    assert_eq!((a.served(), b.served()), (30, 10));
    let drain = serde_json::json!({"addr": a.addr.to_string()});
    assert_eq!(
        admin_post(&app, "/admin/pools/main/drain", drain.clone())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(backend_view(&app, a.addr).await["admin"], "draining");
    for _ in 0..10 {
        let (_, body) = get(app.addr().unwrap(), "/").await;
        assert!(body.starts_with(b"b"));
    }
    assert_eq!(
        admin_post(&app, "/admin/pools/main/activate", drain)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(backend_view(&app, a.addr).await["admin"], "active");
    let unknown = serde_json::json!({"addr": "127.0.0.1:1"});
    assert_eq!(
        admin_post(&app, "/admin/pools/main/remove", unknown)
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_full_pool_answers_503_at_once() {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = Arc::clone(&release);
    let origin = Origin::start(move |_| {
        let r = Arc::clone(&r);
        async move {
            r.notified().await;
            Response::new(full("done"))
        }
    })
    .await;
    let app =
        Arc::new(start_proxy(&pool_config(&[origin.addr], "max_pending_requests = 1", "")).await);
    let addr = app.addr().unwrap();
    let first = tokio::spawn(async move { get(addr, "/").await });
    eventually("the first request to be in flight", || {
        let count = origin.requests.clone();
        async move { count.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let (response, _) = get(addr, "/").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // notify_one keeps a permit if the handler has not started waiting yet.
    release.notify_one();
    assert_eq!(first.await.unwrap().0.status(), StatusCode::OK);
    assert_eq!(
        metric(&app, "sluice_pool_rejected_requests_total{pool=\"main\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_active_checks_off_on_reload_clears_their_verdict() {
    let sick = Backend::named("sick").await;
    let well = Backend::named("well").await;
    sick.failing.store(true, Ordering::SeqCst);
    let addrs = [sick.addr, well.addr];
    let checks = "[pools.main.health]\npath = \"/healthz\"\ninterval = \"50ms\"\njitter = \"0s\"\nrise = 1\nfall = 1\n";
    let (app, _dir, path) = start_from_file(&pool_config(&addrs, "", checks)).await;
    eventually("the sick backend to be marked unhealthy", || async {
        backend_view(&app, sick.addr).await["health"] == "unhealthy"
    })
    .await;
    std::fs::write(&path, pool_config(&addrs, "", "")).unwrap();
    app.reload().await.unwrap();
    eventually("the verdict to be cleared", || async {
        backend_view(&app, sick.addr).await["health"] == "healthy"
    })
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_at_its_connection_limit_is_passed_over() {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = Arc::clone(&release);
    let busy = Origin::start(move |_| {
        let r = Arc::clone(&r);
        async move {
            r.notified().await;
            Response::new(full("busy"))
        }
    })
    .await;
    let free = Backend::named("free").await;
    let text = pool_config(&[busy.addr, free.addr], "algorithm = \"round_robin\"", "").replace(
        &format!("{{ addr = \"{}\" }}", busy.addr),
        &format!("{{ addr = \"{}\", max_connections = 1 }}", busy.addr),
    );
    let app = Arc::new(start_proxy(&text).await);
    let addr = app.addr().unwrap();
    // One request at a time: the limit is checked at pick time, so two picks racing could
    // both see the backend below it.
    let mut held = None;
    for _ in 0..4 {
        let request = tokio::spawn(async move { get(addr, "/").await });
        eventually("the request to land", || {
            let landed = request.is_finished() || busy.count() == 1;
            async move { landed }
        })
        .await;
        if busy.count() == 1 {
            held = Some(request);
            break;
        }
    }
    let held = held.expect("no request reached the limited backend");
    for _ in 0..6 {
        let (response, body) = get(addr, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(body.starts_with(b"free"), "{body:?}");
    }
    assert_eq!(busy.count(), 1);
    // notify_one keeps a permit if the handler has not started waiting yet.
    release.notify_one();
    assert_eq!(held.await.unwrap().0.status(), StatusCode::OK);
}
