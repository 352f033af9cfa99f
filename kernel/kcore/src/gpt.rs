//! GUID partition table (GPT) identifiers capOS relies on.
//!
//! Why here: the cloud disk image (`make capos-cloudboot-image`, built by
//! the host runner) writes these type GUIDs, and the kernel will look its
//! data partition up by the same value. One constant in a crate both sides
//! link keeps them from drifting. The GPT parser the kernel needs (header
//! and entry-array CRCs, the backup header, hostile tables) belongs in this
//! module too; it is not written yet (see docs/cloud.md).
//!
//! GPT stores a GUID "mixed-endian": the first three fields little-endian,
//! the last eight bytes as written. [`Guid::to_bytes`] gives the on-disk
//! form, `Display` the canonical text form (`sgdisk` prints it uppercase).

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid {
    pub time_low: u32,
    pub time_mid: u16,
    pub time_hi: u16,
    pub tail: [u8; 8],
}

impl Guid {
    pub const fn new(time_low: u32, time_mid: u16, time_hi: u16, tail: [u8; 8]) -> Guid {
        Guid { time_low, time_mid, time_hi, tail }
    }

    /// The 16 bytes as a GPT header or partition entry stores them.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.time_low.to_le_bytes());
        b[4..6].copy_from_slice(&self.time_mid.to_le_bytes());
        b[6..8].copy_from_slice(&self.time_hi.to_le_bytes());
        b[8..16].copy_from_slice(&self.tail);
        b
    }

    /// Decode the on-disk form.
    pub fn from_bytes(b: &[u8; 16]) -> Guid {
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&b[8..16]);
        Guid {
            time_low: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            time_mid: u16::from_le_bytes([b[4], b[5]]),
            time_hi: u16::from_le_bytes([b[6], b[7]]),
            tail,
        }
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tail;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            self.time_low, self.time_mid, self.time_hi, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]
        )
    }
}

/// The UEFI EFI System Partition type (UEFI specification, "GPT disk
/// layout"): C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
pub const EFI_SYSTEM_PARTITION: Guid = Guid::new(0xC12A_7328, 0xF81F, 0x11D2, [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]);

/// The capOS data partition type: A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890.
///
/// Chosen once at random (a version-4 GUID) for capOS; it names a
/// partition holding the co-located CAPOSST1 store + CAPOSWF1 filesystem
/// (docs/storage-formats.md, "The co-located image"). Never reuse it for
/// another layout: a new layout gets a new type GUID.
pub const CAPOS_DATA_PARTITION: Guid = Guid::new(0xA59A_E5FF, 0x8FF6, 0x4AFC, [0x89, 0xB0, 0x2C, 0xEE, 0x37, 0xA5, 0x88, 0x90]);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn esp_type_has_the_uefi_on_disk_bytes() {
        // The byte sequence every GPT tool writes for an ESP entry.
        let want = [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B];
        assert_eq!(EFI_SYSTEM_PARTITION.to_bytes(), want);
        assert_eq!(Guid::from_bytes(&want), EFI_SYSTEM_PARTITION);
        assert_eq!(EFI_SYSTEM_PARTITION.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    }

    #[test]
    fn capos_data_type_text_and_bytes_agree() {
        assert_eq!(CAPOS_DATA_PARTITION.to_string(), "A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890");
        let b = CAPOS_DATA_PARTITION.to_bytes();
        assert_eq!(&b[..4], &[0xFF, 0xE5, 0x9A, 0xA5]);
        assert_eq!(Guid::from_bytes(&b), CAPOS_DATA_PARTITION);
        assert_ne!(CAPOS_DATA_PARTITION, EFI_SYSTEM_PARTITION);
        // Version 4, RFC 4122 variant.
        assert_eq!(CAPOS_DATA_PARTITION.time_hi >> 12, 4);
        assert_eq!(CAPOS_DATA_PARTITION.tail[0] & 0xC0, 0x80);
    }
}
