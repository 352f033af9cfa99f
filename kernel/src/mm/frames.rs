//! The kernel's physical frame allocator: `capos_kcore::frame_alloc` over a
//! bitmap placed in the first usable region big enough to hold it.

use super::phys_to_virt;
use crate::boot_info::{MemoryRegion, RegionKind};
use capos_kcore::frame_alloc::{bitmap_words, FrameAllocator, FreeError, FRAME_SIZE};
use crate::sync::{classes, Lock};
use x86_64::structures::paging::{PhysFrame, Size4KiB};
use x86_64::PhysAddr;

static FRAMES: Lock<Option<FrameAllocator<'static>>> = Lock::new(&classes::MM_FRAMES, None);

#[derive(Clone, Copy, Debug, Default)]
pub struct FrameStats {
    pub managed: u64,
    pub free: u64,
}

/// Build the allocator from the memory map (usable regions only; the
/// bootloader-reclaimable ones come later through [`reclaim`]).
pub fn init(map: &[MemoryRegion]) -> Result<(), &'static str> {
    let top = map
        .iter()
        .filter(|r| matches!(r.kind, RegionKind::Usable | RegionKind::BootloaderReclaimable))
        .map(|r| r.base + r.length)
        .max()
        .ok_or("the memory map has no usable memory")?;
    let words = bitmap_words(top);
    let bytes = (words as u64 * 8).next_multiple_of(FRAME_SIZE);
    let home = map
        .iter()
        .filter(|r| r.kind == RegionKind::Usable && r.base >= FRAME_SIZE)
        .find(|r| r.length >= bytes)
        .ok_or("no usable region can hold the frame bitmap")?;
    // SAFETY: `home` is usable RAM nobody else owns yet, direct-mapped by the
    // HHDM, and large enough for `words` u64s; it is reserved below so the
    // allocator never hands it out.
    let storage = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(home.base) as *mut u64, words) };
    let mut alloc = FrameAllocator::new(storage);
    for r in map.iter().filter(|r| r.kind == RegionKind::Usable) {
        alloc.add_free(r.base, r.length);
    }
    alloc.reserve(home.base, bytes);
    *FRAMES.lock() = Some(alloc);
    Ok(())
}

/// Hand bootloader-reclaimable memory to the allocator. Call only once
/// nothing the loader left there is used any more.
pub fn reclaim(map: &[MemoryRegion]) -> u64 {
    let mut guard = FRAMES.lock();
    let alloc = guard.as_mut().expect("frames not initialised");
    map.iter()
        .filter(|r| r.kind == RegionKind::BootloaderReclaimable)
        .map(|r| alloc.add_free(r.base, r.length))
        .sum()
}

/// One zeroed frame.
pub fn alloc_zeroed() -> Option<u64> {
    let pa = FRAMES.lock().as_mut()?.alloc()?;
    // SAFETY: the frame was just allocated to us and is direct-mapped.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, FRAME_SIZE as usize) };
    Some(pa)
}

/// One frame, not zeroed: for a holder that never lets anyone read it
/// (the `out-of-frames` self-test runs the allocator dry with these).
pub fn alloc_unzeroed() -> Option<u64> {
    FRAMES.lock().as_mut()?.alloc()
}

/// One frame at or above `min` (not zeroed), e.g. to prove high memory works.
pub fn alloc_at_or_above(min: u64) -> Option<u64> {
    FRAMES.lock().as_mut()?.alloc_at_or_above(min)
}

pub fn alloc_contiguous(count: u64, align_frames: u64) -> Option<u64> {
    FRAMES.lock().as_mut()?.alloc_contiguous(count, align_frames)
}

pub fn free(pa: u64) -> Result<(), FreeError> {
    FRAMES.lock().as_mut().ok_or(FreeError::NotAllocated(pa))?.free(pa)
}

pub fn stats() -> FrameStats {
    FRAMES
        .lock()
        .as_ref()
        .map(|a| FrameStats { managed: a.managed_frames(), free: a.free_frames() })
        .unwrap_or_default()
}

/// Adapter for the `x86_64` crate's mapper.
pub struct KernelFrames;

// SAFETY: every frame returned is freshly allocated, unused and zeroed.
unsafe impl x86_64::structures::paging::FrameAllocator<Size4KiB> for KernelFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        alloc_zeroed().map(|pa| PhysFrame::containing_address(PhysAddr::new(pa)))
    }
}
