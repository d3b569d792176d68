//! Vary (RFC 9111 4.1): which request fields select among the stored variants of one URL.
//!
//! A stored response keeps, for each field its `Vary` names, the request's value in a
//! normalised form (field lines combined, whitespace around commas removed; Accept-Encoding
//! reduced to the sorted set of codings it accepts). A later request matches a variant when its
//! normalised values are equal. `Vary: *` matches nothing and is never stored.

use http::HeaderMap;
use http::header::{ACCEPT_ENCODING, HeaderName, VARY};

/// The `Vary` of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VaryFields {
    /// No Vary: one variant per URL.
    None,
    /// The named request fields, lowercased and deduplicated.
    Fields(Vec<HeaderName>),
    /// `Vary: *`: never matched, so never stored (RFC 9111 4.1).
    Star,
}

/// The secondary key of a stored variant: the normalised request values of its Vary fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VaryKey {
    fields: Box<[(HeaderName, Option<Box<str>>)]>,
}

impl VaryFields {
    /// The Vary of a response's headers.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut fields: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(VARY) {
            let Ok(text) = value.to_str() else {
                // An unreadable Vary cannot be matched safely.
                return Self::Star;
            };
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if name == "*" {
                    return Self::Star;
                }
                let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                    return Self::Star;
                };
                if !fields.contains(&name) {
                    fields.push(name);
                }
            }
        }
        if fields.is_empty() {
            Self::None
        } else {
            Self::Fields(fields)
        }
    }
}

impl VaryKey {
    /// The secondary key of `request` for a response that varies on `fields`.
    pub(crate) fn new(fields: &VaryFields, request: &HeaderMap) -> Self {
        let VaryFields::Fields(names) = fields else {
            return Self::default();
        };
        let fields = names
            .iter()
            .map(|name| (name.clone(), normalise(name, request)))
            .collect();
        Self { fields }
    }

    /// Whether `request` selects this variant.
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.fields
            .iter()
            .all(|(name, stored)| normalise(name, request).as_deref() == stored.as_deref())
    }

    /// Bytes this key adds to an entry (for the store's accounting).
    pub(crate) fn weight(&self) -> usize {
        self.fields
            .iter()
            .map(|(name, value)| {
                name.as_str()
                    .len()
                    .saturating_add(value.as_ref().map_or(0, |v| v.len()))
                    .saturating_add(32)
            })
            .fold(0usize, usize::saturating_add)
    }

    /// Whether the variant was selected by the same request values as `other`.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}

/// The normalised value of one field in a request, `None` when the request lacks it.
fn normalise(name: &HeaderName, request: &HeaderMap) -> Option<Box<str>> {
    let mut values = request.get_all(name).iter().peekable();
    values.peek()?;
    if *name == ACCEPT_ENCODING {
        return Some(accept_encoding(values.filter_map(|v| v.to_str().ok())));
    }
    let mut out = String::new();
    for value in values {
        let text = String::from_utf8_lossy(value.as_bytes());
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(item);
        }
    }
    Some(out.into_boxed_str())
}

/// `gzip, br;q=0.5, deflate;q=0` -> `br,gzip`: the codings with a non-zero weight, lowercased,
/// sorted and deduplicated, since only the set decides which representation the origin sends.
fn accept_encoding<'a>(values: impl Iterator<Item = &'a str>) -> Box<str> {
    let mut codings: Vec<String> = Vec::new();
    for value in values {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            let refused = parts.any(|param| {
                let param = param.trim();
                param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if !refused && !codings.contains(&coding) {
                codings.push(coding);
            }
        }
    }
    codings.sort_unstable();
    codings.join(",").into_boxed_str()
}
