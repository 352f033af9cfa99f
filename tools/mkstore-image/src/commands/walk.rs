//! Walk a filesystem tree depth first without recursion.
//!
//! Why not recursion: a format allows any depth (a CAPOSRO1 image of a
//! 100,000-level chain is a few tens of MiB), and a recursive walk runs out
//! of stack long before that. Here the stack is a `Vec`: one frame per open
//! directory holding the entries not visited yet, so memory is bounded by
//! the number of entries in the image (linear), and the depth is bounded by
//! nothing but that.

use super::{CommandResult, Failure};
use capos_storage::{DirEntry, FileSystem, NodeHandle, NodeKind, StorageError};

/// What the walk reports, in depth-first pre-order, entries in the order
/// `list` returns them (sorted by name bytes). `path` holds the names from
/// the root down to the node (empty for the root).
pub trait Visitor<F: FileSystem> {
    /// Entering a directory (the root first).
    fn enter_dir(&mut self, fs: &mut F, path: &[String], dir: NodeHandle) -> CommandResult;
    /// Leaving the directory entered last (the root last).
    fn leave_dir(&mut self, _fs: &mut F, _path: &[String]) -> CommandResult {
        Ok(())
    }
    /// A file.
    fn file(&mut self, fs: &mut F, path: &[String], file: NodeHandle) -> CommandResult;
}

struct Frame {
    dir: NodeHandle,
    remaining: std::vec::IntoIter<DirEntry>,
}

/// Visit every node of `fs`. `format` names the filesystem in errors.
pub fn walk<F: FileSystem, V: Visitor<F>>(fs: &mut F, format: &str, visitor: &mut V) -> CommandResult {
    let failed = |path: &[String], e: StorageError| Failure::storage(&format!("{format} {}", display_path(path)), e);
    let root = fs.root();
    let mut path: Vec<String> = Vec::new();
    visitor.enter_dir(fs, &path, root)?;
    let listing = fs.list(root).map_err(|e| failed(&path, e))?;
    let mut stack = vec![Frame { dir: root, remaining: listing.into_iter() }];
    while let Some(top) = stack.last_mut() {
        let Some(entry) = top.remaining.next() else {
            stack.pop();
            visitor.leave_dir(fs, &path)?;
            path.pop();
            continue;
        };
        let parent = top.dir;
        path.push(entry.name);
        let name = path.last().map(String::as_str).unwrap_or_default();
        match entry.kind {
            NodeKind::Directory => {
                let dir = fs.sub(parent, name).map_err(|e| failed(&path, e))?;
                visitor.enter_dir(fs, &path, dir)?;
                let listing = fs.list(dir).map_err(|e| failed(&path, e))?;
                stack.push(Frame { dir, remaining: listing.into_iter() });
            }
            NodeKind::File => {
                let file = fs.open(parent, name).map_err(|e| failed(&path, e))?;
                visitor.file(fs, &path, file)?;
                path.pop();
            }
        }
    }
    Ok(())
}

/// A name as it is safe to print: control characters (C0, DEL, C1) as
/// `\n`, `\r`, `\t`, `\xNN` or `\u{NN}`, and a backslash as `\\`, so a
/// name can neither drive a terminal nor forge a line, and every printed
/// name stands for exactly one real name.
pub fn escape_name(name: &str) -> String {
    capos_storage::name::escape_control(name, true)
}

/// `/a/b/c` with every name escaped; `/` for the root.
pub fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut out = String::new();
    for name in path {
        out.push('/');
        out.push_str(&escape_name(name));
    }
    out
}

/// Read a file from start to end in bounded chunks, handing each to `sink`;
/// fails if the file ends before its stat size.
pub fn read_through<F: FileSystem>(
    fs: &mut F,
    file: NodeHandle,
    mut sink: impl FnMut(&[u8]) -> Result<(), Failure>,
    failed: impl Fn(StorageError) -> Failure,
) -> CommandResult {
    let size = fs.stat(file).map_err(&failed)?.size;
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    while done < size {
        let want = (size - done).min(buf.len() as u64) as usize;
        let n = fs.read(file, done, &mut buf[..want]).map_err(&failed)?;
        if n == 0 {
            return Err(failed(StorageError::Truncated));
        }
        sink(&buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_unambiguously() {
        assert_eq!(escape_name("plain ü 🌍"), "plain ü 🌍");
        assert_eq!(escape_name("a\u{1b}[2J\n\r\t\u{7f}\u{9b}"), r"a\x1b[2J\n\r\t\x7f\u{9b}");
        assert_eq!(escape_name(r"\x1b"), r"\\x1b", "a literal backslash is escaped too");
        assert_eq!(display_path(&[]), "/");
        assert_eq!(display_path(&["a".into(), "b\n".into()]), r"/a/b\n");
    }
}
