//! Validation of userspace ELF binaries (boot modules) and the load plan
//! derived from them.
//!
//! A boot module is untrusted input as far as the loader is concerned: a
//! broken or hostile binary must be refused with a reason, never map over
//! the kernel, never read past its own bytes, and never panic the kernel.
//! What is accepted:
//!
//! - 64-bit, little-endian, x86_64, `ET_EXEC` (static, linked at fixed
//!   addresses; no interpreter, no dynamic section);
//! - `PT_LOAD` segments entirely in the user half, at or above
//!   [`USER_MIN_VADDR`] (page 0 stays unmapped so a null dereference faults)
//!   and below [`USER_END`];
//! - file ranges inside the file, `p_filesz <= p_memsz`, file offset and
//!   address congruent modulo the page size;
//! - no two segments sharing a page (each page gets one segment's
//!   permissions), no segment both writable and executable (W^X);
//! - the entry point inside an executable segment;
//! - bounded program-header count, segment count and sizes.
//!
//! The result is a [`LoadPlan`]: segments sorted by address with their
//! permissions, which the kernel maps into a fresh address space, copying
//! `file_size` bytes and zero-filling the rest up to `mem_size`.

use alloc::vec::Vec;
use core::fmt;
use elf::abi;
use elf::endian::LittleEndian;
use elf::ElfBytes;

pub const PAGE_SIZE: u64 = 4096;
/// Lowest address a segment may occupy (page 0 is never mapped).
pub const USER_MIN_VADDR: u64 = PAGE_SIZE;
/// One past the highest user address (the canonical lower half).
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// Most program headers read.
pub const MAX_PROGRAM_HEADERS: usize = 64;
/// Most `PT_LOAD` segments (with a non-zero memory size).
pub const MAX_LOAD_SEGMENTS: usize = 16;
/// Largest memory size of one segment.
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// Largest total memory size of all segments.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// One segment to map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
}

impl LoadSegment {
    /// The page holding the first byte.
    pub fn first_page(&self) -> u64 {
        self.vaddr & !(PAGE_SIZE - 1)
    }
    /// One past the last page (page aligned).
    pub fn end_page(&self) -> u64 {
        (self.vaddr + self.mem_size).div_ceil(PAGE_SIZE) * PAGE_SIZE
    }
    /// The bytes to copy, from the file this plan was validated from.
    pub fn file_bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.file_offset as usize..(self.file_offset + self.file_size) as usize]
    }
}

/// What the kernel needs to start the binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    pub entry: u64,
    /// Sorted by `vaddr`; pages do not overlap.
    pub segments: Vec<LoadSegment>,
}

impl LoadPlan {
    /// One past the last page of the highest segment: the first free user
    /// address above the image (where a heap or stack may be placed).
    pub fn image_end(&self) -> u64 {
        self.segments.last().map(|s| s.end_page()).unwrap_or(USER_MIN_VADDR)
    }
}

/// Why a binary was refused. `index` is the program-header index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Not64Bit,
    NotLittleEndian,
    /// The `elf` crate could not parse the header or program-header table.
    Malformed(&'static str),
    WrongMachine(u16),
    PositionIndependent,
    NotExecutable(u16),
    /// `PT_INTERP` or `PT_DYNAMIC`: dynamic linking is not supported.
    DynamicallyLinked,
    TooManyProgramHeaders(usize),
    TooManySegments(usize),
    NoLoadableSegments,
    FileSizeExceedsMemSize { index: usize },
    FileRangeOutsideFile { index: usize },
    Misaligned { index: usize },
    AddressOverflow { index: usize },
    InPageZero { index: usize, vaddr: u64 },
    OutsideUserHalf { index: usize, vaddr: u64 },
    SegmentTooLarge { index: usize, size: u64 },
    ImageTooLarge(u64),
    WritableAndExecutable { index: usize, vaddr: u64 },
    Overlap { first: u64, second: u64 },
    EntryNotExecutable(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ElfError::*;
        match self {
            NotElf => write!(f, "not an ELF file (bad magic)"),
            Not64Bit => write!(f, "not a 64-bit ELF"),
            NotLittleEndian => write!(f, "not a little-endian ELF"),
            Malformed(why) => write!(f, "malformed ELF: {why}"),
            WrongMachine(m) => write!(f, "ELF machine is {m}, not x86_64"),
            PositionIndependent => write!(f, "position-independent (ET_DYN) binaries are not supported; link at a fixed address"),
            NotExecutable(t) => write!(f, "ELF type {t} is not an executable"),
            DynamicallyLinked => write!(f, "dynamically linked (PT_INTERP/PT_DYNAMIC); only static binaries are supported"),
            TooManyProgramHeaders(n) => write!(f, "{n} program headers, more than {MAX_PROGRAM_HEADERS}"),
            TooManySegments(n) => write!(f, "{n} loadable segments, more than {MAX_LOAD_SEGMENTS}"),
            NoLoadableSegments => write!(f, "no loadable segments"),
            FileSizeExceedsMemSize { index } => write!(f, "segment {index}: file size exceeds memory size"),
            FileRangeOutsideFile { index } => write!(f, "segment {index}: file range is outside the file"),
            Misaligned { index } => write!(f, "segment {index}: file offset and address are not congruent modulo the page size"),
            AddressOverflow { index } => write!(f, "segment {index}: address range overflows"),
            InPageZero { index, vaddr } => write!(f, "segment {index} at {vaddr:#x} touches page 0, which stays unmapped"),
            OutsideUserHalf { index, vaddr } => write!(f, "segment {index} at {vaddr:#x} is not inside the user half (below {USER_END:#x})"),
            SegmentTooLarge { index, size } => write!(f, "segment {index}: {size:#x} bytes, more than {MAX_SEGMENT_BYTES:#x}"),
            ImageTooLarge(size) => write!(f, "segments total {size:#x} bytes, more than {MAX_IMAGE_BYTES:#x}"),
            WritableAndExecutable { index, vaddr } => write!(f, "segment {index} at {vaddr:#x} is both writable and executable (W^X refused)"),
            Overlap { first, second } => write!(f, "segments at {first:#x} and {second:#x} share a page"),
            EntryNotExecutable(e) => write!(f, "entry point {e:#x} is not inside an executable segment"),
        }
    }
}

fn parse_error(e: elf::ParseError) -> ElfError {
    use elf::ParseError as P;
    ElfError::Malformed(match e {
        P::BadMagic(_) => "bad magic",
        P::UnsupportedElfClass(_) => "unsupported class",
        P::UnsupportedElfEndianness(_) => "unsupported endianness",
        P::UnsupportedVersion(_) => "unsupported ELF version",
        P::BadOffset(_) => "bad offset",
        P::StringTableMissingNul(_) => "string table missing NUL",
        P::BadEntsize(_) => "bad program header entry size",
        P::UnexpectedSectionType(_) => "unexpected section type",
        P::UnexpectedSegmentType(_) => "unexpected segment type",
        P::UnexpectedAlignment(_) => "unexpected alignment",
        P::SliceReadError(_) => "header or table extends past the end of the file",
        P::IntegerOverflow => "integer overflow in a header field",
        P::Utf8Error(_) => "invalid UTF-8",
        P::TryFromSliceError(_) => "short read",
        P::TryFromIntError(_) => "integer out of range",
    })
}

/// Validate `bytes` as a userspace binary and derive its load plan.
pub fn validate(bytes: &[u8]) -> Result<LoadPlan, ElfError> {
    if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if bytes[abi::EI_CLASS] != abi::ELFCLASS64 {
        return Err(ElfError::Not64Bit);
    }
    if bytes[abi::EI_DATA] != abi::ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian);
    }
    let file = ElfBytes::<LittleEndian>::minimal_parse(bytes).map_err(parse_error)?;
    let h = &file.ehdr;
    if h.e_machine != abi::EM_X86_64 {
        return Err(ElfError::WrongMachine(h.e_machine));
    }
    match h.e_type {
        abi::ET_EXEC => {}
        abi::ET_DYN => return Err(ElfError::PositionIndependent),
        t => return Err(ElfError::NotExecutable(t)),
    }
    if h.e_phnum as usize > MAX_PROGRAM_HEADERS {
        return Err(ElfError::TooManyProgramHeaders(h.e_phnum as usize));
    }
    let phdrs = file.segments().ok_or(ElfError::NoLoadableSegments)?;
    let mut segments = Vec::new();
    let mut total: u64 = 0;
    for (index, ph) in phdrs.iter().enumerate() {
        match ph.p_type {
            abi::PT_INTERP | abi::PT_DYNAMIC => return Err(ElfError::DynamicallyLinked),
            abi::PT_LOAD => {}
            _ => continue,
        }
        if ph.p_memsz == 0 {
            continue;
        }
        if segments.len() == MAX_LOAD_SEGMENTS {
            return Err(ElfError::TooManySegments(MAX_LOAD_SEGMENTS + 1));
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(ElfError::FileSizeExceedsMemSize { index });
        }
        // A segment with no file bytes (pure bss) has no meaningful offset.
        let file_offset = if ph.p_filesz == 0 { 0 } else { ph.p_offset };
        if file_offset.checked_add(ph.p_filesz).is_none_or(|end| end > bytes.len() as u64) {
            return Err(ElfError::FileRangeOutsideFile { index });
        }
        if ph.p_memsz > MAX_SEGMENT_BYTES {
            return Err(ElfError::SegmentTooLarge { index, size: ph.p_memsz });
        }
        let Some(end) = ph.p_vaddr.checked_add(ph.p_memsz) else {
            return Err(ElfError::AddressOverflow { index });
        };
        if ph.p_vaddr < USER_MIN_VADDR {
            return Err(ElfError::InPageZero { index, vaddr: ph.p_vaddr });
        }
        if end > USER_END {
            return Err(ElfError::OutsideUserHalf { index, vaddr: ph.p_vaddr });
        }
        if ph.p_filesz != 0 && ph.p_offset % PAGE_SIZE != ph.p_vaddr % PAGE_SIZE {
            return Err(ElfError::Misaligned { index });
        }
        let writable = ph.p_flags & abi::PF_W != 0;
        let executable = ph.p_flags & abi::PF_X != 0;
        if writable && executable {
            return Err(ElfError::WritableAndExecutable { index, vaddr: ph.p_vaddr });
        }
        total += ph.p_memsz; // at most 16 * 64 MiB: cannot overflow
        segments.push(LoadSegment {
            vaddr: ph.p_vaddr,
            mem_size: ph.p_memsz,
            file_offset,
            file_size: ph.p_filesz,
            readable: ph.p_flags & abi::PF_R != 0,
            writable,
            executable,
        });
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegments);
    }
    if total > MAX_IMAGE_BYTES {
        return Err(ElfError::ImageTooLarge(total));
    }
    segments.sort_by_key(|s| s.vaddr);
    for pair in segments.windows(2) {
        if pair[0].end_page() > pair[1].first_page() {
            return Err(ElfError::Overlap { first: pair[0].vaddr, second: pair[1].vaddr });
        }
    }
    let entry = h.e_entry;
    if !segments.iter().any(|s| s.executable && entry >= s.vaddr && entry < s.vaddr + s.mem_size) {
        return Err(ElfError::EntryNotExecutable(entry));
    }
    Ok(LoadPlan { entry, segments })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[derive(Clone, Copy)]
    struct Ph {
        kind: u32,
        vaddr: u64,
        offset: u64,
        filesz: u64,
        memsz: u64,
        flags: u32,
    }

    const RX: u32 = abi::PF_R | abi::PF_X;
    const RW: u32 = abi::PF_R | abi::PF_W;
    const R: u32 = abi::PF_R;
    const BASE: u64 = 0x40_0000;

    fn load(vaddr: u64, offset: u64, filesz: u64, memsz: u64, flags: u32) -> Ph {
        Ph { kind: abi::PT_LOAD, vaddr, offset, filesz, memsz, flags }
    }

    /// A minimal ELF64 executable with the given program headers.
    fn build(entry: u64, e_type: u16, machine: u16, phs: &[Ph], total_len: usize) -> Vec<u8> {
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
            b[o..o + 4].copy_from_slice(&p.kind.to_le_bytes());
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

    fn exe(entry: u64, phs: &[Ph]) -> Vec<u8> {
        build(entry, abi::ET_EXEC, abi::EM_X86_64, phs, 0x4000)
    }

    /// text (RX), rodata (R), data+bss (RW), plus a non-load header.
    fn good() -> Vec<u8> {
        exe(
            BASE + 0x10,
            &[
                load(BASE, 0x1000, 0x100, 0x100, RX),
                load(BASE + 0x1000, 0x2000, 0x80, 0x80, R),
                Ph { kind: abi::PT_GNU_STACK, vaddr: 0, offset: 0, filesz: 0, memsz: 0, flags: RW },
                load(BASE + 0x2000, 0x3000, 0x10, 0x3000, RW),
            ],
        )
    }

    #[test]
    fn accepts_a_static_executable_and_plans_its_load() {
        let bytes = good();
        let plan = validate(&bytes).unwrap();
        assert_eq!(plan.entry, BASE + 0x10);
        assert_eq!(plan.segments.len(), 3);
        let [text, rodata, data] = [plan.segments[0], plan.segments[1], plan.segments[2]];
        assert!(text.executable && !text.writable && text.readable);
        assert!(!rodata.executable && !rodata.writable && rodata.readable);
        assert!(data.writable && !data.executable);
        assert_eq!((data.file_size, data.mem_size), (0x10, 0x3000));
        assert_eq!(data.file_bytes(&bytes).len(), 0x10);
        assert_eq!(plan.image_end(), BASE + 0x5000);
    }

    #[test]
    fn a_bss_only_segment_ignores_its_file_offset() {
        let bytes = exe(
            BASE + 0x10,
            &[load(BASE, 0x1000, 0x100, 0x100, RX), load(BASE + 0x1000, 0xdead_beef_0123, 0, 0x2000, RW)],
        );
        let plan = validate(&bytes).unwrap();
        let bss = plan.segments[1];
        assert_eq!((bss.file_offset, bss.file_size, bss.mem_size), (0, 0, 0x2000));
        assert!(bss.file_bytes(&bytes).is_empty());
        // With file bytes, the same offset is refused.
        let bad = exe(BASE + 0x10, &[load(BASE, 0x1000, 0x100, 0x100, RX), load(BASE + 0x1000, 0xdead_beef_0123, 1, 0x2000, RW)]);
        assert_eq!(validate(&bad), Err(ElfError::FileRangeOutsideFile { index: 1 }));
    }

    #[test]
    fn segments_are_sorted_and_empty_ones_skipped() {
        let bytes = exe(
            BASE + 0x10,
            &[
                load(BASE + 0x2000, 0x2000, 0x10, 0x10, RW),
                load(BASE + 0x9000, 0x0, 0x0, 0x0, RW), // memsz 0: ignored
                load(BASE, 0x1000, 0x100, 0x100, RX),
            ],
        );
        let plan = validate(&bytes).unwrap();
        assert_eq!(plan.segments.iter().map(|s| s.vaddr).collect::<Vec<_>>(), vec![BASE, BASE + 0x2000]);
    }

    fn refused(bytes: &[u8], expected: ElfError) {
        assert_eq!(validate(bytes), Err(expected.clone()));
        assert!(!expected.to_string().is_empty());
    }

    #[test]
    fn refuses_malformed_headers() {
        refused(b"MZ\x90\x00 this is a PE file", ElfError::NotElf);
        refused(b"\x7fELF", ElfError::NotElf);
        let mut b = good();
        b[4] = 1;
        refused(&b, ElfError::Not64Bit);
        let mut b = good();
        b[5] = 2;
        refused(&b, ElfError::NotLittleEndian);
        let mut b = good();
        b[6] = 9;
        assert!(matches!(validate(&b), Err(ElfError::Malformed(_))), "bad version");
        assert!(matches!(validate(&good()[..40]), Err(ElfError::Malformed(_))), "truncated header");
        let mut b = good();
        b[54..56].copy_from_slice(&32u16.to_le_bytes());
        assert!(matches!(validate(&b), Err(ElfError::Malformed(_))), "bad phentsize");
        let mut b = good();
        b[32..40].copy_from_slice(&0xffff_ffff_ffff_0000u64.to_le_bytes());
        assert!(matches!(validate(&b), Err(ElfError::Malformed(_))), "phoff past the file");
        let one = [load(BASE, 0x1000, 0x10, 0x10, RX)];
        refused(&build(BASE, abi::ET_EXEC, abi::EM_AARCH64, &one, 0x2000), ElfError::WrongMachine(abi::EM_AARCH64));
        refused(&build(BASE, abi::ET_DYN, abi::EM_X86_64, &one, 0x2000), ElfError::PositionIndependent);
        refused(&build(BASE, abi::ET_REL, abi::EM_X86_64, &one, 0x2000), ElfError::NotExecutable(abi::ET_REL));
        refused(&build(BASE, abi::ET_CORE, abi::EM_X86_64, &one, 0x2000), ElfError::NotExecutable(abi::ET_CORE));
    }

    #[test]
    fn refuses_dynamic_and_degenerate_programs() {
        let interp = Ph { kind: abi::PT_INTERP, vaddr: 0, offset: 0x1000, filesz: 0x10, memsz: 0x10, flags: R };
        refused(&exe(BASE, &[interp, load(BASE, 0x1000, 0x10, 0x10, RX)]), ElfError::DynamicallyLinked);
        let dynamic = Ph { kind: abi::PT_DYNAMIC, ..interp };
        refused(&exe(BASE, &[load(BASE, 0x1000, 0x10, 0x10, RX), dynamic]), ElfError::DynamicallyLinked);
        refused(&exe(BASE, &[]), ElfError::NoLoadableSegments);
        refused(&exe(BASE, &[load(BASE, 0x1000, 0, 0, RX)]), ElfError::NoLoadableSegments);
        let many: Vec<Ph> = (0..MAX_LOAD_SEGMENTS as u64 + 1).map(|i| load(BASE + i * 0x1000, 0x1000, 0, 0x10, R)).collect();
        refused(&exe(BASE, &many), ElfError::TooManySegments(MAX_LOAD_SEGMENTS + 1));
        let headers: Vec<Ph> = (0..MAX_PROGRAM_HEADERS + 1).map(|_| Ph { kind: abi::PT_NOTE, ..interp }).collect();
        refused(&build(BASE, abi::ET_EXEC, abi::EM_X86_64, &headers, 0x4000), ElfError::TooManyProgramHeaders(MAX_PROGRAM_HEADERS + 1));
    }

    #[test]
    fn refuses_bad_segments() {
        let text = load(BASE, 0x1000, 0x100, 0x100, RX);
        refused(&exe(BASE, &[load(BASE, 0x1000, 0x20, 0x10, RX)]), ElfError::FileSizeExceedsMemSize { index: 0 });
        refused(&exe(BASE, &[load(BASE, 0x1000, 0x5000, 0x5000, RX)]), ElfError::FileRangeOutsideFile { index: 0 });
        refused(&exe(BASE, &[load(BASE, u64::MAX - 8, 0x10, 0x10, RX)]), ElfError::FileRangeOutsideFile { index: 0 });
        refused(&exe(BASE, &[text, load(BASE + 0x2000, 0x1800, 0x10, 0x10, RW)]), ElfError::Misaligned { index: 1 });
        // User-half bounds.
        refused(&exe(0x10, &[load(0, 0x0, 0x10, 0x10, RX)]), ElfError::InPageZero { index: 0, vaddr: 0 });
        refused(&exe(0x800, &[load(0x800, 0x800, 0x10, 0x10, RX)]), ElfError::InPageZero { index: 0, vaddr: 0x800 });
        let kernel = 0xffff_ffff_8000_0000;
        refused(&exe(kernel, &[load(kernel, 0x1000, 0x10, 0x10, RX)]), ElfError::OutsideUserHalf { index: 0, vaddr: kernel });
        let straddle = USER_END - 0x1000;
        refused(&exe(straddle, &[load(straddle, 0x1000, 0x10, 0x2000, RX)]), ElfError::OutsideUserHalf { index: 0, vaddr: straddle });
        refused(&exe(BASE, &[load(u64::MAX - 0xfff, 0x1000, 0x10, 0x2000, RX)]), ElfError::AddressOverflow { index: 0 });
        // Top of the user half exactly is fine.
        let last = USER_END - 0x1000;
        assert!(validate(&exe(last, &[load(last, 0x1000, 0x10, 0x1000, RX)])).is_ok());
        // Sizes.
        refused(&exe(BASE, &[load(BASE, 0x1000, 0x10, MAX_SEGMENT_BYTES + 1, RX)]), ElfError::SegmentTooLarge { index: 0, size: MAX_SEGMENT_BYTES + 1 });
        let big: Vec<Ph> = (0..5u64).map(|i| load(BASE + i * MAX_SEGMENT_BYTES, 0x1000, 0x10, MAX_SEGMENT_BYTES, if i == 0 { RX } else { RW })).collect();
        refused(&exe(BASE, &big), ElfError::ImageTooLarge(5 * MAX_SEGMENT_BYTES));
    }

    #[test]
    fn refuses_wx_overlap_and_bad_entry() {
        refused(&exe(BASE, &[load(BASE, 0x1000, 0x10, 0x10, RX | abi::PF_W)]), ElfError::WritableAndExecutable { index: 0, vaddr: BASE });
        refused(&exe(BASE, &[load(BASE, 0x1000, 0x10, 0x10, abi::PF_W | abi::PF_X)]), ElfError::WritableAndExecutable { index: 0, vaddr: BASE });
        // Same page, different permissions.
        refused(
            &exe(BASE, &[load(BASE, 0x1000, 0x10, 0x10, RX), load(BASE + 0x800, 0x1800, 0x10, 0x10, RW)]),
            ElfError::Overlap { first: BASE, second: BASE + 0x800 },
        );
        // A bss running into the next segment's page.
        refused(
            &exe(BASE, &[load(BASE, 0x1000, 0x10, 0x1001, RX), load(BASE + 0x1000, 0x2000, 0x10, 0x10, RW)]),
            ElfError::Overlap { first: BASE, second: BASE + 0x1000 },
        );
        // Identical ranges.
        refused(
            &exe(BASE, &[load(BASE, 0x1000, 0x10, 0x10, RX), load(BASE, 0x1000, 0x10, 0x10, R)]),
            ElfError::Overlap { first: BASE, second: BASE },
        );
        let two = [load(BASE, 0x1000, 0x100, 0x100, RX), load(BASE + 0x1000, 0x2000, 0x10, 0x10, RW)];
        refused(&exe(BASE + 0x1000, &two), ElfError::EntryNotExecutable(BASE + 0x1000));
        refused(&exe(BASE + 0x100, &two), ElfError::EntryNotExecutable(BASE + 0x100));
        refused(&exe(0, &two), ElfError::EntryNotExecutable(0));
        assert!(validate(&exe(BASE + 0xff, &two)).is_ok());
    }

    #[test]
    fn no_panic_on_any_truncation_or_bit_flip() {
        let bytes = good();
        for n in 0..bytes.len().min(0x1100) {
            let _ = validate(&bytes[..n]);
        }
        // Header and program-header table, every bit.
        for i in 0..64 + 56 * 4 {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(plan) = validate(&b) {
                    // Whatever is accepted must still satisfy the rules.
                    for s in &plan.segments {
                        assert!(s.vaddr >= USER_MIN_VADDR && s.vaddr + s.mem_size <= USER_END);
                        assert!(!(s.writable && s.executable));
                        assert!(s.file_offset + s.file_size <= b.len() as u64);
                        let _ = s.file_bytes(&b);
                    }
                }
            }
        }
    }
}
