//! Badges: what a server learns about who calls it.
//!
//! A badge is the u64 the kernel delivers with every call made through a
//! client capability. Two parties choose badges, so the space is split:
//! - the **manifest** (the kernel, at boot): every `grant X: process:P/E`
//!   gets its own badge, with [`MANIFEST_READ_ONLY`] set when the grant
//!   says `read-only`; [`SERVER_MINTED`] is never set;
//! - the **server** (`Endpoint.mint`): a server that hands out objects as
//!   badged capabilities sets [`SERVER_MINTED`] on every badge it mints,
//!   so one can never be mistaken for a manifest grant.
//!
//! Badge 0 is neither: it is what a server should take a capability that
//! is not its own for (`Endpoint.badgeOf` refused it), so it names nothing.

/// Set by the kernel on a manifest grant marked `read-only`.
pub const MANIFEST_READ_ONLY: u64 = 1 << 63;
/// Set by a server on every badge it mints; never set by the manifest.
pub const SERVER_MINTED: u64 = 1 << 62;
