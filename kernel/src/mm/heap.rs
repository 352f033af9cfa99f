//! The kernel heap: `linked_list_allocator` over a virtual region that
//! grows on demand. When an allocation does not fit, fresh frames are
//! mapped at the end of the heap (at least doubling it, up to a cap) and
//! the allocation is retried; only when memory is truly exhausted does it
//! fail.

use super::paging::map_fresh;
use super::PAGE_SIZE;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};
use capos_abi::small_blocks::{class_of, class_size, SmallBlocks, BLOCK_ALIGN};
use linked_list_allocator::Heap;
use crate::sync::{classes, Lock};

pub const HEAP_BASE: u64 = 0xffff_9000_0000_0000;
pub const HEAP_INITIAL: u64 = 256 * 1024;
/// Upper bound of the heap region; the effective cap is also limited by RAM.
pub const HEAP_MAX: u64 = 1 << 30;

pub struct KernelHeap {
    heap: Lock<Heap>,
    /// Freed small blocks (capos_abi::small_blocks), so the call path's
    /// small allocations skip the first-fit walk.
    small: Lock<SmallBlocks>,
    cap: AtomicU64,
}

#[global_allocator]
pub static HEAP: KernelHeap = KernelHeap { heap: Lock::new(&classes::MM_HEAP, Heap::empty()), small: Lock::new(&classes::MM_HEAP_SMALL, SmallBlocks::new()), cap: AtomicU64::new(0) };

/// Map the initial heap. `cap` bounds how far it may grow.
pub fn init(cap: u64) -> Result<(), super::paging::MapError> {
    map_fresh(HEAP_BASE, HEAP_INITIAL / PAGE_SIZE).map_err(|p| p.error)?;
    // SAFETY: the range was just mapped for the heap and is used by nothing else.
    unsafe { HEAP.heap.lock().init(HEAP_BASE as *mut u8, HEAP_INITIAL as usize) };
    HEAP.cap.store(cap.clamp(HEAP_INITIAL, HEAP_MAX), Ordering::Relaxed);
    Ok(())
}

pub fn size() -> u64 {
    HEAP.heap.lock().size() as u64
}

/// Bytes allocated from the heap (cached small blocks count as used).
pub fn used() -> u64 {
    HEAP.heap.lock().used() as u64
}

/// Pages the heap maps between two interrupt windows as it grows: about
/// 20,000 executed instructions (each page is a fresh frame zeroed and
/// mapped).
const GROW_CHUNK: u64 = 16;

/// Map at least `at_least` more bytes at the top of the heap (at least
/// doubling it, within `cap`). The growth is as long as the heap is large
/// (a doubling of 1 MiB maps 256 pages, some 300,000 instructions), and a
/// capability call that allocates runs with interrupts off, so it maps
/// [`GROW_CHUNK`] pages at a time with an interrupt window between
/// (docs/interrupts-off.md). A window here is taken with `mm.heap` held,
/// which no interrupt handler takes (docs/locks.md).
fn grow(heap: &mut Heap, at_least: u64, cap: u64) -> bool {
    let size = heap.size() as u64;
    let want = at_least.max(size).next_multiple_of(PAGE_SIZE);
    let want = want.min(cap.saturating_sub(size));
    if want < at_least {
        return false;
    }
    let top = heap.top() as u64;
    let pages = want / PAGE_SIZE;
    let mut mapped = 0;
    while mapped < pages {
        let n = (pages - mapped).min(GROW_CHUNK);
        if let Err(p) = map_fresh(top + mapped * PAGE_SIZE, n) {
            // Out of frames part way: the pages it did map are the heap's
            // all the same (`paging::Partial`).
            mapped += p.mapped;
            break;
        }
        mapped += n;
        crate::arch::x86_64::trap::interrupt_window_once_ready();
    }
    if mapped == 0 {
        return false;
    }
    // SAFETY: `[top, top + mapped pages)` was just mapped and directly
    // follows the heap.
    unsafe { heap.extend((mapped * PAGE_SIZE) as usize) };
    mapped * PAGE_SIZE >= at_least
}

// SAFETY: allocation is delegated to linked_list_allocator under a lock;
// growth maps new memory before handing it over.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let layout = match class_of(layout.size(), layout.align()) {
            Some(class) => {
                if let Some(addr) = self.small.lock().take(class) {
                    return addr as *mut u8;
                }
                // Every small block has its class's layout (rule 1).
                Layout::from_size_align(class_size(class), BLOCK_ALIGN).unwrap_or(layout)
            }
            None => layout,
        };
        let mut heap = self.heap.lock();
        for _ in 0..2 {
            if let Ok(p) = heap.allocate_first_fit(layout) {
                return p.as_ptr();
            }
            let need = (layout.size() + layout.align() + 64) as u64;
            if !grow(&mut heap, need, self.cap.load(Ordering::Relaxed)) {
                break;
            }
        }
        null_mut()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let layout = match class_of(layout.size(), layout.align()) {
            Some(class) => {
                if self.small.lock().put(class, ptr as usize) {
                    return;
                }
                Layout::from_size_align(class_size(class), BLOCK_ALIGN).unwrap_or(layout)
            }
            None => layout,
        };
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (a small
            // request's block was allocated with its class layout).
            unsafe { self.heap.lock().deallocate(p, layout) }
        }
    }
}
