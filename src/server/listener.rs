//! The accept loop of one data listener and the life of each client connection.
//!
//! Owns: the connection limit (connections past it wait in the kernel's accept queue, so the
//! ones being served are not harmed), the TLS handshake and its timeout, the HTTP/1.1 and
//! HTTP/2 connection (hyper-util's auto builder: h2 by ALPN or by prior knowledge), the
//! request-header timeout (slowloris), the idle timeout, and graceful shutdown: stop
//! accepting, let in-flight requests finish, close idle connections.
//!
//! For HTTP/1.1, hyper's header timer also runs while a keep-alive connection waits for its
//! next request, so an idle HTTP/1.1 connection closes after `min(idle, request_header)`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::{Limits, ListenerConfig, Timeouts};
use crate::metrics::connections::ConnectionGauge;
use crate::metrics::{ConnectionProtocol, ListenerMetrics};
use crate::proxy::{ConnActivity, ConnInfo, Proxy};
use crate::server::gather::Gathered;

/// Everything a listener's connections need, built once per listener.
pub struct ListenerSpec {
    pub name: Arc<str>,
    pub max_connections: usize,
    pub timeouts: Timeouts,
    pub tls: Option<TlsAcceptor>,
    pub metrics: ListenerMetrics,
    pub facing: crate::cache::Facing,
    builder: auto::Builder<TokioExecutor>,
}

impl ListenerSpec {
    /// The spec for `config`, with `tls` already built from its certificates.
    pub fn new(
        config: &ListenerConfig,
        timeouts: Timeouts,
        limits: &Limits,
        tls: Option<TlsAcceptor>,
        metrics: ListenerMetrics,
    ) -> ListenerSpec {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(timeouts.request_header)
            .max_buf_size(limits.max_request_header_bytes.max(Limits::MIN_READ_BUFFER))
            .max_headers(limits.max_headers);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(
                u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX),
            )
            // Bounds the response bytes buffered per stream (hyper's default is 400 KiB, which
            // let 640 streams of 100 KiB bodies grow RSS to 180 MiB in the peers harness).
            .max_send_buf_size(64 * 1024)
            .keep_alive_interval(Some(timeouts.idle))
            .keep_alive_timeout(timeouts.request_header);
        let builder = if config.http2 {
            builder
        } else {
            builder.http1_only()
        };
        ListenerSpec {
            name: Arc::from(config.name.as_str()),
            max_connections: config.max_connections.get(),
            timeouts,
            tls,
            metrics,
            facing: config.facing,
            builder,
        }
    }
}

/// Accepts connections on `listener` until `shutdown` turns true, then waits up to the grace
/// period for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    spec: Arc<ListenerSpec>,
    proxy: Arc<Proxy>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(spec.max_connections));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning; the listener survives.
                    tracing::warn!(listener = %spec.name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let spec = Arc::clone(&spec);
        let proxy = Arc::clone(&proxy);
        let shutdown = shutdown.clone();
        tokio::spawn(connection(stream, peer, spec, proxy, shutdown, permit));
    }
    drop(listener);
    let all = u32::try_from(spec.max_connections).unwrap_or(u32::MAX);
    let grace = spec.timeouts.shutdown_grace;
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(listener = %spec.name, ?grace, "connections still open after the shutdown grace period");
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    spec: Arc<ListenerSpec>,
    proxy: Arc<Proxy>,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    // Counted as pending until the first request names its protocol; off the gauge when the
    // last clone (here and in the service) drops.
    let gauge = spec.metrics.open();
    let peer_value = http::HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
    let info = Arc::new(ConnInfo {
        peer,
        peer_value,
        tls: spec.tls.is_some(),
        listener: Arc::clone(&spec.name),
        facing: spec.facing,
        activity: Arc::new(ConnActivity::new()),
    });
    match &spec.tls {
        None => {
            let io = TokioIo::new(Gathered::new(stream));
            serve_http(io, &spec, proxy, info, gauge, shutdown).await
        }
        Some(acceptor) => {
            spec.metrics.tls_handshakes.inc();
            match tokio::time::timeout(spec.timeouts.tls_handshake, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    serve_http(TokioIo::new(tls), &spec, proxy, info, gauge, shutdown).await
                }
                Ok(Err(error)) => {
                    spec.metrics.tls_errors.inc();
                    tracing::debug!(listener = %spec.name, %peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    spec.metrics.tls_errors.inc();
                    tracing::debug!(listener = %spec.name, %peer, "TLS handshake timed out");
                }
            }
        }
    }
}

async fn serve_http<I>(
    io: I,
    spec: &ListenerSpec,
    proxy: Arc<Proxy>,
    info: Arc<ConnInfo>,
    gauge: Arc<ConnectionGauge>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = Arc::clone(&info.activity);
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        gauge.classify(ConnectionProtocol::of(request.version()));
        let proxy = Arc::clone(&proxy);
        let info = Arc::clone(&info);
        async move { Ok::<_, Infallible>(proxy.handle(request, &info).await) }
    });
    let connection = spec.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let idle = spec.timeouts.idle;
    let mut closing = *shutdown.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    let idle_check = tokio::time::sleep(idle);
    tokio::pin!(idle_check);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(listener = %spec.name, %error, "connection ended with an error");
                }
                break;
            }
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = &mut idle_check, if !closing => {
                let now = Instant::now();
                match activity.idle_since() {
                    Some(since) if now.duration_since(since) >= idle => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    Some(since) => idle_check.as_mut().reset(since + idle),
                    None => idle_check.as_mut().reset(now + idle),
                }
            }
        }
    }
}
