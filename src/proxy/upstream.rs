//! The upstream client of one pool: pooled keep-alive connections, HTTP/1.1 or HTTP/2, plain
//! or TLS with the pool's CA, and the mapping of client failures to [`ProxyError`].

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::{BodyTooLarge, RequestBody};
use super::error::ProxyError;
use crate::config::{PoolConfig, Timeouts, UpstreamProtocol, UpstreamScheme};

/// Why a pool's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamBuildError {
    #[error("pools.{pool}.ca: {path}: {message}")]
    Ca {
        pool: String,
        path: String,
        message: String,
    },
    #[error("pools.{pool}: TLS setup failed: {message}")]
    Tls { pool: String, message: String },
}

/// What decides whether two pools can share one client (and its idle connections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientShape {
    scheme: UpstreamScheme,
    protocol: UpstreamProtocol,
    ca: Option<std::path::PathBuf>,
    server_name: Option<String>,
    connect: Duration,
}

impl ClientShape {
    /// The shape a pool's config asks for.
    pub fn of(pool: &PoolConfig, timeouts: &Timeouts) -> ClientShape {
        ClientShape {
            scheme: pool.scheme,
            protocol: pool.protocol,
            ca: pool.ca.clone(),
            server_name: pool.server_name.clone(),
            connect: timeouts.connect,
        }
    }
}

/// A pool's HTTP client; cloning shares the connection pool.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, RequestBody>,
    scheme: UpstreamScheme,
    protocol: UpstreamProtocol,
    shape: Arc<ClientShape>,
}

fn tls_config(pool: &PoolConfig) -> Result<rustls::ClientConfig, UpstreamBuildError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = &pool.ca {
        let ca_error = |message: String| UpstreamBuildError::Ca {
            pool: pool.name.clone(),
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("no PEM certificate found".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamBuildError::Tls {
            pool: pool.name.clone(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl UpstreamClient {
    /// Builds the client for `pool`.
    pub fn new(
        pool: &PoolConfig,
        timeouts: &Timeouts,
    ) -> Result<UpstreamClient, UpstreamBuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_keepalive(Some(Duration::from_secs(60)));

        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(pool)?)
            .https_or_http();
        let builder = match &pool.server_name {
            Some(name) => {
                let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                    UpstreamBuildError::Tls {
                        pool: pool.name.clone(),
                        message: format!("server_name {name:?}: {e}"),
                    }
                })?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = match pool.protocol {
            UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
            UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(pool.protocol == UpstreamProtocol::Http2)
            .build(connector);
        Ok(UpstreamClient {
            client,
            scheme: pool.scheme,
            protocol: pool.protocol,
            shape: Arc::new(ClientShape::of(pool, timeouts)),
        })
    }

    /// The shape this client was built for.
    pub fn shape(&self) -> &ClientShape {
        &self.shape
    }

    /// `"http"` or `"https"`.
    pub fn scheme(&self) -> &'static str {
        match self.scheme {
            UpstreamScheme::Http => "http",
            UpstreamScheme::Https => "https",
        }
    }

    /// The HTTP version requests are sent with.
    pub fn version(&self) -> http::Version {
        match self.protocol {
            UpstreamProtocol::Http1 => http::Version::HTTP_11,
            UpstreamProtocol::Http2 => http::Version::HTTP_2,
        }
    }

    /// Sends `request` and waits up to `timeout` for the response head.
    pub async fn send(
        &self,
        request: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, ProxyError> {
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(ProxyError::UpstreamTimeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(classify(&error)),
        }
    }
}

/// Turns a client error into the failure the client is told about.
fn classify(error: &hyper_util::client::legacy::Error) -> ProxyError {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<BodyTooLarge>() {
            return ProxyError::BodyTooLarge;
        }
        if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>()
            && hyper_error.is_user()
            && hyper_error.source().is_some_and(|s| s.is::<hyper::Error>())
        {
            // The request body (the client's) failed while being sent.
            return ProxyError::DownstreamBody(hyper_error.to_string());
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return ProxyError::UpstreamTimeout;
        }
        source = cause.source();
    }
    if error.is_connect() {
        return ProxyError::Connect(describe(error));
    }
    ProxyError::UpstreamProtocol(describe(error))
}

/// The whole cause chain on one line, for logs.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
