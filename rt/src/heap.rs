//! The process heap: a fixed arena in .bss (the kernel has no memory-
//! mapping call yet), managed by `linked_list_allocator`, with the small
//! block cache of `capos_abi::small_blocks` in front (the call path's one
//! small allocation per message skips the first-fit walk).

use capos_abi::small_blocks::{class_of, class_size, SmallBlocks, BLOCK_ALIGN};
use core::alloc::{GlobalAlloc, Layout};
use linked_list_allocator::LockedHeap;
use spin::Mutex;

/// The default heap, 1 MiB: room for a full bulk buffer
/// (`capos_abi::ipc::MAX_BULK_BYTES` is 1 MiB, storage clients move 128 KiB
/// chunks) beside everything else. A program that needs more says so with
/// `entry!(main, heap = BYTES)`, which declares its own arena.
pub const DEFAULT_HEAP_BYTES: usize = 1024 * 1024;

/// A heap arena in .bss (page-aligned). Only its address is used.
#[repr(align(4096))]
pub struct Arena<const N: usize>(pub [u8; N]);

extern "Rust" {
    /// The program's arena, declared by [`crate::entry!`].
    fn capos_heap_arena() -> (*mut u8, usize);
}

struct ProcessHeap {
    heap: LockedHeap,
    small: Mutex<SmallBlocks>,
}

#[global_allocator]
static ALLOCATOR: ProcessHeap = ProcessHeap { heap: LockedHeap::empty(), small: Mutex::new(SmallBlocks::new()) };

pub fn init() {
    // SAFETY: called once at start, before any allocation; the arena the
    // entry macro declared is used by nothing else.
    unsafe {
        let (base, len) = capos_heap_arena();
        ALLOCATOR.heap.lock().init(base, len)
    };
}

/// A small request's block layout (every small block has its class's).
fn block_layout(class: usize, layout: Layout) -> Layout {
    Layout::from_size_align(class_size(class), BLOCK_ALIGN).unwrap_or(layout)
}

// SAFETY: delegates to linked_list_allocator; cached blocks are blocks it
// handed out with the class layout and that were freed by their owner.
unsafe impl GlobalAlloc for ProcessHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let layout = match class_of(layout.size(), layout.align()) {
            Some(class) => match self.small.lock().take(class) {
                Some(addr) => return addr as *mut u8,
                None => block_layout(class, layout),
            },
            None => layout,
        };
        // SAFETY: forwarded.
        unsafe { self.heap.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let layout = match class_of(layout.size(), layout.align()) {
            Some(class) if self.small.lock().put(class, ptr as usize) => return,
            Some(class) => block_layout(class, layout),
            None => layout,
        };
        // SAFETY: `ptr` came from `alloc` with this (class) layout.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}
