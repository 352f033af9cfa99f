//! The co-located image: a CAPOSST1 store and a CAPOSWF1 filesystem side
//! by side on one disk.
//!
//! Why: one virtual disk can then carry both the persistent `Store` and the
//! writable `Directory` tree. The layout needs no table of its own: the
//! store starts at block 0 and its superblock's `total_blocks` says where
//! it ends; the filesystem starts at the next block and runs to the end of
//! the disk. Each engine is given a [`Partition`]
//! of its own range, so neither can write into the other.

use crate::block::BlockDevice;
use crate::error::StorageError;
use crate::partition::Partition;
use crate::superblock::{check_block_size, read_sector};
use crate::time::Timestamp;
use crate::{store, writable_fs};

/// Store size used by the image tool unless told otherwise (1 MiB).
pub const DEFAULT_STORE_BLOCKS: u64 = 2048;

/// Where the two volumes of a co-located disk are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColocatedLayout {
    pub store_blocks: u64,
    pub fs_start: u64,
    pub fs_blocks: u64,
}

/// Format `device` as a store of `store_blocks` followed by a filesystem.
pub fn format<D: BlockDevice>(
    device: &mut D,
    store_blocks: u64,
    now: Timestamp,
) -> Result<ColocatedLayout, StorageError> {
    check_block_size(device)?;
    let total = device.block_count();
    if store_blocks >= total {
        return Err(StorageError::DeviceTooSmall { needed_blocks: store_blocks + 1, available_blocks: total });
    }
    let layout = ColocatedLayout { store_blocks, fs_start: store_blocks, fs_blocks: total - store_blocks };
    store::format(&mut Partition::new(&mut *device, 0, store_blocks)?, None)?;
    writable_fs::format(&mut Partition::new(&mut *device, layout.fs_start, layout.fs_blocks)?, None, now)?;
    Ok(layout)
}

/// Find the two volumes: the store's superblock gives its size, and a
/// CAPOSWF1 superblock must start right after it. Each volume's own mount
/// then checks everything else.
pub fn locate<D: BlockDevice>(device: &mut D) -> Result<ColocatedLayout, StorageError> {
    check_block_size(device)?;
    let total = device.block_count();
    let sb = read_sector(device, 0)?;
    let header = crate::superblock::SuperblockHeader::decode(&sb, &store::layout::MAGIC, "CAPOSST1", store::layout::VERSION, total)?;
    let store_blocks = header.total_blocks;
    if store_blocks >= total {
        return Err(StorageError::Corrupt { what: "no filesystem after the store", detail: store_blocks });
    }
    let fs_sb = read_sector(device, store_blocks)?;
    if fs_sb[..8] != writable_fs::layout::MAGIC {
        let mut found = [0u8; 8];
        found.copy_from_slice(&fs_sb[..8]);
        return Err(StorageError::BadMagic { expected: writable_fs::layout::MAGIC, found });
    }
    Ok(ColocatedLayout { store_blocks, fs_start: store_blocks, fs_blocks: total - store_blocks })
}

/// Which blocks of `device` hold one format, for a service that takes
/// either a disk of that format alone or the co-located layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub start: u64,
    pub count: u64,
    /// The range is one half of a co-located disk.
    pub colocated: bool,
}

/// The CAPOSWF1 filesystem's blocks: the whole device, or, when it starts
/// with a CAPOSST1 store, the filesystem after it (whose absence is an
/// error: a store-only disk holds no filesystem).
pub fn filesystem_part<D: BlockDevice>(device: &mut D) -> Result<Part, StorageError> {
    if starts_with_store(device)? {
        let l = locate(device)?;
        return Ok(Part { start: l.fs_start, count: l.fs_blocks, colocated: true });
    }
    Ok(Part { start: 0, count: device.block_count(), colocated: false })
}

/// The CAPOSST1 store's blocks: the whole device for a store-only disk,
/// the store half of a co-located one.
pub fn store_part<D: BlockDevice>(device: &mut D) -> Result<Part, StorageError> {
    match locate(device) {
        Ok(l) => Ok(Part { start: 0, count: l.store_blocks, colocated: true }),
        Err(_) => Ok(Part { start: 0, count: device.block_count(), colocated: false }),
    }
}

fn starts_with_store<D: BlockDevice>(device: &mut D) -> Result<bool, StorageError> {
    check_block_size(device)?;
    Ok(read_sector(device, 0)?[..8] == store::layout::MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_device::MemBlockDevice;
    use crate::writable_fs::{MountOptions, WritableFs};
    use crate::{FileSystem, FixedClock};

    #[test]
    fn parts_of_plain_and_colocated_disks() {
        let mut both = MemBlockDevice::new(1024);
        format(&mut both, 256, Timestamp::UNKNOWN).unwrap();
        assert_eq!(filesystem_part(&mut both).unwrap(), Part { start: 256, count: 768, colocated: true });
        assert_eq!(store_part(&mut both).unwrap(), Part { start: 0, count: 256, colocated: true });
        let mut fs_only = MemBlockDevice::new(1024);
        writable_fs::format(&mut fs_only, None, Timestamp::UNKNOWN).unwrap();
        assert_eq!(filesystem_part(&mut fs_only).unwrap(), Part { start: 0, count: 1024, colocated: false });
        let mut store_only = MemBlockDevice::new(1024);
        store::format(&mut store_only, None).unwrap();
        assert_eq!(store_part(&mut store_only).unwrap(), Part { start: 0, count: 1024, colocated: false });
        // A store-only disk has no filesystem: said, not guessed.
        assert!(filesystem_part(&mut store_only).is_err());
        // A blank disk is "the whole device"; its own mount then says why not.
        let mut blank = MemBlockDevice::new(1024);
        assert_eq!(filesystem_part(&mut blank).unwrap(), Part { start: 0, count: 1024, colocated: false });
    }

    #[test]
    fn store_and_filesystem_stay_in_their_ranges() {
        let mut disk = MemBlockDevice::new(1024);
        let layout = format(&mut disk, 256, Timestamp::UNKNOWN).unwrap();
        assert_eq!(locate(&mut disk).unwrap(), layout);
        {
            let mut s = store::Store::mount(Partition::new(&mut disk, 0, 256).unwrap(), false).unwrap();
            for i in 0..150u32 {
                s.put(&i.to_le_bytes(), &[i as u8; 300]).unwrap();
            }
        }
        {
            let part = Partition::new(&mut disk, layout.fs_start, layout.fs_blocks).unwrap();
            let mut fs = WritableFs::mount(part, FixedClock(Timestamp::UNKNOWN), MountOptions::default()).unwrap();
            let f = fs.create(fs.root(), "f").unwrap();
            fs.write(f, 0, &[9u8; 100_000]).unwrap();
            fs.sync().unwrap();
        }
        let mut s = store::Store::mount(Partition::new(&mut disk, 0, 256).unwrap(), true).unwrap();
        assert_eq!(s.get(&149u32.to_le_bytes()).unwrap().unwrap(), [149u8; 300]);
        let part = Partition::new(&mut disk, layout.fs_start, layout.fs_blocks).unwrap();
        let mut fs = WritableFs::mount(part, FixedClock(Timestamp::UNKNOWN), MountOptions { read_only: true }).unwrap();
        let f = fs.open(fs.root(), "f").unwrap();
        assert_eq!(fs.stat(f).unwrap().size, 100_000);
    }
}
