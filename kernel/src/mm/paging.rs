//! The kernel's own page tables.
//!
//! Built once at boot, replacing the loader's: the HHDM covers only
//! RAM-like regions of the memory map (never MMIO, which drivers map
//! themselves with caching disabled), read-write and no-execute; the kernel
//! image gets per-section rights from the linker symbols (text R-X, rodata
//! R--, data and bss RW-); the lower half is left empty for user space.

use super::frames::KernelFrames;
use super::{hhdm_offset, phys_to_virt, PAGE_SIZE};
use crate::boot_info::MemoryRegion;
use crate::sync::{classes, Lock};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

static KERNEL_TABLES: Lock<Option<OffsetPageTable<'static>>> = Lock::new(&classes::MM_PAGING, None);
static KERNEL_PML4: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Physical address of the kernel's PML4; every address space copies its
/// upper half.
pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.load(core::sync::atomic::Ordering::Relaxed)
}

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

const TABLE_FLAGS: F = F::PRESENT.union(F::WRITABLE);
const SIZE_2M: u64 = 2 * 1024 * 1024;

fn map_4k(t: &mut OffsetPageTable, virt: u64, phys: u64, flags: F) -> Result<(), MapToError<Size4KiB>> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(phys));
    // SAFETY: callers map frames they own (or firmware memory the HHDM
    // describes) at addresses nothing else uses.
    unsafe { t.map_to_with_table_flags(page, frame, flags, TABLE_FLAGS, &mut KernelFrames) }.map(|f| f.ignore())
}

fn map_2m(t: &mut OffsetPageTable, virt: u64, phys: u64, flags: F) -> Result<(), MapToError<Size2MiB>> {
    let page = Page::<Size2MiB>::containing_address(VirtAddr::new(virt));
    let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(phys));
    // SAFETY: as map_4k.
    unsafe { t.map_to_with_table_flags(page, frame, flags, TABLE_FLAGS, &mut KernelFrames) }.map(|f| f.ignore())
}

/// What was mapped, for the boot log.
pub struct PagingSummary {
    pub hhdm_bytes: u64,
    pub huge_pages: u64,
    pub small_pages: u64,
}

/// Build and activate the kernel page tables.
pub fn init(map: &[MemoryRegion], kernel_phys: u64, kernel_virt: u64) -> Result<PagingSummary, &'static str> {
    let pml4_pa = super::frames::alloc_zeroed().ok_or("out of memory for the PML4")?;
    // SAFETY: the frame is ours, zeroed, and direct-mapped.
    let pml4 = unsafe { &mut *(phys_to_virt(pml4_pa) as *mut PageTable) };
    // SAFETY: the HHDM maps all RAM, so the mapper can reach every table frame.
    let mut t = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(hhdm_offset())) };
    let mut summary = PagingSummary { hhdm_bytes: 0, huge_pages: 0, small_pages: 0 };

    let data = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;
    for r in map.iter().filter(|r| r.kind.is_ram_like()) {
        let start = r.base & !(PAGE_SIZE - 1);
        let end = (r.base + r.length).next_multiple_of(PAGE_SIZE);
        let mut pa = start;
        while pa < end {
            if pa % SIZE_2M == 0 && pa + SIZE_2M <= end {
                map_2m(&mut t, phys_to_virt(pa), pa, data | F::HUGE_PAGE).map_err(|_| "mapping the HHDM failed")?;
                summary.huge_pages += 1;
                pa += SIZE_2M;
            } else {
                // Neighbouring regions may share a 4 KiB page at unaligned ends.
                match map_4k(&mut t, phys_to_virt(pa), pa, data) {
                    Ok(()) | Err(MapToError::PageAlreadyMapped(_)) => {}
                    Err(_) => return Err("mapping the HHDM failed"),
                }
                summary.small_pages += 1;
                pa += PAGE_SIZE;
            }
        }
        summary.hhdm_bytes += end - start;
    }

    // SAFETY: linker-provided symbols; only their addresses are used.
    let (text, text_end, ro, ro_end, data_s, data_end) = unsafe {
        (sym(&__text_start), sym(&__text_end), sym(&__rodata_start), sym(&__rodata_end), sym(&__data_start), sym(&__data_end))
    };
    let sections = [
        (text, text_end, F::PRESENT | F::GLOBAL),
        (ro, ro_end, F::PRESENT | F::NO_EXECUTE | F::GLOBAL),
        (data_s, data_end, F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL),
    ];
    for (start, end, flags) in sections {
        let mut va = start & !(PAGE_SIZE - 1);
        while va < end {
            map_4k(&mut t, va, va - kernel_virt + kernel_phys, flags).map_err(|_| "mapping the kernel image failed")?;
            summary.small_pages += 1;
            va += PAGE_SIZE;
        }
    }

    // Every upper-half PML4 slot gets its table now, so address spaces
    // created later (which copy these 256 entries) see every kernel mapping
    // made afterwards: heap growth, stacks, MMIO.
    for i in 256..512 {
        let entry = &mut t.level_4_table_mut()[i];
        if entry.is_unused() {
            let pa = super::frames::alloc_zeroed().ok_or("out of memory for kernel page tables")?;
            entry.set_addr(PhysAddr::new(pa), F::PRESENT | F::WRITABLE);
        }
    }
    KERNEL_PML4.store(pml4_pa, core::sync::atomic::Ordering::Relaxed);

    // The new tables map the kernel image and the HHDM (which holds the
    // current stack and every structure in use) exactly as before.
    activate_kernel_tables();
    *KERNEL_TABLES.lock() = Some(t);
    Ok(summary)
}

#[derive(Debug)]
#[expect(dead_code, reason = "the payloads are read only by Debug, in the error messages that print them")]
pub enum MapError {
    OutOfMemory,
    AlreadyMapped(u64),
    NotInitialised,
}

/// A [`map_fresh`] that stopped part way (out of frames, or a page
/// already mapped): its first `mapped` pages are mapped, each to a frame
/// of its own, and belong to the caller as if it had asked for those
/// alone. Left mapped and forgotten they would stop every later map of
/// the range at its first page (the heap could never grow again, a stack
/// slot never be used again).
#[derive(Debug)]
pub struct Partial {
    pub mapped: u64,
    pub error: MapError,
}

/// Map fresh zeroed frames at `[virt, virt + pages * 4K)` in the kernel
/// half, read-write, no-execute. Used for the heap and kernel stacks.
pub fn map_fresh(virt: u64, pages: u64) -> Result<(), Partial> {
    let mut guard = KERNEL_TABLES.lock();
    let t = guard.as_mut().ok_or(Partial { mapped: 0, error: MapError::NotInitialised })?;
    for i in 0..pages {
        let va = virt + i * PAGE_SIZE;
        let failed = |error| Partial { mapped: i, error };
        let pa = super::frames::alloc_zeroed().ok_or(failed(MapError::OutOfMemory))?;
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(pa));
        let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;
        // SAFETY: the frame is freshly allocated; the virtual range belongs to
        // the caller's region (heap or stacks) and is checked for overlap.
        match unsafe { t.map_to_with_table_flags(page, frame, flags, TABLE_FLAGS, &mut KernelFrames) } {
            Ok(flush) => flush.flush(),
            Err(MapToError::PageAlreadyMapped(_)) => {
                let _ = super::frames::free(pa);
                return Err(failed(MapError::AlreadyMapped(va)));
            }
            Err(_) => {
                let _ = super::frames::free(pa);
                return Err(failed(MapError::OutOfMemory));
            }
        }
    }
    Ok(())
}

/// Unmap `[virt, virt + pages * 4K)` in the kernel tables (this CPU's
/// entries flushed); the frames that were behind it, still allocated:
/// free them ([`free_all`]) once every CPU has forgotten the range
/// (`tlb::flush_kernel`).
pub fn unmap(virt: u64, pages: u64) -> Result<alloc::vec::Vec<u64>, MapError> {
    // Allocated before the tables are locked (the heap ranks below them),
    // large enough that the pushes below never allocate.
    let mut frames = alloc::vec::Vec::with_capacity(pages as usize);
    let mut guard = KERNEL_TABLES.lock();
    let t = guard.as_mut().ok_or(MapError::NotInitialised)?;
    for i in 0..pages {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt + i * PAGE_SIZE));
        if let Ok((frame, flush)) = t.unmap(page) {
            flush.flush();
            frames.push(frame.start_address().as_u64());
        }
    }
    Ok(frames)
}

pub fn free_all(frames: &[u64]) {
    for &f in frames {
        let _ = super::frames::free(f);
    }
}

/// How a physical range is mapped by [`map_physical`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysKind {
    /// Device registers: uncached, read-write, no-execute.
    Mmio,
    /// Firmware tables (ACPI): cached, read-only, no-execute.
    FirmwareReadOnly,
}

/// Make `[pa, pa + len)` reachable at its HHDM address and return that
/// address. Pages already mapped (RAM-like memory) are left as they are;
/// the rest are mapped with `kind`'s attributes. Drivers and the ACPI layer
/// use this instead of touching the HHDM directly, so device memory is never
/// mapped with caching on.
pub fn map_physical(pa: u64, len: u64, kind: PhysKind) -> Result<u64, MapError> {
    if len == 0 || pa.checked_add(len).is_none() || pa + len > (1 << 52) {
        return Err(MapError::OutOfMemory);
    }
    let mut guard = KERNEL_TABLES.lock();
    let t = guard.as_mut().ok_or(MapError::NotInitialised)?;
    let flags = match kind {
        PhysKind::Mmio => F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH | F::GLOBAL,
        PhysKind::FirmwareReadOnly => F::PRESENT | F::NO_EXECUTE | F::GLOBAL,
    };
    let first = pa & !(PAGE_SIZE - 1);
    let end = (pa + len).next_multiple_of(PAGE_SIZE);
    let mut page_pa = first;
    while page_pa < end {
        let va = phys_to_virt(page_pa);
        if t.translate_addr(VirtAddr::new(va)).is_none() {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
            let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(page_pa));
            // SAFETY: maps device or firmware memory at its own HHDM address,
            // which no other mapping uses (it was just found unmapped).
            match unsafe { t.map_to_with_table_flags(page, frame, flags, TABLE_FLAGS, &mut KernelFrames) } {
                Ok(flush) => flush.flush(),
                Err(MapToError::PageAlreadyMapped(_)) => {}
                Err(_) => return Err(MapError::OutOfMemory),
            }
        }
        page_pa += PAGE_SIZE;
    }
    Ok(phys_to_virt(pa))
}

/// Switch to the kernel's own tables (at boot, once built, and on each
/// AP as it starts).
pub fn activate_kernel_tables() {
    // SAFETY: the kernel PML4 maps everything the kernel uses: its image,
    // the HHDM (the current stack among it), heap, stacks and MMIO.
    unsafe { load_tables(kernel_pml4()) };
}

/// Load `pml4` into CR3 (every context switch: a process's address space
/// or, for an idle context, the kernel's tables). No checks: the switch
/// path runs it on every call and reply.
///
/// # Safety
/// `pml4` is the physical address of a live PML4 frame whose upper half
/// is the kernel's (the kernel's own, or an `AddressSpace`'s, which copies
/// it), so the code running now stays mapped; it stays live while loaded.
#[inline(always)]
pub unsafe fn load_tables(pml4: u64) {
    // SAFETY: a frame's start is 4 KiB-aligned and a valid physical
    // address (the caller's promise).
    unsafe { Cr3::write(PhysFrame::from_start_address_unchecked(PhysAddr::new_unsafe(pml4)), Cr3Flags::empty()) };
}

/// Copy `buf.len()` bytes of firmware memory (ACPI tables) at physical
/// `pa` into `buf`, mapping the range read-only first.
pub fn read_firmware(pa: u64, buf: &mut [u8]) -> Result<(), MapError> {
    let va = map_physical(pa, buf.len() as u64, PhysKind::FirmwareReadOnly)?;
    // SAFETY: the range was just made readable at `va`; firmware memory is
    // not concurrently modified by the kernel.
    unsafe { core::ptr::copy_nonoverlapping(va as *const u8, buf.as_mut_ptr(), buf.len()) };
    Ok(())
}

/// Physical address behind `virt` in the kernel tables.
pub fn translate(virt: u64) -> Option<u64> {
    let guard = KERNEL_TABLES.lock();
    guard.as_ref()?.translate_addr(VirtAddr::new(virt)).map(|p| p.as_u64())
}
