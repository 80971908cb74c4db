//! Event-time arithmetic on epoch milliseconds.
//!
//! The engine never reads a clock: every instant is an `i64` of milliseconds
//! since the Unix epoch (UTC) handed in by the caller. These helpers do the
//! calendar maths (hour of week, month end, RFC 3339 rendering) without any
//! time-zone database, so they are pure and cheap.

/// Milliseconds in one minute.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in one week.
pub const WEEK_MS: i64 = 7 * DAY_MS;

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day of week of an instant, 0 = Monday … 6 = Sunday, at a UTC offset in minutes.
pub fn weekday(ts_ms: i64, offset_minutes: i32) -> u32 {
    let days = (ts_ms + i64::from(offset_minutes) * MINUTE_MS).div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday (index 3).
    (days + 3).rem_euclid(7) as u32
}

/// Minute of the day (0..1440) of an instant at a UTC offset in minutes.
pub fn minute_of_day(ts_ms: i64, offset_minutes: i32) -> u32 {
    ((ts_ms + i64::from(offset_minutes) * MINUTE_MS).rem_euclid(DAY_MS) / MINUTE_MS) as u32
}

/// Hour of the week in UTC: 0 = Monday 00:00–01:00 … 167 = Sunday 23:00–24:00.
pub fn hour_of_week(ts_ms: i64) -> usize {
    (weekday(ts_ms, 0) * 24 + minute_of_day(ts_ms, 0) / 60) as usize
}

/// True when the UTC day of `ts_ms` is one of the last `days` days of its month.
pub fn is_month_end(ts_ms: i64, days: u32) -> bool {
    if days == 0 {
        return false;
    }
    let day = ts_ms.div_euclid(DAY_MS);
    let (y, m_now, d) = civil_from_days(day);
    if days < 28 {
        // One calendar conversion, not two (this runs per event and bucket).
        return d + days > days_in_month(y, m_now);
    }
    let (_, m_later, _) = civil_from_days(day + i64::from(days));
    m_now != m_later
}

/// A short label for an hour-of-week slot, e.g. `Sun 03:00`.
pub fn slot_label(ts_ms: i64) -> String {
    let wd = weekday(ts_ms, 0) as usize;
    let h = minute_of_day(ts_ms, 0) / 60;
    format!("{} {:02}:00", WEEKDAYS[wd % 7], h)
}

/// Renders epoch milliseconds as RFC 3339 UTC with milliseconds,
/// e.g. `2026-11-29T03:12:00.000Z`.
pub fn format_rfc3339(ts_ms: i64) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339(&mut s, ts_ms);
    s
}

/// Appends the RFC 3339 rendering of `ts_ms` to `out`.
pub fn write_rfc3339(out: &mut String, ts_ms: i64) {
    use std::fmt::Write;
    let days = ts_ms.div_euclid(DAY_MS);
    let rem = ts_ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let ms = rem % 1000;
    let secs = rem / 1000;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m,
        d,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ms
    );
}

/// Parses an RFC 3339 timestamp (any offset, optional fraction) into epoch ms.
///
/// Accepts `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; `t`/`z`/space are accepted as
/// the usual case variants. Fractions beyond milliseconds are truncated.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo as u32) as i64
        || h > 23
        || mi > 59
        || se > 60
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            ms *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 60 + om;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se.min(59) - offset_min * 60;
    Some(secs * 1000 + ms)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Serde helpers that render `i64` epoch milliseconds as RFC 3339 strings.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        super::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom("invalid RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_honours_offsets() {
        let t = parse_rfc3339("2026-11-29T14:03:12.345Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-29T14:03:12.345Z");
        assert_eq!(parse_rfc3339("2026-11-29T19:33:12.345+05:30"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-29T14:03:12Z"), Some(t - 345));
        assert_eq!(parse_rfc3339("2026-11-29T14:03:12.3456789Z"), Some(t));
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-11-29 14:03",
            "2026-11-29T14:03:12",
            "2026-11-29T14:03:12.Z",
            "x026-11-29T14:03:12Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn calendar_helpers_agree_with_known_dates() {
        // 2026-11-29 is a Sunday.
        let t = parse_rfc3339("2026-11-29T03:12:00Z").unwrap();
        assert_eq!(weekday(t, 0), 6);
        assert_eq!(slot_label(t), "Sun 03:00");
        assert_eq!(hour_of_week(t), 6 * 24 + 3);
        assert!(is_month_end(
            parse_rfc3339("2026-11-30T10:00:00Z").unwrap(),
            2
        ));
        assert!(is_month_end(t, 2));
        assert!(!is_month_end(
            parse_rfc3339("2026-11-28T10:00:00Z").unwrap(),
            2
        ));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn month_end_matches_the_two_conversion_definition_on_every_day() {
        // Leap years (2000, 2024), a century non-leap year (2100), pre-1970.
        for day in days_from_civil(1899, 12, 1)..days_from_civil(2101, 3, 31) {
            for days in [1u32, 2, 3, 7, 27, 28, 31] {
                let (_, now, _) = civil_from_days(day);
                let (_, later, _) = civil_from_days(day + i64::from(days));
                assert_eq!(
                    is_month_end(day * DAY_MS + 1, days),
                    now != later,
                    "{day} {days}"
                );
            }
        }
    }
}
