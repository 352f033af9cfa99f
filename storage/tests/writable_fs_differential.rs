//! CAPOSWF1 against an in-memory tree model: random operation sequences,
//! the whole tree compared after every operation, and remounts compared
//! with the last committed model state.

mod support;

use capos_storage::mem_device::MemBlockDevice;
use capos_storage::time::SteppingClock;
use capos_storage::writable_fs::{format, MountOptions, WritableFs};
use capos_storage::{Provenance, StorageError, Timestamp};
use support::*;

fn clock() -> SteppingClock {
    SteppingClock { next: Timestamp::new(1, Provenance::WallClock), step_nanos: 1 }
}

#[test]
fn random_operations_match_the_tree_model() {
    let seeds = iterations(60);
    let mut ops_run = 0u64;
    for seed in 0..seeds {
        let mut rng = Rng(0xD1FF_0000 + seed);
        let mut dev = MemBlockDevice::new(768);
        format(&mut dev, Some(32), Timestamp::UNKNOWN).unwrap();
        let mut fs = WritableFs::mount(dev, clock(), MountOptions::default()).unwrap();
        let mut model = Snapshot::new();
        model.insert(String::new(), None);
        let mut committed = model.clone();
        for step in 0..250 {
            let op = random_op(&mut rng, &model, 4096);
            let expected = model_apply(&model, &op);
            let actual = fs_apply(&mut fs, &op);
            match (&expected, &actual) {
                (Ok(next), Ok(())) => {
                    model = next.clone();
                    if op.commits() {
                        committed = model.clone();
                    }
                }
                (_, Err(StorageError::NoSpace | StorageError::TooManyNodes)) => {}
                (Err(_), Err(_)) => {}
                _ => panic!("seed {seed} step {step}: {op:?}: model {expected:?} vs fs {actual:?}"),
            }
            let snap = snapshot(&mut fs).unwrap();
            assert!(snap == model, "seed {seed} step {step}: tree differs from model after {op:?}");
            ops_run += 1;
            if rng.chance(4) {
                // Remount: what survives is the last committed state.
                let dev = fs.into_device();
                fs = WritableFs::mount(dev, clock(), MountOptions::default()).unwrap();
                let snap = snapshot(&mut fs).unwrap();
                assert!(snap == committed, "seed {seed} step {step}: remount lost committed state");
                model = committed.clone();
            }
        }
    }
    report(&format!("CAPOSWF1 differential: {seeds} seeds, {ops_run} operations compared with the model"));
}
