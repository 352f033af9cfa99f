//! Recognize an image by its magic and open it.

use super::Failure;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::readonly_fs::ReadOnlyFs;
use capos_storage::StorageError;

pub enum ImageKind {
    ReadOnlyFs,
    WritableFs,
    Store,
    /// A store of `store_blocks` blocks followed by a writable filesystem.
    Colocated { store_blocks: u64 },
}

pub fn detect(bytes: &[u8]) -> Result<ImageKind, Failure> {
    if bytes.len() < 512 || bytes.len() % 512 != 0 {
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
            let image_blocks = (bytes.len() / 512) as u64;
            let next = usize::try_from(total).ok().and_then(|t| t.checked_mul(512));
            match next {
                Some(at) if total < image_blocks && bytes.get(at..at + 8) == Some(b"CAPOSWF1") => {
                    Ok(ImageKind::Colocated { store_blocks: total })
                }
                _ => Ok(ImageKind::Store),
            }
        }
        other => {
            let mut found = [0u8; 8];
            found.copy_from_slice(other);
            Err(Failure::storage(
                "image",
                StorageError::BadMagic { expected: *b"CAPOS???", found },
            ))
        }
    }
}

pub fn open_readonly(bytes: Vec<u8>) -> Result<ReadOnlyFs<MemBlockDevice>, Failure> {
    ReadOnlyFs::mount(MemBlockDevice::from_bytes(bytes)).map_err(|e| Failure::storage("CAPOSRO1", e))
}
