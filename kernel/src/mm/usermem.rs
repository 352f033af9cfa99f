//! Checked access to user memory.
//!
//! A `(pointer, length)` from a syscall is untrusted: it may overflow, point
//! into the kernel half, or cover unmapped or read-only pages. Every byte
//! is reached by translating the page through the caller's own page tables
//! (present and user-accessible at every level, writable for output) and
//! copying through the HHDM, so a bad pointer is an error value and the
//! kernel never dereferences a user address (which also keeps SMAP happy).

use super::address_space::{AddressSpace, USER_END};
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
        let mut out = alloc::vec![0u8; self.len];
        self.pieces(space, false, |pa, at, n| {
            // SAFETY: `pa..pa+n` is inside one user page of this space,
            // direct-mapped; `out` has room.
            unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(pa) as *const u8, out[at..].as_mut_ptr(), n) }
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
