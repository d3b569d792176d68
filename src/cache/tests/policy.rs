use std::time::Duration;

use http::Method;
use http::header::{SET_COOKIE, WWW_AUTHENTICATE};

use super::*;
use crate::cache::{NoCacheReason, SetCookie, StatusRule};

fn skip(request: &request::Parts, response: &response::Parts, rules: &CacheRules) -> NoCacheReason {
    match verdict(request, response, rules) {
        Cacheability::Skip(reason) => reason,
        Cacheability::Store(plan) => panic!("expected Skip, got {plan:?}"),
    }
}

#[test]
fn rfc9111_3_get_200_with_max_age_is_stored() {
    let plan = plan(
        &get("/a", &[]),
        &response(200, &[("cache-control", "max-age=60")]),
        &CacheRules::default(),
    );
    assert_eq!(plan.freshness.lifetime, Duration::from_secs(60));
}

#[test]
fn rfc9111_3_method_not_cacheable_on_the_route_is_not_stored() {
    let post = request(Method::POST, "/a", &[]);
    let reason = skip(
        &post,
        &response(200, &[("cache-control", "max-age=60")]),
        &CacheRules::default(),
    );
    assert_eq!(reason, NoCacheReason::Method);
}

#[test]
fn rfc9111_3_partial_not_modified_and_informational_are_not_stored() {
    for status in [206, 304, 103] {
        let reason = skip(
            &get("/a", &[]),
            &response(status, &[("cache-control", "max-age=60")]),
            &CacheRules::default(),
        );
        assert_eq!(reason, NoCacheReason::Status, "{status}");
    }
}

#[test]
fn rfc9110_15_1_heuristically_cacheable_status_is_stored_without_explicit_freshness() {
    let plan = plan(
        &get("/a", &[]),
        &response(404, &[("date", &date(1000)), ("last-modified", &date(0))]),
        &CacheRules::default(),
    );
    assert!(plan.freshness.lifetime > Duration::ZERO);
}

#[test]
fn rfc9111_3_status_not_heuristically_cacheable_needs_explicit_freshness() {
    let rules = CacheRules::default();
    assert_eq!(
        skip(
            &get("/a", &[]),
            &response(302, &[("etag", "\"x\"")]),
            &rules
        ),
        NoCacheReason::NoFreshness
    );
    assert_eq!(
        skip(&get("/a", &[]), &response(500, &[]), &rules),
        NoCacheReason::NoFreshness
    );
    let plan = plan(
        &get("/a", &[]),
        &response(302, &[("cache-control", "max-age=30")]),
        &rules,
    );
    assert_eq!(plan.freshness.lifetime, Duration::from_secs(30));
}

#[test]
fn rfc9111_5_2_2_5_response_no_store_is_not_stored() {
    let reason = skip(
        &get("/a", &[]),
        &response(200, &[("cache-control", "max-age=60, no-store")]),
        &CacheRules::default(),
    );
    assert_eq!(reason, NoCacheReason::NoStore);
}

#[test]
fn rfc9111_5_2_1_5_request_no_store_is_not_stored() {
    let reason = skip(
        &get("/a", &[("cache-control", "no-store")]),
        &response(200, &[("cache-control", "max-age=60")]),
        &CacheRules::default(),
    );
    assert_eq!(reason, NoCacheReason::RequestNoStore);
}

#[test]
fn rfc9111_5_2_2_3_must_understand_overrides_no_store_for_a_known_status() {
    let rules = CacheRules::default();
    let stored = plan(
        &get("/a", &[]),
        &response(
            200,
            &[("cache-control", "max-age=60, no-store, must-understand")],
        ),
        &rules,
    );
    assert_eq!(stored.freshness.lifetime, Duration::from_secs(60));
    let reason = skip(
        &get("/a", &[]),
        &response(
            299,
            &[("cache-control", "max-age=60, no-store, must-understand")],
        ),
        &rules,
    );
    assert_eq!(reason, NoCacheReason::Status);
}

#[test]
fn rfc9111_5_2_2_7_private_is_not_stored_by_a_shared_cache() {
    let reason = skip(
        &get("/a", &[]),
        &response(200, &[("cache-control", "private, max-age=60")]),
        &CacheRules::default(),
    );
    assert_eq!(reason, NoCacheReason::Private);
}

#[test]
fn rfc9111_5_2_2_7_qualified_private_strips_the_named_fields() {
    let request = get("/a", &[]);
    let response = response(
        200,
        &[
            (
                "cache-control",
                "private=\"set-cookie, x-user\", max-age=60",
            ),
            ("set-cookie", "a=1"),
            ("x-user", "bob"),
        ],
    );
    let entry = entry(&request, &response, &CacheRules::default(), b"hi");
    assert!(entry.headers().get(SET_COOKIE).is_none());
    assert!(entry.headers().get("x-user").is_none());
}

#[test]
fn rfc9111_5_2_2_4_qualified_no_cache_strips_the_named_fields() {
    let request = get("/a", &[]);
    let response = response(
        200,
        &[
            ("cache-control", "no-cache=\"www-authenticate\", max-age=60"),
            ("www-authenticate", "x"),
        ],
    );
    let entry = entry(&request, &response, &CacheRules::default(), b"hi");
    assert!(entry.headers().get(WWW_AUTHENTICATE).is_none());
}

#[test]
fn rfc9111_3_5_authorization_needs_public_s_maxage_or_must_revalidate() {
    let rules = CacheRules::default();
    let authorised = get("/a", &[("authorization", "Bearer x")]);
    assert_eq!(
        skip(
            &authorised,
            &response(200, &[("cache-control", "max-age=60")]),
            &rules
        ),
        NoCacheReason::Authorization
    );
    for allowing in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ] {
        let verdict = verdict(
            &authorised,
            &response(200, &[("cache-control", allowing)]),
            &rules,
        );
        assert!(matches!(verdict, Cacheability::Store(_)), "{allowing}");
    }
}

#[test]
fn set_cookie_responses_are_not_shared_unless_the_route_allows() {
    let response = response(
        200,
        &[("cache-control", "max-age=60"), ("set-cookie", "session=1")],
    );
    let mut rules = CacheRules::default();
    assert_eq!(
        skip(&get("/a", &[]), &response, &rules),
        NoCacheReason::SetCookie
    );
    rules.set_cookie = SetCookie::Store;
    assert!(matches!(
        verdict(&get("/a", &[]), &response, &rules),
        Cacheability::Store(_)
    ));
}

#[test]
fn rfc9111_4_1_vary_star_is_never_stored() {
    let reason = skip(
        &get("/a", &[]),
        &response(
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept, *")],
        ),
        &CacheRules::default(),
    );
    assert_eq!(reason, NoCacheReason::VaryStar);
}

#[test]
fn declared_length_over_the_maximum_object_size_is_too_big() {
    let rules = CacheRules {
        max_object_size: 100,
        ..CacheRules::default()
    };
    let reason = skip(
        &get("/a", &[]),
        &response(
            200,
            &[("cache-control", "max-age=60"), ("content-length", "101")],
        ),
        &rules,
    );
    assert_eq!(reason, NoCacheReason::TooBig);
}

#[test]
fn status_rule_only_limits_the_stored_statuses() {
    let rules = CacheRules {
        statuses: StatusRule::Only(vec![StatusCode::OK]),
        ..CacheRules::default()
    };
    let reason = skip(
        &get("/a", &[]),
        &response(404, &[("cache-control", "max-age=60")]),
        &rules,
    );
    assert_eq!(reason, NoCacheReason::Status);
}

#[test]
fn a_response_that_could_never_be_reused_is_not_stored() {
    // No freshness, no validator, no stale-if-error: storing it would only waste the budget.
    let rules = CacheRules::default();
    assert_eq!(
        skip(&get("/a", &[]), &response(200, &[]), &rules),
        NoCacheReason::NoFreshness
    );
    assert_eq!(
        skip(
            &get("/a", &[]),
            &response(200, &[("cache-control", "no-cache")]),
            &rules
        ),
        NoCacheReason::NoFreshness
    );
    // With a validator it is kept for revalidation.
    let plan = plan(
        &get("/a", &[]),
        &response(200, &[("cache-control", "no-cache"), ("etag", "\"v1\"")]),
        &rules,
    );
    assert_eq!(plan.keep_until, at(0) + rules.revalidation_window);
}

#[test]
fn keep_until_covers_freshness_and_the_stale_windows() {
    let rules = CacheRules::default();
    let plan = plan(
        &get("/a", &[]),
        &response(
            200,
            &[(
                "cache-control",
                "max-age=60, stale-while-revalidate=30, stale-if-error=600",
            )],
        ),
        &rules,
    );
    assert_eq!(plan.keep_until, at(660));
}

#[test]
fn rfc9111_4_2_4_an_entry_is_kept_for_a_disconnected_origin_unless_it_must_revalidate() {
    let rules = CacheRules::default();
    let plain = plan(
        &get("/a", &[]),
        &response(200, &[("cache-control", "max-age=60")]),
        &rules,
    );
    assert_eq!(plain.keep_until, at(60) + rules.stale_if_unreachable);
    let strict = plan(
        &get("/a", &[]),
        &response(200, &[("cache-control", "max-age=60, must-revalidate")]),
        &rules,
    );
    assert_eq!(strict.keep_until, at(60));
}

#[test]
fn stored_entry_drops_hop_by_hop_fields_and_sets_content_length() {
    let request = get("/a", &[]);
    let response = response(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
        ],
    );
    let entry = entry(&request, &response, &CacheRules::default(), b"hello");
    assert!(entry.headers().get("x-hop").is_none());
    assert!(entry.headers().get("transfer-encoding").is_none());
    assert!(entry.headers().get("keep-alive").is_none());
    assert_eq!(
        entry.headers().get("content-length").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
}

#[test]
fn no_cache_reasons_have_distinct_labels() {
    let all = [
        NoCacheReason::Method,
        NoCacheReason::Status,
        NoCacheReason::RequestNoStore,
        NoCacheReason::NoStore,
        NoCacheReason::Private,
        NoCacheReason::Authorization,
        NoCacheReason::SetCookie,
        NoCacheReason::VaryStar,
        NoCacheReason::TooBig,
        NoCacheReason::Incomplete,
        NoCacheReason::NoFreshness,
    ];
    let labels: std::collections::HashSet<_> = all.iter().map(NoCacheReason::as_str).collect();
    assert_eq!(labels.len(), all.len());
}
