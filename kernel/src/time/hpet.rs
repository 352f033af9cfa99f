//! The HPET main counter, used to calibrate the TSC.

use crate::mm::mmio::{MmioRegion, Ro64, Rw64};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;

/// The registers used, each checked against the 1 KiB register block once,
/// when it is mapped.
struct Registers {
    /// General capabilities and ID: the period in femtoseconds in bits 63:32.
    capabilities: Ro64,
    /// General configuration: bit 0 is ENABLE_CNF.
    config: Rw64,
    main_counter: Rw64,
}

static REGS: Once<Registers> = Once::new();
/// Femtoseconds per tick; zero until a plausible period was read.
static PERIOD_FS: AtomicU64 = AtomicU64::new(0);

fn map(h: &capos_kcore::acpi::Hpet) -> Option<&'static Registers> {
    if let Some(r) = REGS.get() {
        return Some(r);
    }
    let block = MmioRegion::map(h.base, 1024).ok()?;
    let regs = Registers { capabilities: block.reg(0).ok()?, config: block.reg(0x10).ok()?, main_counter: block.reg(0xf0).ok()? };
    Some(REGS.call_once(|| regs))
}

/// Map and start the main counter. Returns the counter frequency in Hz.
pub fn init(h: &capos_kcore::acpi::Hpet) -> Option<u64> {
    let r = map(h)?;
    let period = r.capabilities.read() >> 32; // femtoseconds per tick
    if period == 0 || period > 100_000_000 {
        log::warn!("hpet: implausible period {} fs; not used", period);
        return None;
    }
    PERIOD_FS.store(period, Ordering::Relaxed);
    r.config.write(r.config.read() | 1); // ENABLE_CNF
    Some(1_000_000_000_000_000 / period)
}

pub fn frequency() -> u64 {
    let p = PERIOD_FS.load(Ordering::Relaxed);
    if p == 0 { 0 } else { 1_000_000_000_000_000 / p }
}

/// The main counter (zero if the HPET was never mapped).
pub fn counter() -> u64 {
    REGS.get().map_or(0, |r| r.main_counter.read())
}

/// The TSC's frequency over about 10 ms of HPET time, each counter read
/// bracketed by TSC reads (`capos_kcore::tsc_calibration`).
pub fn measure_tsc_hz() -> Option<u64> {
    let hz = frequency();
    if hz == 0 {
        return None;
    }
    let tsc_hz = super::calibrate("hpet", hz, u64::MAX, counter);
    if tsc_hz.is_none() {
        log::warn!("hpet: counter does not advance; not used");
    }
    tsc_hz
}
