//! This process's IPC area (`capos_abi::ipc`): where outgoing messages are
//! built in place and incoming ones read in place.
//!
//! A process is one thread, so the runtime owns the area outright: the
//! send buffer is built into by one call at a time (and cleared after the
//! syscall, so the next build starts from zeroes), and what the kernel
//! delivered to the receive buffer stays there until the next call or
//! receive. Read a call's results or a received call's params *before*
//! making another call: the next one overwrites them (the typed clients
//! decode before they return, so only `Server` users need to care).

use capos_abi::ipc::{CAPS_IN_OFFSET, CAPS_OUT_OFFSET, IPC_AREA_ADDR, RECV_OFFSET, SEND_OFFSET};
use capos_abi::limits::{MAX_CAPS_PER_MESSAGE, MAX_MESSAGE_BYTES};
use capos_abi::Handle;

/// Bytes of the send buffer that may be non-zero (written by a fast-path
/// message that was not cleared); [`send_buffer`] clears them first.
static SEND_DIRTY: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The send buffer, zeroed (what `build_flat` needs).
pub fn send_buffer() -> &'static mut [u8] {
    let buf = send_buffer_raw();
    let dirty = SEND_DIRTY.swap(0, core::sync::atomic::Ordering::Relaxed);
    if dirty > 0 {
        capos_abi::message::clear(buf, dirty);
    }
    buf
}

/// Record that the first `len` bytes of the send buffer were written by a
/// writer that does not need zeroes (`small_struct::write`) and not cleared.
#[inline]
pub(crate) fn send_dirty(len: usize) {
    // One thread: a plain load and store, no read-modify-write.
    if len > SEND_DIRTY.load(core::sync::atomic::Ordering::Relaxed) {
        SEND_DIRTY.store(len, core::sync::atomic::Ordering::Relaxed);
    }
}

/// The send buffer as it is (for writers that write every byte).
pub(crate) fn send_buffer_raw() -> &'static mut [u8] {
    // SAFETY: the kernel maps the area writable at IPC_AREA_ADDR before the
    // process starts; one thread, and callers do not hold two of these.
    unsafe { core::slice::from_raw_parts_mut((IPC_AREA_ADDR as usize + SEND_OFFSET) as *mut u8, MAX_MESSAGE_BYTES) }
}

/// The first `len` bytes of the receive buffer.
pub(crate) fn received(len: usize) -> &'static [u8] {
    // SAFETY: mapped read-only at IPC_AREA_ADDR; the kernel writes it only
    // inside a syscall of this (single-threaded) process.
    unsafe { core::slice::from_raw_parts((IPC_AREA_ADDR as usize + RECV_OFFSET) as *const u8, len.min(MAX_MESSAGE_BYTES)) }
}

/// Set the handles the next call or reply transfers.
pub(crate) fn set_caps_out(caps: &[Handle]) {
    let base = (IPC_AREA_ADDR as usize + CAPS_OUT_OFFSET) as *mut u64;
    for (i, h) in caps.iter().take(MAX_CAPS_PER_MESSAGE).enumerate() {
        // SAFETY: within the writable header page.
        unsafe { base.add(i).write(h.raw()) };
    }
}

/// The handles the kernel installed with the last results or call (a view
/// of CAPS_IN; the next call or receive overwrites it).
pub(crate) fn caps_in(n: u8) -> &'static [Handle] {
    let n = (n as usize).min(MAX_CAPS_PER_MESSAGE);
    // SAFETY: CAPS_IN lies in the mapped header page; Handle is a
    // repr(transparent) u64, and any u64 is a (maybe invalid) handle.
    unsafe { core::slice::from_raw_parts((IPC_AREA_ADDR as usize + CAPS_IN_OFFSET) as *const Handle, n) }
}
