//! The kernel alone: smoke boots on every machine shape, deliberate faults,
//! the diagnostics prompt, ACPI, PCI and MSI-X.

use super::*;

fn matrix(name: &'static str, machine: &'static str, mem: &'static str, smp: &'static str, extra: &[&str]) -> Boot {
    let mut expect = vec!["mem: usable=", "[PASS] smoke-heap", "[PASS] smoke-frames", "[PASS] smp-online"];
    expect.extend_from_slice(extra);
    let mut boot = kernel_boot(name, "test=smoke", Expect::Success, &expect);
    boot.judgement.expect.push(online_line(smp));
    boot
        .machine(machine)
        .mem(mem)
        .smp(smp)
}

/// The kernel's bring-up summary when every one of `smp` CPUs came online.
fn online_line(smp: &str) -> String {
    format!("smp: {smp} of {smp} CPUs online")
}

/// The smoke boot expects every CPU QEMU_SMP asks for online, when it is a
/// plain count (a topology such as `4,sockets=2` is left to the kernel's
/// own smp-online check against the MADT).
fn smoke_boot() -> Boot {
    let expect = ["mem: usable=", "[PASS] smoke-heap", "[PASS] smoke-kernel-stacks", "[PASS] smoke-frames", "[PASS] smp-online", "[PASS] lapic-timer-ticks", "[PASS] read-only-wrapper", "[PASS] bulk-in-place"];
    let mut boot = kernel_boot("boot", "test=smoke,timer,readonly,bulk", Expect::Success, &expect);
    let smp = std::env::var("QEMU_SMP").unwrap_or_else(|_| "1".into());
    if smp.parse::<u32>().is_ok() {
        boot.judgement.expect.push(online_line(&smp));
    }
    boot
}

/// Type each command after the prompt appears.
fn prompt_script(cmds: &[String]) -> Vec<(String, Vec<u8>)> {
    cmds.iter().map(|c| ("capos> ".to_string(), format!("{}\r", c).into_bytes())).collect()
}

/// A boot to the diagnostics prompt that types `cmds` (a `halt` is added
/// if missing) and expects `expect`.
fn prompt_boot(name: &'static str, cmds: &[&str], expect: &[&str]) -> Boot {
    let mut cmds: Vec<String> = cmds.iter().map(|c| c.to_string()).collect();
    if cmds.last().map(|c| c.trim()) != Some("halt") {
        cmds.push("halt".into());
    }
    let mut e = strings(expect);
    e.push("halting".into());
    kernel_boot(name, "log=info", Expect::Success, &e.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .script(prompt_script(&cmds))
}

/// What each diagnostics command must print (used for DIAG_SCRIPT too).
const COMMAND_EXPECTS: &[(&str, &[&str])] = &[
    ("help", &["commands:", "timers   TSC, LAPIC timer"]),
    ("status", &["uptime:", "timer ticks:"]),
    ("cpu", &["vendor:", "features: nx=true"]),
    ("mem", &["memory map:", "frames:", "heap:"]),
    ("acpi", &["RSDP revision", "checksum OK", "MADT: LAPIC at", "I/O APIC id"]),
    ("pci", &["functions via", "host bridge"]),
    ("irq", &["route: GSI", "COM1: ISA IRQ 4", "vectors: timer 0x20"]),
    ("timers", &["TSC:", "LAPIC timer:", "wall clock:"]),
    ("devices", &["com1: 16550 UART"]),
    ("mounts", &["kernel capability sources (grant NAME: kernel:SOURCE):"]),
    ("logs", &["INFO"]),
];

/// The diag scenario: DIAG_SCRIPT (a file of commands, one per line) or
/// tools/diag.script.
fn diag_boot(root: &std::path::Path) -> Boot {
    diag_boot_with(&input_path("DIAG_SCRIPT").unwrap_or_else(|| root.join("tools/diag.script")))
}

pub(super) fn diag_boot_with(path: &std::path::Path) -> Boot {
    let (text, error) = match read_text_input("DIAG_SCRIPT", path) {
        Ok(t) => (t, None),
        Err(e) => (String::new(), Some(e)),
    };
    let cmds: Vec<&str> = text.lines().map(|l| l.trim()).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let mut expect: Vec<&str> = Vec::new();
    for c in &cmds {
        let word = c.split_whitespace().next().unwrap_or("");
        if let Some((_, e)) = COMMAND_EXPECTS.iter().find(|(k, _)| *k == word) {
            expect.extend_from_slice(e);
        }
    }
    let mut b = prompt_boot("prompt", &cmds, &expect);
    b.judgement.wall_clock = cmds.iter().any(|c| c.trim() == "timers");
    failing_with(b, error)
}

/// q35 with two PCIe root ports: an NVMe controller behind the first, a
/// virtio-blk disk behind the second.
const PCI_DEVICES: &[&str] = &[
    "-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1",
    "-device", "pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2",
    "-device", "nvme,serial=capos-nvme0,bus=rp1",
    "-drive", "if=none,id=vd0,format=raw,file={disk:vd0}",
    "-device", "virtio-blk-pci,drive=vd0,bus=rp2",
];

/// prompt-robustness: `cpu`'s output twice, and no mangled command.
fn cpu_ran_twice(lines: &[String]) -> Result<String, String> {
    let runs = lines.iter().filter(|l| l.contains("vendor:")).count();
    if let Some(l) = lines.iter().find(|l| l.contains("unknown command 'pu'")) {
        return Err(format!("the first letter was lost: {l}"));
    }
    match runs {
        2 => Ok("cpu printed its vendor line twice".into()),
        n => Err(format!("cpu printed its vendor line {n} times, expected 2")),
    }
}

pub(super) fn smoke() -> Scenario {
    Scenario {
        name: "smoke",
        description: "boot, memory summary, heap, frame, every CPU online (QEMU_SMP), timer checks, the read-only wrapper, clean exit",
        capos_boot_only: false,
        boots: vec![smoke_boot()],
    }
}

pub(super) fn smoke_matrix() -> Scenario {
    Scenario {
        name: "smoke-matrix",
        description: "the smoke boot on pc and q35, 64 MiB to 6 GiB, 1 and 4 CPUs",
        capos_boot_only: false,
        boots: vec![
            matrix("pc-256M-1cpu", "pc", "256M", "1", &[]),
            matrix("q35-64M-1cpu", "q35", "64M", "1", &[]),
            matrix("q35-6G-4cpu", "q35", "6G", "4", &["[PASS] smoke-high-memory", "above4g=4096 MiB"]),
            matrix("pc-6G-4cpu", "pc", "6G", "4", &["[PASS] smoke-high-memory", "above4g=3072 MiB"]),
        ],
    }
}

pub(super) fn fault() -> Scenario {
    Scenario {
        name: "fault",
        description: "deliberate page faults, invalid opcode, divide error, stack overflow, panic, a lock-order inversion",
        capos_boot_only: false,
        boots: vec![
            kernel_boot(
                "exceptions",
                "test=page-fault,invalid-opcode,divide-error",
                Expect::Success,
                &[
                    "vector 14 (page fault) error=0x0",
                    "page fault: not present on read from kernel mode at 0xdeadb000",
                    "page fault: protection violation on write from kernel mode",
                    "page fault: protection violation on instruction fetch from kernel mode",
                    "[PASS] page-fault-unmapped-read",
                    "[PASS] page-fault-rodata-write",
                    "[PASS] page-fault-nx-execute",
                    "vector 6 (invalid opcode)",
                    "[PASS] invalid-opcode",
                    "vector 0 (divide error)",
                    "[PASS] divide-error",
                    "selftest: 5 passed, 0 failed",
                ],
            ),
            kernel_boot(
                "stack-overflow",
                "test=stack-overflow",
                Expect::Success,
                &["vector 8 (double fault)", "kernel stack overflow: guard page of stack 'selftest-overflow'", "[PASS] stack-overflow"],
            ),
            kernel_boot(
                "panic",
                "test=panic",
                Expect::KernelFailure,
                &["KERNEL PANIC at kernel/src/selftest.rs", "deliberate panic requested by test=panic"],
            )
                .forbid(strings(&["EXCEPTION (unexpected)"])),
            // The lock-order checker (debug kernels only, so this boot
            // is one whatever KERNEL_PROFILE says): an inversion of two
            // test locks panics naming both.
            kernel_boot(
                "lock-order",
                "test=lockorder",
                Expect::KernelFailure,
                &[
                    "[PASS] lock-order-table",
                    "[PASS] lock-order-in-order",
                    "lock order: cpu 0 holds: 'selftest.inner' (rank 1010)",
                    "KERNEL PANIC at kernel/src/sync.rs",
                    "lock order: taking 'selftest.outer' (rank 1000) while holding 'selftest.inner' (rank 1010)",
                ],
            )
                .forbid(strings(&["EXCEPTION (unexpected)", "[FAIL]"]))
                .profile("dev"),
        ],
    }
}

pub(super) fn diag(root: &std::path::Path) -> Scenario {
    Scenario {
        name: "diag",
        description: "boot to the serial prompt and run DIAG_SCRIPT (default tools/diag.script)",
        capos_boot_only: false,
        boots: vec![
            diag_boot(root),
            kernel_boot("reboot", "log=info", Expect::Reset, &["rebooting"])
                .script(prompt_script(&["reboot".to_string()])),
        ],
    }
}

pub(super) fn prompt_robustness() -> Scenario {
    Scenario {
        name: "prompt-robustness",
        description: "a 10,000-character line, binary garbage, escape sequences cut short by Enter and an unknown command leave the prompt working; the up arrow recalls a command",
        capos_boot_only: false,
        boots: vec![kernel_boot(
            "prompt",
            "log=info",
            Expect::Success,
            &["(line too long; further input on this line is ignored)", "error: unknown command 'frobnicate'", "commands:", "uptime:", "vendor:", "halting"],
        )
            .script(vec![
                ("capos> ".into(), {
                    let mut v = vec![b'x'; 10_000];
                    v.push(b'\r');
                    v
                }),
                ("capos> ".into(), {
                    let mut v: Vec<u8> = (0u8..=255).filter(|b| *b != b'\r' && *b != b'\n').collect();
                    v.extend((0u8..=255).rev().filter(|b| *b != b'\r' && *b != b'\n'));
                    v.push(b'\r');
                    v
                }),
                // A lone ESC, then a half CSI, before Enter: Enter
                // still ends the line (it used to be eaten, and the
                // prompt never came back).
                ("capos> ".into(), b"\x1b\r".to_vec()),
                ("capos> ".into(), b"\x1b[\r".to_vec()),
                // A half CSI, Enter and a command in one write: the
                // command arrives whole (its first letter used to end
                // the CSI).
                ("capos> ".into(), b"\x1b[\rcpu\r".to_vec()),
                // Up arrow and Enter: cpu again.
                ("this is cpu".into(), b"\x1b[A\r".to_vec()),
                ("this is cpu".into(), b"frobnicate --now\r".to_vec()),
                ("capos> ".into(), b"status\r".to_vec()),
                ("capos> ".into(), b"halt\r".to_vec()),
            ])
            .checks(vec![("cpu ran twice (typed after ESC [ Enter, then recalled with the up arrow)", cpu_ran_twice)])],
    }
}

pub(super) fn acpi() -> Scenario {
    Scenario {
        name: "acpi",
        description: "ACPI discovery on q35 (MCFG, ECAM) and pc (no MCFG, legacy PCI config)",
        capos_boot_only: false,
        boots: vec![
            prompt_boot("q35", &["acpi", "pci", "irq"], &[
                "RSDP revision", "FACP at", "APIC at", "HPET at", "MCFG at", "checksum OK",
                "MCFG: segment 0 buses 00-ff ECAM at", "functions via ECAM (MCFG)", "(ecam)",
                "override: ISA IRQ 0 -> GSI 2", "COM1: ISA IRQ 4 -> GSI 4",
            ])
                .machine("q35"),
            prompt_boot("pc", &["acpi", "pci", "irq"], &[
                "RSDP revision", "FACP at", "APIC at", "checksum OK",
                "MCFG: absent (PCI config through legacy ports)", "functions via legacy ports 0xCF8/0xCFC", "(legacy)",
                "override: ISA IRQ 0 -> GSI 2", "COM1: ISA IRQ 4 -> GSI 4",
            ])
                .machine("pc"),
        ],
    }
}

pub(super) fn pci() -> Scenario {
    Scenario {
        name: "pci",
        description: "enumeration on q35 through PCIe root ports: NVMe and virtio-blk behind bridges",
        capos_boot_only: false,
        boots: vec![prompt_boot("q35-bridges", &["pci", "acpi"], &[
            "1b36:000c class 060400 PCI-to-PCI bridge [buses 01-01]",
            "1b36:000c class 060400 PCI-to-PCI bridge [buses 02-02]",
            "0000:01:00.0 1b36:0010 class 010802 NVMe controller",
            "0000:02:00.0 1af4:1042 class 010000 SCSI controller",
            "MSI-X@",
            "8086:29c0 class 060000 host bridge",
        ])
            .machine("q35")
            .qemu_args(qemu_args(PCI_DEVICES))
            .scratch_disks(vec![("vd0", 1 << 20)])],
    }
}

pub(super) fn msix() -> Scenario {
    Scenario {
        name: "msix",
        description: "an NVMe admin completion delivered through MSI-X (q35 and pc)",
        capos_boot_only: false,
        boots: vec![
            kernel_boot("q35", "test=msix", Expect::Success, &["[PASS] msix-nvme-admin-completion", "delivered 1 interrupt"])
                .machine("q35")
                .qemu_args(qemu_args(&["-device", "nvme,serial=capos-msix"])),
            kernel_boot("pc", "test=msix", Expect::Success, &["[PASS] msix-nvme-admin-completion", "delivered 1 interrupt"])
                .machine("pc")
                .qemu_args(qemu_args(&["-device", "nvme,serial=capos-msix"])),
        ],
    }
}
