//! Builder for the 4-level page tables the kernel is entered with.
//!
//! The loader owns physical memory through [`PhysMemory`] (identity-mapped
//! UEFI memory on the target, a vector in the host tests). The tables hold:
//!
//! * the identity map of `0x1000..top` (page 0 stays unmapped to catch null
//!   pointers) and the HHDM of `0..top`, where `top` covers at least 4 GiB and
//!   every memory-map entry, rounded up to 1 GiB — both `rwx` as the protocol
//!   says, with 2 MiB pages except the first 2 MiB;
//! * the kernel's segments at their link addresses with 4 KiB pages and the
//!   segment's own permissions: read-only unless PF_W, no-execute unless PF_X.

use crate::kernel_elf::KernelImage;
use crate::{HHDM_OFFSET, PAGE_SIZE};

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const HUGE: u64 = 1 << 7;
pub const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const SIZE_2M: u64 = 2 * 1024 * 1024;

/// Physical memory as the table builder sees it.
pub trait PhysMemory {
    /// A zeroed 4 KiB frame, or `None` when out of memory.
    fn alloc_table(&mut self) -> Option<u64>;
    fn read_entry(&self, table: u64, index: usize) -> u64;
    fn write_entry(&mut self, table: u64, index: usize, value: u64);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    OutOfMemory,
    AlreadyMapped { virt: u64 },
    Misaligned { virt: u64 },
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// Walk to (creating if needed) the table at `stop_level` for `virt`.
fn walk_create<M: PhysMemory>(mem: &mut M, pml4: u64, virt: u64, stop_level: u32) -> Result<u64, MapError> {
    let mut table = pml4;
    let mut level = 4;
    while level > stop_level {
        let i = index(virt, level);
        let e = mem.read_entry(table, i);
        table = if e & PRESENT == 0 {
            let t = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
            mem.write_entry(table, i, t | PRESENT | WRITABLE);
            t
        } else if e & HUGE != 0 {
            return Err(MapError::AlreadyMapped { virt });
        } else {
            e & ADDR_MASK
        };
        level -= 1;
    }
    Ok(table)
}

pub fn map_4k<M: PhysMemory>(mem: &mut M, pml4: u64, virt: u64, phys: u64, flags: u64) -> Result<(), MapError> {
    if virt % PAGE_SIZE != 0 || phys % PAGE_SIZE != 0 {
        return Err(MapError::Misaligned { virt });
    }
    let pt = walk_create(mem, pml4, virt, 1)?;
    let i = index(virt, 1);
    if mem.read_entry(pt, i) & PRESENT != 0 {
        return Err(MapError::AlreadyMapped { virt });
    }
    mem.write_entry(pt, i, phys | flags | PRESENT);
    Ok(())
}

pub fn map_2m<M: PhysMemory>(mem: &mut M, pml4: u64, virt: u64, phys: u64, flags: u64) -> Result<(), MapError> {
    if virt % SIZE_2M != 0 || phys % SIZE_2M != 0 {
        return Err(MapError::Misaligned { virt });
    }
    let pd = walk_create(mem, pml4, virt, 2)?;
    let i = index(virt, 2);
    if mem.read_entry(pd, i) & PRESENT != 0 {
        return Err(MapError::AlreadyMapped { virt });
    }
    mem.write_entry(pd, i, phys | flags | PRESENT | HUGE);
    Ok(())
}

/// Physical address and leaf flags of `virt`, if mapped.
pub fn translate<M: PhysMemory>(mem: &M, pml4: u64, virt: u64) -> Option<(u64, u64)> {
    let mut table = pml4;
    for level in (1..=4).rev() {
        let e = mem.read_entry(table, index(virt, level));
        if e & PRESENT == 0 {
            return None;
        }
        let flags = e & !ADDR_MASK;
        if level == 1 || (level == 2 && e & HUGE != 0) {
            let page = if level == 1 { PAGE_SIZE } else { SIZE_2M };
            let base = e & ADDR_MASK & !(page - 1);
            return Some((base + (virt & (page - 1)), flags));
        }
        if level == 3 && e & HUGE != 0 {
            return None; // the builder never makes 1 GiB pages
        }
        table = e & ADDR_MASK;
    }
    None
}

/// Top of the direct maps: at least 4 GiB and above every entry, 1 GiB aligned.
pub fn direct_map_top(highest_phys_end: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    let top = highest_phys_end.max(4 * GIB);
    top.div_ceil(GIB) * GIB
}

/// Build the entry page tables. Returns the physical address of the PML4.
pub fn build<M: PhysMemory>(
    mem: &mut M,
    kernel: &KernelImage,
    kernel_phys_base: u64,
    top: u64,
) -> Result<u64, MapError> {
    let pml4 = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
    let rwx = WRITABLE;
    // First 2 MiB in 4 KiB pages so that page 0 can stay out of the identity map.
    for page in (0..SIZE_2M).step_by(PAGE_SIZE as usize) {
        if page != 0 {
            map_4k(mem, pml4, page, page, rwx)?;
        }
        map_4k(mem, pml4, HHDM_OFFSET + page, page, rwx)?;
    }
    let mut phys = SIZE_2M;
    while phys < top {
        map_2m(mem, pml4, phys, phys, rwx)?;
        map_2m(mem, pml4, HHDM_OFFSET + phys, phys, rwx)?;
        phys += SIZE_2M;
    }
    for s in &kernel.segments {
        let mut flags = 0;
        if s.writable {
            flags |= WRITABLE;
        }
        if !s.executable {
            flags |= NO_EXECUTE;
        }
        let mut virt = s.first_page();
        while virt < s.end_page() {
            map_4k(mem, pml4, virt, kernel_phys_base + (virt - kernel.virt_base), flags)?;
            virt += PAGE_SIZE;
        }
    }
    Ok(pml4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_elf::Segment;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeMem {
        tables: HashMap<u64, [u64; 512]>,
        next: u64,
        limit: usize,
    }

    impl PhysMemory for FakeMem {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.tables.len() >= self.limit {
                return None;
            }
            self.next += PAGE_SIZE;
            let addr = 0x4000_0000_0000 + self.next;
            self.tables.insert(addr, [0; 512]);
            Some(addr)
        }
        fn read_entry(&self, table: u64, index: usize) -> u64 {
            self.tables[&table][index]
        }
        fn write_entry(&mut self, table: u64, index: usize, value: u64) {
            self.tables.get_mut(&table).unwrap()[index] = value;
        }
    }

    const K: u64 = 0xffff_ffff_8000_0000;

    fn kernel() -> KernelImage {
        KernelImage {
            entry: K,
            virt_base: K,
            span: 0x4000,
            segments: vec![
                Segment { vaddr: K, mem_size: 0x1800, file_offset: 0, file_size: 0, writable: false, executable: true },
                Segment { vaddr: K + 0x2000, mem_size: 0x1000, file_offset: 0, file_size: 0, writable: false, executable: false },
                Segment { vaddr: K + 0x3000, mem_size: 0x1000, file_offset: 0, file_size: 0, writable: true, executable: false },
            ],
        }
    }

    #[test]
    fn builds_the_protocol_mappings() {
        let mut mem = FakeMem { limit: 10_000, ..Default::default() };
        let top = direct_map_top(0x1_8000_0000); // 6 GiB of RAM
        assert_eq!(top, 0x1_8000_0000);
        let pml4 = build(&mut mem, &kernel(), 0x20_0000, top).unwrap();

        // Page 0 is not identity mapped; page 1 is; HHDM covers page 0.
        assert_eq!(translate(&mem, pml4, 0x0), None);
        assert_eq!(translate(&mem, pml4, 0x1234).map(|t| t.0), Some(0x1234));
        assert_eq!(translate(&mem, pml4, HHDM_OFFSET).map(|t| t.0), Some(0));
        // Above 4 GiB, through 2 MiB pages, up to but not including top.
        let high = 0x1_7fff_f123;
        assert_eq!(translate(&mem, pml4, high).map(|t| t.0), Some(high));
        assert_eq!(translate(&mem, pml4, HHDM_OFFSET + high).map(|t| t.0), Some(high));
        assert_eq!(translate(&mem, pml4, top), None);

        // Kernel: text RX, rodata R+NX, data RW+NX, each at phys_base + offset.
        let (p, f) = translate(&mem, pml4, K + 0x10).unwrap();
        assert_eq!(p, 0x20_0010);
        assert!(f & WRITABLE == 0 && f & NO_EXECUTE == 0);
        let (p, f) = translate(&mem, pml4, K + 0x1010).unwrap();
        assert_eq!(p, 0x20_1010, "second page of text");
        assert!(f & NO_EXECUTE == 0);
        let (_, f) = translate(&mem, pml4, K + 0x2000).unwrap();
        assert!(f & WRITABLE == 0 && f & NO_EXECUTE != 0);
        let (p, f) = translate(&mem, pml4, K + 0x3ff8).unwrap();
        assert_eq!(p, 0x20_3ff8);
        assert!(f & WRITABLE != 0 && f & NO_EXECUTE != 0);
        assert_eq!(translate(&mem, pml4, K + 0x4000), None);
    }

    #[test]
    fn small_machines_still_map_4_gib() {
        assert_eq!(direct_map_top(64 << 20), 4 << 30);
        assert_eq!(direct_map_top((4 << 30) + 1), 5 << 30);
    }

    #[test]
    fn reports_out_of_memory_and_double_maps() {
        let mut mem = FakeMem { limit: 3, ..Default::default() };
        assert_eq!(build(&mut mem, &kernel(), 0, 4 << 30), Err(MapError::OutOfMemory));
        let mut mem = FakeMem { limit: 100, ..Default::default() };
        let pml4 = mem.alloc_table().unwrap();
        map_4k(&mut mem, pml4, 0x1000, 0x1000, 0).unwrap();
        assert_eq!(map_4k(&mut mem, pml4, 0x1000, 0x2000, 0), Err(MapError::AlreadyMapped { virt: 0x1000 }));
        assert_eq!(map_2m(&mut mem, pml4, 0x1000, 0, 0), Err(MapError::Misaligned { virt: 0x1000 }));
        map_2m(&mut mem, pml4, 0x40_0000, 0x40_0000, 0).unwrap();
        assert_eq!(map_4k(&mut mem, pml4, 0x40_1000, 0, 0), Err(MapError::AlreadyMapped { virt: 0x40_1000 }));
    }
}
