//! Image targets: the bytes are a disk; mount it as each format's mount
//! would in the kernel, then do what `mkstore-image fsck` does (list every
//! directory, read every file to its size, verify CAPOSRO1 checksums, read
//! every store value), and for the writable formats also mount read-write,
//! write, sync and mount again.
//!
//! Input encoding (so that seeds and AFL's mutations stay small while the
//! disks are realistic): a 16-bit little-endian header whose low 15 bits
//! count all-zero 512-byte blocks appended after the rest of the input
//! (itself padded with zeroes to whole blocks). [`input_from_disk`] makes
//! such an input from a real image by cutting its trailing zeroes. For the
//! image targets, header bit 15 first reseals every superblock and commit
//! record ([`reseal_storage`]), so AFL's mutations of their fields get
//! past the CRC32C that guards them.

use alloc_walk::walk_and_read;
use capos_storage::colocated;
use capos_storage::fat::{self, FatFs};
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::partition::Partition;
use capos_storage::readonly_fs::ReadOnlyFs;
use capos_storage::store::Store;
use capos_storage::writable_fs::{MountOptions, WritableFs};
use capos_storage::{BlockDevice, FileSystem, FixedClock, Provenance, StorageError, Timestamp};

/// The largest disk an input may describe: one execution stays fast.
pub const MAX_DISK_BYTES: usize = 4 << 20;
const BLOCK: usize = 512;

/// The disk an input stands for (see the module doc); `None` for an input
/// shorter than its two-byte header or a disk of no block.
pub fn disk_from_input(data: &[u8]) -> Option<Vec<u8>> {
    let (head, body) = data.split_first_chunk::<2>()?;
    let zero_blocks = usize::from(u16::from_le_bytes(*head) & 0x7fff);
    let mut disk = body.to_vec();
    disk.truncate(MAX_DISK_BYTES);
    disk.resize(disk.len().div_ceil(BLOCK) * BLOCK, 0);
    let total = (disk.len() + zero_blocks * BLOCK).min(MAX_DISK_BYTES);
    disk.resize(total, 0);
    (!disk.is_empty()).then_some(disk)
}

/// The smallest input whose disk is `disk` (a whole number of blocks, at
/// most [`MAX_DISK_BYTES`]); `reseal` sets header bit 15.
pub fn input_from_disk(disk: &[u8], reseal: bool) -> Vec<u8> {
    let used = disk.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let zero_blocks = (disk.len() - used.div_ceil(BLOCK) * BLOCK) / BLOCK;
    assert!(zero_blocks < 0x8000, "more trailing zero blocks than an input can count");
    let mut input = (zero_blocks as u16 | if reseal { 0x8000 } else { 0 }).to_le_bytes().to_vec();
    input.extend_from_slice(&disk[..used]);
    input
}

/// The disk of an image target's input, resealed when header bit 15 says so.
fn image(data: &[u8]) -> Option<Vec<u8>> {
    let mut disk = disk_from_input(data)?;
    if data[1] & 0x80 != 0 {
        reseal_storage(&mut disk);
    }
    Some(disk)
}

/// The whole-block sealed structures of the formats: superblocks and
/// commit records. Each starts with its magic and ends with its CRC32C.
const SEALED_BLOCK_MAGICS: [[u8; 8]; 5] = [
    capos_storage::readonly_fs::layout::MAGIC,
    capos_storage::writable_fs::layout::MAGIC,
    capos_storage::writable_fs::layout::COMMIT_MAGIC,
    capos_storage::store::layout::MAGIC,
    capos_storage::store::layout::COMMIT_MAGIC,
];

/// Recompute the CRC of every 512-byte block that starts with a
/// superblock or commit-record magic (records inside other blocks, and
/// the digests commit records keep of metadata, are left as they are).
pub fn reseal_storage(disk: &mut [u8]) {
    for block in disk.chunks_exact_mut(BLOCK) {
        if SEALED_BLOCK_MAGICS.iter().any(|m| block[..8] == *m) {
            let _ = capos_storage::codec::seal(block);
        }
    }
}

fn clock() -> FixedClock {
    FixedClock(Timestamp::new(1_700_000_000_000_000_000, Provenance::Rtc))
}

const PROBE: &[u8] = b"written by the fuzz target";

/// CAPOSRO1: mount, walk, read and verify every file's CRC.
pub fn caposro1(data: &[u8]) {
    let Some(disk) = image(data) else { return };
    let Ok(mut fs) = ReadOnlyFs::mount(MemBlockDevice::from_bytes(disk)) else { return };
    let _ = walk_and_read(&mut fs, |fs, file| fs.verify_file(file));
}

/// CAPOSWF1 on a whole disk.
pub fn caposwf1(data: &[u8]) {
    let Some(disk) = image(data) else { return };
    let blocks = (disk.len() / BLOCK) as u64;
    writable(disk, 0, blocks);
}

/// CAPOSST1 on a whole disk.
pub fn caposst1(data: &[u8]) {
    let Some(disk) = image(data) else { return };
    let blocks = (disk.len() / BLOCK) as u64;
    store(disk, blocks);
}

/// The co-located layout: locate both volumes, then check each as its own
/// target does, in its own partition of the disk.
pub fn colocated(data: &[u8]) {
    let Some(disk) = image(data) else { return };
    let mut device = MemBlockDevice::from_bytes(disk);
    let Ok(layout) = colocated::locate(&mut device) else { return };
    let disk = device.into_bytes();
    store(disk.clone(), layout.store_blocks);
    writable(disk, layout.fs_start, layout.fs_blocks);
}

/// FAT12/16/32, whole volume or inside an MBR: mount, walk, read.
pub fn fat(data: &[u8]) {
    let Some(disk) = image(data) else { return };
    let Ok(mut fs) = FatFs::mount(MemBlockDevice::from_bytes(disk), fat::MountOptions::default()) else { return };
    let _ = walk_and_read(&mut fs, |_, _| Ok(()));
}

/// fsck of the CAPOSWF1 volume at `start` (read-only mount, walk, read),
/// then a read-write mount that writes a file, syncs, and must find the
/// file again after mounting once more.
fn writable(disk: Vec<u8>, start: u64, blocks: u64) {
    let part = |disk: Vec<u8>| Partition::new(MemBlockDevice::from_bytes(disk), start, blocks);
    let Ok(device) = part(disk.clone()) else { return };
    if let Ok(mut fs) = WritableFs::mount(device, clock(), MountOptions { read_only: true }) {
        let _ = fs.skipped_commit();
        let _ = walk_and_read(&mut fs, |_, _| Ok(()));
    }
    let Ok(device) = part(disk) else { return };
    let Ok(mut fs) = WritableFs::mount(device, clock(), MountOptions::default()) else { return };
    if write_probe(&mut fs).is_err() {
        return;
    }
    let device = fs.into_device();
    let mut again = WritableFs::mount(device, clock(), MountOptions { read_only: true })
        .unwrap_or_else(|e| panic!("CAPOSWF1: a volume that synced a write does not mount again: {e}"));
    let root = again.root();
    let file = again.open(root, "fuzz-probe").unwrap_or_else(|e| panic!("CAPOSWF1: a synced file is gone after remount: {e}"));
    let mut back = [0u8; PROBE.len()];
    let n = again.read(file, 0, &mut back).unwrap_or_else(|e| panic!("CAPOSWF1: a synced file cannot be read after remount: {e}"));
    assert_eq!(&back[..n], PROBE, "CAPOSWF1: a synced file reads back different bytes after remount");
}

fn write_probe<D: BlockDevice>(fs: &mut WritableFs<D, FixedClock>) -> Result<(), StorageError> {
    let root = fs.root();
    let _ = fs.remove(root, "fuzz-probe");
    let file = fs.create(root, "fuzz-probe")?;
    fs.write(file, 0, PROBE)?;
    fs.sync()
}

/// fsck of the CAPOSST1 store in the first `blocks` blocks (read every
/// value), then a read-write mount that puts a key, which must be there
/// after mounting again.
fn store(disk: Vec<u8>, blocks: u64) {
    let part = |disk: Vec<u8>| Partition::new(MemBlockDevice::from_bytes(disk), 0, blocks);
    let Ok(device) = part(disk.clone()) else { return };
    if let Ok(mut s) = Store::mount(device, true) {
        let _ = s.skipped_commit();
        let _ = s.entries();
        let _ = s.keys_after(None, 16);
    }
    let Ok(device) = part(disk) else { return };
    let Ok(mut s) = Store::mount(device, false) else { return };
    if s.put(b"fuzz-probe", PROBE).is_err() {
        return;
    }
    let mut again = Store::mount(s.into_device(), true).unwrap_or_else(|e| panic!("CAPOSST1: a store that committed a put does not mount again: {e}"));
    let value = again.get(b"fuzz-probe").unwrap_or_else(|e| panic!("CAPOSST1: a committed key cannot be read after remount: {e}"));
    assert_eq!(value.as_deref(), Some(PROBE), "CAPOSST1: a committed put reads back differently after remount");
}

mod alloc_walk {
    //! The walk fsck does, over any [`FileSystem`], without recursion.
    use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError};

    /// Most nodes one execution visits (a format that allowed a cycle
    /// would otherwise be walked forever; its mount must refuse one).
    const MAX_NODES: usize = 100_000;
    /// Most bytes one execution reads.
    const MAX_READ: u64 = 16 << 20;

    /// List every directory, open and stat every file and read it to its
    /// size (never more bytes than the size says), then `check` it.
    pub fn walk_and_read<F: FileSystem>(
        fs: &mut F,
        mut check: impl FnMut(&mut F, NodeHandle) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut dirs = vec![fs.root()];
        let mut visited = 0usize;
        let mut read_total = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        while let Some(dir) = dirs.pop() {
            fs.stat(dir)?;
            for entry in fs.list(dir)? {
                visited += 1;
                if visited > MAX_NODES {
                    return Ok(());
                }
                match entry.kind {
                    NodeKind::Directory => dirs.push(fs.sub(dir, &entry.name)?),
                    NodeKind::File => {
                        let file = fs.open(dir, &entry.name)?;
                        let size = fs.stat(file)?.size;
                        let mut offset = 0u64;
                        while read_total < MAX_READ {
                            let n = fs.read(file, offset, &mut buf)? as u64;
                            if n == 0 {
                                break;
                            }
                            offset += n;
                            read_total += n;
                            assert!(offset <= size, "read {offset} bytes of a file whose stat says {size}");
                        }
                        check(fs, file)?;
                    }
                }
            }
        }
        Ok(())
    }
}
