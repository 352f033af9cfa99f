//! A process's address space: its own PML4 whose upper half is the kernel's
//! (the same 256 entries, shared, so kernel mappings appear everywhere) and
//! whose lower half holds only that process's pages, mapped USER with the
//! rights of their ELF segment.
//!
//! The page-table walks over a user space (translation, the piece cursor
//! that bulk copies follow, freeing the tables) and the CR3 write that
//! activates it are here, in memory management, beside the kernel's own
//! tables in [`super::paging`]; processes hold an [`AddressSpace`] and call
//! its methods.

use super::frames::{self, KernelFrames};
use super::{phys_to_virt, PAGE_SIZE};
use alloc::vec::Vec;
use x86_64::structures::paging::{Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame, Size4KiB};
use x86_64::{PhysAddr, VirtAddr};

/// First address user space may not use (the canonical lower half).
pub use capos_kcore::call::USER_END;

pub struct AddressSpace {
    pub pml4: u64,
    /// Frames mapped into user space (freed with the address space).
    frames: Vec<u64>,
}

#[derive(Debug)]
#[expect(dead_code, reason = "the payloads are read only by Debug, in the error messages that print them")]
pub enum SpaceError {
    OutOfMemory,
    Overlap(u64),
    NotUser(u64),
}

impl AddressSpace {
    pub fn new() -> Result<AddressSpace, SpaceError> {
        let pml4 = frames::alloc_zeroed().ok_or(SpaceError::OutOfMemory)?;
        let kernel = phys_to_virt(super::paging::kernel_pml4()) as *const u64;
        let mine = phys_to_virt(pml4) as *mut u64;
        for i in 256..512 {
            // SAFETY: both are PML4 frames (512 entries) reached through the HHDM.
            unsafe { mine.add(i).write(kernel.add(i).read()) };
        }
        Ok(AddressSpace { pml4, frames: Vec::new() })
    }

    fn mapper(&self) -> OffsetPageTable<'static> {
        // SAFETY: `pml4` is this space's PML4 frame; every table frame is
        // reachable through the HHDM.
        unsafe { OffsetPageTable::new(&mut *(phys_to_virt(self.pml4) as *mut PageTable), VirtAddr::new(super::hhdm_offset())) }
    }

    /// Map fresh zeroed frames at `[va, va + pages * 4K)`, user accessible,
    /// writable and/or executable as asked. Returns the frames, in order.
    pub fn map_new(&mut self, va: u64, pages: u64, writable: bool, executable: bool) -> Result<Vec<u64>, SpaceError> {
        if va % PAGE_SIZE != 0 || va.checked_add(pages * PAGE_SIZE).map_or(true, |e| e > USER_END) || va == 0 {
            return Err(SpaceError::NotUser(va));
        }
        let mut flags = F::PRESENT | F::USER_ACCESSIBLE;
        if writable {
            flags |= F::WRITABLE;
        }
        if !executable {
            flags |= F::NO_EXECUTE;
        }
        let mut mapper = self.mapper();
        let mut out = Vec::new();
        // Physically contiguous when the allocator has a run (it usually
        // has at load time): bulk copies to and from these pages then go
        // in one piece instead of one per page. Each frame is still owned
        // and freed on its own.
        let run = if pages > 1 { frames::alloc_contiguous(pages, 1) } else { None };
        if let Some(base) = run {
            // SAFETY: the run was just allocated to us and is direct-mapped.
            unsafe { core::ptr::write_bytes(phys_to_virt(base) as *mut u8, 0, (pages * PAGE_SIZE) as usize) };
        }
        for i in 0..pages {
            let pa = match run {
                Some(base) => base + i * PAGE_SIZE,
                None => frames::alloc_zeroed().ok_or(SpaceError::OutOfMemory)?,
            };
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va + i * PAGE_SIZE));
            let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(pa));
            // SAFETY: a fresh frame mapped into this process's lower half only.
            match unsafe { mapper.map_to_with_table_flags(page, frame, flags, F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE, &mut KernelFrames) } {
                Ok(f) => f.ignore(),
                Err(_) => {
                    let _ = frames::free(pa);
                    if let Some(base) = run {
                        for j in i + 1..pages {
                            let _ = frames::free(base + j * PAGE_SIZE);
                        }
                    }
                    return Err(SpaceError::Overlap(va + i * PAGE_SIZE));
                }
            }
            self.frames.push(pa);
            out.push(pa);
        }
        Ok(out)
    }

    /// Map `pages` existing frames starting at physical `phys` at `va`
    /// (user accessible, never executable). The frames stay owned by the
    /// caller (the IPC area), which must outlive this address space's use
    /// of them; they are not freed with the space.
    pub fn map_frames(&mut self, va: u64, phys: u64, pages: u64, writable: bool) -> Result<(), SpaceError> {
        if va % PAGE_SIZE != 0 || va.checked_add(pages * PAGE_SIZE).map_or(true, |e| e > USER_END) || va == 0 {
            return Err(SpaceError::NotUser(va));
        }
        let mut flags = F::PRESENT | F::USER_ACCESSIBLE | F::NO_EXECUTE;
        if writable {
            flags |= F::WRITABLE;
        }
        let mut mapper = self.mapper();
        for i in 0..pages {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va + i * PAGE_SIZE));
            let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(phys + i * PAGE_SIZE));
            // SAFETY: frames owned by the caller, mapped into this
            // process's lower half only.
            match unsafe { mapper.map_to_with_table_flags(page, frame, flags, F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE, &mut KernelFrames) } {
                Ok(f) => f.ignore(),
                Err(_) => return Err(SpaceError::Overlap(va + i * PAGE_SIZE)),
            }
        }
        Ok(())
    }

    /// The last-level page table covering user address `va` (present and
    /// user accessible on the way down), and whether every level above it
    /// allows writing; or `None`.
    fn leaf_table(&self, va: u64) -> Option<(u64, bool)> {
        if va >= USER_END {
            return None;
        }
        let mut table = self.pml4;
        let mut writable = true;
        for level in (2..=4).rev() {
            let index = (va >> (12 + 9 * (level - 1))) & 0x1ff;
            // SAFETY: `table` is a page-table frame of this space (HHDM-mapped).
            let e = unsafe { (phys_to_virt(table) as *const u64).add(index as usize).read() };
            if e & 1 == 0 || e & 4 == 0 || e & 0x80 != 0 {
                return None;
            }
            writable &= e & 2 != 0;
            table = e & 0x000f_ffff_ffff_f000;
        }
        Some((table, writable))
    }

    /// Like [`translate_user`](Self::translate_user) with the leaf table
    /// already found (for walks over consecutive pages); `writable` must
    /// also hold on the upper levels, which `leaf_table` reports, so
    /// writers check it once per table.
    fn translate_in_leaf(leaf: u64, va: u64) -> Option<(u64, bool)> {
        let index = (va >> 12) & 0x1ff;
        // SAFETY: `leaf` is a last-level table frame of this space.
        let e = unsafe { (phys_to_virt(leaf) as *const u64).add(index as usize).read() };
        if e & 1 == 0 || e & 4 == 0 {
            return None;
        }
        Some(((e & 0x000f_ffff_ffff_f000) + (va & (PAGE_SIZE - 1)), e & 2 != 0))
    }

    /// Whether every page of the user range `[va, va + len)` is mapped for
    /// user mode (and writable, when `write`): the upper levels walked once
    /// per 2 MiB, then one load and test per page (a call's bulk buffer is
    /// checked this way before anything is queued or copied).
    pub fn check_user(&self, va: u64, len: usize, write: bool) -> bool {
        let Some(end) = va.checked_add(len as u64) else { return false };
        if end > USER_END {
            return false;
        }
        let need = if write { 0b111 } else { 0b101 }; // present, (writable,) user
        let mut page = va & !(PAGE_SIZE - 1);
        while page < end {
            // The upper levels must allow the access too.
            let Some((leaf, upper_writable)) = self.leaf_table(page) else { return false };
            if write && !upper_writable {
                return false;
            }
            let region_end = end.min(((page >> 21) + 1) << 21);
            // SAFETY: `leaf` is a last-level table frame of this space,
            // direct-mapped; every index stays below 512 (`region_end` is
            // within the 2 MiB region of `page`).
            let ptes = phys_to_virt(leaf) as *const u64;
            while page < region_end {
                // SAFETY: see above.
                let e = unsafe { ptes.add(((page >> 12) & 0x1ff) as usize).read() };
                if e & need != need {
                    return false;
                }
                page += PAGE_SIZE;
            }
        }
        true
    }

    /// A cursor over the user range `[va, va + len)`, piece by piece.
    pub fn pieces(&self, va: u64, len: usize, write: bool) -> PieceCursor<'_> {
        PieceCursor { space: self, va, end: va.saturating_add(len as u64), write, leaf: None }
    }

    /// Physical address and (writable) of a user page, or `None` if the page
    /// is not mapped for user mode.
    pub fn translate_user(&self, va: u64) -> Option<(u64, bool)> {
        if va >= USER_END {
            return None;
        }
        let mut table = self.pml4;
        let mut writable = true;
        for level in (1..=4).rev() {
            let index = (va >> (12 + 9 * (level - 1))) & 0x1ff;
            // SAFETY: `table` is a page-table frame of this space (HHDM-mapped).
            let e = unsafe { (phys_to_virt(table) as *const u64).add(index as usize).read() };
            if e & 1 == 0 || e & 4 == 0 {
                return None; // not present, or not user accessible
            }
            writable &= e & 2 != 0;
            if level > 1 && e & 0x80 != 0 {
                return None; // user space never gets huge pages
            }
            table = e & 0x000f_ffff_ffff_f000;
        }
        Some((table + (va & (PAGE_SIZE - 1)), writable))
    }

    /// Frames mapped into user space.
    pub fn user_frames(&self) -> usize {
        self.frames.len()
    }
}

/// Walks a user range in pieces that never cross a page, with the upper
/// levels walked once per 2 MiB (bulk copies touch consecutive pages).
pub struct PieceCursor<'a> {
    space: &'a AddressSpace,
    va: u64,
    end: u64,
    write: bool,
    /// (2 MiB region number, its last-level table)
    leaf: Option<(u64, u64)>,
}

impl PieceCursor<'_> {
    /// The next piece (physical address, length ≤ `max`; physically
    /// contiguous, possibly several pages), `Ok(None)` at the end, or
    /// `Err(address)` where the range is not mapped for user mode (or not
    /// writable, for a write cursor).
    pub fn next(&mut self, max: usize) -> Result<Option<(u64, usize)>, u64> {
        if self.va >= self.end {
            return Ok(None);
        }
        let at = self.va;
        let n = ((PAGE_SIZE - at % PAGE_SIZE).min(self.end - at) as usize).min(max);
        let region = at >> 21;
        let table = match self.leaf {
            Some((r, t)) if r == region => t,
            _ => {
                let (t, upper_writable) = self.space.leaf_table(at).ok_or(at)?;
                if self.write && !upper_writable {
                    return Err(at);
                }
                self.leaf = Some((region, t));
                t
            }
        };
        let (pa, writable) = AddressSpace::translate_in_leaf(table, at).ok_or(at)?;
        if self.write && !writable {
            return Err(at);
        }
        // Extend the piece over following pages that are physically
        // contiguous (same leaf table): one copy instead of one per page.
        let mut n = n;
        let end = self.end.min(((region + 1) << 21).min(at.saturating_add(max as u64)));
        let need = if self.write { 0b111 } else { 0b101 }; // present, (writable,) user
        // SAFETY: `table` is a last-level table frame of this space, direct-mapped.
        let ptes = phys_to_virt(table) as *const u64;
        let next = at + n as u64;
        if next < end && next % PAGE_SIZE == 0 {
            // Each following page must map the next physical page with the
            // needed bits: one masked compare per entry.
            let mask = 0x000f_ffff_ffff_f000 | need;
            let mut want = (pa + n as u64) | need;
            let first = ((next >> 12) & 0x1ff) as usize;
            let pages = (end - next).div_ceil(PAGE_SIZE) as usize;
            let mut k = 0;
            while k < pages {
                // SAFETY: `first + k` < 512: `end` is within the same 2 MiB
                // region as `at`.
                let e = unsafe { ptes.add(first + k).read() };
                if e & mask != want {
                    break;
                }
                want += PAGE_SIZE;
                k += 1;
            }
            n += (k as u64 * PAGE_SIZE).min(end - next) as usize;
        }
        self.va += n as u64;
        Ok(Some((pa, n)))
    }
}

fn free_tables(table: u64, level: u32) {
    for i in 0..512 {
        // SAFETY: `table` is a lower-half table frame of a dead address space.
        let e = unsafe { (phys_to_virt(table) as *const u64).add(i).read() };
        if e & 1 != 0 && level > 1 {
            let next = e & 0x000f_ffff_ffff_f000;
            free_tables(next, level - 1);
            let _ = frames::free(next);
        }
    }
}

impl Drop for AddressSpace {
    /// Must not run while this space is active (the scheduler reaps dead
    /// processes only from another address space).
    fn drop(&mut self) {
        for pa in self.frames.drain(..) {
            let _ = frames::free(pa);
        }
        for i in 0..256 {
            // SAFETY: our PML4 frame; lower-half entries are ours alone.
            let e = unsafe { (phys_to_virt(self.pml4) as *const u64).add(i).read() };
            if e & 1 != 0 {
                let pdpt = e & 0x000f_ffff_ffff_f000;
                free_tables(pdpt, 3);
                let _ = frames::free(pdpt);
            }
        }
        let _ = frames::free(self.pml4);
    }
}
