//! The CMOS real-time clock: the wall-clock fallback when the bootloader
//! gave no boot time.

use crate::arch::x86_64::port::{inb, outb};
use capos_kcore::rtc;
use capos_text::civil;

fn cmos(reg: u8) -> u8 {
    // SAFETY: CMOS index/data ports; NMI-disable bit kept set while reading.
    unsafe {
        outb(0x70, 0x80 | reg);
        inb(0x71)
    }
}

fn snapshot(century_reg: u8) -> [u8; 7] {
    [cmos(0x00), cmos(0x02), cmos(0x04), cmos(0x07), cmos(0x08), cmos(0x09), if century_reg != 0 { cmos(century_reg) } else { 0 }]
}

/// Unix seconds from the RTC, or `None` if it gives nonsense.
pub fn read(century_reg: u8) -> Option<i64> {
    // Wait (bounded) for no update in progress, then read until two
    // consecutive snapshots agree.
    for _ in 0..100_000 {
        if cmos(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let mut a = snapshot(century_reg);
    for _ in 0..10 {
        let b = snapshot(century_reg);
        if a == b {
            break;
        }
        a = b;
    }
    let status_b = cmos(0x0b);
    let binary = status_b & 0x04 != 0;
    let h24 = status_b & 0x02 != 0;
    let conv = |v: u8| if binary { v } else { rtc::bcd(v) };
    let [sec, min, hour_raw, day, month, year, century] = a;
    let pm = hour_raw & 0x80 != 0;
    let mut hour = conv(hour_raw & 0x7f) as u32;
    if !h24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let dt = rtc::rtc_datetime(
        conv(century) as u32,
        conv(year) as u32,
        conv(month) as u32,
        conv(day) as u32,
        hour,
        conv(min) as u32,
        conv(sec) as u32,
    )?;
    Some(civil::to_unix(&dt))
}
