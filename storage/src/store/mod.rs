//! CAPOSST1: the persistent key/value store behind the `Store` capability.
//!
//! Why this design (the full argument is in `docs/storage-formats.md`): the
//! store is an append-only entry table plus a heap in a *front* area, and a
//! commit record names how much of it is valid. A `put` or `delete` appends
//! (heap bytes, then the entry), flushes, and writes the next commit record
//! — the only write that makes it visible — then flushes again. When the
//! table or heap is exhausted, the live entries are rewritten into the
//! *shadow* area and committed, then rewritten into the front area and
//! committed again, so the front is canonical and a power cut at any step
//! leaves a complete, committed area behind.
//!
//! - [`layout`]: geometry, superblock fields, commit record, entry slots.
//! - [`engine`]: [`Store`] — mount, put/get/has/delete, compaction.

pub mod engine;
pub mod layout;

pub use engine::{format, Store};
pub use layout::{StoreGeometry, MAX_KEY_LEN, MAX_VALUE_LEN};
