use bytes::Bytes;

use crate::cache::entry::PACK_BODY_MAX;
use crate::cache::{BodyCollector, Collected, Collecting, NoCacheReason};

#[test]
fn frames_are_collected_into_one_body() {
    let mut collector = BodyCollector::new(100);
    assert_eq!(
        collector.push(&Bytes::from_static(b"hello ")),
        Collecting::Accumulating
    );
    assert_eq!(
        collector.push(&Bytes::from_static(b"world")),
        Collecting::Accumulating
    );
    assert_eq!(collector.len(), 11);
    assert_eq!(
        collector.finish(Some(11)),
        Collected::Complete(Bytes::from_static(b"hello world"))
    );
}

#[test]
fn a_single_frame_body_is_stored_apart_from_the_read_buffer_it_came_in() {
    // A frame as hyper hands it out: sliced from a larger read buffer, which the stored body
    // must not keep alive. Bodies up to PACK_BODY_MAX are detached by `Entry` instead (its
    // test `stored_values_and_body_do_not_point_into_the_read_buffer`).
    let buffer = Bytes::from(vec![1u8; 4 * PACK_BODY_MAX]);
    let frame = buffer.slice(100..100 + PACK_BODY_MAX + 1);
    let mut collector = BodyCollector::new(2 * PACK_BODY_MAX);
    collector.push(&frame);
    let Collected::Complete(body) = collector.finish(None) else {
        panic!("expected a body");
    };
    assert_eq!(body, frame);
    let range = buffer.as_ptr_range();
    assert!(
        !range.contains(&body.as_ptr()),
        "the body still points into the read buffer"
    );
}

#[test]
fn past_the_limit_the_collector_gives_up_and_lets_go() {
    let mut collector = BodyCollector::new(10);
    collector.push(&Bytes::from_static(b"12345678"));
    assert_eq!(
        collector.push(&Bytes::from_static(b"123")),
        Collecting::GaveUp
    );
    assert_eq!(
        collector.push(&Bytes::from_static(b"1")),
        Collecting::GaveUp
    );
    assert_eq!(collector.len(), 8);
    assert_eq!(
        collector.finish(None),
        Collected::Skip(NoCacheReason::TooBig)
    );
}

#[test]
fn a_body_shorter_than_its_content_length_is_not_stored() {
    let mut collector = BodyCollector::new(100);
    collector.push(&Bytes::from_static(b"abc"));
    assert_eq!(
        collector.finish(Some(10)),
        Collected::Skip(NoCacheReason::Incomplete)
    );
    assert_eq!(
        BodyCollector::new(5).finish(Some(0)),
        Collected::Complete(Bytes::new())
    );
}
