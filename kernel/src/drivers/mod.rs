//! Drivers bound at boot, by name, for the `devices` command. The block
//! drivers (virtio-blk, NVMe) register here when they bind.

pub mod nvme_probe;

use alloc::string::String;
use alloc::vec::Vec;
use spin::Mutex;

pub struct Bound {
    pub name: String,
    pub driver: &'static str,
    pub detail: String,
}

static BOUND: Mutex<Vec<Bound>> = Mutex::new(Vec::new());

pub fn register(name: String, driver: &'static str, detail: String) {
    log::info!("devices: {} bound to {} ({})", name, driver, detail);
    BOUND.lock().push(Bound { name, driver, detail });
}

pub fn with_bound(mut f: impl FnMut(&Bound)) {
    for b in BOUND.lock().iter() {
        f(b);
    }
}
