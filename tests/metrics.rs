//! What the request path puts in /metrics over real sockets: the `[monitoring]
//! request_metrics` switch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Origin, config_text, empty, h1_client, send, start_proxy};
use http::Request;
use sluice::app::App;

fn metrics_text(app: &App) -> String {
    String::from_utf8(app.shared().metrics.render()).unwrap()
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
    ] {
        assert!(!text.contains(absent), "{absent} is exported:\n{text}");
    }
    assert!(text.contains("sluice_connections_accepted_total{listener=\"main\"} 1"));
    assert!(text.contains("sluice_config_generation 1"));
    app.shutdown().await;
}
