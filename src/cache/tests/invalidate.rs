use http::Method;

use super::*;
use crate::cache::invalidation_targets;

fn targets(method: Method, status: u16, fields: &[(&str, &str)]) -> Vec<String> {
    let request = request(method, "/items/7?x=1", &[("host", "shop.example")]);
    let response = response(status, fields);
    invalidation_targets(
        RequestHead::from(&request),
        "https",
        ResponseHead::from(&response),
    )
    .iter()
    .map(ToString::to_string)
    .collect()
}

#[test]
fn rfc9111_4_4_an_unsafe_method_invalidates_the_target_uri() {
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        assert_eq!(
            targets(method, 200, &[]),
            vec!["https://shop.example/items/7?x=1"]
        );
    }
}

#[test]
fn rfc9111_4_4_same_origin_location_and_content_location_are_invalidated() {
    let found = targets(
        Method::POST,
        201,
        &[
            ("location", "/items/8"),
            ("content-location", "https://SHOP.example:443/items/9"),
        ],
    );
    assert_eq!(
        found,
        vec![
            "https://shop.example/items/7?x=1",
            "https://shop.example/items/8",
            "https://SHOP.example:443/items/9"
        ]
    );
    let relative = targets(Method::POST, 201, &[("location", "8")]);
    assert_eq!(
        relative.get(1).map(String::as_str),
        Some("https://shop.example/items/8")
    );
}

#[test]
fn rfc9111_4_4_another_origin_is_never_invalidated() {
    let found = targets(
        Method::POST,
        201,
        &[
            ("location", "https://other.example/items/8"),
            ("content-location", "http://shop.example/items/9"),
        ],
    );
    assert_eq!(found, vec!["https://shop.example/items/7?x=1"]);
}

#[test]
fn rfc9111_4_4_safe_methods_and_error_responses_invalidate_nothing() {
    assert!(targets(Method::GET, 200, &[]).is_empty());
    assert!(targets(Method::HEAD, 200, &[]).is_empty());
    assert!(targets(Method::POST, 500, &[]).is_empty());
    assert!(targets(Method::DELETE, 404, &[]).is_empty());
}
