//! What the pipeline knows about the connection a request came on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::time::Instant;

/// The connection a request arrived on, as the listener describes it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as a header value, made once per connection for `X-Forwarded-For`.
    pub peer_value: http::HeaderValue,
    /// Whether the client used TLS.
    pub tls: bool,
    /// The listener's name.
    pub listener: Arc<str>,
    /// Who the listener answers (a CDN keeps purge-tag headers).
    pub facing: crate::cache::Facing,
    /// Requests in flight on this connection, for the idle timeout.
    pub activity: Arc<ConnActivity>,
}

/// Live request counts of one connection: a connection is idle when nothing is in flight and
/// nothing has finished for the idle timeout.
#[derive(Debug)]
pub struct ConnActivity {
    epoch: Instant,
    in_flight: AtomicUsize,
    last_change_ms: AtomicU64,
}

impl ConnActivity {
    /// A connection that starts now.
    pub fn new() -> ConnActivity {
        ConnActivity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_change_ms: AtomicU64::new(0),
        }
    }

    fn mark(&self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.epoch).as_millis();
        self.last_change_ms.store(
            u64::try_from(elapsed).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts a request as started; it is in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> ActiveRequest {
        self.start_at(Instant::now())
    }

    /// [`ConnActivity::start`] for a request that started at `now` (the caller has read the
    /// clock already: a hit reads it as few times as it can).
    pub fn start_at(self: &Arc<Self>, now: Instant) -> ActiveRequest {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.mark(now);
        ActiveRequest {
            activity: Arc::clone(self),
            ended: None,
        }
    }

    /// When the connection became idle, or `None` while a request is in flight.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let millis = self.last_change_ms.load(Ordering::Relaxed);
        Some(self.epoch + std::time::Duration::from_millis(millis))
    }
}

impl Default for ConnActivity {
    fn default() -> Self {
        ConnActivity::new()
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub struct ActiveRequest {
    activity: Arc<ConnActivity>,
    /// When it ended, if the owner read the clock for it; otherwise the drop reads it.
    ended: Option<Instant>,
}

impl ActiveRequest {
    /// Says the request ended at `now`, which the drop then records.
    pub fn ended_at(&mut self, now: Instant) {
        self.ended = Some(now);
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.activity.mark(self.ended.unwrap_or_else(Instant::now));
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Arc::new(ConnActivity::new());
        assert!(activity.idle_since().is_some());
        let request = activity.start();
        assert!(activity.idle_since().is_none());
        drop(request);
        assert!(activity.idle_since().is_some());
    }
}
