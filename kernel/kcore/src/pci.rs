//! PCI configuration-space logic that does not touch hardware: the
//! capability-list walk (safe against hostile loops), BAR decoding, and the
//! MSI-X capability layout. The kernel supplies config reads.

use alloc::vec::Vec;

/// 32-bit reads of one function's configuration space.
pub trait ConfigSpace {
    fn read32(&self, offset: u16) -> u32;
    fn read16(&self, offset: u16) -> u16 {
        (self.read32(offset & !3) >> ((offset & 2) * 8)) as u16
    }
    fn read8(&self, offset: u16) -> u8 {
        (self.read32(offset & !3) >> ((offset & 3) * 8)) as u8
    }
}

pub const CAP_PM: u8 = 0x01;
pub const CAP_MSI: u8 = 0x05;
pub const CAP_VENDOR: u8 = 0x09;
pub const CAP_PCIE: u8 = 0x10;
pub const CAP_MSIX: u8 = 0x11;

pub fn cap_name(id: u8) -> &'static str {
    match id {
        CAP_PM => "PM",
        CAP_MSI => "MSI",
        CAP_VENDOR => "vendor",
        CAP_PCIE => "PCIe",
        CAP_MSIX => "MSI-X",
        0x0d => "bridge-subsys",
        0x12 => "SATA",
        0x13 => "AF",
        _ => "other",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub id: u8,
    pub offset: u8,
}

/// Most capabilities we follow: 256 bytes of config space hold at most 48
/// 4-byte-aligned entries past the 64-byte header.
pub const MAX_CAPS: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapWalk {
    pub caps: Vec<Capability>,
    /// Why the walk stopped early, if it did.
    pub problem: Option<&'static str>,
}

const STATUS_CAP_LIST: u16 = 1 << 4;

/// Walk the capability list. Stops on a pointer into the header, a pointer
/// already visited (a loop), or after [`MAX_CAPS`] entries.
pub fn walk_capabilities(cfg: &impl ConfigSpace) -> CapWalk {
    let mut caps = Vec::new();
    if cfg.read16(0x06) & STATUS_CAP_LIST == 0 {
        return CapWalk { caps, problem: None };
    }
    let mut visited = [false; 256];
    let mut ptr = cfg.read8(0x34) & 0xfc;
    while ptr != 0 {
        if ptr < 0x40 {
            return CapWalk { caps, problem: Some("capability pointer into the header") };
        }
        if visited[ptr as usize] {
            return CapWalk { caps, problem: Some("capability list loops") };
        }
        if caps.len() == MAX_CAPS {
            return CapWalk { caps, problem: Some("too many capabilities") };
        }
        visited[ptr as usize] = true;
        let id = cfg.read8(ptr as u16);
        caps.push(Capability { id, offset: ptr });
        ptr = cfg.read8(ptr as u16 + 1) & 0xfc;
    }
    CapWalk { caps, problem: None }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Mem32,
    Mem64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    pub index: u8,
    pub kind: BarKind,
    pub prefetchable: bool,
    pub address: u64,
    pub size: u64,
}

/// Decode one BAR from its value and the value read back after writing all
/// ones (the sizing probe). For a 64-bit BAR pass the upper half and its
/// probe too. Returns `None` for an unimplemented BAR (probe reads 0).
pub fn decode_bar(index: u8, value: u32, probe: u32, upper: Option<(u32, u32)>) -> Option<Bar> {
    if value & 1 == 1 {
        let mask = probe & !0x3;
        // I/O BARs decode 16 bits on x86; the upper half may read as zero.
        let mask = mask | 0xffff_0000;
        let size = (!mask).wrapping_add(1) as u64 & 0xffff_ffff;
        if probe & !0x3 == 0 || size == 0 {
            return None;
        }
        return Some(Bar { index, kind: BarKind::Io, prefetchable: false, address: (value & !0x3) as u64, size });
    }
    let prefetchable = value & 0x8 != 0;
    match (value >> 1) & 0x3 {
        0 => {
            let mask = probe & !0xf;
            if mask == 0 {
                return None;
            }
            let size = (!mask).wrapping_add(1) as u64;
            Some(Bar { index, kind: BarKind::Mem32, prefetchable, address: (value & !0xf) as u64, size })
        }
        2 => {
            let (hi, hi_probe) = upper?;
            let mask = ((hi_probe as u64) << 32) | (probe & !0xf) as u64;
            if mask == 0 {
                return None;
            }
            let size = (!mask).wrapping_add(1);
            let address = ((hi as u64) << 32) | (value & !0xf) as u64;
            Some(Bar { index, kind: BarKind::Mem64, prefetchable, address, size })
        }
        _ => None, // reserved type
    }
}

/// Whether `[offset, offset + len)` lies inside the BAR (overflow-safe).
pub fn region_in_bar(bar: &Bar, offset: u64, len: u64) -> bool {
    len > 0 && offset.checked_add(len).is_some_and(|end| end <= bar.size)
}

/// The MSI-X capability as the device describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixInfo {
    pub cap_offset: u8,
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

pub fn msix_info(cfg: &impl ConfigSpace, cap_offset: u8) -> MsixInfo {
    let control = cfg.read16(cap_offset as u16 + 2);
    let table = cfg.read32(cap_offset as u16 + 4);
    let pba = cfg.read32(cap_offset as u16 + 8);
    MsixInfo {
        cap_offset,
        table_size: (control & 0x7ff) + 1,
        table_bar: (table & 7) as u8,
        table_offset: table & !7,
        pba_bar: (pba & 7) as u8,
        pba_offset: pba & !7,
    }
}

/// MSI address/data for a fixed, edge-triggered interrupt to `apic_id`.
pub fn msi_message(apic_id: u8, vector: u8) -> (u64, u32) {
    (0xfee0_0000 | ((apic_id as u64) << 12), vector as u32)
}

pub fn class_name(class: u8, subclass: u8) -> &'static str {
    match (class, subclass) {
        (0x01, 0x01) => "IDE controller",
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x08) => "NVMe controller",
        (0x01, 0x00) => "SCSI controller",
        (0x01, _) => "storage controller",
        (0x02, _) => "network controller",
        (0x03, _) => "display controller",
        (0x06, 0x00) => "host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI-to-PCI bridge",
        (0x06, _) => "bridge",
        (0x0c, 0x03) => "USB controller",
        (0x0c, 0x05) => "SMBus controller",
        (0x08, _) => "system peripheral",
        (0x00, _) => "unclassified device",
        _ => "device",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake([u8; 256]);
    impl ConfigSpace for Fake {
        fn read32(&self, offset: u16) -> u32 {
            let o = offset as usize & 0xfc;
            u32::from_le_bytes(self.0[o..o + 4].try_into().unwrap())
        }
    }

    fn with_caps(chain: &[(u8, u8, u8)]) -> Fake {
        let mut c = [0u8; 256];
        c[0x06] = 0x10; // status: capability list
        c[0x34] = chain.first().map(|x| x.0).unwrap_or(0);
        for (off, id, next) in chain {
            c[*off as usize] = *id;
            c[*off as usize + 1] = *next;
        }
        Fake(c)
    }

    #[test]
    fn walks_a_normal_list() {
        let f = with_caps(&[(0x40, CAP_MSIX, 0x50), (0x50, CAP_PCIE, 0x60), (0x60, CAP_VENDOR, 0)]);
        let w = walk_capabilities(&f);
        assert_eq!(w.problem, None);
        assert_eq!(w.caps.iter().map(|c| (c.id, c.offset)).collect::<Vec<_>>(), vec![(0x11, 0x40), (0x10, 0x50), (0x09, 0x60)]);
    }

    #[test]
    fn hostile_lists_terminate() {
        let looped = with_caps(&[(0x40, 1, 0x50), (0x50, 2, 0x40)]);
        let w = walk_capabilities(&looped);
        assert_eq!(w.caps.len(), 2);
        assert_eq!(w.problem, Some("capability list loops"));
        let self_loop = with_caps(&[(0x40, 1, 0x40)]);
        assert_eq!(walk_capabilities(&self_loop).problem, Some("capability list loops"));
        let into_header = with_caps(&[(0x40, 1, 0x10)]);
        assert_eq!(walk_capabilities(&into_header).problem, Some("capability pointer into the header"));
        // Low bits of pointers are ignored (reserved), so 0x41 means 0x40.
        let unaligned = with_caps(&[(0x40, 1, 0x41)]);
        assert_eq!(walk_capabilities(&unaligned).problem, Some("capability list loops"));
        let mut none = with_caps(&[(0x40, 1, 0)]);
        none.0[0x06] = 0;
        assert!(walk_capabilities(&none).caps.is_empty(), "no list when the status bit is clear");
        // A full chain of 48 distinct entries is fine; it cannot be longer.
        let chain: Vec<(u8, u8, u8)> = (0..48u16).map(|i| {
            let off = (0x40 + 4 * i) as u8;
            let next = if i == 47 { 0 } else { off + 4 };
            (off, 9, next)
        }).collect();
        let w = walk_capabilities(&with_caps(&chain));
        assert_eq!((w.caps.len(), w.problem), (48, None));
    }

    #[test]
    fn decodes_bars() {
        // 32-bit MMIO, 16 KiB, non-prefetchable.
        let b = decode_bar(0, 0xfebd_0000, 0xffff_c000, None).unwrap();
        assert_eq!((b.kind, b.address, b.size, b.prefetchable), (BarKind::Mem32, 0xfebd_0000, 0x4000, false));
        // 64-bit prefetchable, 16 KiB, above 4 GiB.
        let b = decode_bar(4, 0x0000_000c, 0xffff_c00c, Some((0x8, 0xffff_ffff))).unwrap();
        assert_eq!((b.kind, b.address, b.size, b.prefetchable), (BarKind::Mem64, 0x8_0000_0000, 0x4000, true));
        // 64-bit, 8 GiB: the size needs the upper half.
        let b = decode_bar(2, 0x4, 0x4, Some((0, 0xffff_fffe))).unwrap();
        assert_eq!(b.size, 8 << 30);
        // I/O, 32 ports.
        let b = decode_bar(1, 0xc041, 0xffff_ffe1, None).unwrap();
        assert_eq!((b.kind, b.address, b.size), (BarKind::Io, 0xc040, 32));
        // I/O with the upper 16 bits reading zero (decodes 16 bits only).
        let b = decode_bar(1, 0xc041, 0x0000_ffe1, None).unwrap();
        assert_eq!(b.size, 32);
        // Unimplemented BARs.
        assert_eq!(decode_bar(0, 0, 0, None), None);
        assert_eq!(decode_bar(0, 0x4, 0x4, None), None, "64-bit BAR without its upper half");
        assert_eq!(decode_bar(0, 0x6, 0xffff_fff6, None), None, "reserved type");
    }

    #[test]
    fn region_checks_are_overflow_safe() {
        let b = Bar { index: 0, kind: BarKind::Mem32, prefetchable: false, address: 0x1000, size: 0x4000 };
        assert!(region_in_bar(&b, 0, 0x4000));
        assert!(region_in_bar(&b, 0x3000, 0x1000));
        assert!(!region_in_bar(&b, 0x3000, 0x1001));
        assert!(!region_in_bar(&b, 0, 0));
        assert!(!region_in_bar(&b, u64::MAX, 2));
    }

    #[test]
    fn msix_layout() {
        let mut f = with_caps(&[(0x40, CAP_MSIX, 0)]);
        f.0[0x42..0x44].copy_from_slice(&(0x8000u16 | 63).to_le_bytes());
        f.0[0x44..0x48].copy_from_slice(&(0x2000u32 | 4).to_le_bytes());
        f.0[0x48..0x4c].copy_from_slice(&(0x3000u32 | 4).to_le_bytes());
        let m = msix_info(&f, 0x40);
        assert_eq!(m, MsixInfo { cap_offset: 0x40, table_size: 64, table_bar: 4, table_offset: 0x2000, pba_bar: 4, pba_offset: 0x3000 });
        assert_eq!(msi_message(3, 0x41), (0xfee0_3000, 0x41));
    }
}
