//! Drivers bound at boot, by name, for the `devices` command. The block
//! drivers (virtio-blk, NVMe) register here when they bind.

pub mod block;
pub mod dma;
pub mod nvme;
pub mod virtio;
pub mod virtio_blk;
pub mod virtio_scsi;

use alloc::string::String;
use alloc::vec::Vec;
use crate::sync::{classes, Lock};

pub struct Bound {
    pub name: String,
    pub driver: &'static str,
    pub detail: String,
}

static BOUND: Lock<Vec<Bound>> = Lock::new(&classes::DRIVERS_BOUND, Vec::new());

pub fn register(name: String, driver: &'static str, detail: String) {
    log::info!("devices: {} bound to {} ({})", name, driver, detail);
    BOUND.lock().push(Bound { name, driver, detail });
}

/// Bind the block drivers to what PCI enumeration found.
pub fn init(cmdline: &capos_kcore::cmdline::Cmdline) {
    let depth = cmdline.get("nvme.depth").and_then(|d| d.parse().ok()).unwrap_or(nvme::DEFAULT_DEPTH).clamp(2, 1024);
    let msix = cmdline.get("nvme.msix") != Some("off");
    nvme::probe(depth, msix);
    virtio_blk::probe();
    virtio_scsi::probe();
}

pub fn with_bound(mut f: impl FnMut(&Bound)) {
    for b in BOUND.lock().iter() {
        f(b);
    }
}
