//! Every lock class of the kernel, in rank order: the one table of the lock
//! order (`docs/locks.md` says what each guards and why it sits where it
//! does). A CPU takes locks in strictly increasing rank (`sync` rule 1), so
//! a lock appears below everything it is ever taken under.
//!
//! How the ranks were found: a capability call runs its kernel object under
//! the process table, so the table is first; a filesystem or store calls
//! its device, the device its controller, the controller the DMA and
//! memory layers; the heap grows by mapping pages, which takes frames; an
//! interrupt may arrive wherever interrupts are on (boot, the prompt, a
//! device wait) so the interrupt handler table ranks above all of those;
//! logging happens anywhere; the interrupt handler table comes last, since
//! an interrupt (wherever interrupts are on) can come while anything is
//! held, the logger's locks included.

use super::LockClass;

const fn class(name: &'static str, rank: u16) -> LockClass {
    LockClass { name, rank, irq: false }
}

const fn irq_class(name: &'static str, rank: u16) -> LockClass {
    LockClass { name, rank, irq: true }
}

// Processes.
/// Starting a process: its pid chosen, prepared, added (`proc::loader`).
pub static PROC_SPAWN: LockClass = class("proc.spawn", 5);
pub static PROC_TABLE: LockClass = class("proc.table", 10);
pub static PROC_SUPERVISOR: LockClass = class("proc.supervisor", 20);
pub static PROC_DEFERRED: LockClass = class("proc.deferred", 30);
pub static ENDPOINT: LockClass = class("cap.endpoint", 40);
pub static CONSOLE_INPUT: LockClass = class("cap.console.input", 50);

// Storage, outermost first.
pub static STORAGE_MOUNTS: LockClass = class("storage.mounts", 60);
pub static STORAGE_FS: LockClass = class("storage.fs", 70);
pub static STORAGE_STORE: LockClass = class("storage.store", 80);
pub static STORAGE_RAW: LockClass = class("storage.raw", 90);
pub static SELFTEST_MEMFILE: LockClass = class("selftest.memfile", 95);

// Block devices and their drivers.
pub static BLOCK_DEVICES: LockClass = class("block.devices", 100);
pub static BLOCK_DEVICE: LockClass = class("block.device", 110);
pub static NVME_CONTROLLERS: LockClass = class("nvme.controllers", 120);
pub static NVME_CONTROLLER: LockClass = class("nvme.controller", 130);
pub static SCSI_CONTROLLER: LockClass = class("scsi.controller", 135);
// Network devices.
pub static NET_DEVICES: LockClass = class("net.devices", 136);
pub static NET_DEVICE: LockClass = class("net.device", 137);
pub static NET_TRANSPORT: LockClass = class("net.transport", 138);
pub static PCI_LEGACY: LockClass = class("pci.legacy_config", 140);
pub static DMA_BOUNCES: LockClass = class("dma.bounces", 150);
pub static DRIVERS_BOUND: LockClass = class("drivers.bound", 160);

// Interrupt routing (set up by drivers, read by the prompt).
pub static IRQ_VECTORS: LockClass = class("irq.vectors", 170);
pub static IRQ_IOAPICS: LockClass = class("irq.ioapics", 180);
pub static IRQ_ROUTES: LockClass = class("irq.routes", 190);

// Time.
pub static TIME_WALL: LockClass = class("time.wall", 200);
pub static TIME_BASE: LockClass = class("time.base", 210);

// Memory: stacks map pages, the heap grows by mapping pages, mapping takes frames.
pub static MM_STACKS: LockClass = class("mm.stacks", 220);
pub static MM_HEAP_SMALL: LockClass = class("mm.heap.small", 230);
pub static MM_HEAP: LockClass = class("mm.heap", 240);
pub static MM_PAGING: LockClass = class("mm.paging", 250);
pub static MM_FRAMES: LockClass = class("mm.frames", 260);

// Logging happens anywhere (a try_lock, so never checked itself, but an
// interrupt can arrive while it is held).
pub static LOG_RING: LockClass = class("log.ring", 280);

// The fault record: taken in the exception handler of a fault a self-test
// armed (the faulting code holds nothing), and by that self-test.
pub static TRAP_LAST_FAULT: LockClass = class("trap.last_fault", 290);

// Taken in interrupt handlers, wherever interrupts are on: above every
// lock code may hold with interrupts on (at boot, in self-tests and in the
// prompt that is any of them, the logger's and the fault record's
// included). Nothing is taken while it is held.
pub static TRAP_IRQ_HANDLERS: LockClass = irq_class("trap.irq_handlers", 300);

/// Two classes only the lock-order self-test takes (`test=lockorder`,
/// which takes them in the wrong order on purpose).
pub static SELFTEST_OUTER: LockClass = class("selftest.outer", 1000);
pub static SELFTEST_INNER: LockClass = class("selftest.inner", 1010);

/// Every class above, for the prompt and the docs check.
pub static ALL: &[&LockClass] = &[
    &PROC_TABLE,
    &PROC_SUPERVISOR,
    &PROC_DEFERRED,
    &ENDPOINT,
    &CONSOLE_INPUT,
    &STORAGE_MOUNTS,
    &STORAGE_FS,
    &STORAGE_STORE,
    &STORAGE_RAW,
    &SELFTEST_MEMFILE,
    &BLOCK_DEVICES,
    &BLOCK_DEVICE,
    &NVME_CONTROLLERS,
    &NVME_CONTROLLER,
    &SCSI_CONTROLLER,
    &NET_DEVICES,
    &NET_DEVICE,
    &NET_TRANSPORT,
    &PCI_LEGACY,
    &DMA_BOUNCES,
    &DRIVERS_BOUND,
    &IRQ_VECTORS,
    &IRQ_IOAPICS,
    &IRQ_ROUTES,
    &TIME_WALL,
    &TIME_BASE,
    &MM_STACKS,
    &MM_HEAP_SMALL,
    &MM_HEAP,
    &MM_PAGING,
    &MM_FRAMES,
    &LOG_RING,
    &TRAP_LAST_FAULT,
    &TRAP_IRQ_HANDLERS,
    &SELFTEST_OUTER,
    &SELFTEST_INNER,
];
