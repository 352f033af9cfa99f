//! [`Store`]: mount, put/get/has/delete, batches, and compaction.
//!
//! Every `put`, `delete` and [`Store::apply`] batch is durable when it
//! returns `Ok`, and a batch is atomic: after a power cut a remount sees all
//! of it or none. A failed call changes nothing on disk that a remount could
//! see; after a device error the store is poisoned and must be remounted.
//!
//! A commit appends its entries (heap bytes, then slots) and writes the
//! next commit record. On a store with [`FEATURE_SINGLE_FLUSH`] one flush
//! follows all three writes; without it (stores formatted before the flag)
//! the data is flushed before the record is written, and the record is
//! flushed again. Mount takes the newest commit whose entries all verify, so
//! a single-flush commit cut short by power loss is rolled back whole
//! ([`Store::unfinished_commit`]).
//!
//! Reads come from a [`ValueCache`] of verified values where they can: a
//! hit costs no device read and no CRC.

use super::cache::{self, ValueCache};
use super::layout::*;
use crate::block::{BlockDevice, Pacer};
use crate::checksum::{crc32c, crc32c_append};
use crate::commit::{generation_exhausted, mount_newest, next_generation, slot_lba, Poison};
use crate::error::StorageError;
use crate::features::{Access, FeatureFlags};
use crate::superblock::{check_block_size, read_sector, write_sealed_sector, SuperblockHeader};
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

/// Where a live key's entry sits in the heap of the active area.
#[derive(Clone, Copy, Debug)]
struct EntryLocation {
    heap_offset: u32,
    key_len: u16,
    value_len: u32,
    data_crc: u32,
}

impl EntryLocation {
    fn data_len(&self) -> usize {
        self.key_len as usize + self.value_len as usize
    }
}

pub struct Store<D: BlockDevice> {
    device: D,
    header: SuperblockHeader,
    geometry: StoreGeometry,
    generation: u64,
    area: u8,
    entry_count: u32,
    heap_cursor: u32,
    table_digest: u32,
    /// The active area's entry table (whole capacity; the first
    /// `entry_count` slots are valid).
    slot_table: Vec<u8>,
    index: BTreeMap<Vec<u8>, EntryLocation>,
    /// Heap block `heap_cursor / 512` as committed: the bytes before the
    /// cursor, zeros after. An append rewrites that block from here instead
    /// of reading it back.
    tail: [u8; 512],
    cache: ValueCache,
    /// Buffers an append reuses (heap bytes, new entries' locations).
    scratch_heap: Vec<u8>,
    scratch_locations: Vec<EntryLocation>,
    /// One flush per commit ([`FEATURE_SINGLE_FLUSH`]).
    single_flush: bool,
    read_only: bool,
    poison: Poison,
    /// Why a newer commit record was passed over at mount, if one was.
    skipped_commit: Option<StorageError>,
    /// A single-flush commit that mount rolled back, if one was.
    unfinished_commit: Option<UnfinishedCommit>,
    /// Compactions run since mount (for tests and the benchmark).
    pub compactions: u64,
}

/// How to mount a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Never write (also forced by a read-only-compatible feature this code
    /// does not know).
    pub read_only: bool,
    /// Bytes of verified values kept in memory ([`ValueCache`]); 0 turns
    /// the cache off.
    pub cache_bytes: usize,
}

impl StoreOptions {
    /// The cache a plain [`Store::mount`] gets: small, because the kernel
    /// and the store service mount stores from a bounded heap. The host
    /// benchmark asks for more.
    pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024;
}

/// One change of a [`Store::apply`] batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

impl StoreOp<'_> {
    /// Whether [`Store::apply`] would take this op: its key and value
    /// within the format's limits (what `apply` checks first). A server
    /// that gathers several callers' ops into one batch checks each one
    /// alone, so one caller's bad op fails only that caller.
    pub fn check(&self) -> Result<(), StorageError> {
        split_op(self).map(|_| ())
    }
}

/// A commit whose record was valid at mount but whose entries did not
/// verify: on a single-flush store, a commit that power loss cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnfinishedCommit {
    pub generation: u64,
    pub why: StorageError,
}

/// Lay out an empty store over the whole device and commit generation 0,
/// with every feature this code knows ([`NEW_STORE_FEATURES`]).
pub fn format<D: BlockDevice>(device: &mut D, slot_blocks: Option<u32>) -> Result<StoreGeometry, StorageError> {
    format_with_features(device, slot_blocks, NEW_STORE_FEATURES)
}

/// [`format`] with chosen features, e.g. [`FeatureFlags::NONE`] for the
/// layout stores had before [`FEATURE_SINGLE_FLUSH`] (byte for byte what
/// older tools wrote; the compatibility tests use it). Refuses features
/// this code does not know.
pub fn format_with_features<D: BlockDevice>(
    device: &mut D,
    slot_blocks: Option<u32>,
    features: FeatureFlags,
) -> Result<StoreGeometry, StorageError> {
    let unknown = (features.compatible & !KNOWN_FEATURES.compatible)
        | (features.ro_compatible & !KNOWN_FEATURES.ro_compatible)
        | (features.incompatible & !KNOWN_FEATURES.incompatible);
    if unknown != 0 {
        return Err(StorageError::InvalidArgument("a CAPOSST1 feature this code does not know"));
    }
    check_block_size(device)?;
    let total = device.block_count();
    let geometry = StoreGeometry::compute(total, slot_blocks.unwrap_or_else(|| StoreGeometry::default_slot_blocks(total)))?;
    let header = SuperblockHeader { magic: MAGIC, version: VERSION, features, total_blocks: total };
    let mut sb = [0u8; 512];
    header.encode(&mut sb)?;
    geometry.encode(&mut sb)?;
    write_sealed_sector(device, 0, &mut sb)?;
    device.write_blocks(2, &[0u8; 512])?;
    let commit = StoreCommit { generation: 0, area: FRONT, entry_count: 0, heap_cursor: 0, table_digest: 0 };
    device.write_blocks(1, &commit.encode()?)?;
    device.flush()?;
    Ok(geometry)
}

impl<D: BlockDevice> Store<D> {
    /// Mount the newest commit whose entries all verify, with the default
    /// cache. `read_only` never writes; otherwise an interrupted compaction
    /// is finished. Read-write, a store whose generation is `u64::MAX` is
    /// refused.
    pub fn mount(device: D, read_only: bool) -> Result<Self, StorageError> {
        Self::mount_with(device, StoreOptions { read_only, cache_bytes: StoreOptions::DEFAULT_CACHE_BYTES })
    }

    /// [`Store::mount`] with chosen options.
    pub fn mount_with(mut device: D, options: StoreOptions) -> Result<Self, StorageError> {
        check_block_size(&device)?;
        let sb = read_sector(&mut device, 0)?;
        let header = SuperblockHeader::decode(&sb, &MAGIC, "CAPOSST1", VERSION, device.block_count())?;
        let access = header.features.check(&KNOWN_FEATURES)?;
        let single_flush = header.features.compatible & FEATURE_SINGLE_FLUSH != 0;
        let geometry = StoreGeometry::decode(&sb, header.total_blocks)?;
        let newest = mount_newest(
            &mut device,
            |block, slot| StoreCommit::decode(block, slot, &geometry),
            |commit| commit.generation,
            |device, commit| load_area(device, &geometry, commit),
        )?;
        let (commit, area) = (newest.record, newest.loaded);
        // A newer record that failed to verify: with one flush per commit,
        // the commit a power cut interrupted (rolled back); otherwise
        // damage (skipped, and fsck says so).
        let (skipped_commit, unfinished_commit) = match newest.passed_over {
            Some((generation, why)) if single_flush => (None, Some(UnfinishedCommit { generation, why })),
            Some((_, why)) => (Some(why), None),
            None => (None, None),
        };
        let mut store = Store {
            device,
            header,
            geometry,
            generation: commit.generation,
            area: commit.area,
            entry_count: commit.entry_count,
            heap_cursor: commit.heap_cursor,
            table_digest: commit.table_digest,
            slot_table: area.table,
            index: area.index,
            tail: [0; 512],
            cache: ValueCache::new(options.cache_bytes),
            scratch_heap: Vec::new(),
            scratch_locations: Vec::new(),
            single_flush,
            read_only: options.read_only || access == Access::ReadOnly,
            poison: Poison::default(),
            skipped_commit,
            unfinished_commit,
            compactions: 0,
        };
        store.settle_heap(&area.heap);
        store.fill_cache(&area.heap);
        if !store.read_only && store.generation == u64::MAX {
            return Err(generation_exhausted());
        }
        if !store.read_only && store.area != FRONT {
            // A compaction committed the shadow area but had not
            // recommitted the front yet: finish it.
            let live = store.entries()?;
            let result = store.write_and_commit(FRONT, &live);
            store.poison.guard(result)?;
        }
        Ok(store)
    }

    /// After the active area's heap (its first `heap_cursor` bytes) was
    /// loaded or written: keep its tail block.
    fn settle_heap(&mut self, heap: &[u8]) {
        let cursor = self.heap_cursor as usize;
        self.tail = [0; 512];
        let tail_start = cursor / 512 * 512;
        self.tail[..cursor - tail_start].copy_from_slice(&heap[tail_start..cursor]);
    }

    /// At mount, with the area's heap just read and every entry verified:
    /// cache the newest live values the budget holds.
    fn fill_cache(&mut self, heap: &[u8]) {
        let mut live: Vec<&EntryLocation> = self.index.values().collect();
        live.sort_unstable_by(|a, b| b.heap_offset.cmp(&a.heap_offset));
        let mut room = self.cache.budget();
        let newest = live.iter().take_while(|l| match room.checked_sub(l.data_len() + cache::OVERHEAD) {
            Some(left) => {
                room = left;
                true
            }
            None => false,
        });
        let keep = newest.count();
        // Oldest first, so the oldest of them is the first to leave.
        for location in live[..keep].iter().rev() {
            let start = location.heap_offset as usize;
            let (key, value) = heap[start..start + location.data_len()].split_at(location.key_len as usize);
            self.cache.insert(key, value);
        }
    }

    pub fn header(&self) -> &SuperblockHeader {
        &self.header
    }
    pub fn geometry(&self) -> &StoreGeometry {
        &self.geometry
    }
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Set when the newest valid commit record failed verification and an
    /// older generation was mounted instead, on a store whose commits flush
    /// their data before the record (fsck reports it as corruption).
    pub fn skipped_commit(&self) -> Option<&StorageError> {
        self.skipped_commit.as_ref()
    }
    /// Set when mount rolled back a single-flush commit whose entries did
    /// not verify: the commit a power cut interrupted, never acknowledged.
    pub fn unfinished_commit(&self) -> Option<&UnfinishedCommit> {
        self.unfinished_commit.as_ref()
    }
    /// Whether commits take one flush ([`FEATURE_SINGLE_FLUSH`]).
    pub fn single_flush(&self) -> bool {
        self.single_flush
    }
    /// The value cache (for its size and budget).
    pub fn cache(&self) -> &ValueCache {
        &self.cache
    }
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
    /// Entries in the table (live, overwritten and tombstones).
    pub fn entry_count(&self) -> u32 {
        self.entry_count
    }
    pub fn heap_used(&self) -> u32 {
        self.heap_cursor
    }
    pub fn len(&self) -> usize {
        self.index.len()
    }
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
    pub fn device(&mut self) -> &mut D {
        &mut self.device
    }
    pub fn into_device(self) -> D {
        self.device
    }

    fn check_writable(&self) -> Result<(), StorageError> {
        self.poison.check_writable(self.read_only)
    }

    /// `Store.has`.
    pub fn has(&self, key: &[u8]) -> Result<bool, StorageError> {
        self.poison.check()?;
        Ok(self.index.contains_key(key))
    }

    /// `Store.get`: the value, checked against its CRC.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_paced(key, &mut Pacer::default())
    }

    /// `Store.get` without a copy: `f` sees the value where it lies (in the
    /// cache, or in the buffer the device read into, after its CRC check).
    pub fn get_with<R>(&mut self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, StorageError> {
        self.look_up(key, &mut Pacer::default(), |value, _, _| f(value))
    }

    /// [`Store::get`], every pass over the value (clearing the buffer it
    /// is read into, its CRC, the cache's copy, the copy returned) made in
    /// pieces with `pacer`.
    fn get_paced(&mut self, key: &[u8], pacer: &mut Pacer) -> Result<Option<Vec<u8>>, StorageError> {
        self.look_up(key, pacer, |value, pacer, device| pacer.to_vec(device, value))
    }

    /// `key`'s value handed to `f` where it lies, read and checked (and
    /// cached) with `pacer` when it is not cached.
    fn look_up<R>(&mut self, key: &[u8], pacer: &mut Pacer, f: impl FnOnce(&[u8], &mut Pacer, &mut D) -> R) -> Result<Option<R>, StorageError> {
        self.poison.check()?;
        if let Some(value) = self.cache.get(key) {
            return Ok(Some(f(value, pacer, &mut self.device)));
        }
        let Some(location) = self.index.get(key).copied() else {
            return Ok(None);
        };
        let (buf, within) = read_heap(&mut self.device, &self.geometry, self.area, location.heap_offset, location.data_len() as u32, pacer)?;
        let bytes = &buf[within..within + location.data_len()];
        if pacer.crc32c_append(&mut self.device, 0, bytes) != location.data_crc || &bytes[..location.key_len as usize] != key {
            return Err(StorageError::ChecksumMismatch { what: "CAPOSST1 entry data", location: location.heap_offset as u64 });
        }
        let value = &bytes[location.key_len as usize..];
        self.cache.insert_read(key, value, &mut Paced { pacer, device: &mut self.device });
        Ok(Some(f(value, pacer, &mut self.device)))
    }

    /// `Store.list`: up to `limit` keys in byte order strictly after
    /// `after` (from the first key when `after` is `None`), and whether more
    /// keys follow the last one returned. Reads only the in-memory index.
    pub fn keys_after(&self, after: Option<&[u8]>, limit: usize) -> Result<(Vec<Vec<u8>>, bool), StorageError> {
        use core::ops::Bound;
        self.poison.check()?;
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut range = self.index.range::<[u8], _>((lower, Bound::Unbounded));
        let keys: Vec<Vec<u8>> = range.by_ref().take(limit).map(|(k, _)| k.clone()).collect();
        Ok((keys, range.next().is_some()))
    }

    /// Every live entry, sorted by key.
    pub fn entries(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StorageError> {
        // Every live key and value copied (and checked, when not cached):
        // the first half of a compaction, paced (`BlockDevice::pause`).
        let mut pacer = Pacer::default();
        let mut keys = Vec::with_capacity(self.index.len());
        for key in self.index.keys() {
            keys.push(key.clone());
            pacer.item(&mut self.device, key.len());
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            pacer.item(&mut self.device, key.len());
            let value = self.get_paced(&key, &mut pacer)?.ok_or(StorageError::NotFound)?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// `Store.put`: insert or replace; durable on return.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.apply(&[StoreOp::Put(key, value)])
    }

    /// `Store.delete`: remove `key`; `Ok(false)` when it was absent.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, StorageError> {
        self.check_writable()?;
        check_key(key)?;
        if !self.index.contains_key(key) {
            return Ok(false);
        }
        self.apply(&[StoreOp::Delete(key)]).map(|_| true)
    }

    /// Apply `ops` in order as one commit: durable and atomic on return
    /// (group commit: one flush for the lot on a single-flush store). A
    /// later op on the same key wins; deleting an absent key does nothing.
    /// Every key and value is checked before anything is written, and a
    /// batch whose result does not fit an empty area is refused with
    /// `StoreFull`, changing nothing.
    pub fn apply(&mut self, ops: &[StoreOp<'_>]) -> Result<(), StorageError> {
        self.check_writable()?;
        // What the batch leaves behind: each key's last op, in key order;
        // deletes of keys that are not there write nothing. (A single op,
        // the common case, needs no map: every allocation shows in the
        // kernel's figures.)
        let one: [(&[u8], Option<&[u8]>); 1];
        let many: Vec<(&[u8], Option<&[u8]>)>;
        let changes: &[(&[u8], Option<&[u8]>)] = if let [op] = ops {
            one = [split_op(op)?];
            &one[..]
        } else {
            let mut last: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
            for op in ops {
                let (key, value) = split_op(op)?;
                last.insert(key, value);
            }
            many = last.into_iter().collect();
            &many[..]
        };
        if changes.is_empty() {
            return Ok(());
        }
        let writes = |(key, value): &(&[u8], Option<&[u8]>)| value.is_some() || self.index.contains_key(*key);
        if changes.iter().all(writes) {
            return self.apply_changes(changes);
        }
        let kept: Vec<(&[u8], Option<&[u8]>)> = changes.iter().copied().filter(writes).collect();
        if kept.is_empty() {
            return Ok(());
        }
        self.apply_changes(&kept)
    }

    /// [`Store::apply`] after checking: one entry per change, key order,
    /// no delete of an absent key, not empty.
    fn apply_changes(&mut self, changes: &[(&[u8], Option<&[u8]>)]) -> Result<(), StorageError> {
        let bytes: u64 = changes.iter().map(|(k, v)| (k.len() + v.map_or(0, <[u8]>::len)) as u64).sum();
        let mut pacer = Pacer::default();
        let result = if self.fits(changes.len() as u64, bytes) {
            self.append(changes, &mut pacer)
        } else {
            self.entries().and_then(|live| {
                // The live entries and the changes (both in key order)
                // merged in one pass: no element of `live` moves twice.
                let mut merged = Vec::with_capacity(live.len() + changes.len());
                let mut pending = changes.iter().copied().peekable();
                for (key, value) in live {
                    pacer.item(&mut self.device, 0);
                    // New keys before this one.
                    while let Some((new_key, new_value)) = pending.next_if(|(k, _)| *k < key.as_slice()) {
                        if let Some(new_value) = new_value {
                            merged.push((new_key.to_vec(), pacer.to_vec(&mut self.device, new_value)));
                        }
                    }
                    match pending.next_if(|(k, _)| *k == key.as_slice()) {
                        Some((_, Some(new_value))) => merged.push((key, pacer.to_vec(&mut self.device, new_value))),
                        Some((_, None)) => {}
                        None => merged.push((key, value)),
                    }
                }
                for (new_key, new_value) in pending {
                    if let Some(new_value) = new_value {
                        merged.push((new_key.to_vec(), pacer.to_vec(&mut self.device, new_value)));
                    }
                }
                let result = self.compact(&merged);
                // Freed an entry at a time, paced.
                for entry in merged {
                    pacer.item(&mut self.device, 0);
                    drop(entry);
                }
                result
            })
        };
        if result.is_ok() {
            // Committed, by either path: the cache follows. A single put
            // enters (evicting the oldest); a batch's values enter while
            // there is room, so a bulk load does not churn the cache
            // through every value it writes. Either way no stale value
            // stays.
            let single = changes.len() == 1;
            for (key, value) in changes {
                match value {
                    Some(value) if single || self.cache.has_room(key.len(), value.len()) => {
                        self.cache.insert_paced(key, value, &mut Paced { pacer: &mut pacer, device: &mut self.device });
                    }
                    _ => self.cache.remove(key),
                }
            }
        }
        self.poison.guard(result)
    }

    fn fits(&self, entries: u64, bytes: u64) -> bool {
        self.entry_count as u64 + entries <= self.geometry.slot_capacity() as u64
            && self.heap_cursor as u64 + bytes <= self.geometry.heap_bytes() as u64
    }

    /// Append one entry per change (a put, or a tombstone for `None`) to
    /// the active area and commit them together.
    fn append(&mut self, changes: &[(&[u8], Option<&[u8]>)], pacer: &mut Pacer) -> Result<(), StorageError> {
        let generation = next_generation(self.generation)?;
        let start = self.heap_cursor;
        let len: u32 = changes.iter().map(|(k, v)| (k.len() + v.map_or(0, <[u8]>::len)) as u32).sum();
        let cursor = start + len;
        // Heap bytes from the block holding the cursor: that block keeps the
        // committed bytes before it (rewritten unchanged from `tail`; one
        // block is written atomically).
        let first_block = start / 512;
        // Buffers kept between appends (taken here, put back at the end;
        // lost only on a failure, which poisons the store anyway).
        let mut heap = core::mem::take(&mut self.scratch_heap);
        let mut placed = core::mem::take(&mut self.scratch_locations);
        heap.clear();
        placed.clear();
        // Room for it all up front (plus the padding to a block), so the
        // buffer never moves while it fills.
        heap.reserve((start % 512 + len) as usize + 512);
        heap.extend_from_slice(&self.tail[..(start % 512) as usize]);
        let first_slot = self.entry_count as usize;
        let mut digest = self.table_digest;
        for (i, (key, value)) in changes.iter().enumerate() {
            let value = value.unwrap_or(&[]);
            pacer.item(&mut self.device, key.len() + SLOT_SIZE);
            let at = heap.len();
            heap.extend_from_slice(key);
            pacer.extend(&mut self.device, &mut heap, value);
            let location = EntryLocation {
                heap_offset: first_block * 512 + at as u32,
                key_len: key.len() as u16,
                value_len: value.len() as u32,
                data_crc: pacer.crc32c_append(&mut self.device, 0, &heap[at..at + key.len() + value.len()]),
            };
            let kind = if changes[i].1.is_some() { SlotKind::Put } else { SlotKind::Tombstone };
            let slot = EntrySlot { kind, key_len: location.key_len, value_len: location.value_len, heap_offset: location.heap_offset, data_crc: location.data_crc };
            let index = first_slot + i;
            slot.encode(&mut self.slot_table[index * SLOT_SIZE..(index + 1) * SLOT_SIZE])?;
            digest = crc32c_append(digest, slot_seal(&self.slot_table, index));
            placed.push(location);
        }
        // Whole blocks; zeros after the cursor.
        heap.resize(heap.len().div_ceil(512) * 512, 0);
        write_chunked(&mut self.device, self.geometry.heap_lba(self.area) + first_block as u64, &heap)?;
        let first_table_block = first_slot / SLOTS_PER_BLOCK as usize;
        let end_table_block = (first_slot + changes.len()).div_ceil(SLOTS_PER_BLOCK as usize);
        write_chunked(
            &mut self.device,
            self.geometry.area_lba(self.area) + first_table_block as u64,
            &self.slot_table[first_table_block * 512..end_table_block * 512],
        )?;
        self.commit(StoreCommit {
            generation,
            area: self.area,
            entry_count: self.entry_count + changes.len() as u32,
            heap_cursor: cursor,
            table_digest: digest,
        })?;
        self.tail = [0; 512];
        if !cursor.is_multiple_of(512) {
            let last = heap.len() - 512;
            self.tail.copy_from_slice(&heap[last..]);
        }
        for ((key, value), location) in changes.iter().zip(&placed) {
            match value {
                Some(_) => {
                    self.index.insert(key.to_vec(), *location);
                }
                None => {
                    self.index.remove(*key);
                }
            }
        }
        // Keep the buffers unless a batch made them large.
        if heap.capacity() <= 64 * 1024 {
            self.scratch_heap = heap;
        }
        if placed.capacity() <= 1024 {
            self.scratch_locations = placed;
        }
        Ok(())
    }

    /// Write the commit record and flush: the durability point. On a store
    /// without [`FEATURE_SINGLE_FLUSH`] the data written for this commit is
    /// flushed first, so that a valid record always names durable entries.
    fn commit(&mut self, commit: StoreCommit) -> Result<(), StorageError> {
        if !self.single_flush {
            self.device.flush()?;
        }
        self.device.write_blocks(slot_lba(commit.generation), &commit.encode()?)?;
        self.device.flush()?;
        self.generation = commit.generation;
        self.area = commit.area;
        self.entry_count = commit.entry_count;
        self.heap_cursor = commit.heap_cursor;
        self.table_digest = commit.table_digest;
        Ok(())
    }

    /// Rewrite the store as exactly `live` (sorted by key): into the area
    /// not in use, commit; then, if that was the shadow, into the front,
    /// commit again. Refuses with `StoreFull`, changing nothing, when
    /// `live` does not fit an empty area.
    fn compact(&mut self, live: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StorageError> {
        let bytes: u64 = live.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        if live.len() as u64 > self.geometry.slot_capacity() as u64 || bytes > self.geometry.heap_bytes() as u64 {
            return Err(StorageError::StoreFull);
        }
        self.compactions += 1;
        let other = if self.area == FRONT { SHADOW } else { FRONT };
        self.write_and_commit(other, live)?;
        if other != FRONT {
            self.write_and_commit(FRONT, live)?;
        }
        Ok(())
    }

    fn write_and_commit(&mut self, area: u8, live: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StorageError> {
        let generation = next_generation(self.generation)?;
        let mut pacer = Pacer::default();
        let mut table = pacer.zeroed(&mut self.device, self.slot_table.len());
        // The whole heap's room up front (plus the padding to a block), so
        // the buffer never moves while it fills.
        let bytes: usize = live.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut heap = Vec::with_capacity(bytes + 512);
        let mut index = BTreeMap::new();
        let mut digest = 0u32;
        for (i, (key, value)) in live.iter().enumerate() {
            pacer.item(&mut self.device, key.len() + SLOT_SIZE);
            let offset = heap.len() as u32;
            heap.extend_from_slice(key);
            pacer.extend(&mut self.device, &mut heap, value);
            let data_crc = pacer.crc32c_append(&mut self.device, crc32c(key), value);
            let slot = EntrySlot { kind: SlotKind::Put, key_len: key.len() as u16, value_len: value.len() as u32, heap_offset: offset, data_crc };
            slot.encode(&mut table[i * SLOT_SIZE..(i + 1) * SLOT_SIZE])?;
            digest = crc32c_append(digest, slot_seal(&table, i));
            index.insert(key.clone(), EntryLocation { heap_offset: offset, key_len: key.len() as u16, value_len: value.len() as u32, data_crc });
        }
        let cursor = heap.len() as u32;
        heap.resize(heap.len().div_ceil(512) * 512, 0);
        let table_blocks = live.len().div_ceil(SLOTS_PER_BLOCK as usize);
        write_chunked(&mut self.device, self.geometry.area_lba(area), &table[..table_blocks * 512])?;
        write_chunked(&mut self.device, self.geometry.heap_lba(area), &heap)?;
        self.commit(StoreCommit {
            generation,
            area,
            entry_count: live.len() as u32,
            heap_cursor: cursor,
            table_digest: digest,
        })?;
        self.slot_table = table;
        // The old index freed a key at a time, paced.
        for (key, _) in core::mem::replace(&mut self.index, index) {
            pacer.item(&mut self.device, 0);
            drop(key);
        }
        self.settle_heap(&heap[..cursor as usize]);
        Ok(())
    }
}

/// The store's [`cache::Pace`]: the cache's copies and evictions paced on
/// the store's device.
struct Paced<'a, D: BlockDevice> {
    pacer: &'a mut Pacer,
    device: &'a mut D,
}

impl<D: BlockDevice> cache::Pace for Paced<'_, D> {
    fn append(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.pacer.extend(self.device, out, bytes);
    }
    fn copy(&mut self, dst: &mut [u8], src: &[u8]) {
        self.pacer.copy(self.device, dst, src);
    }
    fn evicted(&mut self) {
        self.pacer.item(self.device, 0);
    }
}

/// Write `bytes` (whole blocks) at `lba`, at most 64 KiB a request (what
/// every driver takes in one go).
fn write_chunked<D: BlockDevice>(device: &mut D, lba: u64, bytes: &[u8]) -> Result<(), StorageError> {
    for (i, chunk) in bytes.chunks(64 * 1024).enumerate() {
        device.write_blocks(lba + (i * 128) as u64, chunk)?;
    }
    Ok(())
}

/// The stored CRC of slot `index` (its last four bytes).
fn slot_seal(table: &[u8], index: usize) -> &[u8] {
    &table[(index + 1) * SLOT_SIZE - 4..(index + 1) * SLOT_SIZE]
}

/// The commit record's table digest: CRC32C of the first `count` slot
/// CRCs, in order. Not a CRC of the slot bytes: every slot ends with its
/// own CRC, and the CRC of a run of such sealed units is a constant that
/// would not notice a stale slot.
pub fn table_digest(table: &[u8], count: usize) -> u32 {
    (0..count).fold(0, |digest, i| crc32c_append(digest, slot_seal(table, i)))
}

/// An op as (key, new value or `None` for a delete), its key and value
/// checked against the format's limits.
fn split_op<'a>(op: &StoreOp<'a>) -> Result<(&'a [u8], Option<&'a [u8]>), StorageError> {
    let (key, value) = match *op {
        StoreOp::Put(key, value) => (key, Some(value)),
        StoreOp::Delete(key) => (key, None),
    };
    check_key(key)?;
    if let Some(value) = value {
        if value.len() > MAX_VALUE_LEN {
            return Err(StorageError::ValueTooLarge { len: value.len(), max: MAX_VALUE_LEN });
        }
    }
    Ok((key, value))
}

fn check_key(key: &[u8]) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidArgument("empty key"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StorageError::KeyTooLong { len: key.len(), max: MAX_KEY_LEN });
    }
    Ok(())
}

/// Read the heap blocks holding `len` bytes at `offset` of `area`: the
/// buffer and where in it the bytes start.
fn read_heap<D: BlockDevice>(
    device: &mut D,
    geometry: &StoreGeometry,
    area: u8,
    offset: u32,
    len: u32,
    pacer: &mut Pacer,
) -> Result<(Vec<u8>, usize), StorageError> {
    if len == 0 {
        return Ok((Vec::new(), 0));
    }
    let first = offset / 512;
    let end = (offset as u64 + len as u64).div_ceil(512) as u32;
    if end > geometry.heap_blocks {
        return Err(StorageError::Corrupt { what: "entry extends past the heap", detail: offset as u64 });
    }
    let mut buf = pacer.zeroed(device, ((end - first) * 512) as usize);
    device.read_blocks(geometry.heap_lba(area) + first as u64, &mut buf)?;
    Ok((buf, (offset % 512) as usize))
}

/// A verified area: its entry table, the index of live keys, and its heap
/// bytes up to the cursor.
struct LoadedArea {
    table: Vec<u8>,
    index: BTreeMap<Vec<u8>, EntryLocation>,
    heap: Vec<u8>,
}

/// Read and verify everything a commit names: its table prefix against the
/// digest, each slot, their packing, and every entry's data CRC.
fn load_area<D: BlockDevice>(device: &mut D, geometry: &StoreGeometry, commit: &StoreCommit) -> Result<LoadedArea, StorageError> {
    let mut table = vec![0u8; geometry.slot_blocks as usize * 512];
    device.read_blocks(geometry.area_lba(commit.area), &mut table)?;
    let count = commit.entry_count as usize;
    if table_digest(&table, count) != commit.table_digest {
        return Err(StorageError::ChecksumMismatch { what: "CAPOSST1 entry table (digest in commit record)", location: geometry.area_lba(commit.area) });
    }
    let (mut heap, _) = read_heap(device, geometry, commit.area, 0, commit.heap_cursor, &mut Pacer::default())?;
    heap.truncate(commit.heap_cursor as usize);
    let mut index = BTreeMap::new();
    let mut expected_offset = 0u32;
    for i in 0..count {
        let slot = EntrySlot::decode(&table[i * SLOT_SIZE..(i + 1) * SLOT_SIZE], i as u32)?;
        if slot.heap_offset != expected_offset || slot.heap_offset as u64 + slot.data_len() as u64 > commit.heap_cursor as u64 {
            return Err(StorageError::Corrupt { what: "entry not packed after its predecessor", detail: i as u64 });
        }
        let start = slot.heap_offset as usize;
        let data = &heap[start..start + slot.data_len() as usize];
        if crc32c(data) != slot.data_crc {
            return Err(StorageError::ChecksumMismatch { what: "CAPOSST1 entry data", location: i as u64 });
        }
        let key = data[..slot.key_len as usize].to_vec();
        match slot.kind {
            SlotKind::Put => {
                index.insert(key, EntryLocation { heap_offset: slot.heap_offset, key_len: slot.key_len, value_len: slot.value_len, data_crc: slot.data_crc });
            }
            SlotKind::Tombstone => {
                index.remove(&key);
            }
        }
        expected_offset += slot.data_len();
    }
    if expected_offset != commit.heap_cursor {
        return Err(StorageError::Corrupt { what: "heap cursor does not match the entries", detail: commit.heap_cursor as u64 });
    }
    Ok(LoadedArea { table, index, heap })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_digest_notices_a_stale_slot() {
        let mut table = vec![0u8; 512];
        let slot = |offset: u32, crc: u32| EntrySlot { kind: SlotKind::Put, key_len: 1, value_len: 1, heap_offset: offset, data_crc: crc };
        slot(0, 1).encode(&mut table[..32]).unwrap();
        slot(2, 2).encode(&mut table[32..64]).unwrap();
        let digest = table_digest(&table, 2);
        let mut stale = table.clone();
        slot(2, 3).encode(&mut stale[32..64]).unwrap();
        assert_ne!(table_digest(&stale, 2), digest);
        // The pitfall: a plain CRC over sealed slots does not change.
        assert_eq!(crc32c(&stale[..64]), crc32c(&table[..64]));
    }
}
