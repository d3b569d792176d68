//! The body types that cross the proxy, both streamed frame by frame and never buffered whole.
//!
//! [`RequestBody`] carries a client's body upstream and enforces the body size limit as bytes
//! arrive. [`ResponseBody`] carries a backend's (or Sluice's own) body to the client, counts
//! the bytes sent, enforces the total deadline, and runs the request's [`Finish`] (metrics and
//! the access log line) when the last byte has gone or the client went away.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// The boxed error type of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error a [`RequestBody`] yields once the client has sent more than the limit.
#[derive(Debug)]
pub struct BodyTooLarge;

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body exceeds the configured limit")
    }
}

impl std::error::Error for BodyTooLarge {}

/// A client's request body on its way upstream.
pub struct RequestBody {
    inner: Option<Incoming>,
    limit: u64,
    seen: u64,
}

impl RequestBody {
    /// Streams `incoming`, failing with [`BodyTooLarge`] past `limit` bytes.
    pub fn new(incoming: Incoming, limit: u64) -> RequestBody {
        RequestBody {
            inner: Some(incoming),
            limit,
            seen: 0,
        }
    }

    /// No body.
    pub fn empty() -> RequestBody {
        RequestBody {
            inner: None,
            limit: 0,
            seen: 0,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        this.inner = None;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Box::new(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(Body::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

/// What happens when a response is over: implemented by the pipeline's per-request record.
pub trait Finish: Send {
    /// Called once, with the body bytes sent and the failure that cut the body short, if any.
    fn finish(self: Box<Self>, bytes: u64, error: Option<&'static str>);
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Upstream(Incoming),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

/// A response body on its way to the client.
pub struct ResponseBody {
    kind: Kind,
    bytes: u64,
    deadline: Option<Instant>,
    /// The deadline's timer, made only once the body first has to wait: most bodies end
    /// without ever waiting, and then cost no timer at all.
    timer: Option<Pin<Box<Sleep>>>,
    finish: Option<Box<dyn Finish>>,
}

impl ResponseBody {
    fn with(kind: Kind) -> ResponseBody {
        ResponseBody {
            kind,
            bytes: 0,
            deadline: None,
            timer: None,
            finish: None,
        }
    }

    /// No body.
    pub fn empty() -> ResponseBody {
        ResponseBody::with(Kind::Empty)
    }

    /// A body held in memory.
    pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::with(Kind::Full(Some(bytes.into())))
    }

    /// A backend's body, streamed.
    pub fn upstream(incoming: Incoming) -> ResponseBody {
        ResponseBody::with(Kind::Upstream(incoming))
    }

    /// Any other body.
    pub fn boxed(body: UnsyncBoxBody<Bytes, BoxError>) -> ResponseBody {
        ResponseBody::with(Kind::Boxed(body))
    }

    /// Fails the body if it is not over by `deadline`.
    pub fn with_deadline(mut self, deadline: Instant) -> ResponseBody {
        self.deadline = Some(deadline);
        self
    }

    /// Runs `finish` when the body ends or is dropped.
    pub fn on_finish(mut self, finish: Box<dyn Finish>) -> ResponseBody {
        self.finish = Some(finish);
        self
    }

    fn complete(&mut self, error: Option<&'static str>) {
        if let Some(finish) = self.finish.take() {
            finish.finish(self.bytes, error);
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away (or hyper gave up on the connection).
        let error = if self.finish.is_some() && !self.is_end_stream() {
            Some("client_closed")
        } else {
            None
        };
        self.complete(error);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled: Poll<Option<Result<Frame<Bytes>, BoxError>>> = match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Kind::Upstream(incoming) => match Pin::new(incoming).poll_frame(cx) {
                Poll::Ready(Some(Err(error))) => {
                    Poll::Ready(Some(Err(Box::new(error) as BoxError)))
                }
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes = this.bytes.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.kind = Kind::Empty;
                this.complete(Some("upstream_body"));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.kind = Kind::Empty;
                this.complete(None);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timer.is_none()
                    && let Some(deadline) = this.deadline
                {
                    this.timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
                }
                if let Some(timer) = this.timer.as_mut()
                    && timer.as_mut().poll(cx).is_ready()
                {
                    this.kind = Kind::Empty;
                    this.complete(Some("total_timeout"));
                    return Poll::Ready(Some(Err("response exceeded the total timeout".into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Upstream(incoming) => incoming.is_end_stream(),
            Kind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(incoming) => incoming.size_hint(),
            Kind::Boxed(body) => body.size_hint(),
        }
    }
}

/// The bytes `range` of a streamed body (a Range answered from a response that streams
/// through unstored): frames before it are dropped, frames across its ends are sliced (no
/// copy), and the stream ends at its last byte.
pub struct Slice<B> {
    inner: B,
    /// Bytes still to drop before the range starts.
    skip: u64,
    /// Bytes of the range still to send.
    take: u64,
}

impl<B> Slice<B> {
    pub fn new(inner: B, range: std::ops::Range<usize>) -> Slice<B> {
        Slice {
            inner,
            skip: range.start as u64,
            take: range.len() as u64,
        }
    }
}

impl<B> Body for Slice<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        while this.take > 0 {
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                other => return other,
            };
            // Trailers belong to the whole body, not to a range of it: dropped.
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            let length = data.len() as u64;
            if this.skip >= length {
                this.skip -= length;
                continue;
            }
            let start = usize::try_from(this.skip).unwrap_or(usize::MAX);
            let end = usize::try_from(this.skip.saturating_add(this.take))
                .unwrap_or(usize::MAX)
                .min(data.len());
            data = data.slice(start..end);
            this.skip = 0;
            this.take -= data.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.take == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.take)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::BodyExt;

    use super::*;

    type Finished = Arc<Mutex<Option<(u64, Option<&'static str>)>>>;

    struct Record(Finished);

    impl Finish for Record {
        fn finish(self: Box<Self>, bytes: u64, error: Option<&'static str>) {
            *self.0.lock().unwrap() = Some((bytes, error));
        }
    }

    #[tokio::test]
    async fn finish_runs_once_with_the_bytes_sent() {
        let seen = Arc::new(Mutex::new(None));
        let body = ResponseBody::full("hello").on_finish(Box::new(Record(Arc::clone(&seen))));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "hello");
        assert_eq!(*seen.lock().unwrap(), Some((5, None)));
    }

    #[tokio::test]
    async fn a_body_dropped_early_finishes_as_client_closed() {
        let seen = Arc::new(Mutex::new(None));
        let body = ResponseBody::full("hello").on_finish(Box::new(Record(Arc::clone(&seen))));
        drop(body);
        assert_eq!(*seen.lock().unwrap(), Some((0, Some("client_closed"))));
    }

    #[tokio::test]
    async fn a_slice_cuts_its_range_across_frames_and_ends_there() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = ["0123", "4567", "89"]
            .into_iter()
            .map(|text| Ok(Frame::data(Bytes::from_static(text.as_bytes()))))
            .collect();
        let stream = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let sliced = Slice::new(stream, 3..6).collect().await.unwrap().to_bytes();
        assert_eq!(sliced, "345");
        let whole = ResponseBody::full("0123456789");
        assert_eq!(
            Slice::new(whole, 9..10).collect().await.unwrap().to_bytes(),
            "9"
        );
    }
}
