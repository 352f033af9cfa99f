//! The registry of block devices found at boot, by name (`nvme0n1`,
//! `vblk0`). Every storage backer reaches a disk through the one
//! `capos_storage::BlockDevice` trait and does not care which driver is
//! under it.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_storage::BlockDevice;
use crate::sync::{classes, Lock};

pub type SharedDevice = Arc<Lock<Box<dyn BlockDevice + Send>>>;

pub struct Named {
    pub name: String,
    pub driver: &'static str,
    pub device: SharedDevice,
}

static DEVICES: Lock<Vec<Named>> = Lock::new(&classes::BLOCK_DEVICES, Vec::new());

pub fn register(name: String, driver: &'static str, detail: String, device: Box<dyn BlockDevice + Send>) {
    crate::drivers::register(name.clone(), driver, detail);
    DEVICES.lock().push(Named { name, driver, device: Arc::new(Lock::new(&classes::BLOCK_DEVICE, device)) });
}

/// (name, driver, device) of every registered device, in discovery order.
pub fn all() -> Vec<(String, &'static str, SharedDevice)> {
    DEVICES.lock().iter().map(|n| (n.name.clone(), n.driver, n.device.clone())).collect()
}

pub fn find(name: &str) -> Option<SharedDevice> {
    DEVICES.lock().iter().find(|n| n.name == name).map(|n| n.device.clone())
}
