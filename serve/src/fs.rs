//! The one adapter from the storage crate's [`FileSystem`] to the
//! `Directory` and `File` server traits, used by the kernel's filesystem
//! objects and by storage-fs-service alike.
//!
//! Why one: the two servers differ only in how a capability is made and
//! found again (the kernel hands out an object in the caller's capability
//! table; a service mints a badge on its endpoint and keeps a table of
//! what each badge stands for) and in how the filesystem is locked. What a
//! call *means* (which node it reaches, what a read-only capability may
//! do, what a rename may target, what a closed file answers) is the same
//! on both sides and is written here once, over any [`FileSystem`]: so any
//! format the storage crate opens (CAPOSWF1, CAPOSRO1, FAT) is served the
//! same way by the kernel and by a process.
//!
//! How: a capability to a filesystem stands for an [`FsObject`] (a node,
//! served as a Directory or a File, read-only or not). A server resolves
//! the capability a call came on to its `FsObject` (or answers with a
//! [`Refusal`](crate::refuse::Refusal) saying why there is none: stale,
//! closed, mount failed) and calls [`answer`]. The side-specific part is
//! the small [`FsHost`] trait: run an operation on the filesystem, hand
//! out a capability for an object, find the object behind a capability
//! the caller passed in, forget an object on `File.close`.
//!
//! Rules:
//! - **Interface.** A Directory object answers only `Directory`, a File
//!   object only `File` (`UnknownInterface` otherwise).
//! - **Read-only.** A read-only object is served through
//!   [`ReadOnly`], the one typed read-only
//!   wrapper: mutations are refused with `readOnly` before they reach the
//!   filesystem, and every object opened from it is read-only too (the
//!   flag is inherited by [`FsHost::hand_out`]'s argument). A format that
//!   is read-only itself (CAPOSRO1, FAT, a read-only mount) refuses
//!   mutations in its engine with `readOnly` as well.
//! - **Confinement.** An object reaches its node and what lies below it:
//!   every name is a single component (the engines refuse `/`, `.`, `..`
//!   and the empty name), and a rename's target must be a writable
//!   Directory object of the same filesystem that the caller passed in
//!   ([`FsHost::object_of`]): a capability it could only have been given.
//! - **Bounded.** `create` asks [`FsHost::room`] before the file exists,
//!   so a refused create leaves nothing behind.
//! - **Errors.** A [`StorageError`] becomes a
//!   `CapError` through [`storage_error`], the single table.

use crate::directory::{self, DirectoryServer};
use crate::file::{self, stat_of, FileServer};
use crate::read_only::ReadOnly;
use crate::{storage_error, Responder};
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::{CapError, Stat};
use capos_abi::interfaces;
use capos_abi::message::CallMessage;
use capos_abi::SysError;
use capos_storage::{DirEntry, FileSystem, NodeHandle, StorageError};

/// How a node is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Directory,
    File,
}

impl Kind {
    /// The interface an object of this kind answers.
    pub fn interface(self) -> u64 {
        match self {
            Kind::Directory => interfaces::DIRECTORY,
            Kind::File => interfaces::FILE,
        }
    }

    /// A word for logs (`directory`, `file`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::File => "file",
        }
    }
}

/// What one capability to a filesystem stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FsObject {
    pub node: NodeHandle,
    pub kind: Kind,
    pub read_only: bool,
}

impl FsObject {
    /// The root directory `root` (of [`FileSystem::root`]).
    pub fn root(root: NodeHandle, read_only: bool) -> FsObject {
        FsObject { node: root, kind: Kind::Directory, read_only }
    }

    /// An object reached from this one: same read-only-ness.
    pub fn child(&self, node: NodeHandle, kind: Kind) -> FsObject {
        FsObject { node, kind, read_only: self.read_only }
    }
}

/// How one server holds its filesystem and its capabilities.
pub trait FsHost {
    /// A capability as this server hands one out and receives one back
    /// (the kernel's `Cap`, a badge in a service).
    type Cap;
    /// The filesystem (a concrete engine, or `dyn FileSystem`).
    type Fs: FileSystem + ?Sized;
    /// Run `op` on the filesystem, under whatever lock the server uses.
    fn with_fs<T>(&self, op: impl FnOnce(&mut Self::Fs) -> T) -> T;
    /// A capability for `obj`, reached from the object being called (the
    /// same object for the same node may be handed out again).
    fn hand_out(&self, obj: FsObject) -> Result<Self::Cap, CapError>;
    /// Whether one more object may be handed out; asked before `create`
    /// makes its file. The default has no bound.
    fn room(&self) -> Result<(), CapError> {
        Ok(())
    }
    /// The object behind `cap`, a capability the caller passed in, if it
    /// is a live object of this filesystem; why not otherwise.
    fn object_of(&self, cap: &Self::Cap) -> Result<FsObject, CapError>;
    /// `File.close` was called on `obj`: from now on its capability
    /// answers `closed` (the server resolves it to nothing).
    fn close(&self, obj: &FsObject);
}

/// Answer one call on `obj`, served by `host`.
pub fn answer<H: FsHost, R: Responder<Cap = H::Cap>>(host: &H, obj: FsObject, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
    if call.interface_id() != obj.kind.interface() {
        return Err(SysError::UnknownInterface);
    }
    let node = FsNode { host, obj };
    match (obj.kind, obj.read_only) {
        (Kind::Directory, false) => directory::dispatch(&node, call, r),
        (Kind::Directory, true) => directory::dispatch(&ReadOnly(node), call, r),
        (Kind::File, false) => file::dispatch(&node, call, r),
        (Kind::File, true) => file::dispatch(&ReadOnly(node), call, r),
    }
}

/// One object of one filesystem, answering one call: the Directory and
/// File server traits over [`FileSystem`].
pub struct FsNode<'a, H: FsHost> {
    pub host: &'a H,
    pub obj: FsObject,
}

impl<H: FsHost> FsNode<'_, H> {
    fn fs<T>(&self, op: impl FnOnce(&mut H::Fs) -> Result<T, StorageError>) -> Result<T, CapError> {
        self.host.with_fs(op).map_err(|e| storage_error(&e))
    }

    fn child(&self, node: NodeHandle, kind: Kind) -> Result<H::Cap, CapError> {
        self.host.hand_out(self.obj.child(node, kind))
    }
}

impl<H: FsHost> DirectoryServer for FsNode<'_, H> {
    type Cap = H::Cap;

    fn open(&self, name: &str) -> Result<H::Cap, CapError> {
        let node = self.fs(|fs| fs.open(self.obj.node, name))?;
        self.child(node, Kind::File)
    }

    fn list(&self) -> Result<Vec<DirEntry>, CapError> {
        self.fs(|fs| fs.list(self.obj.node))
    }

    fn mkdir(&self, name: &str) -> Result<(), CapError> {
        self.fs(|fs| fs.mkdir(self.obj.node, name).map(|_| ()))
    }

    fn remove(&self, name: &str) -> Result<(), CapError> {
        self.fs(|fs| fs.remove(self.obj.node, name))
    }

    fn sub(&self, name: &str) -> Result<H::Cap, CapError> {
        let node = self.fs(|fs| fs.sub(self.obj.node, name))?;
        self.child(node, Kind::Directory)
    }

    fn create(&self, name: &str) -> Result<H::Cap, CapError> {
        // Refuse before the file exists, not after.
        self.host.room()?;
        let node = self.fs(|fs| fs.create(self.obj.node, name))?;
        self.child(node, Kind::File)
    }

    fn rename(&self, from: &str, to: &str, target: Option<&H::Cap>) -> Result<(), CapError> {
        let to_dir = match target {
            None => self.obj.node,
            // Fail closed: a writable Directory object of this filesystem.
            Some(cap) => match self.host.object_of(cap)? {
                FsObject { kind: Kind::Directory, read_only: false, node } => node,
                _ => {
                    return Err(CapError::new(
                        ErrorCode::PermissionDenied,
                        "rename target is not a writable Directory of this filesystem (a read-only one, or a File)",
                    ))
                }
            },
        };
        self.fs(|fs| fs.rename(self.obj.node, from, to_dir, to))
    }
}

impl<H: FsHost> FileServer for FsNode<'_, H> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, CapError> {
        self.fs(|fs| fs.read(self.obj.node, offset, buf))
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<u64, CapError> {
        self.fs(|fs| fs.write(self.obj.node, offset, data).map(|n| n as u64))
    }

    fn stat(&self) -> Result<Stat, CapError> {
        self.fs(|fs| fs.stat(self.obj.node)).map(|s| stat_of(&s))
    }

    fn truncate(&self, size: u64) -> Result<(), CapError> {
        self.fs(|fs| fs.truncate(self.obj.node, size))
    }

    fn sync(&self) -> Result<(), CapError> {
        self.fs(|fs| fs.sync())
    }

    fn close(&self) -> Result<(), CapError> {
        self.host.close(&self.obj);
        Ok(())
    }
}

/// The `closed` error a closed object answers with.
pub fn closed() -> CapError {
    CapError::new(ErrorCode::Closed, "File.close was called on this capability")
}

#[cfg(test)]
mod tests;
