//! Parsing of cache directives: `Cache-Control` (RFC 9111 5.2) in requests and responses, and
//! the targeted fields `Surrogate-Control` and `CDN-Cache-Control` (RFC 9213) in responses.
//!
//! This module turns header values into plain structs; it decides nothing. Parsing is lenient
//! where RFC 9111 asks for it (quoted delta-seconds are accepted, an overflowing value becomes
//! 2^31, an invalid one is taken as 0 so the response is stale) and strict for targeted fields,
//! which are Structured Field dictionaries: a targeted field that does not parse is ignored
//! (RFC 9213 2.2) and Cache-Control applies instead.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::{CACHE_CONTROL, HeaderName};

/// RFC 9111 1.2.2: a delta-seconds too large to represent is taken as 2^31.
pub(crate) const DELTA_MAX: u64 = 1 << 31;

/// `Surrogate-Control`: read by Sluice first and stripped before clients.
pub static SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");
/// `CDN-Cache-Control` (RFC 9213 3): read by Sluice after Surrogate-Control, and forwarded.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// Which field the response directives came from (RFC 9213 2.2: the first valid targeted field
/// in precedence order wins, and then Cache-Control and Expires are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the variants are the field names
pub enum DirectiveSource {
    SurrogateControl,
    CdnCacheControl,
    CacheControl,
}

/// A directive that is either absent, present for the whole response, or limited to fields
/// (`no-cache="Set-Cookie"`, `private="Authorization"`: RFC 9111 5.2.2.4 and 5.2.2.7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FieldScope {
    #[default]
    Absent,
    All,
    Fields(Vec<HeaderName>),
}

/// The response directives that matter to a shared cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResponseDirectives {
    pub(crate) source: DirectiveSource,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
    pub(crate) public: bool,
    pub(crate) private: FieldScope,
    pub(crate) no_cache: FieldScope,
    pub(crate) no_store: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) must_understand: bool,
    pub(crate) stale_while_revalidate: Option<u64>,
    pub(crate) stale_if_error: Option<u64>,
}

/// A request's `max-stale`: with no value the client accepts any staleness (RFC 9111 5.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MaxStale {
    Any,
    Seconds(u64),
}

/// The request directives of RFC 9111 5.2.1 and RFC 5861 4.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestDirectives {
    pub(crate) max_age: Option<u64>,
    pub(crate) max_stale: Option<MaxStale>,
    pub(crate) min_fresh: Option<u64>,
    pub(crate) no_cache: bool,
    pub(crate) no_store: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) stale_if_error: Option<u64>,
}

/// One `name[=value]` member, the value unquoted.
struct Directive<'a> {
    name: &'a str,
    value: Option<Cow<'a, str>>,
}

/// How strictly to read a field: Cache-Control leniently, targeted fields as SF dictionaries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Lenient,
    Dictionary,
}

impl ResponseDirectives {
    fn empty(source: DirectiveSource) -> Self {
        Self {
            source,
            max_age: None,
            s_maxage: None,
            public: false,
            private: FieldScope::Absent,
            no_cache: FieldScope::Absent,
            no_store: false,
            must_revalidate: false,
            proxy_revalidate: false,
            must_understand: false,
            stale_while_revalidate: None,
            stale_if_error: None,
        }
    }

    /// The directives Sluice obeys for a response: Surrogate-Control, else CDN-Cache-Control,
    /// else Cache-Control.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        for (name, source) in [
            (&SURROGATE_CONTROL, DirectiveSource::SurrogateControl),
            (&CDN_CACHE_CONTROL, DirectiveSource::CdnCacheControl),
        ] {
            if let Some(directives) = Self::parse_field(headers, name, source, Syntax::Dictionary) {
                return directives;
            }
        }
        Self::parse_field(
            headers,
            &CACHE_CONTROL,
            DirectiveSource::CacheControl,
            Syntax::Lenient,
        )
        .unwrap_or_else(|| Self::empty(DirectiveSource::CacheControl))
    }

    /// The directives of one field, or `None` if it is absent, empty or (for a dictionary)
    /// malformed.
    fn parse_field(
        headers: &HeaderMap,
        name: &HeaderName,
        source: DirectiveSource,
        syntax: Syntax,
    ) -> Option<Self> {
        let mut out = Self::empty(source);
        let mut seen = 0usize;
        for value in headers.get_all(name) {
            let text = value.to_str().ok()?;
            for member in split_members(text) {
                let directive = match parse_member(member, syntax) {
                    Member::Directive(directive) => directive,
                    Member::Skip => continue,
                    Member::Invalid => return None,
                };
                seen = seen.saturating_add(1);
                out.apply(&directive);
            }
        }
        (seen > 0).then_some(out)
    }

    fn apply(&mut self, directive: &Directive<'_>) {
        let value = directive.value.as_deref();
        match directive.name.to_ascii_lowercase().as_str() {
            "max-age" => first(&mut self.max_age, delta(value)),
            "s-maxage" => first(&mut self.s_maxage, delta(value)),
            "public" => self.public = true,
            "private" => first_scope(&mut self.private, value),
            "no-cache" => first_scope(&mut self.no_cache, value),
            "no-store" => self.no_store = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "must-understand" => self.must_understand = true,
            "stale-while-revalidate" => first(&mut self.stale_while_revalidate, delta(value)),
            "stale-if-error" => first(&mut self.stale_if_error, delta(value)),
            _ => {}
        }
    }
}

impl RequestDirectives {
    /// The Cache-Control directives of a request.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut out = Self::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(text) = value.to_str() else { continue };
            for member in split_members(text) {
                let Member::Directive(directive) = parse_member(member, Syntax::Lenient) else {
                    continue;
                };
                out.apply(&directive);
            }
        }
        out
    }

    fn apply(&mut self, directive: &Directive<'_>) {
        let value = directive.value.as_deref();
        match directive.name.to_ascii_lowercase().as_str() {
            "max-age" => first(&mut self.max_age, delta(value)),
            "max-stale" if self.max_stale.is_none() => {
                self.max_stale = Some(match value {
                    None => MaxStale::Any,
                    Some(_) => MaxStale::Seconds(delta(value).unwrap_or(0)),
                });
            }
            "min-fresh" => first(&mut self.min_fresh, delta(value)),
            "no-cache" => self.no_cache = true,
            "no-store" => self.no_store = true,
            "only-if-cached" => self.only_if_cached = true,
            "stale-if-error" => first(&mut self.stale_if_error, delta(value)),
            _ => {}
        }
    }
}

/// RFC 9111 4.2.1: when a directive appears twice, the first occurrence is used.
fn first(slot: &mut Option<u64>, value: Option<u64>) {
    if slot.is_none() {
        *slot = value;
    }
}

fn first_scope(slot: &mut FieldScope, value: Option<&str>) {
    if *slot != FieldScope::Absent {
        return;
    }
    *slot = match value {
        None => FieldScope::All,
        Some(list) => {
            let fields: Vec<HeaderName> = list
                .split(',')
                .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
                .collect();
            if fields.is_empty() {
                FieldScope::All
            } else {
                FieldScope::Fields(fields)
            }
        }
    };
}

/// A delta-seconds value (RFC 9111 1.2.2). A missing or malformed value is 0 (stale), an
/// overflowing one saturates at 2^31.
pub(crate) fn delta(value: Option<&str>) -> Option<u64> {
    let text = value?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(0);
    }
    Some(text.parse::<u64>().map_or(DELTA_MAX, |n| n.min(DELTA_MAX)))
}

/// Splits a field value on commas that are not inside a quoted string.
fn split_members(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let mut quoted = false;
            let mut escaped = false;
            let mut end = rest.len();
            for (index, byte) in rest.bytes().enumerate() {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' if quoted => escaped = true,
                    b'"' => quoted = !quoted,
                    b',' if !quoted => {
                        end = index;
                        break;
                    }
                    _ => {}
                }
            }
            let member = rest.get(..end).unwrap_or("").trim();
            rest = rest.get(end.saturating_add(1)..).unwrap_or("");
            if !member.is_empty() {
                return Some(member);
            }
        }
    })
}

enum Member<'a> {
    Directive(Directive<'a>),
    /// Well-formed but aimed at another cache (a `;target` parameter that is not ours).
    Skip,
    Invalid,
}

fn parse_member(member: &str, syntax: Syntax) -> Member<'_> {
    let (body, params) = match syntax {
        Syntax::Lenient => (member, None),
        Syntax::Dictionary => split_params(member),
    };
    let (name, value) = match body.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (body.trim(), None),
    };
    if name.is_empty() {
        return Member::Invalid;
    }
    if syntax == Syntax::Dictionary {
        if !is_dictionary_key(name) || value.is_some_and(|v| !is_dictionary_item(v)) {
            return Member::Invalid;
        }
        // RFC 9213 2.1: the delta directives are Integers; another type (`max-age="60"`)
        // makes the field invalid, so it is ignored as a whole.
        if matches!(
            name,
            "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error"
        ) && value.is_some_and(|v| !is_sf_integer(v))
        {
            return Member::Invalid;
        }
        if let Some(params) = params
            && !params
                .split(';')
                .any(|param| param.trim().eq_ignore_ascii_case("sluice"))
        {
            return Member::Skip;
        }
    }
    Member::Directive(Directive {
        name,
        value: value.map(unquote),
    })
}

/// An RFC 8941 Integer: an optional `-` and 1 to 15 digits.
fn is_sf_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `max-age=60;sluice` -> (`max-age=60`, Some(`sluice`)), ignoring `;` inside quotes.
fn split_params(member: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    for (index, byte) in member.bytes().enumerate() {
        match byte {
            b'"' => quoted = !quoted,
            b';' if !quoted => {
                let body = member.get(..index).unwrap_or(member);
                let params = member.get(index.saturating_add(1)..).unwrap_or("");
                return (body, Some(params));
            }
            _ => {}
        }
    }
    (member, None)
}

/// RFC 8941 3.2 key: lowercase letter or `*`, then lowercase letters, digits, `_-.*`.
fn is_dictionary_key(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        })
}

/// An integer, a token or a quoted string (the item types cache directives map to).
fn is_dictionary_item(value: &str) -> bool {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'"') => bytes.len() >= 2 && bytes.last() == Some(&b'"'),
        Some(b'-' | b'0'..=b'9') => value
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.'),
        Some(b) if b.is_ascii_alphabetic() || *b == b'*' => {
            bytes.iter().all(|b| b.is_ascii_graphic() && *b != b',')
        }
        _ => false,
    }
}

fn unquote(value: &str) -> Cow<'_, str> {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Cow::Borrowed(value);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    Cow::Owned(out)
}
