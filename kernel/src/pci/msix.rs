//! MSI-X: locate the table through its BAR, program an entry with a vector
//! from the pool, mask/unmask entries and the whole function.

use super::{map_bar_region, BarMapError, Device};
use capos_kcore::pci::{msi_message, msix_info, ConfigSpace, MsixInfo, CAP_MSIX};

pub struct Msix {
    pub info: MsixInfo,
    table_va: u64,
}

#[derive(Debug)]
pub enum MsixError {
    NoCapability,
    Table(BarMapError),
    BadEntry(u16),
}

const CTRL_ENABLE: u16 = 1 << 15;
const CTRL_FUNCTION_MASK: u16 = 1 << 14;

impl Msix {
    /// Map the device's MSI-X table; every entry starts masked and MSI-X is
    /// enabled with the function mask set, so nothing fires until an entry
    /// is programmed.
    pub fn new(dev: &Device) -> Result<Msix, MsixError> {
        let cap = dev.find_cap(CAP_MSIX).ok_or(MsixError::NoCapability)?;
        let info = msix_info(&dev.func, cap);
        let len = info.table_size as u64 * 16;
        let table_va = map_bar_region(dev, info.table_bar, info.table_offset as u64, len).map_err(MsixError::Table)?;
        let m = Msix { info, table_va };
        for i in 0..info.table_size {
            m.write(i, 12, 1);
        }
        let ctrl_off = cap as u16 + 2;
        let ctrl = dev.func.read16(ctrl_off);
        dev.func.write16(ctrl_off, ctrl | CTRL_ENABLE | CTRL_FUNCTION_MASK);
        // MSI-X replaces INTx: disable the legacy pin.
        let cmd = dev.func.read16(0x04);
        dev.func.write16(0x04, cmd | (1 << 10));
        Ok(m)
    }

    fn write(&self, entry: u16, field: u64, v: u32) {
        // SAFETY: the table was mapped for table_size * 16 bytes; callers
        // check `entry` against table_size.
        unsafe { core::ptr::write_volatile((self.table_va + entry as u64 * 16 + field) as *mut u32, v) }
    }

    /// Point `entry` at `vector` on the local APIC `apic_id`, unmasked.
    pub fn program(&self, entry: u16, apic_id: u8, vector: u8) -> Result<(), MsixError> {
        if entry >= self.info.table_size {
            return Err(MsixError::BadEntry(entry));
        }
        let (addr, data) = msi_message(apic_id, vector);
        self.write(entry, 12, 1);
        self.write(entry, 0, addr as u32);
        self.write(entry, 4, (addr >> 32) as u32);
        self.write(entry, 8, data);
        self.write(entry, 12, 0);
        Ok(())
    }

    pub fn set_masked(&self, entry: u16, masked: bool) -> Result<(), MsixError> {
        if entry >= self.info.table_size {
            return Err(MsixError::BadEntry(entry));
        }
        self.write(entry, 12, masked as u32);
        Ok(())
    }

    /// Clear or set the function-wide mask.
    pub fn set_function_mask(&self, dev: &Device, masked: bool) {
        let off = self.info.cap_offset as u16 + 2;
        let ctrl = dev.func.read16(off);
        let ctrl = if masked { ctrl | CTRL_FUNCTION_MASK } else { ctrl & !CTRL_FUNCTION_MASK };
        dev.func.write16(off, ctrl | CTRL_ENABLE);
    }
}
