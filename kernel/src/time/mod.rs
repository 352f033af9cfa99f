//! Early monotonic time: the TSC, calibrated once against the PIT.
//!
//! This is the boot-time clock used for log timestamps. The platform layer
//! refines the frequency (CPUID leaf 0x15/0x16, HPET, ACPI PM timer).

use crate::arch::x86_64::cpu::{cpuid, rdtsc};
use crate::arch::x86_64::port::{inb, outb};
use core::sync::atomic::{AtomicU64, Ordering};

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    Cpuid15,
    Pit,
    Assumed,
}

impl TscSource {
    pub fn name(self) -> &'static str {
        match self {
            TscSource::Cpuid15 => "CPUID leaf 0x15",
            TscSource::Pit => "PIT calibration",
            TscSource::Assumed => "assumed 1 GHz (no calibration source)",
        }
    }
}

static SOURCE: spin::Once<TscSource> = spin::Once::new();

/// Record the boot TSC value; call first thing.
pub fn mark_boot() {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
}

fn from_cpuid() -> Option<u64> {
    if cpuid(0, 0).0 < 0x15 {
        return None;
    }
    let (den, num, crystal, _) = cpuid(0x15, 0);
    if den == 0 || num == 0 || crystal == 0 {
        return None;
    }
    Some(crystal as u64 * num as u64 / den as u64)
}

/// Count TSC ticks over 10 ms of PIT channel 2 (one-shot, polled).
fn from_pit() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const COUNT: u64 = PIT_HZ / 100; // 10 ms
    // SAFETY: PIT channel 2 and port 0x61 (speaker gate) are legacy devices
    // nobody else uses during boot; the speaker output is kept off.
    unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01);
        outb(0x43, 0b1011_0000); // channel 2, lo/hi byte, mode 0, binary
        outb(0x42, COUNT as u8);
        outb(0x42, (COUNT >> 8) as u8);
        let g = inb(0x61);
        outb(0x61, g & !0x01);
        outb(0x61, g | 0x01);
        let start = rdtsc();
        let mut fired = false;
        for _ in 0..50_000_000u64 {
            if inb(0x61) & 0x20 != 0 {
                fired = true;
                break;
            }
        }
        let end = rdtsc();
        outb(0x61, gate);
        if !fired || end <= start {
            return None;
        }
        Some((end - start) * 100)
    }
}

/// Determine the TSC frequency. Returns the source used.
pub fn calibrate() -> TscSource {
    let (hz, src) = if let Some(hz) = from_cpuid() {
        (hz, TscSource::Cpuid15)
    } else if let Some(hz) = from_pit() {
        (hz, TscSource::Pit)
    } else {
        (1_000_000_000, TscSource::Assumed)
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    *SOURCE.call_once(|| src)
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn tsc_source() -> Option<TscSource> {
    SOURCE.get().copied()
}

/// Nanoseconds since `mark_boot` (0 before calibration).
pub fn uptime_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let ticks = rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (ticks as u128 * 1_000_000_000 / hz as u128) as u64
}
