//! Read a host directory into a [`SourceNode`] tree, and write one back.
//!
//! Why here and not in the storage crate: this is the only place that
//! touches the host filesystem. Times follow the reproducible-builds rule:
//! with `SOURCE_DATE_EPOCH` set, a file's mtime is clamped to it (and then
//! labelled `source-date-epoch`), so a fresh checkout gives the same image.

use capos_storage::readonly_fs::SourceNode;
use capos_storage::{Provenance, Timestamp};
use std::fs;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Why a host tree could not be read.
pub enum TreeError {
    /// A file or directory could not be read.
    Io(String),
    /// Something no image can hold: a symlink, a special file, a name that
    /// is not UTF-8.
    Unsupported(String),
}

/// Read `dir` recursively. Symlinks and special files are refused, as are
/// names that are not UTF-8.
pub fn read_host_tree(dir: &Path, source_date_epoch: Option<i64>) -> Result<SourceNode, TreeError> {
    let io = |e: std::io::Error| TreeError::Io(format!("{}: {e}", dir.display()));
    let meta = fs::symlink_metadata(dir).map_err(io)?;
    let mtime = host_mtime(&meta, source_date_epoch);
    if meta.is_file() {
        let data = fs::read(dir).map_err(io)?;
        return Ok(SourceNode::File { data, mtime });
    }
    if !meta.is_dir() {
        return Err(TreeError::Unsupported(format!("{}: not a regular file or directory", dir.display())));
    }
    let mut entries = Vec::new();
    let listing = fs::read_dir(dir).map_err(io)?;
    for entry in listing {
        let entry = entry.map_err(io)?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| TreeError::Unsupported(format!("{}: name {n:?} is not UTF-8", dir.display())))?;
        let child = read_host_tree(&entry.path(), source_date_epoch)?;
        entries.push((name, child));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(SourceNode::Directory { entries, mtime })
}

fn host_mtime(meta: &fs::Metadata, source_date_epoch: Option<i64>) -> Option<Timestamp> {
    let modified = meta.modified().ok()?;
    let nanos = match modified.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_nanos()).ok()?,
    };
    match source_date_epoch {
        Some(sde) => {
            // In range: checked when SOURCE_DATE_EPOCH was read.
            let sde_nanos = sde.saturating_mul(1_000_000_000);
            if nanos > sde_nanos {
                Some(Timestamp::new(sde_nanos, Provenance::SourceDateEpoch))
            } else {
                Some(Timestamp::new(nanos, Provenance::HostFileMtime))
            }
        }
        None => Some(Timestamp::new(nanos, Provenance::HostFileMtime)),
    }
}
