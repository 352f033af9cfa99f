//! Unix time to calendar date (UTC), and the CMOS RTC's BCD decoding.

/// (year, month, day) of `days` since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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

pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

pub fn from_unix(secs: i64) -> DateTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    DateTime { year, month, day, hour: rem / 3600, minute: rem / 60 % 60, second: rem % 60 }
}

pub fn to_unix(t: &DateTime) -> i64 {
    days_from_civil(t.year, t.month, t.day) * 86_400 + t.hour as i64 * 3600 + t.minute as i64 * 60 + t.second as i64
}

pub fn bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0xf)
}

/// Validate RTC register values (already converted from BCD and 12-hour).
pub fn rtc_datetime(century: u32, year: u32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<DateTime> {
    if year > 99 || !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let century = if (19..=29).contains(&century) { century } else { 20 };
    Some(DateTime { year: (century * 100 + year) as i64, month, day, hour, minute, second })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        assert_eq!(from_unix(0), DateTime { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 });
        let t = from_unix(1_795_396_627);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2026, 11, 23, 1, 17, 7));
        for s in [-86_401i64, 0, 951_782_400, 4_102_444_800, 1_795_396_627] {
            assert_eq!(to_unix(&from_unix(s)), s);
        }
        assert_eq!(from_unix(951_782_400).day, 29, "2000-02-29 exists");
    }

    #[test]
    fn rtc_values() {
        assert_eq!(bcd(0x59), 59);
        assert_eq!(rtc_datetime(20, 26, 11, 23, 1, 17, 7).map(|d| to_unix(&d)), Some(1_795_396_627));
        assert_eq!(rtc_datetime(0, 26, 11, 23, 1, 17, 7).unwrap().year, 2026, "unknown century register means 20xx");
        assert!(rtc_datetime(20, 26, 13, 1, 0, 0, 0).is_none());
        assert!(rtc_datetime(20, 26, 1, 1, 24, 0, 0).is_none());
    }
}
