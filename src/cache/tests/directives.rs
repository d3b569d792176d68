use crate::cache::directives::{
    DELTA_MAX, DirectiveSource, FieldScope, MaxStale, RequestDirectives, ResponseDirectives,
};

use super::headers;

fn response(pairs: &[(&str, &str)]) -> ResponseDirectives {
    ResponseDirectives::parse(&headers(pairs))
}

#[test]
fn rfc9111_5_2_directives_are_case_insensitive_and_combined_across_lines() {
    let parsed = response(&[
        ("cache-control", "Max-Age=60"),
        ("cache-control", "PUBLIC, must-revalidate"),
    ]);
    assert_eq!(parsed.max_age, Some(60));
    assert!(parsed.public);
    assert!(parsed.must_revalidate);
}

#[test]
fn rfc9111_4_2_1_the_first_of_duplicate_directives_is_used() {
    assert_eq!(
        response(&[("cache-control", "max-age=10, max-age=99")]).max_age,
        Some(10)
    );
}

#[test]
fn rfc9111_1_2_2_an_overflowing_delta_seconds_is_two_to_the_31() {
    let parsed = response(&[("cache-control", "max-age=99999999999999999999999")]);
    assert_eq!(parsed.max_age, Some(DELTA_MAX));
}

#[test]
fn rfc9111_5_2_an_invalid_max_age_makes_the_response_stale() {
    assert_eq!(
        response(&[("cache-control", "max-age=abc")]).max_age,
        Some(0)
    );
    assert_eq!(
        response(&[("cache-control", "max-age=-5")]).max_age,
        Some(0)
    );
}

#[test]
fn rfc9111_5_2_a_quoted_delta_seconds_is_accepted() {
    assert_eq!(
        response(&[("cache-control", "max-age=\"30\"")]).max_age,
        Some(30)
    );
}

#[test]
fn rfc9111_5_2_2_qualified_private_and_no_cache_list_their_fields() {
    let parsed = response(&[(
        "cache-control",
        "private=\"set-cookie, x-a\", no-cache=\"x-b\"",
    )]);
    assert_eq!(
        parsed.private,
        FieldScope::Fields(vec![
            http::header::SET_COOKIE,
            http::HeaderName::from_static("x-a")
        ])
    );
    assert_eq!(
        parsed.no_cache,
        FieldScope::Fields(vec![http::HeaderName::from_static("x-b")])
    );
    assert_eq!(
        response(&[("cache-control", "no-cache")]).no_cache,
        FieldScope::All
    );
}

#[test]
fn rfc5861_stale_directives_are_read() {
    let parsed = response(&[(
        "cache-control",
        "max-age=1, stale-while-revalidate=30, stale-if-error=600",
    )]);
    assert_eq!(parsed.stale_while_revalidate, Some(30));
    assert_eq!(parsed.stale_if_error, Some(600));
}

#[test]
fn rfc9213_surrogate_control_then_cdn_cache_control_then_cache_control() {
    let all = [
        ("cache-control", "max-age=1"),
        ("cdn-cache-control", "max-age=2"),
        ("surrogate-control", "max-age=3"),
    ];
    let parsed = response(&all);
    assert_eq!(
        (parsed.source, parsed.max_age),
        (DirectiveSource::SurrogateControl, Some(3))
    );
    let parsed = response(&all[..2]);
    assert_eq!(
        (parsed.source, parsed.max_age),
        (DirectiveSource::CdnCacheControl, Some(2))
    );
    let parsed = response(&all[..1]);
    assert_eq!(
        (parsed.source, parsed.max_age),
        (DirectiveSource::CacheControl, Some(1))
    );
}

#[test]
fn rfc9213_2_2_a_targeted_field_replaces_cache_control_entirely() {
    let parsed = response(&[
        ("cache-control", "no-store, private"),
        ("cdn-cache-control", "max-age=60"),
    ]);
    assert!(!parsed.no_store);
    assert_eq!(parsed.private, FieldScope::Absent);
}

#[test]
fn rfc9213_2_2_an_invalid_targeted_field_is_ignored() {
    let parsed = response(&[
        ("cache-control", "max-age=5"),
        ("cdn-cache-control", "Max-Age=60"),
    ]);
    assert_eq!(
        (parsed.source, parsed.max_age),
        (DirectiveSource::CacheControl, Some(5))
    );
    let parsed = response(&[("cache-control", "max-age=5"), ("cdn-cache-control", "")]);
    assert_eq!(parsed.source, DirectiveSource::CacheControl);
    // A delta directive of the wrong type (a String, not an Integer) invalidates the field.
    let parsed = response(&[
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=\"10000\""),
    ]);
    assert_eq!(parsed.source, DirectiveSource::CacheControl);
    assert!(parsed.no_store);
}

#[test]
fn surrogate_control_directives_aimed_at_another_cache_are_skipped() {
    let parsed = response(&[("surrogate-control", "max-age=60;other, max-age=30;sluice")]);
    assert_eq!(parsed.max_age, Some(30));
}

#[test]
fn rfc9111_5_2_1_request_directives_are_read() {
    let parsed = RequestDirectives::parse(&headers(&[(
        "cache-control",
        "max-age=5, max-stale, min-fresh=3, no-cache, only-if-cached, stale-if-error=9",
    )]));
    assert_eq!(parsed.max_age, Some(5));
    assert_eq!(parsed.max_stale, Some(MaxStale::Any));
    assert_eq!(parsed.min_fresh, Some(3));
    assert!(parsed.no_cache && parsed.only_if_cached);
    assert_eq!(parsed.stale_if_error, Some(9));
    let parsed = RequestDirectives::parse(&headers(&[("cache-control", "max-stale=20, no-store")]));
    assert_eq!(parsed.max_stale, Some(MaxStale::Seconds(20)));
    assert!(parsed.no_store);
}

#[test]
fn commas_inside_quoted_values_do_not_split_directives() {
    let parsed = response(&[("cache-control", "private=\"a, b\", max-age=7")]);
    assert_eq!(parsed.max_age, Some(7));
}
