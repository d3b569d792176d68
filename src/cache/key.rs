//! The cache key: which stored responses a request may be answered with.
//!
//! A key has two parts:
//!
//! ```text
//! primary = scheme "://" host [":" port] path ["?" query]
//! extra   = *( "\nh:" name ["=" value] )  *( "\nc:" name ["=" value] )
//! ```
//!
//! * `scheme` and `host` are lowercased and a default port (`:80` for http, `:443` for https)
//!   is dropped, so `HTTP://Example.COM:80/a` and `http://example.com/a` share a key. The host
//!   is the URI authority when the request has one (HTTP/2, absolute-form), else `Host`.
//! * `path` and `query` are kept byte for byte (no percent-decoding), except that the route
//!   may drop named query parameters or all of them ([`QueryParams`]) and may sort the
//!   remaining ones by name ([`QueryOrder`], stable, so repeated names keep their order).
//! * `extra` is empty by default. Each request header or cookie named in [`KeyRules`] adds a
//!   line with its value (field lines joined by `,`), or the bare name when the request lacks
//!   it, in the configured order.
//!
//! The primary part names the URL: purge by URL, prefix and host match on it, and it holds all
//! the variants of the URL. The extra part is matched like a Vary field when selecting a
//! variant. Building a key costs one allocation for the primary part (and one for `extra` only
//! when the route adds headers or cookies).

use http::header::{COOKIE, HOST, HeaderName};
use http::uri::Uri;

use super::head::RequestHead;

/// How a route builds keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRules {
    pub query: QueryParams,
    pub order: QueryOrder,
    /// Request headers whose values become part of the key.
    pub headers: Vec<HeaderName>,
    /// Cookies (by name) whose values become part of the key.
    pub cookies: Vec<String>,
}

/// Which query parameters are part of the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum QueryParams {
    #[default]
    Keep,
    /// Drop these parameters (by exact name, such as `utm_source`).
    Ignore(Vec<String>),
    /// Drop the whole query.
    IgnoreAll,
}

/// Whether query parameters are sorted by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueryOrder {
    #[default]
    AsSent,
    Sorted,
}

/// A request's cache key. See the module docs for the format.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    primary: String,
    extra: String,
}

/// Why no key could be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the request names no host")]
    MissingHost,
    #[error("the URL is not absolute")]
    NotAbsolute,
}

impl CacheKey {
    /// The key of a request received over `scheme` (`"http"` or `"https"`, from the
    /// connection, not the request line).
    pub fn new(rules: &KeyRules, scheme: &str, request: RequestHead<'_>) -> Result<Self, KeyError> {
        let host = match request.uri.authority() {
            Some(authority) => authority.as_str(),
            None => request
                .headers
                .get(HOST)
                .and_then(|value| value.to_str().ok())
                .ok_or(KeyError::MissingHost)?,
        };
        let primary = primary(rules, scheme, host, request.uri)?;
        Ok(Self {
            primary,
            extra: extra(rules, request.headers),
        })
    }

    /// The key of an absolute URL, with no extra part: for PURGE and invalidation, which name
    /// a URL rather than a request.
    pub fn for_url(rules: &KeyRules, url: &Uri) -> Result<Self, KeyError> {
        let scheme = url.scheme_str().ok_or(KeyError::NotAbsolute)?;
        let host = url.authority().ok_or(KeyError::NotAbsolute)?.as_str();
        Ok(Self {
            primary: primary(rules, scheme, host, url)?,
            extra: String::new(),
        })
    }

    /// The URL part: `scheme://host/path?query`.
    pub fn primary(&self) -> &str {
        &self.primary
    }

    /// The header and cookie part (empty by default).
    pub fn extra(&self) -> &str {
        &self.extra
    }
}

/// The host of a primary key (`example.com:8080` in `http://example.com:8080/a`).
pub(crate) fn host_of(primary: &str) -> &str {
    let rest = primary.split_once("://").map_or(primary, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

fn primary(rules: &KeyRules, scheme: &str, host: &str, uri: &Uri) -> Result<String, KeyError> {
    let host = host.trim();
    // userinfo is not part of the origin (RFC 9110 4.2.4).
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    if host.is_empty() {
        return Err(KeyError::MissingHost);
    }
    let host = strip_default_port(scheme, host);
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    let query = uri.query();
    let capacity = scheme
        .len()
        .saturating_add(3)
        .saturating_add(host.len())
        .saturating_add(path.len())
        .saturating_add(query.map_or(0, |q| q.len().saturating_add(1)));
    let mut out = String::with_capacity(capacity);
    push_lowercase(&mut out, scheme);
    out.push_str("://");
    push_lowercase(&mut out, host);
    out.push_str(path);
    if let Some(query) = query {
        push_query(&mut out, query, rules);
    }
    Ok(out)
}

fn strip_default_port<'a>(scheme: &str, host: &'a str) -> &'a str {
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else if scheme.eq_ignore_ascii_case("http") {
        ":80"
    } else {
        return host;
    };
    host.strip_suffix(default).unwrap_or(host)
}

fn push_lowercase(out: &mut String, text: &str) {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        out.extend(text.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        out.push_str(text);
    }
}

fn param_name(param: &str) -> &str {
    param.split_once('=').map_or(param, |(name, _)| name)
}

fn push_query(out: &mut String, query: &str, rules: &KeyRules) {
    match (&rules.query, rules.order) {
        (QueryParams::IgnoreAll, _) => {}
        (QueryParams::Keep, QueryOrder::AsSent) => {
            out.push('?');
            out.push_str(query);
        }
        (params, order) => {
            let mut kept: Vec<&str> = query
                .split('&')
                .filter(|param| !param.is_empty())
                .filter(|param| match params {
                    QueryParams::Ignore(names) => {
                        let name = param_name(param);
                        !names.iter().any(|ignored| ignored == name)
                    }
                    _ => true,
                })
                .collect();
            if order == QueryOrder::Sorted {
                kept.sort_by(|a, b| param_name(a).cmp(param_name(b)));
            }
            for (index, param) in kept.iter().enumerate() {
                out.push(if index == 0 { '?' } else { '&' });
                out.push_str(param);
            }
        }
    }
}

fn extra(rules: &KeyRules, headers: &http::HeaderMap) -> String {
    if rules.headers.is_empty() && rules.cookies.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for name in &rules.headers {
        out.push_str("\nh:");
        out.push_str(name.as_str());
        for (index, value) in headers.get_all(name).iter().enumerate() {
            out.push(if index == 0 { '=' } else { ',' });
            out.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
    }
    for name in &rules.cookies {
        out.push_str("\nc:");
        out.push_str(name);
        if let Some(value) = cookie(headers, name) {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// The value of the first cookie called `name` in the request's Cookie fields.
fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value)
}
