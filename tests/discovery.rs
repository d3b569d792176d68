//! DNS discovery with an injected resolver: a `resolve = true` backend's addresses join and
//! leave the pool at each TTL, surviving ones keep their live state, and a file reload keeps
//! the discovered addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::{Response, StatusCode};
use serde_json::Value;
use sluice::app::{App, StartOptions};
use sluice::balancer::discovery::{Resolve, ResolveFuture, Resolved};
use sluice::discovery::DiscoveryOptions;
use tokio::net::TcpListener;

/// Answers every name with the addresses it is set to, with a short TTL.
struct FakeResolver {
    addrs: Mutex<Vec<IpAddr>>,
    lookups: AtomicUsize,
}

impl FakeResolver {
    fn set(&self, addrs: &[&str]) {
        *self.addrs.lock().unwrap() = addrs.iter().map(|a| a.parse().unwrap()).collect();
    }
}

impl Resolve for FakeResolver {
    fn resolve(&self, host: &str) -> ResolveFuture {
        assert_eq!(host, "app.test");
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let addrs = self.addrs.lock().unwrap().clone();
        Box::pin(async move {
            Ok(Resolved {
                addrs,
                ttl: Duration::from_millis(50),
            })
        })
    }
}

/// Three origins on one port, at 127.0.0.1, .2 and .3 (DNS gives addresses, not ports).
async fn three_origins() -> (u16, Vec<Origin>) {
    'port: for _ in 0..20 {
        let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for ip in ["127.0.0.2", "127.0.0.3"] {
            match TcpListener::bind((ip, port)).await {
                Ok(listener) => listeners.push(listener),
                Err(_) => continue 'port,
            }
        }
        let origins = listeners
            .into_iter()
            .zip(["one", "two", "three"])
            .map(|(listener, name)| {
                Origin::on(listener, move |_| async move { Response::new(full(name)) })
            })
            .collect();
        return (port, origins);
    }
    panic!("no port free on 127.0.0.1, .2 and .3");
}

fn config(port: u16) -> String {
    format!(
        "[[listeners]]\nname = \"main\"\naddr = \"127.0.0.1:0\"\n\n[admin]\naddr = \"127.0.0.1:0\"\n\n[log]\naccess = \"off\"\n\n[pools.main]\nalgorithm = \"round_robin\"\nbackends = [{{ addr = \"app.test:{port}\", resolve = true }}]\n\n[[routes]]\nname = \"main\"\npool = \"main\"\n"
    )
}

async fn backends(app: &App) -> Vec<(String, u64)> {
    let (_, body) = get(app.admin_addr().unwrap(), "/admin/pools").await;
    let pools: Value = serde_json::from_slice(&body).unwrap();
    pools["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["addr"].as_str().unwrap().to_string(),
                b["requests"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_re_resolution_adds_and_removes_backend_addresses() {
    let (port, _origins) = three_origins().await;
    let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), port).to_string();
    let resolver = Arc::new(FakeResolver {
        addrs: Mutex::new(Vec::new()),
        lookups: AtomicUsize::new(0),
    });
    resolver.set(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, config(port)).unwrap();
    let options = StartOptions {
        resolver: Some(Arc::clone(&resolver) as Arc<dyn Resolve>),
        discovery: DiscoveryOptions {
            min_refresh: Duration::from_millis(20),
            max_refresh: Duration::from_secs(1),
        },
    };
    let app = App::start_with(
        sluice::config::Config::load(&path).unwrap(),
        Some(path.clone()),
        options,
    )
    .await
    .unwrap();
    let addr = app.addr().unwrap();
    for _ in 0..5 {
        let (response, body) = get(addr, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, "one");
    }

    resolver.set(&["127.0.0.1", "127.0.0.2"]);
    eventually("the new address to join the pool", || async {
        backends(&app).await.len() == 2
    })
    .await;
    let pool = backends(&app).await;
    assert_eq!(
        pool[0],
        (at("127.0.0.1"), 5),
        "the surviving backend kept its state"
    );
    let mut bodies = std::collections::HashSet::new();
    for _ in 0..4 {
        bodies.insert(get(addr, "/").await.1);
    }
    assert_eq!(bodies.len(), 2, "{bodies:?}");

    // A file reload keeps the discovered addresses (it does not look app.test up itself).
    app.reload().await.unwrap();
    assert_eq!(backends(&app).await.len(), 2);

    resolver.set(&["127.0.0.2", "127.0.0.3"]);
    eventually("the old address to leave the pool", || async {
        let pool: Vec<String> = backends(&app).await.into_iter().map(|(a, _)| a).collect();
        pool == vec![at("127.0.0.2"), at("127.0.0.3")]
    })
    .await;
    for _ in 0..6 {
        let (response, body) = get(addr, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_ne!(body, "one");
    }
    assert!(resolver.lookups.load(Ordering::SeqCst) >= 3);
    app.shutdown().await;
}

#[tokio::test]
async fn a_failed_lookup_keeps_the_last_addresses() {
    let (port, _origins) = three_origins().await;
    let resolver = Arc::new(FakeResolver {
        addrs: Mutex::new(Vec::new()),
        lookups: AtomicUsize::new(0),
    });
    resolver.set(&["127.0.0.1"]);
    let options = StartOptions {
        resolver: Some(Arc::clone(&resolver) as Arc<dyn Resolve>),
        discovery: DiscoveryOptions {
            min_refresh: Duration::from_millis(20),
            max_refresh: Duration::from_secs(1),
        },
    };
    let app = App::start_with(
        parse(&config(port), std::path::Path::new(".")),
        None,
        options,
    )
    .await
    .unwrap();
    // An empty answer counts as a failure: the pool is not emptied.
    resolver.set(&[]);
    let lookups = resolver.lookups.load(Ordering::SeqCst);
    eventually("two more lookups", || async {
        resolver.lookups.load(Ordering::SeqCst) >= lookups + 2
    })
    .await;
    let (response, body) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "one");
    app.shutdown().await;
}
