//! The network devices found at boot, by name (`net0`, `net1`, ...), for
//! the `nic:NAME` grants and the prompt's `devices`. A device is a
//! `capos_serve::nic::NicServer`: the capability (`cap::nic`) serves
//! whatever driver is under it.

use super::virtio_net::VirtioNic;
use crate::sync::{classes, Lock};
use alloc::sync::Arc;
use alloc::vec::Vec;

static NICS: Lock<Vec<Arc<VirtioNic>>> = Lock::new(&classes::NET_DEVICES, Vec::new());

pub fn register(nic: Arc<VirtioNic>) {
    NICS.lock().push(nic);
}

/// How many are registered (the next one's index).
pub fn count() -> usize {
    NICS.lock().len()
}

pub fn find(name: &str) -> Option<Arc<VirtioNic>> {
    NICS.lock().iter().find(|n| n.name == name).cloned()
}

/// Every registered device, in discovery order.
pub fn all() -> Vec<Arc<VirtioNic>> {
    NICS.lock().clone()
}
