//! capOS storage: the on-disk formats and engines behind the `Directory`,
//! `File` and `Store` capabilities.
//!
//! Why one crate: the kernel's capability backers and the host image tool
//! (`mkstore-image`) must agree byte for byte on every layout. Keeping the
//! formats here, `no_std` and free of `unsafe`, lets the same code run in the
//! kernel and be tested exhaustively on the host (crash simulation, hostile
//! images, differential tests) without booting a VM.
//!
//! Layout of the crate:
//! - [`block`]: the [`BlockDevice`] trait every driver implements.
//! - [`mem_device`], [`partition`], [`crash_sim`]: devices for tests, tools
//!   and sub-ranges of a disk.
//! - [`checksum`], [`codec`], [`features`], [`superblock`], [`time`],
//!   [`name`], [`error`]: the shared building blocks of every format;
//!   [`commit`]: the two commit slots, mount's choice between them and
//!   poisoning, shared by CAPOSWF1 and CAPOSST1.
//! - [`fs_api`]: the `Directory`/`File` operations as a trait
//!   ([`FileSystem`]) that both filesystem formats implement.
//! - [`readonly_fs`] (CAPOSRO1), [`writable_fs`] (CAPOSWF1), [`store`]
//!   (CAPOSST1), [`colocated`] (store + filesystem on one disk).
//! - [`fat`]: read-only FAT12/16/32 volumes written by other systems, on
//!   the `lamfat` engine.
//!
//! The formats are described in `docs/storage-formats.md`, FAT in
//! `docs/storage-fat.md`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod checksum;
pub mod codec;
pub mod colocated;
pub mod commit;
pub mod crash_sim;
pub mod error;
pub mod fat;
pub mod features;
pub mod fs_api;
pub mod mem_device;
pub mod name;
pub mod partition;
pub mod readonly_fs;
pub mod store;
pub mod superblock;
pub mod time;
pub mod writable_fs;

pub use block::{BlockDevice, BlockError, SECTOR_SIZE};
pub use error::StorageError;
pub use fs_api::{FileSystem, NodeHandle};
pub use time::{Clock, FixedClock, Provenance, Timestamp};

/// What kind of object a filesystem node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    Directory,
    File,
}

/// The answer of `File.stat` (and of a directory's stat): size, kind and the
/// two timestamps with the clock they came from. A format that stores no
/// time reports [`Timestamp::UNKNOWN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: NodeKind,
    pub size: u64,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// One line of `Directory.list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: alloc::string::String,
    pub kind: NodeKind,
    pub size: u64,
}
