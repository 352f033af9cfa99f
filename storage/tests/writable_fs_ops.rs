//! CAPOSWF1 operations: semantics of each Directory/File call, timestamps
//! with provenance, handles, read-only mounts and feature flags.

mod support;

use capos_storage::codec::seal;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::time::SteppingClock;
use capos_storage::writable_fs::{format, MountOptions, WritableFs, NVME_NAMESPACE_BLOCKS};
use capos_storage::{FileSystem, FixedClock, NodeKind, Provenance, StorageError, Timestamp};
use support::{pauses, Asked, Watched};

fn clock() -> SteppingClock {
    SteppingClock { next: Timestamp::new(1_700_000_000_000_000_000, Provenance::WallClock), step_nanos: 1000 }
}

fn fresh(blocks: u64) -> WritableFs<MemBlockDevice, SteppingClock> {
    let mut dev = MemBlockDevice::new(blocks);
    format(&mut dev, None, Timestamp::new(5, Provenance::SourceDateEpoch)).unwrap();
    WritableFs::mount(dev, clock(), MountOptions::default()).unwrap()
}

fn remount(fs: WritableFs<MemBlockDevice, SteppingClock>, options: MountOptions) -> WritableFs<MemBlockDevice, SteppingClock> {
    WritableFs::mount(fs.into_device(), clock(), options).unwrap()
}

#[test]
fn directory_and_file_operations() {
    let mut fs = fresh(2048);
    let root = fs.root();
    let docs = fs.mkdir(root, "docs").unwrap();
    let file = fs.create(docs, "note.txt").unwrap();
    assert_eq!(fs.create(docs, "note.txt"), Err(StorageError::AlreadyExists));
    assert_eq!(fs.open(docs, "missing"), Err(StorageError::NotFound));
    assert_eq!(fs.open(root, "docs"), Err(StorageError::NotAFile));
    assert_eq!(fs.sub(docs, "note.txt"), Err(StorageError::NotADirectory));
    assert_eq!(fs.write(file, 0, b"hello"), Ok(5));
    assert_eq!(fs.write(file, 1000, b"tail"), Ok(4));
    let mut buf = vec![0u8; 2000];
    assert_eq!(fs.read(file, 0, &mut buf), Ok(1004));
    assert_eq!(&buf[..5], b"hello");
    assert!(buf[5..1000].iter().all(|&b| b == 0), "gap must read as zeros");
    assert_eq!(&buf[1000..1004], b"tail");
    assert_eq!(fs.read(file, 5000, &mut buf), Ok(0));
    fs.truncate(file, 3).unwrap();
    fs.truncate(file, 600).unwrap();
    assert_eq!(fs.read(file, 0, &mut buf), Ok(600));
    assert_eq!(&buf[..3], b"hel");
    assert!(buf[3..600].iter().all(|&b| b == 0), "truncate-then-grow must zero-fill");
    assert_eq!(fs.remove(root, "docs"), Err(StorageError::DirectoryNotEmpty));
    fs.rename(docs, "note.txt", root, "moved.txt").unwrap();
    assert_eq!(fs.rename(root, "docs", docs, "inside"), Err(StorageError::WouldCreateCycle));
    let list = fs.list(root).unwrap();
    assert_eq!(list.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["docs", "moved.txt"]);
    assert_eq!(list[1].size, 600);
    fs.remove(root, "docs").unwrap();
    assert_eq!(fs.stat(docs), Err(StorageError::StaleHandle));
    for bad in ["", ".", "..", "a/b", "nul\0", &"x".repeat(81)] {
        assert!(matches!(fs.create(root, bad), Err(StorageError::InvalidName(_))), "{bad:?}");
    }
    fs.sync().unwrap();
    let mut fs = remount(fs, MountOptions::default());
    let moved = fs.open(fs.root(), "moved.txt").unwrap();
    assert_eq!(fs.read(moved, 0, &mut buf), Ok(600));
    assert_eq!(&buf[..3], b"hel");
}

#[test]
fn stale_handle_after_slot_reuse() {
    let mut fs = fresh(512);
    let root = fs.root();
    let mut handles = Vec::new();
    for i in 0..20 {
        let f = fs.create(root, &format!("f{i}")).unwrap();
        handles.push(f);
    }
    for i in 0..20 {
        fs.remove(root, &format!("f{i}")).unwrap();
    }
    for i in 0..20 {
        fs.create(root, &format!("g{i}")).unwrap();
    }
    for h in handles {
        assert_eq!(fs.stat(h), Err(StorageError::StaleHandle));
        assert_eq!(fs.write(h, 0, b"x"), Err(StorageError::StaleHandle));
    }
}

#[test]
fn stat_reports_times_and_their_provenance() {
    let mut fs = fresh(512);
    let root = fs.root();
    let f = fs.create(root, "t").unwrap();
    let created = fs.stat(f).unwrap();
    assert_eq!(created.kind, NodeKind::File);
    assert_eq!(created.created.provenance, Provenance::WallClock);
    assert_eq!(created.created, created.modified);
    fs.write(f, 0, b"x").unwrap();
    let written = fs.stat(f).unwrap();
    assert_eq!(written.created, created.created);
    assert!(written.modified.unix_nanos > created.modified.unix_nanos);
    fs.sync().unwrap();
    let mut fs = remount(fs, MountOptions::default());
    let f = fs.open(fs.root(), "t").unwrap();
    assert_eq!(fs.stat(f).unwrap(), written, "times survive a remount");
    let root_stat = fs.stat(fs.root()).unwrap();
    assert_eq!(root_stat.kind, NodeKind::Directory);
    assert_eq!(root_stat.created, Timestamp::new(5, Provenance::SourceDateEpoch));
}

#[test]
fn unsynced_writes_are_not_durable_but_synced_ones_are() {
    let mut fs = fresh(512);
    let root = fs.root();
    let f = fs.create(root, "f").unwrap();
    fs.write(f, 0, b"synced").unwrap();
    fs.sync().unwrap();
    fs.write(f, 0, b"LOST!!").unwrap();
    // Remount from the device as it is: the second write is uncommitted.
    let mut fs = remount(fs, MountOptions::default());
    let f = fs.open(fs.root(), "f").unwrap();
    let mut buf = [0u8; 6];
    fs.read(f, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"synced");
}

#[test]
fn read_only_mount_refuses_mutations_and_writes_nothing() {
    let mut fs = fresh(512);
    let f = fs.create(fs.root(), "f").unwrap();
    fs.write(f, 0, b"data").unwrap();
    fs.sync().unwrap();
    let mut dev = fs.into_device();
    dev.reset_counters();
    dev.set_read_only(true);
    let mut fs = WritableFs::mount(dev, clock(), MountOptions { read_only: true }).unwrap();
    let root = fs.root();
    let f = fs.open(root, "f").unwrap();
    assert_eq!(fs.mkdir(root, "d"), Err(StorageError::ReadOnly));
    assert_eq!(fs.create(root, "g"), Err(StorageError::ReadOnly));
    assert_eq!(fs.remove(root, "f"), Err(StorageError::ReadOnly));
    assert_eq!(fs.rename(root, "f", root, "g"), Err(StorageError::ReadOnly));
    assert_eq!(fs.write(f, 0, b"x"), Err(StorageError::ReadOnly));
    assert_eq!(fs.truncate(f, 0), Err(StorageError::ReadOnly));
    assert_eq!(fs.sync(), Err(StorageError::ReadOnly));
    assert_eq!(fs.device().writes, 0);
}

fn set_feature_word(dev: &mut MemBlockDevice, offset: usize, value: u64) {
    let mut bytes = dev.clone().into_bytes();
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    seal(&mut bytes[..512]).unwrap();
    *dev = MemBlockDevice::from_bytes(bytes);
}

#[test]
fn feature_flag_classes() {
    let base = fresh(512).into_device();
    let mount = |dev: MemBlockDevice| WritableFs::mount(dev, FixedClock(Timestamp::UNKNOWN), MountOptions::default());
    // Unknown compatible feature: ignored, mounts read-write.
    let mut dev = base.clone();
    set_feature_word(&mut dev, 16, 1 << 63);
    let mut fs = mount(dev).unwrap();
    assert!(!fs.is_read_only());
    fs.create(fs.root(), "ok").unwrap();
    // Unknown read-only-compatible feature: mounts read-only.
    let mut dev = base.clone();
    set_feature_word(&mut dev, 24, 1 << 5);
    let mut fs = mount(dev).unwrap();
    assert!(fs.is_read_only());
    assert_eq!(fs.create(fs.root(), "no"), Err(StorageError::ReadOnly));
    // Unknown incompatible feature: refused.
    let mut dev = base;
    set_feature_word(&mut dev, 32, 1 << 9);
    assert_eq!(mount(dev).err(), Some(StorageError::IncompatibleFeatures { unknown: 1 << 9 }));
}

#[test]
fn full_volume_reports_no_space_and_changes_nothing() {
    let mut fs = fresh(256);
    let root = fs.root();
    let other = fs.create(root, "other").unwrap();
    fs.write(other, 0, &[2u8; 10 * 512]).unwrap();
    let f = fs.create(root, "big").unwrap();
    let free = fs.free_blocks() as usize;
    assert_eq!(fs.write(f, 0, &vec![1u8; (free + 1) * 512]), Err(StorageError::NoSpace));
    assert_eq!(fs.stat(f).unwrap().size, 0);
    assert_eq!(fs.free_blocks() as usize, free);
    fs.write(f, 0, &vec![1u8; free * 512]).unwrap();
    fs.sync().unwrap();
    // Overwriting a durable block needs a fresh one: none left.
    assert_eq!(fs.write(f, 0, b"x"), Err(StorageError::NoSpace));
    fs.truncate(f, 0).unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.free_blocks() as usize, free);
    let too_large = fs.geometry().data_blocks as usize * 512 + 1;
    assert_eq!(fs.write(f, 0, &vec![0u8; too_large]), Err(StorageError::FileTooLarge));
}

/// A commit settles only the blocks whose chain entry changed; after every
/// commit the free count must be what a mount, counting the whole chain
/// table, finds: overwrites of durable blocks, truncates, removes and
/// writes that fill the volume, interleaved.
#[test]
fn free_count_after_each_commit_matches_a_fresh_count() {
    let mut fs = fresh(600);
    let root = fs.root();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..4000 {
        let name = format!("f{}", next(6));
        let file = match fs.open(root, &name) {
            Ok(f) => f,
            Err(_) => fs.create(root, &name).unwrap(),
        };
        match next(6) {
            0 => {
                let _ = fs.write(file, next(40) * 512, &vec![step as u8; (1 + next(30)) as usize * 512]);
            }
            1 => fs.truncate(file, next(20) * 512).unwrap(),
            2 => fs.remove(root, &name).unwrap(),
            3 => {
                let _ = fs.rename(root, &name, root, &format!("f{}", next(6)));
            }
            4 => {
                let _ = fs.write(file, next(3000), &vec![3u8; next(3000) as usize]);
            }
            _ => {
                let _ = fs.write(file, 0, &[1u8; 700]);
            }
        }
        // Several operations between commits, as a client that syncs
        // now and then makes them.
        if next(3) != 0 {
            continue;
        }
        fs.sync().unwrap();
        let counted = WritableFs::mount(fs.device().clone(), clock(), MountOptions { read_only: true }).unwrap().free_blocks();
        assert_eq!(fs.free_blocks(), counted, "step {step}");
    }
}

#[test]
fn nvme_namespace_geometry_is_pinned() {
    assert_eq!(NVME_NAMESPACE_BLOCKS, 32768);
    let mut dev = MemBlockDevice::new(NVME_NAMESPACE_BLOCKS);
    let g = format(&mut dev, None, Timestamp::UNKNOWN).unwrap();
    assert_eq!(dev.as_bytes().len(), 16 * 1024 * 1024);
    assert_eq!(g.total_blocks, 32768);
    assert_eq!(g.node_capacity, 2048);
    assert!(g.data_lba + g.data_blocks as u64 <= 32768);
    assert_eq!((g.node_blocks, g.chain_blocks, g.data_blocks, g.data_lba), (512, 247, 31247, 1521));
}

#[test]
fn many_files_and_a_large_file_survive_remount() {
    let mut fs = fresh(8192);
    let root = fs.root();
    let big = fs.create(root, "big").unwrap();
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 + i / 511) as u8).collect();
    for chunk in 0..(data.len() / 65536 + 1) {
        let start = chunk * 65536;
        let end = (start + 65536).min(data.len());
        fs.write(big, start as u64, &data[start..end]).unwrap();
    }
    for i in 0..100 {
        let f = fs.create(root, &format!("small-{i:03}")).unwrap();
        fs.write(f, 0, format!("content {i}").as_bytes()).unwrap();
    }
    fs.sync().unwrap();
    let mut fs = remount(fs, MountOptions::default());
    let snap = support::snapshot(&mut fs).unwrap();
    assert_eq!(snap["/big"].as_deref(), Some(&data[..]));
    assert_eq!(snap["/small-042"].as_deref(), Some(&b"content 42"[..]));
    assert_eq!(snap.len(), 102);
}

#[test]
fn long_engine_work_pauses_once_per_block_of_work() {
    let mut dev = MemBlockDevice::new(32_768);
    format(&mut dev, None, Timestamp::new(5, Provenance::SourceDateEpoch)).unwrap();
    let mut fs = WritableFs::mount(Watched { inner: dev, log: Vec::new() }, clock(), MountOptions::default()).unwrap();
    let root = fs.root();
    let f = fs.create(root, "big").unwrap();

    // A 1 MiB write: one pause per eight 512-byte blocks copied and
    // allocated.
    fs.device().log.clear();
    fs.write(f, 0, &vec![7u8; 1 << 20]).unwrap();
    let write = core::mem::take(&mut fs.device().log);
    assert!(pauses(&write) >= 2048 / 8, "{} pauses for 2048 blocks written", pauses(&write));

    // Its commit re-encodes every chain block the write touched (2048
    // entries: at least 16 blocks) before the first region write, pausing
    // between two blocks encoded.
    fs.sync().unwrap();
    let sync = core::mem::take(&mut fs.device().log);
    let before_first_write = sync.iter().position(|a| matches!(a, Asked::Write(_))).unwrap();
    assert!(pauses(&sync[..before_first_write]) >= 16, "{:?}", &sync[..before_first_write]);

    // After a remount the allocator's cursor is back at the volume's start
    // and walks the file's 2048 used blocks to find a free one: a pause per
    // chain block's worth (127 entries) walked, before the write.
    let dev = fs.into_device();
    let mut fs = WritableFs::mount(dev, clock(), MountOptions::default()).unwrap();
    let root = fs.root();
    let g = fs.create(root, "small").unwrap();
    fs.device().log.clear();
    fs.write(g, 0, b"x").unwrap();
    let small = core::mem::take(&mut fs.device().log);
    let first_write = small.iter().position(|a| matches!(a, Asked::Write(_))).unwrap();
    assert!(pauses(&small[..first_write]) >= 2048 / 127, "{:?}", &small[..first_write]);

    // Removing the file frees 2048 chain entries: a pause per 127.
    fs.device().log.clear();
    fs.remove(root, "big").unwrap();
    let remove = core::mem::take(&mut fs.device().log);
    let first_write = remove.iter().position(|a| matches!(a, Asked::Write(_))).unwrap();
    // (and the commit re-encodes the 16 or 17 chain blocks it touched).
    assert!(pauses(&remove[..first_write]) >= 2 * (2048 / 127), "{:?}", &remove[..first_write]);
}
