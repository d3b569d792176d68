use std::time::Duration;

use super::*;
use crate::cache::{CacheStatus, Facing, Fwd, NoCacheReason, set_age, strip_for_client};

#[test]
fn rfc9211_a_hit_says_hit_and_ttl() {
    assert_eq!(CacheStatus::hit(57).render(), "sluice; hit; ttl=57");
}

#[test]
fn rfc9211_a_stored_miss_says_fwd_stored_and_ttl() {
    assert_eq!(
        CacheStatus::forward(Fwd::UriMiss).stored(60).render(),
        "sluice; fwd=uri-miss; stored; ttl=60"
    );
    assert_eq!(
        CacheStatus::forward(Fwd::Miss).stored(5).render(),
        "sluice; fwd=miss; stored; ttl=5"
    );
}

#[test]
fn rfc9211_2_8_a_response_not_stored_says_why() {
    let status = CacheStatus::forward(Fwd::VaryMiss).not_stored(NoCacheReason::NoStore);
    assert_eq!(status.render(), "sluice; fwd=vary-miss; detail=no-store");
}

#[test]
fn rfc9211_stale_if_error_and_revalidation_carry_fwd_status() {
    let status = CacheStatus::forward(Fwd::Stale)
        .fwd_status(StatusCode::SERVICE_UNAVAILABLE)
        .ttl(-20)
        .detail("stale-if-error");
    assert_eq!(
        status.render(),
        "sluice; fwd=stale; fwd-status=503; ttl=-20; detail=stale-if-error"
    );
    let status = CacheStatus::forward(Fwd::Request)
        .fwd_status(StatusCode::NOT_MODIFIED)
        .stored(30);
    assert_eq!(
        status.to_header_value(),
        "sluice; fwd=request; fwd-status=304; stored; ttl=30"
    );
}

#[test]
fn rfc9211_2_6_a_coalesced_request_says_collapsed() {
    assert_eq!(
        CacheStatus::hit(9).collapsed().render(),
        "sluice; hit; collapsed; ttl=9"
    );
}

#[test]
fn surrogate_control_is_always_stripped_and_tags_unless_facing_a_cdn() {
    let fields = [
        ("surrogate-control", "max-age=60"),
        ("surrogate-key", "a b"),
        ("cache-tag", "a"),
        ("xkey", "a"),
        ("cdn-cache-control", "max-age=60"),
    ];
    let mut client = headers(&fields);
    strip_for_client(&mut client, Facing::Client);
    assert_eq!(
        client.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        vec!["cdn-cache-control"]
    );
    let mut cdn = headers(&fields);
    strip_for_client(&mut cdn, Facing::Cdn);
    assert!(cdn.get("surrogate-control").is_none());
    assert_eq!(cdn.len(), 4);
}

#[test]
fn rfc9111_5_1_age_is_whole_seconds_replacing_the_origins() {
    let mut fields = headers(&[("age", "5")]);
    set_age(&mut fields, Duration::from_millis(12_900));
    assert_eq!(fields.get("age").map(|v| v.as_bytes()), Some(&b"12"[..]));
    assert_eq!(fields.get_all("age").iter().count(), 1);
}

#[test]
fn rfc9111_5_1_age_values_are_the_seconds_in_decimal_at_every_width() {
    for seconds in [
        0u64,
        7,
        9,
        10,
        99,
        100,
        999,
        1000,
        4321,
        9999,
        10_000,
        86_400,
        u64::MAX,
    ] {
        let mut fields = HeaderMap::new();
        set_age(&mut fields, Duration::from_secs(seconds));
        assert_eq!(fields["age"], seconds.to_string().as_str(), "{seconds}");
    }
}

#[test]
fn rfc9211_2_the_cache_status_value_is_its_rendering_short_or_long() {
    let long: &'static str = concat!(
        "a-detail-long-enough-that-the-whole-field-value-no-longer-fits-",
        "in-the-stack-buffer-the-common-values-are-written-to-before-their-copy"
    );
    for status in [
        CacheStatus::hit(57),
        CacheStatus::forward(Fwd::Miss)
            .fwd_status(StatusCode::OK)
            .stored(300)
            .collapsed(),
        CacheStatus::forward(Fwd::Stale).ttl(-5).detail(long),
    ] {
        assert_eq!(status.to_header_value(), status.render().as_str());
    }
}
