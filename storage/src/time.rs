//! Timestamps that say where they came from.
//!
//! Why provenance: a time read from a battery-backed RTC, from a synchronized
//! wall clock, from `SOURCE_DATE_EPOCH` at image build, or from a host file's
//! mtime mean different things, and a format that stores no time at all must
//! say "unknown" rather than invent zero. `File.stat` reports both the value
//! and its provenance.

/// Where a timestamp came from. Stored on disk as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provenance {
    /// No time is known; the value is meaningless (zero).
    Unknown,
    /// The kernel's wall clock (RTC-seeded, advanced by the timebase).
    WallClock,
    /// Read directly from the real-time clock.
    Rtc,
    /// `SOURCE_DATE_EPOCH` at image build time (reproducible builds).
    SourceDateEpoch,
    /// Copied from the modification time of a host file at image build time.
    HostFileMtime,
    /// A FAT directory entry (two-second resolution, no time zone).
    FatDirectoryEntry,
}

impl Provenance {
    pub fn to_byte(self) -> u8 {
        match self {
            Provenance::Unknown => 0,
            Provenance::WallClock => 1,
            Provenance::Rtc => 2,
            Provenance::SourceDateEpoch => 3,
            Provenance::HostFileMtime => 4,
            Provenance::FatDirectoryEntry => 5,
        }
    }

    pub fn from_byte(byte: u8) -> Option<Provenance> {
        Some(match byte {
            0 => Provenance::Unknown,
            1 => Provenance::WallClock,
            2 => Provenance::Rtc,
            3 => Provenance::SourceDateEpoch,
            4 => Provenance::HostFileMtime,
            5 => Provenance::FatDirectoryEntry,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Provenance::Unknown => "unknown",
            Provenance::WallClock => "wall-clock",
            Provenance::Rtc => "rtc",
            Provenance::SourceDateEpoch => "source-date-epoch",
            Provenance::HostFileMtime => "host-file-mtime",
            Provenance::FatDirectoryEntry => "fat-directory-entry",
        }
    }
}

/// Nanoseconds since the Unix epoch plus where that number came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    pub unix_nanos: i64,
    pub provenance: Provenance,
}

impl Timestamp {
    pub const UNKNOWN: Timestamp = Timestamp { unix_nanos: 0, provenance: Provenance::Unknown };

    pub fn new(unix_nanos: i64, provenance: Provenance) -> Self {
        Self { unix_nanos, provenance }
    }

    /// Decode the on-disk pair; an unknown provenance byte is corruption.
    pub fn decode(unix_nanos: i64, provenance: u8) -> Result<Self, crate::StorageError> {
        let provenance = Provenance::from_byte(provenance).ok_or(crate::StorageError::Corrupt {
            what: "unknown timestamp provenance byte",
            detail: provenance as u64,
        })?;
        if provenance == Provenance::Unknown && unix_nanos != 0 {
            return Err(crate::StorageError::Corrupt {
                what: "timestamp with unknown provenance must be zero",
                detail: unix_nanos as u64,
            });
        }
        Ok(Self { unix_nanos, provenance })
    }
}

/// A time source handed to a writable engine by its caller.
pub trait Clock {
    fn now(&mut self) -> Timestamp;
}

/// A clock that always answers the same time (image builds, tests).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&mut self) -> Timestamp {
        self.0
    }
}

/// A clock that advances by a fixed step on every reading (tests).
#[derive(Clone, Copy, Debug)]
pub struct SteppingClock {
    pub next: Timestamp,
    pub step_nanos: i64,
}

impl Clock for SteppingClock {
    fn now(&mut self) -> Timestamp {
        let now = self.next;
        self.next.unix_nanos = self.next.unix_nanos.saturating_add(self.step_nanos);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_bytes_round_trip_and_reject_unknown() {
        for byte in 0..=255u8 {
            match Provenance::from_byte(byte) {
                Some(p) => assert_eq!(p.to_byte(), byte),
                None => assert!(byte > 5),
            }
        }
        assert!(Timestamp::decode(5, 0).is_err());
        assert!(Timestamp::decode(0, 0).is_ok());
        assert!(Timestamp::decode(5, 9).is_err());
    }
}
