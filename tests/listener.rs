//! Listener protection: the header timeout against slowloris, the connection limit, the idle
//! timeout. Timeouts are set short in config; the tests poll for outcomes, never sleep for them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; returns what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the connection was not closed"),
        }
    }
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_while_a_normal_client_is_served() {
    let origin = Origin::fixed("ok").await;
    let text = config_text(&[origin.addr], "[timeouts]\nrequest_header = \"500ms\"\n");
    let app = start_proxy(&text).await;
    let addr = app.addr().unwrap();

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        // One header byte at a time, never finishing the head.
        let started = tokio::time::Instant::now();
        let mut closed = false;
        for _ in 0..400 {
            if slow.write_all(b"X").await.is_err() {
                closed = true;
                break;
            }
            let mut probe = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(50), slow.read(&mut probe)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        (closed, started.elapsed())
    });

    // Meanwhile a normal client is served.
    let (response, body) = get(addr, "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "ok");

    let (closed, elapsed) = trickle.await.unwrap();
    assert!(
        closed,
        "the slow client was never cut off (after {elapsed:?})"
    );
    assert_eq!(
        origin.count(),
        1,
        "the slow request never reached the backend"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn excess_connections_wait_without_harming_the_ones_served() {
    let origin = Origin::fixed("ok").await;
    let text = config_text(&[origin.addr], "").replace(
        "name = \"main\"\naddr",
        "name = \"main\"\nmax_connections = 2\naddr",
    );
    let app = start_proxy(&text).await;
    let addr = app.addr().unwrap();

    // Two keep-alive connections take both slots, and keep being served.
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    for stream in [&mut first, &mut second] {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 1024];
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    }

    // A third connects (the kernel queues it) but is not served while the slots are taken.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let waiting = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buffer)).await;
    assert!(
        waiting.is_err(),
        "the third connection was served past the limit"
    );

    // The first two are unharmed.
    for stream in [&mut first, &mut second] {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    }

    // When one leaves, the third is served.
    drop(first);
    let n = tokio::time::timeout(DEADLINE, third.read(&mut buffer))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let origin = Origin::fixed("ok").await;
    let text = config_text(&[origin.addr], "[timeouts]\nidle = \"300ms\"\n");
    let app = start_proxy(&text).await;
    let mut stream = TcpStream::connect(app.addr().unwrap()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let reply = read_until_closed(&mut stream).await;
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"));
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_after_the_idle_timeout() {
    let origin = Origin::fixed("ok").await;
    let text = config_text(&[origin.addr], "[timeouts]\nidle = \"300ms\"\n");
    let app = start_proxy(&text).await;
    let mut stream = TcpStream::connect(app.addr().unwrap()).await.unwrap();
    // The h2 preface and an empty SETTINGS frame, then nothing.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let reply = read_until_closed(&mut stream).await;
    // A GOAWAY frame (type 7) precedes the close.
    assert!(
        reply.windows(4).any(|w| w == [0, 0, 8, 7]),
        "no GOAWAY in {reply:?}"
    );
    app.shutdown().await;
}
