//! The ACPI PM timer (3.579545 MHz, 24 or 32 bits), a TSC reference when
//! there is no HPET.

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
    let hz = super::calibrate("pmtimer", PM_HZ, mask, || read(p) as u64);
    if hz.is_none() {
        log::warn!("pmtimer: port {:#x} does not count; not used", p.port);
    }
    hz
}
