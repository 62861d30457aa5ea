//! Time as hub and node record it: [`Timestamp`] in records and answers (RFC 3339 in UTC on
//! the wire and on disk), Unix milliseconds only in scheduling keys; dates clerks type are
//! Vietnamese days (`edxml::datetime::VIETNAM_OFFSET`, the one UTC+7 of the code base).
//!
//! Invariant: a stored time that cannot be read is an error naming it, never "now".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use edxml::datetime::VIETNAM_OFFSET as VIETNAM;

/// A moment, kept in UTC; written as RFC 3339 (`2026-11-23T01:00:00Z`, fractions of a second
/// only when there are some), which is also how records stored before this type read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A time that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 time (e.g. 2026-11-23T08:00:00+07:00)")]
pub struct BadTimestamp(pub String);

impl Timestamp {
    /// Now.
    pub fn now() -> Timestamp {
        Timestamp(OffsetDateTime::now_utc())
    }

    /// The moment `t` (any offset).
    pub fn from_offset(t: OffsetDateTime) -> Timestamp {
        Timestamp(t.to_offset(time::UtcOffset::UTC))
    }

    /// Unix milliseconds (saturating before 1970 and far in the future).
    pub fn from_unix_ms(ms: u64) -> Timestamp {
        let nanos = i128::from(ms) * 1_000_000;
        Timestamp(
            OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    /// The moment as a `time` value in UTC.
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        self.0
    }

    /// Unix milliseconds (0 before 1970).
    pub fn unix_ms(self) -> u64 {
        unix_ms(self.0)
    }

    /// Unix nanoseconds, for ordering.
    pub fn unix_nanos(self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// Parses an RFC 3339 time.
    pub fn parse(s: &str) -> Result<Timestamp, BadTimestamp> {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map(Timestamp::from_offset)
            .map_err(|_| BadTimestamp(s.to_string()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that widths like `{:<24}` line columns up.
        match self.0.format(&Rfc3339) {
            Ok(s) => f.pad(&s),
            Err(_) => f.pad(&self.0.to_string()),
        }
    }
}

impl FromStr for Timestamp {
    type Err = BadTimestamp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp::from_offset(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    unix_ms(OffsetDateTime::now_utc())
}

/// A time in Unix milliseconds (0 before 1970).
pub fn unix_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A clerk's date or time that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBound {
    #[error("{0:?} is not a date (YYYY-MM-DD) or an RFC 3339 time (2026-11-23T08:00:00+07:00)")]
    Unreadable(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// A clerk's time bound: an RFC 3339 time, or a date `YYYY-MM-DD` (also `YYYY/MM/DD`) meaning
/// the start of that day in Vietnam (UTC+7) — or, with `end_of_day`, the start of the next
/// day, so that "until 2026-11-23" includes the whole of the 23rd. Unix milliseconds.
pub fn parse_bound(s: &str, end_of_day: bool) -> Result<u64, BadBound> {
    let s = s.trim();
    if let Ok(t) = Timestamp::parse(s) {
        return Ok(t.unix_ms());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(&s.replace('/', "-"), &format)
        .map_err(|_| BadBound::Unreadable(s.to_string()))?;
    let day = if end_of_day {
        date.next_day()
            .ok_or_else(|| BadBound::OutOfRange(s.to_string()))?
    } else {
        date
    };
    Ok(unix_ms(day.midnight().assume_offset(VIETNAM)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_what_was_stored_as_strings_and_write_it_back_unchanged() {
        for stored in ["2026-11-23T01:00:00Z", "2026-11-23T01:00:00.25Z"] {
            let t: Timestamp = serde_json::from_str(&format!("{stored:?}")).unwrap();
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("{stored:?}"));
            assert_eq!(t.to_string(), stored);
        }
        let local = Timestamp::parse("2026-11-23T08:00:00+07:00").unwrap();
        assert_eq!(local.to_string(), "2026-11-23T01:00:00Z");
        assert_eq!(Timestamp::from_unix_ms(local.unix_ms()), local);
        let e = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(e.to_string().contains("not an RFC 3339 time"), "{e}");
        assert!(Timestamp::parse("2026-11-23T01:00:00Z").unwrap() < Timestamp::now());
    }

    #[test]
    fn round_trips() {
        assert_eq!(
            Timestamp::from_unix_ms(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_ms(1_500).to_string(),
            "1970-01-01T00:00:01.5Z"
        );
        let now = now_ms();
        let back = Timestamp::parse(&Timestamp::from_unix_ms(now).to_string()).unwrap();
        assert_eq!(back.unix_ms(), now);
    }

    fn ms_rfc3339(ms: u64) -> String {
        Timestamp::from_unix_ms(ms).to_string()
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
        assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
    }
}
