//! The local APIC in xAPIC mode (MMIO). x2APIC is reported by the `cpu`
//! command but not used: xAPIC works on every machine we target, including
//! QEMU's TCG.

use crate::mm::paging::{map_physical, PhysKind};
use capos_kcore::acpi::{Madt, Polarity, Trigger};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const REG_ID: u64 = 0x20;
const REG_VERSION: u64 = 0x30;
const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const REG_ESR: u64 = 0x280;
const REG_LVT_TIMER: u64 = 0x320;
const REG_LVT_LINT0: u64 = 0x350;
const REG_LVT_LINT1: u64 = 0x360;
const REG_LVT_ERROR: u64 = 0x370;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const TIMER_PERIODIC: u32 = 1 << 17;

static BASE: AtomicU64 = AtomicU64::new(0);
static PHYS: AtomicU64 = AtomicU64::new(0);
/// LAPIC timer ticks per second at divide-by-16, once calibrated.
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
static TIMER_PERIOD_HZ: AtomicU32 = AtomicU32::new(0);

fn read(reg: u64) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: `base` maps the LAPIC's 4 KiB register page uncached; `reg` is a
    // valid register offset.
    unsafe { core::ptr::read_volatile((base + reg) as *const u32) }
}

fn write(reg: u64, v: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as `read`.
    unsafe { core::ptr::write_volatile((base + reg) as *mut u32, v) }
}

pub fn is_enabled() -> bool {
    BASE.load(Ordering::Relaxed) != 0
}

pub fn physical_base() -> u64 {
    PHYS.load(Ordering::Relaxed)
}

pub fn id() -> u8 {
    if !is_enabled() {
        return 0;
    }
    (read(REG_ID) >> 24) as u8
}

pub fn version() -> u32 {
    if is_enabled() { read(REG_VERSION) } else { 0 }
}

pub fn eoi() {
    if is_enabled() {
        write(REG_EOI, 0);
    }
}

fn lvt_from_madt(polarity: Polarity, trigger: Trigger) -> u32 {
    let mut v = 0b100 << 8; // NMI delivery mode
    if polarity == Polarity::ActiveLow {
        v |= 1 << 13;
    }
    if trigger == Trigger::Level {
        v |= 1 << 15;
    }
    v
}

pub fn init(madt: Option<&Madt>) {
    // The APIC base MSR is authoritative; the MADT's address is a cross-check.
    let (lo, hi): (u32, u32);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU with an APIC.
    unsafe { core::arch::asm!("rdmsr", in("ecx") 0x1bu32, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    let msr = (hi as u64) << 32 | lo as u64;
    let phys = msr & 0x000f_ffff_ffff_f000;
    if let Some(m) = madt {
        if m.local_apic_address != phys {
            log::warn!("lapic: MADT says {:#x}, IA32_APIC_BASE says {:#x}; using the MSR", m.local_apic_address, phys);
        }
    }
    let va = match map_physical(phys, 4096, PhysKind::Mmio) {
        Ok(va) => va,
        Err(e) => {
            log::error!("lapic: cannot map registers at {:#x}: {:?}", phys, e);
            return;
        }
    };
    PHYS.store(phys, Ordering::Relaxed);
    BASE.store(va, Ordering::Relaxed);
    write(REG_TPR, 0);
    write(REG_LVT_TIMER, LVT_MASKED | super::VECTOR_LAPIC_TIMER as u32);
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_MASKED);
    write(REG_LVT_ERROR, LVT_MASKED);
    // NMI inputs as the MADT describes them (usually LINT1).
    let my_uid = madt.and_then(|m| m.local_apics.iter().find(|l| l.apic_id == id() as u32)).map(|l| l.processor_id);
    if let Some(m) = madt {
        for n in &m.local_nmis {
            if n.processor_id == 0xff || Some(n.processor_id) == my_uid {
                let reg = if n.lint == 0 { REG_LVT_LINT0 } else { REG_LVT_LINT1 };
                write(reg, lvt_from_madt(n.polarity, n.trigger));
            }
        }
    }
    write(REG_ESR, 0);
    write(REG_ESR, 0);
    // Software enable with the spurious vector.
    write(REG_SVR, 0x100 | super::VECTOR_SPURIOUS as u32);
    write(REG_EOI, 0);
    log::info!("lapic: id {} version {:#x} at {:#x} (xAPIC)", id(), version() & 0xff, phys);
}

/// Measure the timer's rate against the (already calibrated) TSC.
pub fn calibrate_timer() -> u64 {
    if !is_enabled() || crate::time::tsc_hz() == 0 {
        return 0;
    }
    write(REG_TIMER_DIVIDE, 0x3); // divide by 16
    write(REG_LVT_TIMER, LVT_MASKED | super::VECTOR_LAPIC_TIMER as u32);
    write(REG_TIMER_INITIAL, u32::MAX);
    let start = crate::time::uptime_ns();
    while crate::time::uptime_ns() - start < 10_000_000 {
        core::hint::spin_loop();
    }
    let elapsed = u32::MAX - read(REG_TIMER_CURRENT);
    let ns = crate::time::uptime_ns() - start;
    write(REG_TIMER_INITIAL, 0);
    let hz = elapsed as u64 * 1_000_000_000 / ns.max(1);
    TIMER_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Start the periodic timer at `hz` interrupts per second.
pub fn start_periodic(hz: u32) {
    let rate = TIMER_HZ.load(Ordering::Relaxed);
    if rate == 0 || hz == 0 {
        return;
    }
    let count = (rate / hz as u64).clamp(1, u32::MAX as u64) as u32;
    write(REG_TIMER_DIVIDE, 0x3);
    write(REG_LVT_TIMER, TIMER_PERIODIC | super::VECTOR_LAPIC_TIMER as u32);
    write(REG_TIMER_INITIAL, count);
    TIMER_PERIOD_HZ.store(hz, Ordering::Relaxed);
}

pub fn timer_rate_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

pub fn timer_period_hz() -> u32 {
    TIMER_PERIOD_HZ.load(Ordering::Relaxed)
}
