//! CAPOSST1 power-cut testing: random sequences of puts, deletes and
//! batches on a small store (so compaction runs often) are cut at every
//! device write and flush, recovered several ways, and the store must hold
//! exactly the map of the last completed operation, or of the interrupted
//! one (a batch whole or not at all). Both commit protocols: single-flush
//! stores (where a cut commit is rolled back at mount, which must happen)
//! and stores formatted before that feature (where the newest valid commit
//! must always verify). CAPOS_CRASH_ITERS=N runs N sequences of each.

mod support;

use capos_storage::crash_sim::CrashSimDevice;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::features::FeatureFlags;
use capos_storage::store::{format_with_features, Store, StoreOp, NEW_STORE_FEATURES};
use capos_storage::StorageError;
use std::collections::BTreeMap;
use support::*;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

struct Run {
    device: CrashSimDevice,
    committed: Map,
    in_flight: Option<Map>,
    compactions: u64,
}

fn run(seed: u64, base: &[u8], cut_at: Option<u64>) -> Run {
    let mut device = CrashSimDevice::new(base.to_vec());
    if let Some(k) = cut_at {
        device.cut_power_at(k);
    }
    let mut rng = Rng(seed);
    let mut committed = Map::new();
    let mut in_flight = None;
    let compactions;
    {
        let mut store = Store::mount(&mut device, false).unwrap();
        for _ in 0..30 {
            let mut next = committed.clone();
            let result = if rng.chance(20) {
                // A batch of up to four changes, one commit.
                let count = 1 + rng.below(4) as usize;
                let mut owned = Vec::new();
                for _ in 0..count {
                    let key = format!("key-{}", rng.below(12)).into_bytes();
                    if rng.chance(75) {
                        let len = rng.below(200) as usize;
                        let value = rng.bytes(len);
                        next.insert(key.clone(), value.clone());
                        owned.push((key, Some(value)));
                    } else {
                        next.remove(&key);
                        owned.push((key, None));
                    }
                }
                let ops: Vec<StoreOp> = owned
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => StoreOp::Put(k, v),
                        None => StoreOp::Delete(k),
                    })
                    .collect();
                store.apply(&ops)
            } else if rng.chance(70) {
                let key = format!("key-{}", rng.below(12)).into_bytes();
                let long = rng.chance(15);
                let len = rng.below(if long { 1500 } else { 120 }) as usize;
                let value = rng.bytes(len);
                next.insert(key.clone(), value.clone());
                store.put(&key, &value).map(|_| ())
            } else {
                let key = format!("key-{}", rng.below(12)).into_bytes();
                next.remove(&key);
                store.delete(&key).map(|_| ())
            };
            if store.device().power_lost() {
                assert!(result.is_err());
                in_flight = Some(next);
                break;
            }
            match result {
                Ok(()) => committed = next,
                Err(StorageError::StoreFull) => {}
                Err(e) => panic!("seed {seed:#x}: {e}"),
            }
        }
        compactions = store.compactions;
    }
    Run { device, committed, in_flight, compactions }
}

#[test]
fn power_cut_at_every_write_and_flush_single_flush() {
    let rolled_back = power_cut_at_every_write_and_flush(NEW_STORE_FEATURES);
    assert!(rolled_back > 0, "cuts between a commit's writes and its flush must leave commits to roll back");
}

#[test]
fn power_cut_at_every_write_and_flush_legacy() {
    assert_eq!(power_cut_at_every_write_and_flush(FeatureFlags::NONE), 0);
}

/// Returns how many recovered images rolled back an unfinished commit.
fn power_cut_at_every_write_and_flush(features: FeatureFlags) -> u64 {
    let mut base = MemBlockDevice::new(48);
    format_with_features(&mut base, Some(1), features).unwrap();
    let base = base.into_bytes();
    let sequences = iterations(480);
    let (mut cut_points, mut recoveries, mut compactions, mut rolled_back) = (0u64, 0u64, 0u64, 0u64);
    for sequence in 0..sequences {
        let seed = 0x5702_E000_0000 + sequence;
        let full = run(seed, &base, None);
        compactions += full.compactions;
        let total = full.device.events();
        for cut in 0..=total {
            let run = run(seed, &base, Some(cut));
            let mut rng = Rng(seed ^ cut);
            let pending = run.device.pending_blocks();
            for variant in 0..4 {
                if pending == 0 && variant > 0 {
                    break;
                }
                let image = run.device.surviving_image(|n| match variant {
                    0 => 0,
                    1 => n - 1,
                    _ => rng.below(n as u64) as usize,
                });
                let mut store = Store::mount(MemBlockDevice::from_bytes(image), false)
                    .unwrap_or_else(|e| panic!("seed {seed:#x} cut {cut} variant {variant}: mount failed: {e}"));
                assert!(store.skipped_commit().is_none(), "seed {seed:#x} cut {cut} variant {variant}: newest commit skipped");
                rolled_back += store.unfinished_commit().is_some() as u64;
                let got: Map = store.entries().unwrap().into_iter().collect();
                assert!(
                    got == run.committed || Some(&got) == run.in_flight.as_ref(),
                    "seed {seed:#x} cut {cut} variant {variant}: recovered store is neither the last committed map nor the in-flight one"
                );
                if variant == 1 {
                    store.put(b"after-recovery", b"ok").unwrap();
                    let mut again = Store::mount(store.into_device(), false).unwrap();
                    assert_eq!(again.get(b"after-recovery").unwrap().unwrap(), b"ok");
                }
                recoveries += 1;
            }
            cut_points += 1;
        }
    }
    report(&format!(
        "CAPOSST1 power-cut ({}): {sequences} sequences, {cut_points} cut points, {recoveries} recovered images checked, {compactions} compactions in the uncut runs, {rolled_back} unfinished commits rolled back",
        if features == FeatureFlags::NONE { "legacy two-flush commits" } else { "single-flush commits" }
    ));
    assert!(compactions > sequences, "the sequences must exercise compaction");
    rolled_back
}
