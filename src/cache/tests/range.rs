use http::HeaderValue;

use super::*;
use crate::cache::RangeAnswer;
use crate::cache::ResponseHead;
use crate::cache::range::{evaluate, select, select_streamed};

fn partial(range: &str, length: usize) -> (std::ops::Range<usize>, String) {
    match evaluate(range, length) {
        RangeAnswer::Partial {
            range,
            content_range,
        } => (range, content_range.to_str().unwrap_or("").to_owned()),
        other => panic!("{range}: expected Partial, got {other:?}"),
    }
}

#[test]
fn rfc9110_14_1_2_a_single_byte_range_is_a_206() {
    assert_eq!(partial("bytes=0-3", 10), (0..4, "bytes 0-3/10".to_owned()));
    assert_eq!(partial("bytes=5-", 10), (5..10, "bytes 5-9/10".to_owned()));
    assert_eq!(partial("bytes=-3", 10), (7..10, "bytes 7-9/10".to_owned()));
    assert_eq!(
        partial("bytes=8-100", 10),
        (8..10, "bytes 8-9/10".to_owned())
    );
    assert_eq!(
        partial("bytes=-100", 10),
        (0..10, "bytes 0-9/10".to_owned())
    );
}

#[test]
fn rfc9110_15_5_17_an_unsatisfiable_range_is_a_416_with_the_length() {
    for range in ["bytes=10-", "bytes=20-30", "bytes=-0"] {
        assert_eq!(
            evaluate(range, 10),
            RangeAnswer::Unsatisfiable {
                content_range: HeaderValue::from_static("bytes */10")
            },
            "{range}"
        );
    }
}

#[test]
fn rfc9110_14_2_other_ranges_fall_back_to_the_full_response() {
    for range in [
        "bytes=0-1,4-5",
        "items=0-1",
        "bytes=5-1",
        "bytes=a-b",
        "bytes=-",
        "bytes",
    ] {
        assert_eq!(evaluate(range, 10), RangeAnswer::Full, "{range}");
    }
}

#[test]
fn rfc9110_13_1_5_if_range_needs_a_strong_match() {
    let stored = entry(
        &get("/a", &[]),
        &response(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("last-modified", &date(0)),
            ],
        ),
        &CacheRules::default(),
        b"0123456789",
    );
    let ranged = |if_range: &str| headers(&[("range", "bytes=0-1"), ("if-range", if_range)]);
    assert!(matches!(
        select(&ranged("\"v1\""), &stored),
        RangeAnswer::Partial { .. }
    ));
    assert!(matches!(
        select(&ranged(&date(0)), &stored),
        RangeAnswer::Partial { .. }
    ));
    assert_eq!(select(&ranged("\"v2\""), &stored), RangeAnswer::Full);
    assert_eq!(select(&ranged("W/\"v1\""), &stored), RangeAnswer::Full);
    assert_eq!(select(&ranged(&date(5)), &stored), RangeAnswer::Full);
    assert!(matches!(
        select(&headers(&[("range", "bytes=2-")]), &stored),
        RangeAnswer::Partial { .. }
    ));
    assert_eq!(select(&headers(&[]), &stored), RangeAnswer::Full);
}

#[test]
fn a_range_slice_shares_the_stored_body() {
    let stored = entry(
        &get("/a", &[]),
        &response(200, &[("cache-control", "max-age=60")]),
        &CacheRules::default(),
        b"0123456789",
    );
    let RangeAnswer::Partial { range, .. } = select(&headers(&[("range", "bytes=2-4")]), &stored)
    else {
        panic!("expected Partial");
    };
    let slice = stored.body().slice(range);
    assert_eq!(&slice[..], b"234");
    assert_eq!(slice.as_ptr(), stored.body()[2..].as_ptr());
}

#[test]
fn rfc9110_14_2_a_streamed_response_is_cut_from_its_declared_length_and_validators() {
    let origin = response(200, &[("etag", "\"s1\""), ("content-length", "10")]);
    let request = headers(&[("range", "bytes=2-5")]);
    assert!(matches!(
        select_streamed(&request, ResponseHead::from(&origin), 10),
        RangeAnswer::Partial { range, .. } if range == (2..6)
    ));
    let stale_if_range = headers(&[("range", "bytes=2-5"), ("if-range", "\"s0\"")]);
    assert_eq!(
        select_streamed(&stale_if_range, ResponseHead::from(&origin), 10),
        RangeAnswer::Full
    );
    let not_ok = response(404, &[]);
    assert_eq!(
        select_streamed(&request, ResponseHead::from(&not_ok), 10),
        RangeAnswer::Full
    );
}
