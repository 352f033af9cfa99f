//! Drivers bound at boot, by name, for the `devices` command. The block
//! drivers (virtio-blk, NVMe) register here when they bind, and each
//! probe [`claim`]s the PCI functions it took, so the prompt can name the
//! storage controllers nothing drives ([`unclaimed_storage`]).

pub mod block;
pub mod dma;
pub mod net;
pub mod nvme;
pub mod virtio;
pub mod virtio_blk;
pub mod virtio_net;
pub mod virtio_scsi;

use alloc::string::String;
use alloc::vec::Vec;
use crate::pci;
use crate::sync::{classes, Lock};

pub struct Bound {
    pub name: String,
    pub driver: &'static str,
    pub detail: String,
}

/// A PCI function's address: (segment, bus, device, function).
type PciAddress = (u16, u8, u8, u8);

fn pci_address(f: &pci::config::Function) -> PciAddress {
    (f.segment, f.bus, f.device, f.function)
}

/// What drivers bound: their devices, and the PCI functions they took.
struct Drivers {
    bound: Vec<Bound>,
    claimed: Vec<PciAddress>,
}

static BOUND: Lock<Drivers> = Lock::new(&classes::DRIVERS_BOUND, Drivers { bound: Vec::new(), claimed: Vec::new() });

pub fn register(name: String, driver: &'static str, detail: String) {
    log::info!("devices: {} bound to {} ({})", name, driver, detail);
    BOUND.lock().bound.push(Bound { name, driver, detail });
}

/// A driver's probe took the PCI function `func` (call it once per
/// function bound, whatever devices it registers): storage controllers
/// no driver claims are listed by [`unclaimed_storage`].
pub fn claim(func: &pci::config::Function) {
    let address = pci_address(func);
    let mut d = BOUND.lock();
    if !d.claimed.contains(&address) {
        d.claimed.push(address);
    }
}

/// The mass-storage controllers (PCI class 0x01) PCI enumeration found
/// and no driver claimed, in enumeration order.
pub fn unclaimed_storage() -> Vec<&'static pci::Device> {
    let Some(p) = pci::get() else { return Vec::new() };
    let d = BOUND.lock();
    p.devices.iter().filter(|dev| dev.class == 0x01 && !d.claimed.contains(&pci_address(&dev.func))).collect()
}

/// Bind the block and network drivers to what PCI enumeration found.
pub fn init(cmdline: &capos_kcore::cmdline::Cmdline) {
    let depth = cmdline.get("nvme.depth").and_then(|d| d.parse().ok()).unwrap_or(nvme::DEFAULT_DEPTH).clamp(2, 1024);
    let msix = cmdline.get("nvme.msix") != Some("off");
    // nvme.timeout_ms: how long an I/O command may take before the
    // controller is reset (default 10 s); out of range is refused, loudly.
    let timeout_ms = cmdline.get("nvme.timeout_ms").and_then(|t| match t.parse::<u64>() {
        Ok(ms) if (nvme::MIN_IO_TIMEOUT_MS..=nvme::MAX_IO_TIMEOUT_MS).contains(&ms) => Some(ms),
        _ => {
            log::warn!("nvme.timeout_ms={}: not a number of ms in {}..={}; the default {} ms holds", t, nvme::MIN_IO_TIMEOUT_MS, nvme::MAX_IO_TIMEOUT_MS, nvme::IO_TIMEOUT_MS);
            None
        }
    });
    nvme::probe(depth, msix, timeout_ms.unwrap_or(nvme::IO_TIMEOUT_MS));
    virtio_blk::probe();
    virtio_scsi::probe();
    virtio_net::probe();
}

pub fn with_bound(mut f: impl FnMut(&Bound)) {
    for b in BOUND.lock().bound.iter() {
        f(b);
    }
}
