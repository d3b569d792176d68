//! The body tee: collects a response body for the store while it streams to the client.
//!
//! The pipeline feeds every data frame it forwards to [`BodyCollector::push`] (a `Bytes` clone
//! is a reference count, not a copy). Past the route's maximum object size the collector lets
//! go of what it held and ignores the rest, so a large response is never buffered whole; the
//! stream to the client is never held up either way. At the end of the stream
//! [`BodyCollector::finish`] gives the complete body (one contiguous `Bytes`, copied once at
//! most when the body came in several frames) or says why there is none.

use bytes::{Bytes, BytesMut};

use super::policy::NoCacheReason;

/// Whether the collector still wants frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collecting {
    Accumulating,
    /// Over the limit: keep streaming to the client, stop feeding (feeding more is harmless).
    GaveUp,
}

/// The collected body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collected {
    Complete(Bytes),
    /// Not stored: too big, or not the length the response declared.
    Skip(NoCacheReason),
}

/// Accumulates body frames up to a limit.
#[derive(Debug)]
pub struct BodyCollector {
    chunks: Vec<Bytes>,
    length: usize,
    limit: usize,
    state: Collecting,
}

impl BodyCollector {
    /// A collector that gives up past `limit` bytes (`StorePlan::max_body`).
    pub fn new(limit: usize) -> Self {
        Self {
            chunks: Vec::new(),
            length: 0,
            limit,
            state: Collecting::Accumulating,
        }
    }

    /// Feeds one data frame.
    pub fn push(&mut self, chunk: &Bytes) -> Collecting {
        if self.state == Collecting::GaveUp || chunk.is_empty() {
            return self.state;
        }
        match self.length.checked_add(chunk.len()) {
            Some(length) if length <= self.limit => {
                self.length = length;
                self.chunks.push(chunk.clone());
            }
            _ => {
                self.state = Collecting::GaveUp;
                self.chunks = Vec::new();
            }
        }
        self.state
    }

    /// Bytes held so far.
    pub fn len(&self) -> usize {
        self.length
    }

    /// Whether nothing is held yet.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The body, once the stream ended normally. `declared` is the response's Content-Length,
    /// if it had one: a body of another length is not stored.
    pub fn finish(self, declared: Option<u64>) -> Collected {
        if self.state == Collecting::GaveUp {
            return Collected::Skip(NoCacheReason::TooBig);
        }
        if declared.is_some_and(|declared| declared != self.length as u64) {
            return Collected::Skip(NoCacheReason::Incomplete);
        }
        let chunks = self.chunks;
        // Always one fresh allocation of exactly the body's length, even for a body that came
        // in one frame: a frame is a slice of the connection's read buffer, and storing it
        // would keep that whole buffer alive for the entry's life.
        if chunks.len() <= 1 {
            let body = chunks.first().map(|c| Bytes::copy_from_slice(c));
            return Collected::Complete(body.unwrap_or_default());
        }
        let mut body = BytesMut::with_capacity(self.length);
        for chunk in &chunks {
            body.extend_from_slice(chunk);
        }
        Collected::Complete(body.freeze())
    }
}
