//! Dates as the protocols write them, in UTC: RFC 5322 for mail (`Sat, 28 Nov 2026
//! 08:30:00 +0000`) and RFC 9110's IMF-fixdate for HTTP and SIP (`... 08:30:00 GMT`).

use std::time::{SystemTime, UNIX_EPOCH};

/// An RFC 5322 date for mail headers.
pub fn rfc5322_date(t: SystemTime) -> String {
    format!("{} +0000", date_parts(t))
}

/// An HTTP (and SIP) date.
pub fn http_date(t: SystemTime) -> String {
    format!("{} GMT", date_parts(t))
}

/// The calendar date (year, month 1-12, day 1-31) of `t`, in UTC.
pub fn civil(t: SystemTime) -> (i64, u8, u8) {
    let days = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

/// A time in Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), for logs and tables.
pub fn datetime(secs: i64) -> String {
    let s = u64::try_from(secs).unwrap_or(0);
    let (year, month, day) = civil(UNIX_EPOCH + std::time::Duration::from_secs(s));
    let (h, m, sec) = (s % 86_400 / 3600, s % 3600 / 60, s % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{sec:02}")
}

/// `YYYY-MM-DD` (UTC midnight) as Unix seconds; `None` for anything else.
pub fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400;
    // 31 February is refused: the day must come back as written.
    let (y2, m2, d2) =
        civil(UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).ok()?));
    (y2 == year && i64::from(m2) == month && i64::from(d2) == day).then_some(secs)
}

fn date_parts(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let (year, month, day) = civil(t);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let weekday = DAYS[usize::try_from(days % 7).unwrap_or(0)];
    let month_name = MONTHS[usize::from(month.saturating_sub(1)).min(11)];
    format!("{weekday}, {day:02} {month_name} {year} {h:02}:{m:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(UNIX_EPOCH + Duration::from_secs(1_795_854_600)),
            "Sat, 28 Nov 2026 08:30:00 +0000"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            civil(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            (2000, 2, 29)
        );
        assert_eq!(datetime(1_795_854_600), "2026-11-28 08:30:00");
        assert_eq!(parse_day("2026-11-28"), Some(1_795_824_000));
        assert_eq!(parse_day("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_day("1970-01-01"), Some(0));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-11",
            "yesterday",
            "",
            "1969-12-31",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
