//! The demo app's HTTP/1.1 server: accept loop, one task per connection, graceful shutdown.
//!
//! Owns sockets and connection lifetimes; what a request gets is `routes.rs`'s business.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, warn};

use super::DemoApp;
use super::routes;

/// How long in-flight requests get to finish once shutdown begins; then connections are cut.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// A client that has not sent its request headers by then is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves HTTP/1.1 (keep-alive) on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish (for at most ten seconds) and returns. Idle keep-alive connections are
/// closed at once. Every task it spawns has ended when it returns.
pub async fn serve(
    listener: TcpListener,
    app: Arc<DemoApp>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    info!(addr = %local, "demo app listening");
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        debug!(%peer, %error, "could not set TCP_NODELAY");
                    }
                    let app = Arc::clone(&app);
                    let service = service_fn(move |request| {
                        let app = Arc::clone(&app);
                        async move { Ok::<_, Infallible>(routes::handle(&app, request, SystemTime::now()).await) }
                    });
                    let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    let span = tracing::debug_span!("demo_connection", %peer);
                    connections.spawn(
                        async move {
                            if let Err(error) = connection.await {
                                debug!(%error, "demo connection ended with an error");
                            }
                        }
                        .instrument(span),
                    );
                }
                Err(error) => {
                    warn!(%error, "demo app could not accept a connection");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    debug!(connections = connections.len(), "demo app draining");
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            connections = connections.len(),
            "demo app drain deadline passed; closing connections"
        );
    }
    connections.shutdown().await;
    info!(addr = %local, "demo app stopped");
    Ok(())
}
