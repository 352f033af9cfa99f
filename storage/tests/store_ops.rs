//! CAPOSST1: put/get/has/delete semantics, limits, tombstones, compaction,
//! the "full changes nothing" rule, read-only mounts and feature flags; and
//! a differential test against a map.

mod support;

use capos_storage::codec::seal;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::store::{format, Store, MAX_KEY_LEN, MAX_VALUE_LEN};
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
                s = Store::mount(s.into_device(), false).unwrap();
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
