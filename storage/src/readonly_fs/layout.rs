//! CAPOSRO1 on-disk layout: superblock fields and node records.
//!
//! ```text
//! block 0                      superblock (shared header + fields below)
//! blocks 1 .. 1+T              node table: 64-byte records, 8 per block
//! blocks 1+T ..                data: each directory's entry list and each
//!                              file's bytes, block-aligned, in node order
//! ```
//! Superblock format fields (after the shared 56-byte header):
//! 56 node_count u32 · 60 reserved u32 · 64 node_table_lba u64 ·
//! 72 node_table_blocks u64 · 80 data_lba u64 · 88 build_time i64 ·
//! 96 build_time_provenance u8.
//!
//! Node record (64 bytes): 0 kind u8 (1 directory, 2 file) · 1 reserved ·
//! 2 mtime provenance u8 · 3 reserved · 4 entry_count u32 (directories) ·
//! 8 size u64 · 16 data_lba u64 · 24 mtime i64 (ns since the epoch) ·
//! 32 data_crc u32 (CRC32C of the entry list or file bytes) · 36..60 zero ·
//! 60 record CRC32C of bytes 0..60.
//!
//! Directory entry list: per child, sorted by name bytes, no duplicates:
//! child node u32 · name_len u16 · name bytes (UTF-8, 1..=255).

use crate::codec::{is_sealed, seal, LeReader, LeWriter};
use crate::error::StorageError;
use crate::features::FeatureFlags;
use crate::time::Timestamp;
use crate::NodeKind;

pub const MAGIC: [u8; 8] = *b"CAPOSRO1";
pub const VERSION: u32 = 1;
/// Features this code implements (none yet).
pub const KNOWN_FEATURES: FeatureFlags = FeatureFlags::NONE;
pub const NODE_RECORD_SIZE: usize = 64;
pub const NODES_PER_BLOCK: usize = 512 / NODE_RECORD_SIZE;
pub const MAX_NAME_LEN: usize = 255;
/// Bytes of an entry-list entry before its name.
pub const ENTRY_HEADER_SIZE: usize = 6;

const KIND_DIRECTORY: u8 = 1;
const KIND_FILE: u8 = 2;

/// The format-specific superblock fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoGeometry {
    pub node_count: u32,
    pub node_table_lba: u64,
    pub node_table_blocks: u64,
    pub data_lba: u64,
    pub build_time: Timestamp,
}

impl RoGeometry {
    pub fn encode(&self, block: &mut [u8]) -> Result<(), StorageError> {
        let mut w = LeWriter::new(block);
        w.u32(56, self.node_count)?;
        w.u64(64, self.node_table_lba)?;
        w.u64(72, self.node_table_blocks)?;
        w.u64(80, self.data_lba)?;
        w.i64(88, self.build_time.unix_nanos)?;
        w.u8(96, self.build_time.provenance.to_byte())?;
        Ok(())
    }

    /// Decode and check the fields against the volume size.
    pub fn decode(block: &[u8], total_blocks: u64) -> Result<Self, StorageError> {
        let r = LeReader::new(block);
        let g = RoGeometry {
            node_count: r.u32(56)?,
            node_table_lba: r.u64(64)?,
            node_table_blocks: r.u64(72)?,
            data_lba: r.u64(80)?,
            build_time: Timestamp::decode(r.i64(88)?, r.u8(96)?)?,
        };
        let needed_table_blocks = (g.node_count as u64).div_ceil(NODES_PER_BLOCK as u64);
        if g.node_count == 0 {
            return Err(StorageError::Corrupt { what: "node count is zero (no root)", detail: 0 });
        }
        if g.node_table_lba != 1 || g.node_table_blocks != needed_table_blocks {
            return Err(StorageError::Corrupt {
                what: "node table location does not match node count",
                detail: g.node_table_blocks,
            });
        }
        if g.data_lba != 1 + g.node_table_blocks || g.data_lba > total_blocks {
            return Err(StorageError::Corrupt {
                what: "data area start out of range",
                detail: g.data_lba,
            });
        }
        Ok(g)
    }
}

/// One decoded node record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoNodeRecord {
    pub kind: NodeKind,
    pub entry_count: u32,
    pub size: u64,
    pub data_lba: u64,
    pub mtime: Timestamp,
    pub data_crc: u32,
}

impl RoNodeRecord {
    pub fn encode(&self, out: &mut [u8]) -> Result<(), StorageError> {
        out.fill(0);
        let mut w = LeWriter::new(out);
        w.u8(0, if self.kind == NodeKind::Directory { KIND_DIRECTORY } else { KIND_FILE })?;
        w.u8(2, self.mtime.provenance.to_byte())?;
        w.u32(4, self.entry_count)?;
        w.u64(8, self.size)?;
        w.u64(16, self.data_lba)?;
        w.i64(24, self.mtime.unix_nanos)?;
        w.u32(32, self.data_crc)?;
        seal(out)
    }

    /// Decode record number `index`; checksum first, then every field.
    pub fn decode(bytes: &[u8], index: u32) -> Result<Self, StorageError> {
        if bytes.len() != NODE_RECORD_SIZE || !is_sealed(bytes) {
            return Err(StorageError::ChecksumMismatch {
                what: "CAPOSRO1 node record",
                location: index as u64,
            });
        }
        let r = LeReader::new(bytes);
        let kind = match r.u8(0)? {
            KIND_DIRECTORY => NodeKind::Directory,
            KIND_FILE => NodeKind::File,
            other => {
                return Err(StorageError::Corrupt { what: "unknown node kind", detail: other as u64 })
            }
        };
        let entry_count = r.u32(4)?;
        if kind == NodeKind::File && entry_count != 0 {
            return Err(StorageError::Corrupt {
                what: "file node with directory entries",
                detail: index as u64,
            });
        }
        Ok(RoNodeRecord {
            kind,
            entry_count,
            size: r.u64(8)?,
            data_lba: r.u64(16)?,
            mtime: Timestamp::decode(r.i64(24)?, r.u8(2)?)?,
            data_crc: r.u32(32)?,
        })
    }
}
