//! What the virtio drivers (virtio-blk, virtio-scsi) share: PCI
//! configuration access for `virtio-drivers` through the kernel's own PCI
//! backends, and bringing up a function's modern PCI transport.

use super::dma::KernelHal;
use crate::pci::{self, Device};
use capos_kcore::pci::ConfigSpace;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;

/// Configuration access for the crate, through the backend each device was
/// enumerated with.
pub struct KernelCam;

fn function(df: DeviceFunction) -> Option<&'static pci::config::Function> {
    pci::get()?
        .devices
        .iter()
        .find(|d| d.func.bus == df.bus && d.func.device == df.device && d.func.function == df.function)
        .map(|d| &d.func)
}

impl ConfigurationAccess for KernelCam {
    fn read_word(&self, df: DeviceFunction, off: u8) -> u32 {
        function(df).map(|f| f.read32(off as u16)).unwrap_or(0xffff_ffff)
    }

    fn write_word(&mut self, df: DeviceFunction, off: u8, data: u32) {
        if let Some(f) = function(df) {
            f.write32(off as u16, data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        KernelCam
    }
}

/// Turn on bus mastering for `dev` and bring up its modern virtio PCI
/// transport; `None` (logged under `driver`'s name) when the function has
/// no modern capabilities (a legacy-only device, which `virtio-drivers`'
/// PCI transport cannot drive).
pub fn transport_of(dev: &Device, driver: &str) -> Option<PciTransport> {
    pci::enable_bus_master(dev);
    let df = DeviceFunction { bus: dev.func.bus, device: dev.func.device, function: dev.func.function };
    let mut root = PciRoot::new(KernelCam);
    match PciTransport::new::<KernelHal, KernelCam>(&mut root, df) {
        Ok(t) => Some(t),
        Err(e) => {
            log::warn!("{} {} ({:04x}:{:04x}): no modern virtio PCI transport: {:?}", driver, dev.address(), dev.vendor, dev.device, e);
            None
        }
    }
}
