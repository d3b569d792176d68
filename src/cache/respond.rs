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
    headers.insert(AGE, age_value(age.as_secs()));
}

/// Ages below this are slices of [`DIGITS`]: set on every hit, they then cost no allocation
/// (`HeaderValue::from(u64)` makes two).
const STATIC_AGES: usize = 10_000;

/// Every number below [`STATIC_AGES`] as four zero-padded digits, one after another.
static DIGITS: [u8; 4 * STATIC_AGES] = digits();

const fn digits() -> [u8; 4 * STATIC_AGES] {
    let mut out = [0u8; 4 * STATIC_AGES];
    let mut n = 0;
    while n < STATIC_AGES {
        let mut place = 0;
        let mut rest = n;
        while place < 4 {
            out[4 * n + 3 - place] = b'0' + (rest % 10) as u8;
            rest /= 10;
            place += 1;
        }
        n += 1;
    }
    out
}

fn age_value(seconds: u64) -> HeaderValue {
    let Some(n) = usize::try_from(seconds).ok().filter(|n| *n < STATIC_AGES) else {
        return HeaderValue::from(seconds);
    };
    let width = match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    };
    let end = 4 * n + 4;
    let digits = bytes::Bytes::from_static(&DIGITS).slice(end - width..end);
    HeaderValue::from_maybe_shared(digits).unwrap_or_else(|_| HeaderValue::from(seconds))
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
        let mut out = Vec::with_capacity(48);
        self.write_to(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn write_to(&self, out: &mut impl Extend<u8>) {
        let mut put = |text: &str| out.extend(text.bytes());
        put(NAME);
        match self.fwd {
            None => put("; hit"),
            Some(fwd) => {
                put("; fwd=");
                put(fwd.as_str());
            }
        }
        if let Some(status) = self.fwd_status {
            put("; fwd-status=");
            put(status.as_str());
        }
        if self.stored == Stored::Yes {
            put("; stored");
        }
        if self.collapsed {
            put("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            put("; ttl=");
            put(itoa::Buffer::new().format(ttl));
        }
        if let Some(detail) = self.detail {
            put("; detail=");
            put(detail);
        }
    }

    /// The field value as a header value: written on the stack and copied once into the
    /// value's own buffer (one allocation; a `String` moved into `Bytes` made two).
    pub fn to_header_value(&self) -> HeaderValue {
        let mut out = Stack::default();
        self.write_to(&mut out);
        match out.as_slice() {
            Some(text) => HeaderValue::from_bytes(text),
            None => HeaderValue::from_maybe_shared(bytes::Bytes::from(self.render())),
        }
        .unwrap_or(HeaderValue::from_static(NAME))
    }
}

/// A short field value written without allocating; `None` once it overflowed.
struct Stack {
    bytes: [u8; 128],
    len: usize,
    overflowed: bool,
}

impl Default for Stack {
    fn default() -> Self {
        Self {
            bytes: [0; 128],
            len: 0,
            overflowed: false,
        }
    }
}

impl Stack {
    fn as_slice(&self) -> Option<&[u8]> {
        (!self.overflowed)
            .then(|| self.bytes.get(..self.len))
            .flatten()
    }
}

impl Extend<u8> for Stack {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, items: I) {
        for byte in items {
            match self.bytes.get_mut(self.len) {
                Some(slot) => {
                    *slot = byte;
                    self.len += 1;
                }
                None => self.overflowed = true,
            }
        }
    }
}
