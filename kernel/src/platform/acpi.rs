//! ACPI bring-up: find every table from the RSDP the bootloader passed,
//! validate it (kcore::acpi does the parsing, bounded and panic-free), and
//! keep what the rest of the kernel needs: the MADT (interrupt controllers
//! and routing), MCFG (PCIe ECAM), HPET and FADT (PM timer, reset register).
//! A missing or malformed table is logged and skipped.

use crate::mm::paging::read_firmware;
use alloc::vec::Vec;
use capos_kcore::acpi::{self, Discovery, EcamRegion, Fadt, Hpet, Madt, PhysMemory};
use spin::Once;

/// Reads firmware memory through read-only HHDM mappings made on demand.
struct FirmwareMemory;

impl PhysMemory for FirmwareMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        if buf.is_empty() {
            return true;
        }
        // Firmware tables live below 64 GiB on every machine we target;
        // anything else is a corrupt pointer.
        if addr == 0 || addr.checked_add(buf.len() as u64).map_or(true, |e| e > (64 << 30)) {
            return false;
        }
        read_firmware(addr, buf).is_ok()
    }
}

pub struct AcpiInfo {
    pub discovery: Option<Discovery>,
    pub error: Option<alloc::string::String>,
    pub madt: Option<Madt>,
    pub mcfg: Vec<EcamRegion>,
    pub hpet: Option<Hpet>,
    pub fadt: Option<Fadt>,
}

static ACPI: Once<AcpiInfo> = Once::new();

pub fn info() -> Option<&'static AcpiInfo> {
    ACPI.get()
}

pub fn init(rsdp: Option<u64>) -> &'static AcpiInfo {
    ACPI.call_once(|| {
        let mut info = AcpiInfo { discovery: None, error: None, madt: None, mcfg: Vec::new(), hpet: None, fadt: None };
        let Some(rsdp) = rsdp else {
            log::warn!("acpi: the bootloader passed no RSDP; running without ACPI");
            info.error = Some("no RSDP".into());
            return info;
        };
        let d = match acpi::discover(&FirmwareMemory, rsdp) {
            Ok(d) => d,
            Err(e) => {
                log::error!("acpi: cannot read the root tables: {}", e);
                info.error = Some(alloc::format!("{}", e));
                return info;
            }
        };
        log::info!(
            "acpi: RSDP rev {} at {:#x}, {} ({}), {} tables",
            d.rsdp.revision,
            rsdp,
            d.root_kind,
            if d.root_checksum_ok { "checksum ok" } else { "CHECKSUM BAD" },
            d.listing.len()
        );
        for t in &d.listing {
            if let Some(p) = &t.problem {
                log::warn!("acpi: table {} at {:#x} skipped: {}", core::str::from_utf8(&t.signature).unwrap_or("????"), t.addr, p);
            }
        }
        if let Some(t) = d.find(b"APIC") {
            match acpi::parse_madt(t) {
                Ok(m) => {
                    for p in &m.problems {
                        log::warn!("acpi: MADT: {}", p);
                    }
                    log::info!(
                        "acpi: MADT: {} local APICs, {} I/O APICs, {} overrides, LAPIC at {:#x}",
                        m.local_apics.len(), m.io_apics.len(), m.overrides.len(), m.local_apic_address
                    );
                    info.madt = Some(m);
                }
                Err(e) => log::warn!("acpi: MADT skipped: {}", e),
            }
        } else {
            log::warn!("acpi: no MADT");
        }
        match d.find(b"MCFG").map(acpi::parse_mcfg) {
            Some(Ok(r)) => {
                for e in &r {
                    log::info!("acpi: MCFG: ECAM segment {} buses {}-{} at {:#x}", e.segment, e.bus_start, e.bus_end, e.base);
                }
                info.mcfg = r;
            }
            Some(Err(e)) => log::warn!("acpi: MCFG skipped: {}", e),
            None => log::info!("acpi: no MCFG; PCI config space through legacy ports only"),
        }
        match d.find(b"HPET").map(acpi::parse_hpet) {
            Some(Ok(h)) => {
                log::info!("acpi: HPET at {:#x}", h.base);
                info.hpet = Some(h);
            }
            Some(Err(e)) => log::warn!("acpi: HPET skipped: {}", e),
            None => log::info!("acpi: no HPET"),
        }
        match d.find(b"FACP").map(acpi::parse_fadt) {
            Some(Ok(f)) => {
                log::info!(
                    "acpi: FADT: PM timer {}, reset register {}",
                    f.pm_timer.map(|p| alloc::format!("port {:#x} ({}-bit)", p.port, if p.is_32bit { 32 } else { 24 })).unwrap_or("none".into()),
                    f.reset.map(|(g, v)| alloc::format!("space {} at {:#x} value {:#x}", g.space, g.address, v)).unwrap_or("none".into())
                );
                info.fadt = Some(f);
            }
            Some(Err(e)) => log::warn!("acpi: FADT skipped: {}", e),
            None => log::warn!("acpi: no FADT"),
        }
        info.discovery = Some(d);
        info
    })
}
