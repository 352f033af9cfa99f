//! The 8254 PIT, used only as a last-resort reference for the TSC.

use crate::arch::x86_64::cpu::rdtsc;
use crate::arch::x86_64::port::{inb, outb};

/// Count TSC ticks over 10 ms of PIT channel 2 (one-shot, polled, bounded).
pub fn measure_tsc_hz() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const COUNT: u64 = PIT_HZ / 100;
    // SAFETY: PIT channel 2 and port 0x61 (speaker gate) are legacy devices
    // nobody else uses; the speaker output stays off.
    unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01);
        outb(0x43, 0b1011_0000);
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
        (fired && end > start).then(|| (end - start) * 100)
    }
}
