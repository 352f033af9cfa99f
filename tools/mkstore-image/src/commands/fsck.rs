//! `fsck IMG`: check every checksum and invariant of an image.

use super::image::{detect, open_readonly, ImageKind};
use super::{CommandResult, Failure};
use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError};

pub fn fsck(bytes: Vec<u8>) -> CommandResult {
    match detect(&bytes)? {
        ImageKind::ReadOnlyFs => {
            let mut fs = open_readonly(bytes)?;
            let root = fs.root();
            let files = verify_files(&mut fs, root).map_err(|e| Failure::storage("CAPOSRO1", e))?;
            println!("CAPOSRO1: clean ({} nodes, {files} files verified)", fs.node_count());
            Ok(())
        }
        _ => Err(Failure::usage("fsck: format not supported yet")),
    }
}

fn verify_files<D: capos_storage::BlockDevice>(
    fs: &mut capos_storage::readonly_fs::ReadOnlyFs<D>,
    dir: NodeHandle,
) -> Result<u64, StorageError> {
    let mut count = 0;
    for entry in fs.list(dir)? {
        match entry.kind {
            NodeKind::File => {
                let file = fs.open(dir, &entry.name)?;
                fs.verify_file(file)?;
                count += 1;
            }
            NodeKind::Directory => {
                let sub = fs.sub(dir, &entry.name)?;
                count += verify_files(fs, sub)?;
            }
        }
    }
    Ok(count)
}
