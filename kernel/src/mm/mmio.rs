//! Device registers reached through one checked window.
//!
//! An [`MmioRegion`] is a range of device memory that [`super::paging::map_physical`]
//! mapped uncached; it knows its length. Registers are taken from it with
//! [`MmioRegion::reg32`], which refuses offsets past the end or not dword
//! aligned, so a driver checks every offset once (at bring-up, where a
//! refusal is an error for the device) and its data path then touches only
//! registers that are known to be inside the mapping, without a check per
//! access.

use super::paging::{map_physical, MapError, PhysKind};
use core::fmt;

/// A mapped window of device registers `len` bytes long.
pub struct MmioRegion {
    base: u64,
    len: u64,
}

/// A register offset the window does not contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfWindow {
    pub offset: u64,
    pub len: u64,
}

impl fmt::Display for OutOfWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.offset % 4 != 0 {
            write!(f, "register offset {:#x} is not dword aligned", self.offset)
        } else {
            write!(f, "register offset {:#x} is past the {:#x}-byte register window", self.offset, self.len)
        }
    }
}

impl MmioRegion {
    /// Map `[pa, pa + len)` uncached. Mappings of device memory are never
    /// taken down, which is what makes the registers below safe to hand out.
    pub fn map(pa: u64, len: u64) -> Result<MmioRegion, MapError> {
        let base = map_physical(pa, len, PhysKind::Mmio)?;
        Ok(MmioRegion { base, len })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// The 32-bit register at `offset`, if the window holds all of it.
    pub fn reg32(&self, offset: u64) -> Result<Reg32, OutOfWindow> {
        match offset.checked_add(4) {
            Some(end) if end <= self.len && offset % 4 == 0 => Ok(Reg32 { va: self.base + offset }),
            _ => Err(OutOfWindow { offset, len: self.len }),
        }
    }

    /// A 64-bit register as two dwords (low first), if the window holds it.
    pub fn reg64(&self, offset: u64) -> Result<Reg64, OutOfWindow> {
        Ok(Reg64 { lo: self.reg32(offset)?, hi: self.reg32(offset.wrapping_add(4))? })
    }
}

/// One 32-bit device register, inside a mapped [`MmioRegion`] (the only
/// way to make one).
#[derive(Clone, Copy)]
pub struct Reg32 {
    va: u64,
}

impl Reg32 {
    #[inline(always)]
    pub fn read(self) -> u32 {
        // SAFETY: `va` lies inside an MmioRegion (checked by reg32: aligned,
        // all four bytes inside), which map_physical mapped uncached and
        // which is never unmapped.
        unsafe { core::ptr::read_volatile(self.va as *const u32) }
    }

    #[inline(always)]
    pub fn write(self, v: u32) {
        // SAFETY: as `read`.
        unsafe { core::ptr::write_volatile(self.va as *mut u32, v) }
    }
}

/// A 64-bit register reached as two dword accesses, low half first (what
/// NVMe allows for CAP, ASQ and ACQ).
#[derive(Clone, Copy)]
pub struct Reg64 {
    lo: Reg32,
    hi: Reg32,
}

impl Reg64 {
    pub fn read(self) -> u64 {
        self.lo.read() as u64 | (self.hi.read() as u64) << 32
    }

    pub fn write(self, v: u64) {
        self.lo.write(v as u32);
        self.hi.write((v >> 32) as u32);
    }
}
