//! An immutable pool of backends with live per-backend state.
//!
//! A `BackendPool` is rebuilt on every reload; the `BackendState` of a backend that survives is
//! carried over by address, so in-flight counts stay true across reloads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Live state of one backend, shared between snapshots.
#[derive(Debug, Default)]
pub struct BackendState {
    in_flight: AtomicU64,
    requests: AtomicU64,
}

impl BackendState {
    /// Requests sent to this backend and not yet finished.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests ever sent to this backend.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// One backend address in a pool.
#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    pub weight: u32,
    pub state: Arc<BackendState>,
}

/// Marks a request in flight on a backend until dropped.
#[derive(Debug)]
pub struct InFlight {
    state: Arc<BackendState>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Backend {
    /// Counts a request as started; it stays in flight until the guard is dropped.
    pub fn start(&self) -> InFlight {
        self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        self.state.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            state: Arc::clone(&self.state),
        }
    }
}

/// The backends of one pool, in a fixed order.
#[derive(Debug)]
pub struct BackendPool {
    name: String,
    backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
}

impl BackendPool {
    /// Builds a pool from `(addr, weight)` pairs, reusing the state of backends found in
    /// `previous` by address.
    pub fn new(
        name: &str,
        backends: impl IntoIterator<Item = (SocketAddr, u32)>,
        previous: Option<&BackendPool>,
    ) -> BackendPool {
        let backends = backends
            .into_iter()
            .map(|(addr, weight)| {
                let state = previous
                    .and_then(|p| p.backends.iter().find(|b| b.addr == addr))
                    .map(|b| Arc::clone(&b.state))
                    .unwrap_or_default();
                Arc::new(Backend {
                    addr,
                    weight,
                    state,
                })
            })
            .collect();
        BackendPool {
            name: name.to_string(),
            backends,
            next: AtomicUsize::new(0),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every backend.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// Picks a backend round robin, with its index in [`BackendPool::backends`]; `None` when
    /// the pool is empty.
    pub fn pick(&self) -> Option<(usize, &Arc<Backend>)> {
        if self.backends.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        self.backends.get(n).map(|b| (n, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn round_robin_visits_every_backend_in_turn() {
        let pool = BackendPool::new("p", [(addr(1), 1), (addr(2), 1), (addr(3), 1)], None);
        let picks: Vec<u16> = (0..6).map(|_| pool.pick().unwrap().1.addr.port()).collect();
        assert_eq!(picks, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn an_empty_pool_picks_nothing() {
        let pool = BackendPool::new("p", [], None);
        assert!(pool.pick().is_none());
    }

    #[test]
    fn state_of_a_surviving_backend_carries_over() {
        let old = BackendPool::new("p", [(addr(1), 1), (addr(2), 1)], None);
        let guard = old.backends()[1].start();
        let new = BackendPool::new("p", [(addr(2), 5), (addr(3), 1)], Some(&old));
        assert_eq!(new.backends()[0].state.in_flight(), 1);
        assert_eq!(new.backends()[1].state.in_flight(), 0);
        drop(guard);
        assert_eq!(new.backends()[0].state.in_flight(), 0);
    }
}
