//! Helpers for the integration tests: in-process proxies and scripted origins on 127.0.0.1:0,
//! clients for HTTP/1.1, h2c and TLS, and polling with a deadline (never a fixed sleep).
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice::app::App;
use sluice::config::Config;
use tokio::net::TcpListener;

/// Generous: the machine may be loaded.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// What an origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: http::HeaderMap,
}

/// A scripted origin on 127.0.0.1:0.
pub struct Origin {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// Starts an HTTP/1.1 + h2c origin answering with `handler`.
    pub async fn start<F, Fut>(handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Origin::on(listener, handler)
    }

    /// Serves `handler` on an already bound listener.
    pub fn on<F, Fut>(listener: TcpListener, handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let (count, log) = (Arc::clone(&requests), Arc::clone(&seen));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let handler = Arc::clone(&handler);
                let (count, log) = (Arc::clone(&count), Arc::clone(&log));
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        count.fetch_add(1, Ordering::SeqCst);
                        log.lock().unwrap().push(Seen {
                            method: request.method().clone(),
                            uri: request.uri().clone(),
                            version: request.version(),
                            headers: request.headers().clone(),
                        });
                        let response = handler(request);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin {
            addr,
            requests,
            seen,
            task,
        }
    }

    /// An origin answering 200 with `body` to everything.
    pub async fn fixed(body: &'static str) -> Origin {
        Origin::start(move |_| async move { Response::new(full(body)) }).await
    }

    /// Every request the origin has seen, oldest first.
    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the origin saw no request")
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A body without Content-Length (its size is learnt only while streaming) that sends
/// `chunks` one by one; with `hold`, the last chunk waits until it is notified.
pub fn chunked(chunks: Vec<Bytes>, hold: Option<Arc<tokio::sync::Notify>>) -> TestBody {
    let (mut sender, body) =
        http_body_util::channel::Channel::<Bytes, Box<dyn std::error::Error + Send + Sync>>::new(4);
    tokio::spawn(async move {
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i == last
                && let Some(hold) = &hold
            {
                hold.notified().await;
            }
            if sender.send_data(chunk).await.is_err() {
                break;
            }
        }
    });
    body.boxed()
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address nothing listens on: bound to learn a free port, then closed. Connecting to it
/// is refused (another test could bind the same port in between; the kernel hands ports out
/// in sequence, so that needs thousands of binds in the meantime).
pub async fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A config with one listener on 127.0.0.1:0, an admin API, access log off, and one pool
/// with `backends`; `extra` is appended (more pools, limits, timeouts).
pub fn config_text(backends: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{b}\" }}"))
        .collect();
    format!(
        "[[listeners]]\nname = \"main\"\naddr = \"127.0.0.1:0\"\n\n[admin]\naddr = \"127.0.0.1:0\"\n\n[log]\naccess = \"off\"\n\n[pools.main]\nbackends = [{}]\n\n[[routes]]\nname = \"main\"\npool = \"main\"\n\n{extra}\n",
        list.join(", ")
    )
}

pub fn parse(text: &str, base: &Path) -> Config {
    match Config::parse(text, "test.toml", base) {
        Ok(config) => config,
        Err(error) => panic!("test config is invalid:\n{error}\n---\n{text}"),
    }
}

/// Starts Sluice in-process from config text.
pub async fn start_proxy(text: &str) -> App {
    App::start(parse(text, Path::new(".")), None).await.unwrap()
}

/// Starts Sluice in-process from a config file holding `text`, so that a test can edit the
/// file and reload it; the file's directory lives as long as the returned guard.
pub async fn start_from_file(text: &str) -> (App, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let app = App::start(config, Some(path.clone())).await.unwrap();
    (app, dir, path)
}

/// Starts Sluice in front of `backends` with the defaults.
pub async fn proxy_to(backends: &[SocketAddr]) -> App {
    start_proxy(&config_text(backends, "")).await
}

pub fn h1_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .build_http()
}

pub fn h2c_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A GET to `path` on `addr`, with a timeout.
pub async fn get(addr: SocketAddr, path: &str) -> (Response<()>, Bytes) {
    send(
        &h1_client(),
        Request::get(format!("http://{addr}{path}"))
            .body(empty())
            .unwrap(),
    )
    .await
}

/// Sends a request and reads the whole response, failing the test after `DEADLINE`.
pub async fn send(
    client: &Client<HttpConnector, TestBody>,
    request: Request<TestBody>,
) -> (Response<()>, Bytes) {
    tokio::time::timeout(DEADLINE, async {
        let response = client.request(request).await.expect("request failed");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body failed").to_bytes();
        (Response::from_parts(parts, ()), bytes)
    })
    .await
    .expect("request timed out")
}

/// Polls `condition` until it holds or `DEADLINE` passes.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether an outside tool the test needs is present; with `SLUICE_REQUIRE_TOOLS=1` (CI) a
/// missing tool fails the test instead of skipping it.
pub fn tool_available(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{tool} is required (SLUICE_REQUIRE_TOOLS=1) but missing"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    found
}
