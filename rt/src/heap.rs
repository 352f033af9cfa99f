//! The process heap: a fixed arena in .bss (the kernel has no memory-
//! mapping call yet), managed by `linked_list_allocator`, with the small
//! block cache of `capos_abi::small_blocks` in front (the call path's one
//! small allocation per message skips the first-fit walk).

use capos_abi::small_blocks::{class_of, class_size, SmallBlocks, BLOCK_ALIGN};
use core::alloc::{GlobalAlloc, Layout};
use linked_list_allocator::LockedHeap;
use spin::Mutex;

/// 1 MiB: room for a full bulk buffer (`capos_abi::ipc::MAX_BULK_BYTES`
/// is 1 MiB, storage clients move 128 KiB chunks) beside everything else.
const HEAP_BYTES: usize = 1024 * 1024;

#[repr(align(4096))]
#[allow(dead_code)] // only its address is used
struct Arena([u8; HEAP_BYTES]);

static mut ARENA: Arena = Arena([0; HEAP_BYTES]);

struct ProcessHeap {
    heap: LockedHeap,
    small: Mutex<SmallBlocks>,
}

#[global_allocator]
static ALLOCATOR: ProcessHeap = ProcessHeap { heap: LockedHeap::empty(), small: Mutex::new(SmallBlocks::new()) };

pub fn init() {
    // SAFETY: called once at start, before any allocation; the arena is
    // used by nothing else.
    unsafe { ALLOCATOR.heap.lock().init(core::ptr::addr_of_mut!(ARENA) as *mut u8, HEAP_BYTES) };
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
