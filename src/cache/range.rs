//! Range requests answered from a complete stored body (RFC 9110 14).
//!
//! One `bytes=` range gives a 206 with Content-Range; an unsatisfiable one a 416; anything
//! else (several ranges, another unit, bad syntax, an If-Range that does not match) falls back
//! to the full 200, which RFC 9110 14.2 allows. Slicing a `Bytes` is zero-copy. A response
//! that streams through unstored is answered the same way from its head (`select_streamed`).

use std::ops::Range;

use http::header::{ETAG, HeaderValue, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, StatusCode};

use super::conditional::strong_eq;
use super::entry::Entry;
use super::head::ResponseHead;

/// How to answer a request's Range from a stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send the whole stored response.
    Full,
    /// Send 206 with `body().slice(range)` and this Content-Range.
    Partial {
        range: Range<usize>,
        content_range: HeaderValue,
    },
    /// Send 416 with this Content-Range (`bytes */length`).
    Unsatisfiable { content_range: HeaderValue },
}

/// RFC 9110 14.2: the answer to the request's Range for `entry` (a stored 200).
pub fn select(request: &HeaderMap, entry: &Entry) -> RangeAnswer {
    answer(
        request,
        entry.status(),
        entry.etag(),
        entry.last_modified(),
        entry.body().len(),
    )
}

/// The same answer for a response that was not stored (it streams through), from its head
/// and its declared length: the pipeline cuts the range out of the stream, as nginx's range
/// filter does for proxied responses.
pub fn select_streamed(
    request: &HeaderMap,
    response: ResponseHead<'_>,
    length: usize,
) -> RangeAnswer {
    answer(
        request,
        response.status,
        response.headers.get(ETAG),
        response.headers.get(LAST_MODIFIED),
        length,
    )
}

fn answer(
    request: &HeaderMap,
    status: StatusCode,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
    length: usize,
) -> RangeAnswer {
    if status != StatusCode::OK {
        return RangeAnswer::Full;
    }
    let Some(range) = request.get(RANGE).and_then(|value| value.to_str().ok()) else {
        return RangeAnswer::Full;
    };
    if let Some(condition) = request.get(IF_RANGE)
        && !if_range_holds(condition, etag, last_modified)
    {
        return RangeAnswer::Full;
    }
    evaluate(range, length)
}

/// RFC 9110 13.1.5: If-Range holds for a strong ETag match or an exact Last-Modified.
fn if_range_holds(
    condition: &HeaderValue,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> bool {
    let bytes = condition.as_bytes();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        return etag.is_some_and(|etag| strong_eq(bytes, etag.as_bytes()));
    }
    last_modified.is_some_and(|modified| modified.as_bytes() == bytes.trim_ascii())
}

/// The answer to a Range value against a body of `length` bytes.
pub fn evaluate(range: &str, length: usize) -> RangeAnswer {
    let Some((unit, spec)) = range.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |text: &str| -> Option<usize> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // A position past usize is past any body: saturate.
        Some(text.parse::<usize>().unwrap_or(usize::MAX))
    };
    let bounds = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => None,
            Some(suffix) => Some((length.saturating_sub(suffix), length)),
            None => return RangeAnswer::Full,
        },
        (false, _) => {
            let Some(start) = parse(first) else {
                return RangeAnswer::Full;
            };
            let end = if last.is_empty() {
                length
            } else {
                match parse(last) {
                    Some(end) if end >= start => end.saturating_add(1).min(length),
                    // last < first is an invalid range-spec: ignore the Range (14.1.1).
                    _ => return RangeAnswer::Full,
                }
            };
            (start < length).then_some((start, end))
        }
        (true, true) => return RangeAnswer::Full,
    };
    match bounds {
        Some((start, end)) if start < end => {
            let text = format!("bytes {start}-{}/{length}", end.saturating_sub(1));
            match HeaderValue::from_str(&text) {
                Ok(content_range) => RangeAnswer::Partial {
                    range: start..end,
                    content_range,
                },
                Err(_) => RangeAnswer::Full,
            }
        }
        _ => match HeaderValue::from_str(&format!("bytes */{length}")) {
            Ok(content_range) => RangeAnswer::Unsatisfiable { content_range },
            Err(_) => RangeAnswer::Full,
        },
    }
}
