use crate::cache::vary::{VaryFields, VaryKey};

use super::headers;

fn key(vary: &str, request: &[(&str, &str)]) -> VaryKey {
    VaryKey::new(
        &VaryFields::parse(&headers(&[("vary", vary)])),
        &headers(request),
    )
}

#[test]
fn rfc9111_4_1_a_variant_is_selected_by_its_vary_fields() {
    let stored = key("accept-language", &[("accept-language", "en")]);
    assert!(stored.matches(&headers(&[("accept-language", "en")])));
    assert!(!stored.matches(&headers(&[("accept-language", "fr")])));
    assert!(!stored.matches(&headers(&[])));
}

#[test]
fn rfc9111_4_1_an_absent_field_matches_only_an_absent_field() {
    let stored = key("accept-language", &[]);
    assert!(stored.matches(&headers(&[("x-other", "1")])));
    assert!(!stored.matches(&headers(&[("accept-language", "en")])));
}

#[test]
fn rfc9111_4_1_whitespace_and_line_folding_do_not_change_the_match() {
    let stored = key("accept", &[("accept", "text/html, application/json")]);
    assert!(stored.matches(&headers(&[("accept", "text/html,application/json")])));
    assert!(stored.matches(&headers(&[
        ("accept", "text/html"),
        ("accept", "application/json")
    ])));
}

#[test]
fn accept_encoding_is_normalised_to_the_sorted_set_of_accepted_codings() {
    let stored = key("accept-encoding", &[("accept-encoding", "gzip, br")]);
    assert!(stored.matches(&headers(&[("accept-encoding", "br;q=0.9, GZIP")])));
    assert!(stored.matches(&headers(&[("accept-encoding", "br, gzip, deflate;q=0")])));
    assert!(!stored.matches(&headers(&[("accept-encoding", "gzip")])));
}

#[test]
fn rfc9111_4_1_vary_names_are_case_insensitive_and_deduplicated() {
    assert_eq!(
        VaryFields::parse(&headers(&[
            ("vary", "Accept-Encoding, accept-encoding"),
            ("vary", "Origin")
        ])),
        VaryFields::Fields(vec![http::header::ACCEPT_ENCODING, http::header::ORIGIN])
    );
    assert_eq!(
        VaryFields::parse(&headers(&[("vary", "*")])),
        VaryFields::Star
    );
    assert_eq!(VaryFields::parse(&headers(&[])), VaryFields::None);
}
