//! COM1 (16550 UART at 0x3f8), polled output. The operator's console on
//! QEMU and on cloud VMs.
//!
//! Written by hand rather than with a UART crate: it is a dozen register
//! writes, and the panic/exception path needs a writer that takes no lock.

use super::port::{inb, outb};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const COM1: u16 = 0x3f8;
const LINE_STATUS: u16 = COM1 + 5;
const TX_EMPTY: u8 = 0x20;

pub fn init() {
    // SAFETY: standard 16550 programming of COM1: 115200 8N1, FIFOs on,
    // interrupts off (the diagnostics prompt turns input interrupts on later).
    unsafe {
        outb(COM1 + 1, 0x00); // no interrupts
        outb(COM1 + 3, 0x80); // DLAB on
        outb(COM1, 0x01); // divisor 1 = 115200 baud
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8N1, DLAB off
        outb(COM1 + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
        outb(COM1 + 4, 0x0b); // DTR, RTS, OUT2
    }
}

/// A received byte, if one is waiting.
pub fn read_byte() -> Option<u8> {
    // SAFETY: reading LSR and RBR of COM1 only consumes received data.
    unsafe { (inb(LINE_STATUS) & 1 != 0).then(|| inb(COM1)) }
}

/// Interrupt on received data (the I/O APIC route is set up separately).
pub fn enable_rx_interrupt() {
    set_rx_interrupt(true);
}

/// Turn the received-data interrupt on or off (input flow control).
pub fn set_rx_interrupt(on: bool) {
    // SAFETY: IER bit 0 = "received data available"; OUT2 (MCR bit 3),
    // which gates the UART's interrupt line, was set in `init`.
    unsafe { outb(COM1 + 1, on as u8) }
}

/// Write one byte, as a whole with respect to the lines other CPUs write
/// ([`exclusive`]): the line editor's echo of a typed byte never lands
/// inside another CPU's line.
pub fn write_byte(b: u8) {
    exclusive(|| raw_write_byte(b))
}

/// Write `s`, as a whole with respect to other CPUs' output ([`exclusive`]).
pub fn write_str(s: &str) {
    exclusive(|| raw_write_str(s))
}

fn raw_write_byte(b: u8) {
    // Bounded wait: a missing or stuck UART must not hang the kernel.
    for _ in 0..1_000_000 {
        // SAFETY: reading the line status register has no side effects.
        if unsafe { inb(LINE_STATUS) } & TX_EMPTY != 0 {
            break;
        }
    }
    // SAFETY: writing the transmit holding register only sends the byte.
    unsafe { outb(COM1, b) }
    AT_LINE_START.store(b == b'\n', Ordering::Relaxed);
}

/// Whether the last byte sent ended a line. The line editor's echo of a
/// line being typed leaves it false until Enter.
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

/// Begin a fresh line if the console is mid-line (a line being typed, its
/// echo not yet ended by Enter), so that a whole line written now (a
/// process's `[name] ...`, a log line) is not glued to the typed text.
/// Call inside [`exclusive`], before the line.
pub fn start_line() {
    if !AT_LINE_START.load(Ordering::Relaxed) {
        raw_write_str("\n");
    }
}

fn raw_write_str(s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            raw_write_byte(b'\r');
        }
        raw_write_byte(b);
    }
}

/// A lock-free `fmt::Write` sink on COM1 (for panics and exceptions;
/// ordinary code goes through the logger, which serialises lines).
pub struct RawSerial;

impl fmt::Write for RawSerial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        raw_write_str(s);
        Ok(())
    }
}

/// Who owns the console's output (a CPU index + 1; 0: nobody).
static OWNER: AtomicUsize = AtomicUsize::new(0);

/// Run `f` (which writes whole lines to COM1) with this CPU owning the
/// output, so lines from several CPUs do not interleave. Re-entrant on
/// one CPU (an interrupt handler or an exception report that logs while
/// this CPU is mid-line just writes), and bounded: a CPU that died
/// owning it (a panic elsewhere) is waited for about a second's worth of
/// spins, then ignored. Not a `sync::Lock`: it must work from exception
/// and panic paths, before the per-CPU blocks and with any lock held.
pub fn exclusive<R>(f: impl FnOnce() -> R) -> R {
    let me = super::percpu::index_early() + 1;
    let mut taken = false;
    if OWNER.load(Ordering::Relaxed) != me {
        for _ in 0..50_000_000u32 {
            if OWNER.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                taken = true;
                break;
            }
            core::hint::spin_loop();
        }
    }
    let r = f();
    if taken {
        OWNER.store(0, Ordering::Release);
    }
    r
}
