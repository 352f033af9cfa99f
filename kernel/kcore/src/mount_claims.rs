//! Which blocks each manifest mount claims, and which mounts a claim
//! refuses.
//!
//! The kernel mounts the manifest's `mount` lines one by one at boot
//! (`kernel/src/storage`); each ends up mounted or failed with its reason,
//! and one that fails stops nothing else. This table is the one rule that
//! makes mounts depend on each other: a block range serves one mount.
//!
//! Rules:
//! - A mount whose device or partition resolved claims that block range,
//!   whether or not its format then opens. So whether a later mount of the
//!   same blocks is refused depends on the manifest and the partition
//!   tables only, never on what an image holds (a corrupted filesystem
//!   does not hand its blocks to the next mount that names them).
//! - A mount whose range overlaps a claimed one fails, naming the mount
//!   that holds the blocks, and claims nothing itself.
//! - Ranges touch without overlapping when one ends where the next
//!   starts; ranges on different devices never overlap.
//! - A mount that did not resolve (no such device, no such partition)
//!   claims nothing.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Blocks `start .. start + count` of `device`, held by `mount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub mount: String,
    pub device: String,
    pub start: u64,
    pub count: u64,
}

impl Claim {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.count)
    }

    fn overlaps(&self, device: &str, start: u64, count: u64) -> bool {
        self.device == device && self.start < start.saturating_add(count) && start < self.end()
    }
}

/// The claims made so far, in manifest order.
#[derive(Default, Debug)]
pub struct Claims {
    held: Vec<Claim>,
}

impl Claims {
    pub fn new() -> Claims {
        Claims::default()
    }

    /// Claim blocks `start .. start + count` of `device` for `mount`, or
    /// say which mount already holds some of them (and claim nothing).
    pub fn claim(&mut self, mount: &str, device: &str, start: u64, count: u64) -> Result<(), String> {
        if let Some(other) = self.held.iter().find(|c| c.overlaps(device, start, count)) {
            return Err(format!(
                "blocks {}..{} of {} are already claimed by mount {} (blocks {}..{}): a device serves one mount",
                start,
                start.saturating_add(count),
                device,
                other.mount,
                other.start,
                other.end()
            ));
        }
        self.held.push(Claim { mount: mount.into(), device: device.into(), start, count });
        Ok(())
    }

    pub fn held(&self) -> &[Claim] {
        &self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlap_fails_the_later_mount_only_and_names_the_holder() {
        let mut c = Claims::new();
        c.claim("data", "nvme0n1", 264192, 131072).unwrap();
        let e = c.claim("again", "nvme0n1", 300000, 10).unwrap_err();
        assert!(e.contains("already claimed by mount data"), "{e}");
        assert!(e.contains("nvme0n1"), "{e}");
        // The refused mount claimed nothing: its blocks stay free for a
        // third mount that does not overlap the first.
        assert_eq!(c.held().len(), 1);
        c.claim("after", "nvme0n1", 264192 + 131072, 8).unwrap();
        assert_eq!(c.held().len(), 2);
    }

    #[test]
    fn containment_and_partial_overlap_both_count() {
        let mut c = Claims::new();
        c.claim("whole", "vblk0", 0, 1000).unwrap();
        assert!(c.claim("inside", "vblk0", 10, 5).is_err());
        assert!(c.claim("tail", "vblk0", 999, 100).is_err());
        let mut c = Claims::new();
        c.claim("part", "vblk0", 100, 50).unwrap();
        assert!(c.claim("whole", "vblk0", 0, 1000).is_err(), "a whole disk covers its partitions");
        assert!(c.claim("head", "vblk0", 50, 51).is_err());
    }

    #[test]
    fn touching_ranges_and_other_devices_are_free() {
        let mut c = Claims::new();
        c.claim("a", "vblk0", 0, 100).unwrap();
        c.claim("b", "vblk0", 100, 100).unwrap();
        c.claim("c", "vblk1", 0, 100).unwrap();
        c.claim("d", "nvme0n1", 50, 10).unwrap();
        assert_eq!(c.held().iter().map(|h| h.mount.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    }

    #[test]
    fn huge_ranges_do_not_wrap() {
        let mut c = Claims::new();
        c.claim("big", "vblk0", u64::MAX - 10, u64::MAX).unwrap();
        assert!(c.claim("low", "vblk0", 0, 5).is_ok());
        assert!(c.claim("top", "vblk0", u64::MAX - 1, 1).is_err());
    }
}
