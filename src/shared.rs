//! The state every request and every admin call shares: the live [`Snapshot`] behind one
//! `ArcSwap`, the cache, the metrics and the access log.
//!
//! A snapshot is the whole configuration at one generation, with its routes, pools and upstream
//! clients built. It is immutable: a reload builds a new one, reusing the live state of every
//! backend that survives and the client (with its idle connections) of every pool whose shape
//! did not change, then swaps it in with one store. A request loads the snapshot once.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use http::uri::Authority;

use crate::balancer::{Backend, BackendPool, HealthStatus};
use crate::cache::{Cache, StoreConfig};
use crate::config::{Config, Problem, RouteConfig};
use crate::metrics::access_log::AccessLog;
use crate::metrics::backend_metrics::PoolMetrics;
use crate::metrics::cache_metrics::RouteCacheMetrics;
use crate::metrics::{Metrics, RouteMetrics};
use crate::proxy::headers::Rewrite;
use crate::proxy::upstream::{ClientShape, UpstreamClient};

/// A route with its pool resolved and its metric handles.
pub struct RouteRuntime {
    pub config: RouteConfig,
    pub name: Arc<str>,
    pub pool: usize,
    pub metrics: RouteMetrics,
    /// Cache outcome counters, for a caching route.
    pub cache_metrics: Option<RouteCacheMetrics>,
}

/// A pool: its backends, their precomputed authorities, its client and metric handles.
pub struct PoolRuntime {
    pub backends: BackendPool,
    authorities: Vec<Authority>,
    pub client: UpstreamClient,
    pub metrics: PoolMetrics,
    /// Statuses after which a replayable request goes to another backend.
    pub retry_on: Vec<u16>,
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
    /// The addresses of each `resolve = true` backend (`host:port` as configured), as DNS
    /// discovery last found them.
    pub discovered: HashMap<String, Vec<SocketAddr>>,
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
    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolRuntime> {
        let index = self.config.pools.iter().position(|p| p.name == name)?;
        self.pools.get(index)
    }

    /// Builds generation `generation` of `config`, carrying over state from `previous`.
    /// Resolves host names, so call it from a blocking context or at startup.
    pub fn build(
        config: Arc<Config>,
        generation: u64,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
    ) -> Result<Snapshot, BuildError> {
        Snapshot::build_discovered(config, generation, previous, metrics, &HashMap::new())
    }

    /// [`build`](Self::build) with fresh DNS answers for `resolve = true` backends, by their
    /// `host:port`. Such a backend without a fresh answer keeps the addresses the previous
    /// snapshot had for it, and is looked up with the system resolver only when it is new.
    pub fn build_discovered(
        config: Arc<Config>,
        generation: u64,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
        fresh: &HashMap<String, Vec<SocketAddr>>,
    ) -> Result<Snapshot, BuildError> {
        let mut problems = Vec::new();
        let mut pools = Vec::with_capacity(config.pools.len());
        let mut discovered = HashMap::new();
        for pool in &config.pools {
            let mut addrs = Vec::new();
            let mut caps = HashMap::new();
            for (i, backend) in pool.backends.iter().enumerate() {
                let known = if backend.resolve {
                    fresh
                        .get(&backend.addr)
                        .or_else(|| previous.and_then(|p| p.discovered.get(&backend.addr)))
                        .filter(|a| !a.is_empty())
                        .cloned()
                } else {
                    None
                };
                let resolved = match known {
                    Some(known) => Ok(known),
                    None => resolve(&backend.addr),
                };
                if backend.resolve
                    && let Ok(resolved) = &resolved
                {
                    discovered.insert(backend.addr.clone(), resolved.clone());
                }
                match resolved {
                    Ok(resolved) if !resolved.is_empty() => {
                        if let Some(cap) = backend.max_connections {
                            caps.extend(resolved.iter().map(|a| (*a, cap)));
                        }
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
            let mut options = pool.balance.options.clone();
            options.backend_caps = caps;
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
            let labels = backends
                .backends()
                .iter()
                .map(|b| b.addr.to_string())
                .collect();
            pools.push(PoolRuntime {
                metrics: metrics
                    .pool(&pool.name, labels)
                    .with_request_metrics(config.monitoring.request_metrics),
                backends,
                authorities,
                client,
                retry_on: pool.balance.retry_on.clone(),
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
                    // per-request too: off with the other request metrics
                    cache_metrics: route
                        .cache
                        .as_ref()
                        .filter(|_| config.monitoring.request_metrics)
                        .map(|_| metrics.route_cache(&route.name)),
                });
            }
        }
        if !problems.is_empty() {
            return Err(BuildError { problems });
        }
        Ok(Snapshot {
            discovered,
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
    /// The HTTP cache: one store for every caching route, sized at start.
    pub cache: Arc<Cache>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    /// Held by whoever builds the next snapshot from the current one (file reload, admin pool
    /// change, DNS discovery), so generations are ordered and no change is lost.
    pub rebuild: tokio::sync::Mutex<()>,
    /// Backends that left their pool and may still have requests in flight.
    draining: Mutex<Vec<Departed>>,
}

/// A backend that left its pool, until its last request ends.
#[derive(Clone)]
pub struct Departed {
    pub pool: String,
    pub backend: Arc<Backend>,
}

impl Shared {
    /// Shared state serving `snapshot`.
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>, access_log: AccessLog) -> Shared {
        metrics.reloaded(crate::metrics::ReloadOutcome::Success, snapshot.generation);
        let store = &snapshot.config.cache;
        let mut shape = StoreConfig::with_budget(store.size);
        if let Some(shards) = store.shards.and_then(std::num::NonZeroUsize::new) {
            shape.shards = shards;
        }
        let cache = Arc::new(Cache::new(shape));
        crate::metrics::cache_metrics::register_store(metrics.registry(), Arc::clone(&cache));
        Shared {
            cache,
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            access_log,
            rebuild: tokio::sync::Mutex::new(()),
            draining: Mutex::new(Vec::new()),
        }
    }

    /// Makes `snapshot` the live one. Backends the new generation no longer has are drained:
    /// new requests load the new snapshot, so they get no new picks, and they are forgotten
    /// once nothing is in flight to them. They are not flagged `Draining`: a request that
    /// loaded the old snapshot (and may retry within it) still sees its whole, consistent
    /// pool.
    pub fn swap(&self, snapshot: Snapshot) {
        let old = self.snapshot.swap(Arc::new(snapshot));
        let new = self.snapshot.load();
        let mut departed = Vec::new();
        for (index, pool) in old.pools.iter().enumerate() {
            let Some(name) = old.config.pools.get(index).map(|p| p.name.as_str()) else {
                continue;
            };
            let leaving: Vec<&Arc<Backend>> = match new.pool(name) {
                Some(current) => current.backends.departed(&pool.backends),
                None => pool.backends.backends().iter().collect(),
            };
            for backend in leaving {
                tracing::info!(pool = name, backend = %backend.addr, in_flight = backend.state.in_flight(), "backend left the pool; draining");
                departed.push(Departed {
                    pool: name.to_string(),
                    backend: Arc::clone(backend),
                });
            }
        }
        let mut draining = self.draining.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget the ones already drained, so the list cannot grow without a scrape.
        draining.retain(|d| d.backend.state.in_flight() > 0);
        draining.extend(departed);
    }

    /// Builds and swaps in the next generation from the live config as changed by `edit` (an
    /// admin pool change, a DNS answer), carrying over every surviving backend's state. The
    /// next file reload starts again from the file, so it reconciles such changes. Resolves
    /// host names on a blocking thread.
    pub async fn change(
        self: &Arc<Self>,
        edit: impl FnOnce(&mut Config) -> Result<(), String> + Send + 'static,
    ) -> Result<u64, String> {
        let _guard = self.rebuild.lock().await;
        let shared = Arc::clone(self);
        let snapshot = tokio::task::spawn_blocking(move || {
            let previous = shared.snapshot.load_full();
            let mut config = Config::clone(&previous.config);
            edit(&mut config)?;
            Snapshot::build(
                Arc::new(config),
                previous.generation + 1,
                Some(&previous),
                &shared.metrics,
            )
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let generation = snapshot.generation;
        self.swap(snapshot);
        self.metrics.set_generation(generation);
        Ok(generation)
    }

    /// Builds and swaps in the next generation with a new DNS answer for the `resolve = true`
    /// backend `name`; its addresses join and leave the pool as on a reload, surviving ones
    /// keeping their state. Nothing happens when the answer is what the snapshot has.
    pub async fn rediscover(
        self: &Arc<Self>,
        name: String,
        addrs: Vec<SocketAddr>,
    ) -> Result<Option<u64>, String> {
        let _guard = self.rebuild.lock().await;
        let shared = Arc::clone(self);
        let snapshot = tokio::task::spawn_blocking(move || {
            let previous = shared.snapshot.load_full();
            if previous.discovered.get(&name) == Some(&addrs) {
                return Ok(None);
            }
            let fresh = HashMap::from([(name, addrs)]);
            Snapshot::build_discovered(
                Arc::clone(&previous.config),
                previous.generation + 1,
                Some(&previous),
                &shared.metrics,
                &fresh,
            )
            .map(Some)
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let Some(snapshot) = snapshot else {
            return Ok(None);
        };
        let generation = snapshot.generation;
        self.swap(snapshot);
        self.metrics.set_generation(generation);
        Ok(Some(generation))
    }

    /// Backends that left their pool and still have requests in flight; the ones that
    /// finished are forgotten (their metric series too).
    pub fn draining(&self) -> Vec<Departed> {
        let mut draining = self.draining.lock().unwrap_or_else(PoisonError::into_inner);
        draining.retain(|d| {
            let busy = d.backend.state.in_flight() > 0;
            if !busy {
                tracing::info!(pool = %d.pool, backend = %d.backend.addr, "backend drained");
                self.metrics
                    .remove_backend(&d.pool, &d.backend.addr.to_string());
            }
            busy
        });
        draining.clone()
    }

    /// Sets the per-backend gauges from the live state; called before metrics are rendered.
    pub fn refresh_gauges(&self) {
        let now = tokio::time::Instant::now();
        let snapshot = self.snapshot.load();
        for (index, pool) in snapshot.pools.iter().enumerate() {
            let Some(name) = snapshot.config.pools.get(index).map(|p| p.name.as_str()) else {
                continue;
            };
            for backend in pool.backends.backends() {
                self.metrics.set_backend_state(
                    name,
                    &backend.addr.to_string(),
                    backend.state.in_flight(),
                    backend.state.health() == HealthStatus::Healthy
                        && !backend.state.is_ejected(now),
                );
            }
        }
        for departed in self.draining() {
            self.metrics.set_backend_state(
                &departed.pool,
                &departed.backend.addr.to_string(),
                departed.backend.state.in_flight(),
                departed.backend.state.health() == HealthStatus::Healthy,
            );
        }
    }
}
