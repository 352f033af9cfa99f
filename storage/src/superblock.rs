//! The superblock header shared by every capOS format.
//!
//! Why shared: every format answers the same first questions the same way —
//! what is this (magic), which layout rules (version), which optional
//! features (three classes, see [`crate::features`]), how big — before
//! anything else on the disk is trusted. Block 0 of each format is a
//! 512-byte superblock:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0      | 8    | magic (`CAPOSRO1` / `CAPOSWF1` / `CAPOSST1`) |
//! | 8      | 4    | format version |
//! | 12     | 4    | reserved, zero |
//! | 16     | 8    | compatible feature flags |
//! | 24     | 8    | read-only-compatible feature flags |
//! | 32     | 8    | incompatible feature flags |
//! | 40     | 4    | block size (512) |
//! | 44     | 4    | reserved, zero |
//! | 48     | 8    | total blocks of this format's volume |
//! | 56     | 452  | format-specific fields |
//! | 508    | 4    | CRC32C of bytes 0..508 |

use crate::block::{BlockDevice, SECTOR_SIZE};
use crate::codec::{is_sealed, seal, LeReader, LeWriter};
use crate::error::StorageError;
use crate::features::FeatureFlags;

/// First byte of the format-specific part of a superblock.
pub const FORMAT_FIELDS_OFFSET: usize = 56;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuperblockHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub features: FeatureFlags,
    pub total_blocks: u64,
}

impl SuperblockHeader {
    /// Encode the header into `block` (which must be one sector); the caller
    /// fills the format fields afterwards and then calls [`seal`].
    pub fn encode(&self, block: &mut [u8]) -> Result<(), StorageError> {
        let mut w = LeWriter::new(block);
        w.put_bytes(0, &self.magic)?;
        w.u32(8, self.version)?;
        w.u64(16, self.features.compatible)?;
        w.u64(24, self.features.ro_compatible)?;
        w.u64(32, self.features.incompatible)?;
        w.u32(40, SECTOR_SIZE as u32)?;
        w.u64(48, self.total_blocks)?;
        Ok(())
    }

    /// Decode and check a superblock: magic, then checksum, then version and
    /// block size, then that the volume fits the device. Features are left
    /// to the format, which knows which ones it implements.
    pub fn decode(
        block: &[u8],
        magic: &[u8; 8],
        format: &'static str,
        supported_version: u32,
        device_blocks: u64,
    ) -> Result<SuperblockHeader, StorageError> {
        let r = LeReader::new(block);
        let mut found = [0u8; 8];
        found.copy_from_slice(r.bytes(0, 8)?);
        if &found != magic {
            return Err(StorageError::BadMagic { expected: *magic, found });
        }
        if block.len() != SECTOR_SIZE || !is_sealed(block) {
            return Err(StorageError::ChecksumMismatch { what: "superblock", location: 0 });
        }
        let version = r.u32(8)?;
        if version != supported_version {
            return Err(StorageError::UnsupportedVersion { format, version });
        }
        let block_size = r.u32(40)?;
        if block_size as usize != SECTOR_SIZE {
            return Err(StorageError::Corrupt {
                what: "superblock block size is not 512",
                detail: block_size as u64,
            });
        }
        let total_blocks = r.u64(48)?;
        if total_blocks > device_blocks {
            return Err(StorageError::DeviceTooSmall {
                needed_blocks: total_blocks,
                available_blocks: device_blocks,
            });
        }
        Ok(SuperblockHeader {
            magic: found,
            version,
            features: FeatureFlags {
                compatible: r.u64(16)?,
                ro_compatible: r.u64(24)?,
                incompatible: r.u64(32)?,
            },
            total_blocks,
        })
    }
}

/// Refuse devices whose block size is not the formats' 512 bytes.
pub fn check_block_size<D: BlockDevice + ?Sized>(device: &D) -> Result<(), StorageError> {
    if device.block_size() != SECTOR_SIZE {
        return Err(StorageError::UnsupportedBlockSize(device.block_size()));
    }
    Ok(())
}

/// Read one sector.
pub fn read_sector<D: BlockDevice + ?Sized>(
    device: &mut D,
    lba: u64,
) -> Result<[u8; SECTOR_SIZE], StorageError> {
    let mut block = [0u8; SECTOR_SIZE];
    device.read_blocks(lba, &mut block)?;
    Ok(block)
}

/// Seal and write one sector.
pub fn write_sealed_sector<D: BlockDevice + ?Sized>(
    device: &mut D,
    lba: u64,
    block: &mut [u8; SECTOR_SIZE],
) -> Result<(), StorageError> {
    seal(block)?;
    device.write_blocks(lba, block)?;
    Ok(())
}
