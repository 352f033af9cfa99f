//! CAPOSST1: the persistent key/value store behind the `Store` capability.
//!
//! Why this design (the full argument is in `docs/storage-formats.md`): the
//! store is an append-only entry table plus a heap in a *front* area, and a
//! commit record names how much of it is valid. A `put`, `delete` or batch
//! appends (heap bytes, then the entries) and writes the next commit record
//! — the only write that makes it visible — then flushes once; mount takes
//! the newest commit whose entries verify, so a commit cut short is rolled
//! back (stores formatted before `FEATURE_SINGLE_FLUSH` flush the entries
//! before writing the record, and flush again after). When the
//! table or heap is exhausted, the live entries are rewritten into the
//! *shadow* area and committed, then rewritten into the front area and
//! committed again, so the front is canonical and a power cut at any step
//! leaves a complete, committed area behind.
//!
//! - [`layout`]: geometry, superblock fields, commit record, entry slots.
//! - [`engine`]: [`Store`] — mount, put/get/has/delete, batches, compaction.
//! - [`cache`]: [`ValueCache`], the verified values kept in memory.

pub mod cache;
pub mod engine;
pub mod layout;

pub use cache::ValueCache;
pub use engine::{format, format_with_features, Store, StoreOp, StoreOptions, UnfinishedCommit};
pub use layout::{StoreGeometry, FEATURE_SINGLE_FLUSH, MAX_KEY_LEN, MAX_VALUE_LEN, NEW_STORE_FEATURES};
