//! The HPET main counter, used to calibrate the TSC.

use crate::arch::x86_64::cpu::rdtsc;
use crate::mm::paging::{map_physical, PhysKind};
use core::sync::atomic::{AtomicU64, Ordering};

static BASE: AtomicU64 = AtomicU64::new(0);
static PERIOD_FS: AtomicU64 = AtomicU64::new(0);

fn read(reg: u64) -> u64 {
    // SAFETY: BASE maps the HPET register block uncached.
    unsafe { core::ptr::read_volatile((BASE.load(Ordering::Relaxed) + reg) as *const u64) }
}

fn write(reg: u64, v: u64) {
    // SAFETY: as `read`.
    unsafe { core::ptr::write_volatile((BASE.load(Ordering::Relaxed) + reg) as *mut u64, v) }
}

/// Map and start the main counter. Returns the counter frequency in Hz.
pub fn init(h: &capos_kcore::acpi::Hpet) -> Option<u64> {
    if BASE.load(Ordering::Relaxed) == 0 {
        let va = map_physical(h.base, 1024, PhysKind::Mmio).ok()?;
        BASE.store(va, Ordering::Relaxed);
    }
    let period = read(0) >> 32; // femtoseconds per tick
    if period == 0 || period > 100_000_000 {
        log::warn!("hpet: implausible period {} fs; not used", period);
        BASE.store(0, Ordering::Relaxed);
        return None;
    }
    PERIOD_FS.store(period, Ordering::Relaxed);
    write(0x10, read(0x10) | 1); // ENABLE_CNF
    Some(1_000_000_000_000_000 / period)
}

pub fn frequency() -> u64 {
    let p = PERIOD_FS.load(Ordering::Relaxed);
    if p == 0 { 0 } else { 1_000_000_000_000_000 / p }
}

pub fn counter() -> u64 {
    read(0xf0)
}

/// TSC ticks during 10 ms of HPET time.
pub fn measure_tsc_hz() -> Option<u64> {
    let hz = frequency();
    if hz == 0 {
        return None;
    }
    let want = hz / 100;
    let c0 = counter();
    let t0 = rdtsc();
    let mut spins = 0u64;
    loop {
        let c = counter();
        if c.wrapping_sub(c0) >= want {
            let t1 = rdtsc();
            return Some(((t1 - t0) as u128 * hz as u128 / c.wrapping_sub(c0) as u128) as u64);
        }
        spins += 1;
        if spins > 100_000_000 {
            log::warn!("hpet: counter does not advance; not used");
            return None;
        }
    }
}
