//! The operator's prompt on COM1: a line editor fed by the serial
//! interrupt, and a handful of read-only commands that show what the kernel
//! found. Runs in the idle loop after boot; every command's output is
//! bounded so a huge machine cannot flood the console.

use crate::arch::x86_64::{cpu, qemu, serial, trap};
use crate::boot_info::{self, RegionKind};
use crate::irq::{ioapic, lapic};
use crate::{mm, pci, platform, time};
use alloc::string::String;
use capos_kcore::line_editor::{Event, LineEditor};
use core::fmt::Write;

pub const PROMPT: &str = "capos> ";
const MAX_OUTPUT_LINES: usize = 120;

const COMMANDS: &[(&str, &str)] = &[
    ("help", "this list"),
    ("status", "uptime, memory, interrupts, devices at a glance"),
    ("cpu", "vendor, model and the features that matter"),
    ("mem", "memory map summary, frames, heap"),
    ("acpi", "ACPI tables with checksum status, MADT and MCFG"),
    ("pci", "PCI functions, BARs and capabilities"),
    ("irq", "interrupt routes, vectors in use, counts, longest interrupts-off span"),
    ("timers", "TSC, LAPIC timer, uptime, wall clock"),
    ("devices", "drivers bound to devices, storage controllers none took"),
    ("mounts", "declared storage mounts (mounted or why not), kernel capability sources"),
    ("logs", "recent log lines (logs N for the last N)"),
    ("reboot", "reset the machine"),
    ("halt", "stop the machine"),
];

/// Bounded output: stops after MAX_OUTPUT_LINES lines.
struct Out {
    lines: usize,
    truncated: bool,
}

impl Out {
    fn new() -> Out {
        Out { lines: 0, truncated: false }
    }

    fn line(&mut self, args: core::fmt::Arguments) {
        if self.lines >= MAX_OUTPUT_LINES {
            self.truncated = true;
            return;
        }
        self.lines += 1;
        let _ = serial::RawSerial.write_fmt(args);
        serial::write_str("\n");
    }

    fn finish(self) {
        if self.truncated {
            serial::write_str("... output truncated\n");
        }
    }
}

macro_rules! out {
    ($o:expr, $($arg:tt)*) => { $o.line(format_args!($($arg)*)) };
}

pub fn run() -> ! {
    serial::write_str("\ncapOS diagnostics prompt; type 'help' for commands\n");
    serial::write_str(PROMPT);
    let mut editor = LineEditor::new();
    let mut warned_overflow = false;
    loop {
        trap::set_interrupts(false);
        match crate::diag::input::pop() {
            None => {
                // sti;hlt is atomic with respect to interrupts (the STI
                // shadow), so a byte arriving now still wakes us.
                cpu::wait_for_interrupt();
                continue;
            }
            Some(b) => {
                trap::set_interrupts(true);
                match editor.feed(b) {
                    Event::EchoByte(c) => serial::write_byte(c),
                    Event::Echo(s) => s.iter().for_each(|c| serial::write_byte(*c)),
                    Event::Overflow => {
                        if !warned_overflow {
                            serial::write_str("\n(line too long; further input on this line is ignored)\n");
                            warned_overflow = true;
                        }
                    }
                    Event::Line(line) => {
                        serial::write_str("\n");
                        if warned_overflow {
                            serial::write_str("(line was cut to 256 characters)\n");
                        }
                        warned_overflow = false;
                        execute(line.trim());
                        serial::write_str(PROMPT);
                    }
                    Event::None => {}
                }
            }
        }
    }
}

pub fn execute(line: &str) {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else { return };
    let arg = words.next();
    let mut o = Out::new();
    match cmd {
        "help" => help(&mut o),
        "status" => status(&mut o),
        "cpu" => cpu_cmd(&mut o),
        "mem" => mem(&mut o),
        "acpi" => acpi(&mut o),
        "pci" => pci_cmd(&mut o),
        "irq" => irq(&mut o),
        "timers" => timers(&mut o),
        "devices" => devices(&mut o),
        "mounts" => mounts(&mut o),
        "logs" => {
            let n = arg.and_then(|a| a.parse().ok()).unwrap_or(20usize).min(crate::diag::logger::RING_LINES);
            crate::diag::logger::recent(n, |l| out!(o, "{}", l));
        }
        "reboot" => reboot(),
        "halt" => {
            serial::write_str("halting\n");
            qemu::exit(qemu::EXIT_SUCCESS);
        }
        other => {
            let shown: String = other.chars().take(32).collect();
            out!(o, "error: unknown command '{}'", shown);
            help(&mut o);
        }
    }
    o.finish();
}

fn help(o: &mut Out) {
    out!(o, "commands:");
    for (c, d) in COMMANDS {
        out!(o, "  {:8} {}", c, d);
    }
}

fn status(o: &mut Out) {
    let up = time::uptime_ns();
    let f = mm::frames::stats();
    out!(o, "uptime: {}.{:03} s", up / 1_000_000_000, (up / 1_000_000) % 1000);
    out!(o, "memory: {} MiB managed, {} MiB free", f.managed * 4096 >> 20, f.free * 4096 >> 20);
    out!(o, "timer ticks: {}; vectors in use: {}", time::ticks(), crate::irq::vectors_in_use() + 4);
    out!(o, "pci functions: {}", pci::get().map(|p| p.devices.len()).unwrap_or(0));
    out!(o, "serial input: {} bytes received, {} dropped", crate::diag::input::RECEIVED.load(core::sync::atomic::Ordering::Relaxed), crate::diag::input::OVERRUNS.load(core::sync::atomic::Ordering::Relaxed));
}

fn cpu_cmd(o: &mut Out) {
    let vendor = cpu::vendor();
    out!(o, "vendor: {}", core::str::from_utf8(&vendor).unwrap_or("?"));
    let mut brand = [0u8; 48];
    if cpu::cpuid(0x8000_0000, 0).0 >= 0x8000_0004 {
        for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
            let (a, b, c, d) = cpu::cpuid(leaf, 0);
            for (j, r) in [a, b, c, d].iter().enumerate() {
                brand[i * 16 + j * 4..i * 16 + j * 4 + 4].copy_from_slice(&r.to_le_bytes());
            }
        }
    }
    let brand = core::str::from_utf8(&brand).unwrap_or("").trim_matches(char::from(0)).trim();
    out!(o, "model: {}", if brand.is_empty() { "(no brand string)" } else { brand });
    let (eax, ..) = cpu::cpuid(1, 0);
    let family = ((eax >> 8) & 0xf) + if (eax >> 8) & 0xf == 0xf { (eax >> 20) & 0xff } else { 0 };
    let model = ((eax >> 4) & 0xf) | if (eax >> 8) & 0xf >= 6 { ((eax >> 16) & 0xf) << 4 } else { 0 };
    out!(o, "family {:#x} model {:#x} stepping {}", family, model, eax & 0xf);
    let f = cpu::features();
    out!(o, "features: nx={} smep={} smap={} umip={} 1g-pages={} x2apic={} invariant-tsc={}", f.nx, f.smep, f.smap, f.umip, f.pdpe1gb, f.x2apic, f.invariant_tsc);
    let cr4 = cpu::read_cr4();
    out!(o, "enabled: wp={} smep={} smap={} umip={} nxe={}", cpu::read_cr0() & (1 << 16) != 0, cr4 & (1 << 20) != 0, cr4 & (1 << 21) != 0, cr4 & (1 << 11) != 0, cpu::read_efer() & (1 << 11) != 0);
    let online = crate::arch::x86_64::percpu::online();
    let mut ids = alloc::string::String::new();
    for i in 0..online {
        let _ = write!(ids, "{}{}", if i > 0 { " " } else { "" }, crate::arch::x86_64::percpu::apic_id_of(i).unwrap_or(0));
    }
    out!(o, "cpus: {} of {} online (APIC ids {}); this is cpu {} (APIC id {})", online, crate::arch::x86_64::smp::listed(), ids, crate::arch::x86_64::percpu::index(), crate::arch::x86_64::percpu::apic_id());
}

fn mem(o: &mut Out) {
    let map = boot_info::memory_map();
    let kinds = [
        RegionKind::Usable, RegionKind::BootloaderReclaimable, RegionKind::KernelAndModules,
        RegionKind::AcpiReclaimable, RegionKind::AcpiNvs, RegionKind::Reserved, RegionKind::BadMemory, RegionKind::Framebuffer,
    ];
    out!(o, "memory map: {} entries", map.len());
    for k in kinds {
        let (n, bytes) = map.iter().filter(|r| r.kind == k).fold((0, 0u64), |(n, b), r| (n + 1, b + r.length));
        if n > 0 {
            out!(o, "  {:24} {:4} entries {:8} KiB", k.name(), n, bytes / 1024);
        }
    }
    let top = map.iter().map(|r| r.base + r.length).max().unwrap_or(0);
    out!(o, "highest address: {:#x}", top);
    let f = mm::frames::stats();
    out!(o, "frames: {} managed, {} used, {} free ({} MiB free)", f.managed, f.managed - f.free, f.free, f.free * 4096 >> 20);
    out!(o, "heap: {} KiB mapped, {} KiB used", mm::heap::size() / 1024, mm::heap::used() / 1024);
}

fn acpi(o: &mut Out) {
    let Some(info) = platform::acpi::info() else {
        out!(o, "acpi: not initialised");
        return;
    };
    let Some(d) = &info.discovery else {
        out!(o, "acpi: unavailable: {}", info.error.as_deref().unwrap_or("unknown"));
        return;
    };
    out!(o, "RSDP revision {} oem '{}' -> {} ({})", d.rsdp.revision, String::from_utf8_lossy(&d.rsdp.oem_id).trim(), d.root_kind, if d.root_checksum_ok { "checksum OK" } else { "checksum BAD" });
    for t in &d.listing {
        let status = match t.checksum_ok {
            Some(true) => "checksum OK",
            Some(false) => "checksum BAD",
            None => "unreadable",
        };
        out!(o, "  {} at {:#010x} len {:6} {}{}", core::str::from_utf8(&t.signature).unwrap_or("????"), t.addr, t.length, status,
            t.problem.as_ref().map(|p| alloc::format!(" ({})", p)).unwrap_or_default());
    }
    match &info.madt {
        Some(m) => {
            out!(o, "MADT: LAPIC at {:#x}, {}, PC-AT PICs {}", m.local_apic_address, capos_text::count::count(m.local_apics.len(), "CPU", "CPUs"), if m.pcat_compat { "present" } else { "absent" });
            for a in &m.io_apics {
                out!(o, "  I/O APIC id {} at {:#x} GSI base {}", a.id, a.address, a.gsi_base);
            }
            for s in &m.overrides {
                out!(o, "  override: ISA IRQ {} -> GSI {} ({:?}, {:?})", s.source, s.gsi, s.polarity, s.trigger);
            }
            for n in &m.local_nmis {
                out!(o, "  LAPIC NMI: processor {:#x} LINT{}", n.processor_id, n.lint);
            }
        }
        None => out!(o, "MADT: absent"),
    }
    if info.mcfg.is_empty() {
        out!(o, "MCFG: absent (PCI config through legacy ports)");
    }
    for e in &info.mcfg {
        out!(o, "MCFG: segment {} buses {:02x}-{:02x} ECAM at {:#x}", e.segment, e.bus_start, e.bus_end, e.base);
    }
    match &info.hpet {
        Some(h) => out!(o, "HPET: at {:#x}", h.base),
        None => out!(o, "HPET: absent"),
    }
    if let Some(f) = &info.fadt {
        out!(o, "FADT: PM timer {}, reset register {}, 8042 {}",
            f.pm_timer.map(|p| alloc::format!("port {:#x}", p.port)).unwrap_or("none".into()),
            f.reset.map(|(g, v)| alloc::format!("space {} addr {:#x} value {:#x}", g.space, g.address, v)).unwrap_or("none".into()),
            if f.has_8042 { "present" } else { "not reported" });
    }
}

fn pci_cmd(o: &mut Out) {
    let Some(p) = pci::get() else {
        out!(o, "pci: not initialised");
        return;
    };
    out!(o, "{} via {}", capos_text::count::count(p.devices.len(), "function", "functions"), p.backend_name);
    for d in &p.devices {
        out!(o, "{} {:04x}:{:04x} class {:02x}{:02x}{:02x} {}{}{}",
            d.address(), d.vendor, d.device, d.class, d.subclass, d.prog_if,
            capos_kcore::pci::class_name(d.class, d.subclass),
            d.bridge_buses.map(|(s, e)| alloc::format!(" [buses {:02x}-{:02x}]", s, e)).unwrap_or_default(),
            if d.func.is_ecam() { " (ecam)" } else { " (legacy)" });
        for b in &d.bars {
            out!(o, "    BAR{} {:?}{} at {:#x} size {:#x}", b.index, b.kind, if b.prefetchable { " prefetchable" } else { "" }, b.address, b.size);
        }
        if !d.caps.caps.is_empty() {
            let mut s = String::new();
            for c in &d.caps.caps {
                let _ = write!(s, " {}@{:#x}", capos_kcore::pci::cap_name(c.id), c.offset);
                if c.id == capos_kcore::pci::CAP_MSIX {
                    let m = capos_kcore::pci::msix_info(&d.func, c.offset);
                    let _ = write!(s, "(table size {}, BAR{}+{:#x})", m.table_size, m.table_bar, m.table_offset);
                }
            }
            out!(o, "    caps:{}", s);
        }
        if let Some(p) = d.caps.problem {
            out!(o, "    capability list: {}", p);
        }
    }
}

fn irq(o: &mut Out) {
    out!(o, "local APIC id {} at {:#x}; spurious vector {:#x}", lapic::id(), lapic::physical_base(), crate::irq::VECTOR_SPURIOUS);
    for (id, phys, base, n) in ioapic::summary() {
        out!(o, "I/O APIC id {} at {:#x}: GSIs {}-{}", id, phys, base, base + n - 1);
    }
    for r in ioapic::routes() {
        out!(o, "route: GSI {} -> vector {:#x} on APIC {} ({}, {}) {} [{}]", r.gsi, r.vector, r.dest,
            if r.level { "level" } else { "edge" }, if r.active_low { "active-low" } else { "active-high" },
            if r.masked { "masked" } else { "unmasked" }, r.what);
    }
    let madt = platform::acpi::info().and_then(|i| i.madt.as_ref());
    for irq in 0..16u8 {
        let r = crate::irq::isa_route(madt, irq);
        if r.overridden {
            out!(o, "ISA IRQ {} -> GSI {} ({}, {}) by MADT override", irq, r.gsi, if r.level { "level" } else { "edge" }, if r.active_low { "active-low" } else { "active-high" });
        }
    }
    if let Some(r) = crate::com1_route() {
        out!(o, "COM1: ISA IRQ {} -> GSI {}{}", r.irq, r.gsi, if r.overridden { " (MADT source override honoured)" } else { " (no override)" });
    }
    out!(o, "vectors: timer {:#x}, pool {:#x}-{:#x} with {} allocated", crate::irq::VECTOR_LAPIC_TIMER, crate::irq::POOL_FIRST, crate::irq::POOL_LAST, crate::irq::vectors_in_use());
    for v in 32..=255u8 {
        let n = trap::irq_count(v);
        if n > 0 {
            out!(o, "  vector {:#04x}: {}", v, capos_text::count::count(n, "interrupt", "interrupts"));
        }
    }
    for line in crate::arch::x86_64::irq_off::summary() {
        out!(o, "{}", line);
    }
}

fn timers(o: &mut Out) {
    out!(o, "TSC: {} Hz ({})", time::tsc_hz(), time::tsc_source().map(|s| s.name()).unwrap_or("not calibrated"));
    out!(o, "LAPIC timer: {} Hz input (divide 16), periodic at {} Hz, {} ticks", lapic::timer_rate_hz(), lapic::timer_period_hz(), time::ticks());
    if time::hpet::frequency() != 0 {
        out!(o, "HPET: {} Hz, counter {}", time::hpet::frequency(), time::hpet::counter());
    }
    let up = time::uptime_ns();
    out!(o, "uptime: {}.{:06} s", up / 1_000_000_000, (up / 1000) % 1_000_000);
    let (now, src) = time::wall_now();
    let t = capos_text::civil::from_unix(now);
    out!(o, "wall clock: {:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z (unix {}) source: {}", t.year, t.month, t.day, t.hour, t.minute, t.second, now, src.label());
}

fn devices(o: &mut Out) {
    out!(o, "com1: 16550 UART at 0x3f8 (serial console, interrupt-driven input)");
    out!(o, "lapic-timer: periodic at {} Hz", lapic::timer_period_hz());
    let mut n = 0;
    crate::drivers::with_bound(|b| {
        n += 1;
        out!(o, "{}: {} ({})", b.name, b.driver, b.detail);
    });
    if n == 0 {
        out!(o, "(no storage drivers bound)");
    }
    for nic in crate::drivers::net::all() {
        out!(o, "{}: virtio-net mac {}, link {}, mtu {} ({}, completions polled)", nic.name, nic.mac_text(), if nic.link_up() { "up" } else { "down" }, nic.mtu(), nic.pci);
    }
    for d in crate::drivers::unclaimed_storage() {
        out!(o, "unclaimed: {} {:04x}:{:04x} class {:02x}.{:02x}.{:02x} ({}): no driver bound",
            d.address(), d.vendor, d.device, d.class, d.subclass, d.prog_if, capos_kcore::pci::class_name(d.class, d.subclass));
    }
}

fn mounts(o: &mut Out) {
    let mut n = 0;
    let read = crate::storage::with_mounts(|m| {
        n += 1;
        match m {
            crate::storage::Mount::Mounted(m) => out!(o, "mounted: {}", m.summary),
            crate::storage::Mount::Failed { spec, reason } => {
                out!(o, "failed: {}: {} on {}: {} (its grants answer unavailable)", spec.name, spec.format.name(), spec.target(), reason)
            }
        }
    });
    if n == 0 && read {
        out!(o, "(nothing mounted: the manifest declares no mounts)");
    } else if n == 0 {
        out!(o, "(nothing mounted: no manifest got as far as its mounts; see logs)");
    }
    out!(o, "kernel capability sources (grant NAME: kernel:SOURCE):");
    for k in capos_abi::manifest::KERNEL_SOURCES {
        let name = if k.takes_instance { alloc::format!("{}:NAME", k.prefix) } else { k.prefix.into() };
        out!(o, "  {:14} {}", name, k.description);
    }
}

/// FADT reset register, then the 8042 keyboard controller, then a triple
/// fault.
fn reboot() -> ! {
    serial::write_str("rebooting\n");
    trap::set_interrupts(false);
    if let Some((g, value)) = platform::acpi::info().and_then(|i| i.fadt).and_then(|f| f.reset) {
        match g.space {
            // SAFETY: the FADT names this port/register as the reset register.
            1 if g.address <= 0xffff => unsafe { crate::arch::x86_64::port::outb(g.address as u16, value) },
            0 => {
                if let Ok(va) = mm::paging::map_physical(g.address, 1, mm::paging::PhysKind::Mmio) {
                    // SAFETY: as above, a memory-mapped reset register.
                    unsafe { core::ptr::write_volatile(va as *mut u8, value) };
                }
            }
            _ => {}
        }
        time::spin_ns(100_000_000);
    }
    // SAFETY: 0xFE to the 8042 command port pulses the CPU reset line.
    unsafe { crate::arch::x86_64::port::outb(0x64, 0xfe) };
    time::spin_ns(100_000_000);
    cpu::triple_fault()
}
