//! The CMOS real-time clock's register values to a date: BCD decoding and
//! validation. The calendar arithmetic is `capos_text::civil`'s.

use capos_text::civil::DateTime;

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
    use capos_text::civil::to_unix;

    #[test]
    fn rtc_values() {
        assert_eq!(bcd(0x59), 59);
        assert_eq!(rtc_datetime(20, 26, 11, 23, 1, 17, 7).map(|d| to_unix(&d)), Some(1_795_396_627));
        assert_eq!(rtc_datetime(0, 26, 11, 23, 1, 17, 7).unwrap().year, 2026, "unknown century register means 20xx");
        assert!(rtc_datetime(20, 26, 13, 1, 0, 0, 0).is_none());
        assert!(rtc_datetime(20, 26, 1, 1, 24, 0, 0).is_none());
    }
}
