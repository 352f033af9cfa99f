//! The registry of block devices found at boot, by name (`nvme0n1`,
//! `vblk0`), and the one interface the kernel reaches them by. Every
//! storage backer reaches a disk through `capos_storage::BlockDevice`
//! (`storage::device::DevHandle`) and does not care which driver is
//! under it.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_storage::BlockError;
use crate::sync::{classes, Lock};

/// A block device as the kernel shares it between mounts: every method
/// takes `&self`, so two requests (mounts on two partitions of one disk,
/// or on two namespaces of one NVMe controller) may be in the driver at
/// once, and each driver decides what it serialises and for how long:
/// NVMe, virtio-scsi and virtio-blk each keep several requests in the
/// device and wait for their own without a lock held. Why not
/// `BlockDevice` itself: that is the storage
/// engines' contract, `&mut self`, one engine owning its view of a
/// device; the host tools and the crash simulator implement it too and
/// need none of this.
pub trait SharedBlock: Send + Sync {
    fn block_size(&self) -> usize;
    fn block_count(&self) -> u64;
    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    fn write_blocks(&self, lba: u64, buf: &[u8]) -> Result<(), BlockError>;
    fn flush(&self) -> Result<(), BlockError>;
}

pub type SharedDevice = Arc<dyn SharedBlock>;

pub struct Named {
    pub name: String,
    pub driver: &'static str,
    pub device: SharedDevice,
}

static DEVICES: Lock<Vec<Named>> = Lock::new(&classes::BLOCK_DEVICES, Vec::new());

pub fn register(name: String, driver: &'static str, detail: String, device: SharedDevice) {
    crate::drivers::register(name.clone(), driver, detail);
    DEVICES.lock().push(Named { name, driver, device });
}

/// (name, driver, device) of every registered device, in discovery order.
pub fn all() -> Vec<(String, &'static str, SharedDevice)> {
    DEVICES.lock().iter().map(|n| (n.name.clone(), n.driver, n.device.clone())).collect()
}

pub fn find(name: &str) -> Option<SharedDevice> {
    DEVICES.lock().iter().find(|n| n.name == name).map(|n| n.device.clone())
}
