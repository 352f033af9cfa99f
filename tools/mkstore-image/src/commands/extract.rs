//! `extract IMG OUT`: write an image's contents back out as host files.
//!
//! Nothing is written until the whole image has passed the checks fsck
//! runs (every CAPOSRO1 file against its CRC, every CAPOSWF1 file read to
//! its size, every store entry against its CRC), so a damaged image never
//! yields a partial or silently wrong tree. See [`super::output`] for how
//! OUT and everything below it is written.

use super::fsck::{check_fat, check_readonly, check_store, check_writable};
use super::image::{open, OlderCommit, Opened};
use super::output::{create_new_file, write_all, DirWriter};
use super::walk::{display_path, read_through, walk, Visitor};
use super::{CommandResult, Failure};
use crate::kv_file;
use capos_storage::{FileSystem, NodeHandle};
use std::path::Path;

pub fn extract(bytes: Vec<u8>, out: &Path, older: OlderCommit) -> CommandResult {
    match open(bytes, older)? {
        Opened::ReadOnly(mut fs) => {
            check_readonly(&mut fs)?;
            write_tree(&mut fs, "CAPOSRO1", DirWriter::create_root(out)?)
        }
        Opened::Writable(mut fs) => {
            check_writable(&mut fs)?;
            write_tree(&mut fs, "CAPOSWF1", DirWriter::create_root(out)?)
        }
        Opened::Store(mut store) => {
            let entries = check_store(&mut store)?;
            let mut file = create_new_file(out)?;
            write_all(&mut file, kv_file::render(&entries).as_bytes(), &out.display().to_string())
        }
        Opened::Colocated { mut store, mut fs, .. } => {
            let entries = check_store(&mut store)?;
            check_writable(&mut fs)?;
            let mut root = DirWriter::create_root(out)?;
            let shown = format!("{}/store.kv", out.display());
            let mut file = root.create_file("store.kv", "/store.kv")?;
            write_all(&mut file, kv_file::render(&entries).as_bytes(), &shown)?;
            drop(file);
            root.enter_new_dir("fs", "/fs")?;
            write_tree(&mut fs, "CAPOSWF1", root)
        }
        Opened::Fat(mut fs) => {
            check_fat(&mut fs)?;
            write_tree(&mut fs, "FAT", DirWriter::create_root(out)?)
        }
    }
}

/// Write the whole tree of `fs` into the directory `writer` holds.
fn write_tree<F: FileSystem>(fs: &mut F, format: &'static str, writer: DirWriter) -> CommandResult {
    walk(fs, format, &mut Writer { writer, format })
}

struct Writer {
    writer: DirWriter,
    format: &'static str,
}

impl<F: FileSystem> Visitor<F> for Writer {
    fn enter_dir(&mut self, _: &mut F, path: &[String], _: NodeHandle) -> CommandResult {
        match path.last() {
            None => Ok(()), // the root: OUT itself
            Some(name) => self.writer.enter_new_dir(name, &display_path(path)),
        }
    }

    fn leave_dir(&mut self, _: &mut F, path: &[String]) -> CommandResult {
        if path.is_empty() {
            return Ok(());
        }
        self.writer.leave_dir()
    }

    fn file(&mut self, fs: &mut F, path: &[String], file: NodeHandle) -> CommandResult {
        let shown = display_path(path);
        let name = path.last().map(String::as_str).unwrap_or_default();
        let mut out = self.writer.create_file(name, &shown)?;
        let format = self.format;
        read_through(fs, file, |chunk| write_all(&mut out, chunk, &shown), |e| {
            Failure::storage(&format!("{format} {shown}"), e)
        })
    }
}
