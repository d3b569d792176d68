//! The DNS discovery task: looks up every `resolve = true` backend again at its TTL and turns
//! a changed answer into a new snapshot.
//!
//! Owns the schedule only. Lookups go through an injected [`Resolve`] (hickory-resolver in
//! production, a fake in tests); the refresh rule is `balancer::discovery::refresh_after`;
//! the rebuild is [`Shared::rediscover`], so addresses join and leave the pool like any
//! reload and surviving ones keep their live state. It follows reloads (each round reads the
//! live config), keeps the last addresses when a lookup fails or comes back empty, and ends
//! on shutdown. It is top level because it needs both the shared state and the balancer.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::balancer::discovery::{DnsResolver, Resolve, Resolved, refresh_after};
use crate::config::Config;
use crate::shared::Shared;

/// Bounds on the wait between two lookups of one name.
#[derive(Debug, Clone, Copy)]
pub struct DiscoveryOptions {
    pub min_refresh: Duration,
    pub max_refresh: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            min_refresh: Duration::from_secs(1),
            max_refresh: Duration::from_secs(300),
        }
    }
}

/// How often the task looks at the config when no lookup is due.
const IDLE_ROUND: Duration = Duration::from_millis(500);

/// The `host:port` names of every `resolve = true` backend.
pub fn names(config: &Config) -> HashSet<String> {
    config
        .pools
        .iter()
        .flat_map(|p| &p.backends)
        .filter(|b| b.resolve)
        .map(|b| b.addr.clone())
        .collect()
}

/// Splits `host:port`.
fn split(name: &str) -> Option<(&str, u16)> {
    let (host, port) = name.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// A lookup's result: the addresses with the name's port, and the answer (for its TTL).
pub type Lookup = Result<(Vec<SocketAddr>, Resolved), String>;

/// Looks `name` up once; the addresses with the name's port, sorted.
pub async fn lookup(resolver: &dyn Resolve, name: &str) -> Lookup {
    let (host, port) = split(name).ok_or_else(|| format!("{name:?} is not host:port"))?;
    let answer = resolver.resolve(host).await?;
    let mut addrs: Vec<SocketAddr> = answer
        .addrs
        .iter()
        .map(|ip| SocketAddr::new(*ip, port))
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(format!("{host:?} has no address"));
    }
    Ok((addrs, answer))
}

/// The resolver to use: the injected one, else the system's (made on first need).
struct Lazy {
    resolver: Option<Arc<dyn Resolve>>,
}

impl Lazy {
    fn get(&mut self) -> Option<Arc<dyn Resolve>> {
        if self.resolver.is_none() {
            match DnsResolver::from_system() {
                Ok(resolver) => self.resolver = Some(Arc::new(resolver)),
                Err(error) => {
                    tracing::error!(%error, "DNS discovery has no resolver; addresses stay as they are");
                }
            }
        }
        self.resolver.clone()
    }
}

/// Runs discovery until `shutdown` turns true.
pub async fn run(
    shared: Arc<Shared>,
    resolver: Option<Arc<dyn Resolve>>,
    options: DiscoveryOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut resolver = Lazy { resolver };
    let mut next: HashMap<String, Instant> = HashMap::new();
    let mut running: JoinSet<(String, Lookup)> = JoinSet::new();
    let mut busy: HashSet<String> = HashSet::new();
    loop {
        let now = Instant::now();
        let wanted = names(&shared.snapshot.load().config);
        next.retain(|name, _| wanted.contains(name));
        let mut wake = now + IDLE_ROUND;
        for name in wanted {
            let due = *next.entry(name.clone()).or_insert(now);
            if busy.contains(&name) {
                continue;
            }
            if due > now {
                wake = wake.min(due);
                continue;
            }
            let Some(resolver) = resolver.get() else {
                next.insert(name, now + options.max_refresh);
                continue;
            };
            busy.insert(name.clone());
            running.spawn(async move {
                let result = lookup(resolver.as_ref(), &name).await;
                (name, result)
            });
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let Ok((name, result)) = joined else { continue };
                busy.remove(&name);
                let answer = match result {
                    Ok((addrs, answer)) => {
                        match shared.rediscover(name.clone(), addrs.clone()).await {
                            Ok(Some(generation)) => tracing::info!(backend = %name, ?addrs, generation, "DNS answer changed the pool"),
                            Ok(None) => tracing::debug!(backend = %name, "DNS answer unchanged"),
                            Err(error) => tracing::warn!(backend = %name, %error, "DNS answer could not be applied"),
                        }
                        Some(answer)
                    }
                    Err(error) => {
                        tracing::warn!(backend = %name, %error, "DNS lookup failed; keeping the last addresses");
                        None
                    }
                };
                let wait = refresh_after(answer.as_ref(), options.min_refresh, options.max_refresh);
                next.insert(name, Instant::now() + wait);
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
