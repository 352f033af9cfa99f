//! [`Store`]: mount, put/get/has/delete, and compaction.
//!
//! Every `put` and `delete` is durable when it returns `Ok`. A failed call
//! changes nothing on disk that a remount could see; after a device error
//! the store is poisoned and must be remounted.

use super::layout::*;
use crate::block::BlockDevice;
use crate::checksum::{crc32c, crc32c_append};
use crate::error::StorageError;
use crate::features::Access;
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
    read_only: bool,
    poisoned: bool,
    /// Why a newer commit record was passed over at mount, if one was.
    skipped_commit: Option<StorageError>,
    /// Compactions run since mount (for tests and the benchmark).
    pub compactions: u64,
}

/// Lay out an empty store over the whole device and commit generation 0.
pub fn format<D: BlockDevice>(device: &mut D, slot_blocks: Option<u32>) -> Result<StoreGeometry, StorageError> {
    check_block_size(device)?;
    let total = device.block_count();
    let geometry = StoreGeometry::compute(total, slot_blocks.unwrap_or_else(|| StoreGeometry::default_slot_blocks(total)))?;
    let header = SuperblockHeader { magic: MAGIC, version: VERSION, features: KNOWN_FEATURES, total_blocks: total };
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

/// A commit after generation `u64::MAX` would wrap to 0 and lose to every
/// older record: refuse instead (no real store gets there; a crafted one
/// can be read, but not mounted read-write).
fn generation_exhausted() -> StorageError {
    StorageError::Corrupt { what: "commit generation is u64::MAX: no further commit is possible", detail: u64::MAX }
}

impl<D: BlockDevice> Store<D> {
    /// Mount the newest commit whose entries all verify. `read_only` never
    /// writes; otherwise an interrupted compaction is finished. Read-write,
    /// a store whose generation is `u64::MAX` is refused.
    pub fn mount(mut device: D, read_only: bool) -> Result<Self, StorageError> {
        check_block_size(&device)?;
        let sb = read_sector(&mut device, 0)?;
        let header = SuperblockHeader::decode(&sb, &MAGIC, "CAPOSST1", VERSION, device.block_count())?;
        let access = header.features.check(&KNOWN_FEATURES)?;
        let geometry = StoreGeometry::decode(&sb, header.total_blocks)?;
        let mut commits = Vec::new();
        let mut last_error = StorageError::NoValidCommit;
        for slot in 0..2u64 {
            match StoreCommit::decode(&read_sector(&mut device, 1 + slot)?, slot, &geometry) {
                Ok(c) => commits.push(c),
                // A record whose checksum holds but whose fields do not says
                // more about the damage than a torn or empty slot does.
                Err(_) if matches!(last_error, StorageError::Corrupt { .. }) => {}
                Err(e) => last_error = e,
            }
        }
        commits.sort_by(|a, b| b.generation.cmp(&a.generation));
        let mut skipped: Option<StorageError> = None;
        for commit in commits {
            match load_area(&mut device, &geometry, &commit) {
                Ok((slot_table, index)) => {
                    let mut store = Store {
                        device,
                        header,
                        geometry,
                        generation: commit.generation,
                        area: commit.area,
                        entry_count: commit.entry_count,
                        heap_cursor: commit.heap_cursor,
                        table_digest: commit.table_digest,
                        slot_table,
                        index,
                        read_only: read_only || access == Access::ReadOnly,
                        poisoned: false,
                        skipped_commit: skipped.clone(),
                        compactions: 0,
                    };
                    if !store.read_only && store.generation == u64::MAX {
                        return Err(generation_exhausted());
                    }
                    if !store.read_only && store.area != FRONT {
                        // A compaction committed the shadow area but had not
                        // recommitted the front yet: finish it.
                        let live = store.entries()?;
                        let result = store.write_and_commit(FRONT, &live);
                        store.guard(result)?;
                    }
                    return Ok(store);
                }
                Err(e @ StorageError::Device(_)) => return Err(e),
                Err(e) => {
                    skipped = Some(e.clone());
                    last_error = e;
                }
            }
        }
        Err(last_error)
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
    /// older generation was mounted instead (fsck reports it as corruption).
    pub fn skipped_commit(&self) -> Option<&StorageError> {
        self.skipped_commit.as_ref()
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
        if self.poisoned {
            Err(StorageError::Poisoned)
        } else if self.read_only {
            Err(StorageError::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn guard<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(StorageError::Device(_)) = result {
            self.poisoned = true;
        }
        result
    }

    /// `Store.has`.
    pub fn has(&self, key: &[u8]) -> Result<bool, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        Ok(self.index.contains_key(key))
    }

    /// `Store.get`: the value, checked against its CRC.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        let Some(location) = self.index.get(key).copied() else {
            return Ok(None);
        };
        let bytes = read_heap(
            &mut self.device,
            &self.geometry,
            self.area,
            location.heap_offset,
            location.key_len as u32 + location.value_len,
        )?;
        if crc32c(&bytes) != location.data_crc || &bytes[..location.key_len as usize] != key {
            return Err(StorageError::ChecksumMismatch { what: "CAPOSST1 entry data", location: location.heap_offset as u64 });
        }
        Ok(Some(bytes[location.key_len as usize..].to_vec()))
    }

    /// `Store.list`: up to `limit` keys in byte order strictly after
    /// `after` (from the first key when `after` is `None`), and whether more
    /// keys follow the last one returned. Reads only the in-memory index.
    pub fn keys_after(&self, after: Option<&[u8]>, limit: usize) -> Result<(Vec<Vec<u8>>, bool), StorageError> {
        use core::ops::Bound;
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
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
        let keys: Vec<Vec<u8>> = self.index.keys().cloned().collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.get(&key)?.ok_or(StorageError::NotFound)?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// `Store.put`: insert or replace; durable on return.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.check_writable()?;
        check_key(key)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(StorageError::ValueTooLarge { len: value.len(), max: MAX_VALUE_LEN });
        }
        let result = if self.fits(key.len() + value.len()) {
            self.append(SlotKind::Put, key, value)
        } else {
            let mut live = self.entries()?;
            match live.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                Ok(at) => live[at].1 = value.to_vec(),
                Err(at) => live.insert(at, (key.to_vec(), value.to_vec())),
            }
            self.compact(&live)
        };
        self.guard(result)
    }

    /// `Store.delete`: remove `key`; `Ok(false)` when it was absent.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, StorageError> {
        self.check_writable()?;
        check_key(key)?;
        if !self.index.contains_key(key) {
            return Ok(false);
        }
        let result = if self.fits(key.len()) {
            self.append(SlotKind::Tombstone, key, &[])
        } else {
            let mut live = self.entries()?;
            live.retain(|(k, _)| k.as_slice() != key);
            self.compact(&live)
        };
        self.guard(result).map(|_| true)
    }

    fn fits(&self, len: usize) -> bool {
        self.entry_count < self.geometry.slot_capacity()
            && self.heap_cursor as u64 + len as u64 <= self.geometry.heap_bytes() as u64
    }

    /// Append one entry to the active area and commit it.
    fn append(&mut self, kind: SlotKind, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let generation = self.next_generation()?;
        let offset = self.heap_cursor;
        let len = (key.len() + value.len()) as u32;
        // Heap bytes: the first block keeps the committed bytes before
        // `offset` (rewritten unchanged; one block is written atomically).
        let first_block = offset / 512;
        let end_block = (offset + len).div_ceil(512);
        let mut buf = vec![0u8; ((end_block - first_block) * 512) as usize];
        let heap_lba = self.geometry.heap_lba(self.area);
        if !offset.is_multiple_of(512) {
            self.device.read_blocks(heap_lba + first_block as u64, &mut buf[..512])?;
            buf[(offset % 512) as usize..512].fill(0);
        }
        let within = (offset % 512) as usize;
        buf[within..within + key.len()].copy_from_slice(key);
        buf[within + key.len()..within + len as usize].copy_from_slice(value);
        self.device.write_blocks(heap_lba + first_block as u64, &buf)?;
        let data_crc = crc32c_append(crc32c(key), value);
        let slot = EntrySlot { kind, key_len: key.len() as u16, value_len: value.len() as u32, heap_offset: offset, data_crc };
        let index = self.entry_count as usize;
        slot.encode(&mut self.slot_table[index * SLOT_SIZE..(index + 1) * SLOT_SIZE])?;
        let block = index / SLOTS_PER_BLOCK as usize;
        self.device.write_blocks(
            self.geometry.area_lba(self.area) + block as u64,
            &self.slot_table[block * 512..(block + 1) * 512],
        )?;
        self.device.flush()?;
        let digest = crc32c_append(self.table_digest, slot_seal(&self.slot_table, index));
        self.commit(StoreCommit {
            generation,
            area: self.area,
            entry_count: self.entry_count + 1,
            heap_cursor: offset + len,
            table_digest: digest,
        })?;
        match kind {
            SlotKind::Put => {
                self.index.insert(
                    key.to_vec(),
                    EntryLocation { heap_offset: offset, key_len: key.len() as u16, value_len: value.len() as u32, data_crc },
                );
            }
            SlotKind::Tombstone => {
                self.index.remove(key);
            }
        }
        Ok(())
    }

    /// The generation of the next commit; never wraps.
    fn next_generation(&self) -> Result<u64, StorageError> {
        self.generation.checked_add(1).ok_or_else(generation_exhausted)
    }

    /// Write the commit record and flush: the durability point.
    fn commit(&mut self, commit: StoreCommit) -> Result<(), StorageError> {
        self.device.write_blocks(1 + commit.generation % 2, &commit.encode()?)?;
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
        let generation = self.next_generation()?;
        let mut table = vec![0u8; self.slot_table.len()];
        let mut heap = Vec::new();
        let mut index = BTreeMap::new();
        let mut digest = 0u32;
        for (i, (key, value)) in live.iter().enumerate() {
            let offset = heap.len() as u32;
            heap.extend_from_slice(key);
            heap.extend_from_slice(value);
            let data_crc = crc32c_append(crc32c(key), value);
            let slot = EntrySlot { kind: SlotKind::Put, key_len: key.len() as u16, value_len: value.len() as u32, heap_offset: offset, data_crc };
            slot.encode(&mut table[i * SLOT_SIZE..(i + 1) * SLOT_SIZE])?;
            digest = crc32c_append(digest, slot_seal(&table, i));
            index.insert(key.clone(), EntryLocation { heap_offset: offset, key_len: key.len() as u16, value_len: value.len() as u32, data_crc });
        }
        let cursor = heap.len() as u32;
        heap.resize(heap.len().div_ceil(512) * 512, 0);
        let table_blocks = live.len().div_ceil(SLOTS_PER_BLOCK as usize);
        if table_blocks > 0 {
            self.device.write_blocks(self.geometry.area_lba(area), &table[..table_blocks * 512])?;
        }
        for (i, chunk) in heap.chunks(64 * 1024).enumerate() {
            self.device.write_blocks(self.geometry.heap_lba(area) + (i * 128) as u64, chunk)?;
        }
        self.device.flush()?;
        self.commit(StoreCommit {
            generation,
            area,
            entry_count: live.len() as u32,
            heap_cursor: cursor,
            table_digest: digest,
        })?;
        self.slot_table = table;
        self.index = index;
        Ok(())
    }
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

fn check_key(key: &[u8]) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidArgument("empty key"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StorageError::KeyTooLong { len: key.len(), max: MAX_KEY_LEN });
    }
    Ok(())
}

/// Read `len` heap bytes at `offset` of `area`.
fn read_heap<D: BlockDevice>(
    device: &mut D,
    geometry: &StoreGeometry,
    area: u8,
    offset: u32,
    len: u32,
) -> Result<Vec<u8>, StorageError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let first = offset / 512;
    let end = (offset as u64 + len as u64).div_ceil(512) as u32;
    if end > geometry.heap_blocks {
        return Err(StorageError::Corrupt { what: "entry extends past the heap", detail: offset as u64 });
    }
    let mut buf = vec![0u8; ((end - first) * 512) as usize];
    device.read_blocks(geometry.heap_lba(area) + first as u64, &mut buf)?;
    let within = (offset % 512) as usize;
    Ok(buf[within..within + len as usize].to_vec())
}

type LoadedArea = (Vec<u8>, BTreeMap<Vec<u8>, EntryLocation>);

/// Read and verify everything a commit names: its table prefix against the
/// digest, each slot, their packing, and every entry's data CRC.
fn load_area<D: BlockDevice>(device: &mut D, geometry: &StoreGeometry, commit: &StoreCommit) -> Result<LoadedArea, StorageError> {
    let mut table = vec![0u8; geometry.slot_blocks as usize * 512];
    device.read_blocks(geometry.area_lba(commit.area), &mut table)?;
    let count = commit.entry_count as usize;
    if table_digest(&table, count) != commit.table_digest {
        return Err(StorageError::ChecksumMismatch { what: "CAPOSST1 entry table (digest in commit record)", location: geometry.area_lba(commit.area) });
    }
    let heap = read_heap(device, geometry, commit.area, 0, commit.heap_cursor)?;
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
    Ok((table, index))
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
