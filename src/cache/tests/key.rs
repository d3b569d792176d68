use http::HeaderName;
use http::uri::Uri;

use super::*;
use crate::cache::key::host_of;
use crate::cache::{KeyError, QueryOrder, QueryParams};

fn key(rules: &KeyRules, uri: &str, fields: &[(&str, &str)]) -> CacheKey {
    CacheKey::new(rules, "http", RequestHead::from(&get(uri, fields))).expect("key")
}

#[test]
fn the_default_key_is_scheme_host_path_and_query() {
    let built = key(
        &KeyRules::default(),
        "/a/b?z=1&a=2",
        &[("host", "Shop.Example")],
    );
    assert_eq!(built.primary(), "http://shop.example/a/b?z=1&a=2");
    assert_eq!(built.extra(), "");
}

#[test]
fn the_default_port_is_dropped_and_others_kept() {
    assert_eq!(
        key(&KeyRules::default(), "/", &[("host", "a.example:80")]).primary(),
        "http://a.example/"
    );
    assert_eq!(
        key(&KeyRules::default(), "/", &[("host", "a.example:8080")]).primary(),
        "http://a.example:8080/"
    );
    let https = CacheKey::new(
        &KeyRules::default(),
        "https",
        RequestHead::from(&get("/", &[("host", "a.example:443")])),
    )
    .expect("key");
    assert_eq!(https.primary(), "https://a.example/");
}

#[test]
fn an_absolute_form_authority_wins_over_the_host_header() {
    let built = key(
        &KeyRules::default(),
        "http://b.example/x",
        &[("host", "a.example")],
    );
    assert_eq!(built.primary(), "http://b.example/x");
}

#[test]
fn a_request_without_a_host_has_no_key() {
    let request = get("/x", &[]);
    assert_eq!(
        CacheKey::new(&KeyRules::default(), "http", RequestHead::from(&request)),
        Err(KeyError::MissingHost)
    );
}

#[test]
fn named_query_parameters_can_be_ignored() {
    let rules = KeyRules {
        query: QueryParams::Ignore(vec!["utm_source".into(), "fbclid".into()]),
        ..KeyRules::default()
    };
    let built = key(&rules, "/p?id=1&utm_source=x&fbclid&b=2", &[("host", "h")]);
    assert_eq!(built.primary(), "http://h/p?id=1&b=2");
    assert_eq!(
        key(&rules, "/p?utm_source=x", &[("host", "h")]).primary(),
        "http://h/p"
    );
}

#[test]
fn the_whole_query_can_be_ignored() {
    let rules = KeyRules {
        query: QueryParams::IgnoreAll,
        ..KeyRules::default()
    };
    assert_eq!(
        key(&rules, "/p?id=1", &[("host", "h")]).primary(),
        "http://h/p"
    );
}

#[test]
fn query_parameters_can_be_sorted_keeping_repeated_names_in_order() {
    let rules = KeyRules {
        order: QueryOrder::Sorted,
        ..KeyRules::default()
    };
    assert_eq!(
        key(&rules, "/p?b=2&a=9&b=1&a=3", &[("host", "h")]).primary(),
        "http://h/p?a=9&a=3&b=2&b=1"
    );
    let both = KeyRules {
        query: QueryParams::Ignore(vec!["x".into()]),
        order: QueryOrder::Sorted,
        ..KeyRules::default()
    };
    assert_eq!(
        key(&both, "/p?x=1&c=1&a=1", &[("host", "h")]).primary(),
        "http://h/p?a=1&c=1"
    );
}

#[test]
fn named_headers_and_cookies_are_added_to_the_key() {
    let rules = KeyRules {
        headers: vec![HeaderName::from_static("x-device")],
        cookies: vec!["ab".into()],
        ..KeyRules::default()
    };
    let built = key(
        &rules,
        "/",
        &[
            ("host", "h"),
            ("x-device", "mobile"),
            ("cookie", "session=9; ab=B"),
        ],
    );
    assert_eq!(built.extra(), "\nh:x-device=mobile\nc:ab=B");
    let bare = key(&rules, "/", &[("host", "h")]);
    assert_eq!(bare.extra(), "\nh:x-device\nc:ab");
    assert_eq!(bare.primary(), built.primary());
}

#[test]
fn a_url_key_has_no_extra_part() {
    let uri: Uri = "HTTPS://Shop.Example:443/a?b=1".parse().expect("uri");
    let built = CacheKey::for_url(&KeyRules::default(), &uri).expect("key");
    assert_eq!(built.primary(), "https://shop.example/a?b=1");
    let relative: Uri = "/a".parse().expect("uri");
    assert_eq!(
        CacheKey::for_url(&KeyRules::default(), &relative),
        Err(KeyError::NotAbsolute)
    );
}

#[test]
fn the_host_of_a_primary_key_includes_its_port() {
    assert_eq!(host_of("http://a.example:81/x?y"), "a.example:81");
    assert_eq!(host_of("https://a.example?y"), "a.example");
}
