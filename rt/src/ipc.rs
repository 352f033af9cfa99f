//! This process's IPC area (`capos_abi::ipc`): where outgoing messages are
//! built in place and incoming ones read in place.
//!
//! A process is one thread, so the runtime owns the area outright: the
//! send buffer is lent out as a [`SendBuffer`], one borrow at a time,
//! built into by one call at a time (and cleared after the syscall, so
//! the next build starts from zeroes), and what the kernel
//! delivered to the receive buffer stays there until the next call or
//! receive. Read a call's results or a received call's params *before*
//! making another call: the next one overwrites them (the typed clients
//! decode before they return, so only `Server` users need to care).

use capos_abi::ipc::{BADGES_IN_OFFSET, CAPS_IN_OFFSET, CAPS_OUT_OFFSET, IPC_AREA_ADDR, RECV_OFFSET, SEND_OFFSET};
use capos_abi::limits::{MAX_CAPS_PER_MESSAGE, MAX_MESSAGE_BYTES};
use capos_abi::Handle;
use core::cell::Cell;

/// The send buffer's borrow state and how many of its bytes may be
/// non-zero (written by a fast-path message that was not cleared).
struct SendState {
    borrowed: Cell<bool>,
    dirty: Cell<usize>,
}

// SAFETY: a capOS process has one thread, and the kernel never runs this
// code concurrently with itself (no signals), so the cells are never
// touched from two places at once.
unsafe impl Sync for SendState {}

static SEND: SendState = SendState { borrowed: Cell::new(false), dirty: Cell::new(0) };

/// The send buffer, borrowed. The IPC area is this process's own memory,
/// mapped at a fixed address, so the runtime hands it out like a
/// `RefCell` does: at most one `SendBuffer` lives at a time (asking for a
/// second while one lives panics), so safe code can never hold two
/// mutable references to it. Dropping it ends the borrow.
pub struct SendBuffer {
    _own: (),
}

impl SendBuffer {
    fn borrow() -> SendBuffer {
        assert!(!SEND.borrowed.replace(true), "the IPC send buffer is already borrowed");
        SendBuffer { _own: () }
    }
}

impl Drop for SendBuffer {
    #[inline]
    fn drop(&mut self) {
        SEND.borrowed.set(false);
    }
}

impl core::ops::Deref for SendBuffer {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the kernel maps the area writable at IPC_AREA_ADDR before
        // the process starts; this guard is the only borrow (see above).
        unsafe { core::slice::from_raw_parts((IPC_AREA_ADDR as usize + SEND_OFFSET) as *const u8, MAX_MESSAGE_BYTES) }
    }
}

impl core::ops::DerefMut for SendBuffer {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut((IPC_AREA_ADDR as usize + SEND_OFFSET) as *mut u8, MAX_MESSAGE_BYTES) }
    }
}

/// The send buffer, zeroed (what `build_flat` needs).
pub fn send_buffer() -> SendBuffer {
    let mut buf = SendBuffer::borrow();
    let dirty = SEND.dirty.replace(0);
    if dirty > 0 {
        capos_abi::message::clear(&mut buf, dirty);
    }
    buf
}

/// Record that the first `len` bytes of the send buffer were written by a
/// writer that does not need zeroes (`small_struct::write`) and not cleared.
#[inline]
pub(crate) fn send_dirty(len: usize) {
    if len > SEND.dirty.get() {
        SEND.dirty.set(len);
    }
}

/// The send buffer as it is (for writers that write every byte).
#[inline]
pub(crate) fn send_buffer_raw() -> SendBuffer {
    SendBuffer::borrow()
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

/// The badges of the handles a received call transferred
/// (`capos_abi::ipc::BADGES_IN_OFFSET`: a client of the receiving
/// endpoint has its badge, anything else 0), copied out.
pub(crate) fn badges_in(n: u8) -> [u64; MAX_CAPS_PER_MESSAGE] {
    let n = (n as usize).min(MAX_CAPS_PER_MESSAGE);
    let mut out = [0u64; MAX_CAPS_PER_MESSAGE];
    // SAFETY: BADGES_IN lies in the mapped header page; any u64 is valid.
    unsafe { core::ptr::copy_nonoverlapping((IPC_AREA_ADDR as usize + BADGES_IN_OFFSET) as *const u64, out.as_mut_ptr(), n) };
    out
}

/// The handles the kernel installed with the last results or call (a view
/// of CAPS_IN; the next call or receive overwrites it).
pub(crate) fn caps_in(n: u8) -> &'static [Handle] {
    let n = (n as usize).min(MAX_CAPS_PER_MESSAGE);
    // SAFETY: CAPS_IN lies in the mapped header page; Handle is a
    // repr(transparent) u64, and any u64 is a (maybe invalid) handle.
    unsafe { core::slice::from_raw_parts((IPC_AREA_ADDR as usize + CAPS_IN_OFFSET) as *const Handle, n) }
}
