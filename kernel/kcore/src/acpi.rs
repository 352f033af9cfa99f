//! ACPI table discovery and parsing over untrusted physical memory.
//!
//! Why not the `acpi` crate: its 6.x/7.x releases need nightly Rust, and the
//! 5.x line that builds on stable trusts the firmware: an HPET table whose
//! base is not in memory space hits an `assert_eq!`, and a zero-length MADT
//! entry makes its entry iterator spin forever. The kernel must survive a
//! malformed table, so this module reads every table through a bounds-checked
//! byte slice, validates length and checksum, caps every count, and reports
//! problems as values the kernel logs before skipping the table.
//!
//! Memory is reached through [`PhysMemory`]; the kernel maps what it is asked
//! for, the tests hand out byte arrays.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Read-only access to physical memory.
pub trait PhysMemory {
    /// Fill `buf` from physical address `addr`; false if it cannot be read.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

pub const SDT_HEADER_LEN: usize = 36;
/// The largest table we read (QEMU's DSDT is a few KiB; real ones < 1 MiB).
pub const MAX_TABLE_LEN: u32 = 4 << 20;
/// Root table entries we look at.
pub const MAX_ROOT_ENTRIES: usize = 256;
pub const MAX_MADT_ENTRIES: usize = 1024;
pub const MAX_MCFG_ENTRIES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcpiError {
    Unreadable(u64),
    BadSignature { addr: u64, found: [u8; 8] },
    BadChecksum { what: String },
    BadLength { what: String, length: u64 },
    Malformed(String),
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::Unreadable(a) => write!(f, "memory at {:#x} cannot be read", a),
            AcpiError::BadSignature { addr, found } => {
                write!(f, "bad signature {:?} at {:#x}", String::from_utf8_lossy(found), addr)
            }
            AcpiError::BadChecksum { what } => write!(f, "{}: checksum mismatch", what),
            AcpiError::BadLength { what, length } => write!(f, "{}: implausible length {}", what, length),
            AcpiError::Malformed(m) => write!(f, "{}", m),
        }
    }
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b)) == 0
}

/// A table with signature `sig` around `body`: revision 1, OEM "CAPOS ",
/// its length and checksum right (for the tests and the fuzz seeds).
pub fn build_table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = alloc::vec![0u8; SDT_HEADER_LEN];
    t[..4].copy_from_slice(sig);
    t[8] = 1;
    t[10..16].copy_from_slice(b"CAPOS ");
    t.extend_from_slice(body);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    fix_checksum(&mut t, 9);
    t
}

/// Set the checksum byte at `at` so that `bytes` passes [`checksum_ok`]
/// (for table builders: the tests, the fuzz seeds and the fuzz target's
/// checksum repair). An `at` outside `bytes` changes nothing.
pub fn fix_checksum(bytes: &mut [u8], at: usize) {
    if at < bytes.len() {
        bytes[at] = 0;
        let sum = bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        bytes[at] = 0u8.wrapping_sub(sum);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rsdp {
    pub revision: u8,
    pub oem_id: [u8; 6],
    pub rsdt: u32,
    pub xsdt: Option<u64>,
}

/// Parse and validate the RSDP at `addr` (both checksums for ACPI 2.0+).
pub fn read_rsdp(mem: &impl PhysMemory, addr: u64) -> Result<Rsdp, AcpiError> {
    let mut b = [0u8; 36];
    if !mem.read(addr, &mut b[..20]) {
        return Err(AcpiError::Unreadable(addr));
    }
    if &b[..8] != b"RSD PTR " {
        let mut found = [0; 8];
        found.copy_from_slice(&b[..8]);
        return Err(AcpiError::BadSignature { addr, found });
    }
    if !checksum_ok(&b[..20]) {
        return Err(AcpiError::BadChecksum { what: String::from("RSDP") });
    }
    let revision = b[15];
    let mut oem_id = [0; 6];
    oem_id.copy_from_slice(&b[9..15]);
    let rsdt = le32(&b, 16).unwrap_or(0);
    let mut xsdt = None;
    if revision >= 2 {
        if !mem.read(addr, &mut b) {
            return Err(AcpiError::Unreadable(addr));
        }
        let len = le32(&b, 20).unwrap_or(0);
        if len != 36 {
            // Later revisions could grow it; we only know 36 bytes.
            if !(36..=4096).contains(&len) {
                return Err(AcpiError::BadLength { what: String::from("RSDP"), length: len as u64 });
            }
        }
        if !checksum_ok(&b[..36]) {
            return Err(AcpiError::BadChecksum { what: String::from("RSDP (extended)") });
        }
        xsdt = le64(&b, 24).filter(|&x| x != 0);
    }
    Ok(Rsdp { revision, oem_id, rsdt, xsdt })
}

/// A table read into memory, with its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub addr: u64,
    pub signature: [u8; 4],
    pub revision: u8,
    pub oem_id: [u8; 6],
    pub checksum_ok: bool,
    pub bytes: Vec<u8>,
}

impl Table {
    pub fn sig(&self) -> &str {
        core::str::from_utf8(&self.signature).unwrap_or("????")
    }
}

/// Read the table at `addr`: header first, then `length` bytes.
pub fn read_table(mem: &impl PhysMemory, addr: u64) -> Result<Table, AcpiError> {
    let mut h = [0u8; SDT_HEADER_LEN];
    if !mem.read(addr, &mut h) {
        return Err(AcpiError::Unreadable(addr));
    }
    let mut signature = [0; 4];
    signature.copy_from_slice(&h[..4]);
    let what = format!("table {} at {:#x}", String::from_utf8_lossy(&signature), addr);
    if !signature.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
        let mut found = [0; 8];
        found[..4].copy_from_slice(&signature);
        return Err(AcpiError::BadSignature { addr, found });
    }
    let length = le32(&h, 4).unwrap_or(0);
    if (length as usize) < SDT_HEADER_LEN || length > MAX_TABLE_LEN {
        return Err(AcpiError::BadLength { what, length: length as u64 });
    }
    let mut bytes = alloc::vec![0u8; length as usize];
    if !mem.read(addr, &mut bytes) {
        return Err(AcpiError::Unreadable(addr));
    }
    let mut oem_id = [0; 6];
    oem_id.copy_from_slice(&bytes[10..16]);
    Ok(Table { addr, signature, revision: bytes[8], oem_id, checksum_ok: checksum_ok(&bytes), bytes })
}

/// One root-table entry as found (for listings), with whether it validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub addr: u64,
    pub signature: [u8; 4],
    pub length: u32,
    /// `None` if the table could not be read at all.
    pub checksum_ok: Option<bool>,
    pub problem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Discovery {
    pub rsdp: Rsdp,
    /// "XSDT" or "RSDT".
    pub root_kind: &'static str,
    pub root_checksum_ok: bool,
    pub listing: Vec<TableInfo>,
    /// Tables that read and validated, by signature.
    pub tables: Vec<Table>,
}

impl Discovery {
    pub fn find(&self, sig: &[u8; 4]) -> Option<&Table> {
        self.tables.iter().find(|t| &t.signature == sig)
    }
}

/// Find every table from the RSDP: XSDT when present, RSDT otherwise; the
/// DSDT through the FADT. Bad tables are listed with their problem and left
/// out of `tables`.
pub fn discover(mem: &impl PhysMemory, rsdp_addr: u64) -> Result<Discovery, AcpiError> {
    let rsdp = read_rsdp(mem, rsdp_addr)?;
    let (root_addr, entry_size, root_kind) = match rsdp.xsdt {
        Some(x) => (x, 8, "XSDT"),
        None => (rsdp.rsdt as u64, 4, "RSDT"),
    };
    let root = read_table(mem, root_addr)?;
    if &root.signature != root_kind.as_bytes() {
        let mut found = [0; 8];
        found[..4].copy_from_slice(&root.signature);
        return Err(AcpiError::BadSignature { addr: root_addr, found });
    }
    // A root table with a bad checksum is still walked (every entry is then
    // validated on its own), but reported.
    let body = &root.bytes[SDT_HEADER_LEN..];
    let mut addrs: Vec<u64> = body
        .chunks_exact(entry_size)
        .take(MAX_ROOT_ENTRIES)
        .map(|c| if entry_size == 8 { le64(c, 0).unwrap_or(0) } else { le32(c, 0).unwrap_or(0) as u64 })
        .filter(|&a| a != 0)
        .collect();
    let mut listing = Vec::new();
    let mut tables: Vec<Table> = Vec::new();
    let mut i = 0;
    while i < addrs.len() {
        let addr = addrs[i];
        i += 1;
        match read_table(mem, addr) {
            Ok(t) => {
                listing.push(TableInfo {
                    addr,
                    signature: t.signature,
                    length: t.bytes.len() as u32,
                    checksum_ok: Some(t.checksum_ok),
                    problem: if t.checksum_ok { None } else { Some(String::from("checksum mismatch")) },
                });
                if &t.signature == b"FACP" && t.checksum_ok {
                    if let Some(dsdt) = fadt_dsdt(&t.bytes) {
                        if !addrs.contains(&dsdt) && addrs.len() < MAX_ROOT_ENTRIES + 1 {
                            addrs.push(dsdt);
                        }
                    }
                }
                if t.checksum_ok && !tables.iter().any(|x| x.signature == t.signature) {
                    tables.push(t);
                }
            }
            Err(e) => {
                let mut signature = *b"????";
                let mut h = [0u8; 4];
                if mem.read(addr, &mut h) {
                    signature = h;
                }
                listing.push(TableInfo { addr, signature, length: 0, checksum_ok: None, problem: Some(format!("{}", e)) });
            }
        }
    }
    Ok(Discovery { rsdp, root_kind, root_checksum_ok: root.checksum_ok, listing, tables })
}

fn fadt_dsdt(b: &[u8]) -> Option<u64> {
    let x = if b.len() >= 148 { le64(b, 140).unwrap_or(0) } else { 0 };
    let d = if x != 0 { x } else { le32(b, 40).unwrap_or(0) as u64 };
    (d != 0).then_some(d)
}

/// Interrupt polarity / trigger from MPS INTI flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    BusDefault,
    ActiveHigh,
    ActiveLow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    BusDefault,
    Edge,
    Level,
}

pub fn inti_flags(flags: u16) -> (Polarity, Trigger) {
    let p = match flags & 3 {
        1 => Polarity::ActiveHigh,
        3 => Polarity::ActiveLow,
        _ => Polarity::BusDefault,
    };
    let t = match (flags >> 2) & 3 {
        1 => Trigger::Edge,
        3 => Trigger::Level,
        _ => Trigger::BusDefault,
    };
    (p, t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalApic {
    pub processor_id: u32,
    pub apic_id: u32,
    /// Usable: Enabled (flags bit 0) or Online Capable (bit 1).
    pub enabled: bool,
    /// Enabled (bit 0): present now. One that is only Online Capable may
    /// be absent (a hot-plug slot) and may not answer a start-up.
    pub present: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOverride {
    pub bus: u8,
    pub source: u8,
    pub gsi: u32,
    pub polarity: Polarity,
    pub trigger: Trigger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NmiSource {
    pub gsi: u32,
    pub polarity: Polarity,
    pub trigger: Trigger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalApicNmi {
    /// 0xff (or 0xffffffff for x2APIC) = all processors.
    pub processor_id: u32,
    pub lint: u8,
    pub polarity: Polarity,
    pub trigger: Trigger,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Madt {
    pub local_apic_address: u64,
    /// PC-AT compatible dual 8259 present.
    pub pcat_compat: bool,
    pub local_apics: Vec<LocalApic>,
    pub io_apics: Vec<IoApic>,
    pub overrides: Vec<SourceOverride>,
    pub nmi_sources: Vec<NmiSource>,
    pub local_nmis: Vec<LocalApicNmi>,
    /// Entries that were skipped (unknown types are fine; this is malformed ones).
    pub problems: Vec<String>,
}

pub fn parse_madt(t: &Table) -> Result<Madt, AcpiError> {
    let b = &t.bytes;
    if b.len() < 44 {
        return Err(AcpiError::BadLength { what: String::from("MADT"), length: b.len() as u64 });
    }
    let mut m = Madt {
        local_apic_address: le32(b, 36).unwrap_or(0) as u64,
        pcat_compat: le32(b, 40).unwrap_or(0) & 1 != 0,
        ..Madt::default()
    };
    let mut at = 44;
    let mut count = 0;
    while at + 2 <= b.len() {
        let (typ, len) = (b[at], b[at + 1] as usize);
        if len < 2 || at + len > b.len() {
            m.problems.push(format!("entry at offset {} (type {}) has length {}; rest of the MADT ignored", at, typ, len));
            break;
        }
        count += 1;
        if count > MAX_MADT_ENTRIES {
            m.problems.push(format!("more than {} entries; rest ignored", MAX_MADT_ENTRIES));
            break;
        }
        let e = &b[at..at + len];
        let short = |need: usize, m: &mut Madt| {
            if len < need {
                m.problems.push(format!("type {} entry at offset {} is {} bytes, needs {}", typ, at, len, need));
                true
            } else {
                false
            }
        };
        match typ {
            0 if !short(8, &mut m) => m.local_apics.push(LocalApic {
                processor_id: e[2] as u32,
                apic_id: e[3] as u32,
                enabled: le32(e, 4).unwrap_or(0) & 3 != 0,
                present: le32(e, 4).unwrap_or(0) & 1 != 0,
            }),
            1 if !short(12, &mut m) => m.io_apics.push(IoApic {
                id: e[2],
                address: le32(e, 4).unwrap_or(0),
                gsi_base: le32(e, 8).unwrap_or(0),
            }),
            2 if !short(10, &mut m) => {
                let (polarity, trigger) = inti_flags(le16(e, 8).unwrap_or(0));
                m.overrides.push(SourceOverride { bus: e[2], source: e[3], gsi: le32(e, 4).unwrap_or(0), polarity, trigger })
            }
            3 if !short(8, &mut m) => {
                let (polarity, trigger) = inti_flags(le16(e, 2).unwrap_or(0));
                m.nmi_sources.push(NmiSource { gsi: le32(e, 4).unwrap_or(0), polarity, trigger })
            }
            4 if !short(6, &mut m) => {
                let (polarity, trigger) = inti_flags(le16(e, 3).unwrap_or(0));
                m.local_nmis.push(LocalApicNmi { processor_id: e[2] as u32, lint: e[5], polarity, trigger })
            }
            5 if !short(12, &mut m) => m.local_apic_address = le64(e, 4).unwrap_or(m.local_apic_address),
            9 if !short(16, &mut m) => m.local_apics.push(LocalApic {
                processor_id: le32(e, 12).unwrap_or(0),
                apic_id: le32(e, 4).unwrap_or(0),
                enabled: le32(e, 8).unwrap_or(0) & 3 != 0,
                present: le32(e, 8).unwrap_or(0) & 1 != 0,
            }),
            _ => {}
        }
        at += len;
    }
    Ok(m)
}

/// Where an ISA IRQ really arrives, after the MADT's source overrides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaRoute {
    pub irq: u8,
    pub gsi: u32,
    pub active_low: bool,
    pub level: bool,
    pub overridden: bool,
}

/// ISA interrupts are GSI = IRQ, edge-triggered and active high unless an
/// override says otherwise; "bus default" in an override means the ISA
/// default (edge, high).
pub fn isa_route(madt: Option<&Madt>, irq: u8) -> IsaRoute {
    let o = madt.and_then(|m| m.overrides.iter().find(|o| o.bus == 0 && o.source == irq));
    match o {
        Some(o) => IsaRoute {
            irq,
            gsi: o.gsi,
            active_low: o.polarity == Polarity::ActiveLow,
            level: o.trigger == Trigger::Level,
            overridden: true,
        },
        None => IsaRoute { irq, gsi: irq as u32, active_low: false, level: false, overridden: false },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcamRegion {
    pub base: u64,
    pub segment: u16,
    pub bus_start: u8,
    pub bus_end: u8,
}

pub fn parse_mcfg(t: &Table) -> Result<Vec<EcamRegion>, AcpiError> {
    let b = &t.bytes;
    if b.len() < 44 {
        return Err(AcpiError::BadLength { what: String::from("MCFG"), length: b.len() as u64 });
    }
    let mut out = Vec::new();
    for c in b[44..].chunks_exact(16).take(MAX_MCFG_ENTRIES) {
        let r = EcamRegion {
            base: le64(c, 0).unwrap_or(0),
            segment: le16(c, 8).unwrap_or(0),
            bus_start: c[10],
            bus_end: c[11],
        };
        if r.base == 0 || r.base % 4096 != 0 || r.bus_start > r.bus_end {
            return Err(AcpiError::Malformed(format!("MCFG entry {:?} is invalid", r)));
        }
        out.push(r);
    }
    Ok(out)
}

/// An ACPI Generic Address Structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericAddress {
    /// 0 = memory, 1 = I/O port, 2 = PCI config space.
    pub space: u8,
    pub bit_width: u8,
    pub bit_offset: u8,
    pub access_size: u8,
    pub address: u64,
}

fn gas(b: &[u8], at: usize) -> Option<GenericAddress> {
    let g = b.get(at..at + 12)?;
    Some(GenericAddress { space: g[0], bit_width: g[1], bit_offset: g[2], access_size: g[3], address: le64(g, 4)? })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hpet {
    pub base: u64,
    pub number: u8,
    pub min_tick: u16,
}

pub fn parse_hpet(t: &Table) -> Result<Hpet, AcpiError> {
    let g = gas(&t.bytes, 40).ok_or_else(|| AcpiError::BadLength { what: String::from("HPET"), length: t.bytes.len() as u64 })?;
    if g.space != 0 {
        return Err(AcpiError::Malformed(format!("HPET registers are in address space {}, not memory", g.space)));
    }
    if g.address == 0 || g.address % 1024 != 0 {
        return Err(AcpiError::Malformed(format!("HPET base {:#x} is not a valid register block", g.address)));
    }
    Ok(Hpet { base: g.address, number: t.bytes.get(52).copied().unwrap_or(0), min_tick: le16(&t.bytes, 53).unwrap_or(0) })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmTimer {
    pub port: u16,
    pub is_32bit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fadt {
    pub pm_timer: Option<PmTimer>,
    pub reset: Option<(GenericAddress, u8)>,
    pub century_register: u8,
    pub has_8042: bool,
    pub sci_interrupt: u16,
}

pub fn parse_fadt(t: &Table) -> Result<Fadt, AcpiError> {
    let b = &t.bytes;
    if b.len() < 116 {
        return Err(AcpiError::BadLength { what: String::from("FADT"), length: b.len() as u64 });
    }
    let flags = le32(b, 112).unwrap_or(0);
    let mut pm_port = le32(b, 76).unwrap_or(0) as u64;
    if let Some(x) = gas(b, 208) {
        if x.space == 1 && x.address != 0 {
            pm_port = x.address;
        }
    }
    let pm_len = b.get(91).copied().unwrap_or(0);
    let pm_timer = (pm_port != 0 && pm_port <= 0xffff && pm_len >= 4)
        .then_some(PmTimer { port: pm_port as u16, is_32bit: flags & (1 << 8) != 0 });
    let reset = if flags & (1 << 10) != 0 {
        gas(b, 116).filter(|g| g.address != 0).map(|g| (g, b.get(128).copied().unwrap_or(0)))
    } else {
        None
    };
    Ok(Fadt {
        pm_timer,
        reset,
        century_register: b.get(108).copied().unwrap_or(0),
        has_8042: le16(b, 109).unwrap_or(0) & 2 != 0,
        sci_interrupt: le16(b, 46).unwrap_or(0),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Physical memory made of byte blobs at addresses.
    #[derive(Default)]
    pub struct FakeMem(pub BTreeMap<u64, Vec<u8>>);

    impl PhysMemory for FakeMem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            for (base, blob) in &self.0 {
                if addr >= *base && addr + buf.len() as u64 <= base + blob.len() as u64 {
                    let o = (addr - base) as usize;
                    buf.copy_from_slice(&blob[o..o + buf.len()]);
                    return true;
                }
            }
            false
        }
    }

    /// A parsed table from raw bytes (as `read_table` would return it).
    pub fn tbl(sig: &[u8; 4], body: &[u8]) -> Table {
        let bytes = build_table(sig, body);
        let mut m = FakeMem::default();
        m.0.insert(0x1000, bytes);
        read_table(&m, 0x1000).unwrap()
    }

    pub fn rsdp_v2(xsdt: u64) -> Vec<u8> {
        let mut r = vec![0u8; 36];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[9..15].copy_from_slice(b"CAPOS ");
        r[15] = 2;
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[24..32].copy_from_slice(&xsdt.to_le_bytes());
        fix_checksum(&mut r[..20], 8);
        fix_checksum(&mut r, 32);
        r
    }

    fn madt_body(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b[..4].copy_from_slice(&0xfee0_0000u32.to_le_bytes());
        b[4] = 1;
        for e in entries {
            b.extend_from_slice(e);
        }
        b
    }

    fn machine() -> FakeMem {
        let lapic = vec![0, 8, 0, 0, 1, 0, 0, 0];
        let ioapic = vec![1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0];
        // IRQ0 -> GSI2 edge/high; IRQ9 -> GSI9 level/high (flags 0xd)
        let iso0 = vec![2, 10, 0, 0, 2, 0, 0, 0, 0, 0];
        let iso9 = vec![2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0];
        let madt = build_table(b"APIC", &madt_body(&[lapic, ioapic, iso0, iso9]));
        let mut mcfg_body = vec![0u8; 8];
        mcfg_body.extend_from_slice(&0xb000_0000u64.to_le_bytes());
        mcfg_body.extend_from_slice(&[0, 0, 0, 0xff, 0, 0, 0, 0]);
        let mcfg = build_table(b"MCFG", &mcfg_body);
        let mut xsdt_body = Vec::new();
        for a in [0x2000u64, 0x3000] {
            xsdt_body.extend_from_slice(&a.to_le_bytes());
        }
        let xsdt = build_table(b"XSDT", &xsdt_body);
        let mut m = FakeMem::default();
        m.0.insert(0x1000, rsdp_v2(0x1800));
        m.0.insert(0x1800, xsdt);
        m.0.insert(0x2000, madt);
        m.0.insert(0x3000, mcfg);
        m
    }

    #[test]
    fn discovers_and_parses_good_tables() {
        let m = machine();
        let d = discover(&m, 0x1000).unwrap();
        assert_eq!(d.root_kind, "XSDT");
        assert_eq!(d.listing.len(), 2);
        assert!(d.listing.iter().all(|t| t.checksum_ok == Some(true)));
        let madt = parse_madt(d.find(b"APIC").unwrap()).unwrap();
        assert_eq!(madt.local_apic_address, 0xfee0_0000);
        assert!(madt.pcat_compat);
        assert_eq!(madt.local_apics.len(), 1);
        assert_eq!(madt.io_apics, vec![IoApic { id: 0, address: 0xfec0_0000, gsi_base: 0 }]);
        assert_eq!(madt.overrides.len(), 2);
        assert_eq!(madt.overrides[0].gsi, 2);
        assert_eq!((madt.overrides[1].polarity, madt.overrides[1].trigger), (Polarity::ActiveHigh, Trigger::Level));
        assert!(madt.problems.is_empty());
        let mcfg = parse_mcfg(d.find(b"MCFG").unwrap()).unwrap();
        assert_eq!(mcfg, vec![EcamRegion { base: 0xb000_0000, segment: 0, bus_start: 0, bus_end: 0xff }]);
    }

    #[test]
    fn isa_routes_honour_overrides() {
        let m = machine();
        let d = discover(&m, 0x1000).unwrap();
        let madt = parse_madt(d.find(b"APIC").unwrap()).unwrap();
        let timer = isa_route(Some(&madt), 0);
        assert_eq!((timer.gsi, timer.overridden, timer.level), (2, true, false));
        let sci = isa_route(Some(&madt), 9);
        assert_eq!((sci.gsi, sci.level, sci.active_low), (9, true, false));
        let com1 = isa_route(Some(&madt), 4);
        assert_eq!((com1.gsi, com1.overridden), (4, false));
        assert_eq!(isa_route(None, 4).gsi, 4);
    }

    #[test]
    fn a_corrupted_table_is_listed_and_skipped() {
        let mut m = machine();
        m.0.get_mut(&0x3000).unwrap()[40] ^= 0xff; // MCFG checksum now wrong
        let d = discover(&m, 0x1000).unwrap();
        let mcfg = d.listing.iter().find(|t| &t.signature == b"MCFG").unwrap();
        assert_eq!(mcfg.checksum_ok, Some(false));
        assert!(d.find(b"MCFG").is_none(), "a table with a bad checksum is not used");
        assert!(d.find(b"APIC").is_some());
    }

    #[test]
    fn bad_lengths_and_signatures_are_errors() {
        let mut m = machine();
        // MADT length field claims 10 bytes (less than a header).
        m.0.get_mut(&0x2000).unwrap()[4..8].copy_from_slice(&10u32.to_le_bytes());
        let d = discover(&m, 0x1000).unwrap();
        let madt = d.listing.iter().find(|t| t.addr == 0x2000).unwrap();
        assert!(madt.problem.as_ref().unwrap().contains("implausible length 10"), "{:?}", madt);
        // Length beyond readable memory.
        m.0.get_mut(&0x2000).unwrap()[4..8].copy_from_slice(&5000u32.to_le_bytes());
        assert!(matches!(read_table(&m, 0x2000), Err(AcpiError::Unreadable(_))));
        // Absurd length.
        m.0.get_mut(&0x2000).unwrap()[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_table(&m, 0x2000), Err(AcpiError::BadLength { .. })));
        // RSDP checks.
        let mut bad = machine();
        bad.0.get_mut(&0x1000).unwrap()[0] = b'X';
        assert!(matches!(discover(&bad, 0x1000), Err(AcpiError::BadSignature { .. })));
        let mut bad = machine();
        bad.0.get_mut(&0x1000).unwrap()[30] ^= 1; // extended checksum
        assert!(matches!(discover(&bad, 0x1000), Err(AcpiError::BadChecksum { .. })));
        assert!(matches!(discover(&machine(), 0x9000), Err(AcpiError::Unreadable(_))));
    }

    #[test]
    fn madt_processor_flags() {
        // LAPIC: uid 0 id 0 enabled; uid 1 id 2 online capable; uid 2 id 3
        // neither. x2APIC: id 300 enabled.
        let mut x2 = vec![9u8, 16, 0, 0];
        x2.extend_from_slice(&300u32.to_le_bytes());
        x2.extend_from_slice(&1u32.to_le_bytes());
        x2.extend_from_slice(&7u32.to_le_bytes());
        let t = tbl(b"APIC", &madt_body(&[vec![0, 8, 0, 0, 1, 0, 0, 0], vec![0, 8, 1, 2, 2, 0, 0, 0], vec![0, 8, 2, 3, 0, 0, 0, 0], x2]));
        let m = parse_madt(&t).unwrap();
        let got: Vec<(u32, u32, bool, bool)> = m.local_apics.iter().map(|l| (l.processor_id, l.apic_id, l.enabled, l.present)).collect();
        assert_eq!(got, vec![(0, 0, true, true), (1, 2, true, false), (2, 3, false, false), (7, 300, true, true)]);
    }

    #[test]
    fn hostile_madt_entries_stop_the_walk() {
        let zero_len = vec![0u8, 0, 0, 0];
        let t = tbl(b"APIC", &madt_body(&[vec![0, 8, 0, 0, 1, 0, 0, 0], zero_len]));
        let m = parse_madt(&t).unwrap();
        assert_eq!(m.local_apics.len(), 1);
        assert!(m.problems[0].contains("length 0"), "{:?}", m.problems);
        let overrun = vec![1u8, 200, 0, 0];
        let m = parse_madt(&tbl(b"APIC", &madt_body(&[overrun]))).unwrap();
        assert!(m.io_apics.is_empty());
        assert!(m.problems[0].contains("length 200"));
        let short_ioapic = vec![1u8, 4, 0, 0];
        let m = parse_madt(&tbl(b"APIC", &madt_body(&[short_ioapic]))).unwrap();
        assert!(m.problems[0].contains("needs 12"));
    }

    #[test]
    fn hpet_and_fadt() {
        let mut body = vec![0u8; 20];
        body[4] = 0; // memory space
        body[8..16].copy_from_slice(&0xfed0_0000u64.to_le_bytes());
        let h = parse_hpet(&tbl(b"HPET", &body)).unwrap();
        assert_eq!(h.base, 0xfed0_0000);
        body[4] = 1; // I/O space: refused, no panic
        assert!(parse_hpet(&tbl(b"HPET", &body)).is_err());
        assert!(parse_hpet(&tbl(b"HPET", &[0u8; 3])).is_err());

        let mut f = vec![0u8; 244 - 36];
        f[76 - 36..80 - 36].copy_from_slice(&0x608u32.to_le_bytes());
        f[91 - 36] = 4;
        f[112 - 36..116 - 36].copy_from_slice(&((1u32 << 10) | (1 << 8)).to_le_bytes());
        f[116 - 36] = 1; // reset register in I/O space
        f[120 - 36..128 - 36].copy_from_slice(&0xcf9u64.to_le_bytes());
        f[128 - 36] = 6;
        f[109 - 36] = 2;
        let fadt = parse_fadt(&tbl(b"FACP", &f)).unwrap();
        assert_eq!(fadt.pm_timer, Some(PmTimer { port: 0x608, is_32bit: true }));
        let (g, v) = fadt.reset.unwrap();
        assert_eq!((g.space, g.address, v), (1, 0xcf9, 6));
        assert!(fadt.has_8042);
        assert!(parse_fadt(&tbl(b"FACP", &[0u8; 10])).is_err());
    }

    #[test]
    fn no_panic_on_random_corruption() {
        let base = machine();
        for addr in [0x1000u64, 0x1800, 0x2000, 0x3000] {
            let len = base.0[&addr].len();
            for i in 0..len {
                for bit in [0, 3, 7] {
                    let mut m = machine();
                    m.0.get_mut(&addr).unwrap()[i] ^= 1 << bit;
                    if let Ok(d) = discover(&m, 0x1000) {
                        for t in &d.tables {
                            let _ = parse_madt(t);
                            let _ = parse_mcfg(t);
                            let _ = parse_hpet(t);
                            let _ = parse_fadt(t);
                        }
                    }
                }
            }
        }
    }
}
