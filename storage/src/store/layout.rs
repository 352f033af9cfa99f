//! CAPOSST1 on-disk layout.
//!
//! ```text
//! block 0            superblock (shared header + geometry below)
//! block 1, block 2   commit record slots 0 and 1
//! front area         entry table (slot_blocks) then heap (heap_blocks)
//! shadow area        same size and layout
//! ```
//! Superblock format fields: 56 slot_blocks u32 · 60 heap_blocks u32 ·
//! 64 front_lba u64 · 72 shadow_lba u64 · 80 max_key_len u32 ·
//! 84 max_value_len u32. All are recomputed from (total_blocks, slot_blocks)
//! at mount and must match.
//!
//! Commit record (512 bytes): 0 magic `STCOMMIT` · 8 generation u64 ·
//! 16 area u8 (0 front, 1 shadow) · 20 entry_count u32 · 24 heap_cursor u32
//! (bytes used) · 28 table digest u32 (CRC32C of the stored CRCs of the
//! first entry_count slots, in order) · 508 CRC32C. Generation `g` lives in slot `g % 2`.
//!
//! Entry slot (32 bytes, 16 per block): 0 kind u8 (1 put, 2 tombstone) ·
//! 1 reserved · 2 key_len u16 · 4 value_len u32 · 8 heap_offset u32 ·
//! 12 data CRC32C (key bytes then value bytes) · 16..28 zero · 28 CRC32C of
//! bytes 0..28. Entries are packed in order: entry `i` starts in the heap
//! where entry `i - 1` ended; the key is followed by the value.

use crate::codec::{is_sealed, seal, LeReader, LeWriter};
use crate::error::StorageError;
use crate::features::FeatureFlags;

pub const MAGIC: [u8; 8] = *b"CAPOSST1";
pub const COMMIT_MAGIC: [u8; 8] = *b"STCOMMIT";
pub const VERSION: u32 = 1;
/// Compatible feature: a commit takes one flush, after the data, the entry
/// slots and the commit record are all written; a power cut before that
/// flush can leave a valid commit record whose entries do not verify, and
/// mount then rolls that unfinished commit back to the one before it.
/// Without the flag (stores formatted before it existed) every commit
/// flushes its data before writing the record, so the newest valid record
/// always verifies and one that does not is damage. Compatible because an
/// older reader mounts and writes such a store correctly (its mount already
/// takes the newest commit that verifies, and its two-flush commits are
/// also correct here); an older fsck reports a rolled-back commit as damage.
pub const FEATURE_SINGLE_FLUSH: u64 = 1 << 0;
pub const KNOWN_FEATURES: FeatureFlags = FeatureFlags { compatible: FEATURE_SINGLE_FLUSH, ro_compatible: 0, incompatible: 0 };
/// What `format` gives a new store: every feature this code knows.
pub const NEW_STORE_FEATURES: FeatureFlags = KNOWN_FEATURES;
pub const SLOT_SIZE: usize = 32;
pub const SLOTS_PER_BLOCK: u32 = 16;
pub const MAX_KEY_LEN: usize = 255;
pub const MAX_VALUE_LEN: usize = 64 * 1024;
pub const FRONT: u8 = 0;
pub const SHADOW: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreGeometry {
    pub total_blocks: u64,
    pub slot_blocks: u32,
    pub heap_blocks: u32,
    pub front_lba: u64,
    pub shadow_lba: u64,
}

impl StoreGeometry {
    /// Default: one eighth of each area is entry table.
    pub fn default_slot_blocks(total_blocks: u64) -> u32 {
        let area = total_blocks.saturating_sub(3) / 2;
        (area / 8).clamp(1, 1 << 16) as u32
    }

    pub fn compute(total_blocks: u64, slot_blocks: u32) -> Result<Self, StorageError> {
        let area = total_blocks.saturating_sub(3) / 2;
        if slot_blocks == 0 || slot_blocks as u64 >= area || area > u32::MAX as u64 / 512 {
            return Err(if area < 2 {
                StorageError::DeviceTooSmall { needed_blocks: 7, available_blocks: total_blocks }
            } else {
                StorageError::Corrupt { what: "CAPOSST1 entry table size out of range", detail: slot_blocks as u64 }
            });
        }
        Ok(StoreGeometry {
            total_blocks,
            slot_blocks,
            heap_blocks: (area - slot_blocks as u64) as u32,
            front_lba: 3,
            shadow_lba: 3 + area,
        })
    }

    pub fn slot_capacity(&self) -> u32 {
        self.slot_blocks * SLOTS_PER_BLOCK
    }
    pub fn heap_bytes(&self) -> u32 {
        self.heap_blocks * 512
    }
    pub fn area_lba(&self, area: u8) -> u64 {
        if area == FRONT {
            self.front_lba
        } else {
            self.shadow_lba
        }
    }
    pub fn heap_lba(&self, area: u8) -> u64 {
        self.area_lba(area) + self.slot_blocks as u64
    }

    pub fn encode(&self, block: &mut [u8]) -> Result<(), StorageError> {
        let mut w = LeWriter::new(block);
        w.u32(56, self.slot_blocks)?;
        w.u32(60, self.heap_blocks)?;
        w.u64(64, self.front_lba)?;
        w.u64(72, self.shadow_lba)?;
        w.u32(80, MAX_KEY_LEN as u32)?;
        w.u32(84, MAX_VALUE_LEN as u32)?;
        Ok(())
    }

    pub fn decode(block: &[u8], total_blocks: u64) -> Result<Self, StorageError> {
        let r = LeReader::new(block);
        let expected = Self::compute(total_blocks, r.u32(56)?)?;
        let matches = r.u32(60)? == expected.heap_blocks
            && r.u64(64)? == expected.front_lba
            && r.u64(72)? == expected.shadow_lba
            && r.u32(80)? == MAX_KEY_LEN as u32
            && r.u32(84)? == MAX_VALUE_LEN as u32;
        if !matches {
            return Err(StorageError::Corrupt {
                what: "CAPOSST1 geometry does not match its volume size and table size",
                detail: total_blocks,
            });
        }
        Ok(expected)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreCommit {
    pub generation: u64,
    pub area: u8,
    pub entry_count: u32,
    pub heap_cursor: u32,
    pub table_digest: u32,
}

impl StoreCommit {
    pub fn encode(&self) -> Result<[u8; 512], StorageError> {
        let mut block = [0u8; 512];
        let mut w = LeWriter::new(&mut block);
        w.put_bytes(0, &COMMIT_MAGIC)?;
        w.u64(8, self.generation)?;
        w.u8(16, self.area)?;
        w.u32(20, self.entry_count)?;
        w.u32(24, self.heap_cursor)?;
        w.u32(28, self.table_digest)?;
        seal(&mut block)?;
        Ok(block)
    }

    pub fn decode(block: &[u8], slot: u64, geometry: &StoreGeometry) -> Result<Self, StorageError> {
        let r = LeReader::new(block);
        if r.bytes(0, 8)? != COMMIT_MAGIC || !is_sealed(block) {
            return Err(StorageError::ChecksumMismatch { what: "CAPOSST1 commit record", location: 1 + slot });
        }
        let commit = StoreCommit {
            generation: r.u64(8)?,
            area: r.u8(16)?,
            entry_count: r.u32(20)?,
            heap_cursor: r.u32(24)?,
            table_digest: r.u32(28)?,
        };
        if commit.generation % 2 != slot
            || commit.area > SHADOW
            || commit.entry_count > geometry.slot_capacity()
            || commit.heap_cursor > geometry.heap_bytes()
        {
            return Err(StorageError::Corrupt { what: "CAPOSST1 commit record fields out of range", detail: commit.generation });
        }
        Ok(commit)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    Put,
    Tombstone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntrySlot {
    pub kind: SlotKind,
    pub key_len: u16,
    pub value_len: u32,
    pub heap_offset: u32,
    pub data_crc: u32,
}

impl EntrySlot {
    pub fn encode(&self, out: &mut [u8]) -> Result<(), StorageError> {
        out.fill(0);
        let mut w = LeWriter::new(out);
        w.u8(0, if self.kind == SlotKind::Put { 1 } else { 2 })?;
        w.u16(2, self.key_len)?;
        w.u32(4, self.value_len)?;
        w.u32(8, self.heap_offset)?;
        w.u32(12, self.data_crc)?;
        seal(out)
    }

    pub fn decode(bytes: &[u8], index: u32) -> Result<Self, StorageError> {
        if bytes.len() != SLOT_SIZE || !is_sealed(bytes) {
            return Err(StorageError::ChecksumMismatch { what: "CAPOSST1 entry slot", location: index as u64 });
        }
        let r = LeReader::new(bytes);
        let kind = match r.u8(0)? {
            1 => SlotKind::Put,
            2 => SlotKind::Tombstone,
            other => return Err(StorageError::Corrupt { what: "unknown entry kind", detail: other as u64 }),
        };
        let slot = EntrySlot {
            kind,
            key_len: r.u16(2)?,
            value_len: r.u32(4)?,
            heap_offset: r.u32(8)?,
            data_crc: r.u32(12)?,
        };
        if slot.key_len == 0
            || slot.key_len as usize > MAX_KEY_LEN
            || slot.value_len as usize > MAX_VALUE_LEN
            || (kind == SlotKind::Tombstone && slot.value_len != 0)
            || r.bytes(1, 1)? != [0]
            || r.bytes(16, 12)?.iter().any(|&b| b != 0)
        {
            return Err(StorageError::Corrupt { what: "entry slot fields out of range", detail: index as u64 });
        }
        Ok(slot)
    }

    /// Heap bytes of this entry (key then value).
    pub fn data_len(&self) -> u32 {
        self.key_len as u32 + self.value_len
    }
}
