//! Bump allocator for response structures and their strings, in one block
//! of bootloader-reclaimable memory (so the kernel finds them through the
//! HHDM after boot services are gone).

use crate::{fail, phys_slice, Fail, LoadedFile};
use alloc::format;
use capos_bootproto::protocol::LIMINE_FILE_SIZE;
use capos_bootproto::HHDM_OFFSET;
use uefi::Status;

pub struct Arena {
    base: u64,
    len: usize,
    used: usize,
}

impl Arena {
    pub fn new(base: u64, len: usize) -> Arena {
        Arena { base, len, used: 0 }
    }

    /// Reserve `n` zeroed bytes, 8-byte aligned; returns the physical address.
    fn take(&mut self, n: usize) -> Result<u64, Fail> {
        let start = self.used.next_multiple_of(8);
        if start + n > self.len {
            return fail(Status::OUT_OF_RESOURCES, format!("response area full ({} bytes)", self.len));
        }
        self.used = start + n;
        Ok(self.base + start as u64)
    }

    pub fn words(&mut self, words: &[u64]) -> Result<u64, Fail> {
        let at = self.take(words.len() * 8)?;
        let out = phys_slice(at, words.len() * 8);
        for (i, w) in words.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        Ok(at)
    }

    /// A NUL-terminated copy of `s`.
    pub fn cstr(&mut self, s: &str) -> Result<u64, Fail> {
        let at = self.take(s.len() + 1)?;
        let out = phys_slice(at, s.len() + 1);
        out[..s.len()].copy_from_slice(s.as_bytes());
        out[s.len()] = 0;
        Ok(at)
    }

    /// A `struct limine_file` (revision 0) describing `f`.
    pub fn limine_file(&mut self, f: &LoadedFile) -> Result<u64, Fail> {
        let path = self.cstr(&f.path)? + HHDM_OFFSET;
        let cmdline = self.cstr(&f.cmdline)? + HHDM_OFFSET;
        let at = self.take(LIMINE_FILE_SIZE)?;
        let out = phys_slice(at, LIMINE_FILE_SIZE);
        let head = [0u64, f.phys + HHDM_OFFSET, f.size, path, cmdline];
        for (i, w) in head.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        // media_type (generic = 0), tftp, partition, MBR id and GUIDs stay zero.
        Ok(at)
    }
}
