//! Invalidation after unsafe methods (RFC 9111 4.4).
//!
//! A non-error response to an unsafe request invalidates the target URI, and the URIs in
//! Location and Content-Location when they share the target's origin (a different origin is
//! never invalidated, so one site cannot flush another). Pure: this module only names the
//! URIs; `Cache::invalidate` removes their entries.

use http::Method;
use http::header::{CONTENT_LOCATION, HOST, LOCATION};
use http::uri::{Authority, Uri};

use super::head::{RequestHead, ResponseHead};

/// The absolute URIs whose stored responses the exchange invalidates (empty when none).
/// `scheme` is the connection's (`"http"` or `"https"`).
pub fn invalidation_targets(
    request: RequestHead<'_>,
    scheme: &str,
    response: ResponseHead<'_>,
) -> Vec<Uri> {
    let safe = matches!(
        *request.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let non_error = response.status.is_success() || response.status.is_redirection();
    if safe || !non_error {
        return Vec::new();
    }
    let host = match request.uri.authority() {
        Some(authority) => Some(authority.clone()),
        None => request
            .headers
            .get(HOST)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<Authority>().ok()),
    };
    let Some(authority) = host else {
        return Vec::new();
    };
    let path = request
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    let Some(target) = absolute(scheme, &authority, path) else {
        return Vec::new();
    };
    let mut targets = vec![target];
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(reference) = response.headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(uri) = resolve(scheme, &authority, request.uri.path(), reference.trim())
            && !targets.contains(&uri)
        {
            targets.push(uri);
        }
    }
    targets
}

fn absolute(scheme: &str, authority: &Authority, path: &str) -> Option<Uri> {
    Uri::builder()
        .scheme(scheme)
        .authority(authority.as_str())
        .path_and_query(if path.is_empty() { "/" } else { path })
        .build()
        .ok()
}

/// Resolves a Location/Content-Location reference against the target, keeping it only when
/// its origin is the target's (RFC 9111 4.4).
fn resolve(scheme: &str, authority: &Authority, base_path: &str, reference: &str) -> Option<Uri> {
    if reference.is_empty() || reference.starts_with("//") {
        return None;
    }
    if reference.starts_with('/') {
        return absolute(scheme, authority, reference);
    }
    if let Ok(uri) = reference.parse::<Uri>()
        && let (Some(other_scheme), Some(other_authority)) = (uri.scheme_str(), uri.authority())
    {
        let same = other_scheme.eq_ignore_ascii_case(scheme)
            && same_authority(scheme, authority, other_authority);
        return same.then_some(uri);
    }
    if reference.contains(':') && !reference.starts_with('.') {
        // Another scheme without an authority (`mailto:`): not ours.
        return None;
    }
    let directory = base_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    absolute(scheme, authority, &format!("{directory}/{reference}"))
}

fn same_authority(scheme: &str, a: &Authority, b: &Authority) -> bool {
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    a.host().eq_ignore_ascii_case(b.host())
        && a.port_u16().unwrap_or(default) == b.port_u16().unwrap_or(default)
}
