//! Times, durations and counts as pages show them: Vietnam time (UTC+7, no daylight saving),
//! day/month/year order, Vietnamese units.

use exchange::clock::Timestamp;
use time::{OffsetDateTime, UtcOffset};

const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// The offset pages show times in.
pub fn vietnam() -> UtcOffset {
    VIETNAM
}

/// `04/12/2026 19:40:05` in Vietnam time.
pub fn time(t: Timestamp) -> String {
    let t = t.to_offset_date_time().to_offset(VIETNAM);
    format!(
        "{:02}/{:02}/{} {:02}:{:02}:{:02}",
        t.day(),
        u8::from(t.month()),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `19:40` in Vietnam time.
pub fn hour_minute(t: Timestamp) -> String {
    let t = t.to_offset_date_time().to_offset(VIETNAM);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// Midnight (Vietnam time) of the day containing `t`.
pub fn start_of_day(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(VIETNAM).replace_time(time::Time::MIDNIGHT)
}

/// Monday midnight (Vietnam time) of the week containing `t`.
pub fn start_of_week(t: OffsetDateTime) -> OffsetDateTime {
    let d = start_of_day(t);
    d - time::Duration::days(i64::from(d.weekday().number_days_from_monday()))
}

/// A duration in whole seconds as `45 giây`, `12 phút`, `3 giờ 5 phút`, `2 ngày 4 giờ`.
pub fn age(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} ngày {h} giờ")
    } else if h > 0 {
        format!("{h} giờ {m} phút")
    } else if m > 0 {
        format!("{m} phút")
    } else {
        format!("{secs} giây")
    }
}

/// `1.234.567`: thousands separated by dots, as Vietnamese writes them.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = Timestamp::parse("2026-12-04T12:40:05Z").unwrap();
        assert_eq!(time(t), "04/12/2026 19:40:05");
        assert_eq!(hour_minute(t), "19:40");
        assert_eq!(age(45), "45 giây");
        assert_eq!(age(12 * 60 + 3), "12 phút");
        assert_eq!(age(3 * 3600 + 5 * 60), "3 giờ 5 phút");
        assert_eq!(age(2 * 86_400 + 4 * 3600), "2 ngày 4 giờ");
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1.234.567");
        assert_eq!(count(100), "100");
        // 2026-12-04 is a Friday; its week starts Monday 30/11 (Vietnam time).
        let w = start_of_week(t.to_offset_date_time());
        assert_eq!(time(Timestamp::from_offset(w)), "30/11/2026 00:00:00");
        // 23:30 UTC is already the next day in Vietnam.
        let late = Timestamp::parse("2026-12-04T23:30:00Z").unwrap();
        let d = start_of_day(late.to_offset_date_time());
        assert_eq!(time(Timestamp::from_offset(d)), "05/12/2026 00:00:00");
    }
}
