//! Finding the FAT volume on a disk: the whole device, or a primary
//! partition of an MBR.
//!
//! Why here and not GPT: an MBR is one sector and four 16-byte entries,
//! and SD cards and USB sticks written by other systems use it. GPT disks
//! are resolved by the kernel (kcore's bounded GPT parser), which hands
//! this backer the partition as its own device; a protective MBR seen here
//! is therefore refused with a message saying so.
//!
//! Rules: an MBR ends with 0x55 0xAA; each entry's status byte is 0x00 or
//! 0x80; a used entry (type not 0) starts at block 1 or later, has a
//! non-zero length and ends on the device. Extended partitions (logical
//! drives) are not followed.

use crate::error::StorageError;

/// Partition type bytes that hold a FAT volume: FAT12, FAT16 (small, big,
/// LBA), FAT32 (CHS, LBA), their "hidden" variants, and the EFI system
/// partition.
const FAT_TYPES: [u8; 13] = [0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0x11, 0x14, 0x16, 0x1B, 0x1C, 0x1E, 0xEF];
const GPT_PROTECTIVE: u8 = 0xEE;

/// One primary partition: where it starts and how long it is, in blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbrPartition {
    /// 1..=4, as partition tools number them.
    pub number: u8,
    pub kind: u8,
    pub start: u64,
    pub blocks: u64,
}

/// The used entries of an MBR, or why the sector is not one.
pub fn parse(sector: &[u8; 512], device_blocks: u64) -> Result<[Option<MbrPartition>; 4], StorageError> {
    if sector[510] != 0x55 || sector[511] != 0xAA {
        return Err(StorageError::Corrupt { what: "no MBR signature 0x55 0xAA in block 0", detail: 0 });
    }
    let mut out = [None; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let e = &sector[446 + 16 * i..446 + 16 * (i + 1)];
        if e[0] != 0 && e[0] != 0x80 {
            return Err(StorageError::Corrupt { what: "MBR entry status byte is not 0x00 or 0x80", detail: e[0] as u64 });
        }
        let kind = e[4];
        if kind == 0 {
            continue;
        }
        let start = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
        let blocks = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
        if kind != GPT_PROTECTIVE && (start == 0 || blocks == 0 || start + blocks > device_blocks) {
            return Err(StorageError::Corrupt { what: "MBR partition lies outside the device", detail: (i + 1) as u64 });
        }
        *slot = Some(MbrPartition { number: (i + 1) as u8, kind, start, blocks });
    }
    Ok(out)
}

/// Partition `number` (1..=4), or the first one whose type is a FAT type
/// when `number` is `None`.
pub fn select(sector: &[u8; 512], device_blocks: u64, number: Option<u8>) -> Result<MbrPartition, StorageError> {
    let parts = parse(sector, device_blocks)?;
    if parts.iter().flatten().any(|p| p.kind == GPT_PROTECTIVE) {
        return Err(StorageError::InvalidArgument(
            "GPT disk: mount the FAT partition itself (the kernel resolves GPT partitions)",
        ));
    }
    match number {
        Some(n @ 1..=4) => parts[n as usize - 1].ok_or(StorageError::NotFound),
        Some(_) => Err(StorageError::InvalidArgument("MBR partition numbers are 1..=4")),
        None => parts
            .iter()
            .flatten()
            .find(|p| FAT_TYPES.contains(&p.kind))
            .copied()
            .ok_or(StorageError::Corrupt { what: "neither a FAT volume nor an MBR with a FAT partition", detail: 0 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn mbr(entries: &[(u8, u8, u32, u32)]) -> [u8; 512] {
        let mut s = [0u8; 512];
        for (i, &(status, kind, start, blocks)) in entries.iter().enumerate() {
            let e = &mut s[446 + 16 * i..446 + 16 * (i + 1)];
            e[0] = status;
            e[4] = kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&blocks.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn picks_the_first_fat_partition_or_the_named_one() {
        let s = mbr(&[(0, 0x83, 2048, 1000), (0x80, 0x0C, 4096, 2000), (0, 0x06, 8192, 100)]);
        let first = select(&s, 10_000, None).unwrap();
        assert_eq!((first.number, first.start, first.blocks), (2, 4096, 2000));
        assert_eq!(select(&s, 10_000, Some(3)).unwrap().start, 8192);
        assert_eq!(select(&s, 10_000, Some(1)).unwrap().kind, 0x83);
        assert_eq!(select(&s, 10_000, Some(4)), Err(StorageError::NotFound));
        assert!(select(&s, 10_000, Some(5)).is_err());
    }

    #[test]
    fn refuses_bad_tables() {
        assert!(select(&mbr(&[(0, 0x0C, 2048, 9000)]), 10_000, None).is_err()); // runs off the end
        assert!(select(&mbr(&[(0, 0x0C, 0, 100)]), 10_000, None).is_err()); // overlaps the MBR
        assert!(select(&mbr(&[(0x7F, 0x0C, 1, 100)]), 10_000, None).is_err()); // bad status
        assert!(select(&mbr(&[(0, 0x83, 1, 100)]), 10_000, None).is_err()); // no FAT partition
        assert!(matches!(select(&mbr(&[(0, 0xEE, 1, u32::MAX)]), 10_000, None), Err(StorageError::InvalidArgument(_))));
        let mut no_sig = mbr(&[(0, 0x0C, 1, 100)]);
        no_sig[511] = 0;
        assert!(select(&no_sig, 10_000, None).is_err());
        // u32::MAX start + length does not overflow.
        assert!(select(&mbr(&[(0, 0x0C, u32::MAX, u32::MAX)]), u64::MAX, None).is_ok());
    }
}
