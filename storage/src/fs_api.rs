//! The `Directory` / `File` operations every filesystem format answers.
//!
//! Why a trait: the kernel's capability objects are thin adapters from capnp
//! calls to this interface, and the image tool's `extract` walks any format
//! through it. A read-only format answers the mutations with
//! [`StorageError::ReadOnly`], so "fails closed" is one rule in one place.
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
    fn mkdir(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError>;
    /// `Directory.create`: a new empty file; fails if `name` exists.
    fn create(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError>;
    /// `Directory.remove`: a file or an empty directory.
    fn remove(&mut self, dir: NodeHandle, name: &str) -> Result<(), StorageError>;
    /// `Directory.rename`: move `from_dir/from` to `to_dir/to`; `to` must not exist.
    fn rename(
        &mut self,
        from_dir: NodeHandle,
        from: &str,
        to_dir: NodeHandle,
        to: &str,
    ) -> Result<(), StorageError>;
    /// `File.read`: up to `buf.len()` bytes at `offset`; returns the count
    /// (0 at or past the end).
    fn read(&mut self, file: NodeHandle, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError>;
    /// `File.write`: all of `data` at `offset` (a gap is zero-filled).
    fn write(&mut self, file: NodeHandle, offset: u64, data: &[u8]) -> Result<usize, StorageError>;
    /// `File.stat` (also answers for directories).
    fn stat(&mut self, node: NodeHandle) -> Result<Stat, StorageError>;
    /// `File.truncate`: set the size, zero-filling when growing.
    fn truncate(&mut self, file: NodeHandle, size: u64) -> Result<(), StorageError>;
    /// `File.sync`: make everything done so far durable.
    fn sync(&mut self) -> Result<(), StorageError>;
}
