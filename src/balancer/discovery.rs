//! DNS discovery: the addresses behind a backend host name, and when to ask again.
//!
//! Owns the [`Resolve`] trait (so tests inject a fake and production uses hickory-resolver,
//! [`DnsResolver`]), the answer ([`Resolved`]: addresses and TTL), and the refresh rule
//! ([`refresh_after`]). It does not own the pools: the discovery task (`src/discovery.rs`)
//! turns a changed answer into a new snapshot, where addresses join and leave like any
//! other change and surviving ones keep their live state.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

/// One answer: the addresses of a name and how long they may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub addrs: Vec<IpAddr>,
    pub ttl: Duration,
}

/// What a lookup returns.
pub type ResolveFuture = Pin<Box<dyn Future<Output = Result<Resolved, String>> + Send>>;

/// Looks host names up; injectable.
pub trait Resolve: Send + Sync {
    /// The addresses of `host` (A and AAAA), with their TTL.
    fn resolve(&self, host: &str) -> ResolveFuture;
}

/// The wait before a name is looked up again: its TTL, kept between `min` and `max` so a TTL
/// of 0 cannot make a busy loop and a day-long one cannot hide a change for a day. After a
/// failed lookup, `min` (the last addresses stay in use meanwhile).
pub fn refresh_after(answer: Option<&Resolved>, min: Duration, max: Duration) -> Duration {
    match answer {
        Some(answer) => answer.ttl.clamp(min, max.max(min)),
        None => min,
    }
}

/// The system's DNS configuration (`/etc/resolv.conf`) through hickory-resolver, which,
/// unlike `getaddrinfo`, reports the TTL of an answer.
pub struct DnsResolver {
    resolver: hickory_resolver::TokioResolver,
}

impl DnsResolver {
    /// A resolver with the system configuration.
    pub fn from_system() -> Result<DnsResolver, String> {
        let resolver = hickory_resolver::TokioResolver::builder_tokio()
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string())?;
        Ok(DnsResolver { resolver })
    }
}

impl Resolve for DnsResolver {
    fn resolve(&self, host: &str) -> ResolveFuture {
        let resolver = self.resolver.clone();
        let host = host.to_string();
        Box::pin(async move {
            let lookup = resolver
                .lookup_ip(host.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let ttl = lookup
                .valid_until()
                .saturating_duration_since(std::time::Instant::now());
            let mut addrs: Vec<IpAddr> = lookup.iter().collect();
            addrs.sort();
            addrs.dedup();
            Ok(Resolved { addrs, ttl })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_follows_the_ttl_within_bounds() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        let answer = |ttl| Resolved {
            addrs: vec![],
            ttl: Duration::from_secs(ttl),
        };
        assert_eq!(
            refresh_after(Some(&answer(30)), min, max),
            Duration::from_secs(30)
        );
        assert_eq!(refresh_after(Some(&answer(0)), min, max), min);
        assert_eq!(refresh_after(Some(&answer(86_400)), min, max), max);
        assert_eq!(refresh_after(None, min, max), min);
    }
}
