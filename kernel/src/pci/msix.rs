//! MSI-X: locate the table through its BAR, program an entry with a vector
//! from the pool, mask/unmask entries and the whole function.

use super::{map_bar_mmio, BarMapError, Device};
use crate::mm::mmio::{MmioRegion, Rw32};
use capos_kcore::pci::{msi_message, msix_info, ConfigSpace, MsixInfo, CAP_MSIX};

pub struct Msix {
    pub info: MsixInfo,
    /// Exactly `table_size` entries of 16 bytes: an entry past the end is
    /// refused by the window.
    table: MmioRegion,
}

/// One table entry's registers.
struct Entry {
    addr_lo: Rw32,
    addr_hi: Rw32,
    data: Rw32,
    /// Vector control: bit 0 masks the entry.
    control: Rw32,
}

#[derive(Debug)]
#[expect(dead_code, reason = "the payloads are read only by Debug, in the error messages that print them")]
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
        let table = map_bar_mmio(dev, info.table_bar, info.table_offset as u64, len).map_err(MsixError::Table)?;
        let m = Msix { info, table };
        for i in 0..info.table_size {
            m.entry(i)?.control.write(1);
        }
        let ctrl_off = cap as u16 + 2;
        let ctrl = dev.func.read16(ctrl_off);
        dev.func.write16(ctrl_off, ctrl | CTRL_ENABLE | CTRL_FUNCTION_MASK);
        // MSI-X replaces INTx: disable the legacy pin.
        let cmd = dev.func.read16(0x04);
        dev.func.write16(0x04, cmd | (1 << 10));
        Ok(m)
    }

    /// Entry `index`'s registers, if the table has that entry.
    fn entry(&self, index: u16) -> Result<Entry, MsixError> {
        let at = index as u64 * 16;
        let reg = |field: u64| self.table.reg(at + field).map_err(|_| MsixError::BadEntry(index));
        Ok(Entry { addr_lo: reg(0)?, addr_hi: reg(4)?, data: reg(8)?, control: reg(12)? })
    }

    /// Point `entry` at `vector` on the local APIC `apic_id`, unmasked.
    pub fn program(&self, entry: u16, apic_id: u8, vector: u8) -> Result<(), MsixError> {
        let e = self.entry(entry)?;
        let (addr, data) = msi_message(apic_id, vector);
        e.control.write(1);
        e.addr_lo.write(addr as u32);
        e.addr_hi.write((addr >> 32) as u32);
        e.data.write(data);
        e.control.write(0);
        Ok(())
    }

    pub fn set_masked(&self, entry: u16, masked: bool) -> Result<(), MsixError> {
        self.entry(entry)?.control.write(masked as u32);
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
