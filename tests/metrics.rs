//! What the request path puts in /metrics over real sockets: open connections by listener and
//! protocol, and the `[monitoring] request_metrics` switch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Origin, config_text, empty, eventually, h1_client, h2c_client, send, start_proxy};
use http::Request;
use sluice::app::App;

fn metrics_text(app: &App) -> String {
    String::from_utf8(app.shared().metrics.render()).unwrap()
}

fn active(app: &App, protocol: &str) -> String {
    let wanted = format!("sluice_connections_active{{listener=\"main\",protocol=\"{protocol}\"}} ");
    metrics_text(app)
        .lines()
        .find_map(|line| line.strip_prefix(&wanted).map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test]
async fn open_connections_are_counted_by_protocol_and_leave_the_gauge_when_closed() {
    let origin = Origin::fixed("hello").await;
    let app = start_proxy(&config_text(&[origin.addr], "")).await;
    let url = format!("http://{}/", app.addr().unwrap());
    let h1 = h1_client();
    let h2 = h2c_client();
    let (response, _) = send(&h1, Request::get(&url).body(empty()).unwrap()).await;
    assert_eq!(response.status(), 200);
    let (response, _) = send(&h2, Request::get(&url).body(empty()).unwrap()).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    // Both clients keep their connection open (keep-alive), each classified by its request.
    eventually("one h1 and one h2 connection", || async {
        active(&app, "h1") == "1" && active(&app, "h2") == "1" && active(&app, "pending") == "0"
    })
    .await;
    drop((h1, h2));
    eventually("the gauges back at 0", || async {
        active(&app, "h1") == "0" && active(&app, "h2") == "0"
    })
    .await;
    assert!(metrics_text(&app).contains("sluice_connections_accepted_total{listener=\"main\"} 2"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_connection_is_pending_until_its_first_request() {
    let origin = Origin::fixed("hello").await;
    let app = start_proxy(&config_text(&[origin.addr], "")).await;
    let stream = tokio::net::TcpStream::connect(app.addr().unwrap())
        .await
        .unwrap();
    eventually("one pending connection", || async {
        active(&app, "pending") == "1"
    })
    .await;
    drop(stream);
    eventually("no pending connection", || async {
        active(&app, "pending") == "0"
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn request_metrics_off_leaves_the_request_series_out_and_keeps_the_rest() {
    let origin = Origin::fixed("hello").await;
    let app = start_proxy(&config_text(
        &[origin.addr],
        "[monitoring]\nrequest_metrics = false\n",
    ))
    .await;
    let url = format!("http://{}/", app.addr().unwrap());
    let (response, body) = send(&h1_client(), Request::get(&url).body(empty()).unwrap()).await;
    assert_eq!(
        (response.status().as_u16(), &body[..]),
        (200, &b"hello"[..])
    );
    let text = metrics_text(&app);
    for absent in [
        "sluice_requests_total",
        "sluice_request_duration_seconds",
        "sluice_upstream_response_duration_seconds",
        "sluice_response_body_bytes_total",
        "sluice_backend_requests_total",
        "sluice_backend_response_duration_seconds",
    ] {
        assert!(!text.contains(absent), "{absent} is exported:\n{text}");
    }
    assert!(text.contains("sluice_connections_accepted_total{listener=\"main\"} 1"));
    assert!(text.contains("sluice_config_generation 1"));
    app.shutdown().await;
}
