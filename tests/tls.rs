//! TLS listeners: ALPN h2 and http/1.1, SNI choosing the certificate, reload from disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client config trusting the dev CA in `dir`, offering `alpn`.
fn client_config(ca: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    install_provider();
    let mut roots = rustls::RootCertStore::empty();
    // `ca` and, when present, a second CA beside it (`next/ca.pem`) used for replacements.
    for path in [ca.to_path_buf(), ca.parent().unwrap().join("next/ca.pem")] {
        let Ok(pem) = std::fs::read(&path) else {
            continue;
        };
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// The certificate the server presents for `server_name`.
async fn presented(
    addr: std::net::SocketAddr,
    ca: &Path,
    server_name: &str,
) -> CertificateDer<'static> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca, &[b"http/1.1"])));
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let tls = tokio::time::timeout(DEADLINE, connector.connect(name, stream))
        .await
        .unwrap()
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn tls_config_text(backend: std::net::SocketAddr, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "[[listeners]]\nname = \"tls\"\naddr = \"127.0.0.1:0\"\n\n\
         [[listeners.tls.certificates]]\ncert = \"{d}/a.pem\"\nkey = \"{d}/a-key.pem\"\nnames = [\"a.test\"]\n\n\
         [[listeners.tls.certificates]]\ncert = \"{d}/b.pem\"\nkey = \"{d}/b-key.pem\"\n\n\
         [log]\naccess = \"off\"\n[pools.p]\nbackends = [{{ addr = \"{backend}\" }}]\n[[routes]]\npool = \"p\"\n"
    )
}

fn make_certs(dir: &Path) -> sluice::certs::DevCerts {
    sluice::certs::generate(
        dir,
        &[
            ("a", vec!["a.test".to_string()]),
            ("b", vec!["b.test".to_string(), "*.b.test".to_string()]),
        ],
    )
    .unwrap()
}

/// GET over TLS; `http2` offers only "h2" by ALPN, otherwise only "http/1.1".
async fn https_get(
    addr: std::net::SocketAddr,
    ca: &Path,
    host: &str,
    http2: bool,
) -> (Version, StatusCode, bytes::Bytes) {
    let config = client_config(ca, &[]);
    let connector = fixed_connector(config, addr, http2);
    let client: Client<_, TestBody> = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(connector);
    let request = Request::get(format!("https://{host}:{}/tls", addr.port()))
        .body(empty())
        .unwrap();
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .unwrap()
        .unwrap();
    let version = response.version();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (version, status, body)
}

/// An https connector whose TCP connections all go to `addr` (the test has no DNS for
/// `a.test`), with SNI taken from the URI host.
fn fixed_connector(
    config: rustls::ClientConfig,
    addr: std::net::SocketAddr,
    http2: bool,
) -> hyper_rustls::HttpsConnector<FixedConnector> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    if http2 {
        builder.enable_http2().wrap_connector(FixedConnector(addr))
    } else {
        builder.enable_http1().wrap_connector(FixedConnector(addr))
    }
}

#[derive(Clone)]
struct FixedConnector(std::net::SocketAddr);

impl tower_service::Service<http::Uri> for FixedConnector {
    type Response = hyper_util::rt::TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let addr = self.0;
        Box::pin(async move {
            Ok(hyper_util::rt::TokioIo::new(
                TcpStream::connect(addr).await?,
            ))
        })
    }
}

#[tokio::test]
async fn tls_with_alpn_serves_http2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let origin = Origin::fixed("over tls").await;
    let app = start_proxy(&tls_config_text(origin.addr, dir.path())).await;
    let addr = app.addr().unwrap();

    let (version, status, body) = https_get(addr, &certs.ca_cert, "a.test", true).await;
    assert_eq!((version, status), (Version::HTTP_2, StatusCode::OK));
    assert_eq!(body, "over tls");
    assert_eq!(origin.last().headers["x-forwarded-proto"], "https");

    let (version, status, _) = https_get(addr, &certs.ca_cert, "a.test", false).await;
    assert_eq!((version, status), (Version::HTTP_11, StatusCode::OK));
    app.shutdown().await;
}

#[tokio::test]
async fn tls_handshakes_and_their_failures_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let origin = Origin::fixed("over tls").await;
    let app = start_proxy(&tls_config_text(origin.addr, dir.path())).await;
    let addr = app.addr().unwrap();
    let (version, status, _) = https_get(addr, &certs.ca_cert, "a.test", true).await;
    assert_eq!((version, status), (Version::HTTP_2, StatusCode::OK));
    // Plain text to the TLS port: the handshake fails.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let text = || String::from_utf8(app.shared().metrics.render()).unwrap();
    eventually("two handshakes, one failed", || async {
        let text = text();
        text.contains("sluice_tls_handshakes_total{listener=\"tls\"} 2")
            && text.contains("sluice_tls_handshake_errors_total{listener=\"tls\"} 1")
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn sni_picks_the_certificate_for_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let origin = Origin::fixed("ok").await;
    let app = start_proxy(&tls_config_text(origin.addr, dir.path())).await;
    let addr = app.addr().unwrap();
    let a = std::fs::read(dir.path().join("a.pem")).unwrap();
    let b = std::fs::read(dir.path().join("b.pem")).unwrap();
    let der = |pem: &[u8]| {
        rustls_pemfile::certs(&mut &pem[..])
            .next()
            .unwrap()
            .unwrap()
            .into_owned()
    };

    assert_eq!(
        presented(addr, &certs.ca_cert, "a.test").await,
        der(&a),
        "explicit name"
    );
    assert_eq!(
        presented(addr, &certs.ca_cert, "b.test").await,
        der(&b),
        "name from the certificate"
    );
    assert_eq!(
        presented(addr, &certs.ca_cert, "shop.b.test").await,
        der(&b),
        "wildcard from the certificate"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_after_reload_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let origin = Origin::fixed("ok").await;
    let app = start_proxy(&tls_config_text(origin.addr, dir.path())).await;
    let addr = app.addr().unwrap();
    let before = presented(addr, &certs.ca_cert, "a.test").await;

    // A new certificate for a.test (from a second CA the client also trusts): written
    // elsewhere, then moved into place as certbot and friends do, key first.
    let next = sluice::certs::generate(
        &dir.path().join("next"),
        &[("a", vec!["a.test".to_string()])],
    )
    .unwrap();
    let (cert, key) = next.leaves[0].clone();
    std::fs::rename(&key, dir.path().join("a-key.pem")).unwrap();
    std::fs::rename(&cert, dir.path().join("a.pem")).unwrap();

    // The file watcher reloads; SIGHUP or /admin/reload would too. Poll, don't sleep.
    let ca = certs.ca_cert.clone();
    eventually("the new certificate to be served", || {
        let ca = ca.clone();
        let before = before.clone();
        async move { presented(addr, &ca, "a.test").await != before }
    })
    .await;
    let after = presented(addr, &certs.ca_cert, "a.test").await;

    // A broken certificate keeps the good one serving.
    std::fs::write(dir.path().join("a.pem"), "not a certificate").unwrap();
    app.reload().await.unwrap();
    assert_eq!(presented(addr, &certs.ca_cert, "a.test").await, after);
    app.shutdown().await;
}

#[tokio::test]
async fn an_https_pool_verifies_its_backend_with_the_configured_ca() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs = sluice::certs::generate(dir.path(), &[("origin", vec!["origin.test".to_string()])])
        .unwrap();
    let (cert_path, key_path) = certs.leaves[0].clone();
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut std::fs::read(&cert_path).unwrap().as_slice())
            .map(|c| c.unwrap())
            .collect();
    let key = rustls_pemfile::private_key(&mut std::fs::read(&key_path).unwrap().as_slice())
        .unwrap()
        .unwrap();
    let mut server_config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(full("secure origin")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let extra = format!(
        "[pools.secure]\nscheme = \"https\"\nca = \"{}\"\nserver_name = \"origin.test\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n[[routes]]\nname = \"secure\"\npath_prefix = \"/secure\"\npool = \"secure\"\n",
        certs.ca_cert.display()
    );
    let app = start_proxy(&config_text(&[backend], &extra)).await;
    let (response, body) = get(app.addr().unwrap(), "/secure/x").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "secure origin");
    // The plain-http pool to the same TLS port fails as a bad gateway, not a hang or panic.
    let (response, _) = get(app.addr().unwrap(), "/plain").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    app.shutdown().await;
}
