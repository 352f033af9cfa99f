//! The process heap: a fixed arena in .bss (the kernel has no memory-
//! mapping call yet), managed by `linked_list_allocator`.

use linked_list_allocator::LockedHeap;

const HEAP_BYTES: usize = 256 * 1024;

#[repr(align(4096))]
#[allow(dead_code)] // only its address is used
struct Arena([u8; HEAP_BYTES]);

static mut ARENA: Arena = Arena([0; HEAP_BYTES]);

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

pub fn init() {
    // SAFETY: called once at start, before any allocation; the arena is
    // used by nothing else.
    unsafe { ALLOCATOR.lock().init(core::ptr::addr_of_mut!(ARENA) as *mut u8, HEAP_BYTES) };
}
