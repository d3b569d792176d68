use std::time::Duration;

use http::header::{CONTENT_LENGTH, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE};

use super::*;
use crate::cache::{
    ClientConditional, Refresh, ResponseHead, answer_conditional, answer_conditional_to,
    prepare_revalidation, refresh,
};

fn stored(extra: &[(&str, &str)]) -> Entry {
    let mut fields = vec![("cache-control", "max-age=60"), ("x-version", "1")];
    fields.extend_from_slice(extra);
    entry(
        &get("/a", &[]),
        &response(200, &fields),
        &CacheRules::default(),
        b"hello",
    )
}

/// `entry` refreshed by a 304 with `fields`, sent and received at `at(secs)`.
fn refresh_with(entry: &Entry, fields: &[(&str, &str)], secs: u64) -> Refresh {
    let not_modified = response(304, fields);
    refresh(
        entry,
        ResponseHead::from(&not_modified),
        &CacheRules::default(),
        at(secs),
        at(secs),
    )
}

#[test]
fn rfc9111_4_3_1_revalidation_sends_the_stored_validators_instead_of_the_clients() {
    let modified = date(0);
    let entry = stored(&[("etag", "\"v1\""), ("last-modified", &modified)]);
    let mut forwarded = headers(&[
        ("if-none-match", "\"client\""),
        ("if-match", "\"x\""),
        ("if-range", "\"y\""),
    ]);
    prepare_revalidation(&mut forwarded, &entry);
    assert_eq!(
        forwarded.get(IF_NONE_MATCH).map(|v| v.as_bytes()),
        Some(&b"\"v1\""[..])
    );
    assert_eq!(
        forwarded
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok()),
        Some(modified.as_str())
    );
    assert!(forwarded.get(IF_MATCH).is_none() && forwarded.get(IF_RANGE).is_none());
}

#[test]
fn rfc9111_4_3_1_without_a_validator_the_request_goes_unconditional() {
    let mut forwarded = headers(&[("if-none-match", "\"client\"")]);
    prepare_revalidation(&mut forwarded, &stored(&[]));
    assert!(forwarded.get(IF_NONE_MATCH).is_none());
}

/// Over `entry::PACK_BODY_MAX` (64 KiB): kept in its own allocation.
static LARGE_BODY: [u8; 64 * 1024 + 1] = [7; 64 * 1024 + 1];

#[test]
fn a_304_refresh_shares_a_large_body_instead_of_copying_it() {
    assert!(LARGE_BODY.len() > crate::cache::entry::PACK_BODY_MAX);
    let entry = entry(
        &get("/a", &[]),
        &response(200, &[("cache-control", "max-age=60"), ("etag", "\"v1\"")]),
        &CacheRules::default(),
        &LARGE_BODY,
    );
    let fields = [("etag", "\"v1\""), ("cache-control", "max-age=300")];
    let Refresh::Updated(updated) = refresh_with(&entry, &fields, 100) else {
        panic!("expected Updated");
    };
    assert_eq!(updated.body().as_ptr(), entry.body().as_ptr());
    assert_eq!(updated.body().len(), LARGE_BODY.len());
}

#[test]
fn rfc9111_4_3_4_a_304_updates_the_stored_fields_but_not_content_length_or_body() {
    let entry = stored(&[("etag", "\"v1\"")]);
    let fields = [
        ("etag", "\"v1\""),
        ("x-version", "2"),
        ("cache-control", "max-age=300"),
        ("content-length", "0"),
    ];
    let Refresh::Updated(updated) = refresh_with(&entry, &fields, 100) else {
        panic!("expected Updated");
    };
    assert_eq!(
        updated.headers().get("x-version").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    assert_eq!(updated.headers().get_all("x-version").iter().count(), 1);
    assert_eq!(
        updated.headers().get(CONTENT_LENGTH).map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    assert_eq!(updated.body(), entry.body());
    assert_eq!(updated.freshness().lifetime, Duration::from_secs(300));
    assert!(updated.freshness().is_fresh(at(350)));
}

#[test]
fn rfc9111_4_3_4_a_304_with_another_validator_does_not_update() {
    let entry = stored(&[("etag", "\"v1\"")]);
    let outcome = refresh_with(&entry, &[("etag", "\"v2\"")], 1);
    assert!(matches!(outcome, Refresh::Mismatch));
    let outcome = refresh_with(&entry, &[("etag", "W/\"v1\"")], 1);
    assert!(matches!(outcome, Refresh::Updated(_)));
}

#[test]
fn rfc9111_4_3_2_if_none_match_uses_weak_comparison() {
    let entry = stored(&[("etag", "W/\"v1\"")]);
    for condition in ["\"v1\"", "W/\"v1\"", "\"x\", W/\"v1\"", "*"] {
        let request = get("/a", &[("if-none-match", condition)]);
        match answer_conditional(RequestHead::from(&request), &entry) {
            ClientConditional::NotModified(fields) => {
                assert_eq!(
                    fields.get(ETAG).map(|v| v.as_bytes()),
                    Some(&b"W/\"v1\""[..])
                );
                assert!(
                    fields.get("x-version").is_none(),
                    "only the 304 fields are sent"
                );
            }
            ClientConditional::Full => panic!("{condition} should match"),
        }
    }
    let request = get("/a", &[("if-none-match", "\"v2\"")]);
    assert!(matches!(
        answer_conditional(RequestHead::from(&request), &entry),
        ClientConditional::Full
    ));
}

#[test]
fn rfc9111_4_3_2_if_modified_since_is_answered_from_last_modified() {
    let entry = stored(&[("last-modified", &date(100))]);
    let later = get("/a", &[("if-modified-since", &date(200))]);
    assert!(matches!(
        answer_conditional(RequestHead::from(&later), &entry),
        ClientConditional::NotModified(_)
    ));
    let earlier = get("/a", &[("if-modified-since", &date(50))]);
    assert!(matches!(
        answer_conditional(RequestHead::from(&earlier), &entry),
        ClientConditional::Full
    ));
}

#[test]
fn rfc9110_13_2_2_if_none_match_takes_precedence_over_if_modified_since() {
    let entry = stored(&[("etag", "\"v1\""), ("last-modified", &date(100))]);
    let request = get(
        "/a",
        &[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", &date(200)),
        ],
    );
    assert!(matches!(
        answer_conditional(RequestHead::from(&request), &entry),
        ClientConditional::Full
    ));
}

#[test]
fn conditionals_are_answered_only_for_get_and_head() {
    let entry = stored(&[("etag", "\"v1\"")]);
    let request = super::request(http::Method::DELETE, "/a", &[("if-none-match", "\"v1\"")]);
    assert!(matches!(
        answer_conditional(RequestHead::from(&request), &entry),
        ClientConditional::Full
    ));
}

#[test]
fn rfc9111_4_3_2_an_unstored_response_answers_the_clients_validators_from_its_own_head() {
    let origin = response(
        200,
        &[
            ("cache-control", "no-store"),
            ("etag", "\"u1\""),
            ("x-version", "1"),
        ],
    );
    let matching = get("/a", &[("if-none-match", "\"u1\"")]);
    match answer_conditional_to(RequestHead::from(&matching), ResponseHead::from(&origin)) {
        ClientConditional::NotModified(fields) => {
            assert_eq!(fields.get(ETAG).map(|v| v.as_bytes()), Some(&b"\"u1\""[..]));
            assert!(fields.get("x-version").is_none(), "only the 304 fields");
        }
        ClientConditional::Full => panic!("\"u1\" should match"),
    }
    let other = get("/a", &[("if-none-match", "\"u2\"")]);
    assert!(matches!(
        answer_conditional_to(RequestHead::from(&other), ResponseHead::from(&origin)),
        ClientConditional::Full
    ));
    let not_ok = response(404, &[("etag", "\"u1\"")]);
    assert!(matches!(
        answer_conditional_to(RequestHead::from(&matching), ResponseHead::from(&not_ok)),
        ClientConditional::Full
    ));
}
