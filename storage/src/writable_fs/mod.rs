//! CAPOSWF1: the crash-consistent writable filesystem.
//!
//! Why this design (details and the correctness argument are in
//! `docs/storage-formats.md`): all metadata — fixed 128-byte node records
//! and a block-chain table — lives in one of two *regions*; the volume's
//! state is whichever region the newest valid *commit record* names.
//! A sync writes the changed metadata blocks into the region the current
//! commit does *not* name, flushes (data written earlier goes with it), then
//! writes the commit record for the next generation and flushes again.
//! File data is copy-on-write against the last commit: a block the durable
//! state references is never overwritten. So at every instant the newest
//! valid commit describes a complete, consistent state whose blocks are all
//! intact, and a power cut yields the state of the last completed commit.
//!
//! - [`layout`]: geometry, superblock fields, commit record, node record,
//!   chain-table blocks.
//! - [`metadata`]: the in-memory metadata, its validation at mount, and
//!   dirty-block tracking per region.
//! - [`engine`]: [`WritableFs`], the Directory/File operations and commit.

pub mod engine;
pub mod layout;
pub mod metadata;

pub use engine::{format, MountOptions, WritableFs};
pub use layout::{WfGeometry, NVME_NAMESPACE_BLOCKS};
