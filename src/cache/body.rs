//! The body tee: collects a response body for the store while it streams to the client.
//!
//! The pipeline feeds every data frame it forwards to [`BodyCollector::push`] (a `Bytes` clone
//! is a reference count, not a copy). Past the route's maximum object size the collector lets
//! go of what it held and ignores the rest, so a large response is never buffered whole; the
//! stream to the client is never held up either way. At the end of the stream
//! [`BodyCollector::finish`] gives the complete body (one contiguous `Bytes`, never a slice of
//! the connection's read buffer that the entry would keep alive) or says why there is none.
//! A body of up to [`PACK_BODY_MAX`] that came in one frame is handed over as it is: the
//! entry copies it into its own block anyway, so copying it here too would be done twice.

use bytes::{Bytes, BytesMut};

use super::entry::PACK_BODY_MAX;
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
        // A frame is a slice of the connection's read buffer, and storing it would keep that
        // whole buffer alive for the entry's life: a large one-frame body gets a fresh
        // allocation of exactly its length; a small one is copied by `Entry` (see above).
        if chunks.len() <= 1 {
            let body = chunks.first().map(|c| {
                if c.len() <= PACK_BODY_MAX {
                    c.clone()
                } else {
                    Bytes::copy_from_slice(c)
                }
            });
            return Collected::Complete(body.unwrap_or_default());
        }
        let mut body = BytesMut::with_capacity(self.length);
        for chunk in &chunks {
            body.extend_from_slice(chunk);
        }
        Collected::Complete(body.freeze())
    }
}
