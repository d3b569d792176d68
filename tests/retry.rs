//! Retries: a request that never reached a backend is tried on another one; one that may have
//! reached a backend, or has a body, is not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use common::*;
use http::{Request, StatusCode};

fn round_robin(backends: &[std::net::SocketAddr]) -> String {
    config_text(backends, "").replace(
        "[pools.main]\n",
        "[pools.main]\nalgorithm = \"round_robin\"\n",
    )
}

#[tokio::test]
async fn a_get_to_a_refused_backend_is_retried_on_another() {
    let origin = Origin::fixed("alive").await;
    let dead = closed_port().await;
    // Round robin: P2C-EWMA could send every request to the live backend.
    let app = start_proxy(&round_robin(&[dead, origin.addr])).await;
    for _ in 0..6 {
        let (response, body) = get(app.addr().unwrap(), "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, "alive");
    }
    let (_, metrics) = get(app.admin_addr().unwrap(), "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    let retries: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_upstream_retries_total{route=\"main\"} "))
        .unwrap()
        .parse()
        .unwrap();
    // How many first picks hit the dead backend depends on the algorithm's order; what must
    // hold is that some did, were retried, and no client saw the failure.
    assert!(retries >= 1, "{retries} retries");
    app.shutdown().await;
}

#[tokio::test]
async fn a_post_with_a_body_is_not_retried() {
    let origin = Origin::fixed("alive").await;
    let dead = closed_port().await;
    // Round robin, so exactly one of the two requests goes to the dead backend.
    let app = start_proxy(&round_robin(&[dead, origin.addr])).await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let request = Request::post(format!("http://{}/", app.addr().unwrap()))
            .body(full("payload"))
            .unwrap();
        statuses.push(send(&h1_client(), request).await.0.status());
    }
    statuses.sort();
    assert_eq!(statuses, vec![StatusCode::OK, StatusCode::BAD_GATEWAY]);
    app.shutdown().await;
}
