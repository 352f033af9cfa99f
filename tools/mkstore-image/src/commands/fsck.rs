//! `fsck IMG`: check every checksum and invariant of an image.
//!
//! Mounting does most of the work — each format's mount validates its
//! superblock, commit record and all metadata before it answers anything.
//! fsck adds what mount leaves for later: every file's data is read (and,
//! in CAPOSRO1, checked against its CRC), every store value is read and
//! checked, and a passed-over newer commit is reported as damage (except a
//! CAPOSST1 single-flush commit that never finished: rolled back by the
//! format's rule, and named in the clean line).
//! `extract` runs the same checks before it writes anything.

use super::image::{open, FatView, FsView, OlderCommit, Opened, RoView, StoreView};
use super::walk::{display_path, read_through, walk, Visitor};
use super::{CommandResult, Failure};
use capos_storage::{FileSystem, NodeHandle};

pub fn fsck(bytes: Vec<u8>) -> CommandResult {
    match open(bytes, OlderCommit::Report)? {
        Opened::ReadOnly(mut fs) => {
            let files = check_readonly(&mut fs)?;
            println!("CAPOSRO1: clean ({} nodes, {files} files verified)", fs.node_count());
        }
        Opened::Writable(mut fs) => report_writable(&mut fs)?,
        Opened::Store(mut store) => report_store(&mut store)?,
        Opened::Colocated { mut store, mut fs, .. } => {
            report_store(&mut store)?;
            report_writable(&mut fs)?;
        }
        Opened::Fat(mut fs) => {
            let files = check_fat(&mut fs)?;
            let kind = fs.fat_type().label();
            println!("{kind}: clean ({} entries, {files} files read to their size)", fs.node_count() - 1);
        }
    }
    Ok(())
}

/// A volume whose generation cannot advance can be read but never mounted
/// read-write: report it.
fn check_generation(format: &str, generation: u64) -> CommandResult {
    if generation == u64::MAX {
        return Err(Failure::corrupt(format!(
            "{format}: commit generation is u64::MAX: no further commit is possible, so the volume cannot be mounted read-write"
        )));
    }
    Ok(())
}

fn report_writable(fs: &mut FsView) -> CommandResult {
    check_generation("CAPOSWF1", fs.generation())?;
    let files = check_writable(fs)?;
    println!(
        "CAPOSWF1: clean (generation {}, {} nodes, {files} files read, {} free blocks)",
        fs.generation(),
        fs.live_nodes(),
        fs.free_blocks()
    );
    Ok(())
}

fn report_store(store: &mut StoreView) -> CommandResult {
    check_generation("CAPOSST1", store.generation())?;
    let entries = check_store(store)?;
    let rolled_back = match store.unfinished_commit() {
        Some(unfinished) => format!(", unfinished commit {} rolled back", unfinished.generation),
        None => String::new(),
    };
    println!(
        "CAPOSST1: clean (generation {}, {} live keys, {} entries{rolled_back})",
        store.generation(),
        entries.len(),
        store.entry_count()
    );
    Ok(())
}

/// Every CAPOSRO1 file's bytes against its CRC. Returns the file count.
pub fn check_readonly(fs: &mut RoView) -> Result<u64, Failure> {
    let mut check = FileCheck {
        count: 0,
        check: |fs: &mut RoView, path: &[String], file| {
            fs.verify_file(file).map_err(|e| Failure::storage(&format!("CAPOSRO1 {}", display_path(path)), e))
        },
    };
    walk(fs, "CAPOSRO1", &mut check)?;
    Ok(check.count)
}

/// Every CAPOSWF1 file read to its full size. Returns the file count.
pub fn check_writable(fs: &mut FsView) -> Result<u64, Failure> {
    let mut check = FileCheck {
        count: 0,
        check: |fs: &mut FsView, path: &[String], file| {
            read_through(fs, file, |_| Ok(()), |e| Failure::storage(&format!("CAPOSWF1 {}", display_path(path)), e))
        },
    };
    walk(fs, "CAPOSWF1", &mut check)?;
    Ok(check.count)
}

/// Every FAT directory listed and every file read to its size (each file's
/// cluster chain is checked against its size on the way). Returns the file
/// count.
pub fn check_fat(fs: &mut FatView) -> Result<u64, Failure> {
    let mut check = FileCheck {
        count: 0,
        check: |fs: &mut FatView, path: &[String], file| {
            read_through(fs, file, |_| Ok(()), |e| Failure::storage(&format!("FAT {}", display_path(path)), e))
        },
    };
    walk(fs, "FAT", &mut check)?;
    Ok(check.count)
}

/// Every store entry read and checked against its CRC; returns them all.
pub fn check_store(store: &mut StoreView) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Failure> {
    store.entries().map_err(|e| Failure::storage("CAPOSST1", e))
}

struct FileCheck<C> {
    count: u64,
    check: C,
}

impl<F: FileSystem, C: FnMut(&mut F, &[String], NodeHandle) -> CommandResult> Visitor<F> for FileCheck<C> {
    fn enter_dir(&mut self, _: &mut F, _: &[String], _: NodeHandle) -> CommandResult {
        Ok(())
    }
    fn file(&mut self, fs: &mut F, path: &[String], file: NodeHandle) -> CommandResult {
        (self.check)(fs, path, file)?;
        self.count += 1;
        Ok(())
    }
}
