//! I/O APICs from the MADT: every redirection entry starts masked; routes
//! are programmed one by one as drivers claim them.

use crate::mm::mmio::{MmioRegion, Rw32};
use alloc::vec::Vec;
use capos_kcore::acpi::Madt;
use crate::sync::{classes, Lock};

pub struct IoApic {
    pub id: u8,
    pub phys: u64,
    /// IOREGSEL: which register IOWIN reaches. The pair is one resource:
    /// callers hold the IOAPICS lock.
    select: Rw32,
    /// IOWIN: the selected register.
    window: Rw32,
    pub gsi_base: u32,
    pub entries: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        self.select.write(reg);
        self.window.read()
    }

    fn write(&self, reg: u32, v: u32) {
        self.select.write(reg);
        self.window.write(v);
    }

    fn set_entry(&self, index: u32, low: u32, high: u32) {
        // Mask first so a half-written entry never fires.
        self.write(0x10 + 2 * index, 1 << 16);
        self.write(0x11 + 2 * index, high);
        self.write(0x10 + 2 * index, low);
    }
}

static IOAPICS: Lock<Vec<IoApic>> = Lock::new(&classes::IRQ_IOAPICS, Vec::new());

/// A programmed route, for the `irq` command.
#[derive(Clone, Debug)]
pub struct Route {
    pub gsi: u32,
    pub vector: u8,
    pub active_low: bool,
    pub level: bool,
    pub dest: u8,
    pub masked: bool,
    pub what: &'static str,
}

static ROUTES: Lock<Vec<Route>> = Lock::new(&classes::IRQ_ROUTES, Vec::new());

pub fn init(madt: Option<&Madt>) {
    let Some(m) = madt else {
        log::warn!("ioapic: no MADT, no I/O APIC routes");
        return;
    };
    let mut list = IOAPICS.lock();
    for a in &m.io_apics {
        let regs = match MmioRegion::map(a.address as u64, 0x20) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("ioapic: cannot map {:#x}: {:?}", a.address, e);
                continue;
            }
        };
        let (select, window) = match (regs.reg(0), regs.reg(0x10)) {
            (Ok(s), Ok(w)) => (s, w),
            (Err(e), _) | (_, Err(e)) => {
                log::warn!("ioapic: {}", e);
                continue;
            }
        };
        let mut io = IoApic { id: a.id, phys: a.address as u64, select, window, gsi_base: a.gsi_base, entries: 0 };
        let ver = io.read(1);
        io.entries = ((ver >> 16) & 0xff) + 1;
        for i in 0..io.entries {
            io.set_entry(i, 1 << 16, 0);
        }
        log::info!("ioapic: id {} at {:#x}, GSIs {}-{}, all masked", io.id, io.phys, io.gsi_base, io.gsi_base + io.entries - 1);
        list.push(io);
    }
}

/// Route `gsi` to `vector` on the local APIC `dest`, unmasked.
pub fn route(gsi: u32, vector: u8, active_low: bool, level: bool, dest: u8, what: &'static str) -> Result<(), &'static str> {
    let list = IOAPICS.lock();
    let io = list
        .iter()
        .find(|io| gsi >= io.gsi_base && gsi < io.gsi_base + io.entries)
        .ok_or("no I/O APIC handles that GSI")?;
    let mut low = vector as u32; // fixed delivery, physical destination
    if active_low {
        low |= 1 << 13;
    }
    if level {
        low |= 1 << 15;
    }
    io.set_entry(gsi - io.gsi_base, low, (dest as u32) << 24);
    ROUTES.lock().push(Route { gsi, vector, active_low, level, dest, masked: false, what });
    Ok(())
}

pub fn routes() -> Vec<Route> {
    ROUTES.lock().clone()
}

pub fn summary() -> Vec<(u8, u64, u32, u32)> {
    IOAPICS.lock().iter().map(|io| (io.id, io.phys, io.gsi_base, io.entries)).collect()
}
