//! x86_64 support: port I/O, the serial port, CPU feature control, GDT/TSS,
//! IDT and the trap entry path, per-CPU state and AP start-up, and QEMU's
//! exit device. All `unsafe` that
//! touches the CPU lives here.

pub mod cpu;
pub mod gdt;
pub mod idt;
// Debug builds only (its doc says why release builds carry none of it).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub mod irq_off;
pub mod percpu;
pub mod port;
pub mod qemu;
pub mod serial;
pub mod smp;
pub mod syscall;
pub mod trap;
