//! The registry of block devices found at boot, by name (`nvme0n1`,
//! `vblk0`), and the one interface the kernel reaches them by. Every
//! storage backer reaches a disk through `capos_storage::BlockDevice`
//! (`storage::device::DevHandle`) and does not care which driver is
//! under it.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_storage::{BlockDevice, BlockError};
use crate::sync::{classes, Lock};

/// A block device as the kernel shares it between mounts: every method
/// takes `&self`, so two requests (mounts on two partitions of one disk,
/// or on two namespaces of one NVMe controller) may be in the driver at
/// once, and each driver decides what it serialises and for how long. A
/// driver that can keep several requests in the device waits for its own
/// without a lock held (NVMe); one that cannot says so by being
/// [`OneAtATime`]. Why not `BlockDevice` itself: that is the storage
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

/// A driver that takes one request at a time (its device type takes
/// `&mut self`): behind one `block.device` lock, held for each request,
/// its wait for the device included (docs/locks.md lists it).
pub struct OneAtATime<D> {
    block_size: usize,
    block_count: u64,
    dev: Lock<D>,
}

impl<D: BlockDevice + Send> OneAtATime<D> {
    pub fn new(dev: D) -> OneAtATime<D> {
        OneAtATime { block_size: dev.block_size(), block_count: dev.block_count(), dev: Lock::new(&classes::BLOCK_DEVICE, dev) }
    }
}

impl<D: BlockDevice + Send> SharedBlock for OneAtATime<D> {
    fn block_size(&self) -> usize {
        self.block_size
    }
    fn block_count(&self) -> u64 {
        self.block_count
    }
    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.dev.lock().read_blocks(lba, buf)
    }
    fn write_blocks(&self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.dev.lock().write_blocks(lba, buf)
    }
    fn flush(&self) -> Result<(), BlockError> {
        self.dev.lock().flush()
    }
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
