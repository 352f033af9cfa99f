//! Replays every saved input through its target, without AFL: the seed
//! corpus (fuzz/corpus/TARGET/*) and every crash ever found
//! (fuzz/regressions/TARGET/*). A file whose target panics fails the test
//! with its path, so a crash found once stays fixed.
//!
//! Also checks that the corpus is what it says: every directory names a
//! target, every target has seeds, and the seeds are inputs the parsers
//! accept (a seed that is refused at the first check teaches AFL little).

use capos_fuzz::images::{disk_from_input, input_from_disk, MAX_DISK_BYTES};
use capos_fuzz::{target, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(kind)
}

/// (target name, file) for every file under `kind`/TARGET/.
fn files(kind: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(targets) = std::fs::read_dir(dir(kind)) else { return out };
    for t in targets.flatten().filter(|e| e.path().is_dir()) {
        let name = t.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(t.path()).unwrap().flatten() {
            if f.path().is_file() && f.file_name() != ".gitkeep" {
                out.push((name.clone(), f.path()));
            }
        }
    }
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let all = files(kind);
    let mut failed = Vec::new();
    for (name, path) in &all {
        let t = target(name).unwrap_or_else(|| panic!("{}: no fuzz target called {name}", path.display()));
        let data = std::fs::read(path).unwrap();
        if catch_unwind(AssertUnwindSafe(|| (t.run)(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{} of {} {kind} files panic their target:\n{}", failed.len(), all.len(), failed.join("\n"));
    eprintln!("replayed {} {kind} files, none panicked", all.len());
    all.len()
}

#[test]
fn every_corpus_file_replays_without_a_panic() {
    assert!(replay("corpus") >= TARGETS.len());
}

#[test]
fn every_regression_replays_without_a_panic() {
    replay("regressions");
}

#[test]
fn every_target_has_seeds() {
    let all = files("corpus");
    for t in TARGETS {
        assert!(all.iter().any(|(n, _)| n == t.name), "fuzz/corpus/{} has no seed", t.name);
    }
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(dir("corpus").join(target).join(name)).unwrap()
}

fn disk(target: &str, name: &str) -> capos_storage::mem_device::MemBlockDevice {
    capos_storage::mem_device::MemBlockDevice::from_bytes(disk_from_input(&seed(target, name)).unwrap())
}

#[test]
fn seeds_are_accepted_by_their_parsers() {
    use capos_storage::writable_fs::{MountOptions, WritableFs};
    use capos_storage::{FixedClock, Timestamp};
    capos_storage::readonly_fs::ReadOnlyFs::mount(disk("caposro1", "seed-tree")).unwrap();
    WritableFs::mount(disk("caposwf1", "seed-tree"), FixedClock(Timestamp::UNKNOWN), MountOptions { read_only: true }).unwrap();
    capos_storage::store::Store::mount(disk("caposst1", "seed-keys"), true).unwrap();
    let layout = capos_storage::colocated::locate(&mut disk("colocated", "seed-both")).unwrap();
    assert!(layout.store_blocks > 0 && layout.fs_blocks > 0);
    capos_storage::fat::FatFs::mount(disk("fat", "seed-fat12-tree"), Default::default()).unwrap();
    capos_abi::manifest::Manifest::decode(&seed("manifest", "seed-default")).unwrap();
    let plan = capos_kcore::user_elf::validate(&seed("elf", "seed-two-segments")).unwrap();
    assert_eq!(plan.segments.len(), 2);
    let gpt = disk_from_input(&seed("gpt", "seed-two-partitions-mode0")[1..]).unwrap();
    let table = capos_kcore::gpt::parse(gpt.len() as u64 / 512, |lba, b: &mut [u8; 512]| {
        b.copy_from_slice(&gpt[lba as usize * 512..lba as usize * 512 + 512]);
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(table.partitions.len(), 2);
    assert!(table.primary_problem.is_none());
}

#[test]
fn acpi_seed_is_found_whole() {
    struct Mem(Vec<u8>);
    impl capos_kcore::acpi::PhysMemory for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let o = (addr - capos_fuzz::boot::ACPI_BASE) as usize;
            self.0.get(o..o + buf.len()).map(|b| buf.copy_from_slice(b)).is_some()
        }
    }
    let found = capos_kcore::acpi::discover(&Mem(seed("acpi", "seed-qemu-like-mode0")[1..].to_vec()), capos_fuzz::boot::ACPI_BASE).unwrap();
    for sig in [b"APIC", b"MCFG", b"HPET", b"FACP", b"DSDT"] {
        assert!(found.find(sig).is_some(), "the ACPI seed lacks a valid {}", String::from_utf8_lossy(sig));
    }
    capos_kcore::acpi::parse_madt(found.find(b"APIC").unwrap()).unwrap();
    capos_kcore::acpi::parse_fadt(found.find(b"FACP").unwrap()).unwrap();
}

#[test]
fn disk_inputs_round_trip_and_stay_bounded() {
    let mut image = vec![0u8; 20 * 512];
    image[3] = 1;
    image[1500] = 7;
    let input = input_from_disk(&image, false);
    assert_eq!(input.len(), 2 + 1501);
    assert_eq!(disk_from_input(&input).unwrap(), image);
    assert_eq!(disk_from_input(&[]), None);
    assert_eq!(disk_from_input(&[0, 0]), None);
    assert_eq!(disk_from_input(&[1, 0]).unwrap().len(), 512);
    assert_eq!(disk_from_input(&[0xff, 0x7f, 1]).unwrap().len(), MAX_DISK_BYTES);
    // Bit 15 is the image targets' reseal flag, not a block count.
    assert_eq!(disk_from_input(&[1, 0x80]).unwrap().len(), 512);
    assert_eq!(input_from_disk(&image, true)[1] & 0x80, 0x80);
}

#[test]
fn resealing_storage_fixes_superblocks_and_keeps_valid_images() {
    use capos_fuzz::images::reseal_storage;
    use capos_storage::codec::is_sealed;
    let image = disk_from_input(&seed("caposst1", "seed-keys")).unwrap();
    let mut same = image.clone();
    reseal_storage(&mut same);
    assert_eq!(same, image, "a valid image must come through unchanged");
    let mut edited = image.clone();
    edited[100] ^= 0x40;
    assert!(!is_sealed(&edited[..512]));
    reseal_storage(&mut edited);
    assert!(is_sealed(&edited[..512]), "the superblock must be sealed again");
    assert_eq!(edited[100], image[100] ^ 0x40, "resealing keeps the edit");
}

#[test]
fn resealing_repairs_checksums_and_keeps_valid_inputs() {
    use capos_fuzz::boot::{reseal_acpi, reseal_gpt, ACPI_BASE};
    // GPT: a valid disk is unchanged; one whose entry was edited parses
    // again from its primary header only after resealing.
    let disk = disk_from_input(&seed("gpt", "seed-two-partitions-mode0")[1..]).unwrap();
    let mut same = disk.clone();
    reseal_gpt(&mut same);
    assert_eq!(same, disk);
    let parse = |d: &[u8]| {
        capos_kcore::gpt::parse(d.len() as u64 / 512, |lba, b: &mut [u8; 512]| {
            b.copy_from_slice(&d[lba as usize * 512..lba as usize * 512 + 512]);
            Ok::<(), ()>(())
        })
    };
    let mut edited = disk.clone();
    edited[2 * 512 + 40] = 6; // entry 1's last LBA, in the primary array
    assert!(parse(&edited).unwrap().primary_problem.is_some(), "the primary array CRC must catch the edit");
    reseal_gpt(&mut edited);
    let table = parse(&edited).unwrap();
    assert!(table.primary_problem.is_none());
    assert_eq!(table.partitions[0].last_lba, 6);
    // ACPI: the same for a MADT byte.
    let memory = seed("acpi", "seed-qemu-like-mode0")[1..].to_vec();
    let mut same = memory.clone();
    reseal_acpi(&mut same);
    assert_eq!(same, memory);
    let madt = memory.windows(4).position(|w| w == b"APIC").unwrap();
    let mut edited = memory.clone();
    edited[madt + 36 + 8 + 3] ^= 1; // the first local APIC's processor id
    struct Mem<'a>(&'a [u8]);
    impl capos_kcore::acpi::PhysMemory for Mem<'_> {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let o = (addr - ACPI_BASE) as usize;
            self.0.get(o..o + buf.len()).map(|b| buf.copy_from_slice(b)).is_some()
        }
    }
    assert!(capos_kcore::acpi::discover(&Mem(&edited), ACPI_BASE).unwrap().find(b"APIC").is_none());
    reseal_acpi(&mut edited);
    assert!(capos_kcore::acpi::discover(&Mem(&edited), ACPI_BASE).unwrap().find(b"APIC").is_some());
}
