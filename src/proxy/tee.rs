//! Step 7's tee: a backend's body streamed to the client while the cache collects a copy.
//!
//! Every data frame goes to the client as it arrives and, by reference count, to a
//! [`BodyCollector`]. When the stream ends whole, the collected body is stored and handed to
//! the requests waiting on this fetch. A body over the route's object limit stops being
//! collected and streams on; a body cut short is never stored, and dropping the tee releases
//! the waiters, who then go to the origin themselves.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::body::BoxError;
use crate::cache::{
    BodyCollector, Cache, CacheKey, Collected, Collecting, Entry, Leader, StorePlan,
};

/// What to store once the body is complete.
pub(crate) struct PendingStore {
    pub cache: Arc<Cache>,
    pub key: CacheKey,
    pub plan: StorePlan,
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The coalescing leadership to publish to (none when this request did not lead).
    pub leader: Option<Leader<Arc<Entry>>>,
    /// The response's Content-Length, if it declared one.
    pub declared: Option<u64>,
}

impl PendingStore {
    /// Stores `collected` if it is complete and publishes it; releases the waiters otherwise.
    /// Returns the stored entry.
    fn complete(self, collected: Collected) -> Option<Arc<Entry>> {
        let stored = match collected {
            Collected::Complete(body) => {
                self.cache
                    .store(&self.key, self.plan, self.status, self.headers, body)
            }
            Collected::Skip(reason) => {
                tracing::debug!(
                    key = self.key.primary(),
                    reason = reason.as_str(),
                    "not stored"
                );
                None
            }
        };
        match (self.leader, stored) {
            (Some(leader), Some(entry)) => {
                leader.publish(Arc::clone(&entry));
                Some(entry)
            }
            (Some(leader), None) => {
                leader.release();
                None
            }
            (None, stored) => stored,
        }
    }
}

/// The tee body.
pub(crate) struct Tee {
    inner: Incoming,
    collector: Option<BodyCollector>,
    pending: Option<PendingStore>,
    /// What was stored, once the body ended whole and the store took it.
    stored: Option<Arc<Entry>>,
}

impl Tee {
    /// Streams `inner`, collecting at most `pending.plan.max_body` bytes for the store.
    pub(crate) fn new(inner: Incoming, pending: PendingStore) -> Tee {
        let mut tee = Tee {
            inner,
            collector: Some(BodyCollector::new(pending.plan.max_body)),
            pending: Some(pending),
            stored: None,
        };
        // A body that is over before it starts (204, Content-Length: 0) is never polled:
        // store it now.
        if tee.inner.is_end_stream() {
            tee.end();
        }
        tee
    }

    /// The stored entry, once the body has ended and the store took it.
    pub(crate) fn stored(&self) -> Option<&Arc<Entry>> {
        self.stored.as_ref()
    }

    fn end(&mut self) {
        if let (Some(collector), Some(pending)) = (self.collector.take(), self.pending.take()) {
            let collected = collector.finish(pending.declared);
            self.stored = pending.complete(collected);
        }
    }

    fn abandon(&mut self) {
        self.collector = None;
        // Dropping the pending store drops its leadership: the waiters are released.
        self.pending = None;
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(collector)) = (frame.data_ref(), this.collector.as_mut())
                    && collector.push(data) == Collecting::GaveUp
                {
                    // Too big to store: release the waiters now, not when the stream ends.
                    this.end();
                }
                if this.inner.is_end_stream() {
                    this.end();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.abandon();
                Poll::Ready(Some(Err(Box::new(error))))
            }
            Poll::Ready(None) => {
                this.end();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A tee whose first frames were already read (to learn whether the body fits the store):
/// they go out first, then the rest of the stream.
pub(crate) struct Replay {
    read: std::vec::IntoIter<Bytes>,
    rest: Tee,
}

impl Replay {
    pub(crate) fn new(read: Vec<Bytes>, rest: Tee) -> Replay {
        Replay {
            read: read.into_iter(),
            rest,
        }
    }
}

impl Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match this.read.next() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => Pin::new(&mut this.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.len() == 0 && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self.read.as_slice().iter().map(|b| b.len() as u64).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + read);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + read);
        }
        hint
    }
}
