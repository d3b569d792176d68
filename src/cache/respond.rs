//! What the cache adds to or removes from a response on its way to the client: `Age`
//! (RFC 9111 5.1), `Cache-Status` (RFC 9211), and the stripping of Surrogate-Control and the
//! purge-tag fields (which are for Sluice, not for clients; tags are kept for a listener that
//! faces a CDN so the CDN can index them too).

use std::time::Duration;

use http::header::{AGE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::directives::SURROGATE_CONTROL;
use super::lookup::{Lookup, MissKind, StaleReason};
use super::policy::NoCacheReason;
use super::purge::TAG_FIELDS;

/// The `Cache-Status` field name.
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The cache's name in Cache-Status.
const NAME: &str = "sluice";

/// Who receives the response: the purge-tag fields are kept only for a CDN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Facing {
    Client,
    Cdn,
}

/// Prepares stored or forwarded headers for the client: removes Surrogate-Control (always)
/// and the tag fields (unless `facing` is a CDN).
pub fn strip_for_client(headers: &mut HeaderMap, facing: Facing) {
    headers.remove(&SURROGATE_CONTROL);
    if facing == Facing::Client {
        for name in &TAG_FIELDS {
            headers.remove(name);
        }
    }
}

/// Sets `Age` to `age` in whole seconds (RFC 9111 5.1), replacing the origin's.
pub fn set_age(headers: &mut HeaderMap, age: Duration) {
    headers.insert(AGE, HeaderValue::from(age.as_secs()));
}

/// The `fwd` parameter of Cache-Status (RFC 9211 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fwd {
    /// Forwarded because the route does not cache (or the method is not cacheable).
    Bypass,
    Miss,
    UriMiss,
    VaryMiss,
    /// A stored response was found but was stale.
    Stale,
    /// A stored response was found but the request's directives forced the origin.
    Request,
}

impl Fwd {
    /// The `fwd` token, also a metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Miss => "miss",
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Stale => "stale",
            Self::Request => "request",
        }
    }

    /// The `fwd` value for a lookup that went to the origin.
    pub fn of(lookup: &Lookup) -> Self {
        match lookup {
            Lookup::Hit(_) => Self::Miss,
            Lookup::Stale(stale) => Self::of_stale(stale.reason),
            Lookup::Miss(MissKind::UriMiss) => Self::UriMiss,
            Lookup::Miss(MissKind::VaryMiss) => Self::VaryMiss,
            Lookup::Miss(MissKind::OnlyIfCached) => Self::Miss,
        }
    }

    /// The `fwd` value for a stale entry sent to the origin for `reason`.
    pub fn of_stale(reason: StaleReason) -> Self {
        if reason.forced_by_request() {
            Self::Request
        } else {
            Self::Stale
        }
    }
}

/// Whether this response was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Yes,
    No,
}

/// One `Cache-Status` member for Sluice, built with the methods below and rendered with
/// [`CacheStatus::to_header_value`]: `sluice; hit; ttl=57`, `sluice; fwd=uri-miss; stored;
/// ttl=60`, `sluice; fwd=miss; detail=no-store`, `sluice; fwd=stale; fwd-status=503;
/// ttl=-20; detail=stale-if-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheStatus {
    fwd: Option<Fwd>,
    fwd_status: Option<StatusCode>,
    stored: Stored,
    collapsed: bool,
    ttl: Option<i64>,
    detail: Option<&'static str>,
}

impl CacheStatus {
    /// Served from the cache without contacting the origin; `ttl` is the remaining freshness.
    pub fn hit(ttl: i64) -> Self {
        Self {
            fwd: None,
            fwd_status: None,
            stored: Stored::No,
            collapsed: false,
            ttl: Some(ttl),
            detail: None,
        }
    }

    /// Forwarded to the origin, for the reason `fwd`.
    pub fn forward(fwd: Fwd) -> Self {
        Self {
            fwd: Some(fwd),
            ..Self::hit(0)
        }
        .without_ttl()
    }

    fn without_ttl(mut self) -> Self {
        self.ttl = None;
        self
    }

    /// The status the origin answered with (RFC 9211 2.3).
    pub fn fwd_status(mut self, status: StatusCode) -> Self {
        self.fwd_status = Some(status);
        self
    }

    /// The response was stored, fresh for `ttl` seconds (RFC 9211 2.5, 2.4).
    pub fn stored(mut self, ttl: i64) -> Self {
        self.stored = Stored::Yes;
        self.ttl = Some(ttl);
        self
    }

    /// The remaining freshness of what is served.
    pub fn ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The request waited on another request's fetch (RFC 9211 2.6 `collapsed`).
    pub fn collapsed(mut self) -> Self {
        self.collapsed = true;
        self
    }

    /// Why the response was not stored (RFC 9211 2.8).
    pub fn not_stored(self, reason: NoCacheReason) -> Self {
        self.detail(reason.as_str())
    }

    /// Free detail, a token such as `stale-while-revalidate`.
    pub fn detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The field value.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(48);
        out.push_str(NAME);
        match self.fwd {
            None => out.push_str("; hit"),
            Some(fwd) => {
                out.push_str("; fwd=");
                out.push_str(fwd.as_str());
            }
        }
        if let Some(status) = self.fwd_status {
            out.push_str("; fwd-status=");
            out.push_str(status.as_str());
        }
        if self.stored == Stored::Yes {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            out.push_str("; ttl=");
            out.push_str(itoa::Buffer::new().format(ttl));
        }
        if let Some(detail) = self.detail {
            out.push_str("; detail=");
            out.push_str(detail);
        }
        out
    }

    /// The field value as a header value (its buffer moved, not copied).
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::from_maybe_shared(bytes::Bytes::from(self.render()))
            .unwrap_or(HeaderValue::from_static(NAME))
    }
}
