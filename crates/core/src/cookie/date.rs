//! The cookie-date algorithm of RFC 6265 section 5.1.1.

use time::{Date, Month, PrimitiveDateTime, Time};

fn is_delimiter(c: u8) -> bool {
    c == 0x09
        || (0x20..=0x2f).contains(&c)
        || (0x3b..=0x40).contains(&c)
        || (0x5b..=0x60).contains(&c)
        || (0x7b..=0x7e).contains(&c)
}

/// Parses `digits` as 1 or 2 (or up to `max`) digits followed by anything that is not a digit.
fn leading_digits(token: &[u8], min: usize, max: usize) -> Option<(u32, &[u8])> {
    let n = token.iter().take_while(|c| c.is_ascii_digit()).count();
    if n < min || n > max {
        return None;
    }
    let value = std::str::from_utf8(&token[..n]).ok()?.parse().ok()?;
    Some((value, &token[n..]))
}

fn time_of(token: &[u8]) -> Option<(u32, u32, u32)> {
    // hms-time = time-field ":" time-field ":" time-field, time-field = 1*2DIGIT, then anything.
    let (h, rest) = leading_digits(token, 1, 2)?;
    let rest = rest.strip_prefix(b":")?;
    let (m, rest) = leading_digits(rest, 1, 2)?;
    let rest = rest.strip_prefix(b":")?;
    let (s, rest) = leading_digits(rest, 1, 2)?;
    if rest.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some((h, m, s))
}

fn month_of(token: &[u8]) -> Option<Month> {
    if token.len() < 3 {
        return None;
    }
    let m = token[..3].to_ascii_lowercase();
    Some(match &m[..] {
        b"jan" => Month::January,
        b"feb" => Month::February,
        b"mar" => Month::March,
        b"apr" => Month::April,
        b"may" => Month::May,
        b"jun" => Month::June,
        b"jul" => Month::July,
        b"aug" => Month::August,
        b"sep" => Month::September,
        b"oct" => Month::October,
        b"nov" => Month::November,
        b"dec" => Month::December,
        _ => return None,
    })
}

/// Parses a cookie date (the `Expires` attribute) to seconds since the Unix epoch, or `None` when
/// the algorithm rejects it.
pub fn parse_cookie_date(input: &str) -> Option<i64> {
    let bytes = input.as_bytes();
    let mut time = None;
    let mut day = None;
    let mut month = None;
    let mut year = None;
    for token in bytes.split(|c| is_delimiter(*c)).filter(|t| !t.is_empty()) {
        if time.is_none() {
            if let Some(t) = time_of(token) {
                time = Some(t);
                continue;
            }
        }
        if day.is_none() {
            if let Some((d, rest)) = leading_digits(token, 1, 2) {
                if !rest.first().is_some_and(u8::is_ascii_digit) {
                    day = Some(d);
                    continue;
                }
            }
        }
        if month.is_none() {
            if let Some(m) = month_of(token) {
                month = Some(m);
                continue;
            }
        }
        if year.is_none() {
            if let Some((y, rest)) = leading_digits(token, 2, 4) {
                if !rest.first().is_some_and(u8::is_ascii_digit) {
                    year = Some(y);
                    continue;
                }
            }
        }
    }
    let (hour, minute, second) = time?;
    let day = day?;
    let month = month?;
    let mut year = year?;
    if (70..=99).contains(&year) {
        year += 1900;
    } else if year <= 69 {
        year += 2000;
    }
    if !(1..=31).contains(&day) || year < 1601 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let t = Time::from_hms(hour as u8, minute as u8, second as u8).ok()?;
    Some(
        PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        assert_eq!(
            parse_cookie_date("Wed, 09 Jun 2021 10:18:14 GMT"),
            Some(1_623_233_894)
        );
        assert_eq!(
            parse_cookie_date("Thursday, 01-Jan-1970 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            parse_cookie_date("Wednesday, 01-Jan-10 00:00:00 GMT"),
            Some(1_262_304_000)
        );
        assert_eq!(
            parse_cookie_date("Mon Dec 10 16:32:30 2007 GMT"),
            Some(1_197_304_350)
        );
        assert_eq!(parse_cookie_date("Thu, 31 Feb 2010 00:00:00 GMT"), None);
        assert_eq!(parse_cookie_date("garbage"), None);
    }
}
