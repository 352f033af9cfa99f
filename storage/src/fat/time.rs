//! FAT directory-entry times as [`Timestamp`]s.
//!
//! Why this shape: a FAT entry stores local wall-clock fields with no time
//! zone, so they are read as UTC (the only reading that needs no outside
//! knowledge) and labelled [`Provenance::FatDirectoryEntry`] so nobody
//! mistakes them for a synchronized clock. The fields:
//!
//! - date (16 bits): year since 1980 (bits 15..9), month 1..=12 (8..5),
//!   day 1..=31 (4..0);
//! - time (16 bits): hour 0..=23 (15..11), minute 0..=59 (10..5),
//!   seconds / 2 in 0..=29 (4..0): two-second resolution;
//! - creation only: a byte of 10 ms units, 0..=199, added to the creation
//!   time (so creation times have 10 ms resolution).
//!
//! A zero date (the tools write it when they keep no time), or any field
//! out of range, or a day that the month does not have, reads as
//! [`Timestamp::UNKNOWN`]: an invented 1980-01-01 would be a lie.

use crate::time::{Provenance, Timestamp};
use capos_text::civil::{days_from_civil, days_in_month};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The timestamp of a FAT date, time and 10 ms count (0 for fields that
/// have none, like the modification time).
pub fn fat_timestamp(date: u16, time: u16, tens_of_ms: u8) -> Timestamp {
    let year = 1980 + i64::from(date >> 9);
    let month = u32::from((date >> 5) & 0x0F);
    let day = u32::from(date & 0x1F);
    let hour = i64::from(time >> 11);
    let minute = i64::from((time >> 5) & 0x3F);
    let seconds = i64::from(time & 0x1F) * 2;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || tens_of_ms > 199
    {
        return Timestamp::UNKNOWN;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + seconds;
    let nanos = secs * NANOS_PER_SECOND + i64::from(tens_of_ms) * 10_000_000;
    Timestamp::new(nanos, Provenance::FatDirectoryEntry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: u16, m: u16, d: u16) -> u16 {
        ((y - 1980) << 9) | (m << 5) | d
    }
    fn time(h: u16, m: u16, s: u16) -> u16 {
        (h << 11) | (m << 5) | (s / 2)
    }
    fn secs(t: Timestamp) -> i64 {
        assert_eq!(t.provenance, Provenance::FatDirectoryEntry);
        t.unix_nanos / NANOS_PER_SECOND
    }

    #[test]
    fn known_dates() {
        // 1980-01-01 00:00:00 UTC = 315532800.
        assert_eq!(secs(fat_timestamp(date(1980, 1, 1), 0, 0)), 315_532_800);
        // 2024-01-02 03:04:06 UTC = 1704164646 (the image script's known time).
        assert_eq!(secs(fat_timestamp(date(2024, 1, 2), time(3, 4, 6), 0)), 1_704_164_646);
        // Leap day and the last representable year.
        assert_eq!(secs(fat_timestamp(date(2000, 2, 29), time(12, 0, 0), 0)), 951_825_600);
        assert_eq!(secs(fat_timestamp(date(2107, 12, 31), time(23, 59, 58), 0)), 4_354_819_198);
    }

    #[test]
    fn creation_time_has_ten_millisecond_resolution() {
        let base = fat_timestamp(date(2023, 11, 14), time(22, 13, 20), 0);
        let later = fat_timestamp(date(2023, 11, 14), time(22, 13, 20), 137);
        assert_eq!(later.unix_nanos - base.unix_nanos, 1_370_000_000);
        assert_eq!(secs(base), 1_700_000_000);
    }

    #[test]
    fn zero_or_invalid_reads_as_unknown() {
        assert_eq!(fat_timestamp(0, 0, 0), Timestamp::UNKNOWN);
        assert_eq!(fat_timestamp(0, time(1, 2, 4), 0), Timestamp::UNKNOWN);
        assert_eq!(fat_timestamp(date(2023, 13, 1), 0, 0), Timestamp::UNKNOWN);
        assert_eq!(fat_timestamp(date(2023, 0, 1), 0, 0), Timestamp::UNKNOWN);
        assert_eq!(fat_timestamp(date(2023, 2, 29), 0, 0), Timestamp::UNKNOWN);
        assert_eq!(fat_timestamp(date(2023, 4, 31), 0, 0), Timestamp::UNKNOWN);
        assert_eq!(fat_timestamp(date(2023, 1, 1), time(24, 0, 0), 0), Timestamp::UNKNOWN);
        assert_eq!(fat_timestamp(date(2023, 1, 1), time(0, 60, 0), 0), Timestamp::UNKNOWN);
        assert_eq!(fat_timestamp(date(2023, 1, 1), 0, 200), Timestamp::UNKNOWN);
        // Every 16-bit pair decodes without panicking.
        for d in (0..=u16::MAX).step_by(7) {
            for t in (0..=u16::MAX).step_by(1021) {
                let _ = fat_timestamp(d, t, (d % 256) as u8);
            }
        }
    }
}
