//! The two large buffers: the runtime's heap is 256 KiB, too small for
//! 1 MiB bulk transfers, so they live in .bss and are handed out once.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// One bulk transfer's worth (capos_abi::ipc::MAX_BULK_BYTES).
pub const BIG: usize = 1 << 20;

struct Arena {
    bytes: UnsafeCell<[u8; BIG]>,
    taken: AtomicBool,
}

// SAFETY: the bytes are reachable only through the one `&'static mut`
// that `take` hands out (guarded by `taken`).
unsafe impl Sync for Arena {}

static READ: Arena = Arena { bytes: UnsafeCell::new([0; BIG]), taken: AtomicBool::new(false) };
static DATA: Arena = Arena { bytes: UnsafeCell::new([0; BIG]), taken: AtomicBool::new(false) };

fn take(a: &'static Arena) -> Option<&'static mut [u8]> {
    if a.taken.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: first and only taker (checked above); the arena lives forever.
    Some(unsafe { &mut *a.bytes.get() })
}

/// Room for reads (`read`) and for data being written or expected (`data`).
pub struct Bufs {
    pub read: &'static mut [u8],
    pub data: &'static mut [u8],
}

/// The buffers, once (None on a second call).
pub fn take_all() -> Option<Bufs> {
    Some(Bufs { read: take(&READ)?, data: take(&DATA)? })
}
