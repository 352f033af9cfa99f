//! Tiny synthetic ELF files for the loader-error scenarios (a lower-half
//! kernel, a W+X kernel, a kernel asking for an unknown base revision).

pub struct Segment {
    pub vaddr: u64,
    pub flags: u32,
    pub data: Vec<u8>,
}

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// An x86_64 ET_EXEC with one PT_LOAD per segment, each at its own page in
/// the file.
pub fn elf(entry: u64, segments: &[Segment]) -> Vec<u8> {
    let mut out = vec![0u8; 0x1000];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    for (i, s) in segments.iter().enumerate() {
        let offset = out.len() as u64;
        let ph = 64 + 56 * i;
        out[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        out[ph + 4..ph + 8].copy_from_slice(&s.flags.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
        out[ph + 16..ph + 24].copy_from_slice(&s.vaddr.to_le_bytes());
        out[ph + 24..ph + 32].copy_from_slice(&s.vaddr.to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        out[ph + 40..ph + 48].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        out[ph + 48..ph + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        let mut page = s.data.clone();
        page.resize(s.data.len().next_multiple_of(0x1000).max(0x1000), 0);
        out.extend_from_slice(&page);
    }
    out
}

pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// A higher-half kernel whose text holds a base revision tag asking for
/// `revision` (and `hlt` loops as code).
pub fn kernel_wanting_revision(revision: u64) -> Vec<u8> {
    let mut text = vec![0xf4u8; 0x100]; // hlt
    let tag = [0xf956_2b2d_5c95_a6c8u64, 0x6a7b_3849_4453_6bdc, revision];
    for (i, w) in tag.iter().enumerate() {
        text[0x40 + 8 * i..0x48 + 8 * i].copy_from_slice(&w.to_le_bytes());
    }
    elf(KERNEL_BASE, &[Segment { vaddr: KERNEL_BASE, flags: PF_R | PF_X, data: text }])
}
