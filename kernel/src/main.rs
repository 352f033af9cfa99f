//! The capOS kernel.
//!
//! Boot order: serial → early boot info (memory map, HHDM, command line) →
//! logger and TSC → GDT/TSS/IDT → CPU protections → frame allocator → our
//! own page tables → heap → kernel stacks (with guard pages) → switch to the
//! kernel's own stack → copy the rest of the boot info → reclaim the
//! bootloader's memory → self-tests or idle.
#![no_std]
#![no_main]
// Interfaces used by the platform and driver layers still being built.
#![allow(dead_code)]

extern crate alloc;

mod arch;
mod boot_info;
mod diag;
mod mm;
mod selftest;
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
    time::mark_boot();
    serial::init();
    serial::write_str("capos kernel starting\n");

    let early = boot_info::early().unwrap_or_else(|e| fatal(e));
    mm::set_hhdm_offset(early.hhdm_offset);

    let cmdline = Cmdline::new(boot_info::cmdline());
    let level = cmdline.get("log").and_then(diag::logger::parse_level).unwrap_or(log::LevelFilter::Info);
    diag::logger::init(level);
    let tsc = time::calibrate();
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
    mm::frames::init(map).unwrap_or_else(|e| fatal(e));
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

    let cmdline = Cmdline::new(boot_info::cmdline());
    if cmdline.tests().next().is_some() {
        for t in cmdline.tests() {
            selftest::run(t);
        }
        selftest::finish();
    }
    log::info!("boot complete; nothing to run, idling (quit QEMU with Ctrl-A X)");
    cpu::halt_forever()
}
