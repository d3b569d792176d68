//! The state every request and every admin call shares: the live [`Snapshot`] behind one
//! `ArcSwap`, the metrics and the access log.
//!
//! A snapshot is the whole configuration at one generation, with its routes, pools and upstream
//! clients built. It is immutable: a reload builds a new one, reusing the live state of every
//! backend that survives and the client (with its idle connections) of every pool whose shape
//! did not change, then swaps it in with one store. A request loads the snapshot once.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::uri::Authority;

use crate::balancer::BackendPool;
use crate::config::{Config, Problem, RouteConfig};
use crate::metrics::access_log::AccessLog;
use crate::metrics::{Metrics, RouteMetrics};
use crate::proxy::headers::Rewrite;
use crate::proxy::upstream::{ClientShape, UpstreamClient};

/// A route with its pool resolved and its metric handles.
pub struct RouteRuntime {
    pub config: RouteConfig,
    pub name: Arc<str>,
    pub pool: usize,
    pub metrics: RouteMetrics,
}

/// A pool: its backends, their precomputed authorities, and its client.
pub struct PoolRuntime {
    pub backends: BackendPool,
    authorities: Vec<Authority>,
    pub client: UpstreamClient,
}

impl PoolRuntime {
    /// The URI authority for the backend at `index` in `backends`.
    pub fn authority(&self, index: usize) -> Option<&Authority> {
        self.authorities.get(index)
    }
}

/// The whole live configuration at one generation.
pub struct Snapshot {
    pub generation: u64,
    pub config: Arc<Config>,
    /// The header policy with its values precomputed.
    pub rewrite: Rewrite,
    pub routes: Vec<RouteRuntime>,
    pub pools: Vec<PoolRuntime>,
}

/// Why a snapshot could not be built from a valid config (a name that does not resolve, a CA
/// file that does not parse).
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct BuildError {
    pub problems: Vec<Problem>,
}

fn build_problem(key: String, message: String) -> Problem {
    Problem {
        file: "(build)".to_string(),
        line: None,
        key,
        message,
    }
}

/// Resolves a backend address (`ip:port` or `host:port`) to every address it names.
fn resolve(addr: &str) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    Ok(addr.to_socket_addrs()?.collect())
}

impl Snapshot {
    /// Builds generation `generation` of `config`, carrying over state from `previous`.
    /// Resolves host names, so call it from a blocking context or at startup.
    pub fn build(
        config: Arc<Config>,
        generation: u64,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
    ) -> Result<Snapshot, BuildError> {
        let mut problems = Vec::new();
        let mut pools = Vec::with_capacity(config.pools.len());
        for pool in &config.pools {
            let mut addrs = Vec::new();
            for (i, backend) in pool.backends.iter().enumerate() {
                match resolve(&backend.addr) {
                    Ok(resolved) if !resolved.is_empty() => {
                        addrs.extend(resolved.into_iter().map(|a| (a, backend.weight)))
                    }
                    Ok(_) => problems.push(build_problem(
                        format!("pools.{}.backends[{i}].addr", pool.name),
                        format!("{:?} resolves to no address", backend.addr),
                    )),
                    Err(error) => problems.push(build_problem(
                        format!("pools.{}.backends[{i}].addr", pool.name),
                        format!("{:?} does not resolve: {error}", backend.addr),
                    )),
                }
            }
            addrs.dedup_by_key(|(a, _)| *a);
            let old = previous.and_then(|p| {
                let index = p.config.pools.iter().position(|c| c.name == pool.name)?;
                p.pools.get(index)
            });
            let algorithm = match pool.algorithm {
                crate::config::Algorithm::RoundRobin => crate::balancer::Algorithm::RoundRobin,
            };
            let options = crate::balancer::PoolOptions {
                algorithm,
                ..crate::balancer::PoolOptions::default()
            };
            let backends = BackendPool::with_options(
                &pool.name,
                addrs,
                old.map(|o| &o.backends),
                options,
                tokio::time::Instant::now(),
            );
            let shape = ClientShape::of(pool, &config.timeouts);
            let client = match old.filter(|o| *o.client.shape() == shape) {
                Some(old) => old.client.clone(),
                None => match UpstreamClient::new(pool, &config.timeouts) {
                    Ok(client) => client,
                    Err(error) => {
                        problems.push(build_problem(
                            format!("pools.{}", pool.name),
                            error.to_string(),
                        ));
                        continue;
                    }
                },
            };
            let authorities = backends
                .backends()
                .iter()
                .filter_map(|b| Authority::try_from(b.addr.to_string()).ok())
                .collect();
            pools.push(PoolRuntime {
                backends,
                authorities,
                client,
            });
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            if let Some(pool) = config.pools.iter().position(|p| p.name == route.pool) {
                routes.push(RouteRuntime {
                    config: route.clone(),
                    name: Arc::from(route.name.as_str()),
                    pool,
                    metrics: if config.monitoring.request_metrics {
                        metrics.route(&route.name)
                    } else {
                        RouteMetrics::disabled()
                    },
                });
            }
        }
        if !problems.is_empty() {
            return Err(BuildError { problems });
        }
        Ok(Snapshot {
            generation,
            rewrite: Rewrite::new(&config.headers),
            config,
            routes,
            pools,
        })
    }
}

/// The state shared by every listener, request and admin call.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
}

impl Shared {
    /// Shared state serving `snapshot`.
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>, access_log: AccessLog) -> Shared {
        metrics.reloaded(crate::metrics::ReloadOutcome::Success, snapshot.generation);
        Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            access_log,
        }
    }
}
