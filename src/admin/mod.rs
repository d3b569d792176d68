//! The admin listener: health, readiness, metrics and reload, on its own address.
//!
//! It serves ops, not clients: plain HTTP/1.1, small JSON or text bodies. It calls into the
//! metrics and, for reload, a [`Reload`] hook the app gives it; it never touches the request
//! pipeline.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::shared::Shared;

pub mod dashboard;
mod purge;

/// The admin client's address, put in each request's extensions by [`serve`].
#[derive(Clone, Copy, Debug)]
struct AdminPeer(std::net::SocketAddr);

/// Changes the log filter at runtime (`POST /admin/log-level`); set once by the binary, which
/// owns the global tracing subscriber. Returns the filter now in force, or why the new one
/// was refused.
pub type LogControl = Box<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

static LOG_CONTROL: std::sync::OnceLock<LogControl> = std::sync::OnceLock::new();

/// Installs the log control; the first call wins (there is one subscriber per process).
pub fn install_log_control(control: LogControl) {
    let _ = LOG_CONTROL.set(control);
}

/// The future a reload returns: the new generation, or every problem found.
pub type ReloadFuture = Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>;

/// What the admin API calls to reload the configuration.
pub trait Reload: Send + Sync {
    /// Loads, validates and swaps in the configuration from its source.
    fn reload(&self) -> ReloadFuture;
}

/// What the dashboard and `/admin/alerts` read: the sampler's latest figures and the alert
/// board. Both are empty when monitoring is off.
#[derive(Clone, Default)]
pub struct Observability {
    pub resources: Option<crate::metrics::resources::ResourceHandle>,
    pub alerts: crate::metrics::alerts::AlertBoard,
}

/// The admin listener's state.
pub struct Admin {
    shared: Arc<Shared>,
    reload: Arc<dyn Reload>,
    observability: Observability,
    draining: AtomicBool,
}

impl Admin {
    /// An admin API over `shared`.
    pub fn new(
        shared: Arc<Shared>,
        reload: Arc<dyn Reload>,
        observability: Observability,
    ) -> Admin {
        Admin {
            shared,
            reload,
            observability,
            draining: AtomicBool::new(false),
        }
    }

    /// Marks the process as shutting down: `/readyz` answers 503 from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() == Method::POST && request.uri().path() == "/admin/log-level" {
            return log_level(request).await;
        }
        if request.method() == Method::POST && request.uri().path() == "/admin/purge" {
            let peer = request.extensions().get::<AdminPeer>().map(|p| p.0);
            return purge::handle(&self.shared, request, peer).await;
        }
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/") => {
                let mut response = Response::new(Full::new(Bytes::from_static(
                    dashboard::DASHBOARD_HTML.as_bytes(),
                )));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
            (&Method::GET, "/admin/stats") => {
                let resources = self
                    .observability
                    .resources
                    .as_ref()
                    .and_then(|r| r.latest());
                let firing = self.observability.alerts.firing();
                let stats = dashboard::stats_json(
                    self.shared.metrics.registry(),
                    resources.as_deref(),
                    &firing,
                    std::time::SystemTime::now(),
                );
                json(StatusCode::OK, &stats)
            }
            (&Method::GET, "/admin/alerts") => {
                json(StatusCode::OK, &self.observability.alerts.to_json())
            }
            (&Method::GET, "/readyz") => {
                if self.draining.load(Ordering::Relaxed) {
                    text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                } else {
                    text(StatusCode::OK, "ready\n")
                }
            }
            (&Method::GET, "/metrics") => {
                self.shared.refresh_gauges();
                let mut response =
                    Response::new(Full::new(Bytes::from(self.shared.metrics.render())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            (&Method::POST, "/admin/reload") => match self.reload.reload().await {
                Ok(generation) => json(
                    StatusCode::OK,
                    &serde_json::json!({"status": "ok", "generation": generation}),
                ),
                Err(problems) => json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &serde_json::json!({"status": "error", "problems": problems.lines().collect::<Vec<_>>()}),
                ),
            },
            (
                _,
                "/" | "/healthz" | "/readyz" | "/metrics" | "/admin/reload" | "/admin/log-level"
                | "/admin/stats" | "/admin/alerts" | "/admin/purge",
            ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

/// `POST /admin/log-level` with a filter such as `debug` or `sluice=debug,hyper=info`, as the
/// body or as `{"level": "..."}`.
async fn log_level(request: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(request.into_body(), 4096);
    let Ok(body) = limited.collect().await.map(|b| b.to_bytes()) else {
        return text(StatusCode::BAD_REQUEST, "unreadable body\n");
    };
    let body = String::from_utf8_lossy(&body).trim().to_string();
    let filter = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(value) => match value.get("level").and_then(|l| l.as_str()) {
            Some(level) => level.to_string(),
            None => return text(StatusCode::BAD_REQUEST, "expected {\"level\": \"...\"}\n"),
        },
        Err(_) => body,
    };
    let Some(control) = LOG_CONTROL.get() else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "log level control is not installed\n",
        );
    };
    match control(&filter) {
        Ok(now) => json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "filter": now}),
        ),
        Err(message) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"status": "error", "problem": message}),
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves the admin API on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let admin = Arc::clone(&admin);
        let mut connection_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(AdminPeer(peer));
                let admin = Arc::clone(&admin);
                async move { Ok::<_, Infallible>(admin.handle(request).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10));
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = connection_shutdown.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}
