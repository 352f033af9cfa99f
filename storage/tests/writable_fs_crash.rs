//! CAPOSWF1 power-cut testing: random operation sequences are cut at every
//! device write and flush; each cut is recovered several ways (every
//! unflushed write lost, every one kept, random subsets with versions
//! reordered) and the remounted tree must equal the last committed model
//! state — or, when the cut hit a committing operation, that operation's
//! complete result. Never a torn or mixed state, never a lost synced byte.
//! A failure names its seed and cut point; CAPOS_CRASH_TRACE=1 prints every
//! operation of every run, CAPOS_CRASH_ITERS=N runs N sequences.

mod support;

use capos_storage::crash_sim::CrashSimDevice;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::time::SteppingClock;
use capos_storage::writable_fs::{format, MountOptions, WritableFs};
use capos_storage::{FileSystem, Provenance, StorageError, Timestamp};
use support::*;

const OPS_PER_SEQUENCE: usize = 40;
const VOLUME_BLOCKS: u64 = 160;

fn clock() -> SteppingClock {
    SteppingClock { next: Timestamp::new(1, Provenance::WallClock), step_nanos: 1 }
}

struct Run {
    device: CrashSimDevice,
    committed: Snapshot,
    in_flight: Option<Snapshot>,
}

fn run(seed: u64, base: &[u8], cut_at: Option<u64>) -> Run {
    let mut device = CrashSimDevice::new(base.to_vec());
    if let Some(k) = cut_at {
        device.cut_power_at(k);
    }
    let mut rng = Rng(seed);
    if std::env::var("CAPOS_CRASH_TRACE").is_ok() {
        eprintln!("RUN seed={seed:#x} cut={cut_at:?}");
    }
    let mut model = Snapshot::new();
    model.insert(String::new(), None);
    let mut committed = model.clone();
    let mut in_flight = None;
    {
        let mut fs = WritableFs::mount(&mut device, clock(), MountOptions::default()).unwrap();
        for _ in 0..OPS_PER_SEQUENCE {
            let op = random_op(&mut rng, &model, 1500);
            let expected = model_apply(&model, &op);
            let result = fs_apply(&mut fs, &op);
            if std::env::var("CAPOS_CRASH_TRACE").is_ok() {
                eprintln!("op {op:?} -> {result:?} events={} expected_ok={}", fs.device().events(), expected.is_ok());
            }
            if fs.device().power_lost() {
                assert!(result.is_err(), "seed {seed}: op succeeded after power loss");
                if op.commits() {
                    in_flight = expected.ok();
                }
                break;
            }
            match (expected, result) {
                (Ok(next), Ok(())) => {
                    model = next;
                    if op.commits() {
                        committed = model.clone();
                    }
                }
                (_, Err(StorageError::NoSpace | StorageError::TooManyNodes)) => {}
                (Err(_), Err(_)) => {}
                (e, a) => panic!("seed {seed}: {op:?}: model {e:?} vs fs {a:?}"),
            }
        }
    }
    Run { device, committed, in_flight }
}

fn check_recovery(seed: u64, cut: u64, how: &str, image: Vec<u8>, run: &Run, exercise: bool) {
    let mut fs = WritableFs::mount(MemBlockDevice::from_bytes(image), clock(), MountOptions::default())
        .unwrap_or_else(|e| panic!("seed {seed:#x} cut {cut} ({how}): mount failed: {e}"));
    // Power loss alone must never make mount pass over a newer commit
    // (fsck reports that as corruption).
    assert!(fs.skipped_commit().is_none(), "seed {seed:#x} cut {cut} ({how}): newest commit skipped: {:?}", fs.skipped_commit());
    let snap = snapshot(&mut fs).unwrap_or_else(|e| panic!("seed {seed:#x} cut {cut} ({how}): {e}"));
    let ok = snap == run.committed || run.in_flight.as_ref() == Some(&snap);
    assert!(
        ok,
        "seed {seed:#x} cut {cut} ({how}): recovered tree is neither the last committed state nor the in-flight one\n\
         recovered: {:?}\ncommitted: {:?}",
        snap.iter().map(|(k, v)| (k, v.as_ref().map(|d| d.len()))).collect::<Vec<_>>(),
        run.committed.iter().map(|(k, v)| (k, v.as_ref().map(|d| d.len()))).collect::<Vec<_>>()
    );
    if exercise {
        // The recovered volume must be fully usable.
        let root = fs.root();
        let name = "after-recovery";
        if fs.create(root, name).is_ok() {
            let f = fs.open(root, name).unwrap();
            if fs.write(f, 0, b"post").is_ok() {
                fs.sync().unwrap();
            }
        }
        let dev = fs.into_device();
        WritableFs::mount(dev, clock(), MountOptions::default())
            .unwrap_or_else(|e| panic!("seed {seed:#x} cut {cut}: remount after recovery failed: {e}"));
    }
}

#[test]
fn power_cut_at_every_write_and_flush() {
    let mut base = MemBlockDevice::new(VOLUME_BLOCKS);
    format(&mut base, Some(12), Timestamp::UNKNOWN).unwrap();
    let base = base.into_bytes();
    let sequences = iterations(600);
    let mut cut_points = 0u64;
    let mut recoveries = 0u64;
    for sequence in 0..sequences {
        let seed = 0xC0FF_EE00_0000 + sequence;
        let total = run(seed, &base, None).device.events();
        for cut in 0..=total {
            let run = run(seed, &base, Some(cut));
            let mut rng = Rng(seed ^ cut);
            let variants: [(&str, Box<dyn FnMut(usize) -> usize>); 4] = [
                ("all unflushed writes lost", Box::new(|_| 0)),
                ("all unflushed writes kept", Box::new(|n| n - 1)),
                ("random subset", Box::new({ let mut r = rng.clone(); move |n| r.below(n as u64) as usize })),
                ("random subset 2", Box::new(move |n| rng.below(n as u64) as usize)),
            ];
            let pending = run.device.pending_blocks();
            for (i, (how, mut choose)) in variants.into_iter().enumerate() {
                if pending == 0 && i > 0 {
                    break;
                }
                let image = run.device.surviving_image(&mut *choose);
                check_recovery(seed, cut, how, image, &run, i == 1);
                recoveries += 1;
            }
            cut_points += 1;
        }
    }
    report(&format!(
        "CAPOSWF1 power-cut: {sequences} sequences, {cut_points} cut points, {recoveries} recovered images checked"
    ));
    assert!(cut_points >= sequences * 20);
}
