//! The in-memory metadata of a mounted CAPOSWF1 volume.
//!
//! Why in memory: a volume's metadata is small (128 bytes per node, 4 bytes
//! per data block) and holding it whole makes every operation simple and
//! lets a commit write exactly the blocks that changed. Each change marks
//! its block dirty for *both* regions; a commit into region `r` writes the
//! blocks dirty for `r` and clears only those, so after the write region
//! `r` equals memory even though it skipped blocks that changed in the
//! previous generation only.
//!
//! [`Metadata::load`] is the mount-time validator: a hostile region can
//! only produce an error, with work and memory bounded by the geometry.

use super::layout::*;
use crate::codec::{is_sealed, seal, LeReader, LeWriter};
use crate::error::StorageError;
use crate::time::Timestamp;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

pub struct Metadata {
    pub geometry: WfGeometry,
    pub nodes: Vec<NodeRecord>,
    /// Chain-table entries, one per data block.
    pub chain: Vec<u32>,
    /// The data blocks of every file in order (derived from `chain`).
    pub file_blocks: Vec<Vec<u32>>,
    /// (parent, name) → child index, for every live non-root node.
    pub children: BTreeMap<(u32, String), u32>,
    region_image: Vec<u8>,
    /// Per block: CRC32C of the checksums stored in it (its fingerprint),
    /// little-endian, 4 bytes a block: the digest is one CRC over this.
    fingerprints: Vec<u8>,
    stale_encoding: Vec<bool>,
    dirty: [Vec<bool>; 2],
    /// Data blocks whose chain entry changed since the last
    /// [`Metadata::take_chain_changes`], each listed once (`chain_marked`):
    /// a commit settles only these instead of the whole chain table.
    chain_changed: Vec<u32>,
    chain_marked: Vec<bool>,
}

impl Metadata {
    /// A fresh volume: an empty root directory, every data block free.
    pub fn new_empty(geometry: WfGeometry, now: Timestamp) -> Self {
        let blocks = geometry.region_blocks() as usize;
        let mut nodes = vec![NodeRecord::free(0); geometry.node_capacity as usize];
        nodes[ROOT_INDEX as usize] = NodeRecord {
            kind: RecordKind::Directory,
            created: now,
            modified: now,
            ..NodeRecord::free(0)
        };
        Metadata {
            geometry,
            file_blocks: vec![Vec::new(); nodes.len()],
            nodes,
            chain: vec![CHAIN_FREE; geometry.data_blocks as usize],
            children: BTreeMap::new(),
            region_image: vec![0u8; blocks * 512],
            fingerprints: vec![0; blocks * 4],
            stale_encoding: vec![true; blocks],
            dirty: [vec![true; blocks], vec![true; blocks]],
            chain_changed: Vec::new(),
            chain_marked: vec![false; geometry.data_blocks as usize],
        }
    }

    /// The region digest a commit record carries: CRC32C of every record
    /// and block checksum in the region, in order.
    ///
    /// Why not a CRC of the raw bytes: a region is a concatenation of
    /// sealed units (bytes followed by their own CRC32C), and the CRC of
    /// such a concatenation is the same constant whatever the contents —
    /// it would not notice a stale block. The stored checksums themselves
    /// are content fingerprints, so a digest over them does.
    pub fn digest_of_region(geometry: &WfGeometry, region: &[u8]) -> u32 {
        let mut digest = 0u32;
        for (block, bytes) in region.chunks(512).enumerate() {
            digest = crate::checksum::crc32c_append(digest, &block_fingerprint(geometry, block, bytes));
        }
        digest
    }

    /// Decode and validate a region read from disk (it was written for
    /// region number `region`).
    pub fn load(geometry: WfGeometry, region: usize, bytes: Vec<u8>) -> Result<Self, StorageError> {
        let blocks = geometry.region_blocks() as usize;
        if bytes.len() != blocks * 512 {
            return Err(StorageError::Truncated);
        }
        let capacity = geometry.node_capacity;
        let mut nodes = Vec::with_capacity(capacity as usize);
        for index in 0..capacity {
            let at = index as usize * NODE_RECORD_SIZE;
            nodes.push(NodeRecord::decode(&bytes[at..at + NODE_RECORD_SIZE], index)?);
        }
        let mut chain = Vec::with_capacity(geometry.data_blocks as usize);
        for block in 0..geometry.chain_blocks {
            let at = (geometry.node_blocks + block) as usize * 512;
            let raw = &bytes[at..at + 512];
            if !is_sealed(raw) {
                return Err(StorageError::ChecksumMismatch {
                    what: "CAPOSWF1 chain-table block",
                    location: (geometry.node_blocks + block) as u64,
                });
            }
            let r = LeReader::new(raw);
            for i in 0..CHAIN_ENTRIES_PER_BLOCK {
                if chain.len() < geometry.data_blocks as usize {
                    chain.push(r.u32(i as usize * 4)?);
                } else if r.u32(i as usize * 4)? != CHAIN_FREE {
                    return Err(StorageError::Corrupt { what: "chain entry past the data area", detail: i as u64 });
                }
            }
        }
        let mut meta = Metadata {
            geometry,
            file_blocks: vec![Vec::new(); nodes.len()],
            nodes,
            chain,
            children: BTreeMap::new(),
            fingerprints: bytes.chunks(512).enumerate().flat_map(|(i, b)| block_fingerprint(&geometry, i, b)).collect(),
            region_image: bytes,
            stale_encoding: vec![false; blocks],
            dirty: [vec![false; blocks], vec![false; blocks]],
            chain_changed: Vec::new(),
            chain_marked: vec![false; geometry.data_blocks as usize],
        };
        meta.dirty[1 - region] = vec![true; blocks];
        meta.validate()?;
        Ok(meta)
    }

    /// Every invariant of a volume's metadata (see docs: "what fsck checks").
    fn validate(&mut self) -> Result<(), StorageError> {
        let corrupt = |what, detail: u64| StorageError::Corrupt { what, detail };
        let data_blocks = self.geometry.data_blocks;
        for &entry in &self.chain {
            if entry != CHAIN_FREE && entry != CHAIN_END && entry >= data_blocks {
                return Err(corrupt("chain entry points outside the data area", entry as u64));
            }
        }
        let root = &self.nodes[ROOT_INDEX as usize];
        if root.kind != RecordKind::Directory || root.parent != ROOT_INDEX {
            return Err(corrupt("root node is not a directory", 0));
        }
        let mut owned = vec![false; data_blocks as usize];
        for index in 0..self.nodes.len() {
            let node = &self.nodes[index];
            match node.kind {
                RecordKind::Free => continue,
                RecordKind::Directory => {
                    if node.size != 0 || node.block_count != 0 || node.first_block != CHAIN_END {
                        return Err(corrupt("directory node with data", index as u64));
                    }
                }
                RecordKind::File => {
                    if node.block_count as u64 != node.size.div_ceil(512)
                        || node.block_count > data_blocks
                    {
                        return Err(corrupt("file size and block count disagree", index as u64));
                    }
                    let mut blocks = Vec::with_capacity(node.block_count as usize);
                    let mut at = node.first_block;
                    for _ in 0..node.block_count {
                        if at >= data_blocks || owned[at as usize] {
                            return Err(corrupt("file block chain out of range or shared", index as u64));
                        }
                        owned[at as usize] = true;
                        blocks.push(at);
                        at = self.chain[at as usize];
                    }
                    if at != CHAIN_END && node.block_count > 0 {
                        return Err(corrupt("file block chain longer than its size", index as u64));
                    }
                    if node.block_count == 0 && node.first_block != CHAIN_END {
                        return Err(corrupt("empty file with a first block", index as u64));
                    }
                    self.file_blocks[index] = blocks;
                }
            }
            if index as u32 != ROOT_INDEX {
                let parent = node.parent as usize;
                if parent >= self.nodes.len()
                    || parent == index
                    || self.nodes[parent].kind != RecordKind::Directory
                {
                    return Err(corrupt("parent is not a directory", index as u64));
                }
                let key = (node.parent, node.name.clone());
                if self.children.insert(key, index as u32).is_some() {
                    return Err(corrupt("duplicate name in a directory", index as u64));
                }
            }
        }
        for (block, &entry) in self.chain.iter().enumerate() {
            if entry != CHAIN_FREE && !owned[block] {
                return Err(corrupt("chain entry in use by no file", block as u64));
            }
            if entry == CHAIN_FREE && owned[block] {
                return Err(corrupt("file block marked free", block as u64));
            }
        }
        // Every parent chain must reach the root: walk up, marking nodes
        // on the current path; meeting one again is a cycle. Each node is
        // settled once, so this is linear.
        const UNKNOWN: u8 = 0;
        const ON_PATH: u8 = 1;
        const REACHES_ROOT: u8 = 2;
        let mut state = vec![UNKNOWN; self.nodes.len()];
        state[ROOT_INDEX as usize] = REACHES_ROOT;
        let mut path = Vec::new();
        for start in 0..self.nodes.len() {
            if self.nodes[start].kind == RecordKind::Free {
                continue;
            }
            let mut at = start;
            while state[at] == UNKNOWN {
                state[at] = ON_PATH;
                path.push(at);
                at = self.nodes[at].parent as usize;
            }
            if state[at] == ON_PATH {
                return Err(corrupt("directory cycle", at as u64));
            }
            for node in path.drain(..) {
                state[node] = REACHES_ROOT;
            }
        }
        Ok(())
    }

    fn mark(&mut self, block: u32) {
        let block = block as usize;
        self.stale_encoding[block] = true;
        self.dirty[0][block] = true;
        self.dirty[1][block] = true;
    }

    pub fn set_node(&mut self, index: u32, record: NodeRecord) {
        self.nodes[index as usize] = record;
        self.mark(index / NODES_PER_BLOCK);
    }

    pub fn touch_node(&mut self, index: u32) {
        self.mark(index / NODES_PER_BLOCK);
    }

    fn set_chain(&mut self, block: u32, value: u32) {
        if self.chain[block as usize] != value {
            self.chain[block as usize] = value;
            self.mark(self.geometry.node_blocks + block / CHAIN_ENTRIES_PER_BLOCK);
            if !self.chain_marked[block as usize] {
                self.chain_marked[block as usize] = true;
                self.chain_changed.push(block);
            }
        }
    }

    /// The data blocks whose chain entry changed since the last call, each
    /// once, in no particular order.
    pub fn take_chain_changes(&mut self) -> Vec<u32> {
        let changed = core::mem::take(&mut self.chain_changed);
        for &block in &changed {
            self.chain_marked[block as usize] = false;
        }
        changed
    }

    /// Add `block` at the end of `node`'s chain.
    pub fn append_block(&mut self, node: u32, block: u32) {
        match self.file_blocks[node as usize].last().copied() {
            Some(last) => self.set_chain(last, block),
            None => self.nodes[node as usize].first_block = block,
        }
        self.set_chain(block, CHAIN_END);
        self.file_blocks[node as usize].push(block);
        self.nodes[node as usize].block_count += 1;
        self.touch_node(node);
    }

    /// Put `new_block` in place of the `position`-th block of `node`.
    pub fn replace_block(&mut self, node: u32, position: usize, new_block: u32) {
        let old = self.file_blocks[node as usize][position];
        let next = self.chain[old as usize];
        self.set_chain(new_block, next);
        if position == 0 {
            self.nodes[node as usize].first_block = new_block;
            self.touch_node(node);
        } else {
            let previous = self.file_blocks[node as usize][position - 1];
            self.set_chain(previous, new_block);
        }
        self.set_chain(old, CHAIN_FREE);
        self.file_blocks[node as usize][position] = new_block;
    }

    /// Keep the first `keep` blocks of `node`; returns the released blocks.
    /// `pause` is called once per chain block's worth of entries freed
    /// (`BlockDevice::pause`).
    pub fn truncate_blocks(&mut self, node: u32, keep: usize, pause: &mut dyn FnMut()) -> Vec<u32> {
        let released: Vec<u32> = self.file_blocks[node as usize].split_off(keep);
        for chunk in released.chunks(CHAIN_ENTRIES_PER_BLOCK as usize) {
            for &block in chunk {
                self.set_chain(block, CHAIN_FREE);
            }
            pause();
        }
        match self.file_blocks[node as usize].last().copied() {
            Some(last) => self.set_chain(last, CHAIN_END),
            None => self.nodes[node as usize].first_block = CHAIN_END,
        }
        self.nodes[node as usize].block_count = keep as u32;
        self.touch_node(node);
        released
    }

    /// Bring the encoded region up to date with memory; `pause` between
    /// two blocks encoded (`BlockDevice::pause`: after many writes without
    /// a commit, hundreds of blocks may be stale).
    fn refresh_encoding(&mut self, pause: &mut dyn FnMut()) -> Result<(), StorageError> {
        for block in 0..self.stale_encoding.len() {
            if !self.stale_encoding[block] {
                continue;
            }
            pause();
            let bytes = &mut self.region_image[block * 512..(block + 1) * 512];
            if (block as u32) < self.geometry.node_blocks {
                for slot in 0..NODES_PER_BLOCK as usize {
                    let index = block * NODES_PER_BLOCK as usize + slot;
                    self.nodes[index]
                        .encode(&mut bytes[slot * NODE_RECORD_SIZE..(slot + 1) * NODE_RECORD_SIZE])?;
                }
            } else {
                let first = (block - self.geometry.node_blocks as usize) * CHAIN_ENTRIES_PER_BLOCK as usize;
                let mut w = LeWriter::new(bytes);
                for i in 0..CHAIN_ENTRIES_PER_BLOCK as usize {
                    let entry = self.chain.get(first + i).copied().unwrap_or(CHAIN_FREE);
                    w.u32(i * 4, entry)?;
                }
                seal(bytes)?;
            }
            let fingerprint = block_fingerprint(&self.geometry, block, &self.region_image[block * 512..(block + 1) * 512]);
            self.fingerprints[block * 4..block * 4 + 4].copy_from_slice(&fingerprint);
            self.stale_encoding[block] = false;
        }
        Ok(())
    }

    /// The runs of blocks to write into `region` (start, encoded bytes) and
    /// the digest the commit record must carry; `pause` as in
    /// [`Self::refresh_encoding`].
    pub fn prepare_region(&mut self, region: usize, pause: &mut dyn FnMut()) -> Result<(Vec<(u32, &[u8])>, u32), StorageError> {
        self.refresh_encoding(pause)?;
        let digest = crate::checksum::crc32c(&self.fingerprints);
        let mut runs = Vec::new();
        let dirty = &self.dirty[region];
        let mut block = 0usize;
        while block < dirty.len() {
            if !dirty[block] {
                block += 1;
                continue;
            }
            let start = block;
            while block < dirty.len() && dirty[block] && block - start < 64 {
                block += 1;
            }
            runs.push((start as u32, &self.region_image[start * 512..block * 512]));
        }
        Ok((runs, digest))
    }

    /// Record that `region` now holds the current metadata.
    pub fn region_written(&mut self, region: usize) {
        self.dirty[region].iter_mut().for_each(|d| *d = false);
    }
}

/// CRC32C of the checksums stored in region block `block`: the four node
/// record CRCs of a node block, or the seal of a chain-table block.
fn seals_crc(geometry: &WfGeometry, block: usize, bytes: &[u8]) -> u32 {
    let unit = if (block as u32) < geometry.node_blocks { NODE_RECORD_SIZE } else { 512 };
    let mut crc = 0u32;
    for end in (unit..=bytes.len()).step_by(unit) {
        crc = crate::checksum::crc32c_append(crc, &bytes[end - 4..end]);
    }
    crc
}

fn block_fingerprint(geometry: &WfGeometry, block: usize, bytes: &[u8]) -> [u8; 4] {
    seals_crc(geometry, block, bytes).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::crc32c;
    use crate::time::Provenance;

    #[test]
    fn digest_notices_a_stale_block() {
        let geometry = WfGeometry::compute(400, 16).unwrap();
        let mut meta = Metadata::new_empty(geometry, Timestamp::new(1, Provenance::Rtc));
        let (_, digest_before) = meta.prepare_region(0, &mut || ()).unwrap();
        let before = meta.region_image.clone();
        let mut node = meta.nodes[1].clone();
        node.kind = RecordKind::File;
        node.name = String::from("x");
        meta.set_node(1, node);
        let (_, digest_after) = meta.prepare_region(0, &mut || ()).unwrap();
        assert_ne!(digest_before, digest_after);
        assert_eq!(Metadata::digest_of_region(&geometry, &meta.region_image), digest_after);
        // The old node block in the new region: a stale write the digest must catch.
        let mut stale = meta.region_image.clone();
        stale[..512].copy_from_slice(&before[..512]);
        assert_ne!(Metadata::digest_of_region(&geometry, &stale), digest_after);
        // The pitfall this avoids: the CRC of any sealed unit is one constant.
        assert_ne!(before[..128], meta.region_image[128..256]);
        assert_eq!(crc32c(&before[..128]), crc32c(&meta.region_image[128..256]));
    }
}
