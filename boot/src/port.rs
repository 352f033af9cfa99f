//! Raw x86 port I/O the loader needs outside UEFI's services: the serial
//! port after ExitBootServices, QEMU detection and its debug-exit device.

use core::arch::asm;

/// Value written to the isa-debug-exit port when the loader fails. QEMU
/// exits with `(value << 1) | 1`, i.e. 37; the runner knows this code.
pub const EXIT_LOADER_ERROR: u8 = 0x12;
const DEBUG_EXIT_PORT: u16 = 0xf4;
const COM1: u16 = 0x3f8;
const FW_CFG_SELECTOR: u16 = 0x510;
const FW_CFG_DATA: u16 = 0x511;

fn outb(port: u16, value: u8) {
    // SAFETY: writes to fixed legacy ports (COM1, fw_cfg, debug-exit) with no
    // memory side effects.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

fn outw(port: u16, value: u16) {
    // SAFETY: as above.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags)) }
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: reads a legacy port; no memory side effects.
    unsafe { asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags)) }
    v
}

/// QEMU's fw_cfg device answers selector 0 (signature) with "QEMU".
pub fn running_under_qemu() -> bool {
    outw(FW_CFG_SELECTOR, 0);
    let mut sig = [0u8; 4];
    for b in &mut sig {
        *b = inb(FW_CFG_DATA);
    }
    &sig == b"QEMU"
}

pub fn qemu_exit_if_present(code: u8) {
    if running_under_qemu() {
        outb(DEBUG_EXIT_PORT, code);
    }
}

/// Write a line to COM1 by polling (used only after ExitBootServices).
pub fn serial_line(s: &str) {
    for b in s.bytes().chain(*b"\r\n") {
        for _ in 0..100_000 {
            if inb(COM1 + 5) & 0x20 != 0 {
                break;
            }
        }
        outb(COM1, b);
    }
}

pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stops the CPU until an interrupt; interrupts are off.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) }
    }
}
