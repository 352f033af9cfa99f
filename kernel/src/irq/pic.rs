//! The legacy 8259 PICs: remapped away from the exception vectors (so a
//! spurious IRQ 7 can never look like a double fault) and fully masked.

use crate::arch::x86_64::port::{inb, outb};

pub fn remap_and_mask() {
    // SAFETY: the standard ICW1-ICW4 sequence for both PICs, then all masked.
    unsafe {
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, 0x20); // master vectors 0x20..0x27
        outb(0xa1, 0x28); // slave vectors 0x28..0x2f
        outb(0x21, 0x04);
        outb(0xa1, 0x02);
        outb(0x21, 0x01);
        outb(0xa1, 0x01);
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
        let _ = inb(0x21);
    }
}
