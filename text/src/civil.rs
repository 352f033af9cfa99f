//! The civil calendar: the proleptic Gregorian calendar in UTC, to and
//! from days and seconds since 1970-01-01. One copy for the loader (UEFI
//! time to Unix seconds), the kernel (the CMOS clock, the prompt's
//! `time`), the storage formats (FAT directory-entry dates) and userspace
//! (the shell's `stat`, http-files' HTTP dates).
//!
//! Rules:
//! - Days are counted from 1970-01-01 (day 0), negative before it; every
//!   `i64` day count the callers can produce (seconds / 86,400) maps to a
//!   date and back without overflow or panic.
//! - Dates are proleptic Gregorian (the leap rule of 1582 applied to every
//!   year, year 0 exists), as in ISO 8601 and H. Hinnant's `chrono`
//!   algorithms, which these are: eras of 400 years (146,097 days) counted
//!   from 0000-03-01, so the leap day ends a year of the era.
//! - No time zones: a caller with a local time (UEFI, FAT) says how it
//!   maps to UTC itself.
//! - [`days_from_civil`] does not check its date; callers that read dates
//!   from outside check them with [`days_in_month`] first.

/// Seconds in a civil day (no leap seconds, as in Unix time).
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of the date `year`-`month`-`day` (month 1..=12,
/// day 1..=31).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1; // [0, 365], from March 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// (year, month 1..=12, day 1..=31) of the day `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// Whether `year` has a 29 February.
pub fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// How many days `month` (1..=12) of `year` has; 0 for a month that does
/// not exist.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
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

/// The UTC date and time of Unix second `secs`.
pub fn from_unix(secs: i64) -> DateTime {
    let days = secs.div_euclid(SECONDS_PER_DAY);
    let rem = secs.rem_euclid(SECONDS_PER_DAY) as u32;
    let (year, month, day) = civil_from_days(days);
    DateTime { year, month, day, hour: rem / 3600, minute: rem / 60 % 60, second: rem % 60 }
}

/// The Unix second of `t` (not checked: see the module rules).
pub fn to_unix(t: &DateTime) -> i64 {
    days_from_civil(t.year, t.month, t.day) * SECONDS_PER_DAY + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(from_unix(0), DateTime { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 });
        let t = from_unix(1_795_396_627);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2026, 11, 23, 1, 17, 7));
        assert_eq!(from_unix(951_782_400).day, 29, "2000-02-29 exists");
        assert_eq!(days_from_civil(1980, 1, 1) * SECONDS_PER_DAY, 315_532_800);
        assert_eq!(days_from_civil(2000, 3, 1) * SECONDS_PER_DAY, 951_868_800);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(days_from_civil(0, 3, 1)), (0, 3, 1), "year 0 exists");
        assert_eq!(civil_from_days(days_from_civil(-1, 12, 31) + 1), (0, 1, 1));
    }

    #[test]
    fn every_day_of_two_eras_matches_a_naive_count_both_ways() {
        // From 1600-01-01, 800 years: century leap rules both ways.
        let (mut y, mut m, mut d) = (1600i64, 1u32, 1u32);
        let start = days_from_civil(1600, 1, 1);
        for days in start..start + 2 * 146_097 {
            assert_eq!(civil_from_days(days), (y, m, d));
            assert_eq!(days_from_civil(y, m, d), days);
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert_eq!((y, m, d), (2400, 1, 1));
    }

    #[test]
    fn round_trips_at_the_edges() {
        for s in [-86_401i64, -1, 0, 951_782_400, 4_102_444_800, 1_795_396_627, 253_402_300_799] {
            assert_eq!(to_unix(&from_unix(s)), s);
        }
        // Every i64 nanosecond time, as seconds, has a date (http-files
        // and the shell format any time a file reports).
        for s in [i64::MIN / 1_000_000_000, i64::MAX / 1_000_000_000] {
            assert_eq!(to_unix(&from_unix(s)), s);
        }
        let extreme = i64::MAX / SECONDS_PER_DAY;
        let (y, m, d) = civil_from_days(extreme);
        assert_eq!(days_from_civil(y, m, d), extreme);
        let (y, m, d) = civil_from_days(i64::MIN / SECONDS_PER_DAY);
        assert_eq!(days_from_civil(y, m, d), i64::MIN / SECONDS_PER_DAY);
    }

    #[test]
    fn month_lengths() {
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 0), 0);
        assert_eq!(days_in_month(2023, 13), 0);
        assert_eq!((1..=12).map(|m| days_in_month(2023, m)).sum::<u32>(), 365);
        assert_eq!((1..=12).map(|m| days_in_month(2024, m)).sum::<u32>(), 366);
    }
}
