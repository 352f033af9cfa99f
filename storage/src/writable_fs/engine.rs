//! [`WritableFs`]: mount, the Directory/File operations, and commit.
//!
//! Durability contract:
//! - `mkdir`, `create`, `remove` and `rename` commit before they return:
//!   when one returns `Ok`, it and everything before it survive a power cut.
//! - `write` and `truncate` change memory and write fresh data blocks;
//!   they become durable at the next commit (`sync`, or any namespace
//!   operation).
//! - After a device error the volume is *poisoned*: memory may no longer
//!   match any committed state, so every call fails until it is remounted.

use super::layout::*;
use super::metadata::Metadata;
use crate::block::BlockDevice;
use crate::commit::{generation_exhausted, mount_newest, next_generation, slot_lba, Poison};
use crate::error::StorageError;
use crate::features::Access;
use crate::fs_api::{FileSystem, NodeHandle};
use crate::name::validate_name;
use crate::superblock::{check_block_size, read_sector, write_sealed_sector, SuperblockHeader};
use crate::time::{Clock, Timestamp};
use crate::{DirEntry, NodeKind, Stat};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, Default)]
pub struct MountOptions {
    /// Never write to the device (fsck, inspect, extract).
    pub read_only: bool,
}

/// Entries a loop walks (free blocks, free nodes, changed chain entries)
/// between two [`BlockDevice::pause`]s: a chain block's worth.
const WALK_UNIT: u32 = CHAIN_ENTRIES_PER_BLOCK;

/// The first of `count` indexes, from `cursor` round to it again, that
/// `found` accepts; `device` pauses after every [`WALK_UNIT`] looked at
/// (the allocators' walk over a long run of used nodes or blocks).
fn walk<D: BlockDevice>(device: &mut D, cursor: u32, count: u32, mut found: impl FnMut(u32) -> bool) -> Option<u32> {
    let mut step = 0;
    while step < count {
        let end = (step + WALK_UNIT).min(count);
        if let Some(i) = (step..end).map(|s| (cursor + s) % count).find(|&i| found(i)) {
            return Some(i);
        }
        step = end;
        device.pause();
    }
    None
}

pub struct WritableFs<D: BlockDevice, C: Clock> {
    device: D,
    clock: C,
    header: SuperblockHeader,
    meta: Metadata,
    generation: u64,
    read_only: bool,
    poison: Poison,
    /// Why a newer commit record was passed over at mount, if one was.
    skipped_commit: Option<StorageError>,
    /// Data blocks the last commit references: never overwritten.
    durable: Vec<bool>,
    /// Blocks free in memory and not durable.
    allocatable: u32,
    block_cursor: u32,
    node_cursor: u32,
    changed: bool,
}

/// Lay out an empty CAPOSWF1 volume over the whole device and commit
/// generation 0. `node_capacity` defaults to
/// [`WfGeometry::default_node_capacity`].
pub fn format<D: BlockDevice>(
    device: &mut D,
    node_capacity: Option<u32>,
    now: Timestamp,
) -> Result<WfGeometry, StorageError> {
    check_block_size(device)?;
    let total = device.block_count();
    let geometry = WfGeometry::compute(
        total,
        node_capacity.unwrap_or_else(|| WfGeometry::default_node_capacity(total)),
    )?;
    let header = SuperblockHeader { magic: MAGIC, version: VERSION, features: KNOWN_FEATURES, total_blocks: total };
    let mut sb = [0u8; 512];
    header.encode(&mut sb)?;
    geometry.encode(&mut sb)?;
    write_sealed_sector(device, 0, &mut sb)?;
    device.write_blocks(1, &[0u8; 1024])?;
    let mut meta = Metadata::new_empty(geometry, now);
    let (runs, digest) = meta.prepare_region(0, &mut || device.pause())?;
    for (start, bytes) in runs {
        device.write_blocks(geometry.region_lba(0) + start as u64, bytes)?;
    }
    device.flush()?;
    device.write_blocks(1, &CommitRecord { generation: 0, region_digest: digest }.encode()?)?;
    device.flush()?;
    Ok(geometry)
}

impl<D: BlockDevice, C: Clock> WritableFs<D, C> {
    /// Mount the newest commit whose record and region verify. Read-write,
    /// a volume whose generation is `u64::MAX` is refused.
    pub fn mount(mut device: D, clock: C, options: MountOptions) -> Result<Self, StorageError> {
        check_block_size(&device)?;
        let sb = read_sector(&mut device, 0)?;
        let header = SuperblockHeader::decode(&sb, &MAGIC, "CAPOSWF1", VERSION, device.block_count())?;
        let access = header.features.check(&KNOWN_FEATURES)?;
        let geometry = WfGeometry::decode(&sb, header.total_blocks)?;
        let newest = mount_newest(
            &mut device,
            CommitRecord::decode,
            |commit| commit.generation,
            |device, commit| {
                let region = (commit.generation % 2) as usize;
                let mut bytes = vec![0u8; geometry.region_blocks() as usize * 512];
                device.read_blocks(geometry.region_lba(region), &mut bytes)?;
                if Metadata::digest_of_region(&geometry, &bytes) != commit.region_digest {
                    return Err(StorageError::ChecksumMismatch {
                        what: "CAPOSWF1 metadata region (digest in commit record)",
                        location: geometry.region_lba(region),
                    });
                }
                Metadata::load(geometry, region, bytes)
            },
        )?;
        let mut fs = WritableFs {
            device,
            clock,
            header,
            meta: newest.loaded,
            generation: newest.record.generation,
            read_only: options.read_only || access == Access::ReadOnly,
            poison: Poison::default(),
            skipped_commit: newest.passed_over.map(|(_, why)| why),
            durable: Vec::new(),
            allocatable: 0,
            block_cursor: 0,
            node_cursor: 1,
            changed: false,
        };
        if !fs.read_only && fs.generation == u64::MAX {
            return Err(generation_exhausted());
        }
        fs.recompute_durable();
        Ok(fs)
    }

    pub fn header(&self) -> &SuperblockHeader {
        &self.header
    }
    pub fn geometry(&self) -> &WfGeometry {
        &self.meta.geometry
    }
    /// The generation of the commit this state descends from.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Set when the newest valid commit record named a region that failed
    /// verification and an older generation was mounted instead. Power loss
    /// never causes this (a record is written only after its region is
    /// durable), so fsck reports it as corruption.
    pub fn skipped_commit(&self) -> Option<&StorageError> {
        self.skipped_commit.as_ref()
    }
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
    /// Data blocks that can still be allocated.
    pub fn free_blocks(&self) -> u32 {
        self.allocatable
    }
    pub fn live_nodes(&self) -> usize {
        self.meta.nodes.iter().filter(|n| n.kind != RecordKind::Free).count()
    }
    pub fn device(&mut self) -> &mut D {
        &mut self.device
    }
    pub fn into_device(self) -> D {
        self.device
    }

    /// At mount: the durable blocks are those the chain table uses.
    fn recompute_durable(&mut self) {
        self.meta.take_chain_changes();
        self.durable = self.meta.chain.iter().map(|&e| e != CHAIN_FREE).collect();
        self.allocatable = self.durable.iter().filter(|&&used| !used).count() as u32;
    }

    /// After a commit: the same result as [`Self::recompute_durable`], from
    /// the blocks whose chain entry changed since the last commit alone
    /// (a commit's cost follows what it changed, not the volume's size).
    /// A block freed in memory but durable until now becomes allocatable;
    /// one taken since the last commit was already counted out.
    fn settle_durable(&mut self) {
        let changes = self.meta.take_chain_changes();
        for chunk in changes.chunks(WALK_UNIT as usize) {
            self.settle_chunk(chunk);
            self.device.pause();
        }
    }

    fn settle_chunk(&mut self, chunk: &[u32]) {
        for &block in chunk {
            let used = self.meta.chain[block as usize] != CHAIN_FREE;
            if !used && self.durable[block as usize] {
                self.allocatable += 1;
            }
            self.durable[block as usize] = used;
        }
    }

    fn check_writable(&self) -> Result<(), StorageError> {
        self.poison.check_writable(self.read_only)
    }

    /// Poison the volume when the device failed under a mutation.
    fn guard<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        self.poison.guard(result)
    }

    fn node(&self, handle: NodeHandle) -> Result<&NodeRecord, StorageError> {
        self.poison.check()?;
        match self.meta.nodes.get(handle.index as usize) {
            Some(n) if n.kind != RecordKind::Free && n.generation == handle.generation => Ok(n),
            _ => Err(StorageError::StaleHandle),
        }
    }

    fn directory(&self, handle: NodeHandle) -> Result<u32, StorageError> {
        match self.node(handle)?.kind {
            RecordKind::Directory => Ok(handle.index),
            _ => Err(StorageError::NotADirectory),
        }
    }

    fn file(&self, handle: NodeHandle) -> Result<u32, StorageError> {
        match self.node(handle)?.kind {
            RecordKind::File => Ok(handle.index),
            _ => Err(StorageError::NotAFile),
        }
    }

    fn lookup(&self, dir: u32, name: &str) -> Option<u32> {
        self.meta.children.get(&(dir, name.to_string())).copied()
    }

    fn handle(&self, index: u32) -> NodeHandle {
        NodeHandle { index, generation: self.meta.nodes[index as usize].generation }
    }

    fn allocate_node(&mut self) -> Result<u32, StorageError> {
        let capacity = self.meta.geometry.node_capacity;
        let nodes = &self.meta.nodes;
        let index = walk(&mut self.device, self.node_cursor, capacity, |i| i != ROOT_INDEX && nodes[i as usize].kind == RecordKind::Free)
            .ok_or(StorageError::TooManyNodes)?;
        self.node_cursor = index + 1;
        Ok(index)
    }

    fn allocate_block(&mut self) -> Result<u32, StorageError> {
        let count = self.meta.geometry.data_blocks;
        if self.allocatable == 0 {
            return Err(StorageError::NoSpace);
        }
        let (chain, durable) = (&self.meta.chain, &self.durable);
        let block = walk(&mut self.device, self.block_cursor, count, |b| chain[b as usize] == CHAIN_FREE && !durable[b as usize])
            .ok_or(StorageError::NoSpace)?;
        self.block_cursor = (block + 1) % count;
        self.allocatable -= 1;
        Ok(block)
    }

    /// A block left the in-memory state; it is reusable now unless the
    /// durable state still references it.
    fn release_block(&mut self, block: u32) {
        if !self.durable[block as usize] {
            self.allocatable += 1;
        }
    }

    /// Write the changed metadata into the other region, flush, write the
    /// next commit record, flush. The second write is the commit point.
    fn commit(&mut self) -> Result<(), StorageError> {
        if !self.changed {
            return Ok(());
        }
        let result = self.commit_inner();
        self.guard(result)
    }

    fn commit_inner(&mut self) -> Result<(), StorageError> {
        let next = next_generation(self.generation)?;
        let region = (next % 2) as usize;
        let region_lba = self.meta.geometry.region_lba(region);
        let device = &mut self.device;
        let (runs, digest) = self.meta.prepare_region(region, &mut || device.pause())?;
        for (start, bytes) in runs {
            self.device.write_blocks(region_lba + start as u64, bytes)?;
        }
        // Barrier: region and every data block written since the last commit
        // are durable before the record that makes them reachable.
        self.device.flush()?;
        let record = CommitRecord { generation: next, region_digest: digest }.encode()?;
        self.device.write_blocks(slot_lba(next), &record)?;
        self.device.flush()?;
        self.generation = next;
        self.meta.region_written(region);
        self.settle_durable();
        self.changed = false;
        Ok(())
    }

    fn new_node(&mut self, dir: NodeHandle, name: &str, kind: RecordKind) -> Result<NodeHandle, StorageError> {
        self.check_writable()?;
        validate_name(name, MAX_NAME_LEN)?;
        let parent = self.directory(dir)?;
        if self.lookup(parent, name).is_some() {
            return Err(StorageError::AlreadyExists);
        }
        let index = self.allocate_node()?;
        let now = self.clock.now();
        let generation = self.meta.nodes[index as usize].generation.wrapping_add(1);
        self.meta.set_node(
            index,
            NodeRecord {
                kind,
                parent,
                created: now,
                modified: now,
                generation,
                name: name.to_string(),
                ..NodeRecord::free(generation)
            },
        );
        self.meta.children.insert((parent, name.to_string()), index);
        self.touch_modified(parent, now);
        self.changed = true;
        self.commit()?;
        Ok(self.handle(index))
    }

    fn touch_modified(&mut self, index: u32, now: Timestamp) {
        self.meta.nodes[index as usize].modified = now;
        self.meta.touch_node(index);
    }

    /// Number of blocks a write of `[start, end)` to `file` must allocate.
    fn blocks_needed(&self, file: u32, start: u64, end: u64) -> u64 {
        let blocks = &self.meta.file_blocks[file as usize];
        let first = start / 512;
        let last = end.div_ceil(512);
        let existing_end = (blocks.len() as u64).min(last);
        let mut needed = last.saturating_sub(blocks.len() as u64);
        for position in first..existing_end {
            if self.durable[blocks[position as usize] as usize] {
                needed += 1;
            }
        }
        needed
    }

    /// Write `data` (or zeros when `None`) over `[offset, offset + len)`.
    /// The range must start at or before the current end of the file's
    /// blocks. Writes go to blocks the durable state does not reference.
    fn write_range(&mut self, file: u32, offset: u64, len: u64, data: Option<&[u8]>) -> Result<(), StorageError> {
        let mut pending: Option<(u64, Vec<u8>)> = None;
        let data_lba = self.meta.geometry.data_lba;
        let mut done = 0u64;
        while done < len {
            // A block's worth of work each turn (copying, allocating,
            // joining runs of up to 64 KiB between two requests): a pause
            // every eight.
            if (done / 512) % 8 == 7 {
                self.device.pause();
            }
            let at = offset + done;
            let position = (at / 512) as usize;
            let within = (at % 512) as usize;
            let take = ((512 - within) as u64).min(len - done) as usize;
            let existing = self.meta.file_blocks[file as usize].get(position).copied();
            let mut block = [0u8; 512];
            if take < 512 {
                if let Some(old) = existing {
                    self.device.read_blocks(data_lba + old as u64, &mut block)?;
                }
            }
            if let Some(data) = data {
                block[within..within + take].copy_from_slice(&data[done as usize..done as usize + take]);
            } else {
                block[within..within + take].fill(0);
            }
            let target = match existing {
                Some(old) if !self.durable[old as usize] => old,
                Some(old) => {
                    let fresh = self.allocate_block()?;
                    self.meta.replace_block(file, position, fresh);
                    self.release_block(old);
                    fresh
                }
                None => {
                    let fresh = self.allocate_block()?;
                    self.meta.append_block(file, fresh);
                    fresh
                }
            };
            let lba = data_lba + target as u64;
            match &mut pending {
                Some((start, bytes)) if *start + (bytes.len() / 512) as u64 == lba && bytes.len() < 64 * 1024 => {
                    bytes.extend_from_slice(&block)
                }
                _ => {
                    if let Some((start, bytes)) = pending.take() {
                        self.device.write_blocks(start, &bytes)?;
                    }
                    pending = Some((lba, block.to_vec()));
                }
            }
            done += take as u64;
        }
        if let Some((start, bytes)) = pending {
            self.device.write_blocks(start, &bytes)?;
        }
        Ok(())
    }

    /// Grow or overwrite `file` so that `[offset, offset+len)` holds `data`
    /// (zeros when `None`), zero-filling any gap after the current size.
    fn write_at(&mut self, file: u32, offset: u64, len: u64, data: Option<&[u8]>) -> Result<(), StorageError> {
        let size = self.meta.nodes[file as usize].size;
        let end = offset.checked_add(len).ok_or(StorageError::FileTooLarge)?;
        if end > self.meta.geometry.data_blocks as u64 * 512 {
            return Err(StorageError::FileTooLarge);
        }
        let start = offset.min(size);
        if self.blocks_needed(file, start, end) > self.allocatable as u64 {
            return Err(StorageError::NoSpace);
        }
        self.changed = true;
        if offset > size {
            self.write_range(file, size, offset - size, None)?;
        }
        self.write_range(file, offset, len, data)?;
        let now = self.clock.now();
        let node = &mut self.meta.nodes[file as usize];
        node.size = node.size.max(end);
        node.modified = now;
        self.meta.touch_node(file);
        Ok(())
    }

    fn rename_inner(&mut self, from_dir: NodeHandle, from: &str, to_dir: NodeHandle, to: &str) -> Result<(), StorageError> {
        self.check_writable()?;
        validate_name(to, MAX_NAME_LEN)?;
        let source_parent = self.directory(from_dir)?;
        let target_parent = self.directory(to_dir)?;
        let node = self.lookup(source_parent, from).ok_or(StorageError::NotFound)?;
        if source_parent == target_parent && from == to {
            // Nothing moves, but the durability contract still holds: a
            // namespace call that returns Ok has committed.
            return self.commit();
        }
        if self.lookup(target_parent, to).is_some() {
            return Err(StorageError::AlreadyExists);
        }
        if self.meta.nodes[node as usize].kind == RecordKind::Directory {
            // The target directory must not be the moved node or inside it.
            let mut at = target_parent;
            for _ in 0..=self.meta.geometry.node_capacity {
                if at == node {
                    return Err(StorageError::WouldCreateCycle);
                }
                if at == ROOT_INDEX {
                    break;
                }
                at = self.meta.nodes[at as usize].parent;
            }
        }
        let now = self.clock.now();
        self.meta.children.remove(&(source_parent, from.to_string()));
        self.meta.children.insert((target_parent, to.to_string()), node);
        let record = &mut self.meta.nodes[node as usize];
        record.parent = target_parent;
        record.name = to.to_string();
        self.meta.touch_node(node);
        self.touch_modified(source_parent, now);
        self.touch_modified(target_parent, now);
        self.changed = true;
        self.commit()
    }
}

impl<D: BlockDevice, C: Clock> FileSystem for WritableFs<D, C> {
    fn root(&self) -> NodeHandle {
        self.handle(ROOT_INDEX)
    }

    fn open(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError> {
        let parent = self.directory(dir)?;
        let index = self.lookup(parent, name).ok_or(StorageError::NotFound)?;
        match self.meta.nodes[index as usize].kind {
            RecordKind::File => Ok(self.handle(index)),
            _ => Err(StorageError::NotAFile),
        }
    }

    fn sub(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError> {
        let parent = self.directory(dir)?;
        let index = self.lookup(parent, name).ok_or(StorageError::NotFound)?;
        match self.meta.nodes[index as usize].kind {
            RecordKind::Directory => Ok(self.handle(index)),
            _ => Err(StorageError::NotADirectory),
        }
    }

    fn list(&mut self, dir: NodeHandle) -> Result<Vec<DirEntry>, StorageError> {
        let parent = self.directory(dir)?;
        let range = (parent, String::new())..(parent + 1, String::new());
        Ok(self
            .meta
            .children
            .range(range)
            .map(|((_, name), &child)| {
                let node = &self.meta.nodes[child as usize];
                DirEntry {
                    name: name.clone(),
                    kind: if node.kind == RecordKind::Directory { NodeKind::Directory } else { NodeKind::File },
                    size: node.size,
                }
            })
            .collect())
    }

    fn mkdir(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError> {
        let result = self.new_node(dir, name, RecordKind::Directory);
        self.guard(result)
    }

    fn create(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError> {
        let result = self.new_node(dir, name, RecordKind::File);
        self.guard(result)
    }

    fn remove(&mut self, dir: NodeHandle, name: &str) -> Result<(), StorageError> {
        self.check_writable()?;
        let parent = self.directory(dir)?;
        let index = self.lookup(parent, name).ok_or(StorageError::NotFound)?;
        if self.meta.nodes[index as usize].kind == RecordKind::Directory {
            let range = (index, String::new())..(index + 1, String::new());
            if self.meta.children.range(range).next().is_some() {
                return Err(StorageError::DirectoryNotEmpty);
            }
        }
        let device = &mut self.device;
        for block in self.meta.truncate_blocks(index, 0, &mut || device.pause()) {
            self.release_block(block);
        }
        let generation = self.meta.nodes[index as usize].generation;
        self.meta.set_node(index, NodeRecord::free(generation));
        self.meta.children.remove(&(parent, name.to_string()));
        let now = self.clock.now();
        self.touch_modified(parent, now);
        self.changed = true;
        let result = self.commit();
        self.guard(result)
    }

    fn rename(&mut self, from_dir: NodeHandle, from: &str, to_dir: NodeHandle, to: &str) -> Result<(), StorageError> {
        let result = self.rename_inner(from_dir, from, to_dir, to);
        self.guard(result)
    }

    fn read(&mut self, file: NodeHandle, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let index = self.file(file)?;
        let size = self.meta.nodes[index as usize].size;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let len = (size - offset).min(buf.len() as u64) as usize;
        let data_lba = self.meta.geometry.data_lba;
        let mut done = 0usize;
        let mut sector = [0u8; 512];
        while done < len {
            let at = offset + done as u64;
            let position = (at / 512) as usize;
            let within = (at % 512) as usize;
            let blocks = &self.meta.file_blocks[index as usize];
            let first = blocks[position];
            if within == 0 && len - done >= 512 {
                // Read a run of physically consecutive whole blocks at once.
                let mut run = 1usize;
                while run < (len - done) / 512
                    && run < 128
                    && blocks.get(position + run) == Some(&(first + run as u32))
                {
                    run += 1;
                }
                self.device.read_blocks(data_lba + first as u64, &mut buf[done..done + run * 512])?;
                done += run * 512;
            } else {
                self.device.read_blocks(data_lba + first as u64, &mut sector)?;
                let take = (512 - within).min(len - done);
                buf[done..done + take].copy_from_slice(&sector[within..within + take]);
                done += take;
            }
        }
        Ok(len)
    }

    fn write(&mut self, file: NodeHandle, offset: u64, data: &[u8]) -> Result<usize, StorageError> {
        self.check_writable()?;
        let index = self.file(file)?;
        if data.is_empty() {
            return Ok(0);
        }
        let result = self.write_at(index, offset, data.len() as u64, Some(data));
        self.guard(result).map(|_| data.len())
    }

    fn stat(&mut self, node: NodeHandle) -> Result<Stat, StorageError> {
        let record = self.node(node)?;
        Ok(Stat {
            kind: if record.kind == RecordKind::Directory { NodeKind::Directory } else { NodeKind::File },
            size: record.size,
            created: record.created,
            modified: record.modified,
        })
    }

    fn truncate(&mut self, file: NodeHandle, size: u64) -> Result<(), StorageError> {
        self.check_writable()?;
        let index = self.file(file)?;
        let current = self.meta.nodes[index as usize].size;
        let result = if size > current {
            self.write_at(index, current, size - current, None)
        } else {
            let keep = size.div_ceil(512) as usize;
            let device = &mut self.device;
            for block in self.meta.truncate_blocks(index, keep, &mut || device.pause()) {
                self.release_block(block);
            }
            let now = self.clock.now();
            let node = &mut self.meta.nodes[index as usize];
            node.size = size;
            node.modified = now;
            self.meta.touch_node(index);
            self.changed = true;
            Ok(())
        };
        self.guard(result)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_writable()?;
        self.commit()
    }
}
