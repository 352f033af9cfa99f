//! Kernel panic: report message and location on COM1 without locks or
//! allocation, then end the run with a failure (QEMU exit 35; halt on
//! hardware).

use crate::arch::x86_64::{qemu, serial::RawSerial};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::arch::x86_64::trap::set_interrupts(false);
    let mut w = RawSerial;
    if PANICKING.swap(true, Ordering::SeqCst) {
        let _ = writeln!(w, "KERNEL PANIC while panicking; stopping");
        qemu::exit(qemu::EXIT_FAILURE);
    }
    match info.location() {
        Some(l) => {
            let _ = writeln!(w, "KERNEL PANIC at {}:{}:{}: {}", l.file(), l.line(), l.column(), info.message());
        }
        None => {
            let _ = writeln!(w, "KERNEL PANIC: {}", info.message());
        }
    }
    qemu::exit(qemu::EXIT_FAILURE)
}
