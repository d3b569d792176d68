//! Per-listener connection metrics: accepted connections, the connections open now by protocol,
//! and TLS handshakes. The names are declared in `mod.rs` with the others; this file owns the
//! handles and the guard that moves a connection between protocol gauges.
//!
//! A connection is `pending` from its accept until its first request says which protocol it
//! speaks (hyper-util's auto builder picks HTTP/1.1 or h2 by ALPN or by the h2 preface and does
//! not report its choice), then `h1` or `h2` until it closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use prometheus::{IntCounter, IntGauge};

/// The protocol of a client connection, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionProtocol {
    /// Accepted; in the TLS handshake or waiting for its first request.
    Pending,
    Http1,
    Http2,
}

impl ConnectionProtocol {
    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectionProtocol::Pending => "pending",
            ConnectionProtocol::Http1 => "h1",
            ConnectionProtocol::Http2 => "h2",
        }
    }

    /// The protocol a request arrived with.
    pub fn of(version: http::Version) -> ConnectionProtocol {
        if version == http::Version::HTTP_2 {
            ConnectionProtocol::Http2
        } else {
            ConnectionProtocol::Http1
        }
    }

    pub(super) const ALL: [ConnectionProtocol; 3] = [
        ConnectionProtocol::Pending,
        ConnectionProtocol::Http1,
        ConnectionProtocol::Http2,
    ];

    fn from_index(index: u8) -> ConnectionProtocol {
        match index {
            1 => ConnectionProtocol::Http1,
            2 => ConnectionProtocol::Http2,
            _ => ConnectionProtocol::Pending,
        }
    }
}

/// Handles for one listener.
#[derive(Clone)]
pub struct ListenerMetrics {
    pub accepted: IntCounter,
    pub(super) active: [IntGauge; 3],
    /// TLS handshakes begun.
    pub tls_handshakes: IntCounter,
    /// TLS handshakes that failed or timed out.
    pub tls_errors: IntCounter,
}

impl ListenerMetrics {
    /// The gauge of connections open now that speak `protocol`.
    pub fn active(&self, protocol: ConnectionProtocol) -> &IntGauge {
        let [pending, http1, http2] = &self.active;
        match protocol {
            ConnectionProtocol::Pending => pending,
            ConnectionProtocol::Http1 => http1,
            ConnectionProtocol::Http2 => http2,
        }
    }

    /// Counts a connection just accepted: `pending` until [`ConnectionGauge::classify`], and
    /// off the gauges when the last clone of the guard drops.
    pub fn open(&self) -> Arc<ConnectionGauge> {
        self.accepted.inc();
        self.active(ConnectionProtocol::Pending).inc();
        Arc::new(ConnectionGauge {
            metrics: self.clone(),
            protocol: AtomicU8::new(ConnectionProtocol::Pending as u8),
        })
    }
}

/// One open connection on the active gauges.
pub struct ConnectionGauge {
    metrics: ListenerMetrics,
    protocol: AtomicU8,
}

impl ConnectionGauge {
    /// Moves the connection from `pending` to `protocol`, once; later calls cost one atomic
    /// load (it is called on every request).
    pub fn classify(&self, protocol: ConnectionProtocol) {
        let pending = ConnectionProtocol::Pending as u8;
        if self.protocol.load(Ordering::Relaxed) != pending || protocol as u8 == pending {
            return;
        }
        if self
            .protocol
            .compare_exchange(
                pending,
                protocol as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.metrics.active(ConnectionProtocol::Pending).dec();
            self.metrics.active(protocol).inc();
        }
    }

    /// The protocol the connection is counted under now.
    pub fn protocol(&self) -> ConnectionProtocol {
        ConnectionProtocol::from_index(self.protocol.load(Ordering::Relaxed))
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.metrics.active(self.protocol()).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn a_connection_is_pending_until_its_first_request_then_counted_once_under_its_protocol() {
        let metrics = Metrics::new().unwrap();
        let listener = metrics.listener("main");
        let value = |p| listener.active(p).get();
        let gauge = listener.open();
        assert_eq!(value(ConnectionProtocol::Pending), 1);
        gauge.classify(ConnectionProtocol::Http2);
        gauge.classify(ConnectionProtocol::Http2);
        gauge.classify(ConnectionProtocol::Http1);
        assert_eq!(value(ConnectionProtocol::Pending), 0);
        assert_eq!(value(ConnectionProtocol::Http2), 1);
        assert_eq!(value(ConnectionProtocol::Http1), 0);
        let other = listener.open();
        other.classify(ConnectionProtocol::Http1);
        drop(gauge);
        assert_eq!(value(ConnectionProtocol::Http2), 0);
        assert_eq!(value(ConnectionProtocol::Http1), 1);
        drop(other);
        assert_eq!(value(ConnectionProtocol::Http1), 0);
        assert_eq!(listener.accepted.get(), 2);
    }

    #[test]
    fn a_connection_closed_before_any_request_leaves_pending() {
        let metrics = Metrics::new().unwrap();
        let listener = metrics.listener("tls");
        drop(listener.open());
        assert_eq!(listener.active(ConnectionProtocol::Pending).get(), 0);
        let text = String::from_utf8(metrics.render()).unwrap();
        for protocol in ["pending", "h1", "h2"] {
            assert!(
                text.contains(&format!(
                    "sluice_connections_active{{listener=\"tls\",protocol=\"{protocol}\"}} 0"
                )),
                "{text}"
            );
        }
    }
}
