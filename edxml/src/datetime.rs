//! edXML dates (`yyyy/MM/dd`) and timestamps (`yyyy/MM/dd HH:mm:ss`, Vietnam time UTC+7).
//!
//! Invariants: parsing is exact (zero-padded fields, separators in place, no surrounding
//! spaces, years 0001–9999) and formatting gives back the same text, so a value survives any
//! number of write/read cycles unchanged. A timestamp carries no zone on the wire: it is always
//! local time in Vietnam (UTC+07:00, no daylight saving).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Vietnam's offset from UTC (no daylight saving time).
pub const VIETNAM_OFFSET: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Why a date or timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("invalid date {value:?}: expected yyyy/MM/dd, e.g. 2015/09/30")]
    Date { value: String },
    #[error("invalid timestamp {value:?}: expected yyyy/MM/dd HH:mm:ss, e.g. 2015/09/20 11:08:36")]
    DateTime { value: String },
}

/// A calendar date written `yyyy/MM/dd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdxmlDate(Date);

/// A timestamp written `yyyy/MM/dd HH:mm:ss` in Vietnam local time (UTC+7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdxmlDateTime(PrimitiveDateTime);

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
    })
}

fn parse_date_bytes(b: &[u8]) -> Option<Date> {
    if b.len() != 10 || b[4] != b'/' || b[7] != b'/' {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    if year == 0 {
        return None;
    }
    let month = Month::try_from(u8::try_from(digits(&b[5..7])?).ok()?).ok()?;
    let day = u8::try_from(digits(&b[8..10])?).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

fn write_date(f: &mut fmt::Formatter<'_>, d: Date) -> fmt::Result {
    write!(
        f,
        "{:04}/{:02}/{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    )
}

impl EdxmlDate {
    /// Parses `yyyy/MM/dd` exactly.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        parse_date_bytes(s.as_bytes())
            .map(Self)
            .ok_or_else(|| DateError::Date {
                value: s.to_owned(),
            })
    }

    /// Wraps a date; `None` when the year is outside 1–9999 (not representable in `yyyy`).
    pub fn new(date: Date) -> Option<Self> {
        (1..=9999).contains(&date.year()).then_some(Self(date))
    }

    /// The calendar date.
    pub fn date(&self) -> Date {
        self.0
    }

    /// Today's date in Vietnam.
    pub fn today() -> Self {
        Self(EdxmlDateTime::now().0.date())
    }
}

impl EdxmlDateTime {
    /// Parses `yyyy/MM/dd HH:mm:ss` exactly.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        let err = || DateError::DateTime {
            value: s.to_owned(),
        };
        let b = s.as_bytes();
        if b.len() != 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
            return Err(err());
        }
        let date = parse_date_bytes(&b[0..10]).ok_or_else(err)?;
        let part = |r: std::ops::Range<usize>| -> Result<u8, DateError> {
            digits(&b[r])
                .and_then(|v| u8::try_from(v).ok())
                .ok_or_else(err)
        };
        let time =
            Time::from_hms(part(11..13)?, part(14..16)?, part(17..19)?).map_err(|_| err())?;
        Ok(Self(PrimitiveDateTime::new(date, time)))
    }

    /// The current time in Vietnam, truncated to whole seconds.
    pub fn now() -> Self {
        Self::from_offset(OffsetDateTime::now_utc())
    }

    /// Converts any instant to Vietnam local time, truncated to whole seconds.
    pub fn from_offset(t: OffsetDateTime) -> Self {
        let local = t.to_offset(VIETNAM_OFFSET);
        let time =
            Time::from_hms(local.hour(), local.minute(), local.second()).unwrap_or(Time::MIDNIGHT);
        Self(PrimitiveDateTime::new(local.date(), time))
    }

    /// The local (UTC+7) date and time as written.
    pub fn local(&self) -> PrimitiveDateTime {
        self.0
    }

    /// The instant, with its UTC+7 offset attached.
    pub fn to_offset_date_time(&self) -> OffsetDateTime {
        self.0.assume_offset(VIETNAM_OFFSET)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_timestamp(&self) -> i64 {
        self.to_offset_date_time().unix_timestamp()
    }
}

impl fmt::Display for EdxmlDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_date(f, self.0)
    }
}

impl fmt::Display for EdxmlDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_date(f, self.0.date())?;
        write!(
            f,
            " {:02}:{:02}:{:02}",
            self.0.hour(),
            self.0.minute(),
            self.0.second()
        )
    }
}

impl FromStr for EdxmlDate {
    type Err = DateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl FromStr for EdxmlDateTime {
    type Err = DateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for EdxmlDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for EdxmlDateTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let d = EdxmlDate::parse("2015/09/30").unwrap();
        assert_eq!(d.to_string(), "2015/09/30");
        assert_eq!(d.date().day(), 30);
        for bad in [
            "2015/9/30",
            "2015-09-30",
            "2015/02/30",
            "0000/01/01",
            " 2015/09/30",
            "2015/09/3a",
            "",
            "2015/13/01",
        ] {
            assert!(EdxmlDate::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn timestamps_round_trip_in_vietnam_time() {
        let t = EdxmlDateTime::parse("2015/09/20 11:08:36").unwrap();
        assert_eq!(t.to_string(), "2015/09/20 11:08:36");
        // 11:08:36 in Hanoi is 04:08:36 UTC.
        assert_eq!(t.to_offset_date_time().to_offset(UtcOffset::UTC).hour(), 4);
        for bad in [
            "2015/09/20 24:00:00",
            "2015/09/20T11:08:36",
            "2015/09/20 11:08",
            "2015/09/20 11:08:36+07",
            "2015/09/20 11:60:00",
        ] {
            assert!(EdxmlDateTime::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn now_is_vietnam_time_in_whole_seconds() {
        let now = EdxmlDateTime::now();
        let utc = OffsetDateTime::now_utc();
        let diff = (now.unix_timestamp() - utc.unix_timestamp()).abs();
        assert!(diff <= 2, "now() is {diff} s away from the clock");
        assert_eq!(now.local().nanosecond(), 0);
        assert_eq!(EdxmlDateTime::parse(&now.to_string()).unwrap(), now);
    }

    #[test]
    fn from_offset_converts_to_utc_plus_7() {
        let utc = time::macros::datetime!(2024-12-31 20:30:00 UTC);
        assert_eq!(
            EdxmlDateTime::from_offset(utc).to_string(),
            "2025/01/01 03:30:00"
        );
    }
}
