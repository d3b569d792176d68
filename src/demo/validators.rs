//! Validators and conditional requests: strong ETags, Last-Modified, and the RFC 9110 §13
//! decisions (304 for GET/HEAD, 412 for unsafe methods).
//!
//! Pure functions of the request headers and the current representation; owns no I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH};

/// A strong entity tag for these bytes: FNV-1a 64 of the body, quoted. Two representations
/// with the same bytes get the same tag, on every run, which is what a strong ETag promises.
pub(crate) fn strong_etag(body: &[u8]) -> String {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in body {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    format!("\"{hash:016x}\"")
}

/// The instant `ms` milliseconds after the Unix epoch (negative values clamp to the epoch).
pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What a GET or HEAD should answer given its preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// The client's copy is current: 304 Not Modified.
    NotModified,
    /// Send the representation: 200.
    Send,
}

/// RFC 9110 §13.2.2 for GET/HEAD: If-None-Match (weak comparison) decides when present;
/// otherwise If-Modified-Since, compared at one-second resolution. Unparseable dates are
/// ignored, as the RFC asks.
pub(crate) fn freshness(headers: &HeaderMap, etag: &str, last_modified: SystemTime) -> Freshness {
    let if_none_match: Vec<&str> = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !if_none_match.is_empty() {
        let matched = if_none_match
            .iter()
            .any(|value| list_matches(value, etag, Comparison::Weak));
        return if matched {
            Freshness::NotModified
        } else {
            Freshness::Send
        };
    }
    let since = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value).ok());
    match since {
        Some(since) if whole_seconds(last_modified) <= whole_seconds(since) => {
            Freshness::NotModified
        }
        _ => Freshness::Send,
    }
}

/// Whether an unsafe request may go ahead given If-Match (strong comparison, RFC 9110
/// §13.1.1). `current` is the ETag of the target as it is now.
pub(crate) fn if_match_allows(headers: &HeaderMap, current: &str) -> bool {
    let values: Vec<&str> = headers
        .get_all(IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.is_empty()
        || values
            .iter()
            .any(|value| list_matches(value, current, Comparison::Strong))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Weak,
    Strong,
}

/// Whether a header value (`*` or a comma-separated list of entity tags) matches `etag`.
/// Our tags hold no commas, so a plain split is exact for them.
fn list_matches(value: &str, etag: &str, comparison: Comparison) -> bool {
    let ours = etag.trim_start_matches("W/");
    value.split(',').map(str::trim).any(|candidate| {
        if candidate == "*" {
            return true;
        }
        match (candidate.strip_prefix("W/"), comparison) {
            (Some(_), Comparison::Strong) => false,
            (Some(weak), Comparison::Weak) => weak == ours,
            (None, _) => candidate == ours,
        }
    })
}

fn whole_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// `2024-03-05T12:34:56.789Z` for a time in ms since the Unix epoch (UTC, proleptic
/// Gregorian; Howard Hinnant's days-to-civil algorithm).
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let ms = ms.max(0);
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (hour, minute, second, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000,
    );
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(http::header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const MODIFIED: u64 = 1_709_640_000; // 2024-03-05T12:00:00Z

    fn modified() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(MODIFIED)
    }

    #[test]
    fn strong_etag_is_quoted_stable_and_content_sensitive() {
        let tag = strong_etag(b"hello");
        assert_eq!(tag, strong_etag(b"hello"));
        assert_ne!(tag, strong_etag(b"hellp"));
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 18);
        // FNV-1a 64 of the empty input is its offset basis.
        assert_eq!(strong_etag(b""), "\"cbf29ce484222325\"");
    }

    #[test]
    fn if_none_match_with_current_etag_is_not_modified() {
        let tag = strong_etag(b"body");
        let request = headers(&[(IF_NONE_MATCH, &tag)]);
        assert_eq!(
            freshness(&request, &tag, modified()),
            Freshness::NotModified
        );
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let tag = strong_etag(b"body");
        let weak = format!("\"other\", W/{tag}");
        assert_eq!(
            freshness(&headers(&[(IF_NONE_MATCH, &weak)]), &tag, modified()),
            Freshness::NotModified
        );
        assert_eq!(
            freshness(&headers(&[(IF_NONE_MATCH, "*")]), &tag, modified()),
            Freshness::NotModified
        );
        assert_eq!(
            freshness(&headers(&[(IF_NONE_MATCH, "\"stale\"")]), &tag, modified()),
            Freshness::Send
        );
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let tag = strong_etag(b"body");
        let later = httpdate::fmt_http_date(modified() + Duration::from_secs(60));
        let request = headers(&[(IF_NONE_MATCH, "\"stale\""), (IF_MODIFIED_SINCE, &later)]);
        assert_eq!(freshness(&request, &tag, modified()), Freshness::Send);
    }

    #[test]
    fn if_modified_since_at_or_after_last_modified_is_not_modified() {
        let tag = strong_etag(b"body");
        let same = httpdate::fmt_http_date(modified());
        let earlier = httpdate::fmt_http_date(modified() - Duration::from_secs(1));
        let with_millis = modified() + Duration::from_millis(900);
        assert_eq!(
            freshness(&headers(&[(IF_MODIFIED_SINCE, &same)]), &tag, modified()),
            Freshness::NotModified
        );
        assert_eq!(
            freshness(&headers(&[(IF_MODIFIED_SINCE, &same)]), &tag, with_millis),
            Freshness::NotModified
        );
        assert_eq!(
            freshness(&headers(&[(IF_MODIFIED_SINCE, &earlier)]), &tag, modified()),
            Freshness::Send
        );
        assert_eq!(
            freshness(
                &headers(&[(IF_MODIFIED_SINCE, "yesterday")]),
                &tag,
                modified()
            ),
            Freshness::Send
        );
    }

    #[test]
    fn no_preconditions_means_send() {
        assert_eq!(
            freshness(&HeaderMap::new(), "\"x\"", modified()),
            Freshness::Send
        );
    }

    #[test]
    fn if_match_uses_strong_comparison() {
        let tag = strong_etag(b"body");
        assert!(if_match_allows(&HeaderMap::new(), &tag));
        assert!(if_match_allows(&headers(&[(IF_MATCH, &tag)]), &tag));
        assert!(if_match_allows(&headers(&[(IF_MATCH, "*")]), &tag));
        assert!(!if_match_allows(
            &headers(&[(IF_MATCH, &format!("W/{tag}"))]),
            &tag
        ));
        assert!(!if_match_allows(&headers(&[(IF_MATCH, "\"stale\"")]), &tag));
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_704_067_200_000), "2024-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn unix_ms_round_trips() {
        assert_eq!(unix_ms(from_unix_ms(1_709_640_000_123)), 1_709_640_000_123);
        assert_eq!(unix_ms(from_unix_ms(-5)), 0);
    }
}
