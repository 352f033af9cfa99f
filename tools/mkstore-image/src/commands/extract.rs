//! `extract IMG OUT`: write an image's contents back out as host files.

use super::image::{detect, open_readonly, ImageKind};
use super::{CommandResult, Failure};
use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError};
use std::path::Path;

pub fn extract(bytes: Vec<u8>, out: &Path) -> CommandResult {
    match detect(&bytes)? {
        ImageKind::ReadOnlyFs => {
            let mut fs = open_readonly(bytes)?;
            extract_tree(&mut fs, out)
        }
        _ => Err(Failure::usage("extract: format not supported yet")),
    }
}

/// Write the whole tree of `fs` under the new directory `out`.
pub fn extract_tree<F: FileSystem>(fs: &mut F, out: &Path) -> CommandResult {
    std::fs::create_dir_all(out).map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
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
                std::fs::create_dir(&path)
                    .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
                write_dir(fs, sub, &path)?;
            }
            NodeKind::File => {
                let file = fs.open(dir, &entry.name).map_err(|e| Failure::storage("open", e))?;
                let data = read_all(fs, file).map_err(|e| Failure::storage(&entry.name, e))?;
                std::fs::write(&path, data)
                    .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
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
