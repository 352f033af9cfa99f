//! Device registers reached through one checked window: the kernel's only
//! volatile access to device memory.
//!
//! An [`MmioRegion`] is a range of device memory that
//! [`super::paging::map_physical`] mapped uncached; it knows its length.
//! Registers are taken from it with [`MmioRegion::reg`], typed by width
//! (`u32` or `u64`, one access of that width) and by direction
//! ([`ReadOnly`], [`WriteOnly`], [`ReadWrite`]: a register the hardware
//! only reads has no `read`). The offset is checked once, when the register
//! is taken (aligned, inside the mapping: `capos_kcore::mmio`'s rules), so
//! a driver checks each register at bring-up, where a refusal is an error
//! for the device, and its data path then touches only registers known to
//! be inside the mapping, without a check per access.
//!
//! Mappings of device memory are never taken down, which is what makes a
//! register (or a cloned region) safe to keep for as long as the kernel runs.

use super::paging::{map_physical, MapError, PhysKind};
use capos_kcore::mmio::check_register;
use core::marker::PhantomData;

pub use capos_kcore::mmio::OutOfWindow;

/// A mapped window of device registers `len` bytes long.
#[derive(Clone, Debug)]
pub struct MmioRegion {
    base: u64,
    len: u64,
}

impl MmioRegion {
    /// Map `[pa, pa + len)` uncached.
    pub fn map(pa: u64, len: u64) -> Result<MmioRegion, MapError> {
        let base = map_physical(pa, len, PhysKind::Mmio)?;
        Ok(MmioRegion { base, len })
    }

    /// The register of width `T` at `offset`, if the window holds all of it
    /// at its natural alignment.
    pub fn reg<T: Width, A: Access>(&self, offset: u64) -> Result<Reg<T, A>, OutOfWindow> {
        check_register(self.len, offset, core::mem::size_of::<T>() as u64)?;
        Ok(Reg { va: self.base + offset, _type: PhantomData })
    }

    /// A 64-bit register reached as two dword accesses, low half first
    /// (what NVMe allows for CAP, ASQ and ACQ), if the window holds it.
    pub fn split64<A: Access>(&self, offset: u64) -> Result<SplitReg64<A>, OutOfWindow> {
        Ok(SplitReg64 { lo: self.reg(offset)?, hi: self.reg(offset.wrapping_add(4))? })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
    impl Sealed for super::ReadOnly {}
    impl Sealed for super::WriteOnly {}
    impl Sealed for super::ReadWrite {}
}

/// A register width: `u32` or `u64`, each reached by one access of that width.
pub trait Width: sealed::Sealed + Copy {}
impl Width for u32 {}
impl Width for u64 {}

/// Which way a register may be accessed.
pub trait Access: sealed::Sealed {}
/// Accesses that may read.
pub trait Readable: Access {}
/// Accesses that may write.
pub trait Writable: Access {}

/// A register the driver only reads (an ID, a status, a counter).
pub enum ReadOnly {}
/// A register the driver only writes (a doorbell, an end-of-interrupt).
pub enum WriteOnly {}
/// A register the driver reads and writes.
pub enum ReadWrite {}
impl Access for ReadOnly {}
impl Access for WriteOnly {}
impl Access for ReadWrite {}
impl Readable for ReadOnly {}
impl Readable for ReadWrite {}
impl Writable for WriteOnly {}
impl Writable for ReadWrite {}

/// One device register inside a mapped [`MmioRegion`] (the only way to
/// make one).
pub struct Reg<T, A> {
    va: u64,
    _type: PhantomData<(T, A)>,
}

impl<T, A> Clone for Reg<T, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, A> Copy for Reg<T, A> {}

pub type Ro32 = Reg<u32, ReadOnly>;
pub type Wo32 = Reg<u32, WriteOnly>;
pub type Rw32 = Reg<u32, ReadWrite>;
pub type Ro64 = Reg<u64, ReadOnly>;
pub type Rw64 = Reg<u64, ReadWrite>;

impl<T: Width, A: Readable> Reg<T, A> {
    #[inline(always)]
    pub fn read(self) -> T {
        // SAFETY: `va` lies inside an MmioRegion, naturally aligned with all
        // of the register inside (checked by `reg`); map_physical mapped it
        // uncached and it is never unmapped. `T` is u32 or u64 (sealed).
        unsafe { core::ptr::read_volatile(self.va as *const T) }
    }
}

impl<T: Width, A: Writable> Reg<T, A> {
    #[inline(always)]
    pub fn write(self, v: T) {
        // SAFETY: as `read`.
        unsafe { core::ptr::write_volatile(self.va as *mut T, v) }
    }
}

/// A 64-bit register reached as two dword accesses, low half first.
pub struct SplitReg64<A> {
    lo: Reg<u32, A>,
    hi: Reg<u32, A>,
}

impl<A> Clone for SplitReg64<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A> Copy for SplitReg64<A> {}

impl<A: Readable> SplitReg64<A> {
    pub fn read(self) -> u64 {
        self.lo.read() as u64 | (self.hi.read() as u64) << 32
    }
}

impl<A: Writable> SplitReg64<A> {
    pub fn write(self, v: u64) {
        self.lo.write(v as u32);
        self.hi.write((v >> 32) as u32);
    }
}
