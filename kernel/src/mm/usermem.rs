//! Checked access to user memory.
//!
//! A `(pointer, length)` from a syscall is untrusted: it may overflow, point
//! into the kernel half, or cover unmapped or read-only pages. Every byte
//! is reached by translating the page through the caller's own page tables
//! (present and user-accessible at every level, writable for output) and
//! copying through the HHDM, so a bad pointer is an error value and the
//! kernel never dereferences a user address (which also keeps SMAP happy).

use super::address_space::{AddressSpace, USER_END};
use crate::arch::x86_64::trap::interrupt_window;
use crate::mm::{phys_to_virt, PAGE_SIZE};
use alloc::vec::Vec;
use capos_abi::SysError;

/// A validated range of user memory.
pub struct UserSlice {
    addr: u64,
    len: usize,
}

impl UserSlice {
    /// Check the range's arithmetic and that it lies in the user half.
    pub fn new(addr: u64, len: u64) -> Result<UserSlice, SysError> {
        let end = addr.checked_add(len).ok_or(SysError::BadAddress)?;
        if end > USER_END || (len > 0 && addr < PAGE_SIZE) {
            return Err(SysError::BadAddress);
        }
        Ok(UserSlice { addr, len: len as usize })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Visit each page piece as (physical address, length); fail if any
    /// page is not mapped for user mode (or not writable when `write`).
    /// An interrupt window after each: a kernel object's call copies a
    /// bulk buffer of up to 1 MiB here with interrupts off
    /// (docs/interrupts-off.md).
    fn pieces(&self, space: &AddressSpace, write: bool, mut f: impl FnMut(u64, usize, usize)) -> Result<(), SysError> {
        let mut done = 0usize;
        while done < self.len {
            let va = self.addr + done as u64;
            let n = ((PAGE_SIZE - va % PAGE_SIZE) as usize).min(self.len - done);
            let (pa, writable) = space.translate_user(va).ok_or(SysError::BadAddress)?;
            if write && !writable {
                return Err(SysError::BadAddress);
            }
            f(pa, done, n);
            done += n;
            interrupt_window();
        }
        Ok(())
    }

    /// Fail unless every page is mapped (writable if `write`).
    pub fn check(&self, space: &AddressSpace, write: bool) -> Result<(), SysError> {
        if self.len == 0 || space.check_user(self.addr, self.len, write) {
            Ok(())
        } else {
            Err(SysError::BadAddress)
        }
    }


    pub fn read(&self, space: &AddressSpace) -> Result<Vec<u8>, SysError> {
        self.check(space, false)?;
        // Not cleared first: every byte is copied in, in order.
        let mut out: Vec<u8> = Vec::with_capacity(self.len);
        self.pieces(space, false, |pa, at, n| {
            // SAFETY: `pa..pa+n` is inside one user page of this space,
            // direct-mapped; the pieces come in order (`at == out.len()`)
            // and add up to at most `self.len`, the capacity reserved, so
            // the copy lands in reserved room and every byte up to the new
            // length has been written.
            unsafe {
                core::ptr::copy_nonoverlapping(phys_to_virt(pa) as *const u8, out.as_mut_ptr().add(at), n);
                out.set_len(at + n);
            }
        })?;
        Ok(out)
    }

    /// Write `data` (at most `len` bytes) at the start of the range.
    pub fn write(&self, space: &AddressSpace, data: &[u8]) -> Result<(), SysError> {
        if data.len() > self.len {
            return Err(SysError::BufferTooSmall);
        }
        let target = UserSlice { addr: self.addr, len: data.len() };
        target.check(space, true)?;
        target.pieces(space, true, |pa, at, n| {
            // SAFETY: as in `read`, for a writable user page.
            unsafe { core::ptr::copy_nonoverlapping(data[at..].as_ptr(), phys_to_virt(pa) as *mut u8, n) }
        })
    }
}

impl UserSlice {
    /// The physical address of the first `len` bytes of the range when
    /// they are one physically contiguous run of user pages (writable if
    /// `write`) off the IPC area; `None` when scattered or on the area.
    fn contiguous(&self, space: &AddressSpace, len: usize, write: bool) -> Result<Option<u64>, SysError> {
        if len > self.len {
            return Err(SysError::BufferTooSmall);
        }
        let area = capos_abi::ipc::IPC_AREA_ADDR..capos_abi::ipc::IPC_AREA_ADDR + capos_abi::ipc::AREA_BYTES as u64;
        if len == 0 || (self.addr < area.end && self.addr + len as u64 > area.start) {
            return Ok(None);
        }
        let mut pieces = space.pieces(self.addr, len, write);
        let Some((base, mut n)) = pieces.next(usize::MAX).map_err(|_| SysError::BadAddress)? else { return Ok(None) };
        while let Some((pa, m)) = pieces.next(usize::MAX).map_err(|_| SysError::BadAddress)? {
            if pa != base + n as u64 {
                return Ok(None);
            }
            n += m;
        }
        Ok(Some(base))
    }

    /// Run `f` over the first `len` bytes of the range as one slice, in
    /// place, when their pages are writable user pages that are physically
    /// contiguous (as `AddressSpace::map_new` lays out a program's
    /// segments whenever the frame allocator has a run): a caller's bulk
    /// buffer then receives a device's DMA and an engine's bytes where it
    /// lies, with no kernel buffer and no copy. `Ok(None)` (and `f` not
    /// run) when the pages are scattered, the range touches the IPC area
    /// or `len` is 0; `Err` when a page is not mapped writable for the
    /// user.
    ///
    /// The caller must keep `space` alive for the call (a process's
    /// syscall holds its space) and the range must be this process's
    /// memory for the duration of its own syscall: the one thread that
    /// could touch it is blocked in that syscall.
    pub fn with_contiguous_mut<R>(&self, space: &AddressSpace, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<Option<R>, SysError> {
        let Some(base) = self.contiguous(space, len, true)? else { return Ok(None) };
        // SAFETY: `base..base + len` is one run of frames mapped writable
        // for the user in `space` (`contiguous`), direct-mapped, and not
        // the IPC area (the one user mapping of frames the kernel also
        // reads and writes on its own: `AddressSpace::map_frames`). Every
        // other frame of a space is its own (`map_new`) and is written by
        // the kernel only on behalf of its process: in that process's
        // syscalls, or by a delivery while it waits in a receive or for a
        // reply. Its only thread is in this syscall, so for the life of
        // the slice nothing else reads or writes these bytes, and the
        // caller keeps `space` (and so the frames) alive.
        let buf = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(base) as *mut u8, len) };
        Ok(Some(f(buf)))
    }

    /// [`with_contiguous_mut`](Self::with_contiguous_mut) for reading: `f`
    /// sees the bytes where they lie (a write's data goes from the
    /// caller's pages to the engine and the device's DMA with no copy).
    pub fn with_contiguous<R>(&self, space: &AddressSpace, len: usize, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, SysError> {
        let Some(base) = self.contiguous(space, len, false)? else { return Ok(None) };
        // SAFETY: as in `with_contiguous_mut`, for user pages that need
        // not be writable: nothing writes them while the slice lives.
        let buf = unsafe { core::slice::from_raw_parts(phys_to_virt(base) as *const u8, len) };
        Ok(Some(f(buf)))
    }
}

/// Copy `len` bytes from user memory of one space to user memory of
/// another (or the same), page piece by page piece through the direct map:
/// the bulk path of an endpoint call. Both ranges are checked as they go
/// (present and user at every level, the destination writable); callers
/// that must not leave a partial copy check both with [`UserSlice::check`]
/// first.
///
/// `src_writable`: the source must be writable too (a call's buffer that
/// the server may also answer into is checked as it is read, so the call
/// needs no separate pass over it).
pub fn copy_user(src_space: &AddressSpace, src: u64, dst_space: &AddressSpace, dst: u64, len: usize, src_writable: bool) -> Result<(), SysError> {
    UserSlice::new(src, len as u64)?;
    UserSlice::new(dst, len as u64)?;
    let mut s = src_space.pieces(src, len, src_writable);
    let mut d = dst_space.pieces(dst, len, true);
    let (mut sp, mut sn, mut dp, mut dn) = (0u64, 0usize, 0u64, 0usize);
    loop {
        if sn == 0 {
            match s.next(usize::MAX).map_err(|_| SysError::BadAddress)? {
                Some((pa, n)) => (sp, sn) = (pa, n),
                None => return Ok(()),
            }
        }
        if dn == 0 {
            match d.next(usize::MAX).map_err(|_| SysError::BadAddress)? {
                Some((pa, n)) => (dp, dn) = (pa, n),
                None => return Ok(()),
            }
        }
        let n = sn.min(dn);
        // SAFETY: both pieces are inside user pages of live spaces,
        // direct-mapped; they may only overlap if they are the same
        // memory, which `copy` (memmove) handles.
        unsafe { core::ptr::copy(phys_to_virt(sp) as *const u8, phys_to_virt(dp) as *mut u8, n) };
        (sp, sn, dp, dn) = (sp + n as u64, sn - n, dp + n as u64, dn - n);
    }
}
