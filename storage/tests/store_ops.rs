//! CAPOSST1: put/get/has/delete semantics, limits, tombstones, compaction,
//! the "full changes nothing" rule, read-only mounts and feature flags; and
//! a differential test against a map.

mod support;

use capos_storage::codec::seal;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::store::{cache, format, Store, StoreOp, StoreOptions, MAX_KEY_LEN, MAX_VALUE_LEN};
use capos_storage::StorageError;
use std::collections::BTreeMap;
use support::*;

fn fresh(blocks: u64, slot_blocks: Option<u32>) -> Store<MemBlockDevice> {
    let mut dev = MemBlockDevice::new(blocks);
    format(&mut dev, slot_blocks).unwrap();
    Store::mount(dev, false).unwrap()
}

#[test]
fn put_get_has_delete() {
    let mut s = fresh(256, None);
    assert_eq!(s.get(b"k").unwrap(), None);
    assert!(!s.has(b"k").unwrap());
    s.put(b"k", b"v1").unwrap();
    s.put(b"k", b"value two").unwrap();
    s.put(b"empty", b"").unwrap();
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"value two"[..]));
    assert_eq!(s.get(b"empty").unwrap().as_deref(), Some(&b""[..]));
    assert!(s.has(b"k").unwrap());
    assert_eq!(s.delete(b"k"), Ok(true));
    assert_eq!(s.delete(b"k"), Ok(false));
    assert!(!s.has(b"k").unwrap());
    let mut s = Store::mount(s.into_device(), false).unwrap();
    assert_eq!(s.get(b"k").unwrap(), None, "tombstone survives remount");
    assert_eq!(s.get(b"empty").unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(s.entry_count(), 4);
}

#[test]
fn size_limits() {
    let mut s = fresh(1024, None);
    assert_eq!(s.put(b"", b"v"), Err(StorageError::InvalidArgument("empty key")));
    let long_key = vec![b'k'; MAX_KEY_LEN + 1];
    assert_eq!(s.put(&long_key, b"v"), Err(StorageError::KeyTooLong { len: MAX_KEY_LEN + 1, max: MAX_KEY_LEN }));
    let big = vec![1u8; MAX_VALUE_LEN + 1];
    assert_eq!(s.put(b"k", &big), Err(StorageError::ValueTooLarge { len: MAX_VALUE_LEN + 1, max: MAX_VALUE_LEN }));
    s.put(&vec![b'k'; MAX_KEY_LEN], &vec![7u8; MAX_VALUE_LEN]).unwrap();
    assert_eq!(s.get(&vec![b'k'; MAX_KEY_LEN]).unwrap().unwrap().len(), MAX_VALUE_LEN);
}

#[test]
fn compaction_reclaims_tombstones_and_lands_in_the_front_area() {
    // 16 entries per area.
    let mut s = fresh(64, Some(1));
    for round in 0..10u32 {
        for k in 0..6u32 {
            s.put(format!("key{k}").as_bytes(), format!("r{round}").as_bytes()).unwrap();
        }
        s.delete(b"key5").unwrap();
    }
    assert!(s.compactions >= 3, "compactions: {}", s.compactions);
    let mut s = Store::mount(s.into_device(), false).unwrap();
    for k in 0..5u32 {
        assert_eq!(s.get(format!("key{k}").as_bytes()).unwrap().unwrap(), b"r9");
    }
    assert_eq!(s.get(b"key5").unwrap(), None);
}

#[test]
fn full_put_fails_cleanly_and_changes_nothing() {
    let mut s = fresh(64, Some(1));
    for k in 0..16u32 {
        s.put(format!("{k:02}").as_bytes(), b"x").unwrap();
    }
    let before = s.device().as_bytes().to_vec();
    let writes = s.device().writes;
    assert_eq!(s.put(b"one-too-many", b"x"), Err(StorageError::StoreFull));
    assert_eq!(s.device().as_bytes(), &before[..], "a full put must not touch the disk");
    assert_eq!(s.device().writes, writes);
    assert_eq!(s.len(), 16);
    // Heap exhaustion: one value bigger than the heap.
    let heap = s.geometry().heap_bytes() as usize;
    let mut s2 = fresh(64, Some(1));
    assert_eq!(s2.put(b"huge", &vec![0u8; heap.min(MAX_VALUE_LEN)]), Err(StorageError::StoreFull));
    // Overwrite an existing key still works at capacity (compaction drops the old value).
    s.put(b"03", b"replaced").unwrap();
    assert_eq!(s.get(b"03").unwrap().unwrap(), b"replaced");
    // Deleting at capacity works too.
    assert_eq!(s.delete(b"04"), Ok(true));
}

#[test]
fn read_only_mount_and_feature_flags() {
    let mut s = fresh(128, None);
    s.put(b"a", b"1").unwrap();
    let dev = s.into_device();
    let mut ro = Store::mount(dev.clone(), true).unwrap();
    assert_eq!(ro.put(b"b", b"2"), Err(StorageError::ReadOnly));
    assert_eq!(ro.delete(b"a"), Err(StorageError::ReadOnly));
    assert_eq!(ro.get(b"a").unwrap().unwrap(), b"1");
    let with_feature = |offset: usize, bit: u64| {
        let mut bytes = dev.clone().into_bytes();
        bytes[offset..offset + 8].copy_from_slice(&bit.to_le_bytes());
        seal(&mut bytes[..512]).unwrap();
        Store::mount(MemBlockDevice::from_bytes(bytes), false)
    };
    assert!(!with_feature(16, 1 << 40).unwrap().is_read_only());
    assert!(with_feature(24, 1 << 2).unwrap().is_read_only());
    assert_eq!(with_feature(32, 1 << 7).err(), Some(StorageError::IncompatibleFeatures { unknown: 1 << 7 }));
}

#[test]
fn random_operations_match_a_map() {
    let seeds = iterations(30);
    let mut ops = 0u64;
    for seed in 0..seeds {
        let mut rng = Rng(0x5707_E000 + seed);
        let mut s = fresh(96, Some(1 + (seed % 3) as u32));
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for step in 0..300 {
            let key = format!("k{}", rng.below(24)).into_bytes();
            if rng.chance(70) {
                let long = rng.chance(10);
                let len = rng.below(if long { 3000 } else { 200 }) as usize;
                let value = rng.bytes(len);
                match s.put(&key, &value) {
                    Ok(()) => {
                        model.insert(key, value);
                    }
                    Err(StorageError::StoreFull) => {}
                    Err(e) => panic!("seed {seed} step {step}: {e}"),
                }
            } else {
                assert_eq!(s.delete(&key).unwrap(), model.remove(&key).is_some(), "seed {seed} step {step}");
            }
            if rng.chance(5) {
                // Remount with no cache, a cache of a few values, or the default.
                let cache_bytes = [0, 3 * (100 + cache::OVERHEAD), StoreOptions::DEFAULT_CACHE_BYTES][rng.below(3) as usize];
                s = Store::mount_with(s.into_device(), StoreOptions { read_only: false, cache_bytes }).unwrap();
                assert!(s.cache().used() <= cache_bytes);
            }
            if rng.chance(10) {
                // A batch: the model applies it in order, the store in one commit.
                let keys: Vec<Vec<u8>> = (0..1 + rng.below(5)).map(|_| format!("k{}", rng.below(24)).into_bytes()).collect();
                let values: Vec<Option<Vec<u8>>> = keys.iter().map(|_| rng.chance(70).then(|| { let len = rng.below(300) as usize; rng.bytes(len) })).collect();
                let ops: Vec<StoreOp> = keys.iter().zip(&values).map(|(k, v)| match v { Some(v) => StoreOp::Put(k, v), None => StoreOp::Delete(k) }).collect();
                let generation = s.generation();
                match s.apply(&ops) {
                    Ok(()) => {
                        for (k, v) in keys.iter().zip(&values) {
                            match v {
                                Some(v) => model.insert(k.clone(), v.clone()),
                                None => model.remove(k),
                            };
                        }
                    }
                    Err(StorageError::StoreFull) => assert_eq!(s.generation(), generation, "a refused batch commits nothing"),
                    Err(e) => panic!("seed {seed} step {step}: batch: {e}"),
                }
            }
            let all = s.entries().unwrap();
            let expected: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert!(all == expected, "seed {seed} step {step}: store differs from the map");
            ops += 1;
        }
    }
    report(&format!("CAPOSST1 differential: {seeds} seeds, {ops} operations compared with a map"));
}

#[test]
fn keys_after_pages_through_every_key_in_byte_order() {
    let mut s = fresh(512, None);
    let mut want: Vec<Vec<u8>> = Vec::new();
    for i in 0..40u32 {
        // Mixed lengths and bytes, so byte order differs from insertion order.
        let key = [&[(i * 37 % 256) as u8][..], &i.to_be_bytes()[..(i % 4) as usize]].concat();
        s.put(&key, b"v").unwrap();
        want.push(key);
    }
    s.delete(&want[7].clone()).unwrap();
    want.remove(7);
    want.sort();
    want.dedup();
    let (all, more) = s.keys_after(None, usize::MAX).unwrap();
    assert_eq!((all.clone(), more), (want.clone(), false));
    let mut got = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (page, more) = s.keys_after(after.as_deref(), 6).unwrap();
        assert!(page.len() <= 6);
        if let (Some(a), Some(first)) = (&after, page.first()) {
            assert!(first > a, "strictly after");
        }
        got.extend(page.iter().cloned());
        after = page.last().cloned();
        if !more {
            break;
        }
        assert_eq!(page.len(), 6, "a short page says no more");
    }
    assert_eq!(got, want);
    // After the last key: empty, no more. After a key that does not exist: the next ones.
    assert_eq!(s.keys_after(Some(want.last().unwrap()), 10).unwrap(), (vec![], false));
    let (page, _) = s.keys_after(Some(&[0u8][..]), 1).unwrap();
    assert_eq!(page, vec![want.iter().find(|k| k.as_slice() > &[0u8][..]).unwrap().clone()]);
    assert_eq!(s.keys_after(None, 0).unwrap(), (vec![], true));
}

#[test]
fn a_batch_is_one_commit_and_its_last_op_per_key_wins() {
    let mut s = fresh(256, None);
    s.put(b"gone", b"soon").unwrap();
    let generation = s.generation();
    s.device().reset_counters();
    s.apply(&[
        StoreOp::Put(b"a", b"1"),
        StoreOp::Put(b"b", b"2"),
        StoreOp::Put(b"a", b"3"),
        StoreOp::Delete(b"never-there"),
        StoreOp::Delete(b"b"),
        StoreOp::Delete(b"gone"),
    ])
    .unwrap();
    assert_eq!(s.generation(), generation + 1, "one commit");
    assert_eq!(s.device().flushes, 1, "one flush");
    assert_eq!(s.device().reads, 0, "an append reads nothing back");
    // Entries: "gone" put, then "a" put and "gone" tombstone (b and
    // never-there end absent and were absent: nothing written for them).
    assert_eq!(s.entry_count(), 3);
    let mut s = Store::mount(s.into_device(), false).unwrap();
    assert_eq!(s.entries().unwrap(), vec![(b"a".to_vec(), b"3".to_vec())]);
    // Nothing to change: no commit at all.
    s.apply(&[StoreOp::Delete(b"absent")]).unwrap();
    s.apply(&[]).unwrap();
    assert_eq!(s.generation(), generation + 1);
}

#[test]
fn a_bad_op_anywhere_in_a_batch_changes_nothing() {
    let mut s = fresh(256, None);
    s.put(b"k", b"v").unwrap();
    let before = s.device().as_bytes().to_vec();
    let long_key = vec![b'x'; MAX_KEY_LEN + 1];
    let big = vec![0u8; MAX_VALUE_LEN + 1];
    assert_eq!(s.apply(&[StoreOp::Put(b"a", b"1"), StoreOp::Put(b"", b"2")]), Err(StorageError::InvalidArgument("empty key")));
    assert!(matches!(s.apply(&[StoreOp::Put(b"a", b"1"), StoreOp::Delete(&long_key)]), Err(StorageError::KeyTooLong { .. })));
    assert!(matches!(s.apply(&[StoreOp::Put(b"a", b"1"), StoreOp::Put(b"b", &big)]), Err(StorageError::ValueTooLarge { .. })));
    assert_eq!(s.device().as_bytes(), &before[..]);
    assert_eq!(s.get(b"a").unwrap(), None);
}

#[test]
fn a_batch_too_big_for_the_free_space_compacts_and_one_too_big_for_the_area_is_refused() {
    // 16 entries per area.
    let mut s = fresh(64, Some(1));
    for k in 0..12u32 {
        s.put(format!("{k:02}").as_bytes(), b"old").unwrap();
    }
    let new: Vec<Vec<u8>> = (0..12u32).map(|k| format!("{k:02}").into_bytes()).collect();
    let ops: Vec<StoreOp> = new.iter().map(|k| StoreOp::Put(k, b"new")).collect();
    s.apply(&ops).unwrap();
    assert_eq!(s.compactions, 1);
    let mut s = Store::mount(s.into_device(), false).unwrap();
    assert!(s.entries().unwrap().iter().all(|(_, v)| v == b"new"));
    let many: Vec<Vec<u8>> = (0..17u32).map(|k| format!("m{k:02}").into_bytes()).collect();
    let ops: Vec<StoreOp> = many.iter().map(|k| StoreOp::Put(k, b"x")).collect();
    let before = s.device().as_bytes().to_vec();
    assert_eq!(s.apply(&ops), Err(StorageError::StoreFull));
    assert_eq!(s.device().as_bytes(), &before[..], "a refused batch writes nothing");
    assert_eq!(s.len(), 12);
}

#[test]
fn cached_values_need_no_read_and_uncached_ones_are_checked() {
    let mut s = fresh(256, None);
    s.put(b"other", b"x").unwrap();
    s.put(b"k", b"the value").unwrap();
    let dev = s.into_device();
    // Damage the value's bytes on the disk after mount verified them.
    let mut damaged = dev.clone().into_bytes();
    let at = damaged.windows(9).position(|w| w == b"the value").unwrap();
    let mut cached = Store::mount(dev.clone(), false).unwrap();
    cached.device().reset_counters();
    assert_eq!(cached.get(b"k").unwrap().as_deref(), Some(&b"the value"[..]));
    assert_eq!(cached.device().reads, 0, "a hit reads nothing");
    damaged[at] ^= 1;
    let uncached = |bytes: Vec<u8>| Store::mount_with(MemBlockDevice::from_bytes(bytes), StoreOptions { read_only: false, cache_bytes: 0 });
    // Mount checks every entry: the damaged image falls back to the commit
    // before the damaged entry was put (rolled back on a single-flush store).
    let rolled = uncached(damaged.clone()).unwrap();
    assert_eq!((rolled.generation(), rolled.unfinished_commit().map(|u| u.generation)), (1, Some(2)));
    // A value damaged after mount is caught by the CRC on a cache miss.
    let mut s = uncached(dev.clone().into_bytes()).unwrap();
    assert!(s.cache().is_empty());
    s.device().reset_counters();
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"the value"[..]));
    assert_eq!(s.device().reads, 1);
    let mut s = uncached(dev.into_bytes()).unwrap();
    *s.device() = MemBlockDevice::from_bytes(damaged);
    assert!(matches!(s.get(b"k"), Err(StorageError::ChecksumMismatch { .. })));
    assert_eq!(s.get(b"other").unwrap().as_deref(), Some(&b"x"[..]));
}

/// A compaction copies, checks and re-encodes every live entry between
/// device requests; the kernel lets interrupts in at each pause
/// (docs/interrupts-off.md), so it must pause as it goes.
#[test]
fn a_compaction_pauses_every_few_kilobytes_of_work() {
    let mut dev = MemBlockDevice::new(2048);
    format(&mut dev, None).unwrap();
    let mut s = Store::mount(Watched { inner: dev, log: Vec::new() }, false).unwrap();
    let value = vec![7u8; 1000];
    for k in 0..200 {
        s.put(format!("key/{k:03}").as_bytes(), &value).unwrap();
    }
    let live = 200 * (7 + value.len());
    // Overwrite until a put compacts: that put rewrites all ~200 KB.
    let before = s.compactions;
    let mut k = 0;
    let log = loop {
        s.device().log.clear();
        s.put(format!("key/{:03}", k % 200).as_bytes(), &value).unwrap();
        k += 1;
        if s.compactions > before {
            break core::mem::take(&mut s.device().log);
        }
        assert!(k < 10_000, "no compaction");
    };
    let first_write = log.iter().position(|a| matches!(a, Asked::Write(_))).unwrap();
    // Reading and checking the live entries, before anything is written:
    // a pause per 4 KiB.
    assert!(pauses(&log[..first_write]) >= live / capos_storage::block::PAUSE_BYTES, "{} pauses before the first write", pauses(&log[..first_write]));
    assert!(pauses(&log[first_write..]) >= live / capos_storage::block::PAUSE_BYTES, "{} pauses while rewriting", pauses(&log[first_write..]));
}

/// Every pass a put or a get makes over a large value (its copy into the
/// heap buffer, its CRC, the cache's copy, the copy returned, clearing
/// the buffer a read lands in) goes in pieces with a pause between them:
/// a 64 KiB value's single copy is about 200,000 instructions in the
/// kernel, which runs a call with interrupts off (docs/interrupts-off.md).
#[test]
fn a_large_value_is_copied_and_checked_in_pieces() {
    let pieces = MAX_VALUE_LEN / capos_storage::block::PAUSE_BYTES;
    let value: Vec<u8> = (0..MAX_VALUE_LEN).map(|i| (i % 251) as u8).collect();
    for cache_bytes in [StoreOptions::DEFAULT_CACHE_BYTES, 0] {
        let mut dev = MemBlockDevice::new(2048);
        format(&mut dev, None).unwrap();
        let options = StoreOptions { read_only: false, cache_bytes };
        let mut s = Store::mount_with(Watched { inner: dev, log: Vec::new() }, options).unwrap();
        s.put(b"big", &value).unwrap();
        // Into the heap buffer and its CRC; with a cache, the cache's copy.
        let passes = if cache_bytes > 0 { 3 } else { 2 };
        let put = pauses(&core::mem::take(&mut s.device().log));
        assert!(put >= passes * pieces, "cache {cache_bytes}: {put} pauses in a put of {} bytes", value.len());
        assert_eq!(s.get(b"big").unwrap().as_deref(), Some(&value[..]));
        // A hit: the copy returned. A miss: the buffer cleared, the CRC,
        // the copy returned.
        let passes = if cache_bytes > 0 { 1 } else { 3 };
        let get = pauses(&core::mem::take(&mut s.device().log));
        assert!(get >= passes * pieces, "cache {cache_bytes}: {get} pauses in a get of {} bytes", value.len());
    }
}
