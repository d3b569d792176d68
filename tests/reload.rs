//! Reloads: under load without failing a request, a broken file changing nothing, and the file
//! watcher picking up an edit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use http::{Request, Response, StatusCode};

fn write(path: &std::path::Path, backends: &[SocketAddr]) {
    std::fs::write(path, config_text(backends, "")).unwrap();
}

async fn named_origin(name: &'static str) -> Origin {
    Origin::start(move |_| async move { Response::new(full(name)) }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_steady_load_fail_no_request() {
    let origins = [
        named_origin("a1").await,
        named_origin("a2").await,
        named_origin("b1").await,
        named_origin("b2").await,
    ];
    let set_a = [origins[0].addr, origins[1].addr];
    let set_b = [origins[2].addr, origins[3].addr];
    let (app, _dir, path) = start_from_file(&config_text(&set_a, "")).await;
    let app = Arc::new(app);
    let addr = app.addr().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
        clients.push(tokio::spawn(async move {
            let client = h1_client();
            let mut failures = Vec::new();
            let mut bodies = std::collections::HashSet::new();
            while !stop.load(Ordering::Relaxed) {
                let request = Request::get(format!("http://{addr}/"))
                    .body(empty())
                    .unwrap();
                let (response, body) = send(&client, request).await;
                if response.status() == StatusCode::OK {
                    ok.fetch_add(1, Ordering::Relaxed);
                    bodies.insert(body);
                } else {
                    failures.push(response.status());
                }
            }
            (failures, bodies)
        }));
    }

    let mut last = 1;
    for i in 0..100 {
        write(&path, if i % 2 == 0 { &set_b } else { &set_a });
        let generation = app.reload().await.unwrap();
        assert!(generation > last, "generations only grow");
        last = generation;
        // Let some requests through each generation.
        let before = ok.load(Ordering::Relaxed);
        eventually("requests between reloads", || {
            let ok = Arc::clone(&ok);
            async move { ok.load(Ordering::Relaxed) > before + 5 }
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::HashSet::new();
    for client in clients {
        let (failures, bodies) = client.await.unwrap();
        assert!(
            failures.is_empty(),
            "failed requests during reloads: {failures:?}"
        );
        seen.extend(bodies);
    }
    for name in ["a1", "a2", "b1", "b2"] {
        assert!(
            seen.contains(name.as_bytes()),
            "{name} never served: {seen:?}"
        );
    }
    eprintln!(
        "{} requests, 0 failed, across 100 reloads",
        ok.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn a_broken_config_on_reload_leaves_the_old_one_serving_and_says_why() {
    let origin = named_origin("old").await;
    let (app, _dir, path) = start_from_file(&config_text(&[origin.addr], "")).await;
    let admin = app.admin_addr().unwrap();

    std::fs::write(
        &path,
        config_text(&[origin.addr], "[timeouts]\nconnect = \"soon\"\n"),
    )
    .unwrap();
    let request = Request::post(format!("http://{admin}/admin/reload"))
        .body(empty())
        .unwrap();
    let (response, body) = send(&h1_client(), request).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("sluice.toml:19: timeouts.connect"), "{text}");

    let (response, body) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "old");
    let (_, metrics) = get(admin, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("sluice_config_reloads_total{outcome=\"failure\"} "),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_config_generation 1"), "{metrics}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_edited_config_file_is_reloaded_by_the_watcher() {
    let first = named_origin("first").await;
    let second = named_origin("second").await;
    let (app, _dir, path) = start_from_file(&config_text(&[first.addr], "")).await;
    let addr = app.addr().unwrap();
    assert_eq!(get(addr, "/").await.1, "first");
    write(&path, &[second.addr]);
    eventually("the edit to be served", || async move {
        get(addr, "/").await.1 == "second"
    })
    .await;
    app.shutdown().await;
}
