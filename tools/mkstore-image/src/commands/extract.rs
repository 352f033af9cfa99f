//! `extract IMG OUT`: write an image's contents back out as host files.

use super::image::{detect, open_readonly, open_store, open_writable, ImageKind};
use super::{CommandResult, Failure};
use crate::kv_file;
use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError};
use std::path::Path;

pub fn extract(bytes: Vec<u8>, out: &Path) -> CommandResult {
    let blocks = (bytes.len() / 512) as u64;
    match detect(&bytes)? {
        ImageKind::ReadOnlyFs => extract_tree(&mut open_readonly(bytes)?, out),
        ImageKind::WritableFs => extract_tree(&mut open_writable(bytes, 0)?, out),
        ImageKind::Store => extract_store(bytes, blocks, out),
        ImageKind::Colocated(layout) => {
            create_dir(out)?;
            extract_store(bytes.clone(), layout.store_blocks, &out.join("store.kv"))?;
            extract_tree(&mut open_writable(bytes, layout.fs_start)?, &out.join("fs"))
        }
    }
}

fn create_dir(path: &Path) -> CommandResult {
    std::fs::create_dir_all(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn extract_store(bytes: Vec<u8>, blocks: u64, out: &Path) -> CommandResult {
    let mut store = open_store(bytes, blocks)?;
    let entries = store.entries().map_err(|e| Failure::storage("CAPOSST1", e))?;
    std::fs::write(out, kv_file::render(&entries)).map_err(|e| Failure::usage(format!("{}: {e}", out.display())))
}

/// Write the whole tree of `fs` under the directory `out`.
pub fn extract_tree<F: FileSystem>(fs: &mut F, out: &Path) -> CommandResult {
    create_dir(out)?;
    let root = fs.root();
    write_dir(fs, root, out)
}

fn write_dir<F: FileSystem>(fs: &mut F, dir: NodeHandle, out: &Path) -> CommandResult {
    let entries = fs.list(dir).map_err(|e| Failure::storage("list", e))?;
    for entry in entries {
        let path = out.join(&entry.name);
        match entry.kind {
            NodeKind::Directory => {
                let sub = fs.sub(dir, &entry.name).map_err(|e| Failure::storage("sub", e))?;
                std::fs::create_dir(&path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
                write_dir(fs, sub, &path)?;
            }
            NodeKind::File => {
                let file = fs.open(dir, &entry.name).map_err(|e| Failure::storage("open", e))?;
                let data = read_all(fs, file).map_err(|e| Failure::storage(&entry.name, e))?;
                std::fs::write(&path, data).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
            }
        }
    }
    Ok(())
}

pub fn read_all<F: FileSystem>(fs: &mut F, file: NodeHandle) -> Result<Vec<u8>, StorageError> {
    let size = fs.stat(file)?.size;
    let mut data = vec![0u8; usize::try_from(size).map_err(|_| StorageError::FileTooLarge)?];
    let mut done = 0usize;
    while done < data.len() {
        let n = fs.read(file, done as u64, &mut data[done..])?;
        if n == 0 {
            return Err(StorageError::Truncated);
        }
        done += n;
    }
    Ok(data)
}
