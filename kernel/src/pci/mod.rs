//! PCI and PCIe: configuration access through the legacy port pair
//! (0xCF8/0xCFC) or ECAM (from the MCFG), recursive enumeration through
//! bridges, BAR sizing, capability lists, MSI-X, and validated BAR mappings
//! for drivers. Every device remembers the backend it was found through.

pub mod config;
pub mod msix;

use alloc::vec::Vec;
use capos_kcore::pci::{decode_bar, region_in_bar, walk_capabilities, Bar, BarKind, CapWalk, ConfigSpace};
use config::{Backend, Function};
use spin::Once;

#[derive(Clone, Debug)]
pub struct Device {
    pub func: Function,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub bars: Vec<Bar>,
    pub caps: CapWalk,
    /// For bridges: (secondary, subordinate) bus numbers.
    pub bridge_buses: Option<(u8, u8)>,
}

impl Device {
    pub fn address(&self) -> alloc::string::String {
        alloc::format!("{:04x}:{:02x}:{:02x}.{}", self.func.segment, self.func.bus, self.func.device, self.func.function)
    }

    pub fn bar(&self, index: u8) -> Option<&Bar> {
        self.bars.iter().find(|b| b.index == index)
    }

    pub fn find_cap(&self, id: u8) -> Option<u8> {
        self.caps.caps.iter().find(|c| c.id == id).map(|c| c.offset)
    }
}

pub struct Pci {
    pub devices: Vec<Device>,
    pub backend_name: &'static str,
}

static PCI: Once<Pci> = Once::new();

pub fn get() -> Option<&'static Pci> {
    PCI.get()
}

const MAX_DEVICES: usize = 256;
const MAX_DEPTH: u32 = 16;

struct Scan {
    devices: Vec<Device>,
    visited_buses: [bool; 256],
    problems: Vec<alloc::string::String>,
}

fn size_bars(f: &Function, count: u8) -> Vec<Bar> {
    let mut bars = Vec::new();
    // Decode off while probing so a half-written BAR never claims addresses.
    let cmd = f.read16(0x04);
    f.write16(0x04, cmd & !0x3);
    let mut i = 0u8;
    while i < count {
        let off = 0x10 + 4 * i as u16;
        let value = f.read32(off);
        f.write32(off, 0xffff_ffff);
        let probe = f.read32(off);
        f.write32(off, value);
        let is_mem64 = value & 1 == 0 && (value >> 1) & 3 == 2;
        let upper = if is_mem64 && i + 1 < count {
            let hi_off = off + 4;
            let hi = f.read32(hi_off);
            f.write32(hi_off, 0xffff_ffff);
            let hi_probe = f.read32(hi_off);
            f.write32(hi_off, hi);
            Some((hi, hi_probe))
        } else {
            None
        };
        if let Some(b) = decode_bar(i, value, probe, upper) {
            bars.push(b);
        }
        i += if is_mem64 { 2 } else { 1 };
    }
    f.write16(0x04, cmd);
    bars
}

fn scan_bus(s: &mut Scan, backend: &Backend, segment: u16, bus: u8, depth: u32) {
    if depth > MAX_DEPTH || s.visited_buses[bus as usize] {
        if s.visited_buses[bus as usize] {
            s.problems.push(alloc::format!("bus {:02x} reached twice; bridge loop ignored", bus));
        }
        return;
    }
    s.visited_buses[bus as usize] = true;
    for dev in 0..32u8 {
        let f0 = Function { segment, bus, device: dev, function: 0, backend: backend.clone() };
        if f0.read16(0) == 0xffff {
            continue;
        }
        let multi = f0.read8(0x0e) & 0x80 != 0;
        for func in 0..if multi { 8 } else { 1 } {
            let f = Function { function: func, ..f0.clone() };
            let vendor = f.read16(0);
            if vendor == 0xffff {
                continue;
            }
            if s.devices.len() >= MAX_DEVICES {
                s.problems.push("more than 256 functions; the rest ignored".into());
                return;
            }
            let header_type = f.read8(0x0e) & 0x7f;
            let class = f.read8(0x0b);
            let subclass = f.read8(0x0a);
            let bars = match header_type {
                0 => size_bars(&f, 6),
                1 => size_bars(&f, 2),
                _ => Vec::new(),
            };
            let caps = walk_capabilities(&f);
            if let Some(p) = caps.problem {
                s.problems.push(alloc::format!("{:02x}:{:02x}.{}: {}", bus, dev, func, p));
            }
            let bridge_buses = (header_type == 1).then(|| (f.read8(0x19), f.read8(0x1a)));
            s.devices.push(Device {
                vendor,
                device: f.read16(2),
                class,
                subclass,
                prog_if: f.read8(0x09),
                bars,
                caps,
                bridge_buses,
                func: f.clone(),
            });
            if let Some((secondary, _)) = bridge_buses {
                if secondary != 0 && secondary > bus {
                    let b = backend.for_bus(secondary);
                    scan_bus(s, &b, segment, secondary, depth + 1);
                } else if secondary != 0 {
                    s.problems.push(alloc::format!("bridge {:02x}:{:02x}.{} has secondary bus {} <= {}; not followed", bus, dev, func, secondary, bus));
                }
            }
        }
    }
}

/// Enumerate segment 0 through ECAM when the MCFG describes it, the legacy
/// ports otherwise.
pub fn init(ecam: &[capos_kcore::acpi::EcamRegion]) -> &'static Pci {
    PCI.call_once(|| {
        let backend = Backend::choose(ecam);
        let backend_name = backend.name();
        let mut s = Scan { devices: Vec::new(), visited_buses: [false; 256], problems: Vec::new() };
        let b0 = backend.for_bus(0);
        scan_bus(&mut s, &b0, 0, 0, 0);
        for p in &s.problems {
            log::warn!("pci: {}", p);
        }
        log::info!("pci: {} functions found through {}", s.devices.len(), backend_name);
        for d in &s.devices {
            log::debug!(
                "pci: {} {:04x}:{:04x} class {:02x}{:02x} {}",
                d.address(), d.vendor, d.device, d.class, d.subclass,
                capos_kcore::pci::class_name(d.class, d.subclass)
            );
        }
        Pci { devices: s.devices, backend_name }
    })
}

#[derive(Debug)]
#[expect(dead_code, reason = "the payloads are read only by Debug, in the error messages that print them")]
pub enum BarMapError {
    NoSuchBar(u8),
    NotMemory(u8),
    OutOfRange { bar: u8, offset: u64, len: u64, size: u64 },
    Map,
}

/// Map `[offset, offset + len)` of a memory BAR uncached as a checked
/// register window: every register taken from it is known to lie inside
/// that part of the BAR. Rejects regions outside the BAR.
pub fn map_bar_mmio(dev: &Device, bar: u8, offset: u64, len: u64) -> Result<crate::mm::mmio::MmioRegion, BarMapError> {
    let b = dev.bar(bar).ok_or(BarMapError::NoSuchBar(bar))?;
    if b.kind == BarKind::Io {
        return Err(BarMapError::NotMemory(bar));
    }
    if !region_in_bar(b, offset, len) || b.address == 0 {
        return Err(BarMapError::OutOfRange { bar, offset, len, size: b.size });
    }
    crate::mm::mmio::MmioRegion::map(b.address + offset, len).map_err(|_| BarMapError::Map)
}

/// Turn off bus mastering for a function: it can no longer start DMA. For a
/// device that will not stop by its own protocol (e.g. an NVMe controller
/// that does not finish a reset), so it cannot write into memory the
/// kernel hands out again.
pub fn disable_bus_master(func: &config::Function) {
    let cmd = func.read16(0x04);
    func.write16(0x04, cmd & !0x4);
}

/// Turn on memory decoding and bus mastering (DMA) for a device.
pub fn enable_bus_master(dev: &Device) {
    let cmd = dev.func.read16(0x04);
    dev.func.write16(0x04, cmd | 0x2 | 0x4);
}
