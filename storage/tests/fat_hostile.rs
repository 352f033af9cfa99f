//! Hostile FAT images: each one is a valid mkfs.fat/mcopy image with one
//! structure broken on purpose. Every one must give an error — never a
//! panic, never a hang (each probe runs under a watchdog), never a wrong
//! answer passed off as data. Several of these make lamfat itself panic or
//! loop when it is handed the volume unchecked (a chain or a subdirectory
//! pointing at cluster 1, a looping directory chain, a BPB whose fields
//! overflow its arithmetic); the backer's own checks must stop them first.

mod fat_support;

use capos_storage::fat::{FatFs, FatPartition, MountOptions};
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::{FileSystem, StorageError};
use fat_support::*;
use std::time::Duration;

const T0: i64 = 1_600_000_000;

/// A small volume with only 8.3 names (so tests can find entries):
/// /FILE.BIN (5 clusters), /SUB/A.TXT, /SUB/INNER/LEAF.TXT, and /BIGDIR with
/// 40 files (a directory of several clusters).
fn base(bits: u8) -> FatImage {
    let (size, tag) = match bits {
        32 => (40 << 20, "hostile32"),
        16 => (8 << 20, "hostile16"),
        _ => (1_474_560, "hostile12"),
    };
    let img = FatImage::mkfs(tag, bits, size, 1, 512);
    let staging = img.dir.0.join("staging");
    std::fs::create_dir_all(staging.join("SUB/INNER")).unwrap();
    std::fs::create_dir_all(staging.join("BIGDIR")).unwrap();
    std::fs::write(staging.join("FILE.BIN"), vec![0x5A; 2500]).unwrap();
    std::fs::write(staging.join("SUB/A.TXT"), b"a\n").unwrap();
    std::fs::write(staging.join("SUB/B.TXT"), b"b\n").unwrap();
    std::fs::write(staging.join("SUB/INNER/LEAF.TXT"), b"leaf\n").unwrap();
    for i in 0..40 {
        std::fs::write(staging.join(format!("BIGDIR/F{i:02}.TXT")), format!("{i}\n")).unwrap();
    }
    for entry in walkdir(&staging) {
        set_mtime(&entry, T0);
    }
    img.put_tree(&staging);
    img
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

/// Mount and walk everything under a watchdog.
fn probe(bytes: Vec<u8>, what: &str) -> Result<Tree, StorageError> {
    within(Duration::from_secs(20), what, move || {
        let mut fs = FatFs::mount(MemBlockDevice::from_bytes(bytes), MountOptions::default())?;
        walk(&mut fs, 10_000)
    })
}

fn assert_corrupt(bytes: Vec<u8>, what: &str) -> StorageError {
    match probe(bytes, what) {
        Ok(_) => panic!("{what}: the damaged image was read without an error"),
        Err(e) => {
            assert!(e.is_corruption(), "{what}: {e:?} is not reported as corruption");
            e
        }
    }
}

#[test]
fn base_images_are_fine() {
    for bits in [32, 16, 12] {
        let img = base(bits);
        let tree = probe(img.bytes(), "base image").unwrap();
        assert_same_tree(&tree, &img.host_view());
        assert_eq!(tree.len(), 1 + 1 + 2 + 1 + 1 + 1 + 40);
    }
}

#[test]
fn cluster_chains_that_loop_or_run_past_the_end() {
    for bits in [32, 16, 12] {
        let img = base(bits);
        let b = img.bytes();
        let l = Layout::of(&b);
        let file = l.first_cluster(&b, l.find(&b, l.root(), b"FILE    BIN"));
        let chain = l.chain(&b, file);
        assert_eq!(chain.len(), 5);
        let bigdir = l.first_cluster(&b, l.find(&b, l.root(), b"BIGDIR     "));
        let dir_chain = l.chain(&b, bigdir);
        assert!(dir_chain.len() >= 3, "BIGDIR should span several clusters");

        let cases: Vec<(&str, u32, u32)> = vec![
            ("file chain loops to its start", chain[4], chain[0]),
            ("file chain loops on itself", chain[2], chain[2]),
            ("file chain links to cluster 1", chain[1], 1),
            ("file chain runs past the data area", chain[1], l.clusters + 2),
            ("file chain runs far past the end", chain[1], l.end_of_chain() - 9),
            ("file chain ends early (bad cluster mark)", chain[1], l.end_of_chain() - 8),
            ("file chain ends early (free entry)", chain[1], 0),
            ("directory chain loops", *dir_chain.last().unwrap(), dir_chain[0]),
            ("directory chain loops on itself", dir_chain[1], dir_chain[1]),
            ("directory chain links to cluster 1", dir_chain[0], 1),
            ("directory chain runs past the data area", dir_chain[0], l.clusters + 2),
        ];
        for (what, cluster, value) in cases {
            let mut bad = b.clone();
            l.set(&mut bad, cluster, value);
            let what = format!("FAT{bits}: {what}");
            if what.contains("ends early") {
                // The chain ends: FILE.BIN is now shorter than its size.
                let e = assert_corrupt(bad, &what);
                assert!(format!("{e}").contains("larger than its cluster chain"), "{what}: {e}");
            } else {
                assert_corrupt(bad, &what);
            }
        }
        if bits == 32 {
            // The root directory's own chain.
            let mut bad = b.clone();
            l.set(&mut bad, l.root(), l.root());
            assert_corrupt(bad, "FAT32 root chain loops");
            let mut bad = b.clone();
            l.set(&mut bad, l.root(), 1);
            assert_corrupt(bad, "FAT32 root chain links to cluster 1");
        }
    }
}

#[test]
fn directories_that_contain_themselves() {
    for bits in [32, 16, 12] {
        let img = base(bits);
        let b = img.bytes();
        let l = Layout::of(&b);
        let sub_entry = l.find(&b, l.root(), b"SUB        ");
        let sub = l.first_cluster(&b, sub_entry);
        let inner_entry = l.find(&b, sub, b"INNER      ");
        let inner = l.first_cluster(&b, inner_entry);
        let bigdir_entry = l.find(&b, l.root(), b"BIGDIR     ");

        // SUB/INNER is SUB itself.
        let mut bad = b.clone();
        l.set_first_cluster(&mut bad, inner_entry, sub);
        assert_corrupt(bad, &format!("FAT{bits}: SUB/INNER points at SUB"));
        // SUB/INNER is itself... through its own '.'? No: INNER points at the
        // cluster INNER lists as its own, i.e. INNER contains INNER.
        let leaf_entry = l.find(&b, inner, b"LEAF    TXT");
        let mut bad = b.clone();
        bad[leaf_entry + 11] = 0x10; // LEAF.TXT becomes a directory...
        l.set_first_cluster(&mut bad, leaf_entry, inner); // ...that is INNER
        assert_corrupt(bad, &format!("FAT{bits}: INNER contains itself"));
        // Two entries share one directory.
        let mut bad = b.clone();
        l.set_first_cluster(&mut bad, bigdir_entry, sub);
        assert_corrupt(bad, &format!("FAT{bits}: BIGDIR and SUB share a cluster"));
        // A subdirectory that is the root: cluster 0 (the root's number in
        // '..') or, on FAT32, the root cluster.
        let mut bad = b.clone();
        l.set_first_cluster(&mut bad, sub_entry, 0);
        assert_corrupt(bad, &format!("FAT{bits}: SUB is cluster 0"));
        if bits == 32 {
            let mut bad = b.clone();
            l.set_first_cluster(&mut bad, sub_entry, l.root());
            assert_corrupt(bad, "FAT32: SUB is the root cluster");
        }
        // Clusters lamfat cannot compute an offset for.
        for (value, what) in [(1, "cluster 1"), (l.clusters + 2, "past the data area"), (0x0FFF_FFFF, "huge")] {
            let mut bad = b.clone();
            l.set_first_cluster(&mut bad, sub_entry, value);
            assert_corrupt(bad, &format!("FAT{bits}: SUB starts at {what}"));
            let mut bad = b.clone();
            let file_entry = l.find(&b, l.root(), b"FILE    BIN");
            l.set_first_cluster(&mut bad, file_entry, value);
            assert_corrupt(bad, &format!("FAT{bits}: FILE.BIN starts at {what}"));
        }
    }
}

#[test]
fn file_sizes_larger_than_their_chains() {
    for bits in [32, 12] {
        let img = base(bits);
        let b = img.bytes();
        let l = Layout::of(&b);
        let entry = l.find(&b, l.root(), b"FILE    BIN");
        for size in [2561u32, 100_000, u32::MAX] {
            let mut bad = b.clone();
            bad[entry + 28..entry + 32].copy_from_slice(&size.to_le_bytes());
            let what = format!("FAT{bits}: FILE.BIN claims {size} bytes");
            let e = assert_corrupt(bad.clone(), &what);
            assert!(format!("{e}").contains("larger than its cluster chain"), "{what}: {e}");
            // stat still answers (the entry says so); only reading fails.
            let mut fs = FatFs::mount(MemBlockDevice::from_bytes(bad), MountOptions::default()).unwrap();
            let root = fs.root();
            let file = fs.open(root, "FILE.BIN").unwrap();
            assert_eq!(fs.stat(file).unwrap().size, u64::from(size));
            assert!(fs.read(file, 0, &mut [0u8; 10]).unwrap_err().is_corruption());
        }
        // A file with a size but no cluster at all.
        let mut bad = b.clone();
        l.set_first_cluster(&mut bad, entry, 0);
        assert_corrupt(bad, &format!("FAT{bits}: FILE.BIN has bytes but no cluster"));
    }
}

#[test]
fn zero_and_absurd_boot_sector_fields() {
    let img32 = base(32);
    let b32 = img32.bytes();
    let img16 = base(16);
    let b16 = img16.bytes();
    type Edit = fn(&mut Vec<u8>);
    let cases: Vec<(&str, &Vec<u8>, Edit)> = vec![
        ("bytes per sector 0", &b32, |b| b[11..13].copy_from_slice(&[0, 0])),
        ("bytes per sector 1", &b32, |b| b[11..13].copy_from_slice(&1u16.to_le_bytes())),
        ("bytes per sector 65535", &b32, |b| b[11..13].copy_from_slice(&u16::MAX.to_le_bytes())),
        ("bytes per sector 1024 (layout no longer fits)", &b32, |b| b[11..13].copy_from_slice(&1024u16.to_le_bytes())),
        ("sectors per cluster 0", &b32, |b| b[13] = 0),
        ("sectors per cluster 255", &b32, |b| b[13] = 255),
        ("sectors per cluster 128 (type changes)", &b32, |b| b[13] = 128),
        ("reserved sectors 0", &b32, |b| b[14..16].copy_from_slice(&[0, 0])),
        ("FAT count 0", &b32, |b| b[16] = 0),
        ("FAT count 200", &b32, |b| b[16] = 200),
        ("root cluster 0", &b32, |b| b[44..48].copy_from_slice(&0u32.to_le_bytes())),
        ("root cluster 1", &b32, |b| b[44..48].copy_from_slice(&1u32.to_le_bytes())),
        ("root cluster past the end", &b32, |b| b[44..48].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes())),
        ("root cluster u32::MAX", &b32, |b| b[44..48].copy_from_slice(&u32::MAX.to_le_bytes())),
        ("FAT size 0", &b32, |b| b[36..40].copy_from_slice(&0u32.to_le_bytes())),
        ("FAT size u32::MAX", &b32, |b| b[36..40].copy_from_slice(&u32::MAX.to_le_bytes())),
        ("FAT size too small", &b32, |b| b[36..40].copy_from_slice(&10u32.to_le_bytes())),
        ("total sectors 0", &b32, |b| b[32..36].copy_from_slice(&0u32.to_le_bytes())),
        ("total sectors u32::MAX", &b32, |b| b[32..36].copy_from_slice(&u32::MAX.to_le_bytes())),
        ("FSInfo signature", &b32, |b| b[512] ^= 0xFF),
        ("FSInfo sector 0", &b32, |b| b[48..50].copy_from_slice(&0u16.to_le_bytes())),
        ("no boot signature", &b32, |b| b[510] = 0),
        ("FAT16 root entries 0", &b16, |b| b[17..19].copy_from_slice(&0u16.to_le_bytes())),
        ("FAT16 sectors per FAT 0 (looks FAT32)", &b16, |b| b[22..24].copy_from_slice(&0u16.to_le_bytes())),
        ("FAT16 FAT count 0", &b16, |b| b[16] = 0),
        ("FAT16 bytes per sector 0", &b16, |b| b[11..13].copy_from_slice(&[0, 0])),
        ("all zero", &b16, |b| b.iter_mut().for_each(|x| *x = 0)),
    ];
    for (what, bytes, edit) in cases {
        let mut bad = bytes.clone();
        edit(&mut bad);
        assert_corrupt(bad, what);
    }
    // A BPB that is still self-consistent cannot be told from a real one: a
    // fixed root of 65535 entries moves the data area. The answer may be an
    // error or wrong data, but never a panic or a hang.
    let mut moved = b16.clone();
    moved[17..19].copy_from_slice(&u16::MAX.to_le_bytes());
    let _ = probe(moved, "FAT16 root entries 65535");
    // Not corruption but unsupported: exFAT, and a FAT32 version we do not know.
    let mut exfat = b32.clone();
    exfat[3..11].copy_from_slice(b"EXFAT   ");
    assert!(matches!(probe(exfat, "exFAT"), Err(StorageError::UnsupportedVersion { .. })));
    let mut version = b32.clone();
    version[42] = 1;
    assert!(matches!(probe(version, "FAT32 version 1"), Err(StorageError::UnsupportedVersion { format: "FAT32", version: 1 })));
    // A device shorter than the volume, and an empty one.
    let truncated = b32[..b32.len() / 2].to_vec();
    assert!(matches!(probe(truncated, "truncated"), Err(StorageError::DeviceTooSmall { .. })));
    assert!(probe(Vec::new(), "empty device").is_err());
    // A GPT protective MBR is refused with a message saying what to do.
    let mut gpt = vec![0u8; 1 << 20];
    gpt[446 + 4] = 0xEE;
    gpt[446 + 8] = 1;
    gpt[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    gpt[510] = 0x55;
    gpt[511] = 0xAA;
    assert!(matches!(probe(gpt.clone(), "GPT"), Err(StorageError::InvalidArgument(_))));
    let whole = MountOptions { partition: FatPartition::WholeDevice };
    assert!(FatFs::mount(MemBlockDevice::from_bytes(gpt), whole).unwrap_err().is_corruption());
}

#[test]
fn bad_names() {
    let img = base(16);
    let b = img.bytes();
    let l = Layout::of(&b);
    let sub = l.first_cluster(&b, l.find(&b, l.root(), b"SUB        "));
    let a = l.find(&b, sub, b"A       TXT");
    // Two entries with the same name.
    let mut bad = b.clone();
    bad[a..a + 11].copy_from_slice(b"B       TXT");
    assert_corrupt(bad, "duplicate names");
    // A name that smuggles a path separator, or is blank.
    let mut bad = b.clone();
    bad[a..a + 11].copy_from_slice(b"A/B     TXT");
    assert_corrupt(bad, "name with '/'");
    let mut bad = b.clone();
    bad[a..a + 11].copy_from_slice(b"           ");
    assert_corrupt(bad, "blank name");
    // Short-name bytes above 0x7F are CP437, not replacement characters.
    let mut odd = b.clone();
    odd[a] = 0x82; // 'é'
    let tree = probe(odd, "CP437 name").unwrap();
    assert!(tree.contains_key("/SUB/é.TXT"), "{tree:?}");
}

#[test]
fn long_name_damage_falls_back_to_the_short_name() {
    let img = FatImage::mkfs("lfn", 16, 8 << 20, 1, 512);
    img.put("/A rather long name.txt", b"x\n", T0);
    let b = img.bytes();
    let l = Layout::of(&b);
    let entry = l.find(&b, l.root(), b"ARATHE~1TXT");
    // The LFN entry right before the 8.3 entry: break its checksum.
    let mut bad = b.clone();
    bad[entry - 32 + 13] ^= 0xFF;
    let tree = probe(bad, "LFN checksum").unwrap();
    assert!(tree.contains_key("/ARATHE~1.TXT"), "{tree:?}");
    // An LFN order byte out of range.
    let mut bad = b.clone();
    bad[entry - 32] = 0x7F;
    probe(bad, "LFN order").unwrap();
}

#[test]
fn deep_nesting_works() {
    // No depth limit of its own: 600 levels (mtools' own limit is the
    // command line) read like any other tree.
    let levels = 600usize;
    let img = FatImage::mkfs("deep", 16, 16 << 20, 1, 512);
    let mut path = String::new();
    let mut args = vec![];
    for _ in 0..levels {
        path.push_str("/d");
        args.push(format!("::{path}"));
    }
    let mut cmd = std::process::Command::new(tool("mmd"));
    cmd.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(&img.path).args(&args);
    assert!(cmd.status().unwrap().success());
    let result = probe(img.bytes(), "deep tree");
    assert_eq!(result.unwrap().len(), levels);
}

/// A device of `blocks` blocks that reads as zeros except for the sectors
/// it was given: a huge volume without the memory.
struct SparseDevice {
    blocks: u64,
    sectors: std::collections::HashMap<u64, [u8; 512]>,
}

impl capos_storage::BlockDevice for SparseDevice {
    fn block_size(&self) -> usize {
        512
    }
    fn block_count(&self) -> u64 {
        self.blocks
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), capos_storage::BlockError> {
        capos_storage::block::check_request(512, self.blocks, lba, buf.len())?;
        for (i, chunk) in buf.chunks_mut(512).enumerate() {
            chunk.copy_from_slice(self.sectors.get(&(lba + i as u64)).unwrap_or(&[0; 512]));
        }
        Ok(())
    }
    fn write_blocks(&mut self, _: u64, _: &[u8]) -> Result<(), capos_storage::BlockError> {
        Err(capos_storage::BlockError::ReadOnly)
    }
    fn flush(&mut self) -> Result<(), capos_storage::BlockError> {
        Ok(())
    }
}

/// A FAT32 volume of 4096-byte sectors whose FAT is 512 MiB: valid by the
/// specification, but lamfat computes the FAT's bit count in a `u32`
/// (2^17 sectors * 4096 bytes * 8 = 2^32) and overflows. The backer refuses
/// it first, as unsupported.
#[test]
fn a_fat_of_512_mib_is_refused_before_lamfat_overflows() {
    let mut boot = [0u8; 512];
    boot[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    boot[11..13].copy_from_slice(&4096u16.to_le_bytes());
    boot[13] = 1;
    boot[14..16].copy_from_slice(&32u16.to_le_bytes());
    boot[16] = 1;
    boot[32..36].copy_from_slice(&(1u32 << 20).to_le_bytes()); // 4 GiB
    boot[36..40].copy_from_slice(&(1u32 << 17).to_le_bytes()); // 512 MiB of FAT
    boot[44..48].copy_from_slice(&2u32.to_le_bytes());
    boot[48..50].copy_from_slice(&1u16.to_le_bytes());
    boot[510] = 0x55;
    boot[511] = 0xAA;
    let mut info = [0u8; 512];
    info[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    info[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    info[508..512].copy_from_slice(&0xAA55_0000u32.to_le_bytes());
    let device = SparseDevice { blocks: 8 << 20, sectors: [(0, boot), (8, info)].into_iter().collect() };
    let result = within(Duration::from_secs(20), "512 MiB FAT", move || {
        FatFs::mount(device, MountOptions::default()).map(|_| ())
    });
    assert!(matches!(result, Err(StorageError::UnsupportedVersion { .. })), "{result:?}");
}
