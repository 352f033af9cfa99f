//! Recognize an image by its magic and open it read-only, applying the
//! policy for a damaged newest commit.

use super::Failure;
use capos_storage::colocated::{self, ColocatedLayout};
use capos_storage::fat::{self, FatFs};
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
    /// Not ours: a FAT volume (or an MBR disk holding one), read-only.
    Fat,
}

pub type RoView = ReadOnlyFs<MemBlockDevice>;
pub type FsView = WritableFs<Partition<MemBlockDevice>, FixedClock>;
pub type StoreView = Store<Partition<MemBlockDevice>>;
pub type FatView = FatFs<MemBlockDevice>;

/// What to do when mount had to pass over a newer commit whose data is
/// damaged and fell back to an older one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OlderCommit {
    /// Refuse (exit 4): the older state is not the image's contents.
    Refuse,
    /// Use the older commit, with a WARNING on stderr naming its generation.
    AllowLoudly,
    /// fsck: report the damaged newest commit as corruption.
    Report,
}

/// An image, opened read-only, every volume in it mounted.
pub enum Opened {
    ReadOnly(RoView),
    Writable(FsView),
    Store(StoreView),
    Colocated { layout: ColocatedLayout, store: StoreView, fs: FsView },
    Fat(FatView),
}

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
        // A boot sector or an MBR: let the FAT reader decide.
        _ if bytes[510..512] == [0x55, 0xAA] => Ok(ImageKind::Fat),
        other => {
            let mut found = [0u8; 8];
            found.copy_from_slice(other);
            Err(Failure::storage("image", StorageError::BadMagic { expected: *b"CAPOS???", found }))
        }
    }
}

/// Detect the format and mount every volume read-only. A passed-over newest
/// commit is handled by `older` before anything is returned, so a caller
/// never prints a line of a state it will then refuse.
pub fn open(bytes: Vec<u8>, older: OlderCommit) -> Result<Opened, Failure> {
    let blocks = (bytes.len() / 512) as u64;
    Ok(match detect(&bytes)? {
        ImageKind::ReadOnlyFs => Opened::ReadOnly(open_readonly(bytes)?),
        ImageKind::WritableFs => Opened::Writable(open_writable(bytes, 0, older)?),
        ImageKind::Store => Opened::Store(open_store(bytes, blocks, older)?),
        ImageKind::Colocated(layout) => {
            let store = open_store(bytes.clone(), layout.store_blocks, older)?;
            let fs = open_writable(bytes, layout.fs_start, older)?;
            Opened::Colocated { layout, store, fs }
        }
        ImageKind::Fat => Opened::Fat(
            FatFs::mount(MemBlockDevice::from_bytes(bytes), fat::MountOptions::default())
                .map_err(|e| Failure::storage("FAT", e))?,
        ),
    })
}

fn open_readonly(bytes: Vec<u8>) -> Result<RoView, Failure> {
    ReadOnlyFs::mount(MemBlockDevice::from_bytes(bytes)).map_err(|e| Failure::storage("CAPOSRO1", e))
}

fn range(bytes: Vec<u8>, start: u64, count: u64) -> Result<Partition<MemBlockDevice>, Failure> {
    Partition::new(MemBlockDevice::from_bytes(bytes), start, count)
        .map_err(|e| Failure::storage("image", StorageError::Device(e)))
}

/// The filesystem of a CAPOSWF1 image (or of a co-located one), read-only.
fn open_writable(bytes: Vec<u8>, start: u64, older: OlderCommit) -> Result<FsView, Failure> {
    let count = (bytes.len() / 512) as u64 - start;
    let fs = WritableFs::mount(range(bytes, start, count)?, FixedClock(Timestamp::UNKNOWN), MountOptions { read_only: true })
        .map_err(|e| Failure::storage("CAPOSWF1", e))?;
    apply_policy("CAPOSWF1", fs.skipped_commit(), fs.generation(), older)?;
    Ok(fs)
}

/// The store of a CAPOSST1 image (or of a co-located one), read-only.
fn open_store(bytes: Vec<u8>, blocks: u64, older: OlderCommit) -> Result<StoreView, Failure> {
    let store = Store::mount(range(bytes, 0, blocks)?, true).map_err(|e| Failure::storage("CAPOSST1", e))?;
    apply_policy("CAPOSST1", store.skipped_commit(), store.generation(), older)?;
    if let Some(unfinished) = store.unfinished_commit() {
        // Not damage by the format's rule (FEATURE_SINGLE_FLUSH): the
        // newest record names entries that never all reached the disk.
        eprintln!(
            "mkstore-image: CAPOSST1: commit generation {} was not finished ({}) and is rolled back: \
             the store is at generation {}, as a power cut before that commit's flush leaves it",
            unfinished.generation,
            unfinished.why,
            store.generation()
        );
    }
    Ok(store)
}

fn apply_policy(format: &str, skipped: Option<&StorageError>, generation: u64, older: OlderCommit) -> Result<(), Failure> {
    let Some(why) = skipped else { return Ok(()) };
    match older {
        OlderCommit::Report => Err(Failure::storage(&format!("{format} newest commit"), why.clone())),
        OlderCommit::Refuse => Err(Failure::corrupt(format!(
            "{format}: the newest commit is damaged ({why}); an older commit, generation {generation}, is intact. \
             Refusing to present it as the image's contents; pass --allow-older-commit to use it anyway"
        ))),
        OlderCommit::AllowLoudly => {
            eprintln!(
                "mkstore-image: WARNING: {format}: the newest commit is damaged ({why}); \
                 using the OLDER commit, generation {generation}, as --allow-older-commit asked. \
                 What follows is not the image's latest state."
            );
            Ok(())
        }
    }
}
