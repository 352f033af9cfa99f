//! The FAT boot sector (BIOS parameter block), checked before anything
//! trusts it.
//!
//! Why our own check in front of lamfat's: lamfat validates a BPB but does
//! its arithmetic in `u32` without overflow checks (a FAT count times a
//! FAT size can wrap; a FAT of 512 MiB or more overflows its entry count)
//! and never checks the FAT32 root cluster, whose value it later subtracts
//! 2 from. In a debug build those are panics; in a release build, reads of
//! the wrong place. So every field is checked here, in `u64`, and a volume
//! that passes is one on which lamfat's own arithmetic cannot overflow.
//!
//! The rules (each broken on purpose by a test below or in
//! `tests/fat_hostile.rs`):
//! - the sector ends with 0x55 0xAA; an exFAT or other non-FAT boot sector is
//!   refused by name where it can be recognised;
//! - bytes per sector is a power of two in 512..=4096, sectors per cluster
//!   a power of two (1..=128), at least one reserved sector, one or two FATs;
//! - FAT32 (sectors per FAT 16 = 0): no fixed root directory, no
//!   16-bit sector count, a non-zero FAT size, an FSInfo sector inside the
//!   reserved area, a backup boot sector inside it, an active FAT that
//!   exists, and a root cluster inside the data area;
//! - FAT12/16: a non-zero fixed root directory;
//! - the data area starts before the volume ends and holds at least one
//!   cluster; the cluster count decides the type (fewer than 4085: FAT12,
//!   fewer than 65525: FAT16, else FAT32, as Microsoft's specification says)
//!   and must agree with the layout; FAT32 has version 0 and at most
//!   0x0FFFFFF5 clusters;
//! - each FAT has an entry for every cluster, and is under 512 MiB (lamfat's
//!   limit, which only a volume of more than 128 Mi clusters reaches);
//! - the volume fits on the device.

use crate::error::StorageError;

/// Which FAT variant a volume is. Decided by the cluster count alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

impl FatType {
    pub fn label(self) -> &'static str {
        match self {
            FatType::Fat12 => "FAT12",
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        }
    }
}

/// Everything a reader needs from a checked boot sector. Offsets are bytes
/// from the start of the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub fat_type: FatType,
    pub bytes_per_sector: u32,
    pub cluster_bytes: u32,
    /// Number of data clusters; valid cluster numbers are `2..cluster_count + 2`.
    pub cluster_count: u32,
    /// The FAT that is read (the first one, or the active one when FAT32
    /// mirroring is off).
    pub fat_offset: u64,
    /// FAT12/16: the fixed root directory (whole sectors, as lamfat reads it).
    pub root_dir_offset: u64,
    pub root_dir_bytes: u32,
    /// FAT32: the first cluster of the root directory (0 on FAT12/16).
    pub root_cluster: u32,
    /// FAT32: the FSInfo sector's byte offset (0 on FAT12/16).
    pub fs_info_offset: u64,
    pub data_offset: u64,
    /// `total sectors * bytes per sector`.
    pub volume_bytes: u64,
}

impl Geometry {
    /// Whether `cluster` names a data cluster of this volume.
    pub fn is_data_cluster(&self, cluster: u32) -> bool {
        cluster >= 2 && cluster - 2 < self.cluster_count
    }

    /// Byte offset of a data cluster (the caller checked it with
    /// [`is_data_cluster`](Self::is_data_cluster)).
    pub fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset + u64::from(cluster - 2) * u64::from(self.cluster_bytes)
    }
}

const FAT16_MIN_CLUSTERS: u64 = 4085;
const FAT32_MIN_CLUSTERS: u64 = 65525;
const FAT32_MAX_CLUSTERS: u64 = 0x0FFF_FFF5;

fn le16(s: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([s[at], s[at + 1]]))
}

fn le32(s: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]))
}

fn corrupt(what: &'static str, detail: u64) -> StorageError {
    StorageError::Corrupt { what, detail }
}

/// Whether the sector has the boot signature a FAT boot sector (or an MBR) ends with.
pub fn has_boot_signature(sector: &[u8; 512]) -> bool {
    sector[510] == 0x55 && sector[511] == 0xAA
}

/// Check a boot sector read from the first sector of a volume of
/// `available_bytes` bytes.
pub fn parse(s: &[u8; 512], available_bytes: u64) -> Result<Geometry, StorageError> {
    if &s[3..11] == b"EXFAT   " {
        return Err(StorageError::UnsupportedVersion {
            format: "exFAT (only FAT12, FAT16 and FAT32 are read)",
            version: le16(s, 104) as u32,
        });
    }
    if !has_boot_signature(s) {
        return Err(corrupt(
            "not a FAT volume: the boot sector does not end with 0x55 0xAA",
            le16(s, 510),
        ));
    }
    let bytes_per_sector = le16(s, 11);
    if !bytes_per_sector.is_power_of_two() || !(512..=4096).contains(&bytes_per_sector) {
        return Err(corrupt("FAT bytes per sector is not a power of two in 512..=4096", bytes_per_sector));
    }
    let sectors_per_cluster = u64::from(s[13]);
    if !sectors_per_cluster.is_power_of_two() {
        return Err(corrupt("FAT sectors per cluster is not a power of two", sectors_per_cluster));
    }
    let reserved = le16(s, 14);
    if reserved == 0 {
        return Err(corrupt("FAT has no reserved sectors (the boot sector is one)", 0));
    }
    let fats = u64::from(s[16]);
    if !(1..=2).contains(&fats) {
        return Err(corrupt("FAT count is not 1 or 2", fats));
    }
    let root_entries = le16(s, 17);
    let total16 = le16(s, 19);
    let sectors_per_fat16 = le16(s, 22);
    let total32 = le32(s, 32);
    let is_fat32_layout = sectors_per_fat16 == 0;

    let mut root_cluster = 0u64;
    let mut fs_info_sector = 0u64;
    let mut active_fat = 0u64;
    let sectors_per_fat = if is_fat32_layout {
        if root_entries != 0 {
            return Err(corrupt("FAT32 boot sector declares a fixed root directory", root_entries));
        }
        if total16 != 0 {
            return Err(corrupt("FAT32 boot sector has a 16-bit sector count", total16));
        }
        fs_info_sector = le16(s, 48);
        if fs_info_sector == 0 || fs_info_sector >= reserved {
            return Err(corrupt("FAT32 FSInfo sector is not inside the reserved area", fs_info_sector));
        }
        let backup = le16(s, 50);
        if backup >= reserved {
            return Err(corrupt("FAT32 backup boot sector is not inside the reserved area", backup));
        }
        let flags = le16(s, 40);
        if flags & 0x80 != 0 {
            active_fat = flags & 0x0F;
            if active_fat >= fats {
                return Err(corrupt("FAT32 active FAT does not exist", active_fat));
            }
        }
        root_cluster = le32(s, 44);
        let spf = le32(s, 36);
        if spf == 0 {
            return Err(corrupt("FAT32 boot sector has a zero FAT size", 0));
        }
        spf
    } else {
        if root_entries == 0 {
            return Err(corrupt("FAT12/16 boot sector has no root directory entries", 0));
        }
        sectors_per_fat16
    };

    let total_sectors = match (total16, total32) {
        (0, 0) => return Err(corrupt("FAT boot sector has a zero sector count", 0)),
        (0, t) | (t, 0) => t,
        (a, b) if a == b => a,
        (a, _) => return Err(corrupt("FAT boot sector's 16- and 32-bit sector counts disagree", a)),
    };
    let root_dir_sectors = (root_entries * 32).div_ceil(bytes_per_sector);
    let first_data_sector = reserved + fats * sectors_per_fat + root_dir_sectors;
    if first_data_sector >= total_sectors {
        return Err(corrupt("FAT data area starts past the end of the volume", first_data_sector));
    }
    let cluster_count = (total_sectors - first_data_sector) / sectors_per_cluster;
    if cluster_count == 0 {
        return Err(corrupt("FAT volume has no data clusters", 0));
    }
    let fat_type = if cluster_count < FAT16_MIN_CLUSTERS {
        FatType::Fat12
    } else if cluster_count < FAT32_MIN_CLUSTERS {
        FatType::Fat16
    } else {
        FatType::Fat32
    };
    if (fat_type == FatType::Fat32) != is_fat32_layout {
        return Err(corrupt("FAT type by cluster count disagrees with the boot sector layout", cluster_count));
    }
    // Only now is this surely meant as FAT32, so a version is a version.
    if fat_type == FatType::Fat32 && le16(s, 42) != 0 {
        return Err(StorageError::UnsupportedVersion { format: "FAT32", version: le16(s, 42) as u32 });
    }
    if cluster_count > FAT32_MAX_CLUSTERS {
        return Err(corrupt("FAT32 volume has more clusters than FAT32 can number", cluster_count));
    }
    let fat_bits = sectors_per_fat * bytes_per_sector * 8;
    if fat_bits > u64::from(u32::MAX) {
        return Err(StorageError::UnsupportedVersion {
            format: "FAT with a table of 512 MiB or more (not read)",
            version: 0,
        });
    }
    let bits_per_entry = match fat_type {
        FatType::Fat12 => 12,
        FatType::Fat16 => 16,
        FatType::Fat32 => 32,
    };
    if fat_bits / bits_per_entry < cluster_count + 2 {
        return Err(corrupt("FAT is too small to hold an entry for every cluster", sectors_per_fat));
    }
    let volume_bytes = total_sectors * bytes_per_sector;
    if volume_bytes > available_bytes {
        return Err(StorageError::DeviceTooSmall {
            needed_blocks: volume_bytes.div_ceil(512),
            available_blocks: available_bytes / 512,
        });
    }
    if fat_type == FatType::Fat32 && !(2..cluster_count + 2).contains(&root_cluster) {
        return Err(corrupt("FAT32 root directory cluster is outside the data area", root_cluster));
    }
    Ok(Geometry {
        fat_type,
        bytes_per_sector: bytes_per_sector as u32,
        cluster_bytes: (sectors_per_cluster * bytes_per_sector) as u32,
        cluster_count: cluster_count as u32,
        fat_offset: (reserved + active_fat * sectors_per_fat) * bytes_per_sector,
        root_dir_offset: (reserved + fats * sectors_per_fat) * bytes_per_sector,
        root_dir_bytes: (root_dir_sectors * bytes_per_sector) as u32,
        root_cluster: root_cluster as u32,
        fs_info_offset: fs_info_sector * bytes_per_sector,
        data_offset: first_data_sector * bytes_per_sector,
        volume_bytes,
    })
}

/// Check the three signatures of the FAT32 FSInfo sector. lamfat refuses a
/// volume whose FSInfo is damaged; checking first gives the better message.
pub fn check_fs_info(sector: &[u8]) -> Result<(), StorageError> {
    let lead = le32(sector, 0);
    let structure = le32(sector, 484);
    let trail = le32(sector, 508);
    if lead != 0x4161_5252 || structure != 0x6141_7272 || trail != 0xAA55_0000 {
        return Err(corrupt("FAT32 FSInfo sector has a bad signature", lead));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A FAT32 boot sector like `mkfs.fat -F 32 -s 1 -S 512` writes for 40 MiB.
    pub(crate) fn fat32_sector() -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
        s[3..11].copy_from_slice(b"mkfs.fat");
        s[11..13].copy_from_slice(&512u16.to_le_bytes());
        s[13] = 1; // sectors per cluster
        s[14..16].copy_from_slice(&32u16.to_le_bytes()); // reserved
        s[16] = 2; // FATs
        s[21] = 0xF8;
        s[32..36].copy_from_slice(&81920u32.to_le_bytes()); // total sectors
        s[36..40].copy_from_slice(&630u32.to_le_bytes()); // sectors per FAT
        s[44..48].copy_from_slice(&2u32.to_le_bytes()); // root cluster
        s[48..50].copy_from_slice(&1u16.to_le_bytes()); // FSInfo
        s[50..52].copy_from_slice(&6u16.to_le_bytes()); // backup boot sector
        s[66] = 0x29;
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    const BYTES: u64 = 81920 * 512;

    #[test]
    fn accepts_a_mkfs_fat32_layout() {
        let g = parse(&fat32_sector(), BYTES).unwrap();
        assert_eq!(g.fat_type, FatType::Fat32);
        assert_eq!(g.cluster_bytes, 512);
        assert_eq!(g.fat_offset, 32 * 512);
        assert_eq!(g.data_offset, (32 + 2 * 630) * 512);
        assert_eq!(g.cluster_count, 81920 - 32 - 1260);
        assert!(g.is_data_cluster(2) && g.is_data_cluster(g.cluster_count + 1));
        assert!(!g.is_data_cluster(0) && !g.is_data_cluster(1) && !g.is_data_cluster(g.cluster_count + 2));
        assert_eq!(g.cluster_offset(2), g.data_offset);
    }

    fn refused(edit: impl Fn(&mut [u8; 512])) -> StorageError {
        let mut s = fat32_sector();
        edit(&mut s);
        parse(&s, BYTES).unwrap_err()
    }

    #[test]
    fn refuses_zero_and_absurd_fields() {
        type Edit = fn(&mut [u8; 512]);
        let cases: [(&str, Edit); 16] = [
            ("no signature", |s| s[511] = 0),
            ("zero bytes per sector", |s| s[11..13].copy_from_slice(&[0, 0])),
            ("bytes per sector 513", |s| s[11..13].copy_from_slice(&513u16.to_le_bytes())),
            ("bytes per sector 8192", |s| s[11..13].copy_from_slice(&8192u16.to_le_bytes())),
            ("zero sectors per cluster", |s| s[13] = 0),
            ("three sectors per cluster", |s| s[13] = 3),
            ("zero reserved", |s| s[14..16].copy_from_slice(&[0, 0])),
            ("zero FATs", |s| s[16] = 0),
            ("255 FATs", |s| s[16] = 255),
            ("root cluster 0", |s| s[44..48].copy_from_slice(&0u32.to_le_bytes())),
            ("root cluster 1", |s| s[44..48].copy_from_slice(&1u32.to_le_bytes())),
            ("root cluster past the end", |s| s[44..48].copy_from_slice(&0x0FFF_FFF0u32.to_le_bytes())),
            ("zero sectors", |s| s[32..36].copy_from_slice(&[0; 4])),
            ("huge FAT", |s| s[36..40].copy_from_slice(&u32::MAX.to_le_bytes())),
            ("FSInfo outside reserved", |s| s[48..50].copy_from_slice(&40u16.to_le_bytes())),
            ("active FAT 3", |s| s[40..42].copy_from_slice(&0x83u16.to_le_bytes())),
        ];
        for (name, edit) in cases {
            let e = refused(edit);
            assert!(e.is_corruption(), "{name}: {e:?}");
        }
        assert!(matches!(
            refused(|s| s[42..44].copy_from_slice(&1u16.to_le_bytes())),
            StorageError::UnsupportedVersion { format: "FAT32", version: 1 }
        ));
        assert!(matches!(refused(|s| s[3..11].copy_from_slice(b"EXFAT   ")), StorageError::UnsupportedVersion { .. }));
        assert!(matches!(
            parse(&fat32_sector(), BYTES - 512).unwrap_err(),
            StorageError::DeviceTooSmall { needed_blocks: 81920, available_blocks: 81919 }
        ));
        // A FAT too small for the clusters it must describe.
        assert!(refused(|s| s[36..40].copy_from_slice(&100u32.to_le_bytes())).is_corruption());
    }

    #[test]
    fn every_single_byte_value_of_the_bpb_is_safe() {
        for at in 0..90 {
            for value in 0..=255u8 {
                let mut s = fat32_sector();
                s[at] = value;
                let _ = parse(&s, BYTES);
                let _ = parse(&s, u64::MAX);
            }
        }
    }
}
