//! Route matching: a request's host and path to the one route that serves it.
//!
//! The most specific host wins (exact, then the longest `*.suffix`, then `*`), then the longest
//! path prefix; among equals, the first route in the file. A prefix matches on segment
//! boundaries: `/api` matches `/api` and `/api/v1`, not `/apiary`.

use super::{HostPattern, RouteConfig};

/// How well a host pattern matches, higher is more specific; `None` when it does not match.
fn host_rank(pattern: &HostPattern, host: &str) -> Option<usize> {
    match pattern {
        HostPattern::Any => Some(0),
        HostPattern::Suffix(suffix) => (host.len() > suffix.len()
            && ends_with_ignore_case(host, suffix))
        .then_some(suffix.len()),
        HostPattern::Exact(exact) => host.eq_ignore_ascii_case(exact).then_some(usize::MAX),
    }
}

fn ends_with_ignore_case(host: &str, suffix: &str) -> bool {
    host.len() >= suffix.len()
        && host
            .get(host.len() - suffix.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

/// The host part of a `Host` header or authority: no port, no trailing dot.
pub fn normalise_host(authority: &str) -> &str {
    let host = if authority.starts_with('[') {
        // An IPv6 literal: keep the brackets, drop the port.
        authority
            .find(']')
            .and_then(|end| authority.get(..=end))
            .unwrap_or(authority)
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// The index of the route for `host` (already normalised) and `path`.
pub fn find(routes: &[RouteConfig], host: &str, path: &str) -> Option<usize> {
    let mut best: Option<(usize, (usize, usize))> = None;
    for (index, route) in routes.iter().enumerate() {
        if !prefix_matches(&route.path_prefix, path) {
            continue;
        }
        let Some(rank) = route.hosts.iter().filter_map(|p| host_rank(p, host)).max() else {
            continue;
        };
        let score = (rank, route.path_prefix.len());
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((index, score));
        }
    }
    best.map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, hosts: Vec<HostPattern>, prefix: &str) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            hosts,
            path_prefix: prefix.into(),
            pool: "p".into(),
            cache: None,
            retryable: false,
        }
    }

    fn routes() -> Vec<RouteConfig> {
        vec![
            route("any", vec![HostPattern::Any], "/"),
            route(
                "wild",
                vec![HostPattern::Suffix(".example.com".into())],
                "/",
            ),
            route(
                "exact",
                vec![HostPattern::Exact("api.example.com".into())],
                "/",
            ),
            route(
                "exact-v2",
                vec![HostPattern::Exact("api.example.com".into())],
                "/v2",
            ),
        ]
    }

    #[test]
    fn the_most_specific_host_wins() {
        let routes = routes();
        assert_eq!(find(&routes, "other.test", "/"), Some(0));
        assert_eq!(find(&routes, "shop.example.com", "/"), Some(1));
        assert_eq!(find(&routes, "API.example.com", "/x"), Some(2));
    }

    #[test]
    fn a_wildcard_does_not_match_the_bare_domain() {
        let routes = vec![route(
            "wild",
            vec![HostPattern::Suffix(".example.com".into())],
            "/",
        )];
        assert_eq!(find(&routes, "example.com", "/"), None);
    }

    #[test]
    fn the_longest_prefix_wins_on_segment_boundaries() {
        let routes = routes();
        assert_eq!(find(&routes, "api.example.com", "/v2/items"), Some(3));
        assert_eq!(find(&routes, "api.example.com", "/v2"), Some(3));
        assert_eq!(find(&routes, "api.example.com", "/v20"), Some(2));
    }

    #[test]
    fn hosts_lose_their_port_and_trailing_dot() {
        assert_eq!(normalise_host("example.com:8080"), "example.com");
        assert_eq!(normalise_host("example.com."), "example.com");
        assert_eq!(normalise_host("[::1]:443"), "[::1]");
    }
}
