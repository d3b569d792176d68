//! The pipeline over real sockets: HTTP/1.1 and h2c proxying, header hygiene, gateway errors,
//! limits, WebSocket and 100-continue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn http1_requests_are_proxied_with_their_body() {
    let origin = Origin::start(|request| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(format!("echo:{}", String::from_utf8_lossy(&body))))
    })
    .await;
    let app = proxy_to(&[origin.addr]).await;
    let addr = app.addr().unwrap();
    let request = Request::post(format!("http://{addr}/items?x=1"))
        .body(full("hello"))
        .unwrap();
    let (response, body) = send(&h1_client(), request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "echo:hello");
    let seen = origin.last();
    assert_eq!(seen.uri.path_and_query().unwrap().as_str(), "/items?x=1");
    assert_eq!(seen.headers["host"], addr.to_string().as_str());
    assert_eq!(response.headers()["via"], "1.1 sluice");
    app.shutdown().await;
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_proxied_to_an_http1_backend() {
    let origin = Origin::fixed("from origin").await;
    let app = proxy_to(&[origin.addr]).await;
    let addr = app.addr().unwrap();
    let request = Request::get(format!("http://{addr}/h2"))
        .body(empty())
        .unwrap();
    let (response, body) = send(&h2c_client(), request).await;
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(body, "from origin");
    let seen = origin.last();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(
        seen.headers["host"],
        addr.to_string().as_str(),
        "the :authority becomes Host"
    );
    assert_eq!(seen.headers["via"], "2 sluice");
    app.shutdown().await;
}

#[tokio::test]
async fn an_h2_pool_speaks_http2_to_its_backend() {
    let origin = Origin::fixed("h2 origin").await;
    let extra = format!(
        "[pools.h2]\nprotocol = \"h2\"\nbackends = [{{ addr = \"{}\" }}]\n\n[[routes]]\nname = \"h2\"\npath_prefix = \"/h2\"\npool = \"h2\"\n",
        origin.addr
    );
    let app = start_proxy(&config_text(&[origin.addr], &extra)).await;
    let (response, body) = get(app.addr().unwrap(), "/h2/x").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "h2 origin");
    assert_eq!(origin.last().version, Version::HTTP_2);
    app.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_reach_the_backend_and_forwarding_headers_do() {
    let origin = Origin::start(|_| async {
        Response::builder()
            .header("connection", "x-origin-private")
            .header("x-origin-private", "secret")
            .header("keep-alive", "timeout=5")
            .body(full("ok"))
            .unwrap()
    })
    .await;
    let app = proxy_to(&[origin.addr]).await;
    let addr = app.addr().unwrap();
    let request = Request::get(format!("http://{addr}/"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "should not pass")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-connection", "keep-alive")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-request-id", "req-123")
        .header("x-end-to-end", "kept")
        .body(empty())
        .unwrap();
    let (response, _) = send(&h1_client(), request).await;
    let seen = origin.last();
    for gone in ["x-hop", "keep-alive", "te", "proxy-connection"] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the backend"
        );
    }
    assert_eq!(seen.headers["x-end-to-end"], "kept");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], addr.to_string().as_str());
    assert_eq!(seen.headers["via"], "1.1 sluice");
    assert_eq!(seen.headers["x-request-id"], "req-123");
    assert!(!response.headers().contains_key("x-origin-private"));
    assert!(!response.headers().contains_key("keep-alive"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_request_id_is_generated_when_the_client_sends_none() {
    let origin = Origin::fixed("ok").await;
    let app = proxy_to(&[origin.addr]).await;
    get(app.addr().unwrap(), "/").await;
    let id = origin.last().headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    app.shutdown().await;
}

#[tokio::test]
async fn a_refused_backend_gives_502() {
    // Bind and drop to find a port nobody listens on.
    let closed = closed_port().await;
    let app = proxy_to(&[closed]).await;
    let (response, body) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(body, "502 Bad Gateway\n");
    app.shutdown().await;
}

#[tokio::test]
async fn a_backend_that_resets_mid_response_gives_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-").await;
            drop(stream);
        }
    });
    let app = proxy_to(&[addr]).await;
    let (response, _) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    app.shutdown().await;
}

#[tokio::test]
async fn a_backend_slower_than_the_timeout_gives_504() {
    let origin = Origin::start(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Response::new(full("too late"))
    })
    .await;
    let text = config_text(
        &[origin.addr],
        "[timeouts]\nupstream_response_header = \"200ms\"\n",
    );
    let app = start_proxy(&text).await;
    let (response, body) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "504 Gateway Timeout\n");
    app.shutdown().await;
}

#[tokio::test]
async fn an_empty_pool_gives_503() {
    let app = proxy_to(&[]).await;
    let (response, body) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "503 Service Unavailable: no backend available\n");
    app.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_give_431_on_http1_and_http2() {
    let origin = Origin::fixed("ok").await;
    let text = config_text(
        &[origin.addr],
        "[limits]\nmax_request_header_bytes = \"16KiB\"\nmax_headers = 20\n",
    );
    let app = start_proxy(&text).await;
    let addr = app.addr().unwrap();
    let big = "x".repeat(20 * 1024);

    // HTTP/1.1: hyper's parser refuses the head before it reaches the pipeline.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut reply)).await;
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&reply)
    );

    // Too many headers.
    let mut request = Request::get(format!("http://{addr}/"));
    for i in 0..30 {
        request = request.header(format!("x-h{i}"), "v");
    }
    let (response, _) = send(&h1_client(), request.body(empty()).unwrap()).await;
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    // HTTP/2: the pipeline's own check.
    let request = Request::get(format!("http://{addr}/"))
        .header("x-big", big.as_str())
        .body(empty())
        .unwrap();
    let result = tokio::time::timeout(DEADLINE, h2c_client().request(request))
        .await
        .unwrap();
    match result {
        Ok(response) => assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        // hyper's h2 may refuse the header block at the frame level instead.
        Err(error) => eprintln!("h2 header block refused at the protocol level: {error}"),
    }
    assert_eq!(
        origin.count(),
        0,
        "no oversized request reached the backend"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_over_the_limit_gives_413() {
    let origin = Origin::start(|request| async move {
        let _ = request.into_body().collect().await;
        Response::new(full("ok"))
    })
    .await;
    let text = config_text(&[origin.addr], "[limits]\nmax_request_body_bytes = 1000\n");
    let app = start_proxy(&text).await;
    let addr = app.addr().unwrap();
    let request = Request::post(format!("http://{addr}/"))
        .body(full(vec![b'a'; 5000]))
        .unwrap();
    let (response, _) = send(&h1_client(), request).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(origin.count(), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn expect_100_continue_gets_a_100_then_the_response() {
    let origin = Origin::start(|request| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(format!("got {} bytes", body.len())))
    })
    .await;
    let app = proxy_to(&[origin.addr]).await;
    let mut stream = TcpStream::connect(app.addr().unwrap()).await.unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buffer = vec![0u8; 1024];
    let n = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 100 Continue"));
    stream.write_all(b"hello").await.unwrap();
    let mut reply = Vec::new();
    loop {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        reply.extend_from_slice(&buffer[..n]);
        if n == 0 || String::from_utf8_lossy(&reply).contains("got 5 bytes") {
            break;
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.contains("200 OK") && reply.contains("got 5 bytes"),
        "{reply}"
    );
    assert!(!origin.last().headers.contains_key("expect"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_websocket_echo_works_through_the_proxy() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        socket.send(message).await.unwrap();
                    }
                }
            });
        }
    });
    let app = proxy_to(&[backend]).await;
    let url = format!("ws://{}/socket", app.addr().unwrap());
    let (mut socket, response) =
        tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["one", "two", "three"] {
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(DEADLINE, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_request_for_no_route_gives_404() {
    let origin = Origin::fixed("ok").await;
    let text = format!(
        "[[listeners]]\naddr = \"127.0.0.1:0\"\n[log]\naccess = \"off\"\n[pools.p]\nbackends = [{{ addr = \"{}\" }}]\n[[routes]]\nhosts = [\"only.example\"]\npool = \"p\"\n",
        origin.addr
    );
    let app = start_proxy(&text).await;
    let (response, _) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let request = Request::get(format!("http://{}/", app.addr().unwrap()))
        .header("host", "only.example")
        .body(empty())
        .unwrap();
    let (response, _) = send(&h1_client(), request).await;
    assert_eq!(response.status(), StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_reports_health_and_metrics() {
    let origin = Origin::fixed("ok").await;
    let app = proxy_to(&[origin.addr]).await;
    get(app.addr().unwrap(), "/").await;
    let admin = app.admin_addr().unwrap();
    let (health, body) = get(admin, "/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(body, "ok\n");
    let (ready, _) = get(admin, "/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    // The request's metrics are recorded when its body ends, just after the client has it.
    eventually("the request counter", || async {
        let (_, metrics) = get(admin, "/metrics").await;
        let text = String::from_utf8_lossy(&metrics).to_string();
        text.contains("sluice_requests_total{route=\"main\",status_class=\"2xx\"} 1")
            && text.contains("sluice_request_duration_seconds_bucket")
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_streamed_response_is_passed_through_chunk_by_chunk() {
    let origin = Origin::start(|_| async {
        let (mut sender, body) = http_body_util::channel::Channel::<
            Bytes,
            Box<dyn std::error::Error + Send + Sync>,
        >::new(4);
        tokio::spawn(async move {
            for i in 0..50 {
                if sender
                    .send_data(Bytes::from(format!("chunk{i};")))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Response::new(body.boxed())
    })
    .await;
    let app = proxy_to(&[origin.addr]).await;
    let (_, body) = get(app.addr().unwrap(), "/stream").await;
    let expected: String = (0..50).map(|i| format!("chunk{i};")).collect();
    assert_eq!(body, expected);
    app.shutdown().await;
}
