//! Checks on the kernel ELF and the load plan derived from it.
//!
//! The protocol only supports higher-half kernels (at or above
//! 0xffffffff80000000). We load the whole span of PT_LOAD segments into one
//! physically contiguous block so that `virtual - virtual_base + physical_base`
//! translates any kernel address, as the Executable Address response promises.
//! Every segment gets its own permissions, so two segments may not share a
//! page, and no segment may be both writable and executable (W^X).

use crate::{KERNEL_MIN_VADDR, PAGE_SIZE};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use elf::abi;
use elf::endian::LittleEndian;
use elf::ElfBytes;

/// One PT_LOAD segment, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub writable: bool,
    pub executable: bool,
}

impl Segment {
    pub fn first_page(&self) -> u64 {
        self.vaddr & !(PAGE_SIZE - 1)
    }
    /// One past the last page (page aligned).
    pub fn end_page(&self) -> u64 {
        (self.vaddr + self.mem_size + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
    }
}

/// What the loader needs to place the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    pub entry: u64,
    /// Page-aligned lowest virtual address of any segment.
    pub virt_base: u64,
    /// Bytes from `virt_base` to the end of the highest segment, page aligned.
    pub span: u64,
    pub segments: Vec<Segment>,
}

/// Upper bound on the loaded size; a kernel this big is a broken file.
pub const MAX_KERNEL_SPAN: u64 = 1 << 30;

/// Validate `bytes` as a loadable higher-half x86_64 kernel.
pub fn check(bytes: &[u8]) -> Result<KernelImage, String> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(String::from("not an ELF file (bad magic)"));
    }
    let file = ElfBytes::<LittleEndian>::minimal_parse(bytes)
        .map_err(|e| format!("malformed ELF header: {}", e))?;
    let h = &file.ehdr;
    if h.class != elf::file::Class::ELF64 {
        return Err(String::from("not a 64-bit ELF"));
    }
    if h.e_machine != abi::EM_X86_64 {
        return Err(format!("ELF machine is {}, not x86_64", h.e_machine));
    }
    match h.e_type {
        abi::ET_EXEC => {}
        abi::ET_DYN => return Err(String::from("position-independent kernels are not supported by this loader")),
        t => return Err(format!("ELF type {} is not an executable", t)),
    }
    if h.e_entry < KERNEL_MIN_VADDR {
        return Err(format!(
            "entry point {:#x} is in the lower half; the Limine protocol needs kernels at or above {:#x}",
            h.e_entry, KERNEL_MIN_VADDR
        ));
    }
    let phdrs = file
        .segments()
        .ok_or_else(|| String::from("no program headers"))?;
    let mut segments = Vec::new();
    for (i, ph) in phdrs.iter().enumerate() {
        if ph.p_type != abi::PT_LOAD {
            continue;
        }
        if ph.p_memsz == 0 {
            continue;
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(format!("segment {}: file size {:#x} exceeds memory size {:#x}", i, ph.p_filesz, ph.p_memsz));
        }
        let file_end = ph.p_offset.checked_add(ph.p_filesz);
        if file_end.map_or(true, |end| end > bytes.len() as u64) {
            return Err(format!("segment {}: file range {:#x}+{:#x} is outside the file", i, ph.p_offset, ph.p_filesz));
        }
        if ph.p_vaddr < KERNEL_MIN_VADDR {
            return Err(format!(
                "segment {} at {:#x} is in the lower half; the Limine protocol needs kernels at or above {:#x}",
                i, ph.p_vaddr, KERNEL_MIN_VADDR
            ));
        }
        if ph.p_vaddr.checked_add(ph.p_memsz).map_or(true, |e| e.checked_add(PAGE_SIZE).is_none()) {
            return Err(format!("segment {}: address range overflows", i));
        }
        let writable = ph.p_flags & abi::PF_W != 0;
        let executable = ph.p_flags & abi::PF_X != 0;
        if writable && executable {
            return Err(format!("segment {} at {:#x} is both writable and executable (W^X refused)", i, ph.p_vaddr));
        }
        segments.push(Segment {
            vaddr: ph.p_vaddr,
            mem_size: ph.p_memsz,
            file_offset: ph.p_offset,
            file_size: ph.p_filesz,
            writable,
            executable,
        });
    }
    if segments.is_empty() {
        return Err(String::from("no loadable segments"));
    }
    segments.sort_by_key(|s| s.vaddr);
    for pair in segments.windows(2) {
        if pair[0].end_page() > pair[1].first_page() {
            return Err(format!(
                "segments at {:#x} and {:#x} share a page; each needs its own permissions",
                pair[0].vaddr, pair[1].vaddr
            ));
        }
    }
    let virt_base = segments[0].first_page();
    let span = segments.last().map(|s| s.end_page()).unwrap_or(virt_base) - virt_base;
    if span > MAX_KERNEL_SPAN {
        return Err(format!("segments span {:#x} bytes, more than the {:#x} allowed", span, MAX_KERNEL_SPAN));
    }
    if !segments
        .iter()
        .any(|s| s.executable && h.e_entry >= s.vaddr && h.e_entry < s.vaddr + s.mem_size)
    {
        return Err(format!("entry point {:#x} is not inside an executable segment", h.e_entry));
    }
    Ok(KernelImage { entry: h.e_entry, virt_base, span, segments })
}

/// Copy the segments of `bytes` into `image`, a zeroed buffer of `span` bytes
/// that will live at `virt_base`.
pub fn copy_segments(kernel: &KernelImage, bytes: &[u8], image: &mut [u8]) {
    for s in &kernel.segments {
        let at = (s.vaddr - kernel.virt_base) as usize;
        let from = s.file_offset as usize;
        let n = s.file_size as usize;
        image[at..at + n].copy_from_slice(&bytes[from..from + n]);
        image[at + n..at + s.mem_size as usize].fill(0);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub struct Ph {
        pub vaddr: u64,
        pub offset: u64,
        pub filesz: u64,
        pub memsz: u64,
        pub flags: u32,
    }

    /// Build a minimal ELF64 executable with the given PT_LOAD headers.
    pub fn build_elf(entry: u64, e_type: u16, machine: u16, phs: &[Ph], total_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; total_len.max(64 + 56 * phs.len())];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little endian
        b[6] = 1; // version
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        b[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        b[58..60].copy_from_slice(&64u16.to_le_bytes()); // shentsize
        for (i, p) in phs.iter().enumerate() {
            let o = 64 + 56 * i;
            b[o..o + 4].copy_from_slice(&abi::PT_LOAD.to_le_bytes());
            b[o + 4..o + 8].copy_from_slice(&p.flags.to_le_bytes());
            b[o + 8..o + 16].copy_from_slice(&p.offset.to_le_bytes());
            b[o + 16..o + 24].copy_from_slice(&p.vaddr.to_le_bytes());
            b[o + 24..o + 32].copy_from_slice(&p.vaddr.to_le_bytes());
            b[o + 32..o + 40].copy_from_slice(&p.filesz.to_le_bytes());
            b[o + 40..o + 48].copy_from_slice(&p.memsz.to_le_bytes());
            b[o + 48..o + 56].copy_from_slice(&4096u64.to_le_bytes());
        }
        b
    }

    const K: u64 = 0xffff_ffff_8000_0000;
    const RX: u32 = abi::PF_R | abi::PF_X;
    const RW: u32 = abi::PF_R | abi::PF_W;

    fn good() -> Vec<u8> {
        build_elf(
            K + 0x10,
            abi::ET_EXEC,
            abi::EM_X86_64,
            &[
                Ph { vaddr: K, offset: 0x1000, filesz: 0x100, memsz: 0x100, flags: RX },
                Ph { vaddr: K + 0x1000, offset: 0x2000, filesz: 0x10, memsz: 0x3000, flags: RW },
            ],
            0x3000,
        )
    }

    #[test]
    fn accepts_a_good_kernel_and_copies_it() {
        let mut bytes = good();
        bytes[0x1000] = 0xaa;
        bytes[0x2000] = 0xbb;
        let k = check(&bytes).unwrap();
        assert_eq!(k.entry, K + 0x10);
        assert_eq!(k.virt_base, K);
        assert_eq!(k.span, 0x4000);
        assert_eq!(k.segments.len(), 2);
        assert!(k.segments[0].executable && !k.segments[0].writable);
        let mut image = vec![0x55u8; k.span as usize];
        copy_segments(&k, &bytes, &mut image);
        assert_eq!(image[0], 0xaa);
        assert_eq!(image[0x1000], 0xbb);
        assert_eq!(image[0x1010], 0, "bss must be zeroed");
        assert_eq!(image[0x3fff], 0, "bss must be zeroed to the end");
    }

    fn rejected(bytes: &[u8], needle: &str) {
        let e = check(bytes).expect_err("should be rejected");
        assert!(e.contains(needle), "error '{}' should mention '{}'", e, needle);
    }

    #[test]
    fn rejects_bad_kernels_with_reasons() {
        rejected(b"MZ\x90\x00 this is a PE file", "not an ELF");
        rejected(&good()[..40], "malformed");
        let lower = build_elf(0x100000, abi::ET_EXEC, abi::EM_X86_64,
            &[Ph { vaddr: 0x100000, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RX }], 0x2000);
        rejected(&lower, "lower half");
        let lower_seg = build_elf(K, abi::ET_EXEC, abi::EM_X86_64,
            &[Ph { vaddr: K, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RX },
              Ph { vaddr: 0x200000, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RW }], 0x2000);
        rejected(&lower_seg, "lower half");
        let wx = build_elf(K, abi::ET_EXEC, abi::EM_X86_64,
            &[Ph { vaddr: K, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RX | abi::PF_W }], 0x2000);
        rejected(&wx, "W^X");
        let arm = build_elf(K, abi::ET_EXEC, abi::EM_AARCH64,
            &[Ph { vaddr: K, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RX }], 0x2000);
        rejected(&arm, "not x86_64");
        let pie = build_elf(K, abi::ET_DYN, abi::EM_X86_64,
            &[Ph { vaddr: K, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RX }], 0x2000);
        rejected(&pie, "position-independent");
        let outside = build_elf(K, abi::ET_EXEC, abi::EM_X86_64,
            &[Ph { vaddr: K, offset: 0x1000, filesz: 0x5000, memsz: 0x5000, flags: RX }], 0x2000);
        rejected(&outside, "outside the file");
        let shared = build_elf(K, abi::ET_EXEC, abi::EM_X86_64,
            &[Ph { vaddr: K, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RX },
              Ph { vaddr: K + 0x800, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RW }], 0x2000);
        rejected(&shared, "share a page");
        let entry_in_data = build_elf(K + 0x1000, abi::ET_EXEC, abi::EM_X86_64,
            &[Ph { vaddr: K, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RX },
              Ph { vaddr: K + 0x1000, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: RW }], 0x2000);
        rejected(&entry_in_data, "not inside an executable segment");
        let overflow = build_elf(K, abi::ET_EXEC, abi::EM_X86_64,
            &[Ph { vaddr: u64::MAX - 0x10, offset: 0x1000, filesz: 0x10, memsz: 0x100, flags: RX }], 0x2000);
        rejected(&overflow, "overflow");
        let filesz_big = build_elf(K, abi::ET_EXEC, abi::EM_X86_64,
            &[Ph { vaddr: K, offset: 0x1000, filesz: 0x20, memsz: 0x10, flags: RX }], 0x2000);
        rejected(&filesz_big, "exceeds memory size");
    }

    #[test]
    fn no_panic_on_any_truncation_or_byte_flip() {
        let bytes = good();
        for n in 0..200 {
            let _ = check(&bytes[..n]);
        }
        for i in 0..200 {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let _ = check(&b);
            }
        }
    }
}
