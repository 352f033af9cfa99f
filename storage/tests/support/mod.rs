//! Shared test support: a seeded RNG, an in-memory tree model of a
//! filesystem, and a snapshot of any `FileSystem` to compare against it.

#![allow(dead_code)]

use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError};
use std::collections::BTreeMap;

/// splitmix64: small, fast, deterministic.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Number of iterations for randomized tests: `default`, or scaled by the
/// environment variable CAPOS_CRASH_ITERS (an absolute count) for deeper runs.
pub fn iterations(default: u64) -> u64 {
    std::env::var("CAPOS_CRASH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A whole filesystem as data: path → None for a directory, Some(bytes) for
/// a file. The root is the empty path "".
pub type Snapshot = BTreeMap<String, Option<Vec<u8>>>;

pub fn snapshot<F: FileSystem>(fs: &mut F) -> Result<Snapshot, StorageError> {
    let mut out = Snapshot::new();
    out.insert(String::new(), None);
    let root = fs.root();
    walk(fs, root, "", &mut out)?;
    Ok(out)
}

fn walk<F: FileSystem>(fs: &mut F, dir: NodeHandle, prefix: &str, out: &mut Snapshot) -> Result<(), StorageError> {
    for entry in fs.list(dir)? {
        let path = format!("{prefix}/{}", entry.name);
        match entry.kind {
            NodeKind::Directory => {
                let sub = fs.sub(dir, &entry.name)?;
                out.insert(path.clone(), None);
                walk(fs, sub, &path, out)?;
            }
            NodeKind::File => {
                let file = fs.open(dir, &entry.name)?;
                let size = fs.stat(file)?.size as usize;
                assert_eq!(size as u64, entry.size, "list and stat disagree on {path}");
                let mut data = vec![0u8; size];
                let n = fs.read(file, 0, &mut data)?;
                assert_eq!(n, size, "short read of {path}");
                out.insert(path, Some(data));
            }
        }
    }
    Ok(())
}

/// Resolve "/a/b" to a handle by walking from the root.
pub fn resolve<F: FileSystem>(fs: &mut F, path: &str) -> Result<NodeHandle, StorageError> {
    let mut at = fs.root();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        at = if i + 1 == parts.len() {
            fs.sub(at, part).or_else(|_| fs.open(at, part))?
        } else {
            fs.sub(at, part)?
        };
    }
    Ok(at)
}

pub fn parent_and_name(path: &str) -> (&str, &str) {
    let cut = path.rfind('/').unwrap();
    (&path[..cut], &path[cut + 1..])
}

/// One filesystem operation, with paths.
#[derive(Clone, Debug)]
pub enum FsOp {
    Create(String),
    Mkdir(String),
    Remove(String),
    Rename(String, String),
    Write { path: String, offset: u64, data: Vec<u8> },
    Truncate { path: String, size: u64 },
    Sync,
}

impl FsOp {
    /// Whether a successful run of this op commits.
    pub fn commits(&self) -> bool {
        !matches!(self, FsOp::Write { .. } | FsOp::Truncate { .. })
    }
}

const NAMES: [&str; 6] = ["a", "b", "c", "dir", "ü-名前", "file.txt"];

/// Pick a random op that is usually valid in `model`.
pub fn random_op(rng: &mut Rng, model: &Snapshot, max_file: u64) -> FsOp {
    let dirs: Vec<&String> = model.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
    let files: Vec<&String> = model.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k).collect();
    let any: Vec<&String> = model.keys().filter(|k| !k.is_empty()).collect();
    let new_path = |rng: &mut Rng| {
        let dir = dirs[rng.below(dirs.len() as u64) as usize];
        format!("{dir}/{}", NAMES[rng.below(NAMES.len() as u64) as usize])
    };
    match rng.below(100) {
        0..=14 => FsOp::Create(new_path(rng)),
        15..=24 => FsOp::Mkdir(new_path(rng)),
        25..=34 if !any.is_empty() => FsOp::Remove(any[rng.below(any.len() as u64) as usize].clone()),
        35..=42 if !any.is_empty() => {
            FsOp::Rename(any[rng.below(any.len() as u64) as usize].clone(), new_path(rng))
        }
        43..=79 if !files.is_empty() => {
            let path = files[rng.below(files.len() as u64) as usize].clone();
            let offset = rng.below(max_file);
            let long = rng.chance(20);
            let len = 1 + rng.below(if long { 3 * 512 } else { 700 });
            FsOp::Write { path, offset, data: rng.bytes(len as usize) }
        }
        80..=87 if !files.is_empty() => FsOp::Truncate {
            path: files[rng.below(files.len() as u64) as usize].clone(),
            size: rng.below(max_file),
        },
        _ => FsOp::Sync,
    }
}

/// What the model says an op does: Ok(new model) or the error it expects.
pub fn model_apply(model: &Snapshot, op: &FsOp) -> Result<Snapshot, &'static str> {
    let mut next = model.clone();
    match op {
        FsOp::Create(path) | FsOp::Mkdir(path) => {
            let (parent, _) = parent_and_name(path);
            if next.get(parent) != Some(&None) {
                return Err("parent missing");
            }
            if next.contains_key(path) {
                return Err("exists");
            }
            next.insert(path.clone(), if matches!(op, FsOp::Create(_)) { Some(Vec::new()) } else { None });
        }
        FsOp::Remove(path) => {
            match next.get(path) {
                None => return Err("missing"),
                Some(None) => {
                    let prefix = format!("{path}/");
                    if next.keys().any(|k| k.starts_with(&prefix)) {
                        return Err("not empty");
                    }
                }
                Some(Some(_)) => {}
            }
            next.remove(path);
        }
        FsOp::Rename(from, to) => {
            if !next.contains_key(from) {
                return Err("missing");
            }
            let (to_parent, _) = parent_and_name(to);
            if next.get(to_parent) != Some(&None) {
                return Err("parent missing");
            }
            if from == to {
                return Ok(next);
            }
            if next.contains_key(to) {
                return Err("exists");
            }
            let prefix = format!("{from}/");
            if to.starts_with(&prefix) {
                return Err("cycle");
            }
            let moved: Vec<(String, Option<Vec<u8>>)> = next
                .iter()
                .filter(|(k, _)| *k == from || k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in moved {
                next.remove(&k);
                next.insert(format!("{to}{}", &k[from.len()..]), v);
            }
        }
        FsOp::Write { path, offset, data } => {
            let file = match next.get_mut(path) {
                Some(Some(f)) => f,
                _ => return Err("not a file"),
            };
            let end = *offset as usize + data.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[*offset as usize..end].copy_from_slice(data);
        }
        FsOp::Truncate { path, size } => match next.get_mut(path) {
            Some(Some(f)) => f.resize(*size as usize, 0),
            _ => return Err("not a file"),
        },
        FsOp::Sync => {}
    }
    Ok(next)
}

/// Run `op` against a real filesystem.
pub fn fs_apply<F: FileSystem>(fs: &mut F, op: &FsOp) -> Result<(), StorageError> {
    match op {
        FsOp::Create(path) | FsOp::Mkdir(path) => {
            let (parent, name) = parent_and_name(path);
            let dir = resolve(fs, parent)?;
            if matches!(op, FsOp::Create(_)) {
                fs.create(dir, name).map(|_| ())
            } else {
                fs.mkdir(dir, name).map(|_| ())
            }
        }
        FsOp::Remove(path) => {
            let (parent, name) = parent_and_name(path);
            let dir = resolve(fs, parent)?;
            fs.remove(dir, name)
        }
        FsOp::Rename(from, to) => {
            let (from_parent, from_name) = parent_and_name(from);
            let (to_parent, to_name) = parent_and_name(to);
            let from_dir = resolve(fs, from_parent)?;
            let to_dir = resolve(fs, to_parent)?;
            fs.rename(from_dir, from_name, to_dir, to_name)
        }
        FsOp::Write { path, offset, data } => {
            let file = resolve(fs, path)?;
            let n = fs.write(file, *offset, data)?;
            assert_eq!(n, data.len());
            Ok(())
        }
        FsOp::Truncate { path, size } => {
            let file = resolve(fs, path)?;
            fs.truncate(file, *size)
        }
        FsOp::Sync => fs.sync(),
    }
}

/// Print a summary line even when the test harness captures output (the
/// power-cut counts belong in every `cargo test` log, passing or not).
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// What the engine asked of its device, in order: the kernel lets
/// interrupts in at every request and pause (docs/interrupts-off.md), so
/// a long stretch of engine work with neither keeps them off throughout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Asked {
    Read,
    Write(u64),
    Flush,
    Pause,
}

pub struct Watched {
    pub inner: capos_storage::mem_device::MemBlockDevice,
    pub log: Vec<Asked>,
}

impl capos_storage::BlockDevice for Watched {
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), capos_storage::BlockError> {
        self.log.push(Asked::Read);
        self.inner.read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), capos_storage::BlockError> {
        self.log.push(Asked::Write(lba));
        self.inner.write_blocks(lba, buf)
    }
    fn flush(&mut self) -> Result<(), capos_storage::BlockError> {
        self.log.push(Asked::Flush);
        self.inner.flush()
    }
    fn pause(&mut self) {
        self.log.push(Asked::Pause);
    }
}

pub fn pauses(log: &[Asked]) -> usize {
    log.iter().filter(|a| **a == Asked::Pause).count()
}
