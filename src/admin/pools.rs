//! The pool API: what each pool's backends are doing, and runtime changes to them.
//!
//! - `GET /admin/pools`: every pool with its algorithm, mode and in-flight count, and each
//!   backend's weight, health, admin state, ejection, in-flight and request counts and EWMA
//!   latency; backends that left and are still draining.
//! - `POST /admin/pools/NAME/add` `{"addr": "10.0.0.5:80", "weight": 2}`,
//!   `POST /admin/pools/NAME/remove` `{"addr": ..}`, `POST /admin/pools/NAME/weight`
//!   `{"addr": .., "weight": 3}`: build the next generation from the live config so changed
//!   (surviving backends keep their state; a removed one drains).
//! - `POST /admin/pools/NAME/drain` and `/activate` `{"addr": ..}`: take a backend out of
//!   rotation (in-flight requests finish) or put it back, without a rebuild.
//!
//! Changes live in memory only; the next file reload starts from the file again and so
//! reconciles them. This module owns the JSON shapes; the state is the balancer's.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::balancer::{AdminState, Backend, BackendPool};
use crate::config::BackendConfig;
use crate::shared::Shared;

use super::json;

/// Answers a request under `/admin/pools`.
pub(super) async fn handle(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let rest = path.trim_start_matches("/admin/pools").trim_matches('/');
    if rest.is_empty() {
        return match *request.method() {
            Method::GET => json(StatusCode::OK, &pools_json(shared)),
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        };
    }
    let Some((pool, action)) = rest.split_once('/') else {
        return error(StatusCode::NOT_FOUND, "use /admin/pools/NAME/ACTION");
    };
    if request.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let (pool, action) = (pool.to_string(), action.to_string());
    let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body must be a JSON object");
    };
    let Some(addr) = body
        .get("addr")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        return error(StatusCode::BAD_REQUEST, "\"addr\" must be an ip:port");
    };
    let weight = match body.get("weight") {
        None => None,
        Some(w) => match w.as_u64().and_then(|w| u32::try_from(w).ok()) {
            Some(w) if w > 0 => Some(w),
            _ => return error(StatusCode::BAD_REQUEST, "\"weight\" must be at least 1"),
        },
    };
    if shared.snapshot.load().config.pool(&pool).is_none() {
        return error(StatusCode::NOT_FOUND, "no such pool");
    }
    match action.as_str() {
        "drain" | "activate" => {
            let admin = if action == "drain" {
                AdminState::Draining
            } else {
                AdminState::Active
            };
            let snapshot = shared.snapshot.load_full();
            let found = snapshot
                .pool(&pool)
                .and_then(|p| p.backends.backends().iter().find(|b| b.addr == addr));
            match found {
                Some(backend) => {
                    backend.state.set_admin(admin);
                    tracing::info!(pool, backend = %addr, admin = admin.as_str(), "backend admin state set");
                    json(
                        StatusCode::OK,
                        &json!({"status": "ok", "admin": admin.as_str()}),
                    )
                }
                None => error(StatusCode::NOT_FOUND, "no such backend in the pool"),
            }
        }
        "add" | "remove" | "weight" => {
            let edit_pool = pool.clone();
            let edit_action = action.clone();
            let result = shared
                .change(move |config| {
                    let pool = config
                        .pools
                        .iter_mut()
                        .find(|p| p.name == edit_pool)
                        .ok_or("no such pool")?;
                    let text = addr.to_string();
                    let position = pool.backends.iter().position(|b| b.addr == text);
                    match (edit_action.as_str(), position) {
                        ("add", None) => pool.backends.push(BackendConfig {
                            addr: text,
                            weight: weight.unwrap_or(1),
                            resolve: false,
                            max_connections: None,
                        }),
                        ("add", Some(_)) => return Err("the backend is already in the pool".into()),
                        ("remove", Some(i)) => {
                            pool.backends.remove(i);
                        }
                        ("weight", Some(i)) => {
                            let Some(weight) = weight else {
                                return Err("\"weight\" is needed".into());
                            };
                            if let Some(backend) = pool.backends.get_mut(i) {
                                backend.weight = weight;
                            }
                        }
                        _ => return Err("no such backend in the pool".into()),
                    }
                    Ok(())
                })
                .await;
            match result {
                Ok(generation) => {
                    tracing::info!(pool, backend = %addr, action, generation, "pool changed from the admin API");
                    json(
                        StatusCode::OK,
                        &json!({"status": "ok", "generation": generation}),
                    )
                }
                Err(message) => error(StatusCode::UNPROCESSABLE_ENTITY, &message),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "actions: add, remove, weight, drain, activate",
        ),
    }
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &json!({"status": "error", "error": message}))
}

/// Every pool of the live snapshot, and the backends still draining.
fn pools_json(shared: &Shared) -> Value {
    let now = Instant::now();
    let snapshot = shared.snapshot.load_full();
    let draining = shared.draining();
    let pools: Vec<Value> = snapshot
        .config
        .pools
        .iter()
        .zip(&snapshot.pools)
        .map(|(config, pool)| {
            let balancer = &pool.backends;
            let health = balancer.health(now);
            let left: Vec<Value> = draining
                .iter()
                .filter(|d| d.pool == config.name)
                .map(|d| json!({"addr": d.backend.addr.to_string(), "in_flight": d.backend.state.in_flight()}))
                .collect();
            json!({
                "name": config.name,
                "algorithm": balancer.options().algorithm.as_str(),
                "mode": health.mode.as_str(),
                "serving": health.serving,
                "excluded": health.excluded,
                "in_flight": balancer.in_flight(),
                "retry_budget": balancer.retry_budget().balance(now),
                "active_health_checks": config.balance.health.is_some(),
                "backends": balancer.backends().iter().map(|b| backend_json(balancer, b, now)).collect::<Vec<_>>(),
                "departed": left,
            })
        })
        .collect();
    json!({"generation": snapshot.generation, "pools": pools})
}

fn backend_json(pool: &BackendPool, backend: &Backend, now: Instant) -> Value {
    let state = &backend.state;
    let options = pool.options();
    let ewma = state
        .latency(now, options.ewma.decay)
        .map(|l| l.as_secs_f64() * 1000.0);
    let ejected_for = state
        .ejected_until()
        .and_then(|until| until.checked_duration_since(now))
        .map(|left| left.as_secs_f64());
    let slow_start = options
        .slow_start
        .map_or(1.0, |s| s.factor(state.ramp_from(), now));
    json!({
        "addr": backend.addr.to_string(),
        "weight": backend.weight,
        "health": state.health().as_str(),
        "admin": state.admin().as_str(),
        "eligible": state.eligible(now),
        "ejected": state.is_ejected(now),
        "ejected_for_seconds": ejected_for,
        "ejections": state.ejections(),
        "in_flight": state.in_flight(),
        "requests": state.requests(),
        "failures": state.failures(),
        "ewma_ms": ewma,
        "slow_start_factor": slow_start,
    })
}
