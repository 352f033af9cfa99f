//! The capOS kernel.
//!
//! Boot order: serial → per-CPU block (GS) → early boot info (memory map,
//! HHDM, command line) → logger and TSC → GDT/TSS/IDT → CPU protections →
//! frame allocator (and the AP trampoline's low pages) → our own page
//! tables → heap → kernel stacks (with guard pages) → switch to the
//! kernel's own stack → copy the rest of the boot info → reclaim the
//! bootloader's memory → platform (ACPI, interrupts, clocks, the other
//! CPUs, PCI, drivers) → self-tests or idle.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod bench;
mod boot_info;
mod cap;
mod diag;
mod drivers;
mod irq;
mod mm;
mod pci;
mod platform;
mod proc;
mod selftest;
mod storage;
mod sync;
mod time;

use arch::x86_64::{cpu, gdt, idt, qemu, serial};
use capos_kcore::cmdline::Cmdline;
use core::fmt::Write;

const KERNEL_STACK_PAGES: u64 = 64; // 256 KiB
const IST_STACK_PAGES: u64 = 4; // 16 KiB

/// Stop the boot with a message: `[FAIL] boot: ...` and a failure exit.
fn fatal(msg: &str) -> ! {
    let _ = writeln!(serial::RawSerial, "[FAIL] boot: {}", msg);
    qemu::exit(qemu::EXIT_FAILURE)
}

/// Entry point, on the bootloader's stack with its page tables.
#[no_mangle]
extern "C" fn kernel_entry() -> ! {
    // The boot figures (make bench-boot) count from here: a no-op unless
    // the instruction-counting QEMU plugin is loaded.
    capos_abi::icount::milestone();
    time::mark_boot();
    serial::init();
    serial::write_str("capos kernel starting\n");
    // Per-CPU state through GS before anything can ask for it.
    arch::x86_64::percpu::init_bsp();

    let early = boot_info::early().unwrap_or_else(|e| fatal(e));
    mm::set_hhdm_offset(early.hhdm_offset);

    let cmdline = Cmdline::new(boot_info::cmdline());
    let level = cmdline.get("log").and_then(diag::logger::parse_level).unwrap_or(log::LevelFilter::Info);
    diag::logger::init(level);
    let tsc = time::calibrate_early();
    log::info!("cmdline: '{}'", boot_info::cmdline());
    log::info!("tsc: {} MHz ({})", time::tsc_hz() / 1_000_000, tsc.name());
    if early.truncated_regions > 0 {
        log::warn!("memory map: {} entries beyond {} ignored", early.truncated_regions, boot_info::MAX_REGIONS);
    }

    gdt::init();
    idt::init();
    let features = cpu::features();
    let prot = cpu::enable_protections(&features);
    log::info!(
        "cpu: {} nx={} wp={} smep={} smap={} umip={}",
        core::str::from_utf8(&cpu::vendor()).unwrap_or("?"),
        prot.nx, prot.wp, prot.smep, prot.smap, prot.umip
    );
    if !prot.nx {
        fatal("the CPU has no NX bit; the kernel's W^X mappings need it");
    }

    let map = boot_info::memory_map();
    mm::set_phys_top(map.iter().filter(|r| r.kind.is_ram_like()).map(|r| r.base + r.length).max().unwrap_or(0));
    mm::frames::init(map).unwrap_or_else(|e| fatal(e));
    // Before the page tables take the lowest frames.
    arch::x86_64::smp::reserve_low_memory();
    let paging = mm::paging::init(map, early.kernel_phys, early.kernel_virt).unwrap_or_else(|e| fatal(e));
    log::info!(
        "paging: own tables active; HHDM {} MiB ({} x 2 MiB, {} x 4 KiB pages); kernel at {:#x} (phys {:#x})",
        paging.hhdm_bytes >> 20, paging.huge_pages, paging.small_pages, early.kernel_virt, early.kernel_phys
    );
    let usable: u64 = map.iter().filter(|r| r.kind == boot_info::RegionKind::Usable).map(|r| r.length).sum();
    mm::heap::init(usable / 4).unwrap_or_else(|_| fatal("cannot map the initial heap"));

    let main_stack = mm::stacks::alloc("kernel-main", KERNEL_STACK_PAGES).unwrap_or_else(|_| fatal("no kernel stack"));
    for (ist, name) in [
        (gdt::IST_DOUBLE_FAULT, "ist-double-fault"),
        (gdt::IST_NMI, "ist-nmi"),
        (gdt::IST_MACHINE_CHECK, "ist-machine-check"),
    ] {
        let s = mm::stacks::alloc(name, IST_STACK_PAGES).unwrap_or_else(|_| fatal("no IST stack"));
        gdt::set_interrupt_stack(ist, s.top);
    }
    // SAFETY: a fresh stack with a guard page below it; `kernel_main` never returns.
    unsafe { cpu::switch_stack(main_stack.top, kernel_main) }
}

/// The rest of boot, on the kernel's own stack.
extern "C" fn kernel_main() -> ! {
    let map = boot_info::memory_map();
    let late = boot_info::late(mm::hhdm_offset());
    // Everything the bootloader left in reclaimable memory has been copied
    // (memory map, command line, responses), we run on our own stack, GDT and
    // page tables: give that memory to the frame allocator.
    let reclaimed = mm::frames::reclaim(map);
    log::info!("boot: {} ({} modules), reclaimed {} KiB of bootloader memory", late.bootloader, late.modules.len(), reclaimed * 4);
    for m in &late.modules {
        log::info!("module: {} ({} bytes at {:#x}) cmdline '{}'", m.path, m.size, m.phys, m.cmdline);
    }
    if let Some(t) = late.boot_time {
        log::info!("boot time: {} (unix seconds, from the bootloader)", t);
    }
    if let Some(r) = late.rsdp {
        log::info!("acpi: RSDP at {:#x}", r);
    }

    let stats = mm::frames::stats();
    let above_4g: u64 = map
        .iter()
        .filter(|r| matches!(r.kind, boot_info::RegionKind::Usable | boot_info::RegionKind::BootloaderReclaimable))
        .map(|r| (r.base + r.length).saturating_sub(r.base.max(4 << 30)))
        .sum();
    log::info!(
        "mem: usable={} MiB frames={} free={} above4g={} MiB heap={} KiB",
        stats.managed * 4096 >> 20,
        stats.managed,
        stats.free,
        above_4g >> 20,
        mm::heap::size() / 1024
    );

    platform_init(late);
    proc::init();

    // Userspace, if the boot modules carry a manifest.
    if let Some(m) = proc::loader::find_manifest(&late.modules) {
        match proc::loader::start_from_manifest(&late.modules, m) {
            Ok(n) => {
                log::info!("userspace: {} started from {}", capos_text::count::count(n, "process", "processes"), m.path);
                let exit_when_idle = Cmdline::new(boot_info::cmdline()).get("exit_when_idle").is_some();
                let (exited, killed, waiting) = proc::run_until_idle(!exit_when_idle);
                log::info!("userspace idle: {} exited, {} killed, {} waiting for calls", exited, killed, waiting);
                for line in arch::x86_64::irq_off::summary() {
                    log::info!("{}", line);
                }
                log::info!("lifetime: {} process table slots and {} kernel stack slots ever used", proc::table_slots(), mm::stacks::slots_used());
            }
            Err(e) => log::error!("userspace not started: {}", e),
        }
    }

    let cmdline = Cmdline::new(boot_info::cmdline());
    if cmdline.get("bench") == Some("blk") {
        bench::blk();
        arch::x86_64::qemu::exit(arch::x86_64::qemu::EXIT_SUCCESS);
    }
    if cmdline.get("exit_when_idle").is_some() {
        arch::x86_64::qemu::exit(arch::x86_64::qemu::EXIT_SUCCESS);
    }
    if cmdline.tests().next().is_some() {
        for t in cmdline.tests() {
            selftest::run(t);
        }
        selftest::finish();
    }
    log::info!("boot complete");
    diag::prompt::run()
}

static COM1_ROUTE: spin::Once<irq::IsaRoute> = spin::Once::new();

pub fn com1_route() -> Option<irq::IsaRoute> {
    COM1_ROUTE.get().copied()
}

/// ACPI, interrupt controllers, clocks, PCI, and the serial console's input
/// interrupt. Each step logs what it found; a missing piece is logged and
/// the kernel carries on with less.
fn platform_init(late: &boot_info::LateBoot) {
    let acpi = platform::acpi::init(late.rsdp);
    let madt = acpi.madt.as_ref();
    irq::init(madt);
    arch::x86_64::trap::set_irq_handler(irq::VECTOR_SPURIOUS, Some(|_| {}));

    let source = time::refine(acpi.hpet.as_ref(), acpi.fadt.and_then(|f| f.pm_timer));
    log::info!("time: TSC {} Hz ({})", time::tsc_hz(), source.name());
    time::init_wall_clock(late.boot_time, acpi.fadt.map(|f| f.century_register).unwrap_or(0));
    let (now, wall) = time::wall_now();
    log::info!("time: wall clock {} (unix seconds), source: {}", now, wall.label());
    let lapic_hz = irq::lapic::calibrate_timer();
    if lapic_hz > 0 {
        arch::x86_64::trap::set_irq_handler(irq::VECTOR_LAPIC_TIMER, Some(time::on_tick));
        irq::lapic::start_periodic(100);
        log::info!("time: LAPIC timer {} Hz input, ticking at 100 Hz on vector {:#x}", lapic_hz, irq::VECTOR_LAPIC_TIMER);
    }

    // The other CPUs: started and parked (proc::ap_main). The IPI vectors
    // get acknowledging no-op handlers until the scheduler attaches its own.
    arch::x86_64::trap::set_irq_handler(irq::VECTOR_RESCHEDULE, Some(|_| {}));
    arch::x86_64::trap::set_irq_handler(irq::VECTOR_TLB_SHOOTDOWN, Some(mm::tlb::on_interrupt));
    arch::x86_64::smp::start_aps(madt);

    pci::init(&acpi.mcfg);
    // Interrupts on before the drivers: NVMe completions may arrive by MSI-X.
    arch::x86_64::trap::set_interrupts(true);
    drivers::init(&Cmdline::new(boot_info::cmdline()));

    // COM1 input: ISA IRQ 4, wherever the MADT says it really arrives.
    if irq::lapic::is_enabled() && madt.is_some() {
        let route = irq::isa_route(madt, 4);
        COM1_ROUTE.call_once(|| route);
        match irq::alloc_vector() {
            Ok(v) => {
                arch::x86_64::trap::set_irq_handler(v, Some(diag::input::on_interrupt));
                match irq::ioapic::route(route.gsi, v, route.active_low, route.level, irq::lapic::id(), "COM1") {
                    Ok(()) => {
                        serial::enable_rx_interrupt();
                        log::info!("com1: input on ISA IRQ 4 -> GSI {} vector {:#x}{}", route.gsi, v, if route.overridden { " (source override)" } else { "" });
                    }
                    Err(e) => log::warn!("com1: no input interrupt: {}", e),
                }
            }
            Err(e) => log::warn!("com1: no vector: {:?}", e),
        }
    }
    arch::x86_64::trap::set_interrupts(true);
}
