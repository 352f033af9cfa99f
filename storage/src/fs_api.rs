//! The `Directory` / `File` operations every filesystem format answers.
//!
//! Why a trait: the kernel's capability objects are thin adapters from capnp
//! calls to this interface, and the image tool's `extract` walks any format
//! through it. The mutations default to [`StorageError::ReadOnly`]: a
//! read-only format (CAPOSRO1, FAT) implements only the reads, so "fails
//! closed" is one rule in one place, and a method a writable format forgot
//! refuses instead of doing something else.
//! (`File.close` has no counterpart: it is a no-op at this layer.)

use crate::error::StorageError;
use crate::{DirEntry, Stat};
use alloc::vec::Vec;

/// Names one node of a mounted filesystem. `generation` makes a handle to
/// a removed node stale instead of letting it alias the node that reuses
/// its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeHandle {
    pub index: u32,
    pub generation: u32,
}

pub trait FileSystem {
    /// The root directory.
    fn root(&self) -> NodeHandle;
    /// `Directory.open`: the file called `name` in `dir`.
    fn open(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError>;
    /// `Directory.sub`: the directory called `name` in `dir`.
    fn sub(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError>;
    /// `Directory.list`, sorted by name bytes.
    fn list(&mut self, dir: NodeHandle) -> Result<Vec<DirEntry>, StorageError>;
    /// `Directory.mkdir`.
    fn mkdir(&mut self, _dir: NodeHandle, _name: &str) -> Result<NodeHandle, StorageError> {
        Err(StorageError::ReadOnly)
    }
    /// `Directory.create`: a new empty file; fails if `name` exists.
    fn create(&mut self, _dir: NodeHandle, _name: &str) -> Result<NodeHandle, StorageError> {
        Err(StorageError::ReadOnly)
    }
    /// `Directory.remove`: a file or an empty directory.
    fn remove(&mut self, _dir: NodeHandle, _name: &str) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly)
    }
    /// `Directory.rename`: move `from_dir/from` to `to_dir/to`; `to` must not exist.
    fn rename(
        &mut self,
        _from_dir: NodeHandle,
        _from: &str,
        _to_dir: NodeHandle,
        _to: &str,
    ) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly)
    }
    /// `File.read`: up to `buf.len()` bytes at `offset`; returns the count
    /// (0 at or past the end).
    fn read(&mut self, file: NodeHandle, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError>;
    /// `File.write`: all of `data` at `offset` (a gap is zero-filled).
    fn write(&mut self, _file: NodeHandle, _offset: u64, _data: &[u8]) -> Result<usize, StorageError> {
        Err(StorageError::ReadOnly)
    }
    /// `File.stat` (also answers for directories).
    fn stat(&mut self, node: NodeHandle) -> Result<Stat, StorageError>;
    /// `File.truncate`: set the size, zero-filling when growing.
    fn truncate(&mut self, _file: NodeHandle, _size: u64) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly)
    }
    /// `File.sync`: make everything done so far durable.
    fn sync(&mut self) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly)
    }
}
