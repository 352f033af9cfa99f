//! Kernel stacks, each with an unmapped guard page below it so an overflow
//! faults (and, through the double-fault IST stack, is reported) instead of
//! silently corrupting whatever lies below.

use super::paging::{map_fresh, MapError};
use super::PAGE_SIZE;
use crate::sync::{classes, Lock};

pub const STACKS_BASE: u64 = 0xffff_a000_0000_0000;
/// Virtual size of one slot: guard page + stack, at most 1 MiB.
pub const SLOT_SIZE: u64 = 1024 * 1024;
/// 512: each AP takes four (its stack and three IST stacks), so 64 CPUs
/// would otherwise use all 256 of the single-CPU limit.
const MAX_SLOTS: usize = 512;

/// Which slots hold a stack: `names[i]` is empty for a free slot. Slots
/// below `high` have been used at least once; a freed slot is reused
/// before a new one is taken, so a kernel whose processes come and go
/// keeps the same handful of slots.
struct Slots {
    names: [&'static str; MAX_SLOTS],
    high: usize,
}

static SLOTS: Lock<Slots> = Lock::new(&classes::MM_STACKS, Slots { names: [""; MAX_SLOTS], high: 0 });

#[derive(Debug, Clone, Copy)]
pub struct KernelStack {
    /// Lowest mapped byte.
    pub bottom: u64,
    /// One past the highest byte (initial `rsp`).
    pub top: u64,
    /// The unmapped page just below `bottom`.
    pub guard: u64,
}

/// A new stack of `pages` pages (`pages` < 256) at the top of a fresh slot.
pub fn alloc(name: &'static str, pages: u64) -> Result<KernelStack, MapError> {
    assert!(pages >= 1 && (pages + 1) * PAGE_SIZE <= SLOT_SIZE);
    let name = if name.is_empty() { "stack" } else { name };
    let mut slots = SLOTS.lock();
    let slot = match slots.names[..slots.high].iter().position(|n| n.is_empty()) {
        Some(free) => free,
        None if slots.high < MAX_SLOTS => slots.high,
        None => return Err(MapError::OutOfMemory),
    };
    let top = STACKS_BASE + (slot as u64 + 1) * SLOT_SIZE;
    let bottom = top - pages * PAGE_SIZE;
    let partial = match map_fresh(bottom, pages) {
        Ok(()) => None,
        Err(p) if p.mapped == 0 => return Err(p.error),
        Err(p) => Some(p),
    };
    // Held from here, by a stack that failed part way too.
    slots.names[slot] = name;
    slots.high = slots.high.max(slot + 1);
    let Some(p) = partial else { return Ok(KernelStack { bottom, top, guard: bottom - PAGE_SIZE }) };
    // Out of frames part way: the pages mapped so far go back as a freed
    // stack's do (unmapped, one shootdown, then the frames and the slot),
    // the slot held until then so no other stack lands on them
    // (`paging::Partial`).
    drop(slots);
    free_all([KernelStack { bottom, top: bottom + p.mapped * PAGE_SIZE, guard: bottom - PAGE_SIZE }]);
    Err(p.error)
}

/// Give a stack back: unmap it, free its frames, free its slot. The caller
/// guarantees nothing runs on it any more (a reaped process's stack).
pub fn free(stack: KernelStack) {
    free_all([stack]);
}

/// Give stacks back at once: unmapped, forgotten by every CPU in one
/// shootdown (`tlb`), then their frames and slots freed. Call with no
/// lock held.
pub fn free_all(stacks: impl IntoIterator<Item = KernelStack>) {
    let stacks: alloc::vec::Vec<KernelStack> = stacks.into_iter().collect();
    let mut frames = alloc::vec::Vec::new();
    let mut ranges = alloc::vec::Vec::new();
    for s in &stacks {
        let pages = (s.top - s.bottom) / PAGE_SIZE;
        if let Ok(f) = super::paging::unmap(s.bottom, pages) {
            frames.extend(f);
        }
        ranges.push((s.bottom, pages));
    }
    // Until every CPU has forgotten them, neither the frames nor the
    // slots (their addresses) may be handed out again.
    super::tlb::flush_kernel(&ranges);
    super::paging::free_all(&frames);
    let mut slots = SLOTS.lock();
    for s in &stacks {
        // From the bottom: a stack given back after a partial map ends
        // below its slot's top.
        let slot = ((s.bottom - STACKS_BASE) / SLOT_SIZE) as usize;
        if slot < slots.high {
            slots.names[slot] = "";
        }
    }
}

/// Slots holding a stack now.
pub fn in_use() -> usize {
    let slots = SLOTS.lock();
    slots.names[..slots.high].iter().filter(|n| !n.is_empty()).count()
}

/// Slots ever used (the high-water mark): stays small when freed slots
/// are reused.
pub fn slots_used() -> usize {
    SLOTS.lock().high
}

/// If `addr` lies in the unmapped part of a stack slot (the guard page and
/// below), the stack's name. Lock-free use from the double-fault handler is
/// fine: it only reads, and `try_lock` avoids deadlock.
pub fn guard_page_owner(addr: u64) -> Option<&'static str> {
    if addr < STACKS_BASE || addr >= STACKS_BASE + MAX_SLOTS as u64 * SLOT_SIZE {
        return None;
    }
    let slot = ((addr - STACKS_BASE) / SLOT_SIZE) as usize;
    let slots = SLOTS.try_lock()?;
    if slot >= slots.high || slots.names[slot].is_empty() {
        return None;
    }
    Some(slots.names[slot])
}
