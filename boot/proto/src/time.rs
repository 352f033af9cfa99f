//! Calendar time from the firmware clock to Unix seconds (the calendar
//! arithmetic is `capos_text::civil`'s).

use capos_text::civil::days_from_civil;

/// UEFI's "timezone unspecified" marker (EFI_UNSPECIFIED_TIMEZONE).
pub const UNSPECIFIED_TIMEZONE: i16 = 0x07ff;

/// Unix time of a UEFI `EFI_TIME`. UEFI defines local = UTC - timezone
/// (minutes); an unspecified timezone is taken as UTC. Returns `None` for a
/// date the firmware should never produce.
pub fn unix_seconds(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8, timezone: i16) -> Option<i64> {
    if !(1900..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day)
        || hour > 23 || minute > 59 || second > 59
    {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let mut t = days * 86400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64;
    if timezone != UNSPECIFIED_TIMEZONE {
        if !(-1440..=1440).contains(&timezone) {
            return None;
        }
        t += timezone as i64 * 60;
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0, UNSPECIFIED_TIMEZONE), Some(0));
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0, 0), Some(951_868_800));
        assert_eq!(unix_seconds(2026, 11, 23, 1, 17, 7, UNSPECIFIED_TIMEZONE), Some(1_795_396_627));
        // Local 02:00 at timezone -60 (UTC+1 in UEFI's sign convention) is 01:00 UTC.
        assert_eq!(unix_seconds(2000, 3, 1, 2, 0, 0, -60), Some(951_868_800 + 3600));
        assert_eq!(unix_seconds(2000, 13, 1, 0, 0, 0, 0), None);
        assert_eq!(unix_seconds(2000, 1, 1, 24, 0, 0, 0), None);
        assert_eq!(unix_seconds(2000, 1, 1, 0, 0, 0, 5000), None);
    }
}
