//! Configuration-space access backends.

use crate::arch::x86_64::port::{inl, outl};
use crate::mm::mmio::{MmioRegion, Rw32};
use capos_kcore::acpi::EcamRegion;
use capos_kcore::pci::ConfigSpace;
use crate::sync::{classes, Lock};

/// The 0xCF8/0xCFC pair is one shared resource.
static LEGACY_LOCK: Lock<()> = Lock::new(&classes::PCI_LEGACY, ());

#[derive(Clone, Debug)]
pub enum Backend {
    /// Ports 0xCF8/0xCFC: 256 bytes per function.
    Legacy,
    /// Memory-mapped: `bus` is the 1 MiB window of the bus being scanned
    /// (`None` only in what [`Backend::choose`] returns, before
    /// [`Backend::for_bus`] maps a bus).
    Ecam { region: EcamRegion, bus: Option<MmioRegion> },
}

impl Backend {
    pub fn choose(ecam: &[EcamRegion]) -> Backend {
        match ecam.iter().find(|r| r.segment == 0 && r.bus_start == 0) {
            Some(r) => Backend::Ecam { region: *r, bus: None },
            None => Backend::Legacy,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Legacy => "legacy ports 0xCF8/0xCFC",
            Backend::Ecam { .. } => "ECAM (MCFG)",
        }
    }

    /// The backend for `bus`: ECAM if the region covers it (mapping that
    /// bus's 1 MiB), else legacy.
    pub fn for_bus(&self, bus: u8) -> Backend {
        match self {
            Backend::Ecam { region, .. } if bus >= region.bus_start && bus <= region.bus_end => {
                let pa = region.base + ((bus - region.bus_start) as u64) * (1 << 20);
                match MmioRegion::map(pa, 1 << 20) {
                    Ok(window) => Backend::Ecam { region: *region, bus: Some(window) },
                    Err(_) => Backend::Legacy,
                }
            }
            _ => Backend::Legacy,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Function {
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub backend: Backend,
}

impl Function {
    fn legacy_address(&self, offset: u16) -> u32 {
        0x8000_0000 | (self.bus as u32) << 16 | (self.device as u32) << 11 | (self.function as u32) << 8 | (offset as u32 & 0xfc)
    }

    /// The dword holding `offset` of this function's 4 KiB, in the bus's
    /// ECAM window, if the window has been mapped and holds it.
    fn ecam_reg(&self, offset: u16) -> Option<Rw32> {
        let Backend::Ecam { bus: Some(bus), .. } = &self.backend else { return None };
        bus.reg((self.device as u64) << 15 | (self.function as u64) << 12 | (offset as u64 & 0xffc)).ok()
    }

    pub fn is_ecam(&self) -> bool {
        matches!(self.backend, Backend::Ecam { .. })
    }

    pub fn write32(&self, offset: u16, value: u32) {
        match &self.backend {
            Backend::Legacy => {
                if offset >= 256 {
                    return;
                }
                let _g = LEGACY_LOCK.lock();
                // SAFETY: the PCI configuration ports, under their lock.
                unsafe {
                    outl(0xcf8, self.legacy_address(offset));
                    outl(0xcfc, value);
                }
            }
            Backend::Ecam { .. } => {
                if let Some(r) = self.ecam_reg(offset) {
                    r.write(value);
                }
            }
        }
    }

    pub fn write16(&self, offset: u16, value: u16) {
        let aligned = offset & !3;
        let shift = (offset & 2) * 8;
        let old = self.read32(aligned);
        let new = (old & !(0xffff << shift)) | (value as u32) << shift;
        self.write32(aligned, new);
    }
}

impl ConfigSpace for Function {
    fn read32(&self, offset: u16) -> u32 {
        match &self.backend {
            Backend::Legacy => {
                if offset >= 256 {
                    return 0xffff_ffff;
                }
                let _g = LEGACY_LOCK.lock();
                // SAFETY: the PCI configuration ports, under their lock.
                unsafe {
                    outl(0xcf8, self.legacy_address(offset));
                    inl(0xcfc)
                }
            }
            Backend::Ecam { .. } => self.ecam_reg(offset).map_or(0xffff_ffff, |r| r.read()),
        }
    }
}
