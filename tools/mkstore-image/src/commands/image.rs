//! Recognize an image by its magic and open it read-only.

use super::Failure;
use capos_storage::colocated::{self, ColocatedLayout};
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::partition::Partition;
use capos_storage::readonly_fs::ReadOnlyFs;
use capos_storage::store::Store;
use capos_storage::writable_fs::{MountOptions, WritableFs};
use capos_storage::{FixedClock, StorageError, Timestamp};

pub enum ImageKind {
    ReadOnlyFs,
    WritableFs,
    Store,
    Colocated(ColocatedLayout),
}

pub type FsView = WritableFs<Partition<MemBlockDevice>, FixedClock>;
pub type StoreView = Store<Partition<MemBlockDevice>>;

pub fn detect(bytes: &[u8]) -> Result<ImageKind, Failure> {
    if bytes.len() < 512 || !bytes.len().is_multiple_of(512) {
        return Err(Failure::storage(
            "image",
            StorageError::Corrupt { what: "image size is not a positive multiple of 512", detail: bytes.len() as u64 },
        ));
    }
    match &bytes[..8] {
        b"CAPOSRO1" => Ok(ImageKind::ReadOnlyFs),
        b"CAPOSWF1" => Ok(ImageKind::WritableFs),
        b"CAPOSST1" => {
            let total = u64::from_le_bytes(bytes[48..56].try_into().unwrap_or([0; 8]));
            if total < (bytes.len() / 512) as u64 {
                let mut device = MemBlockDevice::from_bytes(bytes.to_vec());
                let layout = colocated::locate(&mut device).map_err(|e| Failure::storage("co-located image", e))?;
                Ok(ImageKind::Colocated(layout))
            } else {
                Ok(ImageKind::Store)
            }
        }
        other => {
            let mut found = [0u8; 8];
            found.copy_from_slice(other);
            Err(Failure::storage("image", StorageError::BadMagic { expected: *b"CAPOS???", found }))
        }
    }
}

pub fn open_readonly(bytes: Vec<u8>) -> Result<ReadOnlyFs<MemBlockDevice>, Failure> {
    ReadOnlyFs::mount(MemBlockDevice::from_bytes(bytes)).map_err(|e| Failure::storage("CAPOSRO1", e))
}

fn range(bytes: Vec<u8>, start: u64, count: u64) -> Result<Partition<MemBlockDevice>, Failure> {
    Partition::new(MemBlockDevice::from_bytes(bytes), start, count)
        .map_err(|e| Failure::storage("image", StorageError::Device(e)))
}

/// The filesystem of a CAPOSWF1 image (or of a co-located one), read-only.
pub fn open_writable(bytes: Vec<u8>, start: u64) -> Result<FsView, Failure> {
    let count = (bytes.len() / 512) as u64 - start;
    WritableFs::mount(range(bytes, start, count)?, FixedClock(Timestamp::UNKNOWN), MountOptions { read_only: true })
        .map_err(|e| Failure::storage("CAPOSWF1", e))
}

/// The store of a CAPOSST1 image (or of a co-located one), read-only.
pub fn open_store(bytes: Vec<u8>, blocks: u64) -> Result<StoreView, Failure> {
    Store::mount(range(bytes, 0, blocks)?, true).map_err(|e| Failure::storage("CAPOSST1", e))
}
