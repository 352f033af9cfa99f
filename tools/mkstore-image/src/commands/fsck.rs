//! `fsck IMG`: check every checksum and invariant of an image.
//!
//! Mounting does most of the work — each format's mount validates its
//! superblock, commit record and all metadata before it answers anything.
//! fsck adds what mount leaves for later: every file's data is read (and,
//! in CAPOSRO1, checked against its CRC), every store value is read and
//! checked, and a passed-over newer commit is reported as damage.

use super::extract::read_all;
use super::image::{detect, open_readonly, open_store, open_writable, ImageKind};
use super::{CommandResult, Failure};
use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError};

pub fn fsck(bytes: Vec<u8>) -> CommandResult {
    let blocks = (bytes.len() / 512) as u64;
    match detect(&bytes)? {
        ImageKind::ReadOnlyFs => {
            let mut fs = open_readonly(bytes)?;
            let root = fs.root();
            let files = check_files(&mut fs, root, &mut |fs, file| fs.verify_file(file))
                .map_err(|e| Failure::storage("CAPOSRO1", e))?;
            println!("CAPOSRO1: clean ({} nodes, {files} files verified)", fs.node_count());
            Ok(())
        }
        ImageKind::WritableFs => fsck_writable(bytes, 0),
        ImageKind::Store => fsck_store(bytes, blocks),
        ImageKind::Colocated(layout) => {
            fsck_store(bytes.clone(), layout.store_blocks)?;
            fsck_writable(bytes, layout.fs_start)
        }
    }
}

fn fsck_writable(bytes: Vec<u8>, start: u64) -> CommandResult {
    let mut fs = open_writable(bytes, start)?;
    if let Some(e) = fs.skipped_commit() {
        return Err(Failure::storage("CAPOSWF1 newest commit", e.clone()));
    }
    let root = fs.root();
    let files = check_files(&mut fs, root, &mut |fs, file| read_all(fs, file).map(|_| ()))
        .map_err(|e| Failure::storage("CAPOSWF1", e))?;
    println!(
        "CAPOSWF1: clean (generation {}, {} nodes, {files} files read, {} free blocks)",
        fs.generation(),
        fs.live_nodes(),
        fs.free_blocks()
    );
    Ok(())
}

fn fsck_store(bytes: Vec<u8>, blocks: u64) -> CommandResult {
    let mut store = open_store(bytes, blocks)?;
    if let Some(e) = store.skipped_commit() {
        return Err(Failure::storage("CAPOSST1 newest commit", e.clone()));
    }
    let entries = store.entries().map_err(|e| Failure::storage("CAPOSST1", e))?;
    println!("CAPOSST1: clean (generation {}, {} live keys, {} entries)", store.generation(), entries.len(), store.entry_count());
    Ok(())
}

fn check_files<F: FileSystem>(
    fs: &mut F,
    dir: NodeHandle,
    check: &mut dyn FnMut(&mut F, NodeHandle) -> Result<(), StorageError>,
) -> Result<u64, StorageError> {
    let mut count = 0;
    for entry in fs.list(dir)? {
        match entry.kind {
            NodeKind::File => {
                let file = fs.open(dir, &entry.name)?;
                check(fs, file)?;
                count += 1;
            }
            NodeKind::Directory => {
                let sub = fs.sub(dir, &entry.name)?;
                count += check_files(fs, sub, check)?;
            }
        }
    }
    Ok(count)
}
