//! HTTP-date parsing (RFC 9110 5.6.7) as a cache reads Date, Expires and Last-Modified.
//!
//! The three formats are accepted, as the RFC requires of recipients: IMF-fixdate
//! (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37
//! GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). A strict parse (`httpdate`) comes first; if
//! it refuses, the value is read again leniently in two ways only, as Varnish and Traffic
//! Server do: names in any letter case (`THU`, `AUG`, `gMT`), and a day name that does not
//! agree with the date (the date wins). Anything else malformed stays invalid (a two-digit
//! year in IMF-fixdate, `UTC` or another zone, missing commas, doubled spaces, one-digit
//! hours), and an invalid Expires means already expired (RFC 9111 5.3).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const LONG_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The instant `text` names, `None` if it is not an HTTP-date.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    httpdate::parse_http_date(text)
        .ok()
        .or_else(|| lenient(text))
}

fn lenient(text: &str) -> Option<SystemTime> {
    let fields: Vec<&str> = text.split(' ').collect();
    let (day, month, year, clock) = match fields.as_slice() {
        // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
        [name, day, month, year, clock, zone] if year.len() == 4 => {
            one_of(&DAYS, name.strip_suffix(',')?)?;
            one_of(&["gmt"], zone)?;
            (two_digits(day)?, month_number(month)?, number(year)?, clock)
        }
        // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`
        [name, date, clock, zone] => {
            one_of(&LONG_DAYS, name.strip_suffix(',')?)?;
            one_of(&["gmt"], zone)?;
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || year.len() != 2 {
                return None;
            }
            let year = number(year)?;
            // As the strict parser reads it: 00-69 are this century, 70-99 the last.
            let year = if year < 70 { 2000 + year } else { 1900 + year };
            (two_digits(day)?, month_number(month)?, year, clock)
        }
        // asctime: `Sun Nov  6 08:49:37 1994` (a one-digit day is padded with a space)
        [name, month, "", day, clock, year] if day.len() == 1 && year.len() == 4 => {
            one_of(&DAYS, name)?;
            (number(day)?, month_number(month)?, number(year)?, clock)
        }
        [name, month, day, clock, year] if day.len() == 2 && year.len() == 4 => {
            one_of(&DAYS, name)?;
            (two_digits(day)?, month_number(month)?, number(year)?, clock)
        }
        _ => return None,
    };
    let mut parts = clock.split(':');
    let (hour, minute, second) = (
        two_digits(parts.next()?)?,
        two_digits(parts.next()?)?,
        two_digits(parts.next()?)?,
    );
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_since_epoch(year, month, day)?;
    let seconds = days
        .checked_mul(86_400)?
        .checked_add(hour * 3600 + minute * 60 + second)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// `Some` if `name` is one of `names`, in any letter case.
fn one_of(names: &[&str], name: &str) -> Option<()> {
    names
        .iter()
        .any(|known| known.eq_ignore_ascii_case(name))
        .then_some(())
}

fn month_number(name: &str) -> Option<u64> {
    let index = MONTHS
        .iter()
        .position(|month| month.eq_ignore_ascii_case(name))?;
    u64::try_from(index).ok().map(|index| index + 1)
}

fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn two_digits(digits: &str) -> Option<u64> {
    (digits.len() == 2).then(|| number(digits)).flatten()
}

/// Days from 1970-01-01 to a valid civil date on or after it (Howard Hinnant's algorithm).
fn days_since_epoch(year: u64, month: u64, day: u64) -> Option<u64> {
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > month_length(year, month) {
        return None;
    }
    let (year, month) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = year / 400;
    let year_of_era = year % 400;
    let day_of_year = (153 * month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

fn month_length(year: u64, month: u64) -> u64 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Option<SystemTime> {
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    }

    /// 1994-11-06T08:49:37Z, RFC 9110 5.6.7's example.
    const EXAMPLE: u64 = 784_111_777;
    /// 2050-08-18T02:01:18Z, a Thursday.
    const LATER: u64 = 2_544_400_878;

    #[test]
    fn rfc9110_5_6_7_all_three_formats_are_accepted() {
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), at(EXAMPLE));
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), at(EXAMPLE));
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), at(EXAMPLE));
        assert_eq!(parse("Thursday, 18-Aug-50 02:01:18 GMT"), at(LATER));
    }

    #[test]
    fn names_in_the_wrong_case_are_read() {
        assert_eq!(parse("THU, 18 Aug 2050 02:01:18 GMT"), at(LATER));
        assert_eq!(parse("Thu, 18 AUG 2050 02:01:18 GMT"), at(LATER));
        assert_eq!(parse("Thu, 18 Aug 2050 02:01:18 gMT"), at(LATER));
        assert_eq!(parse("sunday, 06-nov-94 08:49:37 gmt"), at(EXAMPLE));
    }

    #[test]
    fn a_day_name_that_disagrees_with_the_date_is_ignored() {
        // 2050-08-08 was a Monday.
        assert_eq!(parse("Thu Aug  8 02:01:18 2050"), at(LATER - 10 * 86_400));
        assert_eq!(parse("Mon, 18 Aug 2050 02:01:18 GMT"), at(LATER));
        assert_eq!(parse("Wed Aug 18 02:01:18 2050"), at(LATER));
    }

    #[test]
    fn other_malformed_dates_stay_invalid() {
        for text in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "Thu, 31 Feb 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 24:01:18 GMT",
            "Xyz, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 Agu 2050 02:01:18 GMT",
            "Thu Aug 8 02:01:18 2050",
            "0",
            "",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_civil_calendar_is_right_at_its_edges() {
        assert_eq!(days_since_epoch(1970, 1, 1), Some(0));
        assert_eq!(days_since_epoch(2000, 3, 1), Some(11_017));
        assert_eq!(parse("Tue, 29 Feb 2000 00:00:00 gmt"), at(11_016 * 86_400));
        assert_eq!(parse("Fri, 29 Feb 2001 00:00:00 gmt"), None);
        assert_eq!(days_since_epoch(1969, 12, 31), None);
    }
}
