//! The scenarios `make test` runs. Each boot names what it puts on the boot
//! volume, the exit it expects, and lines that must (or must not) appear.

use crate::build::Artifacts;
use crate::elfgen;
use crate::esp::{limine_conf, Content, Volume};
use crate::qemu::standard_volume;

pub enum Expect {
    /// The kernel ends the run through isa-debug-exit with success (33).
    Success,
    /// The kernel ends the run with failure (35), e.g. a deliberate panic.
    KernelFailure,
    /// capos-boot refuses to boot (37).
    LoaderError,
}

pub struct Boot {
    pub name: &'static str,
    pub volume: Box<dyn Fn(&Artifacts) -> Volume>,
    pub expect_exit: Expect,
    pub expect: Vec<String>,
    pub forbid: Vec<String>,
    /// Count the guest's own `[PASS]`/`[FAIL]` lines.
    pub guest_verdicts: bool,
    /// When a line contains `.0`, type `.1` on the serial console.
    pub script: Vec<(String, String)>,
    pub qemu_args: Vec<String>,
    pub timeout: Option<u64>,
    /// Machine settings that replace QEMU_MACHINE / QEMU_MEM / QEMU_SMP.
    pub machine: Option<&'static str>,
    pub mem: Option<&'static str>,
    pub smp: Option<&'static str>,
}

pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub boots: Vec<Boot>,
    /// Tests capos-boot itself; skipped when LIMINE_DIR selects real Limine.
    pub capos_boot_only: bool,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn kernel_boot(name: &'static str, cmdline: &'static str, expect_exit: Expect, expect: &[&str]) -> Boot {
    let mut e = strings(&["capos kernel starting"]);
    e.extend(strings(expect));
    Boot {
        name,
        volume: Box::new(move |art| standard_volume(art, cmdline)),
        expect_exit,
        expect: e,
        forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC"]),
        guest_verdicts: true,
        script: Vec::new(),
        qemu_args: Vec::new(),
        timeout: None,
        machine: None,
        mem: None,
        smp: None,
    }
}

fn matrix(name: &'static str, machine: &'static str, mem: &'static str, smp: &'static str, extra: &[&str]) -> Boot {
    let mut expect = vec!["mem: usable=", "[PASS] smoke-heap", "[PASS] smoke-frames"];
    expect.extend_from_slice(extra);
    Boot { machine: Some(machine), mem: Some(mem), smp: Some(smp), ..kernel_boot(name, "test=smoke", Expect::Success, &expect) }
}

/// A boot volume that capos-boot must refuse, with the message it must print.
fn bad_volume(name: &'static str, message: &'static str, make: impl Fn(&Artifacts) -> Volume + 'static) -> Boot {
    Boot {
        name,
        volume: Box::new(make),
        expect_exit: Expect::LoaderError,
        expect: strings(&[message, "capos-boot: cannot boot"]),
        forbid: strings(&["capos kernel starting"]),
        guest_verdicts: false,
        script: Vec::new(),
        qemu_args: Vec::new(),
        timeout: None,
        machine: None,
        mem: None,
        smp: None,
    }
}

fn volume_with(art: &Artifacts, conf: Option<&str>, kernel: Option<Content>) -> Volume {
    let mut v = Volume::new();
    v.add("/EFI/BOOT/BOOTX64.EFI", Content::File(art.loader.clone()));
    if let Some(k) = kernel {
        v.add("/boot/capos-kernel", k);
    }
    if let Some(c) = conf {
        v.add("/limine.conf", Content::Bytes(c.as_bytes().to_vec()));
    }
    v
}

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "smoke",
            description: "boot, memory summary, heap and frame checks, clean exit",
            capos_boot_only: false,
            boots: vec![kernel_boot("boot", "test=smoke", Expect::Success, &["mem: usable=", "[PASS] smoke-heap", "[PASS] smoke-frames"])],
        },
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
        },
        Scenario {
            name: "fault",
            description: "deliberate page faults, invalid opcode, divide error, stack overflow, panic",
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
                Boot {
                    forbid: strings(&["EXCEPTION (unexpected)"]),
                    ..kernel_boot(
                        "panic",
                        "test=panic",
                        Expect::KernelFailure,
                        &["KERNEL PANIC at kernel/src/selftest.rs", "deliberate panic requested by test=panic"],
                    )
                },
            ],
        },
        Scenario {
            name: "loader-errors",
            description: "bad boot volumes: capos-boot names the problem and returns an error",
            capos_boot_only: true,
            boots: vec![
                bad_volume("no-config", "no limine.conf on the boot volume", |art| {
                    volume_with(art, None, Some(Content::File(art.kernel.clone())))
                }),
                bad_volume("malformed-config", "limine.conf line 3: entry 'capOS' asks for protocol 'multiboot2'", |art| {
                    volume_with(
                        art,
                        Some("timeout: 0\n/capOS\n    protocol: multiboot2\n    path: boot():/boot/capos-kernel\n"),
                        Some(Content::File(art.kernel.clone())),
                    )
                }),
                bad_volume("missing-kernel", "kernel '/boot/capos-kernel' not found on the boot volume", |art| {
                    volume_with(art, Some(&limine_conf("", &[])), None)
                }),
                bad_volume("not-elf", "kernel '/boot/capos-kernel' rejected: not an ELF file", |art| {
                    volume_with(art, Some(&limine_conf("", &[])), Some(Content::Bytes(b"MZ this is not an ELF kernel".to_vec())))
                }),
                bad_volume("lower-half-kernel", "is in the lower half", |art| {
                    let elf = elfgen::elf(0x20_0000, &[elfgen::Segment { vaddr: 0x20_0000, flags: elfgen::PF_R | elfgen::PF_X, data: vec![0xf4; 16] }]);
                    volume_with(art, Some(&limine_conf("", &[])), Some(Content::Bytes(elf)))
                }),
                bad_volume("wx-segment", "is both writable and executable (W^X refused)", |art| {
                    let k = elfgen::KERNEL_BASE;
                    let elf = elfgen::elf(k, &[elfgen::Segment { vaddr: k, flags: elfgen::PF_R | elfgen::PF_W | elfgen::PF_X, data: vec![0xf4; 16] }]);
                    volume_with(art, Some(&limine_conf("", &[])), Some(Content::Bytes(elf)))
                }),
                bad_volume("missing-module", "module '/boot/init' not found on the boot volume", |art| {
                    volume_with(art, Some(&limine_conf("", &[("/boot/init", "init")])), Some(Content::File(art.kernel.clone())))
                }),
                bad_volume("base-revision-too-new", "kernel requires Limine base revision 99", |art| {
                    volume_with(art, Some(&limine_conf("", &[])), Some(Content::Bytes(elfgen::kernel_wanting_revision(99))))
                }),
            ],
        },
    ]
}
