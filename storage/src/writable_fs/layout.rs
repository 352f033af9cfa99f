//! CAPOSWF1 on-disk layout.
//!
//! ```text
//! block 0                superblock (shared header + geometry below)
//! block 1, block 2       commit record slots 0 and 1
//! region A               node blocks, then chain-table blocks
//! region B               same size and layout as region A
//! data area              file data blocks
//! ```
//! Superblock format fields: 56 node_capacity u32 · 60 data_blocks u32 ·
//! 64 region_a_lba u64 · 72 region_b_lba u64 · 80 node_blocks u32 ·
//! 84 chain_blocks u32 · 88 data_lba u64. All are recomputed from
//! (total_blocks, node_capacity) at mount and must match.
//!
//! Commit record (512 bytes): 0 magic `WFCOMMIT` · 8 generation u64 ·
//! 16 region u8 (generation % 2) · 20 region digest u32 (CRC32C over every
//! record and block checksum stored in the region, in order) · 508 CRC32C.
//! Generation `g` lives in slot `g % 2` and names region `g % 2`.
//!
//! Node record (128 bytes, 4 per block): 0 kind u8 (0 free, 1 directory,
//! 2 file) · 1 name_len u8 · 2 created provenance u8 · 3 modified
//! provenance u8 · 4 parent u32 · 8 size u64 · 16 first_block u32 ·
//! 20 block_count u32 · 24 created i64 · 32 modified i64 · 40 generation u32
//! · 44 name (80 bytes, zero padded) · 124 CRC32C of bytes 0..124.
//!
//! Chain-table block: 127 little-endian u32 entries, one per data block
//! (`FREE`, `END`, or the index of the next block of the same file), then a
//! CRC32C of bytes 0..508.

use crate::codec::{is_sealed, seal, LeReader, LeWriter};
use crate::error::StorageError;
use crate::features::FeatureFlags;
use crate::name::decode_name;
use crate::time::Timestamp;
use alloc::string::{String, ToString};

pub const MAGIC: [u8; 8] = *b"CAPOSWF1";
pub const COMMIT_MAGIC: [u8; 8] = *b"WFCOMMIT";
pub const VERSION: u32 = 1;
pub const KNOWN_FEATURES: FeatureFlags = FeatureFlags::NONE;
/// The NVMe writable namespace image: 32768 blocks of 512 bytes (16 MiB).
pub const NVME_NAMESPACE_BLOCKS: u64 = 32768;

pub const NODE_RECORD_SIZE: usize = 128;
pub const NODES_PER_BLOCK: u32 = 4;
pub const MAX_NAME_LEN: usize = 80;
pub const CHAIN_ENTRIES_PER_BLOCK: u32 = 127;
pub const CHAIN_FREE: u32 = 0xFFFF_FFFE;
pub const CHAIN_END: u32 = 0xFFFF_FFFF;
pub const ROOT_INDEX: u32 = 0;
/// Smallest and largest node tables a volume may have.
pub const MIN_NODES: u32 = 8;
pub const MAX_NODES: u32 = 1 << 20;

/// Where everything is, derived from the volume size and node capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WfGeometry {
    pub total_blocks: u64,
    pub node_capacity: u32,
    pub data_blocks: u32,
    pub node_blocks: u32,
    pub chain_blocks: u32,
    pub region_a_lba: u64,
    pub region_b_lba: u64,
    pub data_lba: u64,
}

impl WfGeometry {
    /// The node capacity `format` picks for a volume: one node per 16
    /// blocks, within the limits.
    pub fn default_node_capacity(total_blocks: u64) -> u32 {
        let n = (total_blocks / 16).clamp(MIN_NODES as u64, MAX_NODES as u64) as u32;
        n.div_ceil(NODES_PER_BLOCK) * NODES_PER_BLOCK
    }

    pub fn compute(total_blocks: u64, node_capacity: u32) -> Result<Self, StorageError> {
        if !(MIN_NODES..=MAX_NODES).contains(&node_capacity) || !node_capacity.is_multiple_of(NODES_PER_BLOCK) {
            return Err(StorageError::Corrupt {
                what: "node capacity out of range",
                detail: node_capacity as u64,
            });
        }
        let node_blocks = node_capacity / NODES_PER_BLOCK;
        let fixed = 3 + 2 * node_blocks as u64;
        let too_small = StorageError::DeviceTooSmall {
            needed_blocks: fixed + 4,
            available_blocks: total_blocks,
        };
        let available = total_blocks.checked_sub(fixed).ok_or(too_small.clone())?;
        // data + 2 * ceil(data / 127) <= available
        let mut data = (available * CHAIN_ENTRIES_PER_BLOCK as u64 / (CHAIN_ENTRIES_PER_BLOCK as u64 + 2))
            .min(u32::MAX as u64 - 2);
        while data > 0 && data + 2 * data.div_ceil(CHAIN_ENTRIES_PER_BLOCK as u64) > available {
            data -= 1;
        }
        if data < 2 {
            return Err(too_small);
        }
        let chain_blocks = data.div_ceil(CHAIN_ENTRIES_PER_BLOCK as u64) as u32;
        let region_blocks = (node_blocks + chain_blocks) as u64;
        Ok(WfGeometry {
            total_blocks,
            node_capacity,
            data_blocks: data as u32,
            node_blocks,
            chain_blocks,
            region_a_lba: 3,
            region_b_lba: 3 + region_blocks,
            data_lba: 3 + 2 * region_blocks,
        })
    }

    pub fn region_blocks(&self) -> u32 {
        self.node_blocks + self.chain_blocks
    }

    pub fn region_lba(&self, region: usize) -> u64 {
        if region == 0 {
            self.region_a_lba
        } else {
            self.region_b_lba
        }
    }

    pub fn encode(&self, block: &mut [u8]) -> Result<(), StorageError> {
        let mut w = LeWriter::new(block);
        w.u32(56, self.node_capacity)?;
        w.u32(60, self.data_blocks)?;
        w.u64(64, self.region_a_lba)?;
        w.u64(72, self.region_b_lba)?;
        w.u32(80, self.node_blocks)?;
        w.u32(84, self.chain_blocks)?;
        w.u64(88, self.data_lba)?;
        Ok(())
    }

    pub fn decode(block: &[u8], total_blocks: u64) -> Result<Self, StorageError> {
        let r = LeReader::new(block);
        let expected = Self::compute(total_blocks, r.u32(56)?)?;
        let stored = WfGeometry {
            total_blocks,
            node_capacity: r.u32(56)?,
            data_blocks: r.u32(60)?,
            region_a_lba: r.u64(64)?,
            region_b_lba: r.u64(72)?,
            node_blocks: r.u32(80)?,
            chain_blocks: r.u32(84)?,
            data_lba: r.u64(88)?,
        };
        if stored != expected {
            return Err(StorageError::Corrupt {
                what: "CAPOSWF1 geometry does not match its volume size and node capacity",
                detail: stored.data_lba,
            });
        }
        Ok(stored)
    }
}

/// A decoded commit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitRecord {
    pub generation: u64,
    pub region_digest: u32,
}

impl CommitRecord {
    pub fn encode(&self) -> Result<[u8; 512], StorageError> {
        let mut block = [0u8; 512];
        let mut w = LeWriter::new(&mut block);
        w.put_bytes(0, &COMMIT_MAGIC)?;
        w.u64(8, self.generation)?;
        w.u8(16, (self.generation % 2) as u8)?;
        w.u32(20, self.region_digest)?;
        seal(&mut block)?;
        Ok(block)
    }

    /// Decode the record in slot `slot`; `None`-like errors mean "not valid".
    pub fn decode(block: &[u8], slot: u64) -> Result<Self, StorageError> {
        let r = LeReader::new(block);
        if r.bytes(0, 8)? != COMMIT_MAGIC || !is_sealed(block) {
            return Err(StorageError::ChecksumMismatch { what: "CAPOSWF1 commit record", location: 1 + slot });
        }
        let generation = r.u64(8)?;
        if generation % 2 != slot || r.u8(16)? as u64 != slot {
            return Err(StorageError::Corrupt { what: "commit record in the wrong slot", detail: generation });
        }
        Ok(CommitRecord { generation, region_digest: r.u32(20)? })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Free,
    Directory,
    File,
}

/// A node record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    pub kind: RecordKind,
    pub parent: u32,
    pub size: u64,
    pub first_block: u32,
    pub block_count: u32,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub generation: u32,
    pub name: String,
}

impl NodeRecord {
    pub fn free(generation: u32) -> Self {
        NodeRecord {
            kind: RecordKind::Free,
            parent: 0,
            size: 0,
            first_block: CHAIN_END,
            block_count: 0,
            created: Timestamp::UNKNOWN,
            modified: Timestamp::UNKNOWN,
            generation,
            name: String::new(),
        }
    }

    pub fn encode(&self, out: &mut [u8]) -> Result<(), StorageError> {
        out.fill(0);
        let mut w = LeWriter::new(out);
        w.u8(
            0,
            match self.kind {
                RecordKind::Free => 0,
                RecordKind::Directory => 1,
                RecordKind::File => 2,
            },
        )?;
        w.u8(1, self.name.len() as u8)?;
        w.u8(2, self.created.provenance.to_byte())?;
        w.u8(3, self.modified.provenance.to_byte())?;
        w.u32(4, self.parent)?;
        w.u64(8, self.size)?;
        w.u32(16, self.first_block)?;
        w.u32(20, self.block_count)?;
        w.i64(24, self.created.unix_nanos)?;
        w.i64(32, self.modified.unix_nanos)?;
        w.u32(40, self.generation)?;
        w.put_bytes(44, self.name.as_bytes())?;
        seal(out)
    }

    /// Decode record `index`: checksum, then each field on its own. Whether
    /// the record fits the rest of the metadata is checked by the caller.
    pub fn decode(bytes: &[u8], index: u32) -> Result<Self, StorageError> {
        if bytes.len() != NODE_RECORD_SIZE || !is_sealed(bytes) {
            return Err(StorageError::ChecksumMismatch { what: "CAPOSWF1 node record", location: index as u64 });
        }
        let r = LeReader::new(bytes);
        let kind = match r.u8(0)? {
            0 => RecordKind::Free,
            1 => RecordKind::Directory,
            2 => RecordKind::File,
            other => return Err(StorageError::Corrupt { what: "unknown node kind", detail: other as u64 }),
        };
        let name_len = r.u8(1)? as usize;
        if name_len > MAX_NAME_LEN {
            return Err(StorageError::Corrupt { what: "node name longer than 80 bytes", detail: index as u64 });
        }
        let name_bytes = r.bytes(44, name_len)?;
        if r.bytes(44 + name_len, MAX_NAME_LEN - name_len)?.iter().any(|&b| b != 0) {
            return Err(StorageError::Corrupt { what: "bytes after a node name are not zero", detail: index as u64 });
        }
        let name = if kind == RecordKind::Free || index == ROOT_INDEX {
            if name_len != 0 {
                return Err(StorageError::Corrupt { what: "free or root node has a name", detail: index as u64 });
            }
            String::new()
        } else {
            decode_name(name_bytes, MAX_NAME_LEN)?.to_string()
        };
        let record = NodeRecord {
            kind,
            parent: r.u32(4)?,
            size: r.u64(8)?,
            first_block: r.u32(16)?,
            block_count: r.u32(20)?,
            created: Timestamp::decode(r.i64(24)?, r.u8(2)?)?,
            modified: Timestamp::decode(r.i64(32)?, r.u8(3)?)?,
            generation: r.u32(40)?,
            name,
        };
        if kind == RecordKind::Free && record != NodeRecord::free(record.generation) {
            return Err(StorageError::Corrupt { what: "free node record has fields set", detail: index as u64 });
        }
        Ok(record)
    }
}
