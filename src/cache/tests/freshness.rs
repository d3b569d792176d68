use std::time::Duration;

use super::*;
use crate::cache::freshness::LifetimeSource;
use crate::cache::{Heuristic, StorePlan};

fn fresh(headers: &[(&str, &str)], rules: &CacheRules) -> StorePlan {
    plan(&get("/a", &[]), &response(200, headers), rules)
}

#[test]
fn rfc9111_4_2_1_s_maxage_takes_precedence_over_max_age_in_a_shared_cache() {
    let plan = fresh(
        &[("cache-control", "max-age=10, s-maxage=100")],
        &CacheRules::default(),
    );
    assert_eq!(plan.freshness.lifetime, Duration::from_secs(100));
    assert_eq!(plan.freshness.source, LifetimeSource::SMaxAge);
}

#[test]
fn rfc9111_4_2_1_max_age_takes_precedence_over_expires() {
    let plan = fresh(
        &[
            ("cache-control", "max-age=10"),
            ("date", &date(0)),
            ("expires", &date(1000)),
        ],
        &CacheRules::default(),
    );
    assert_eq!(plan.freshness.lifetime, Duration::from_secs(10));
}

#[test]
fn rfc9111_4_2_1_expires_minus_date_is_the_lifetime() {
    let plan = fresh(
        &[("date", &date(0)), ("expires", &date(300))],
        &CacheRules::default(),
    );
    assert_eq!(plan.freshness.lifetime, Duration::from_secs(300));
    assert_eq!(plan.freshness.source, LifetimeSource::Expires);
}

#[test]
fn rfc9111_5_3_an_invalid_expires_means_already_expired() {
    let plan = fresh(
        &[("expires", "0"), ("etag", "\"a\"")],
        &CacheRules::default(),
    );
    assert_eq!(plan.freshness.lifetime, Duration::ZERO);
    assert_eq!(plan.freshness.source, LifetimeSource::Expires);
}

#[test]
fn rfc9111_4_2_2_heuristic_lifetime_is_a_tenth_of_the_time_since_last_modified() {
    let plan = fresh(
        &[("date", &date(10_000)), ("last-modified", &date(0))],
        &CacheRules::default(),
    );
    assert_eq!(plan.freshness.lifetime, Duration::from_secs(1_000));
    assert_eq!(plan.freshness.source, LifetimeSource::Heuristic);
}

#[test]
fn rfc9111_4_2_2_heuristic_lifetime_is_capped() {
    let rules = CacheRules {
        heuristic: Heuristic::LastModified {
            cap: Duration::from_secs(60),
        },
        ..CacheRules::default()
    };
    let plan = fresh(
        &[("date", &date(10_000)), ("last-modified", &date(0))],
        &rules,
    );
    assert_eq!(plan.freshness.lifetime, Duration::from_secs(60));
}

#[test]
fn rfc9111_4_2_2_no_heuristic_when_an_explicit_expiration_is_present() {
    let plan = fresh(
        &[
            ("date", &date(10_000)),
            ("expires", &date(10_000)),
            ("last-modified", &date(0)),
        ],
        &CacheRules::default(),
    );
    assert_eq!(plan.freshness.lifetime, Duration::ZERO);
    assert_eq!(plan.freshness.source, LifetimeSource::Expires);
}

#[test]
fn rfc9111_4_2_2_heuristic_can_be_turned_off() {
    let rules = CacheRules {
        heuristic: Heuristic::Off,
        ..CacheRules::default()
    };
    let plan = fresh(
        &[("date", &date(10_000)), ("last-modified", &date(0))],
        &rules,
    );
    assert_eq!(plan.freshness.source, LifetimeSource::None);
}

#[test]
fn default_ttl_applies_only_when_the_origin_gives_no_explicit_freshness() {
    let rules = CacheRules {
        default_ttl: Some(Duration::from_secs(42)),
        ..CacheRules::default()
    };
    assert_eq!(
        fresh(&[], &rules).freshness.lifetime,
        Duration::from_secs(42)
    );
    assert_eq!(
        fresh(&[("cache-control", "max-age=5")], &rules)
            .freshness
            .lifetime,
        Duration::from_secs(5)
    );
}

#[test]
fn rfc9111_5_1_an_age_list_on_one_line_counts_by_its_first_member() {
    let request = get("/a", &[]);
    for (age, initial) in [("7200, 0", 7200), ("0, 7200", 0), ("old, 0", 0)] {
        let response = response(
            200,
            &[
                ("cache-control", "max-age=10000"),
                ("age", age),
                ("date", &date(0)),
            ],
        );
        let Cacheability::Store(plan) = cacheability(
            RequestHead::from(&request),
            ResponseHead::from(&response),
            &CacheRules::default(),
            at(0),
            at(0),
        ) else {
            panic!("{age} not stored");
        };
        assert_eq!(
            plan.freshness.initial_age,
            Duration::from_secs(initial),
            "{age}"
        );
    }
}

#[test]
fn rfc9111_4_2_3_initial_age_adds_the_response_delay_to_the_age_header() {
    let request = get("/a", &[]);
    let response = response(
        200,
        &[
            ("cache-control", "max-age=600"),
            ("age", "100"),
            ("date", &date(10)),
        ],
    );
    let plan = match cacheability(
        RequestHead::from(&request),
        ResponseHead::from(&response),
        &CacheRules::default(),
        at(0),
        at(10),
    ) {
        Cacheability::Store(plan) => plan,
        Cacheability::Skip(reason) => panic!("{reason:?}"),
    };
    assert_eq!(plan.freshness.initial_age, Duration::from_secs(110));
    assert_eq!(plan.freshness.current_age(at(40)), Duration::from_secs(140));
    assert_eq!(plan.freshness.ttl_seconds(at(40)), 460);
}

#[test]
fn rfc9111_4_2_3_apparent_age_comes_from_date() {
    let request = get("/a", &[]);
    let response = response(200, &[("cache-control", "max-age=600"), ("date", &date(0))]);
    let plan = match cacheability(
        RequestHead::from(&request),
        ResponseHead::from(&response),
        &CacheRules::default(),
        at(49),
        at(50),
    ) {
        Cacheability::Store(plan) => plan,
        Cacheability::Skip(reason) => panic!("{reason:?}"),
    };
    assert_eq!(plan.freshness.initial_age, Duration::from_secs(50));
}

#[test]
fn rfc9111_4_2_3_current_age_grows_with_resident_time_and_ends_freshness() {
    let plan = fresh(&[("cache-control", "max-age=60")], &CacheRules::default());
    assert!(plan.freshness.is_fresh(at(59)));
    assert!(!plan.freshness.is_fresh(at(60)));
    assert_eq!(plan.freshness.staleness(at(75)), Duration::from_secs(15));
    assert_eq!(plan.freshness.ttl_seconds(at(75)), -15);
    assert_eq!(plan.freshness.stale_at(), at(60));
}

#[test]
fn rfc9111_5_1_an_invalid_age_header_is_ignored() {
    let plan = fresh(
        &[("cache-control", "max-age=60"), ("age", "ten")],
        &CacheRules::default(),
    );
    assert_eq!(plan.freshness.initial_age, Duration::ZERO);
}
