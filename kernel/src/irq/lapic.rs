//! The local APIC in xAPIC mode (MMIO). x2APIC is reported by the `cpu`
//! command but not used: xAPIC works on every machine we target, including
//! QEMU's TCG.

use crate::mm::mmio::{MmioRegion, OutOfWindow, Ro32, Rw32, Wo32};
use alloc::vec::Vec;
use capos_kcore::acpi::{LocalApic, LocalApicNmi, Madt, Polarity, Trigger};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use spin::Once;

const LVT_MASKED: u32 = 1 << 16;
const TIMER_PERIODIC: u32 = 1 << 17;

/// The registers the kernel uses, each checked against the 4 KiB register
/// page once, when the page is mapped.
struct Registers {
    id: Ro32,
    version: Ro32,
    tpr: Rw32,
    eoi: Wo32,
    svr: Rw32,
    esr: Rw32,
    lvt_timer: Rw32,
    lvt_lint0: Rw32,
    lvt_lint1: Rw32,
    lvt_error: Rw32,
    icr_low: Rw32,
    icr_high: Rw32,
    timer_initial: Rw32,
    timer_current: Ro32,
    timer_divide: Rw32,
}

impl Registers {
    fn new(page: &MmioRegion) -> Result<Registers, OutOfWindow> {
        Ok(Registers {
            id: page.reg(0x20)?,
            version: page.reg(0x30)?,
            tpr: page.reg(0x80)?,
            eoi: page.reg(0xb0)?,
            svr: page.reg(0xf0)?,
            esr: page.reg(0x280)?,
            lvt_timer: page.reg(0x320)?,
            lvt_lint0: page.reg(0x350)?,
            lvt_lint1: page.reg(0x360)?,
            lvt_error: page.reg(0x370)?,
            icr_low: page.reg(0x300)?,
            icr_high: page.reg(0x310)?,
            timer_initial: page.reg(0x380)?,
            timer_current: page.reg(0x390)?,
            timer_divide: page.reg(0x3e0)?,
        })
    }
}

static REGS: Once<Registers> = Once::new();
static PHYS: AtomicU64 = AtomicU64::new(0);
/// LAPIC timer ticks per second at divide-by-16, once calibrated.
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
static TIMER_PERIOD_HZ: AtomicU32 = AtomicU32::new(0);

pub fn is_enabled() -> bool {
    REGS.is_completed()
}

pub fn physical_base() -> u64 {
    PHYS.load(Ordering::Relaxed)
}

pub fn id() -> u8 {
    REGS.get().map_or(0, |r| (r.id.read() >> 24) as u8)
}

pub fn version() -> u32 {
    REGS.get().map_or(0, |r| r.version.read())
}

pub fn eoi() {
    if let Some(r) = REGS.get() {
        r.eoi.write(0);
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
    let msr = crate::arch::x86_64::cpu::read_apic_base();
    let phys = msr & 0x000f_ffff_ffff_f000;
    if let Some(m) = madt {
        if m.local_apic_address != phys {
            log::warn!("lapic: MADT says {:#x}, IA32_APIC_BASE says {:#x}; using the MSR", m.local_apic_address, phys);
        }
    }
    let page = match MmioRegion::map(phys, 4096) {
        Ok(page) => page,
        Err(e) => {
            log::error!("lapic: cannot map registers at {:#x}: {:?}", phys, e);
            return;
        }
    };
    let regs = match Registers::new(&page) {
        Ok(regs) => regs,
        Err(e) => {
            log::error!("lapic: {}", e);
            return;
        }
    };
    PHYS.store(phys, Ordering::Relaxed);
    let r = REGS.call_once(|| regs);
    // What the APs need of the MADT to set up their own LAPIC (`init_ap`).
    MADT_CPUS.call_once(|| match madt {
        Some(m) => (m.local_apics.clone(), m.local_nmis.clone()),
        None => (Vec::new(), Vec::new()),
    });
    setup_local(r);
    log::info!("lapic: id {} version {:#x} at {:#x} (xAPIC)", id(), version() & 0xff, phys);
}

/// The MADT's processors and LINT NMI entries, kept for the APs.
static MADT_CPUS: Once<(Vec<LocalApic>, Vec<LocalApicNmi>)> = Once::new();

/// This CPU's LAPIC: task priority 0, every LVT masked, the NMI inputs the
/// MADT names for this processor's uid (or all), the spurious vector and
/// software enable. The registers are the same page on every CPU (each
/// CPU sees its own LAPIC there).
fn setup_local(r: &Registers) {
    r.tpr.write(0);
    r.lvt_timer.write(LVT_MASKED | super::VECTOR_LAPIC_TIMER as u32);
    r.lvt_lint0.write(LVT_MASKED);
    r.lvt_lint1.write(LVT_MASKED);
    r.lvt_error.write(LVT_MASKED);
    // NMI inputs as the MADT describes them (usually LINT1).
    if let Some((cpus, nmis)) = MADT_CPUS.get() {
        let my_uid = cpus.iter().find(|l| l.apic_id == id() as u32).map(|l| l.processor_id);
        for n in nmis {
            if n.processor_id == 0xff || n.processor_id == u32::MAX || Some(n.processor_id) == my_uid {
                let reg = if n.lint == 0 { r.lvt_lint0 } else { r.lvt_lint1 };
                reg.write(lvt_from_madt(n.polarity, n.trigger));
            }
        }
    }
    r.esr.write(0);
    r.esr.write(0);
    // Software enable with the spurious vector.
    r.svr.write(0x100 | super::VECTOR_SPURIOUS as u32);
    r.eoi.write(0);
}

/// An application processor's LAPIC, set up as the bootstrap CPU's was;
/// runs on that AP, after the bootstrap CPU's [`init`].
pub fn init_ap() {
    if let Some(r) = REGS.get() {
        setup_local(r);
    }
}

const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_NMI: u32 = 0b100 << 8;
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;
/// How long to wait for the ICR to accept an IPI (bounded, not forever).
const ICR_SPINS: u32 = 1_000_000;

/// Write the ICR (destination first; the low half sends) and wait for the
/// delivery status to go idle. Interrupts are off meanwhile so an
/// interrupt handler's IPI cannot land between the two halves. Returns
/// false when the LAPIC is not up or the IPI stayed pending.
fn send(apic_id: u32, low: u32) -> bool {
    let Some(r) = REGS.get() else { return false };
    crate::arch::x86_64::trap::without_interrupts(|| {
        r.icr_high.write(apic_id << 24);
        r.icr_low.write(low);
        for _ in 0..ICR_SPINS {
            if r.icr_low.read() & ICR_DELIVERY_PENDING == 0 {
                return true;
            }
            core::hint::spin_loop();
        }
        false
    })
}

/// Send fixed interrupt `vector` to the CPU whose APIC id is `apic_id`
/// (physical destination, edge). False when it could not be delivered.
pub fn send_ipi(apic_id: u32, vector: u8) -> bool {
    send(apic_id, vector as u32)
}

/// NMI to `apic_id` (a self-test of the NMI entry, `isr_paranoid`).
pub fn send_nmi(apic_id: u32) -> bool {
    send(apic_id, ICR_NMI)
}

/// INIT (level assert) to `apic_id`: the CPU resets and waits for a SIPI.
pub fn send_init(apic_id: u32) -> bool {
    send(apic_id, ICR_INIT | ICR_LEVEL_ASSERT)
}

/// Start-up IPI: `apic_id` starts in real mode at `page << 12`.
pub fn send_startup(apic_id: u32, page: u8) -> bool {
    send(apic_id, ICR_STARTUP | ICR_LEVEL_ASSERT | page as u32)
}

/// Measure the timer's rate against the (already calibrated) TSC: its
/// count read at both ends of about 10 ms, each end the narrowest of a
/// few reads between two TSC reads, as the TSC is measured against the
/// HPET (`capos_kcore::tsc_calibration`; a read of this register is an
/// exit to the emulator under QEMU, which a loaded host can make wait).
pub fn calibrate_timer() -> u64 {
    use capos_kcore::tsc_calibration::{self as cal, Refused};
    use crate::arch::x86_64::cpu::rdtsc;
    let Some(r) = REGS.get() else { return 0 };
    let tsc_hz = crate::time::tsc_hz();
    if tsc_hz == 0 {
        return 0;
    }
    r.timer_divide.write(0x3); // divide by 16
    r.lvt_timer.write(LVT_MASKED | super::VECTOR_LAPIC_TIMER as u32);
    // The count as a counter that goes up (the timer counts down from
    // its initial count, which each window sets afresh).
    let mut count = || (u32::MAX - r.timer_current.read()) as u64;
    let window_tsc = crate::time::tsc_ticks(10_000_000);
    // `measure` gives TSC ticks per second of a reference said to run at
    // 1 GHz: the timer's rate is the TSC's over that, times 10^9.
    let mut window = || {
        r.timer_initial.write(u32::MAX);
        let start = crate::time::window_end(&mut count);
        while rdtsc().wrapping_sub(start.tsc_after) < window_tsc {
            core::hint::spin_loop();
        }
        let end = crate::time::window_end(&mut count);
        if end.reference <= start.reference {
            return Err(Refused::NoProgress);
        }
        cal::measure(start, end, 1_000_000_000, u32::MAX as u64)
    };
    let measured = cal::calibrate(&mut window);
    r.timer_initial.write(0);
    let per_ghz = match measured {
        Some(Ok(m)) => m.hz,
        Some(Err(m)) => {
            log::warn!("lapic: every timer calibration window was interrupted inside a count read (the narrowest by {} ppm of the window); using it", m.bracket_ppm);
            m.hz
        }
        None => {
            log::warn!("lapic: the timer's count did not move in 10 ms; no timer");
            return 0;
        }
    };
    let hz = (tsc_hz as u128 * 1_000_000_000 / per_ghz.max(1) as u128) as u64;
    TIMER_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Start the periodic timer at `hz` interrupts per second.
pub fn start_periodic(hz: u32) {
    let rate = TIMER_HZ.load(Ordering::Relaxed);
    let Some(r) = REGS.get() else { return };
    if rate == 0 || hz == 0 {
        return;
    }
    let count = (rate / hz as u64).clamp(1, u32::MAX as u64) as u32;
    r.timer_divide.write(0x3);
    r.lvt_timer.write(TIMER_PERIODIC | super::VECTOR_LAPIC_TIMER as u32);
    r.timer_initial.write(count);
    TIMER_PERIOD_HZ.store(hz, Ordering::Relaxed);
}

/// Mask or unmask this CPU's timer interrupt, keeping its mode, vector
/// and count. The benchmarks mask it around a counted region: how many
/// ticks land in one follows host time (under `-icount` a halted CPU is
/// charged host real time), and each tick's handler would be counted.
pub fn set_timer_masked(masked: bool) {
    let Some(r) = REGS.get() else { return };
    let lvt = r.lvt_timer.read();
    r.lvt_timer.write(if masked { lvt | LVT_MASKED } else { lvt & !LVT_MASKED });
}

pub fn timer_rate_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

pub fn timer_period_hz() -> u32 {
    TIMER_PERIOD_HZ.load(Ordering::Relaxed)
}
