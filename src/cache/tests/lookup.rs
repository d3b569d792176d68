use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cache::directives::RequestDirectives;
use crate::cache::lookup::{evaluate, only_if_cached};
use crate::cache::{
    ClientNoCache, Lookup, MissKind, OnError, ServeStale, StaleReason, UpstreamFailure,
    stale_on_error,
};

fn stored(cache_control: &str) -> Arc<Entry> {
    Arc::new(entry(
        &get("/a", &[]),
        &response(200, &[("cache-control", cache_control), ("etag", "\"v1\"")]),
        &CacheRules::default(),
        b"body",
    ))
}

fn look(entry: &Arc<Entry>, request: &[(&str, &str)], rules: &CacheRules, now: u64) -> Lookup {
    evaluate(
        Arc::clone(entry),
        &RequestDirectives::parse(&headers(request)),
        rules,
        at(now),
    )
}

fn stale_parts(lookup: &Lookup) -> (StaleReason, ServeStale) {
    match lookup {
        Lookup::Stale(stale) => (stale.reason, stale.serve),
        other => panic!("expected Stale, got {}", other.as_str()),
    }
}

#[test]
fn rfc9111_4_2_a_fresh_entry_is_a_hit_with_its_age() {
    let entry = stored("max-age=60");
    match look(&entry, &[], &CacheRules::default(), 20) {
        Lookup::Hit(hit) => {
            assert_eq!(hit.age, Duration::from_secs(20));
            assert_eq!(hit.ttl, 40);
        }
        other => panic!("{}", other.as_str()),
    }
}

#[test]
fn rfc9111_4_2_an_expired_entry_is_revalidated() {
    let entry = stored("max-age=60");
    let lookup = look(&entry, &[], &CacheRules::default(), 61);
    assert_eq!(
        stale_parts(&lookup),
        (StaleReason::Expired, ServeStale::AfterRevalidation)
    );
}

#[test]
fn rfc5861_3_within_stale_while_revalidate_the_entry_is_served_while_revalidating() {
    let entry = stored("max-age=60, stale-while-revalidate=30");
    let rules = CacheRules::default();
    assert_eq!(
        stale_parts(&look(&entry, &[], &rules, 80)),
        (StaleReason::Expired, ServeStale::WhileRevalidating)
    );
    assert_eq!(
        stale_parts(&look(&entry, &[], &rules, 91)),
        (StaleReason::Expired, ServeStale::AfterRevalidation)
    );
}

#[test]
fn stale_while_revalidate_is_capped_by_the_route_max_stale() {
    let entry = stored("max-age=60, stale-while-revalidate=3000");
    let rules = CacheRules {
        max_stale: Duration::from_secs(10),
        ..CacheRules::default()
    };
    assert_eq!(
        stale_parts(&look(&entry, &[], &rules, 75)).1,
        ServeStale::AfterRevalidation
    );
}

#[test]
fn rfc9111_4_2_4_must_revalidate_forbids_serving_stale() {
    let entry = stored("max-age=60, stale-while-revalidate=30, must-revalidate");
    assert_eq!(
        stale_parts(&look(&entry, &[], &CacheRules::default(), 70)).1,
        ServeStale::AfterRevalidation
    );
    let entry = stored("max-age=60, max-stale=100, proxy-revalidate");
    let lookup = look(
        &entry,
        &[("cache-control", "max-stale")],
        &CacheRules::default(),
        70,
    );
    assert_eq!(stale_parts(&lookup).1, ServeStale::AfterRevalidation);
}

#[test]
fn rfc9111_5_2_2_4_a_no_cache_response_is_revalidated_on_every_use() {
    let entry = stored("no-cache, max-age=600");
    assert_eq!(
        stale_parts(&look(&entry, &[], &CacheRules::default(), 1)).0,
        StaleReason::ResponseNoCache
    );
}

#[test]
fn rfc9111_5_2_1_4_a_request_no_cache_forces_revalidation_unless_ignored() {
    let entry = stored("max-age=600");
    let no_cache = [("cache-control", "no-cache")];
    let lookup = look(&entry, &no_cache, &CacheRules::default(), 1);
    assert_eq!(stale_parts(&lookup).0, StaleReason::RequestNoCache);
    assert!(StaleReason::RequestNoCache.forced_by_request());
    let rules = CacheRules {
        client_no_cache: ClientNoCache::Ignore,
        ..CacheRules::default()
    };
    assert!(matches!(look(&entry, &no_cache, &rules, 1), Lookup::Hit(_)));
}

#[test]
fn rfc9111_5_2_1_1_a_request_max_age_rejects_older_responses() {
    let entry = stored("max-age=600");
    let rules = CacheRules::default();
    assert!(matches!(
        look(&entry, &[("cache-control", "max-age=30")], &rules, 20),
        Lookup::Hit(_)
    ));
    let lookup = look(&entry, &[("cache-control", "max-age=30")], &rules, 31);
    assert_eq!(stale_parts(&lookup).0, StaleReason::RequestMaxAge);
}

#[test]
fn rfc9111_5_2_1_3_a_request_min_fresh_needs_that_much_freshness_left() {
    let entry = stored("max-age=100");
    let rules = CacheRules::default();
    assert!(matches!(
        look(&entry, &[("cache-control", "min-fresh=30")], &rules, 60),
        Lookup::Hit(_)
    ));
    let lookup = look(&entry, &[("cache-control", "min-fresh=30")], &rules, 80);
    assert_eq!(stale_parts(&lookup).0, StaleReason::RequestMinFresh);
}

#[test]
fn rfc9111_5_2_1_2_a_request_max_stale_accepts_stale_responses() {
    let entry = stored("max-age=60");
    let rules = CacheRules::default();
    assert!(matches!(
        look(&entry, &[("cache-control", "max-stale")], &rules, 500),
        Lookup::Hit(_)
    ));
    match look(&entry, &[("cache-control", "max-stale=20")], &rules, 75) {
        Lookup::Hit(hit) => assert_eq!(hit.ttl, -15),
        other => panic!("{}", other.as_str()),
    }
    assert!(matches!(
        look(&entry, &[("cache-control", "max-stale=20")], &rules, 90),
        Lookup::Stale(_)
    ));
}

#[test]
fn rfc9111_5_2_2_10_s_maxage_forbids_a_client_max_stale() {
    let entry = stored("s-maxage=60");
    assert!(matches!(
        look(
            &entry,
            &[("cache-control", "max-stale")],
            &CacheRules::default(),
            70
        ),
        Lookup::Stale(_)
    ));
}

#[test]
fn rfc9111_5_2_1_7_only_if_cached_turns_what_needs_the_origin_into_a_504() {
    let entry = stored("max-age=60");
    let rules = CacheRules::default();
    assert!(matches!(
        only_if_cached(look(&entry, &[], &rules, 1)),
        Lookup::Hit(_)
    ));
    assert!(matches!(
        only_if_cached(look(&entry, &[], &rules, 100)),
        Lookup::Miss(MissKind::OnlyIfCached)
    ));
    assert!(matches!(
        only_if_cached(Lookup::Miss(MissKind::UriMiss)),
        Lookup::Miss(MissKind::OnlyIfCached)
    ));
}

#[test]
fn a_soft_purged_entry_is_revalidated_even_when_fresh() {
    let entry = stored("max-age=600");
    entry.soft_purge();
    assert_eq!(
        stale_parts(&look(&entry, &[], &CacheRules::default(), 1)).0,
        StaleReason::SoftPurged
    );
}

#[test]
fn rfc5861_4_stale_if_error_serves_stale_on_server_errors_and_no_answer() {
    let entry = stored("max-age=60, stale-if-error=300");
    let rules = CacheRules::default();
    let none = HeaderMap::new();
    for failure in [
        UpstreamFailure::Status(StatusCode::INTERNAL_SERVER_ERROR),
        UpstreamFailure::Status(StatusCode::BAD_GATEWAY),
        UpstreamFailure::Status(StatusCode::SERVICE_UNAVAILABLE),
        UpstreamFailure::Status(StatusCode::GATEWAY_TIMEOUT),
        UpstreamFailure::Unreachable,
    ] {
        assert_eq!(
            stale_on_error(&entry, &none, failure, &rules, at(200)),
            OnError::ServeStale
        );
    }
    let not_found = UpstreamFailure::Status(StatusCode::NOT_FOUND);
    assert_eq!(
        stale_on_error(&entry, &none, not_found, &rules, at(200)),
        OnError::PassError
    );
    assert_eq!(
        stale_on_error(&entry, &none, UpstreamFailure::Unreachable, &rules, at(400)),
        OnError::PassError
    );
}

#[test]
fn rfc5861_4_a_request_stale_if_error_widens_the_window_but_not_must_revalidate() {
    let rules = CacheRules::default();
    let asks = headers(&[("cache-control", "stale-if-error=1000")]);
    let plain = stored("max-age=60");
    assert_eq!(
        stale_on_error(
            &plain,
            &HeaderMap::new(),
            UpstreamFailure::Unreachable,
            &rules,
            at(200)
        ),
        OnError::PassError
    );
    assert_eq!(
        stale_on_error(&plain, &asks, UpstreamFailure::Unreachable, &rules, at(200)),
        OnError::ServeStale
    );
    let strict = stored("max-age=60, must-revalidate, stale-if-error=1000");
    assert_eq!(
        stale_on_error(
            &strict,
            &asks,
            UpstreamFailure::Unreachable,
            &rules,
            at(200)
        ),
        OnError::PassError
    );
}

#[test]
fn rfc9111_4_2_4_a_disconnected_cache_serves_briefly_stale_unless_revalidation_is_required() {
    let rules = CacheRules::default();
    let none = HeaderMap::new();
    let unreachable = UpstreamFailure::Unreachable;
    // 30 s stale, within the default 60 s.
    let plain = stored("max-age=60");
    assert_eq!(
        stale_on_error(&plain, &none, unreachable, &rules, at(90)),
        OnError::ServeStale
    );
    // An origin that answers, even with a 503, is not a disconnection.
    let busy = UpstreamFailure::Status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        stale_on_error(&plain, &none, busy, &rules, at(90)),
        OnError::PassError
    );
    for strict in [
        "max-age=60, must-revalidate",
        "max-age=60, proxy-revalidate",
        "s-maxage=60",
    ] {
        assert_eq!(
            stale_on_error(&stored(strict), &none, unreachable, &rules, at(90)),
            OnError::PassError,
            "{strict}"
        );
    }
    let off = CacheRules {
        stale_if_unreachable: std::time::Duration::ZERO,
        ..CacheRules::default()
    };
    assert_eq!(
        stale_on_error(&plain, &none, unreachable, &off, at(90)),
        OnError::PassError
    );
}

#[test]
fn a_soft_purged_entry_is_still_served_under_stale_if_error() {
    let entry = stored("max-age=600, stale-if-error=60");
    entry.soft_purge();
    let failure = UpstreamFailure::Status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        stale_on_error(
            &entry,
            &HeaderMap::new(),
            failure,
            &CacheRules::default(),
            at(10)
        ),
        OnError::ServeStale
    );
}

#[test]
fn lookup_labels_are_bounded() {
    assert_eq!(Lookup::Miss(MissKind::VaryMiss).as_str(), "vary-miss");
    assert_eq!(Lookup::Miss(MissKind::UriMiss).as_str(), "uri-miss");
    assert_eq!(StaleReason::SoftPurged.as_str(), "soft-purged");
}
