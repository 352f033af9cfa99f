//! Per-process IPC areas (layout: `capos_abi::ipc`).
//!
//! Each process gets one physically contiguous run of frames, mapped into
//! its address space at `IPC_AREA_ADDR` and reached by the kernel through
//! the direct map. Contiguity is the point: the kernel reads a caller's
//! params, writes a caller's results and copies a message between two
//! processes with plain slices, no page-table walk and no user-pointer
//! check on the call path (the area's bounds are fixed, so there is
//! nothing to check).
//!
//! Aliasing: the process may write its send buffer and header at any time
//! it runs; the kernel reads them only inside a syscall, with interrupts
//! off, on the one CPU that runs processes, so the process cannot run (and
//! change them) while the kernel holds a slice. The receive buffer is
//! mapped read-only to the process.

use super::frames;
use super::phys_to_virt;
use capos_abi::ipc::{AREA_BYTES, AREA_PAGES, BADGES_IN_OFFSET, CAPS_IN_OFFSET, CAPS_OUT_OFFSET, RECV_OFFSET, SEND_OFFSET};
use capos_abi::limits::{MAX_CAPS_PER_MESSAGE, MAX_MESSAGE_BYTES};

/// The frames of one process's IPC area; freed on drop.
pub struct IpcArea {
    phys: u64,
}

impl IpcArea {
    /// A zeroed area, or `None` when no contiguous run is free.
    pub fn new() -> Option<IpcArea> {
        let phys = frames::alloc_contiguous(AREA_PAGES as u64, 1)?;
        // SAFETY: the run was just allocated to us and is direct-mapped.
        unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, AREA_BYTES) };
        Some(IpcArea { phys })
    }

    /// Physical address of the first frame (the header page).
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// A handle for the syscall path. It is valid while this area lives:
    /// the kernel only uses views of the current process and of processes
    /// blocked in IPC, neither of which can be reaped during the syscall.
    pub fn view(&self) -> IpcView {
        IpcView { base: phys_to_virt(self.phys) as *mut u8 }
    }
}

impl Drop for IpcArea {
    fn drop(&mut self) {
        for i in 0..AREA_PAGES as u64 {
            let _ = frames::free(self.phys + i * super::PAGE_SIZE);
        }
    }
}

/// The kernel's view of an IPC area (see [`IpcArea::view`]).
#[derive(Clone, Copy)]
pub struct IpcView {
    base: *mut u8,
}

// SAFETY: a view is a direct-map address; the kernel runs processes on one
// CPU with interrupts off, so views are never used concurrently.
unsafe impl Send for IpcView {}

impl IpcView {
    /// The first `n` handles of the outgoing array (`n` ≤ 16, checked by
    /// the caller's `CallWord`/`ReplyWord` decoding; clamped here).
    pub fn caps_out(&self, n: usize) -> [u64; MAX_CAPS_PER_MESSAGE] {
        let mut out = [0u64; MAX_CAPS_PER_MESSAGE];
        let n = n.min(MAX_CAPS_PER_MESSAGE);
        // SAFETY: CAPS_OUT lies in the header page of a live area; the
        // process may have written anything there, and any u64 is valid.
        unsafe { core::ptr::copy_nonoverlapping(self.base.add(CAPS_OUT_OFFSET) as *const u64, out.as_mut_ptr(), n) };
        out
    }

    /// Write the incoming handle array.
    pub fn set_caps_in(&self, handles: &[u64]) {
        let n = handles.len().min(MAX_CAPS_PER_MESSAGE);
        // SAFETY: CAPS_IN lies in the header page of a live area.
        unsafe { core::ptr::copy_nonoverlapping(handles.as_ptr(), self.base.add(CAPS_IN_OFFSET) as *mut u64, n) };
    }

    /// Write the badges of the incoming handles (a received call's).
    pub fn set_badges_in(&self, badges: &[u64]) {
        let n = badges.len().min(MAX_CAPS_PER_MESSAGE);
        // SAFETY: BADGES_IN lies in the header page of a live area.
        unsafe { core::ptr::copy_nonoverlapping(badges.as_ptr(), self.base.add(BADGES_IN_OFFSET) as *mut u64, n) };
    }

    /// The first `len` bytes of the send buffer (`len` ≤ the buffer).
    pub fn send(&self, len: usize) -> &[u8] {
        let len = len.min(MAX_MESSAGE_BYTES);
        // SAFETY: inside the send buffer of a live area (module docs for
        // why no one writes it while this slice lives).
        unsafe { core::slice::from_raw_parts(self.base.add(SEND_OFFSET), len) }
    }

    /// The whole receive buffer, for the kernel to write.
    #[allow(clippy::mut_from_ref)]
    pub fn recv_mut(&self) -> &mut [u8] {
        // SAFETY: inside the receive buffer of a live area, which the
        // process cannot write; callers hold one such slice at a time.
        unsafe { core::slice::from_raw_parts_mut(self.base.add(RECV_OFFSET), MAX_MESSAGE_BYTES) }
    }

    /// Copy this area's first `len` sent bytes into `to`'s receive buffer.
    pub fn copy_message(&self, to: &IpcView, len: usize) {
        let len = len.min(MAX_MESSAGE_BYTES);
        // Most messages are a few words (capnp messages are whole words):
        // straight-line word moves, one jump on the count, rather than a
        // loop or a memcpy call.
        // SAFETY (each arm): at most 64 bytes, in bounds of both buffers;
        // the areas are page aligned, so the words are aligned.
        unsafe {
            match len {
                8 => self.copy_words::<1>(to),
                16 => self.copy_words::<2>(to),
                24 => self.copy_words::<3>(to),
                32 => self.copy_words::<4>(to),
                40 => self.copy_words::<5>(to),
                48 => self.copy_words::<6>(to),
                56 => self.copy_words::<7>(to),
                64 => self.copy_words::<8>(to),
                0 => {}
                // SAFETY: both ranges are in bounds of live areas, and a
                // send buffer never overlaps a receive buffer (even in the
                // same area).
                _ => core::ptr::copy_nonoverlapping(self.base.add(SEND_OFFSET), to.base.add(RECV_OFFSET), len),
            }
        }
    }

    /// The first `N` words of the send buffer into `to`'s receive buffer.
    ///
    /// # Safety
    /// `N * 8` must be at most both buffers' size.
    #[inline(always)]
    unsafe fn copy_words<const N: usize>(&self, to: &IpcView) {
        // SAFETY: forwarded; word aligned (see copy_message).
        unsafe {
            let w = (self.base.add(SEND_OFFSET) as *const [u64; N]).read();
            (to.base.add(RECV_OFFSET) as *mut [u64; N]).write(w);
        }
    }
}
