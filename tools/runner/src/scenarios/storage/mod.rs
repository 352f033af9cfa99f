//! The storage scenarios: the kernel's Directory, File and Store
//! capabilities over real disks (virtio-blk `vblk0`, NVMe `nvme0n1`),
//! driven by the guest checker `demos/storage-check` and judged against
//! the host's own reading of the same disk.
//!
//! Each scenario takes its image from a make variable (RO_IMAGE, WF_IMAGE,
//! STORE_IMAGE, HOSTILE_IMAGE, RECOVERY_IMAGE) or builds a small one with
//! `mkstore-image` from seed trees written at run time. A user's image is
//! copied into target/scenarios/ first and never written, unless
//! STORAGE_IN_PLACE=1 says to boot the file itself.
//!
//! Every boot gets a generated manifest (mounts and grants written to
//! target/scenarios/SCENARIO/BOOT.manifest, compiled by mkmanifest like
//! the other userspace boots). After a boot the runner runs `mkstore-image
//! fsck` and `mkstore-image extract` on the disk and compares the guest's
//! walk lines (`dir`, `file`, `key`, see demos/storage-check/src/walk.rs)
//! with its own walk of the extracted tree and `store.kv`: the two sets of
//! lines must be equal, and a difference prints the lines each side alone
//! has.
//!
//! `storage-writable-recovery` cuts the power (SIGKILL to QEMU) at least
//! 20 times at planned points of the guest's write workload and checks,
//! after each cut, that fsck is clean, the next boot's walk equals the
//! host's extract, every state the guest reported `synced` is still there
//! unless a step in flight at the cut may have changed it, and no file of
//! the workload holds anything but one of the contents the workload writes
//! (plan.rs, shared with the guest, says which).
//!
//! The files: this one the table and [`run_scenario`]; harness.rs a
//! scenario's run (images, fsck and extract, the checker's boots and their
//! judgement); disks.rs, manifest.rs and walks.rs what the boots are
//! given and how their walks are compared; one file per scenario family
//! (readonly.rs, fat.rs, writable.rs, persist.rs, recovery.rs,
//! block_cap.rs); tests.rs their host tests.

use crate::build::Artifacts;
use crate::judge::Tally;
use crate::machine::serial::{spawn_reader, strip_ansi};
use crate::machine::{qemu_command, Firmware, Machine, EXIT_KERNEL_SUCCESS};
use crate::source::{classify, count_verdicts, messages_of, Classifier, Line, Pattern, Source};
use crate::settings::Settings;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod block_cap;
mod disks;
mod fat;
mod harness;
mod manifest;
mod persist;
mod readonly;
mod recovery;
mod walks;
mod writable;
#[cfg(test)]
mod tests;

use crate::volumes::formats::*;
use disks::*;
use fat::*;
use harness::*;
use manifest::*;
use persist::*;
use readonly::*;
use recovery::*;
use walks::*;
use writable::*;

/// The guest's content and workload plans (the same file it builds with).
#[allow(dead_code)]
#[path = "../../../../../demos/storage-check/src/plan.rs"]
mod plan;

/// The process name (and boot module) of the guest checker.
const CHECKER: &str = "storage-check";
/// Power cuts the recovery scenario makes.
pub const RECOVERY_CUTS: u32 = 20;

pub struct StorageScenario {
    pub name: &'static str,
    pub description: &'static str,
    run: fn(&mut Run) -> Result<(), String>,
}

pub fn all() -> Vec<StorageScenario> {
    vec![
        StorageScenario {
            name: "storage-readonly",
            description: "read-only storage: CAPOSRO1 (RO_IMAGE) over virtio-blk and NVMe, a writable disk through fs-ro/store-ro and a read-only mount; every mutation refused, walks == host extract",
            run: readonly,
        },
        StorageScenario {
            name: "storage-writable",
            description: "CAPOSWF1 (WF_IMAGE): create/write/read/stat/truncate/rename/remove/sync, reboot, everything persisted; fsck clean, walks == host extract",
            run: writable,
        },
        StorageScenario {
            name: "storage-writable-recovery",
            description: "CAPOSWF1 (RECOVERY_IMAGE or WF_IMAGE): 20 power cuts (SIGKILL) during a write workload; fsck clean, walk == extract, no synced byte lost, nothing half-written",
            run: recovery,
        },
        StorageScenario {
            name: "storage-services-recovery",
            description: "20 power cuts (SIGKILL) during a write workload through storage-fs-service and store-service (raw NVMe mounts); fsck of both images clean, walk == extract, no synced byte or returned put lost",
            run: services_recovery,
        },
        StorageScenario {
            name: "storage-persist",
            description: "CAPOSST1 store (STORE_IMAGE; default a store alone and a co-located disk): put/get/has/delete/list, compaction, reboot, every value intact",
            run: persist,
        },
        StorageScenario {
            name: "storage-fat-read",
            description: "read-only FAT (FAT_IMAGE, default from tools/mkstorage-fat-read-image) over virtio-blk: walk == mtools' view with times, every mutation refused",
            run: fat_read_virtio,
        },
        StorageScenario {
            name: "cloud-provider-fat-read-over-nvme",
            description: "the same FAT reading over NVMe (as a cloud provider attaches disks)",
            run: fat_read_nvme,
        },
        StorageScenario {
            name: "storage-hostile",
            description: "hostile storage requests (HOSTILE_IMAGE): bad names, huge offsets and lengths, a full disk, stale and closed handles, rename cycles; a second client still works; no kernel panic",
            run: hostile,
        },
        StorageScenario {
            name: "block-cap",
            description: "BlockDevice over a raw mount of a GPT partition (by number, then by type GUID): write/flush/read back at the first, middle and last blocks and through CapBlockDevice; refusals by code; block-ro reads but cannot write; the image holds the pattern at partition start + LBA and nothing else changed; the same partition by number and by type refused at mount time; two disks of one controller (NVMe namespaces, SCSI targets), one throttled: the other's reads are not held up by it; two partitions of one virtio-blk disk written at once, each pattern in its own partition",
            run: block_cap::run,
        },
    ]
}

/// Run one scenario, its failures counted in `t`.
pub fn run_scenario(s: &Settings, art: &Artifacts, fw: &Firmware, sc: &StorageScenario, t: &mut Tally) {
    let dir = s.out_dir.join(sc.name);
    println!("== scenario {}: {}", sc.name, sc.description);
    let started = Instant::now();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return t.fail(sc.name, &format!("{}: {}", dir.display(), e));
    }
    let mut run = Run { s, art, fw, dir, t, name: sc.name, tool: None, volumes: HashMap::new(), icount: false, cmdline: String::new() };
    if let Err(e) = (sc.run)(&mut run) {
        run.t.fail(sc.name, &e);
    }
    println!("-- {}: {:.0} s", sc.name, started.elapsed().as_secs_f64());
}
