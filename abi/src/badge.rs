//! Badges: the word a server receives with every call (`Received.badge`)
//! to tell its clients apart. One layout, shared by the kernel (which
//! badges manifest grants), servers (which mint their own) and tools.
//!
//! ```text
//!  63            62                61..32      31..16           15..0
//! [SERVER_MINTED][MANIFEST_READ_ONLY][reserved][process index+1][grant index+1]
//! ```
//!
//! - A manifest grant `grant X: process:P/E` is badged by the kernel with
//!   [`manifest_grant`]: the granted process's position in the manifest and
//!   the grant's position in that process, both plus one, so the badge is
//!   never 0, two grants never share one, and the same manifest gives the
//!   same badges on every boot. `read-only` after the source adds
//!   [`MANIFEST_READ_ONLY`]; a server decides what it means (the storage
//!   services refuse mutations).
//! - A server minting its own badges (`Endpoint.mint`) should set
//!   [`SERVER_MINTED`], so its badges never collide with a manifest one.
//!   The kernel does not enforce it: badges are the server's namespace.
//! - Badge 0 is an unbadged client (`endpoint_create` + mint 0).

/// Set on badges a server mints itself ([`server_minted`]).
pub const SERVER_MINTED: u64 = 1 << 63;
/// Set on a manifest grant written `read-only`.
pub const MANIFEST_READ_ONLY: u64 = 1 << 62;
/// The bits that identify a manifest grant.
pub const MANIFEST_GRANT_MASK: u64 = 0xffff_ffff;
/// Most processes / grants per process a badge can tell apart (both
/// indexes are stored plus one in 16 bits).
pub const MAX_INDEX: usize = 0xfffe;

/// The badge of the `grant`-th grant (0-based) of the `process`-th
/// manifest process; `None` when an index does not fit (the manifest's own
/// bounds are far lower).
pub fn manifest_grant(process: usize, grant: usize, read_only: bool) -> Option<u64> {
    if process > MAX_INDEX || grant > MAX_INDEX {
        return None;
    }
    let id = ((process as u64 + 1) << 16) | (grant as u64 + 1);
    Some(if read_only { id | MANIFEST_READ_ONLY } else { id })
}

/// A server's own badge `id` (low 62 bits kept), marked [`SERVER_MINTED`].
pub fn server_minted(id: u64) -> u64 {
    SERVER_MINTED | (id & !(SERVER_MINTED | MANIFEST_READ_ONLY))
}

/// Whether `badge` came from a manifest grant.
pub fn is_manifest(badge: u64) -> bool {
    badge & SERVER_MINTED == 0 && badge & MANIFEST_GRANT_MASK != 0
}

/// Whether `badge` is a manifest grant marked `read-only`.
pub fn is_read_only(badge: u64) -> bool {
    is_manifest(badge) && badge & MANIFEST_READ_ONLY != 0
}

/// (process index, grant index) of a manifest badge.
pub fn manifest_position(badge: u64) -> Option<(usize, usize)> {
    if !is_manifest(badge) {
        return None;
    }
    let (p, g) = ((badge >> 16) & 0xffff, badge & 0xffff);
    (p != 0 && g != 0).then(|| (p as usize - 1, g as usize - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn manifest_badges_are_distinct_non_zero_and_positional() {
        let mut seen = HashSet::new();
        for p in 0..64 {
            for g in 0..64 {
                let b = manifest_grant(p, g, false).unwrap();
                assert_ne!(b, 0);
                assert!(seen.insert(b), "badge {b:#x} issued twice");
                assert!(is_manifest(b) && !is_read_only(b));
                assert_eq!(manifest_position(b), Some((p, g)));
                let ro = manifest_grant(p, g, true).unwrap();
                assert!(is_read_only(ro));
                assert_eq!(manifest_position(ro), Some((p, g)));
                assert_eq!(ro & !MANIFEST_READ_ONLY, b, "read-only is one bit on the same identity");
            }
        }
        assert_eq!(manifest_grant(MAX_INDEX + 1, 0, false), None);
        assert_eq!(manifest_grant(0, MAX_INDEX + 1, false), None);
        assert_eq!(manifest_grant(MAX_INDEX, MAX_INDEX, false).map(|b| b & !MANIFEST_GRANT_MASK), Some(0));
    }

    #[test]
    fn server_minted_badges_never_look_like_manifest_ones() {
        for id in [0u64, 1, 0x1_0001, MANIFEST_READ_ONLY | 0x1_0001, u64::MAX] {
            let b = server_minted(id);
            assert!(b & SERVER_MINTED != 0);
            assert!(!is_manifest(b), "{id:#x}");
            assert!(!is_read_only(b), "a server's badge never claims the manifest's read-only bit");
            assert_eq!(manifest_position(b), None);
        }
        assert!(!is_manifest(0), "badge 0 is unbadged");
    }
}
