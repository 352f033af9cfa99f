//! The read-only FAT backer against images made by the real tools
//! (mkfs.fat, mcopy): every file's bytes and modification time must match
//! both the host files they were copied from and mtools' own reading of
//! the image. FAT32, FAT16 (512- and 4096-byte sectors, multi-sector
//! clusters) and FAT12; a whole-disk volume, an MBR partition, and a
//! partition handed over as its own device (the kernel's GPT path).

mod fat_support;

use capos_storage::fat::{FatFs, FatPartition, FatType, MountOptions};
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::partition::Partition;
use capos_storage::{FileSystem, NodeHandle, NodeKind, Provenance, StorageError, Timestamp};
use fat_support::*;
use std::path::Path;

/// 2020-09-13 12:26:40 UTC: an even second, as FAT stores.
const T0: i64 = 1_600_000_000;

fn pattern(len: usize, mul: usize) -> Vec<u8> {
    (0..len).map(|i| (i * mul % 251) as u8).collect()
}

fn write(root: &Path, rel: &str, data: &[u8], mtime: i64) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, data).unwrap();
    set_mtime(&path, mtime);
}

/// Fill a fresh image with the tree every variant is tested on, and return
/// what the host wrote: long and Unicode names, a nested tree, a
/// multi-cluster file, an empty file, a directory of `many` entries, a
/// file with an odd-second mtime, and FRAG.BIN whose chain is fragmented
/// (checked with mshowfat).
fn populate(img: &FatImage, many: usize) -> Tree {
    let staging = img.dir.0.join("staging");
    write(&staging, "hello.txt", b"hello from FAT\n", T0);
    write(&staging, "A long file name with spaces.txt", b"long names work\n", T0 + 2);
    write(&staging, "Ünïcödé-名前.txt", "unicode names work ✓\n".as_bytes(), T0 + 4);
    write(&staging, "MixedCase.Txt", b"case is kept\n", T0 + 6);
    write(&staging, "nested/deeper/deepest/leaf.txt", b"a leaf three directories down\n", T0 + 8);
    write(&staging, "nested/side.txt", b"beside deeper\n", T0 + 10);
    write(&staging, "multi.bin", &pattern(40000, 1), T0 + 12);
    write(&staging, "empty.txt", b"", T0 + 14);
    write(&staging, "odd-second.txt", b"FAT rounds this mtime down\n", T0 + 17);
    for i in 0..many {
        write(&staging, &format!("many/entry-{i:03}.txt"), format!("entry {i}\n").as_bytes(), T0 + 2 * i as i64);
    }
    std::fs::create_dir_all(staging.join("nested/empty-dir")).unwrap();
    img.put_tree(&staging);

    // Fragmentation: a 16-cluster file, one after it, delete the first,
    // then a 40-cluster file fills the hole and continues past the filler.
    let cluster = Layout::of(&img.bytes()).cluster_bytes;
    img.put("/HOLE.BIN", &vec![0xEE; 16 * cluster], T0);
    img.put("/FILLER.BIN", b"between the fragments\n", T0 + 20);
    img.del("/HOLE.BIN");
    if Layout::of(&img.bytes()).bits == 32 {
        img.forget_next_free_hint();
    }
    let frag = pattern(40 * cluster - 100, 7);
    img.put("/FRAG.BIN", &frag, T0 + 22);
    assert!(img.runs("/FRAG.BIN") >= 2, "FRAG.BIN was meant to be fragmented");

    let mut expected = Tree::new();
    fn add(dir: &Path, prefix: &str, out: &mut Tree) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = format!("{prefix}/{}", entry.file_name().into_string().unwrap());
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                out.insert(path.clone(), Item::Dir);
                add(&entry.path(), &path, out);
            } else {
                let mtime = meta.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                out.insert(path, Item::File { data: std::fs::read(entry.path()).unwrap(), mtime_secs: mtime as i64 });
            }
        }
    }
    add(&staging, "", &mut expected);
    expected.insert("/FILLER.BIN".into(), Item::File { data: b"between the fragments\n".to_vec(), mtime_secs: T0 + 20 });
    expected.insert("/FRAG.BIN".into(), Item::File { data: frag, mtime_secs: T0 + 22 });
    expected
}

/// Mount, walk, and compare with the host files and with mtools.
fn check_image(img: &FatImage, expected: &Tree, fat_type: FatType) -> FatFs<MemBlockDevice> {
    let mut fs = mount_bytes(img.bytes()).expect("mount");
    assert_eq!(fs.fat_type(), fat_type);
    let ours = walk(&mut fs, 100_000).expect("walk");
    assert_same_tree(&ours, expected);
    assert_same_tree(&ours, &img.host_view());
    fs
}

#[test]
fn fat32_tree_matches_host_and_mtools() {
    let img = FatImage::mkfs("fat32", 32, 40 << 20, 1, 512);
    let expected = populate(&img, 300);
    let mut fs = check_image(&img, &expected, FatType::Fat32);
    // The odd-second mtime is stored rounded down.
    let root = fs.root();
    let odd = fs.open(root, "odd-second.txt").unwrap();
    assert_eq!(fs.stat(odd).unwrap().modified, Timestamp::new((T0 + 16) * 1_000_000_000, Provenance::FatDirectoryEntry));
    let many = fs.sub(root, "many").unwrap();
    assert_eq!(fs.list(many).unwrap().len(), 300);
}

#[test]
fn fat16_tree_matches_host_and_mtools() {
    let img = FatImage::mkfs("fat16", 16, 8 << 20, 1, 512);
    let expected = populate(&img, 300);
    check_image(&img, &expected, FatType::Fat16);
}

#[test]
fn fat16_with_multi_sector_clusters_and_4096_byte_sectors() {
    let img = FatImage::mkfs("fat16-2k", 16, 16 << 20, 4, 512);
    let expected = populate(&img, 200);
    let fs = check_image(&img, &expected, FatType::Fat16);
    assert_eq!(fs.geometry().cluster_bytes, 2048);

    let img = FatImage::mkfs("fat16-4k", 16, 32 << 20, 1, 4096);
    let expected = populate(&img, 200);
    let fs = check_image(&img, &expected, FatType::Fat16);
    assert_eq!(fs.geometry().bytes_per_sector, 4096);
}

#[test]
fn fat12_tree_matches_host_and_mtools() {
    let img = FatImage::mkfs("fat12", 12, 1_474_560, 1, 512);
    let expected = populate(&img, 250);
    check_image(&img, &expected, FatType::Fat12);
}

#[test]
fn default_image_from_the_script() {
    let img = default_image();
    let mut fs = mount_bytes(img.bytes()).expect("mount the default image");
    assert_eq!(fs.fat_type(), FatType::Fat32);
    let ours = walk(&mut fs, 100_000).unwrap();
    assert_same_tree(&ours, &img.host_view());
    for path in [
        "/hello.txt",
        "/A long file name with spaces.txt",
        "/Ünïcödé-名前.txt",
        "/nested/deeper/deepest/leaf.txt",
        "/multi-cluster.bin",
        "/known-time.txt",
        "/empty.txt",
        "/fragmented.bin",
        "/many/entry-299.txt",
    ] {
        assert!(ours.contains_key(path), "the default image lacks {path}");
    }
    assert_eq!(ours.keys().filter(|k| k.starts_with("/many/")).count(), 300);
    assert!(img.runs("/fragmented.bin") >= 2);
    let file = |p: &str| match &ours[p] {
        Item::File { data, mtime_secs } => (data.clone(), *mtime_secs),
        Item::Dir => panic!("{p} is a directory"),
    };
    assert_eq!(file("/known-time.txt").1, 1_704_164_646); // 2024-01-02 03:04:06 UTC
    assert_eq!(file("/multi-cluster.bin").0, (0..40000).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    assert_eq!(file("/fragmented.bin").0, (0..40000usize).map(|i| ((7 * i + 3) % 256) as u8).collect::<Vec<_>>());
    assert!(file("/empty.txt").0.is_empty());
}

#[test]
fn whole_disk_mbr_partition_and_handed_over_partition() {
    let img = FatImage::mkfs("mbr", 32, 40 << 20, 1, 512);
    let expected = populate(&img, 20);
    let volume = img.bytes();
    let volume_blocks = (volume.len() / 512) as u32;

    // An MBR disk: a Linux partition first, the FAT one second at 1 MiB + 8 MiB.
    let start = 2048 + 16384u32;
    let mut disk = vec![0u8; (start as usize + volume_blocks as usize + 100) * 512];
    let entry = |disk: &mut Vec<u8>, i: usize, kind: u8, start: u32, len: u32| {
        let e = &mut disk[446 + 16 * i..446 + 16 * (i + 1)];
        e[4] = kind;
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&len.to_le_bytes());
    };
    entry(&mut disk, 0, 0x83, 2048, 16384);
    entry(&mut disk, 1, 0x0C, start, volume_blocks);
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk[start as usize * 512..start as usize * 512 + volume.len()].copy_from_slice(&volume);

    for options in [MountOptions::default(), MountOptions { partition: FatPartition::Mbr(2) }] {
        let mut fs = FatFs::mount(MemBlockDevice::from_bytes(disk.clone()), options).expect("mount the MBR partition");
        assert_eq!(fs.volume_extent(), (u64::from(start), u64::from(volume_blocks)));
        assert_same_tree(&walk(&mut fs, 10_000).unwrap(), &expected);
    }
    // Partition 1 is not FAT; block 0 of the disk is not a boot sector.
    let whole = MountOptions { partition: FatPartition::WholeDevice };
    assert!(FatFs::mount(MemBlockDevice::from_bytes(disk.clone()), whole).unwrap_err().is_corruption());
    let first = MountOptions { partition: FatPartition::Mbr(1) };
    assert!(FatFs::mount(MemBlockDevice::from_bytes(disk.clone()), first).is_err());
    let missing = MountOptions { partition: FatPartition::Mbr(3) };
    assert_eq!(FatFs::mount(MemBlockDevice::from_bytes(disk.clone()), missing).err(), Some(StorageError::NotFound));

    // The kernel's GPT path: it resolves the partition and hands it over.
    let mut dev = MemBlockDevice::from_bytes(disk);
    let part = Partition::new(&mut dev, u64::from(start), u64::from(volume_blocks)).unwrap();
    let mut fs = FatFs::mount(part, whole).expect("mount a handed-over partition");
    assert_same_tree(&walk(&mut fs, 10_000).unwrap(), &expected);

    // A whole-disk volume with Auto.
    let mut fs = FatFs::mount(MemBlockDevice::from_bytes(volume), MountOptions::default()).unwrap();
    assert_eq!(fs.volume_extent(), (0, u64::from(volume_blocks)));
    assert_same_tree(&walk(&mut fs, 10_000).unwrap(), &expected);
}

/// Contiguous clusters are read in one device request; a fragmented file
/// costs one request per run.
#[test]
fn reads_issue_one_request_per_contiguous_run() {
    let img = FatImage::mkfs("requests", 32, 40 << 20, 1, 512);
    populate(&img, 5);
    let mut fs = mount_bytes(img.bytes()).unwrap();
    let root = fs.root();

    let multi = fs.open(root, "multi.bin").unwrap(); // 40000 bytes = 79 clusters of 512
    let before = fs.device().reads;
    let mut buf = vec![0u8; 40000];
    assert_eq!(fs.read(multi, 0, &mut buf).unwrap(), 40000);
    let cold = fs.device().reads - before;
    // At most: the FAT sector for the chain check, one request for the 78
    // whole sectors, one for the partial last sector.
    assert!(cold <= 3, "a cold read of a contiguous 79-cluster file took {cold} requests");
    let before = fs.device().reads;
    fs.read(multi, 0, &mut buf).unwrap();
    assert_eq!(fs.device().reads - before, 1, "a warm contiguous read is one request");
    assert_eq!(buf, pattern(40000, 1));

    let frag = fs.open(root, "FRAG.BIN").unwrap();
    let size = fs.stat(frag).unwrap().size as usize;
    let runs = img.runs("/FRAG.BIN") as u64;
    let mut buf = vec![0u8; size];
    fs.read(frag, 0, &mut buf).unwrap();
    let before = fs.device().reads;
    fs.read(frag, 0, &mut buf).unwrap();
    assert_eq!(fs.device().reads - before, runs, "one request per run of FRAG.BIN");
}

/// Reads at arbitrary offsets and lengths (across clusters, runs and the
/// end; backwards after forwards) return the host's bytes.
#[test]
fn random_reads_match_the_host() {
    let img = FatImage::mkfs("random", 16, 8 << 20, 1, 512);
    let expected = populate(&img, 3);
    let mut fs = mount_bytes(img.bytes()).unwrap();
    let root = fs.root();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    for name in ["FRAG.BIN", "multi.bin"] {
        let Item::File { data, .. } = &expected[&format!("/{name}")] else { panic!() };
        let file = fs.open(root, name).unwrap();
        for _ in 0..2000 {
            let offset = next(data.len() as u64 + 600);
            let len = next(3000) as usize;
            let mut buf = vec![0u8; len];
            let n = fs.read(file, offset, &mut buf).unwrap();
            let want = data.len().saturating_sub(offset as usize).min(len);
            assert_eq!(n, want, "{name} at {offset}+{len}");
            if n > 0 {
                assert_eq!(&buf[..n], &data[offset as usize..offset as usize + n], "{name} at {offset}+{len}");
            }
        }
    }
}

#[test]
fn every_mutation_is_read_only() {
    let img = FatImage::mkfs("ro", 12, 1_474_560, 1, 512);
    populate(&img, 2);
    let before = img.bytes();
    let mut fs = mount_bytes(before.clone()).unwrap();
    let root = fs.root();
    let file = fs.open(root, "hello.txt").unwrap();
    assert_eq!(fs.mkdir(root, "new"), Err(StorageError::ReadOnly));
    assert_eq!(fs.create(root, "new.txt"), Err(StorageError::ReadOnly));
    assert_eq!(fs.remove(root, "hello.txt"), Err(StorageError::ReadOnly));
    assert_eq!(fs.rename(root, "hello.txt", root, "bye.txt"), Err(StorageError::ReadOnly));
    assert_eq!(fs.write(file, 0, b"x"), Err(StorageError::ReadOnly));
    assert_eq!(fs.truncate(file, 0), Err(StorageError::ReadOnly));
    assert_eq!(fs.sync(), Err(StorageError::ReadOnly));
    walk(&mut fs, 1000).unwrap();
    let dev = fs.into_device();
    assert_eq!(dev.writes, 0, "the backer wrote to the device");
    assert_eq!(dev.as_bytes(), &before[..]);
}

#[test]
fn handles_and_lookups() {
    let img = FatImage::mkfs("handles", 16, 8 << 20, 1, 512);
    populate(&img, 2);
    let mut fs = mount_bytes(img.bytes()).unwrap();
    let root = fs.root();
    let file = fs.open(root, "hello.txt").unwrap();
    let dir = fs.sub(root, "nested").unwrap();
    assert_eq!(fs.open(root, "nested"), Err(StorageError::NotAFile));
    assert_eq!(fs.sub(root, "hello.txt"), Err(StorageError::NotADirectory));
    assert_eq!(fs.list(file), Err(StorageError::NotADirectory));
    assert_eq!(fs.read(dir, 0, &mut [0; 4]), Err(StorageError::NotAFile));
    assert_eq!(fs.open(root, "missing"), Err(StorageError::NotFound));
    // Exact names: FAT would match case-insensitively, this backer does not.
    assert_eq!(fs.open(root, "HELLO.TXT"), Err(StorageError::NotFound));
    assert_eq!(fs.open(root, "."), Err(StorageError::NotFound));
    assert_eq!(fs.sub(dir, ".."), Err(StorageError::NotFound));
    for bad in [NodeHandle { index: 1 << 30, generation: 0 }, NodeHandle { index: file.index, generation: 1 }] {
        assert_eq!(fs.stat(bad), Err(StorageError::StaleHandle));
        assert_eq!(fs.read(bad, 0, &mut [0; 4]), Err(StorageError::StaleHandle));
        assert_eq!(fs.list(bad), Err(StorageError::StaleHandle));
    }
    // Listing twice gives the same answer (the table is read once).
    let first = fs.list(dir).unwrap();
    let count = fs.node_count();
    assert_eq!(fs.list(dir).unwrap(), first);
    assert_eq!(fs.node_count(), count);
    assert!(first.iter().any(|e| e.name == "empty-dir" && e.kind == NodeKind::Directory));
}

/// Created (10 ms) and modified (2 s) times come from the entry; zero or
/// invalid dates are unknown; a directory reports its own entry's times and
/// the root has none.
#[test]
fn times_come_from_the_directory_entry() {
    let img = FatImage::mkfs("times", 32, 40 << 20, 1, 512);
    populate(&img, 2);
    let mut bytes = img.bytes();
    let l = Layout::of(&bytes);
    let date = |y: u16, m: u16, d: u16| (((y - 1980) << 9) | (m << 5) | d).to_le_bytes();
    let time = |h: u16, m: u16, s: u16| ((h << 11) | (m << 5) | (s / 2)).to_le_bytes();

    // hello.txt: created 2023-11-14 22:13:21.37 (22:13:20 + 137 tens of ms).
    let hello = l.find(&bytes, l.root(), b"HELLO   TXT");
    bytes[hello + 13] = 137;
    bytes[hello + 14..hello + 16].copy_from_slice(&time(22, 13, 20));
    bytes[hello + 16..hello + 18].copy_from_slice(&date(2023, 11, 14));
    // empty.txt: a zero modification date.
    let empty = l.find(&bytes, l.root(), b"EMPTY   TXT");
    bytes[empty + 24..empty + 26].copy_from_slice(&[0, 0]);
    // nested/: modified 2001-02-03 04:05:06, created on an invalid date.
    let nested = l.find(&bytes, l.root(), b"NESTED     ");
    bytes[nested + 22..nested + 24].copy_from_slice(&time(4, 5, 6));
    bytes[nested + 24..nested + 26].copy_from_slice(&date(2001, 2, 3));
    bytes[nested + 16..nested + 18].copy_from_slice(&date(2001, 2, 30));

    let mut fs = mount_bytes(bytes).unwrap();
    let root = fs.root();
    let fat = |secs: i64, tens_of_ms: i64| {
        Timestamp::new(secs * 1_000_000_000 + tens_of_ms * 10_000_000, Provenance::FatDirectoryEntry)
    };

    let h = fs.open(root, "hello.txt").unwrap();
    let stat = fs.stat(h).unwrap();
    assert_eq!(stat.created, fat(1_700_000_000, 137));
    assert_eq!(stat.modified, fat(T0, 0));

    let e = fs.open(root, "empty.txt").unwrap();
    assert_eq!(fs.stat(e).unwrap().modified, Timestamp::UNKNOWN);

    let n = fs.sub(root, "nested").unwrap();
    let stat = fs.stat(n).unwrap();
    assert_eq!(stat.kind, NodeKind::Directory);
    assert_eq!(stat.modified, fat(981_173_106, 0)); // 2001-02-03 04:05:06 UTC
    assert_eq!(stat.created, Timestamp::UNKNOWN);

    let stat = fs.stat(root).unwrap();
    assert_eq!((stat.created, stat.modified), (Timestamp::UNKNOWN, Timestamp::UNKNOWN));

    // Every file mcopy wrote has an mtime from the entry within 2 s of the host's.
    let leaf = fs.sub(n, "deeper").and_then(|d| fs.sub(d, "deepest")).and_then(|d| fs.open(d, "leaf.txt")).unwrap();
    let modified = fs.stat(leaf).unwrap().modified;
    assert_eq!(modified.provenance, Provenance::FatDirectoryEntry);
    assert!((modified.unix_nanos / 1_000_000_000 - (T0 + 8)).abs() <= 2);
}

/// Opening a subdirectory costs the same wherever it sits in its parent:
/// 1000 sibling directories walk in well under the watchdog's limit.
#[test]
fn a_thousand_sibling_directories() {
    let img = FatImage::mkfs("siblings", 16, 8 << 20, 1, 512);
    let args: Vec<String> = (0..1000).map(|i| format!("::/dir {i:04}")).collect();
    let status = std::process::Command::new(tool("mmd"))
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&img.path)
        .arg("::/top")
        .args(args.iter().map(|a| a.replace("::/", "::/top/")))
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = img.bytes();
    let tree = within(std::time::Duration::from_secs(20), "1000 sibling directories", move || {
        let mut fs = mount_bytes(bytes).unwrap();
        walk(&mut fs, 10_000).unwrap()
    });
    assert_eq!(tree.len(), 1001);
    assert_same_tree(&tree, &img.host_view());
}
