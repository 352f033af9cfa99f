//! DMA memory: physically contiguous, zeroed frames reached through the
//! HHDM, and the `virtio-drivers` HAL on top of them.
//!
//! Buffers handed to a device must be physically contiguous. Kernel heap
//! and stack buffers are only virtually contiguous, so `share` bounces them
//! through a contiguous DMA buffer (copying in for device reads of our data,
//! out for device writes into it); buffers already in the HHDM are used in
//! place.

use crate::arch::x86_64::trap::{copy_with_windows, zero_with_windows};
use crate::mm::{frames, phys_to_virt, PAGE_SIZE};
use alloc::collections::BTreeMap;
use core::ptr::NonNull;
use crate::sync::{classes, Lock};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// A physically contiguous, zeroed buffer of whole pages.
pub struct DmaBuffer {
    phys: u64,
    pages: u64,
}

impl DmaBuffer {
    pub fn new(pages: u64) -> Option<DmaBuffer> {
        let phys = frames::alloc_contiguous(pages.max(1), 1)?;
        let mut buffer = DmaBuffer { phys, pages: pages.max(1) };
        // Cleared in chunks: a bounce buffer of 128 KiB is made inside a
        // call that runs with interrupts off (docs/interrupts-off.md).
        zero_with_windows(buffer.as_mut_slice());
        Some(buffer)
    }

    /// The physical address a device is given.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    pub fn virt(&self) -> u64 {
        phys_to_virt(self.phys)
    }

    pub fn len(&self) -> usize {
        (self.pages * PAGE_SIZE) as usize
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the buffer is ours for its lifetime and direct-mapped.
        unsafe { core::slice::from_raw_parts(self.virt() as *const u8, self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` gives exclusive access.
        unsafe { core::slice::from_raw_parts_mut(self.virt() as *mut u8, self.len()) }
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        for i in 0..self.pages {
            let _ = frames::free(self.phys + i * PAGE_SIZE);
        }
    }
}

/// Physical address of a kernel virtual address, if mapped.
pub fn virt_to_phys(va: u64) -> Option<u64> {
    crate::mm::hhdm_virt_to_phys(va).or_else(|| crate::mm::paging::translate(va))
}

/// Pages of bounce buffers in flight: frames a transfer holds for its
/// duration only, counted as free by `ProcessControl.status` (on several
/// CPUs a count taken during another CPU's transfer would otherwise
/// differ from one taken between transfers).
static BOUNCE_PAGES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

pub fn bounce_pages() -> u64 {
    BOUNCE_PAGES.load(core::sync::atomic::Ordering::Relaxed)
}

/// Bounce buffers in flight, by the physical address given to the device.
static BOUNCES: Lock<BTreeMap<u64, u64>> = Lock::new(&classes::DMA_BOUNCES, BTreeMap::new());

pub struct KernelHal;

// SAFETY: dma_alloc returns zeroed, contiguous, exclusively owned frames;
// share/unshare return addresses of memory that stays valid until unshare.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let buf = DmaBuffer::new(pages as u64).expect("out of memory for virtio DMA");
        let (phys, virt) = (buf.phys, buf.virt());
        core::mem::forget(buf);
        (phys, NonNull::new(virt as *mut u8).expect("HHDM address is never null"))
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        drop(DmaBuffer { phys: paddr, pages: pages as u64 });
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let va = crate::mm::paging::map_physical(paddr, size as u64, crate::mm::paging::PhysKind::Mmio)
            .expect("mapping a virtio BAR region");
        NonNull::new(va as *mut u8).expect("HHDM address is never null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len() as u64;
        if let Some(pa) = crate::mm::hhdm_virt_to_phys(va) {
            return pa;
        }
        let mut bounce = DmaBuffer::new(len.div_ceil(PAGE_SIZE)).expect("out of memory for a DMA bounce buffer");
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: `buffer` is valid for `len` bytes for this call (Hal contract).
            let src = unsafe { core::slice::from_raw_parts(va as *const u8, len as usize) };
            copy_with_windows(&mut bounce.as_mut_slice()[..len as usize], src);
        }
        let phys = bounce.phys;
        BOUNCES.lock().insert(phys, bounce.pages);
        BOUNCE_PAGES.fetch_add(bounce.pages, core::sync::atomic::Ordering::Relaxed);
        core::mem::forget(bounce);
        phys
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let Some(pages) = BOUNCES.lock().remove(&paddr) else { return };
        let bounce = DmaBuffer { phys: paddr, pages };
        BOUNCE_PAGES.fetch_sub(pages, core::sync::atomic::Ordering::Relaxed);
        if direction != BufferDirection::DriverToDevice {
            let len = buffer.len();
            // SAFETY: `buffer` is valid and exclusively ours for this call.
            let dst = unsafe { core::slice::from_raw_parts_mut(buffer.as_ptr() as *mut u8, len) };
            copy_with_windows(dst, &bounce.as_slice()[..len]);
        }
    }
}
