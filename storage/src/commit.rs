//! Two commit-record slots and a generation number: the commit rule
//! CAPOSWF1 and CAPOSST1 share, kept once (as redb keeps its two commit
//! slots in one header).
//!
//! The rules:
//! - Generation `g`'s commit record lives in slot `g % 2`, the block
//!   [`slot_lba`]`(g)` = 1 + g % 2 (block 0 is the superblock). A commit
//!   writes the slot the newest durable record is *not* in, so a torn write
//!   leaves that record alone.
//! - Mount ([`mount_newest`]) reads both slots and keeps the records that
//!   decode (a torn or empty slot is not one). It tries them newest first
//!   and mounts the first whose contents verify. A record that decodes but
//!   whose contents do not is passed over, and mount says which and why:
//!   whether that is damage or an unfinished commit is the format's call
//!   (CAPOSST1's single-flush feature makes it the latter).
//! - A device error ends the search: what a failing disk returns is not
//!   evidence about which commit is good.
//! - No commit follows generation `u64::MAX` ([`next_generation`]): it
//!   would wrap to 0 and lose to every older record.
//! - A device error under a mutation poisons the volume ([`Poison`]):
//!   memory may no longer match the disk, so every later call fails until
//!   a remount reads the disk again.

use crate::block::BlockDevice;
use crate::error::StorageError;
use crate::superblock::read_sector;
use alloc::vec::Vec;

/// Where generation `generation`'s commit record lives.
pub fn slot_lba(generation: u64) -> u64 {
    1 + generation % 2
}

/// Why a volume at generation `u64::MAX` cannot commit.
pub fn generation_exhausted() -> StorageError {
    StorageError::Corrupt { what: "commit generation is u64::MAX: no further commit is possible", detail: u64::MAX }
}

/// The generation after `generation`; never wraps.
pub fn next_generation(generation: u64) -> Result<u64, StorageError> {
    generation.checked_add(1).ok_or_else(generation_exhausted)
}

/// What [`mount_newest`] found.
pub struct Newest<R, T> {
    /// The record mounted.
    pub record: R,
    /// What its loader made of it.
    pub loaded: T,
    /// The generation and error of a newer record that was passed over.
    pub passed_over: Option<(u64, StorageError)>,
}

/// Read both commit slots with `decode(block, slot)`, and load the newest
/// record whose contents `load` accepts. `generation` names a record's
/// generation. Errors: a device error at once; otherwise, when no record
/// loads, the most telling error seen (a record whose checksum held but
/// whose fields did not, over a torn or empty slot).
pub fn mount_newest<D: BlockDevice, R, T>(
    device: &mut D,
    decode: impl Fn(&[u8], u64) -> Result<R, StorageError>,
    generation: impl Fn(&R) -> u64,
    mut load: impl FnMut(&mut D, &R) -> Result<T, StorageError>,
) -> Result<Newest<R, T>, StorageError> {
    let mut records = Vec::new();
    let mut last_error = StorageError::NoValidCommit;
    for slot in 0..2u64 {
        match decode(&read_sector(device, slot_lba(slot))?, slot) {
            Ok(record) => records.push(record),
            // A record whose checksum holds but whose fields do not says
            // more about the damage than a torn or empty slot does.
            Err(_) if matches!(last_error, StorageError::Corrupt { .. }) => {}
            Err(e) => last_error = e,
        }
    }
    records.sort_by_key(|r| core::cmp::Reverse(generation(r)));
    let mut passed_over = None;
    for record in records {
        match load(device, &record) {
            Ok(loaded) => return Ok(Newest { record, loaded, passed_over }),
            Err(e @ StorageError::Device(_)) => return Err(e),
            Err(e) => {
                if passed_over.is_none() {
                    passed_over = Some((generation(&record), e.clone()));
                }
                last_error = e;
            }
        }
    }
    Err(last_error)
}

/// Set by a device error under a mutation; see the module rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Poison(bool);

impl Poison {
    pub fn is_set(&self) -> bool {
        self.0
    }

    /// Refuse every call of a poisoned volume.
    pub fn check(&self) -> Result<(), StorageError> {
        if self.0 {
            Err(StorageError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Refuse a mutation: poisoned, or read-only.
    pub fn check_writable(&self, read_only: bool) -> Result<(), StorageError> {
        self.check()?;
        if read_only {
            Err(StorageError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Pass a mutation's result through, poisoning on a device error.
    pub fn guard<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(StorageError::Device(_)) = result {
            self.0 = true;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockError;
    use crate::mem_device::MemBlockDevice;

    /// A record for the tests: byte 0 = 0xC0 marks a record, bytes 1..9
    /// the generation; byte 9 = 1 means "its contents do not verify".
    fn write(dev: &mut MemBlockDevice, generation: u64, good: bool) {
        let mut block = [0u8; 512];
        block[0] = 0xC0;
        block[1..9].copy_from_slice(&generation.to_le_bytes());
        block[9] = !good as u8;
        dev.write_blocks(slot_lba(generation), &block).unwrap();
    }

    fn decode(block: &[u8], slot: u64) -> Result<(u64, bool), StorageError> {
        let generation = u64::from_le_bytes(block[1..9].try_into().unwrap());
        if block[0] != 0xC0 {
            return Err(StorageError::ChecksumMismatch { what: "test record", location: slot });
        }
        if generation % 2 != slot {
            return Err(StorageError::Corrupt { what: "test record in the wrong slot", detail: generation });
        }
        Ok((generation, block[9] == 0))
    }

    fn mount(dev: &mut MemBlockDevice) -> Result<Newest<(u64, bool), u64>, StorageError> {
        mount_newest(dev, decode, |r| r.0, |_, r| if r.1 { Ok(r.0) } else { Err(StorageError::Corrupt { what: "contents", detail: r.0 }) })
    }

    #[test]
    fn the_newest_that_verifies_wins_and_a_passed_over_one_is_named() {
        let mut dev = MemBlockDevice::new(4);
        write(&mut dev, 6, true);
        write(&mut dev, 7, true);
        let m = mount(&mut dev).unwrap();
        assert_eq!((m.loaded, m.passed_over), (7, None));
        write(&mut dev, 9, false);
        let m = mount(&mut dev).unwrap();
        assert_eq!(m.loaded, 6);
        assert_eq!(m.passed_over.map(|p| p.0), Some(9));
    }

    #[test]
    fn no_record_or_none_that_verifies_is_an_error_that_says_most() {
        let mut dev = MemBlockDevice::new(4);
        assert!(matches!(mount(&mut dev), Err(StorageError::ChecksumMismatch { .. })));
        // A record in the wrong slot (checksum fine, fields not) beats an empty slot.
        let mut block = [0u8; 512];
        block[0] = 0xC0;
        block[1..9].copy_from_slice(&3u64.to_le_bytes());
        dev.write_blocks(1, &block).unwrap();
        assert!(matches!(mount(&mut dev), Err(StorageError::Corrupt { what: "test record in the wrong slot", .. })));
        write(&mut dev, 4, false);
        assert!(matches!(mount(&mut dev), Err(StorageError::Corrupt { what: "contents", detail: 4 })));
    }

    #[test]
    fn a_device_error_ends_the_search() {
        let mut dev = MemBlockDevice::new(4);
        write(&mut dev, 1, true);
        write(&mut dev, 2, true);
        let failing = mount_newest(&mut dev, decode, |r| r.0, |_, _| -> Result<(), _> { Err(StorageError::Device(BlockError::Device { status: 5 })) });
        assert!(matches!(failing, Err(StorageError::Device(_))));
    }

    #[test]
    fn generations_never_wrap_and_poison_sticks() {
        assert_eq!(next_generation(7), Ok(8));
        assert_eq!(next_generation(u64::MAX), Err(generation_exhausted()));
        assert_eq!((slot_lba(6), slot_lba(7)), (1, 2));
        let mut p = Poison::default();
        assert_eq!(p.check_writable(true), Err(StorageError::ReadOnly));
        assert_eq!(p.guard::<()>(Err(StorageError::NotFound)), Err(StorageError::NotFound));
        assert!(!p.is_set(), "only a device error poisons");
        let _ = p.guard::<()>(Err(StorageError::Device(BlockError::Device { status: 1 })));
        assert_eq!((p.check(), p.check_writable(false)), (Err(StorageError::Poisoned), Err(StorageError::Poisoned)));
    }
}
