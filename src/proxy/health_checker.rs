//! The active health checker: one task that sends each pool's check requests on schedule and
//! publishes the verdicts into the backends' live state.
//!
//! Owns the schedule and the per-backend rise/fall counters ([`ActiveHealth`], keyed by pool
//! and address, so a backend that survives a reload keeps its counters). The decisions are the
//! balancer's pure state machines (`balancer/check.rs`); this module only sends the request
//! through the pool's own upstream client (so TLS and HTTP/2 pools are checked the way they
//! are used) and feeds the result in. It follows reloads: each round reads the live snapshot.
//! Time is tokio's, so paused-time tests drive it. Passive ejections are published by the
//! pipeline; the checker also ends ejections whose backoff has passed (for logs and metrics).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Uri};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::RequestBody;
use crate::balancer::{
    ActiveHealth, CheckResult, HealthCheckConfig, HealthStatus, HealthTransition, first_check_at,
    next_check_at,
};
use crate::shared::Shared;

/// How often the checker looks at the snapshot when no check is due (new pools, reloads).
const IDLE_ROUND: Duration = Duration::from_millis(500);

struct Checked {
    health: ActiveHealth,
    next: Instant,
    running: bool,
}

type Key = (String, SocketAddr);

/// Runs every pool's active checks until `shutdown` turns true.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>, seed: Option<u64>) {
    let mut rng = match seed {
        Some(seed) => SmallRng::seed_from_u64(seed),
        None => SmallRng::seed_from_u64(rand::random()),
    };
    let mut checked: HashMap<Key, Checked> = HashMap::new();
    let mut running: JoinSet<(Key, CheckResult)> = JoinSet::new();
    loop {
        let now = Instant::now();
        let wake = schedule(&shared, &mut checked, &mut running, &mut rng, now);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            Some(joined) = running.join_next(), if !running.is_empty() => {
                if let Ok((key, result)) = joined {
                    apply(&shared, &mut checked, &mut rng, key, result);
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    running.abort_all();
}

/// Syncs the schedule with the live snapshot, starts the checks that are due, and returns
/// when to look again.
fn schedule(
    shared: &Shared,
    checked: &mut HashMap<Key, Checked>,
    running: &mut JoinSet<(Key, CheckResult)>,
    rng: &mut SmallRng,
    now: Instant,
) -> Instant {
    let snapshot = shared.snapshot.load_full();
    let mut wake = now + IDLE_ROUND;
    let mut present = std::collections::HashSet::new();
    for (pool_config, pool) in snapshot.config.pools.iter().zip(&snapshot.pools) {
        for backend in pool.backends.backends() {
            if let Some(transition) = backend.state.poll(now) {
                pool_transition(&pool_config.name, backend.addr, &transition);
            }
        }
        let Some(config) = &pool_config.balance.health else {
            // Checks turned off by a reload: their last verdict no longer holds.
            for backend in pool.backends.backends() {
                if backend.state.health() == HealthStatus::Unhealthy {
                    backend.state.publish(&HealthTransition::BecameHealthy, now);
                    pool_transition(
                        &pool_config.name,
                        backend.addr,
                        &HealthTransition::BecameHealthy,
                    );
                }
            }
            continue;
        };
        for (index, backend) in pool.backends.backends().iter().enumerate() {
            let key = (pool_config.name.clone(), backend.addr);
            present.insert(key.clone());
            let entry = checked.entry(key.clone()).or_insert_with(|| Checked {
                health: ActiveHealth::new(backend.state.health()),
                next: first_check_at(now, config, rng),
                running: false,
            });
            if entry.running {
                continue;
            }
            if entry.next <= now {
                entry.running = true;
                let Some(authority) = pool.authority(index).cloned() else {
                    continue;
                };
                let client = pool.client.clone();
                let config = config.clone();
                running.spawn(async move {
                    let result = probe(&client, authority, &config).await;
                    (key, result)
                });
            } else {
                wake = wake.min(entry.next);
            }
        }
    }
    checked.retain(|key, _| present.contains(key));
    wake
}

/// Sends one check request and judges the answer.
async fn probe(
    client: &super::upstream::UpstreamClient,
    authority: http::uri::Authority,
    config: &HealthCheckConfig,
) -> CheckResult {
    let uri = Uri::builder()
        .scheme(client.scheme())
        .authority(authority)
        .path_and_query(config.path.as_str())
        .build();
    let Ok(uri) = uri else {
        return CheckResult::Failed;
    };
    let mut request = Request::new(RequestBody::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = client.version();
    request.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("sluice-health-check"),
    );
    match client.send(request, config.timeout).await {
        Ok(response) if config.expected.matches(response.status().as_u16()) => {
            // Read the body so the connection goes back to the pool.
            let _ = tokio::time::timeout(
                config.timeout,
                http_body_util::BodyExt::collect(response.into_body()),
            )
            .await;
            CheckResult::Passed
        }
        _ => CheckResult::Failed,
    }
}

/// Feeds a result to the backend's rise/fall counters and publishes a verdict.
fn apply(
    shared: &Shared,
    checked: &mut HashMap<Key, Checked>,
    rng: &mut SmallRng,
    key: Key,
    result: CheckResult,
) {
    let snapshot = shared.snapshot.load_full();
    let Some(entry) = checked.get_mut(&key) else {
        return;
    };
    entry.running = false;
    let Some(pool) = snapshot.pool(&key.0) else {
        return;
    };
    let Some(config) = snapshot
        .config
        .pool(&key.0)
        .and_then(|p| p.balance.health.as_ref())
    else {
        return;
    };
    let now = Instant::now();
    entry.next = next_check_at(now, config, rng);
    let Some(backend) = pool.backends.backends().iter().find(|b| b.addr == key.1) else {
        return;
    };
    if let Some(transition) = entry.health.observe(result, config) {
        backend.state.publish(&transition, now);
        pool_transition(&key.0, key.1, &transition);
    }
}

fn pool_transition(pool: &str, backend: SocketAddr, transition: &HealthTransition) {
    tracing::warn!(
        pool,
        backend = %backend,
        transition = transition.as_str(),
        "backend health changed"
    );
}
