//! Query-string parsing for the demo routes: percent-decoding, paging and category filters.
//!
//! Pure functions; a malformed parameter is an error message for a 400, never a panic.

use super::catalogue::Slice;

/// Page size when `per_page` is absent, and the largest one served (larger asks are clamped).
pub(crate) const DEFAULT_PER_PAGE: i64 = 20;
pub(crate) const MAX_PER_PAGE: i64 = 100;
/// Deeper pages walk too much of the index; `after` is the way to go further.
const MAX_PAGE: i64 = 100_000;
const MAX_CATEGORY_CHARS: usize = 40;

/// The decoded `name=value` pairs of a query string. `None` if an escape is malformed or the
/// result is not UTF-8.
pub(crate) fn pairs(query: Option<&str>) -> Option<Vec<(String, String)>> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(name)?, decode(value)?))
        })
        .collect()
}

/// The first value of `name`, if any.
pub(crate) fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = hex_value(*bytes.get(index + 1)?)?;
                let low = hex_value(*bytes.get(index + 2)?)?;
                decoded.push(high << 4 | low);
                index += 2;
            }
            other => decoded.push(other),
        }
        index += 1;
    }
    String::from_utf8(decoded).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for links we build.
pub(crate) fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Where a list starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paging {
    /// 1-based.
    pub(crate) page: i64,
    pub(crate) per_page: i64,
    /// Cursor mode: only ids above this one.
    pub(crate) after: Option<i64>,
}

impl Paging {
    /// Reads `page`, `per_page` and `after`.
    pub(crate) fn parse(pairs: &[(String, String)]) -> Result<Self, String> {
        let page = number(pairs, "page")?.unwrap_or(1);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(format!("page must be between 1 and {MAX_PAGE}"));
        }
        let per_page = number(pairs, "per_page")?.unwrap_or(DEFAULT_PER_PAGE);
        if per_page < 1 {
            return Err("per_page must be at least 1".to_string());
        }
        let after = number(pairs, "after")?;
        if after.is_some_and(|after| after < 0) {
            return Err("after must not be negative".to_string());
        }
        Ok(Self {
            page,
            per_page: per_page.min(MAX_PER_PAGE),
            after,
        })
    }

    /// The rows to read: one more than a page, to know whether there is a next page.
    pub(crate) fn slice(&self) -> Slice {
        Slice {
            after: self.after.unwrap_or(0),
            offset: self.page.saturating_sub(1).saturating_mul(self.per_page),
            limit: self.per_page.saturating_add(1),
        }
    }

    /// The query string of the next page (without `?`), given the last id of this one.
    pub(crate) fn next(&self, last_id: i64) -> String {
        match self.after {
            Some(_) => format!("after={last_id}&per_page={}", self.per_page),
            None => format!(
                "page={}&per_page={}",
                self.page.saturating_add(1),
                self.per_page
            ),
        }
    }
}

/// Reads `category`: a slug of lowercase letters, digits and `-`.
pub(crate) fn category(pairs: &[(String, String)]) -> Result<Option<String>, String> {
    match first(pairs, "category") {
        None | Some("") => Ok(None),
        Some(slug)
            if slug.len() <= MAX_CATEGORY_CHARS
                && slug
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            Ok(Some(slug.to_string()))
        }
        Some(_) => Err("category must be a slug such as books or board-games".to_string()),
    }
}

fn number(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, String> {
    match first(pairs, name) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} must be a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> Vec<(String, String)> {
        pairs(Some(query)).unwrap()
    }

    #[test]
    fn pairs_are_percent_and_plus_decoded() {
        assert_eq!(
            parsed("q=oak+lamp&x=%C3%A9%2F"),
            vec![
                ("q".to_string(), "oak lamp".to_string()),
                ("x".to_string(), "é/".to_string())
            ]
        );
        assert_eq!(pairs(Some("q=%zz")), None);
        assert_eq!(pairs(Some("q=%C3")), None);
        assert_eq!(pairs(Some("q=%4")), None);
        assert_eq!(pairs(None), Some(vec![]));
    }

    #[test]
    fn encode_round_trips_through_decode() {
        let text = "oak & brass/lamp é";
        assert_eq!(decode(&encode(text)).as_deref(), Some(text));
    }

    #[test]
    fn paging_defaults_clamps_and_rejects() {
        let default = Paging::parse(&[]).unwrap();
        assert_eq!(
            default,
            Paging {
                page: 1,
                per_page: 20,
                after: None
            }
        );
        assert_eq!(
            default.slice(),
            Slice {
                after: 0,
                offset: 0,
                limit: 21
            }
        );
        assert_eq!(
            Paging::parse(&parsed("per_page=1000")).unwrap().per_page,
            100
        );
        let third = Paging::parse(&parsed("page=3&per_page=10")).unwrap();
        assert_eq!(
            third.slice(),
            Slice {
                after: 0,
                offset: 20,
                limit: 11
            }
        );
        assert_eq!(third.next(30), "page=4&per_page=10");
        let cursor = Paging::parse(&parsed("after=500")).unwrap();
        assert_eq!(cursor.next(520), "after=520&per_page=20");
        for bad in [
            "page=0",
            "page=x",
            "per_page=0",
            "after=-1",
            "page=99999999999999999999",
        ] {
            assert!(Paging::parse(&parsed(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn category_must_be_a_slug() {
        assert_eq!(
            category(&parsed("category=board-games"))
                .unwrap()
                .as_deref(),
            Some("board-games")
        );
        assert_eq!(category(&parsed("category=")).unwrap(), None);
        assert!(category(&parsed("category=Books%27")).is_err());
    }
}
