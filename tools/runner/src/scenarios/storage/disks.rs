//! The disks a storage boot attaches.

use super::*;

pub use crate::machine::bus::Bus;

pub(super) struct Disk {
    pub(super) path: PathBuf,
    pub(super) bus: Bus,
}

/// QEMU arguments for `disks` (at most one per bus, so the names are
/// nvme0n1 and vblk0).
pub(super) fn disk_args(disks: &[Disk]) -> Vec<String> {
    let mut a = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let id = format!("storage{}", i);
        a.push("-drive".into());
        a.push(format!("if=none,id={},format=raw,file={}", id, d.path.display()));
        a.extend(d.bus.device_args(&id, &id, false));
    }
    a
}
