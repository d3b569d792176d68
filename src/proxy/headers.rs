//! Header hygiene between client and backend (RFC 9110 7.6): hop-by-hop headers out, proxy
//! headers in.
//!
//! Owns which headers cross the proxy and how `Via`, `X-Forwarded-*`, `Forwarded` and
//! `X-Request-Id` are written. Pure functions over `HeaderMap`, so they are unit-tested and
//! benchmarked (`benches/headers.rs`) without sockets.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::HeaderPolicy;

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that only mean something on one connection (RFC 9110 7.6.1), besides those a
/// message lists in its own `Connection` header.
fn hop_by_hop() -> [&'static HeaderName; 7] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Removes the headers named in `Connection`, then the fixed hop-by-hop set. Most requests
/// carry none, so one pass over the names decides whether any lookup is needed.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let set = hop_by_hop();
    if !headers.keys().any(|name| set.contains(&name)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(&name);
        }
    }
    for name in hop_by_hop() {
        headers.remove(name);
    }
}

/// The protocol of a message as `Via` writes it (RFC 9110 7.6.3).
fn via_protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// The header policy with the values it writes on every request made once, when a snapshot
/// is built, instead of per request.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub policy: HeaderPolicy,
    via: [Option<HeaderValue>; 5],
    proto_http: HeaderValue,
    proto_https: HeaderValue,
}

const VERSIONS: [Version; 5] = [
    Version::HTTP_09,
    Version::HTTP_10,
    Version::HTTP_11,
    Version::HTTP_2,
    Version::HTTP_3,
];

impl Rewrite {
    /// Precomputes the values of `policy`.
    pub fn new(policy: &HeaderPolicy) -> Rewrite {
        let via = VERSIONS.map(|version| {
            HeaderValue::from_str(&format!("{} {}", via_protocol(version), policy.via)).ok()
        });
        Rewrite {
            policy: policy.clone(),
            via,
            proto_http: HeaderValue::from_static("http"),
            proto_https: HeaderValue::from_static("https"),
        }
    }

    fn via(&self, version: Version) -> Option<&HeaderValue> {
        let index = VERSIONS.iter().position(|v| *v == version).unwrap_or(2);
        self.via.get(index).and_then(Option::as_ref)
    }
}

fn append_via(headers: &mut HeaderMap, version: Version, rewrite: &Rewrite) {
    if let Some(value) = rewrite.via(version) {
        headers.append(header::VIA, value.clone());
    }
}

/// What the pipeline knows about the client side of one request.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// The client's address as a header value (made once per connection).
    pub client_value: &'a HeaderValue,
    /// The client's Host (or :authority) as sent, port included, for `X-Forwarded-Host`.
    pub host_value: Option<&'a HeaderValue>,
    /// `"http"` or `"https"`: how the client reached Sluice.
    pub proto: &'static str,
    /// The host the client asked for (Host or :authority), if any.
    pub host: Option<&'a str>,
    /// The client's HTTP version.
    pub version: Version,
    /// The id of this request (kept from the client or generated).
    pub request_id: &'a str,
    /// The `Upgrade` value to pass on (WebSocket), if the client asked for one.
    pub upgrade: Option<&'a HeaderValue>,
}

/// Rewrites a client's request headers for the backend.
pub fn prepare_request(headers: &mut HeaderMap, forwarding: &Forwarding<'_>, rewrite: &Rewrite) {
    let policy = &rewrite.policy;
    strip_hop_by_hop(headers);
    // Sluice answers `Expect: 100-continue` itself (hyper sends the 100 when the body is first
    // read), so the backend must not wait for a second one.
    headers.remove(header::EXPECT);
    if let Some(upgrade) = forwarding.upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade.clone());
    }

    if policy.x_forwarded {
        let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(previous) if !previous.trim().is_empty() => {
                let client = forwarding.client_value.to_str().unwrap_or_default();
                HeaderValue::from_str(&format!("{previous}, {client}")).ok()
            }
            _ => Some(forwarding.client_value.clone()),
        };
        if let Some(value) = value {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
        let proto = if forwarding.proto == "https" {
            &rewrite.proto_https
        } else {
            &rewrite.proto_http
        };
        headers.insert(X_FORWARDED_PROTO.clone(), proto.clone());
        if let Some(host) = forwarding.host_value {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
    }
    if policy.forwarded {
        let mut element = String::with_capacity(64);
        match forwarding.client {
            IpAddr::V4(ip) => {
                let _ = write!(element, "for={ip}");
            }
            IpAddr::V6(ip) => {
                let _ = write!(element, "for=\"[{ip}]\"");
            }
        }
        if let Some(host) = forwarding.host {
            let _ = write!(element, ";host=\"{host}\"");
        }
        let _ = write!(element, ";proto={}", forwarding.proto);
        if let Ok(value) = HeaderValue::from_str(&element) {
            headers.append(header::FORWARDED, value);
        }
    }
    append_via(headers, forwarding.version, rewrite);
    if policy.request_id
        && !headers.contains_key(&X_REQUEST_ID)
        && let Ok(value) = HeaderValue::from_str(forwarding.request_id)
    {
        headers.insert(X_REQUEST_ID.clone(), value);
    }
}

/// Rewrites a backend's response headers for the client. `upgraded` keeps `Connection` and
/// `Upgrade` on a 101 so the switch reaches the client.
pub fn prepare_response(
    headers: &mut HeaderMap,
    version: Version,
    rewrite: &Rewrite,
    upgraded: bool,
) {
    let upgrade = if upgraded {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    strip_hop_by_hop(headers);
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    append_via(headers, version, rewrite);
}

/// The `Upgrade` value of an HTTP/1.1 request that asks to switch protocols (RFC 9110 7.8):
/// `Connection: upgrade` plus an `Upgrade` header.
pub fn upgrade_request(headers: &HeaderMap, version: Version) -> Option<&HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static CLIENT: HeaderValue = HeaderValue::from_static("192.0.2.7");
    static HOST: HeaderValue = HeaderValue::from_static("shop.example");

    fn rewrite() -> Rewrite {
        Rewrite::new(&HeaderPolicy::default())
    }

    fn forwarding<'a>(request_id: &'a str, upgrade: Option<&'a HeaderValue>) -> Forwarding<'a> {
        Forwarding {
            client: "192.0.2.7".parse().unwrap(),
            client_value: &CLIENT,
            host_value: Some(&HOST),
            proto: "https",
            host: Some("shop.example"),
            version: Version::HTTP_11,
            request_id,
            upgrade,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        prepare_request(&mut map, &forwarding("id", None), &rewrite());
        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "te",
            "transfer-encoding",
            "proxy-connection",
            "upgrade",
        ] {
            assert!(!map.contains_key(gone), "{gone} should be removed");
        }
        assert_eq!(map["accept"], "*/*");
    }

    #[test]
    fn x_forwarded_headers_and_via_are_added() {
        let mut map = headers(&[("x-forwarded-for", "203.0.113.1")]);
        prepare_request(&mut map, &forwarding("abc", None), &rewrite());
        assert_eq!(map["x-forwarded-for"], "203.0.113.1, 192.0.2.7");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-forwarded-host"], "shop.example");
        assert_eq!(map["via"], "1.1 sluice");
        assert_eq!(map["x-request-id"], "abc");
    }

    #[test]
    fn a_client_request_id_is_kept() {
        let mut map = headers(&[("x-request-id", "from-client")]);
        prepare_request(&mut map, &forwarding("generated", None), &rewrite());
        assert_eq!(map["x-request-id"], "from-client");
    }

    #[test]
    fn forwarded_is_written_per_rfc_7239_when_enabled() {
        let policy = Rewrite::new(&HeaderPolicy {
            forwarded: true,
            ..HeaderPolicy::default()
        });
        let mut map = HeaderMap::new();
        let mut f = forwarding("id", None);
        f.client = "2001:db8::1".parse().unwrap();
        prepare_request(&mut map, &f, &policy);
        assert_eq!(
            map["forwarded"],
            "for=\"[2001:db8::1]\";host=\"shop.example\";proto=https"
        );
    }

    #[test]
    fn an_upgrade_request_keeps_its_upgrade_headers() {
        let map = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        let upgrade = upgrade_request(&map, Version::HTTP_11).cloned();
        assert_eq!(upgrade.as_ref().unwrap(), "websocket");
        let mut map = map;
        prepare_request(&mut map, &forwarding("id", upgrade.as_ref()), &rewrite());
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
    }

    #[test]
    fn expect_is_not_forwarded() {
        let mut map = headers(&[("expect", "100-continue")]);
        prepare_request(&mut map, &forwarding("id", None), &rewrite());
        assert!(!map.contains_key("expect"));
    }

    #[test]
    fn response_hop_by_hop_headers_are_removed_and_via_added() {
        let mut map = headers(&[
            ("connection", "close, x-internal"),
            ("x-internal", "1"),
            ("content-type", "text/plain"),
        ]);
        prepare_response(&mut map, Version::HTTP_2, &rewrite(), false);
        assert!(!map.contains_key("connection"));
        assert!(!map.contains_key("x-internal"));
        assert_eq!(map["via"], "2 sluice");
    }
}
