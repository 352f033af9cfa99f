//! Architecture support. capOS targets x86_64 only; the split keeps every
//! instruction-level `unsafe` (port I/O, MSRs, control registers, the GDT,
//! IDT and TSS, syscall and context-switch entry) in one place.
//!
//! Where `unsafe` lives in the kernel (`tools/unsafe-count.sh` counts it
//! per directory), each block with a `// SAFETY:` comment:
//! - `arch/`: the instructions above.
//! - `mm/`: page tables (the kernel's and every process's: walks and CR3
//!   writes are nowhere else), frames, the heap, kernel stacks, IPC areas,
//!   and [`crate::mm::mmio`], the one typed register block through which
//!   all device memory is read and written.
//! - `drivers/`, and the device code in `irq/`, `pci/` and `time/`: DMA
//!   buffers, and the port I/O of devices that have no MMIO (the 8259 PICs,
//!   legacy PCI configuration ports, the PIT, RTC and ACPI PM timer).
//!
//! Outside those, one sentence each:
//! - `boot_info.rs`: copies the bootloader's memory map and command line
//!   into static buffers once, before any other code runs.
//! - `main.rs`: switches to the kernel's own stack (an `arch` call whose
//!   caller must promise the old stack is never used again).
//! - `proc/`: switches context between processes (`arch`'s
//!   `switch_context`), and the loader and the checked user-memory copies
//!   read boot modules and write frames (and a new kernel stack's first
//!   words) that the process owns, through the direct map.
//! - `diag/prompt.rs`: the operator's `reboot` command writes the reset
//!   register the FADT names, then the 8042's reset command.
//! - `selftest.rs`: deliberate faults (bad pointers, a stack overflow) that
//!   the fault scenario expects the kernel to survive.

pub mod x86_64;
