//! The ACPI PM timer (3.579545 MHz, 24 or 32 bits), a TSC reference when
//! there is no HPET.

use crate::arch::x86_64::cpu::rdtsc;
use crate::arch::x86_64::port::inl;
use capos_kcore::acpi::PmTimer;

pub const PM_HZ: u64 = 3_579_545;

fn read(p: PmTimer) -> u32 {
    // SAFETY: the FADT names this port as the PM timer; reading it has no
    // side effects.
    let v = unsafe { inl(p.port) };
    if p.is_32bit { v } else { v & 0x00ff_ffff }
}

pub fn measure_tsc_hz(p: PmTimer) -> Option<u64> {
    let mask: u64 = if p.is_32bit { 0xffff_ffff } else { 0x00ff_ffff };
    let want = PM_HZ / 100;
    let c0 = read(p) as u64;
    let t0 = rdtsc();
    for _ in 0..100_000_000u64 {
        let c = read(p) as u64;
        let elapsed = c.wrapping_sub(c0) & mask;
        if elapsed >= want {
            let t1 = rdtsc();
            return Some((t1 - t0) * PM_HZ / elapsed);
        }
    }
    log::warn!("pmtimer: port {:#x} does not count; not used", p.port);
    None
}
