//! Time as the node records it: RFC 3339 UTC strings in records and answers, Unix milliseconds
//! in scheduling keys.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    unix_ms(OffsetDateTime::now_utc())
}

/// A time in Unix milliseconds (0 before 1970).
pub fn unix_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A time as RFC 3339 in UTC.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Now as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// Unix milliseconds as RFC 3339 (UTC).
pub fn ms_rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(rfc3339)
        .unwrap_or_default()
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Vietnam's offset (UTC+7): calendar dates given by clerks are local dates.
const VIETNAM: time::UtcOffset = match time::UtcOffset::from_hms(7, 0, 0) {
    Ok(o) => o,
    Err(_) => time::UtcOffset::UTC,
};

/// A clerk's time bound: an RFC 3339 time, or a date `YYYY-MM-DD` (also `YYYY/MM/DD`) meaning
/// the start of that day in Vietnam (UTC+7) — or, with `end_of_day`, the start of the next
/// day, so that "until 2026-11-23" includes the whole of the 23rd. Unix milliseconds.
pub fn parse_bound(s: &str, end_of_day: bool) -> Result<u64, String> {
    let s = s.trim();
    if let Some(t) = parse_rfc3339(s) {
        return Ok(unix_ms(t));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(&s.replace('/', "-"), &format).map_err(|_| {
        format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time (2026-11-23T08:00:00+07:00)")
    })?;
    let day = if end_of_day {
        date.next_day()
            .ok_or_else(|| format!("{s:?} is out of range"))?
    } else {
        date
    };
    Ok(unix_ms(day.midnight().assume_offset(VIETNAM)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(ms_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(ms_rfc3339(1_500), "1970-01-01T00:00:01.5Z");
        let now = now_ms();
        let back = parse_rfc3339(&ms_rfc3339(now)).unwrap();
        assert_eq!(unix_ms(back), now);
    }

    #[test]
    fn bounds_are_vietnamese_days_or_exact_times() {
        // 2026-11-23 00:00 +07:00 = 2026-11-22T17:00:00Z.
        let start = parse_bound("2026-11-23", false).unwrap();
        assert_eq!(ms_rfc3339(start), "2026-11-22T17:00:00Z");
        assert_eq!(parse_bound("2026/11/23", false).unwrap(), start);
        let end = parse_bound("2026-11-23", true).unwrap();
        assert_eq!(end - start, 24 * 3600 * 1000);
        assert_eq!(
            ms_rfc3339(parse_bound("2026-11-23T08:00:00+07:00", false).unwrap()),
            "2026-11-23T01:00:00Z"
        );
        let e = parse_bound("yesterday", false).unwrap_err();
        assert!(e.contains("YYYY-MM-DD"), "{e}");
    }
}
