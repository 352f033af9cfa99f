//! Memory management: physical frames, the kernel's own page tables, kernel
//! stacks with guard pages, and the growable kernel heap.
//!
//! Virtual layout (4-level paging):
//!
//! | range                                   | what                          |
//! |-----------------------------------------|-------------------------------|
//! | `0x0000_0000_0000_0000 ..` lower half   | unmapped in the kernel (user) |
//! | `HHDM (0xffff_8000_0000_0000) ..`       | direct map of RAM-like memory |
//! | `0xffff_9000_0000_0000 ..` + 1 GiB      | kernel heap (grows on demand) |
//! | `0xffff_a000_0000_0000 ..`              | kernel stacks, 1 MiB slots    |
//! | `0xffff_ffff_8000_0000 ..`              | kernel image                  |

pub mod address_space;
pub mod frames;
pub mod heap;
pub mod ipc_area;
pub mod mmio;
pub mod paging;
pub mod stacks;
pub mod tlb;
pub mod usermem;

use core::sync::atomic::{AtomicU64, Ordering};

static HHDM_OFFSET: AtomicU64 = AtomicU64::new(0);

pub fn set_hhdm_offset(offset: u64) {
    HHDM_OFFSET.store(offset, Ordering::Relaxed);
}

pub fn hhdm_offset() -> u64 {
    HHDM_OFFSET.load(Ordering::Relaxed)
}

static PHYS_TOP: AtomicU64 = AtomicU64::new(0);

/// Record the end of the highest RAM-like region (HHDM addresses of RAM lie
/// below `hhdm_offset() + top`).
pub fn set_phys_top(top: u64) {
    PHYS_TOP.store(top, Ordering::Relaxed);
}

/// The physical address of `va` if it is a direct-map address of RAM.
pub fn hhdm_virt_to_phys(va: u64) -> Option<u64> {
    let base = hhdm_offset();
    let pa = va.checked_sub(base)?;
    (pa < PHYS_TOP.load(Ordering::Relaxed)).then_some(pa)
}

/// The direct-map address of physical address `pa`.
pub fn phys_to_virt(pa: u64) -> u64 {
    pa + hhdm_offset()
}

pub const PAGE_SIZE: u64 = 4096;
