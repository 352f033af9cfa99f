//! The scenarios `make test` runs. Each boot names what it puts on the boot
//! volume, the exit it expects, and lines that must (or must not) appear.
//! Each such line names its source (crate::source::Pattern): `[name] text`
//! is process `name`'s, `{other} text` the firmware's or the loader's,
//! `{any} text` anyone's (for forbidden lines), any other text the kernel's.

use crate::build::Artifacts;
use crate::elfgen;
use crate::esp::{limine_conf, Content, Volume};
use crate::qemu::standard_volume;

mod nic;

pub enum Expect {
    /// The kernel ends the run through isa-debug-exit with success (33).
    Success,
    /// The kernel ends the run with failure (35), e.g. a deliberate panic.
    KernelFailure,
    /// capos-boot refuses to boot (37).
    LoaderError,
    /// The guest reset the machine; with -no-reboot QEMU then exits 0.
    Reset,
}

pub struct Boot {
    pub name: &'static str,
    pub volume: Box<dyn Fn(&Artifacts) -> Volume>,
    pub expect_exit: Expect,
    pub expect: Vec<String>,
    pub forbid: Vec<String>,
    /// Count the guest's own `[PASS]`/`[FAIL]` lines.
    pub guest_verdicts: bool,
    /// When `.0` appears in the serial output (after the previous step's
    /// input was sent), type `.1` on the serial console.
    pub script: Vec<(String, Vec<u8>)>,
    /// Extra QEMU arguments; `{disk:NAME}` is replaced by the path of the
    /// scratch disk NAME.
    pub qemu_args: Vec<String>,
    /// Zero-filled raw images (name, bytes) made fresh for each run.
    pub scratch_disks: Vec<(&'static str, u64)>,
    /// Storage images (name, mkstore-image arguments before `-o FILE`)
    /// built fresh for each run; `{disk:NAME}` names them like scratch disks.
    pub store_images: Vec<(&'static str, Vec<String>)>,
    /// Images made by a script of the repository (name, script, its
    /// environment), run as `SCRIPT FILE`; `{disk:NAME}` names them too.
    pub script_images: Vec<(&'static str, &'static str, Vec<(&'static str, &'static str)>)>,
    /// Check the `timers` wall clock against the host's UTC time.
    pub check_wall_clock: bool,
    pub blk_disks: Vec<BlkDisk>,
    /// Boot userspace: (manifest text file relative to the workspace, kernel
    /// command line). The runner builds every `binary: /boot/NAME` as the
    /// package `capos-demo-NAME`, compiles the manifest with mkmanifest and
    /// puts all of them on the boot volume as modules.
    pub userspace: Option<(&'static str, &'static str)>,
    /// Boot exactly what `make run` boots (limine.conf and its modules).
    pub default_system: bool,
    /// Attach the default system's disks (crate::system) from the
    /// scenario's `disks/` directory: made afresh (`Fresh`, every earlier
    /// copy removed first) or as the previous boot left them (`Reuse`).
    /// DATA_IMAGE, when set, is the data disk, in place.
    pub default_disks: Option<DefaultDisksUse>,
    /// Bytes of each disk the guest hashes (0 = all).
    pub blk_read_bytes: u64,
    pub timeout: Option<u64>,
    /// Machine settings that replace QEMU_MACHINE / QEMU_MEM / QEMU_SMP.
    pub machine: Option<&'static str>,
    pub mem: Option<&'static str>,
    pub smp: Option<&'static str>,
    /// Load the instruction-counting plugin (tools/icount) and print the
    /// executed instructions of each region the guest announces
    /// (`icount: <label> ops=<n>`); see icount.rs.
    pub icount_plugin: bool,
    /// Cargo profile for this boot's kernel, loader and userspace instead
    /// of KERNEL_PROFILE (the benchmarks use BENCH_PROFILE).
    pub profile: Option<String>,
    /// (our label, Linux label): print Linux's figure from
    /// target/bench/linux.txt beside ours, with the ratio.
    pub linux_pairs: Vec<(&'static str, &'static str)>,
    /// Store this boot's figures as target/bench/NAME.txt when it passes
    /// (bench-blk keeps its raw driver figures for bench-storage).
    pub store_figures: Option<&'static str>,
    /// (stored figures file NAME, our label, its label): print a figure
    /// stored by another benchmark beside ours, with the ratio.
    pub stored_pairs: Vec<(&'static str, &'static str, &'static str)>,
    /// Boot the Linux benchmark guest (linux.rs) instead of capOS, and
    /// store its figures as target/bench/linux.txt.
    pub linux_guest: bool,
    /// Checks over the whole serial log (name, check): a count of lines,
    /// two figures that must agree. `Ok` says what was seen.
    pub checks: Vec<(&'static str, LogCheck)>,
    /// The milestones (abi::icount::milestone) the plugin must report, in
    /// order; each after the first gives the figure `<first> to <it>`.
    /// Empty: milestones are ignored.
    pub milestones: Vec<&'static str>,
    /// A runner input this boot needs could not be read (SHELL_SCRIPT
    /// missing, not UTF-8, ...): the boot is a failure with this message,
    /// and QEMU is not started. Never a silent default.
    pub input_error: Option<String>,
}

/// A check over every line of a boot's serial log.
pub type LogCheck = fn(&[String]) -> Result<String, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultDisksUse {
    Fresh,
    Reuse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    Nvme,
    Virtio,
    /// A `scsi-hd` on the boot's one virtio-scsi controller, at this
    /// target; the first SCSI disk's `controller` options (e.g.
    /// `,disable-legacy=on`) are the controller's.
    Scsi { target: u8, controller: &'static str },
}

/// A disk of known pseudo-random content the guest must read and hash
/// (`blk: NAME read N bytes sha256=...`) and whose last 64 blocks it must
/// overwrite with the test pattern.
#[derive(Clone, Debug)]
pub struct BlkDisk {
    /// The name the kernel gives it (`nvme0n1`, `vblk0`).
    pub guest_name: &'static str,
    pub kind: DiskKind,
    pub size: u64,
    pub seed: u64,
    /// Use a copy of this image instead of generating one (BLK_IMAGE).
    pub source: Option<std::path::PathBuf>,
}

impl Boot {
    /// A boot of `volume` expecting `expect_exit`, with every check and
    /// setting at its default (no lines required, the machine settings from
    /// the environment); scenarios override fields with `..`.
    pub fn new(name: &'static str, volume: Box<dyn Fn(&Artifacts) -> Volume>, expect_exit: Expect) -> Boot {
        Boot {
            name,
            volume,
            expect_exit,
            expect: Vec::new(),
            forbid: Vec::new(),
            guest_verdicts: false,
            script: Vec::new(),
            qemu_args: Vec::new(),
            scratch_disks: Vec::new(),
            store_images: Vec::new(),
            script_images: Vec::new(),
            check_wall_clock: false,
            blk_disks: Vec::new(),
            blk_read_bytes: 0,
            userspace: None,
            default_system: false,
            default_disks: None,
            timeout: None,
            machine: None,
            mem: None,
            smp: None,
            icount_plugin: false,
            profile: None,
            linux_pairs: Vec::new(),
            store_figures: None,
            stored_pairs: Vec::new(),
            linux_guest: false,
            checks: Vec::new(),
            milestones: Vec::new(),
            input_error: None,
        }
    }
}

/// A runner input that names a file (SHELL_SCRIPT, DIAG_SCRIPT, BLK_IMAGE,
/// the storage scenarios' images, DATA_IMAGE): `None` when unset or blank,
/// else the path as given, surrounding blanks trimmed. A value that is not
/// UTF-8 is still a path (Linux file names are bytes), never "unset".
pub fn input_path(key: &str) -> Option<std::path::PathBuf> {
    let v = std::env::var_os(key)?;
    match v.to_str() {
        Some(t) if t.trim().is_empty() => None,
        Some(t) => Some(std::path::PathBuf::from(t.trim())),
        None => Some(std::path::PathBuf::from(v)),
    }
}

/// The text of input `var` at `path`, or a message naming both and why it
/// cannot be used (missing, unreadable, a directory, not UTF-8).
pub fn read_text_input(var: &str, path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {} {}: {}", var, path.display(), e))?;
    String::from_utf8(bytes).map_err(|e| {
        format!("cannot use {} {}: not UTF-8 text (byte {} is {:#04x})", var, path.display(), e.utf8_error().valid_up_to(), e.as_bytes()[e.utf8_error().valid_up_to()])
    })
}

/// A boot that fails with `error` instead of running (see
/// [`Boot::input_error`]), or `b` itself.
fn failing_with(mut b: Boot, error: Option<String>) -> Boot {
    if error.is_some() {
        b.input_error = error;
    }
    b
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
    kernel_boot_owned(name, cmdline.to_string(), expect_exit, expect)
}

fn kernel_boot_owned(name: &'static str, cmdline: String, expect_exit: Expect, expect: &[&str]) -> Boot {
    let mut e = strings(&["capos kernel starting"]);
    e.extend(strings(expect));
    Boot {
        expect: e,
        forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC"]),
        guest_verdicts: true,
        ..Boot::new(name, Box::new(move |art| standard_volume(art, &cmdline)), expect_exit)
    }
}

fn matrix(name: &'static str, machine: &'static str, mem: &'static str, smp: &'static str, extra: &[&str]) -> Boot {
    let mut expect = vec!["mem: usable=", "[PASS] smoke-heap", "[PASS] smoke-frames", "[PASS] smp-online"];
    expect.extend_from_slice(extra);
    let mut boot = kernel_boot(name, "test=smoke", Expect::Success, &expect);
    boot.expect.push(online_line(smp));
    Boot { machine: Some(machine), mem: Some(mem), smp: Some(smp), ..boot }
}

/// The kernel's bring-up summary when every one of `smp` CPUs came online.
fn online_line(smp: &str) -> String {
    format!("smp: {smp} of {smp} CPUs online")
}

/// The smoke boot expects every CPU QEMU_SMP asks for online, when it is a
/// plain count (a topology such as `4,sockets=2` is left to the kernel's
/// own smp-online check against the MADT).
fn smoke_boot() -> Boot {
    let expect = ["mem: usable=", "[PASS] smoke-heap", "[PASS] smoke-kernel-stacks", "[PASS] smoke-frames", "[PASS] smp-online", "[PASS] lapic-timer-ticks", "[PASS] read-only-wrapper"];
    let mut boot = kernel_boot("boot", "test=smoke,timer,readonly", Expect::Success, &expect);
    let smp = std::env::var("QEMU_SMP").unwrap_or_else(|_| "1".into());
    if smp.parse::<u32>().is_ok() {
        boot.expect.push(online_line(&smp));
    }
    boot
}

/// Two entries, a 3 s timeout, the first the default.
fn menu_boot(name: &'static str, expect: &[&str]) -> Boot {
    let conf = "timeout: 3\ndefault_entry: 1\n\n/smoke\n    protocol: limine\n    path: boot():/boot/capos-kernel\n    cmdline: test=smoke\n\n/timer check\n    protocol: limine\n    path: boot():/boot/capos-kernel\n    cmdline: test=timer\n";
    let mut e = strings(&["{other} capos-boot: boot menu", "{other}   1) smoke (default)", "{other}   2) timer check"]);
    e.extend(strings(expect));
    let e: Vec<&str> = e.iter().map(|s| s.as_str()).collect();
    Boot {
        volume: Box::new(move |art| volume_with(art, Some(conf), Some(Content::File(art.kernel.clone())))),
        ..kernel_boot(name, "", Expect::Success, &e)
    }
}

/// A boot volume that capos-boot must refuse, with the message it must print.
fn bad_volume(name: &'static str, message: &'static str, make: impl Fn(&Artifacts) -> Volume + 'static) -> Boot {
    Boot {
        expect: vec![format!("{{other}} {message}"), "{other} capos-boot: cannot boot".into()],
        forbid: strings(&["capos kernel starting"]),
        ..Boot::new(name, Box::new(make), Expect::LoaderError)
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
    Boot { script: prompt_script(&cmds), ..kernel_boot(name, "log=info", Expect::Success, &e.iter().map(|s| s.as_str()).collect::<Vec<_>>()) }
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

fn diag_boot_with(path: &std::path::Path) -> Boot {
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
    b.check_wall_clock = cmds.iter().any(|c| c.trim() == "timers");
    failing_with(b, error)
}

fn qemu_args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
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

/// Sizes like `16M`, `1G`, `4096`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

struct BlkSettings {
    size: u64,
    image: Option<std::path::PathBuf>,
    read_mib: u64,
    /// BLK_IMAGE cannot be read, or BLK_IMAGE_SIZE / BLK_READ_MIB is not
    /// a size / number: every boot that uses these settings fails with it.
    error: Option<String>,
}

impl BlkSettings {
    fn checked(&self, b: Boot) -> Boot {
        failing_with(b, self.error.clone())
    }
}

fn blk_settings() -> BlkSettings {
    let env = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().trim().to_string()).filter(|v| !v.is_empty());
    let image = input_path("BLK_IMAGE");
    let mut error = None;
    let size = match &image {
        Some(p) => std::fs::File::open(p).and_then(|f| f.metadata()).map(|m| m.len()).unwrap_or_else(|e| {
            error = Some(format!("cannot read BLK_IMAGE {}: {}", p.display(), e));
            0
        }),
        None => match env("BLK_IMAGE_SIZE") {
            None => 16 << 20,
            Some(v) => parse_size(&v).unwrap_or_else(|| {
                error = Some(format!("BLK_IMAGE_SIZE={} is not a size (like 16M, 1G, 4096)", v));
                0
            }),
        },
    };
    let read_mib = match env("BLK_READ_MIB") {
        None => 0,
        Some(v) => v.parse().unwrap_or_else(|_| {
            error = Some(format!("BLK_READ_MIB={} is not a number of MiB", v));
            0
        }),
    };
    BlkSettings { size, image, read_mib, error }
}

/// A boot that binds `disks`, hashes them and writes the pattern, then
/// runs `more_tests` (comma-separated self-tests, may be empty).
fn blk_boot(name: &'static str, machine: &'static str, extra_cmdline: &str, more_tests: &str, disks: Vec<BlkDisk>, read_mib: u64, expect: &[&str]) -> Boot {
    let tests = if more_tests.is_empty() { String::from("blk") } else { format!("blk,{}", more_tests) };
    let cmdline = format!("test={} blk.read_mib={} blk.scratch_blocks=64 {}", tests, read_mib, extra_cmdline).trim().to_string();
    let mut e: Vec<String> = strings(expect);
    for d in &disks {
        e.push(format!("[PASS] blk-{}-read", d.guest_name));
        e.push(format!("[PASS] blk-{}-write-flush-readback", d.guest_name));
        e.push(format!("[PASS] blk-{}-unaligned-buffer", d.guest_name));
        e.push(format!("[PASS] blk-{}-bad-requests", d.guest_name));
    }
    let e: Vec<&str> = e.iter().map(|s| s.as_str()).collect();
    Boot {
        machine: Some(machine),
        blk_disks: disks,
        blk_read_bytes: read_mib << 20,
        timeout: Some(180),
        ..kernel_boot_owned(name, cmdline, Expect::Success, &e)
    }
}

/// An NVMe controller whose disk QEMU throttles to NVME_SLOW_IOPS reads a
/// second, so a read that follows another waits in QEMU for about
/// 1/NVME_SLOW_IOPS s before its data moves: `test=nvme-timeout` gives up
/// on it while the device still holds it, and a missing reset would let
/// the data land later in the abandoned buffer. (A `null-co` disk's
/// `latency-ns` would not do: it fills the buffer first and only then
/// waits to complete.)
fn nvme_timeout_boot(name: &'static str, cmdline: &'static str, mode: &'static str) -> Boot {
    throttled_disk_boot(name, &["nvme,serial=capos-slow,drive=slow"], cmdline, &[
        mode,
        "nvme0: command cid",
        "(read) timed out after 20 ms; controller reset",
        "[PASS] nvme-timeout-reset",
    ])
}

/// A q35 boot whose one disk (`-drive` id `slow`, attached by `devices`,
/// `-device` arguments) QEMU throttles to NVME_SLOW_IOPS reads a second,
/// running the timeout self-test `cmdline` names.
fn throttled_disk_boot(name: &'static str, devices: &[&str], cmdline: &'static str, expect: &[&str]) -> Boot {
    let mut qemu_args = vec!["-drive".to_string(), format!("if=none,id=slow,format=raw,file={{disk:slow}},throttling.iops-read={}", NVME_SLOW_IOPS)];
    for d in devices {
        qemu_args.extend(["-device".to_string(), d.to_string()]);
    }
    Boot {
        machine: Some("q35"),
        qemu_args,
        scratch_disks: vec![("slow", 1 << 20)],
        timeout: Some(60),
        ..kernel_boot(name, cmdline, Expect::Success, expect)
    }
}

/// Reads a second the throttled disk allows: 200 ms a read in a row, ten
/// times the self-test's 20 ms timeout.
const NVME_SLOW_IOPS: u32 = 5;

/// Kernel log lines that say an endpoint was re-bound to a restarted server.
fn rebind_lines(lines: &[String]) -> usize {
    crate::source::classify(lines).iter().filter(|l| l.source == crate::source::Source::Kernel && l.raw.contains(" re-bound")).count()
}

fn two_hundred_rebinds(lines: &[String]) -> Result<String, String> {
    match rebind_lines(lines) {
        200 => Ok("200 re-bound lines".into()),
        n => Err(format!("{n} re-bound lines, expected 200")),
    }
}

/// The driver's `free frames: steady N end M`: at least N at the end, or frames leaked.
fn frames_back_at_steady(lines: &[String]) -> Result<String, String> {
    let line = crate::source::messages_of(lines, "driver").find_map(|m| m.strip_prefix("free frames: steady ").map(|rest| rest.to_string()));
    let Some(rest) = line else { return Err("the driver never printed its free frames".into()) };
    let figures: Vec<u64> = rest.split(" end ").filter_map(|f| f.trim().parse().ok()).collect();
    // At least the round-1 count at the end (demos/lifetime says why more
    // is not a leak: a dead instance's stack still held after round 1 on
    // several CPUs); one frame leaked per restart would be ~199 short.
    match figures.as_slice() {
        [steady, end] if steady == end && *steady > 0 => Ok(format!("{steady} free frames after round 1 and after round 200")),
        [steady, end] if end > steady && *steady > 0 => Ok(format!("{steady} free frames after round 1, {end} after round 200 (none lost; {} held after round 1 were freed later)", end - steady)),
        [steady, end] => Err(format!("{steady} free frames after round 1, {end} after round 200 ({} leaked)", *steady as i64 - *end as i64)),
        _ => Err(format!("cannot read the figures in '{rest}'")),
    }
}

/// The kernel's `lifetime: N process table slots and M kernel stack
/// slots ever used`: both stay near the most processes alive at once (7
/// here, plus idle, the kernel's own stacks and a restart's overlap), not
/// the 200+ processes that came and went.
fn slots_reused(lines: &[String]) -> Result<String, String> {
    let lines = crate::source::classify(lines);
    let Some(line) = lines.iter().filter(|l| l.source == crate::source::Source::Kernel).map(|l| l.raw).find(|l| l.contains("lifetime: ") && l.contains(" kernel stack slots ever used")) else {
        return Err("the kernel never reported its slots".into());
    };
    let numbers: Vec<usize> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    match numbers.as_slice() {
        [.., table, stacks] if *table <= 16 && *stacks <= 24 => Ok(format!("{table} table slots, {stacks} stack slots")),
        [.., table, stacks] => Err(format!("{table} table slots, {stacks} stack slots: dead processes' slots are not reused")),
        _ => Err(format!("cannot read '{line}'")),
    }
}

fn user_boot(name: &'static str, manifest: &'static str, cmdline: &'static str, expect: &[&str]) -> Boot {
    let mut e = strings(&["userspace: ", "userspace idle: "]);
    e.extend(strings(expect));
    let e: Vec<&str> = e.iter().map(|s| s.as_str()).collect();
    Boot { userspace: Some((manifest, cmdline)), ..kernel_boot(name, cmdline, Expect::Success, &e) }
}

/// The cargo profile of the bench-* scenarios: BENCH_PROFILE, default
/// bench-opt (Cargo.toml).
pub fn bench_profile() -> String {
    std::env::var("BENCH_PROFILE").ok().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).unwrap_or_else(|| "bench-opt".into())
}

/// The fixed device latency of the benchmark disks: long enough that the
/// guest always halts (or spins) before a read completes, so every request
/// takes the same path (docs/benchmarks.md).
pub const BENCH_LATENCY_NS: u64 = 100_000;

/// QEMU arguments of a 1 GiB `null-co` disk (reads return zeroes after
/// BENCH_LATENCY_NS) as an NVMe controller or a virtio-blk device.
pub fn null_disk(id: &str, device: &str) -> Vec<String> {
    vec![
        "-blockdev".into(),
        format!("driver=null-co,node-name={},size=1073741824,latency-ns={},read-zeroes=on", id, BENCH_LATENCY_NS),
    ]
    .into_iter()
    .chain(match device {
        "nvme" => crate::bus::Bus::Nvme,
        "scsi" => crate::bus::Bus::Scsi,
        _ => crate::bus::Bus::Virtio,
    }
    .device_args(id, id, false))
    .collect()
}

/// `-icount shift=0` for the benchmark boots (see docs/benchmarks.md for
/// why and what it costs); BENCH_ICOUNT=off leaves it out.
pub fn bench_icount_args() -> Vec<String> {
    match std::env::var("BENCH_ICOUNT").ok().as_deref().map(str::trim) {
        Some("off") => Vec::new(),
        _ => qemu_args(&["-icount", "shift=0"]),
    }
}

/// Pairs of (capOS label, Linux label) printed side by side.
pub const IPC_VS_LINUX: &[(&str, &str)] = &[("kernel null call", "getppid"), ("endpoint null round trip", "pipe round trip")];
pub const STORAGE_VS_LINUX: &[(&str, &str)] = &[
    ("File.read 4 KiB", "O_DIRECT read 4 KiB"),
    ("File.read 128 KiB", "O_DIRECT read 128 KiB"),
    ("FAT File.read 4 KiB", "O_DIRECT read 4 KiB"),
    ("FAT File.read 128 KiB", "O_DIRECT read 128 KiB"),
    ("fs-service File.read 4 KiB", "O_DIRECT read 4 KiB"),
    ("fs-service File.read 128 KiB", "O_DIRECT read 128 KiB"),
];
/// bench-storage's figures beside the raw NVMe driver's (bench-blk,
/// polled like a storage call in a syscall, its wait excluded).
pub const STORAGE_VS_BLK: &[(&str, &str, &str)] = &[
    ("blk", "File.read 4 KiB", "nvme0n1 raw read 4 KiB qd1 polled"),
    ("blk", "File.read 128 KiB", "nvme0n1 raw read 128 KiB qd1 polled"),
];
pub const BLK_VS_LINUX: &[(&str, &str)] = &[
    ("nvme0n1 trait read 4 KiB qd1 irq", "O_DIRECT read 4 KiB"),
    ("nvme0n1 trait read 128 KiB qd1 irq", "O_DIRECT read 128 KiB"),
];

/// The shell scenario (`make run-shell`): the default system (crate::system:
/// /data on storage-fs-service over a fresh CAPOSWF1 disk, the store on
/// store-service, /fat from the kernel; DATA_IMAGE, STORE_IMAGE and
/// FAT_IMAGE in their place, in place), with the
/// lines of SHELL_SCRIPT (default tools/shell.script) typed one per
/// `capos$ ` prompt, then `halt` at the kernel prompt the shell's `exit`
/// hands the console back to. The default script on fresh disks is
/// checked line by line (and gets escape sequences before Enter, an
/// up-arrow recall, a 1,500-character line and a line of binary garbage
/// before its `exit`), and a second boot, on a FAT disk and a store the
/// scenario builds, checks the user's own disks are what /fat and the
/// store serve; any other run gets the generic
/// checks: no panic, the shell reaches `exit`, the kernel prompt halts.
fn shell_boots(root: &std::path::Path) -> Vec<Boot> {
    let first = shell_boot_with(root, input_path("SHELL_SCRIPT"), &crate::system::user_images_env());
    if first.checks.is_empty() {
        vec![first]
    } else {
        vec![first, user_disks_boot(root)]
    }
}

/// The shell on the user's own disks as FAT_IMAGE=, STORE_IMAGE= and
/// DATA_IMAGE= give them: images built from tools/shell-user-disks/
/// (crate::system::boot_images takes a boot's own `fat`, `store` and
/// `data` as those variables). The user's file must be in /fat and copy
/// into /data unchanged, the user's key in the store, and nothing of the
/// default FAT disk visible. /data is a 128 KiB disk, so copying the
/// 165 KiB big.txt fails midway: the shell must say so, remove the part it
/// wrote, and carry on.
fn user_disks_boot(root: &std::path::Path) -> Boot {
    let typed = [
        "ls /fat",
        "cat /fat/from-host.txt",
        "keys",
        "get owner",
        "cp /fat/from-host.txt /data",
        "sha256 /fat/from-host.txt",
        "sha256 /data/from-host.txt",
        "cp /fat/big.txt /data/big.txt",
        "stat /data/big.txt",
        "ls /data",
        "exit",
    ];
    let mut script: Vec<(String, Vec<u8>)> = typed.iter().map(|l| ("capos$ ".to_string(), format!("{l}\r").into_bytes())).collect();
    script.push(("capos> ".into(), b"halt\r".to_vec()));
    let mut expect = DEFAULT_SYSTEM_EXPECTS.to_vec();
    expect.extend_from_slice(&[
        "[shell] from-host.txt  42 bytes",
        "[shell] brought in on a FAT disk made on the host",
        "[shell] owner",
        "[shell] (1 key)",
        "[shell] the user's own store",
        "[shell] copied 42 bytes from /fat/from-host.txt to /data/from-host.txt",
        // The code is the service's (today tooLarge: a 128 KiB CAPOSWF1
        // disk cannot hold a file that size).
        "[shell] : cp /fat/big.txt /data/big.txt: stopped after ",
        "[shell]  of 168960 bytes: /data/big.txt: ",
        "[shell] ; removed the partial /data/big.txt",
        "[shell] error: notFound: /data/big.txt",
        "[shell] bye",
        "halting",
    ]);
    let kv = root.join("tools/shell-user-disks/store.kv").display().to_string();
    Boot {
        script,
        guest_verdicts: false,
        forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "restarted as", "[shell] README.TXT", "[shell] docs/", "[shell] welcome.txt"]),
        default_system: true,
        default_disks: Some(DefaultDisksUse::Fresh),
        store_images: vec![("store", strings(&["--store", "--seed", &kv, "--blocks", "2048"])), ("data", strings(&["--writable", "--blocks", "256"]))],
        script_images: vec![("fat", "tools/mkdefault-fat-image", vec![("FAT_SOURCE", "tools/shell-user-disks/fat")])],
        checks: vec![("each copy has its source's sha256", copies_match_their_source)],
        timeout: Some(120),
        ..kernel_boot("user-disks", "", Expect::Success, &expect)
    }
}

fn shell_boot_with(root: &std::path::Path, user_script: Option<std::path::PathBuf>, images: &crate::system::UserImages) -> Boot {
    let path = user_script.clone().unwrap_or_else(|| root.join("tools/shell.script"));
    let (text, error) = match read_text_input("SHELL_SCRIPT", &path) {
        Ok(t) => (t, None),
        Err(e) => (String::new(), Some(e)),
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for l in text.lines().map(|l| l.trim_end_matches('\r')) {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        lines.push(l.as_bytes().to_vec());
        if l.trim() == "exit" {
            break;
        }
    }
    if lines.last().map(|l| l.trim_ascii()) != Some(b"exit".as_slice()) {
        lines.push(b"exit".to_vec());
    }
    let checked = user_script.is_none() && !images.any();
    if checked {
        let at = lines.len() - 1;
        // A lone ESC and a half CSI before Enter (Enter still ends the
        // line); a half CSI, Enter and a command in one write (the command
        // arrives whole); the up arrow recalls that command.
        let escapes: [&[u8]; 4] = [b"\x1b", b"\x1b[", b"\x1b[\rget app/name", b"\x1b[A"];
        for (i, e) in escapes.iter().enumerate() {
            lines.insert(at + i, e.to_vec());
        }
        let at = at + escapes.len();
        lines.insert(at, vec![b'y'; 1500]);
        let garbage: Vec<u8> = (0u8..=255).filter(|b| *b != b'\r' && *b != b'\n').collect();
        lines.insert(at + 1, garbage);
    }
    let mut script: Vec<(String, Vec<u8>)> = lines
        .into_iter()
        .map(|mut l| {
            l.push(b'\r');
            ("capos$ ".to_string(), l)
        })
        .collect();
    script.push(("capos> ".into(), b"halt\r".to_vec()));
    let mut expect = DEFAULT_SYSTEM_EXPECTS.to_vec();
    expect.extend_from_slice(&["[shell] bye", "exited with status 0", "userspace idle: 1 exited, 0 killed, 2 waiting for calls", "halting"]);
    if checked {
        expect.extend_from_slice(SHELL_SCRIPT_EXPECTS);
    }
    Boot {
        script,
        guest_verdicts: false,
        forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "[shell] panic", "[fs] panic", "[store] panic", "restarted as", "[shell] error: permissionDenied: /data: the root", "[shell] (1 keys)"]),
        default_system: true,
        default_disks: Some(DefaultDisksUse::Fresh),
        timeout: Some(120),
        checks: if checked {
            vec![("get app/name ran twice (typed after ESC [ Enter, then recalled with the up arrow)", get_ran_twice), ("each copy has its source's sha256", copies_match_their_source)]
        } else {
            Vec::new()
        },
        input_error: error,
        ..kernel_boot("shell", "", Expect::Success, &expect)
    }
}

/// `make bench-boot`: what `make run` boots (the default system on fresh
/// disks, as a first `make run` makes them), counted from the kernel's
/// first instruction (kernel/src/main.rs) to the first process's first
/// entry to user mode (kernel/src/arch/x86_64/syscall.rs), to the shell's
/// first prompt (demos/shell) and to the first time the kernel finds
/// nothing to run (kernel/src/proc/mod.rs: the services serving, the shell
/// waiting for a line). Then `exit` and `halt`. The prompt comes while the
/// storage services may still be starting, at a point that moves with the
/// host (docs/benchmarks.md); the first idle does not.
fn bench_boot() -> Boot {
    let mut expect = DEFAULT_SYSTEM_EXPECTS.to_vec();
    expect.extend_from_slice(&["[shell] bye", "halting"]);
    Boot {
        machine: Some("q35"),
        smp: Some("1"),
        qemu_args: bench_icount_args(),
        icount_plugin: true,
        profile: Some(bench_profile()),
        milestones: vec!["kernel entry", "first user process", "shell prompt", "first idle"],
        script: vec![("capos$ ".into(), b"exit\r".to_vec()), ("capos> ".into(), b"halt\r".to_vec())],
        guest_verdicts: false,
        forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "restarted as"]),
        default_system: true,
        default_disks: Some(DefaultDisksUse::Fresh),
        timeout: Some(600),
        ..kernel_boot("icount", "", Expect::Success, &expect)
    }
}

/// `make run-default-system`: two boots of what `make run` boots, on disks
/// made afresh by the first (as a first `make run` makes them) and used in
/// place by the second. The first lists /, reads the seeded files, writes a
/// file and a key and exits (which syncs); the second reads both back.
fn default_system_boots() -> Vec<Boot> {
    let typed = |lines: &[&str]| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = lines.iter().map(|l| ("capos$ ".to_string(), format!("{l}\r").into_bytes())).collect();
        v.push(("capos> ".into(), b"devices\r".to_vec()));
        v.push(("capos> ".into(), b"halt\r".to_vec()));
        v
    };
    let boot = |name: &'static str, disks, lines: &[&str], expect: &[&str]| {
        let mut e = DEFAULT_SYSTEM_EXPECTS.to_vec();
        e.extend_from_slice(expect);
        e.extend_from_slice(&["[shell] bye", "userspace idle: 1 exited, 0 killed, 2 waiting for calls", "capos> devices", "nvme0n1", "nvme1n1", "vblk0", "halting"]);
        // As `make run` boots it: 2 CPUs, like the smallest cloud shapes.
        e.push("smp: 2 of 2 CPUs online");
        Boot {
            smp: Some("2"),
            script: typed(lines),
            guest_verdicts: false,
            forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "{any} error: ", "restarted as"]),
            default_system: true,
            default_disks: Some(disks),
            timeout: Some(120),
            ..kernel_boot(name, "", Expect::Success, &e)
        }
    };
    vec![
        boot(
            "first-run",
            DefaultDisksUse::Fresh,
            &["ls /", "cat /data/welcome.txt", "cat /fat/docs/hello.txt", "write /data/note.txt written by the first run", "put color blue", "exit"],
            &["[shell] data/", "[shell] fat/", "[shell] Welcome to capOS.", "[shell] hello from FAT32", "[shell] wrote 25 bytes to /data/note.txt", "[shell] synced /data", "[shell] /fat: read-only, nothing to sync"],
        ),
        boot(
            "second-run",
            DefaultDisksUse::Reuse,
            &["cat /data/note.txt", "get color", "ls /data", "exit"],
            &["[shell] written by the first run", "[shell] blue", "[shell] note.txt  25 bytes", "[shell] welcome.txt"],
        ),
    ]
}

/// `make run-process-lifetime`: demos/process-lifetime.manifest.
fn process_lifetime_boot() -> Boot {
    Boot {
        checks: vec![
            ("200 endpoint re-binds", two_hundred_rebinds),
            ("free frames back at their steady count", frames_back_at_steady),
            ("table and stack slots reused", slots_reused),
        ],
        timeout: Some(600),
        ..user_boot("lifetime", "demos/process-lifetime.manifest", "exit_when_idle", &[
            "[driver] [PASS] lifetime-restarts-serve-through-the-same-capability",
            "[driver] [PASS] lifetime-call-in-flight-gets-peer-gone",
            "[driver] [PASS] lifetime-no-frame-leaks",
            "[dropclient] [PASS] dropped-receive-handle-fails-the-queued-call",
            "[dropclient] [PASS] dropped-receive-handle-fails-later-calls",
            "killed: by ProcessControl from driver (pid 2); restarted as pid",
            "(restart #200), endpoint srv/svc re-bound",
            "proc: quitter (pid 5) exited with status 0; not restarted (exit status 0 is success)",
            "(restart #3)",
            "not restarted: its restart budget (3 restarts in one boot) is spent",
            "process driver (pid 2) exited with status 0",
        ])
    }
}

/// `make run-storage-services`: demos/storage-services.manifest on fresh
/// default disks (services-check `write` + `chaos`), then
/// demos/storage-services-verify.manifest on the same disks.
fn storage_services_boots() -> Vec<Boot> {
    let forbid = strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "{any} [FAIL]"]);
    vec![
        Boot {
            guest_verdicts: true,
            forbid: forbid.clone(),
            default_disks: Some(DefaultDisksUse::Fresh),
            timeout: Some(400),
            ..user_boot("write-and-kill", "demos/storage-services.manifest", "exit_when_idle", &[
                "[fs] CAPOSWF1 generation ",
                "[store] CAPOSST1 mounted; serving 'store'",
                "[check] [PASS] files-and-keys-round-trip",
                "[check] [PASS] subtree-cannot-escape",
                "[check] [PASS] read-only-refused",
                "[check] [PASS] malformed-calls-refused",
                "restarted as",
                "re-bound",
                "[chaos] [PASS] restarts-free-every-frame",
                "[check] [PASS] killed-service-restarts",
                "[check] [PASS] nothing-synced-lost",
            ])
        },
        Boot {
            guest_verdicts: true,
            forbid,
            default_disks: Some(DefaultDisksUse::Reuse),
            timeout: Some(120),
            ..user_boot("after-reboot", "demos/storage-services-verify.manifest", "exit_when_idle", &["[check] [PASS] persisted-across-reboot"])
        },
    ]
}

/// `make run-smp`: demos/smp.manifest (four checked ping-pong pairs and
/// the storage services under 40 kills) on q35 and pc with 2, 4 and 8
/// CPUs, each CPU reported online, no lock-order report (a dev kernel
/// checks), the restarts' frames all freed; then the TLB shootdown
/// self-test, and the same test with the shootdown skipped once, which
/// must fail (it can see a stale translation).
fn smp_boots() -> Vec<Boot> {
    let forbid = strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "{any} [FAIL]", "lock order:"]);
    let mut boots = Vec::new();
    for (name, machine, cpus, online) in [
        ("q35-2cpu", "q35", "2", "smp: 2 of 2 CPUs online"),
        ("q35-4cpu", "q35", "4", "smp: 4 of 4 CPUs online"),
        ("q35-8cpu", "q35", "8", "smp: 8 of 8 CPUs online"),
        ("pc-2cpu", "pc", "2", "smp: 2 of 2 CPUs online"),
        ("pc-4cpu", "pc", "4", "smp: 4 of 4 CPUs online"),
        ("pc-8cpu", "pc", "8", "smp: 8 of 8 CPUs online"),
    ] {
        boots.push(Boot {
            machine: Some(machine),
            smp: Some(cpus),
            guest_verdicts: true,
            forbid: forbid.clone(),
            default_disks: Some(DefaultDisksUse::Fresh),
            timeout: Some(600),
            profile: Some(String::from("dev")),
            ..user_boot(name, "demos/smp.manifest", "test=tlb", &[
                online,
                "[ping1] [PASS] stress",
                "[ping2] [PASS] stress",
                "[ping3] [PASS] stress",
                "[ping4] [PASS] stress",
                "[check] [PASS] killed-service-restarts",
                "[check] [PASS] nothing-synced-lost",
                "[chaos] [PASS] restarts-free-every-frame",
                "[PASS] tlb-shootdown: CPU 1 read the new mapping",
            ])
        });
    }
    boots.push(Boot {
        smp: Some("2"),
        profile: Some(String::from("dev")),
        // Its [FAIL] is the expected outcome, not the guest's verdict.
        guest_verdicts: false,
        forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC"]),
        ..kernel_boot("tlb-skipped", "test=tlb-skip", Expect::KernelFailure, &[
            "tlb: shootdown skipped once (self-test)",
            "[FAIL] tlb-shootdown: CPU 1 read through its stale translation",
        ])
    });
    boots
}

/// The throughput of `make bench-smp`'s pairs in one boot: calls per
/// billion TSC cycles, summed over the pairs (each prints `stress: N calls
/// answered right in C cycles`; they run at once).
fn pair_throughput(lines: &[String]) -> Result<f64, String> {
    let mut total = 0.0;
    for pair in ["ping1", "ping2"] {
        let m = crate::source::messages_of(lines, pair)
            .find_map(|m| m.strip_prefix("[PASS] stress: ").map(|r| r.to_string()))
            .ok_or_else(|| format!("{pair} printed no stress result"))?;
        let nums: Vec<f64> = m.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        match nums.as_slice() {
            [calls, cycles] if *cycles > 0.0 => total += calls * 1e9 / cycles,
            _ => return Err(format!("cannot read '{m}'")),
        }
    }
    Ok(total)
}

/// The 1-CPU boot's throughput, for the 2-CPU boot's ratio (the boots of
/// a scenario run in order).
static ONE_CPU_THROUGHPUT: std::sync::Mutex<Option<f64>> = std::sync::Mutex::new(None);

fn smp_throughput_1(lines: &[String]) -> Result<String, String> {
    let t = pair_throughput(lines)?;
    *ONE_CPU_THROUGHPUT.lock().unwrap() = Some(t);
    Ok(format!("2 pairs on 1 CPU: {:.0} calls per 10^9 TSC cycles", t))
}

fn smp_throughput_2(lines: &[String]) -> Result<String, String> {
    let t = pair_throughput(lines)?;
    let one = ONE_CPU_THROUGHPUT.lock().unwrap().ok_or("the 1-CPU boot gave no figure")?;
    Ok(format!("2 pairs on 2 CPUs: {:.0} calls per 10^9 TSC cycles; 2-CPU / 1-CPU throughput ratio {:.2}", t, t / one))
}

/// `make bench-smp` (a benchmark): two checked ping-pong pairs on 1 CPU,
/// then on 2; their throughput (wall time, TSC cycles: TCG runs a thread
/// per vCPU) and the ratio.
fn bench_smp_boots() -> Vec<Boot> {
    [("1cpu", "1", smp_throughput_1 as LogCheck), ("2cpu", "2", smp_throughput_2 as LogCheck)]
        .into_iter()
        .map(|(name, cpus, check)| Boot {
            smp: Some(cpus),
            timeout: Some(600),
            checks: vec![("pair throughput", check)],
            profile: Some(bench_profile()),
            ..user_boot(name, "demos/bench-smp.manifest", "exit_when_idle", &["[ping1] [PASS] stress", "[ping2] [PASS] stress"])
        })
        .collect()
}

/// A fresh CAPOSWF1 image NAME of `blocks` 512-byte blocks on its own NVMe
/// controller (the kernel numbers them in the order of these arguments);
/// `cache` is QEMU's cache mode for it.
fn wf_nvme(name: &'static str, blocks: u64, cache: &str) -> ((&'static str, Vec<String>), Vec<String>) {
    (
        (name, strings(&["--writable", "--blocks", &blocks.to_string()])),
        vec![
            "-drive".into(),
            format!("file={{disk:{name}}},if=none,id={name},format=raw,cache={cache}"),
            "-device".into(),
            format!("nvme,serial=capos-{name},drive={name}"),
        ],
    )
}

/// The processes of demos/storage-services-hostile.manifest that announce
/// a bad `File.read` (`CHECK: File.read with its bulk buffer at ...`)
/// before making it, and how many calls they make in all.
const HOSTILE_READERS: &[&str] = &["hostile-ro", "hostile-unmapped", "hostile-recv", "kernel-file"];
const HOSTILE_READS: usize = 6;

/// Every bad `File.read` the hostile clients announced came back: the
/// same process later printed a verdict for that check. A call that never
/// returns leaves its announcement unanswered (the kernel then reports
/// that process among those waiting when userspace goes idle).
fn bad_reads_returned(lines: &[String]) -> Result<String, String> {
    const CALL: &str = ": File.read with its bulk buffer at ";
    let (mut announced, mut stuck) = (0, Vec::new());
    for p in HOSTILE_READERS {
        let msgs: Vec<&str> = crate::source::messages_of(lines, p).collect();
        for (i, m) in msgs.iter().enumerate() {
            let Some((check, _)) = m.split_once(CALL) else { continue };
            announced += 1;
            let verdict = |v: &&str| {
                v.strip_prefix("[PASS] ").or_else(|| v.strip_prefix("[FAIL] ")).and_then(|v| v.strip_prefix(check)).is_some_and(|v| v.starts_with(':'))
            };
            if !msgs[i + 1..].iter().any(verdict) {
                stuck.push(format!("[{p}] {m}"));
            }
        }
    }
    match (announced, stuck.is_empty()) {
        (HOSTILE_READS, true) => Ok(format!("all {HOSTILE_READS} bad File.read calls returned")),
        (n, true) => Err(format!("{n} bad File.read calls announced, expected {HOSTILE_READS}")),
        (_, false) => Err(format!("never returned: {}", stuck.join("; "))),
    }
}

/// `make run-storage-services-hostile`: demos/storage-services-hostile.manifest
/// (demos/fs-hostile). Each hostile client's bad `File.read` must fail
/// with badAddress at once, through storage-fs-service and through the
/// kernel's own File; `busy` must be served throughout; and when userspace
/// goes idle only the service may still be waiting (a client stuck in its
/// call would be counted there too).
fn storage_services_hostile_boot() -> Boot {
    let (svc_image, svc_args) = wf_nvme("svc", 16_384, "writeback");
    let (kfs_image, kfs_args) = wf_nvme("kfs", 16_384, "writeback");
    Boot {
        machine: Some("q35"),
        qemu_args: [svc_args, kfs_args].concat(),
        store_images: vec![svc_image, kfs_image],
        // A bad buffer must be refused when the call is made: the service
        // never answers into it (it says so when a reply is refused).
        forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "[fs] reply to badge"]),
        checks: vec![("every bad File.read returned", bad_reads_returned)],
        timeout: Some(180),
        ..user_boot("bad-bulk-buffers", "demos/storage-services-hostile.manifest", "exit_when_idle", &[
            "storage: mounted kfs",
            "[fs] CAPOSWF1 generation ",
            "[hostile-ro] [PASS] fs-service-read-into-read-only-page: badAddress",
            "[hostile-unmapped] [PASS] fs-service-read-into-unmapped: badAddress",
            "[hostile-recv] [PASS] fs-service-read-into-recv-area: badAddress",
            "[kernel-file] [PASS] kernel-file-read-into-read-only-page: badAddress",
            "[kernel-file] [PASS] kernel-file-read-into-unmapped: badAddress",
            "[kernel-file] [PASS] kernel-file-read-into-recv-area: badAddress",
            "[busy] [PASS] busy-served-throughout:",
            "[busy] [PASS] hostile-clients-ended:",
            "userspace idle: 5 exited, 0 killed, 1 waiting for calls",
        ])
    }
}

/// demos/storage-services-churn.manifest's workload: `churn`'s cycles,
/// `holder`'s lives and files per life.
const CHURN_CYCLES: u64 = 100_000;
const HOLDER_LIVES: u64 = 5;
const HOLDER_FILES: u64 = 1_500;
/// Objects the clients are handed: a File per churn cycle and the
/// `churn` directory, and per holder life its files and `hold` directory.
const CHURN_OBJECTS: u64 = CHURN_CYCLES + 1 + HOLDER_LIVES * (HOLDER_FILES + 1);

/// storage-fs-service's last `live objects: N, released R`: every client
/// has ended when userspace is idle, so N must be 0 (the manifest leaves
/// no object held: the service's session roots are not objects), and R
/// at least every object the clients were handed.
fn objects_released(lines: &[String]) -> Result<String, String> {
    let Some(last) = crate::source::messages_of(lines, "fs").filter_map(|m| m.strip_prefix("live objects: ")).last() else {
        return Err("storage-fs-service never printed 'live objects: N, released R' (it released nothing)".into());
    };
    let figures: Vec<u64> = last.split(", released ").filter_map(|f| f.trim().parse().ok()).collect();
    match figures.as_slice() {
        [0, released] if *released >= CHURN_OBJECTS => Ok(format!("0 objects live at the end, {released} released (the clients were handed {CHURN_OBJECTS})")),
        [live, released] => Err(format!("{live} objects live at the end, {released} released; expected 0 live and at least {CHURN_OBJECTS} released")),
        _ => Err(format!("cannot read 'live objects: {last}'")),
    }
}

/// `make run-storage-services-churn`: demos/storage-services-churn.manifest
/// (demos/fs-churn). Objects made and never closed must be freed when
/// their capability is dropped (100,000 create/write/drop/remove cycles
/// in one session) or their holder dies (five lives of one session, each
/// holding 1,500 new files); at the end none is live. The disk is
/// attached with `cache=unsafe`: the service flushes twice per commit and
/// durability is not what this scenario tests.
fn storage_services_churn_boot() -> Boot {
    let (svc_image, svc_args) = wf_nvme("svc", 131_072, "unsafe");
    let mut expect = vec![
        "[fs] CAPOSWF1 generation ".to_string(),
        "[churn] churn: 10000 cycles".to_string(),
        format!("[churn] [PASS] churn-create-drop-remove: {CHURN_CYCLES} cycles"),
        "(restart #4)".to_string(),
        "proc: holder (pid".to_string(),
        "exited with status 0; not restarted (exit status 0 is success)".to_string(),
        "userspace idle: 6 exited, 0 killed, 1 waiting for calls".to_string(),
    ];
    for life in 1..=HOLDER_LIVES {
        expect.push(format!("[holder] life {life}: {HOLDER_FILES} files"));
        expect.push(format!("[holder] [PASS] holder-life-{life}: {HOLDER_FILES} new files held"));
    }
    let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
    Boot {
        machine: Some("q35"),
        qemu_args: svc_args,
        store_images: vec![svc_image],
        forbid: strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic"]),
        checks: vec![("every object released", objects_released)],
        timeout: Some(CHURN_TIMEOUT_SECS),
        ..user_boot("churn-and-hold", "demos/storage-services-churn.manifest", "exit_when_idle", &expect)
    }
}

/// The churn boot's time limit: its 100,000 cycles took 494 s at 4.9 ms a
/// cycle on an idle 2-core host and 694 s at 6.9 ms on a loaded one
/// (nearly all of it NVMe commands: two commits and a data write a cycle).
const CHURN_TIMEOUT_SECS: u64 = 1800;

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

/// shell: `get app/name`'s output twice, and no mangled command.
fn get_ran_twice(lines: &[String]) -> Result<String, String> {
    let runs = crate::source::messages_of(lines, "shell").filter(|m| m.trim_end() == "capOS").count();
    if let Some(l) = lines.iter().find(|l| l.contains("unknown command 'et'")) {
        return Err(format!("the first letter was lost: {l}"));
    }
    match runs {
        2 => Ok("get app/name printed capOS twice".into()),
        n => Err(format!("get app/name printed capOS {n} times, expected 2")),
    }
}

/// shell: for each `copied N bytes from A to B`, the last `sha256` lines
/// printed for A and for B name the same hash and size; at least one copy.
fn copies_match_their_source(lines: &[String]) -> Result<String, String> {
    let said: Vec<&str> = crate::source::messages_of(lines, "shell").collect();
    let sha = |path: &str| said.iter().rev().find_map(|m| m.split_once("  ").filter(|(h, rest)| h.len() == 64 && rest.starts_with(path) && rest[path.len()..].starts_with(" (")).map(|(h, rest)| (h, &rest[path.len()..])));
    let mut copies = 0;
    for m in &said {
        let Some((_, fromto)) = m.strip_prefix("copied ").and_then(|r| r.split_once(" from ")) else { continue };
        let Some((from, to)) = fromto.split_once(" to ") else { continue };
        match (sha(from), sha(to)) {
            (Some(a), Some(b)) if a == b => copies += 1,
            (Some(a), Some(b)) => return Err(format!("{to} is {} {}, its source {from} {} {}", b.0, b.1, a.0, a.1)),
            _ => return Err(format!("no sha256 line for both {from} and {to}")),
        }
    }
    match copies {
        0 => Err("no `copied ... from ... to ...` line".into()),
        n => Ok(format!("every copy ({n}) has its source's sha256 and size")),
    }
}

/// What every boot of the default system prints before the shell's prompt.
const DEFAULT_SYSTEM_EXPECTS: &[&str] = &[
    "storage: mounted fat",
    "[fs] CAPOSWF1 generation ",
    "[store] CAPOSST1 mounted; serving 'store'",
    "[shell] capOS shell: 2 filesystems, a store; type help",
];

/// What tools/shell.script must print on a fresh disk.
const SHELL_SCRIPT_EXPECTS: &[&str] = &[
    "[shell]   write PATH TEXT...",
    "[shell] /data  filesystem (grant fs-data): available, ",
    "[shell] /fat  filesystem (grant fs-fat): available, ",
    "[shell] store  key/value store (grant store): available, ",
    "[shell] data/",
    "[shell] wrote 27 bytes to /data/docs/hello.txt",
    "[shell] appended 12 bytes to /data/docs/hello.txt",
    "[shell] hello from the capOS shell",
    "[shell] second line",
    "[shell] hello.txt  39 bytes",
    "[shell] /data/docs/hello.txt: 39 bytes, file",
    "[shell]   created:  20",
    "[shell] UTC (wallClock)",
    "[shell]   modified: ",
    "[shell] bedb4bce80831efb46a5ce019121f41ec5c3472e4ce64c8f753f2bb455e9afa5  /data/docs/hello.txt (39 bytes)",
    "[shell] greeting.txt  39 bytes",
    "[shell] /data/archive",
    "[shell] error: notFound: /data/nothing-here",
    "[shell] archive/",
    "[shell] /data/archive: 0 bytes, directory",
    "[shell] error: isADirectory: /data: is a directory (a mount root)",
    "[shell] error: isADirectory: /: is a directory (it holds the mounts)",
    "[shell] error: isADirectory: /data/archive: is a directory",
    "[shell] error: isADirectory: /data/notes: is a directory",
    "[shell] error: isADirectory: /data/pics: is a directory",
    "[shell] error: isADirectory: /fat/docs: is a directory",
    "[shell] error: notADirectory: /data/welcome.txt: ",
    "[shell] copied 17 bytes from /fat/docs/hello.txt to /data/hello-copy.txt",
    "[shell] copied 234 bytes from /data/welcome.txt to /data/archive/welcome.txt",
    "[shell] welcome.txt  234 bytes",
    "[shell] error: notFound: /fat/no-such-file",
    "[shell] error: invalidArgument: /data/hello-copy.txt and /data are the same file",
    "[shell] error: readOnly: /fat/welcome.txt",
    "[shell] blue",
    "[shell] true",
    "[shell] app/name",
    "[shell] (2 keys)",
    "[shell] (1 key)",
    "[shell] deleted color",
    "[shell] false",
    "[shell] error: notFound: key color",
    "[shell] error: invalidArgument: unknown command 'frobnicate'; type help",
    "(line too long; input beyond 1024 bytes on this line is ignored)",
    "(line was cut to 1024 bytes)",
    "[shell] error: invalidArgument: unknown command 'yyyyyyyy",
    "[shell] synced /data",
];

/// Scenarios that run with the machine to themselves when scenarios run in
/// parallel (JOBS > 1, parallel.rs): after the others, one at a time, each
/// with the reason. The rest judge by lines and generous per-boot time
/// limits, and hold under a machine shared with another QEMU.
pub const RUN_ALONE: &[(&str, &str)] = &[
    ("smp", "up to 8 vCPUs, each a host thread under TCG: beside another QEMU on 2 cores its boots come near their time limits, and its TLB-shootdown check wants the vCPUs to run at once"),
    ("process-lifetime-smp4", "4 vCPUs (host threads) killing and restarting a server 200 times against a time limit"),
    ("storage-services-smp4", "4 vCPUs (host threads) under 200 kills against a time limit"),
    ("storage-writable-recovery", "its 20 power cuts are SIGKILLs at planned host-time delays (0-250 ms) into the workload; a slower guest moves where they land"),
    ("bench-smp", "its figure is throughput in TSC cycles (wall time), which another QEMU beside it would change"),
];

/// Scenarios that take minutes (measured alone on the development host),
/// started first when scenarios run in parallel so that none of them is
/// left running by itself at the end of the batch.
pub const LONG: &[&str] = &["storage-services-churn"];

/// Why `name` runs alone (RUN_ALONE), if it does.
pub fn runs_alone(name: &str) -> Option<&'static str> {
    RUN_ALONE.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}

pub fn all() -> Vec<Scenario> {
    all_in(&crate::workspace_root().unwrap_or_default())
}

pub fn all_in(root: &std::path::Path) -> Vec<Scenario> {
    vec![
        Scenario {
            name: "smoke",
            description: "boot, memory summary, heap, frame, every CPU online (QEMU_SMP), timer checks, the read-only wrapper, clean exit",
            capos_boot_only: false,
            boots: vec![smoke_boot()],
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
                Boot {
                    forbid: strings(&["EXCEPTION (unexpected)"]),
                    ..kernel_boot(
                        "panic",
                        "test=panic",
                        Expect::KernelFailure,
                        &["KERNEL PANIC at kernel/src/selftest.rs", "deliberate panic requested by test=panic"],
                    )
                },
                // The lock-order checker (debug kernels only, so this boot
                // is one whatever KERNEL_PROFILE says): an inversion of two
                // test locks panics naming both.
                Boot {
                    forbid: strings(&["EXCEPTION (unexpected)", "[FAIL]"]),
                    profile: Some(String::from("dev")),
                    ..kernel_boot(
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
                },
            ],
        },
        Scenario {
            name: "bench-smp",
            description: "benchmark (not a test): two checked ping-pong pairs on 1 and on 2 CPUs, throughput and ratio",
            capos_boot_only: false,
            boots: bench_smp_boots(),
        },
        Scenario {
            name: "smp",
            description: "ping-pong pairs and storage services under kills on q35 and pc with 2, 4 and 8 CPUs; TLB shootdown seen to work and seen to be needed",
            capos_boot_only: false,
            boots: smp_boots(),
        },
        Scenario {
            name: "diag",
            description: "boot to the serial prompt and run DIAG_SCRIPT (default tools/diag.script)",
            capos_boot_only: false,
            boots: vec![
                diag_boot(root),
                Boot {
                    script: prompt_script(&["reboot".to_string()]),
                    ..kernel_boot("reboot", "log=info", Expect::Reset, &["rebooting"])
                },
            ],
        },
        Scenario {
            name: "prompt-robustness",
            description: "a 10,000-character line, binary garbage, escape sequences cut short by Enter and an unknown command leave the prompt working; the up arrow recalls a command",
            capos_boot_only: false,
            boots: vec![Boot {
                script: vec![
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
                ],
                checks: vec![("cpu ran twice (typed after ESC [ Enter, then recalled with the up arrow)", cpu_ran_twice)],
                ..kernel_boot(
                    "prompt",
                    "log=info",
                    Expect::Success,
                    &["(line too long; further input on this line is ignored)", "error: unknown command 'frobnicate'", "commands:", "uptime:", "vendor:", "halting"],
                )
            }],
        },
        Scenario {
            name: "acpi",
            description: "ACPI discovery on q35 (MCFG, ECAM) and pc (no MCFG, legacy PCI config)",
            capos_boot_only: false,
            boots: vec![
                Boot {
                    machine: Some("q35"),
                    ..prompt_boot("q35", &["acpi", "pci", "irq"], &[
                        "RSDP revision", "FACP at", "APIC at", "HPET at", "MCFG at", "checksum OK",
                        "MCFG: segment 0 buses 00-ff ECAM at", "functions via ECAM (MCFG)", "(ecam)",
                        "override: ISA IRQ 0 -> GSI 2", "COM1: ISA IRQ 4 -> GSI 4",
                    ])
                },
                Boot {
                    machine: Some("pc"),
                    ..prompt_boot("pc", &["acpi", "pci", "irq"], &[
                        "RSDP revision", "FACP at", "APIC at", "checksum OK",
                        "MCFG: absent (PCI config through legacy ports)", "functions via legacy ports 0xCF8/0xCFC", "(legacy)",
                        "override: ISA IRQ 0 -> GSI 2", "COM1: ISA IRQ 4 -> GSI 4",
                    ])
                },
            ],
        },
        Scenario {
            name: "pci",
            description: "enumeration on q35 through PCIe root ports: NVMe and virtio-blk behind bridges",
            capos_boot_only: false,
            boots: vec![Boot {
                machine: Some("q35"),
                qemu_args: qemu_args(PCI_DEVICES),
                scratch_disks: vec![("vd0", 1 << 20)],
                ..prompt_boot("q35-bridges", &["pci", "acpi"], &[
                    "1b36:000c class 060400 PCI-to-PCI bridge [buses 01-01]",
                    "1b36:000c class 060400 PCI-to-PCI bridge [buses 02-02]",
                    "0000:01:00.0 1b36:0010 class 010802 NVMe controller",
                    "0000:02:00.0 1af4:1042 class 010000 SCSI controller",
                    "MSI-X@",
                    "8086:29c0 class 060000 host bridge",
                ])
            }],
        },
        Scenario {
            name: "msix",
            description: "an NVMe admin completion delivered through MSI-X (q35 and pc)",
            capos_boot_only: false,
            boots: vec![
                Boot {
                    machine: Some("q35"),
                    qemu_args: qemu_args(&["-device", "nvme,serial=capos-msix"]),
                    ..kernel_boot("q35", "test=msix", Expect::Success, &["[PASS] msix-nvme-admin-completion", "delivered 1 interrupt"])
                },
                Boot {
                    machine: Some("pc"),
                    qemu_args: qemu_args(&["-device", "nvme,serial=capos-msix"]),
                    ..kernel_boot("pc", "test=msix", Expect::Success, &["[PASS] msix-nvme-admin-completion", "delivered 1 interrupt"])
                },
            ],
        },
        {
            let b = blk_settings();
            let disk = |kind, name| BlkDisk { guest_name: name, kind, size: b.size, seed: 1, source: b.image.clone() };
            Scenario {
                name: "blk-virtio",
                description: "virtio-blk: hash the disk (BLK_IMAGE or BLK_IMAGE_SIZE of random data), write, flush, verify on the host",
                capos_boot_only: false,
                boots: vec![b.checked(blk_boot("q35", "q35", "", "", vec![disk(DiskKind::Virtio, "vblk0")], b.read_mib, &["virtio-blk 0000:", "flush true"]))],
            }
        },
        {
            let b = blk_settings();
            let disk = |name| BlkDisk { guest_name: name, kind: DiskKind::Nvme, size: b.size, seed: 2, source: b.image.clone() };
            // After the checksums: requests with interrupts off, as from a
            // system call.
            let expect = |mode: &'static str| -> Vec<&'static str> { vec![mode, "[PASS] nvme-irqs-off"] };
            Scenario {
                name: "blk-nvme",
                description: "NVMe: hash, write, flush, verify; q35 and pc with MSI-X, and the polling path; requests with interrupts off; a timed-out read resets the controller",
                capos_boot_only: false,
                boots: vec![
                    b.checked(blk_boot("q35-msix", "q35", "", "nvme-irqs-off", vec![disk("nvme0n1")], b.read_mib, &expect("MSI-X completions"))),
                    b.checked(blk_boot("pc-msix", "pc", "", "nvme-irqs-off", vec![disk("nvme0n1")], b.read_mib, &expect("MSI-X completions"))),
                    b.checked(blk_boot("q35-polling", "q35", "nvme.msix=off", "nvme-irqs-off", vec![disk("nvme0n1")], b.read_mib, &expect("polled completions"))),
                    nvme_timeout_boot("q35-msix-timeout", "test=nvme-timeout", "MSI-X completions"),
                    nvme_timeout_boot("q35-polling-timeout", "test=nvme-timeout nvme.msix=off", "polled completions"),
                ],
            }
        },
        {
            let b = blk_settings();
            // The modern function (1af4:1048) on q35; QEMU's default, the
            // transitional one (1af4:1004), on pc.
            let disk = |target, name, seed| BlkDisk { guest_name: name, kind: DiskKind::Scsi { target, controller: ",disable-legacy=on" }, size: b.size, seed, source: b.image.clone() };
            Scenario {
                name: "blk-scsi",
                description: "virtio-scsi: two disks on targets 0 and 3 of the modern device hashed, written, flushed and checked on the host (q35), reads kept in the device together; a sparse 3 TiB disk on the transitional device sized by READ CAPACITY(16) and written past 2 TiB (pc); a timed-out read resets the device with no late DMA; a legacy-only device is logged and left alone",
                capos_boot_only: false,
                boots: vec![
                    b.checked(blk_boot("q35-two-targets", "q35", "", "scsi-overlap", vec![disk(0, "sda", 21), disk(3, "sdb", 22)], b.read_mib, &[
                        "PCI 1af4:1048 (modern)",
                        "devices: sda bound to virtio-scsi (virtio-scsi at 0000:",
                        "target 0 LUN 0",
                        "devices: sdb bound to virtio-scsi (virtio-scsi at 0000:",
                        "target 3 LUN 0",
                        "[PASS] scsi-overlap-sda",
                        "[PASS] scsi-overlap-sdb",
                    ])),
                    blk_boot(
                        "pc-3tib-sparse",
                        "pc",
                        "",
                        "scsi-overlap",
                        vec![BlkDisk { guest_name: "sda", kind: DiskKind::Scsi { target: 1, controller: "" }, size: 3 << 40, seed: 23, source: None }],
                        1,
                        &["PCI 1af4:1004 (transitional)", "target 1 LUN 0", "6442450944 blocks of 512 bytes (3145728 MiB), sized by READ CAPACITY(16)", "[PASS] scsi-overlap-sda"],
                    ),
                    // A disk QEMU throttles to NVME_SLOW_IOPS reads a second:
                    // the self-test's 20 ms deadline passes while the device
                    // still holds the read.
                    throttled_disk_boot("q35-timeout", &["virtio-scsi-pci,id=scsi0", "scsi-hd,drive=slow,bus=scsi0.0,scsi-id=2"], "test=scsi-timeout", &[
                        "READ(10) to target 2 timed out; device reset, controller failed",
                        "[PASS] scsi-timeout-reset",
                    ]),
                    Boot {
                        machine: Some("pc"),
                        qemu_args: qemu_args(&[
                            "-device", "virtio-scsi-pci,id=scsi0,disable-modern=on",
                            "-drive", "if=none,id=legacy,format=raw,file={disk:legacy}",
                            "-device", "scsi-hd,drive=legacy,bus=scsi0.0,scsi-id=0",
                        ]),
                        scratch_disks: vec![("legacy", 1 << 20)],
                        forbid: strings(&["bound to virtio-scsi", "KERNEL PANIC"]),
                        ..kernel_boot("pc-legacy-only", "test=smoke", Expect::Success, &[
                            "PCI 1af4:1004 (transitional)",
                            "no modern virtio PCI transport",
                            "[PASS] smoke",
                        ])
                    },
                ],
            }
        },
        Scenario {
            name: "blk-multi",
            description: "two NVMe controllers and a virtio-blk disk, each named and checksummed",
            capos_boot_only: false,
            boots: vec![blk_boot(
                "q35",
                "q35",
                "",
                "",
                vec![
                    BlkDisk { guest_name: "nvme0n1", kind: DiskKind::Nvme, size: 8 << 20, seed: 11, source: None },
                    BlkDisk { guest_name: "nvme1n1", kind: DiskKind::Nvme, size: 12 << 20, seed: 12, source: None },
                    BlkDisk { guest_name: "vblk0", kind: DiskKind::Virtio, size: 4 << 20, seed: 13, source: None },
                ],
                0,
                &["devices: nvme0n1 bound to nvme", "devices: nvme1n1 bound to nvme", "devices: vblk0 bound to virtio-blk"],
            )],
        },
        Scenario {
            name: "net-nic",
            description: "virtio-net behind the Nic capability: net-check reads the MAC QEMU was given, exchanges ARP with QEMU's gateway (user network, restrict=on), sees the counters move and bad frames and buffers refused while the card keeps working, on a modern card (q35) and a transitional one with a 1400-byte MTU (pc); devices lists it; a manifest granting it twice is refused at boot",
            capos_boot_only: false,
            boots: nic::boots(),
        },
        Scenario {
            name: "hello",
            description: "userspace: one process writes through its Console capability; a manifest whose mounts name missing devices still starts every process, and grants of those mounts answer unavailable",
            capos_boot_only: false,
            boots: vec![
                user_boot("hello", "demos/hello.manifest", "exit_when_idle", &[
                    "[hello] hello from capOS userspace: I am 'hello' holding 1 capabilities",
                    "[hello] [PASS] hello-console",
                    "process hello (pid 1) exited with status 0",
                    "userspace idle: 1 exited, 0 killed, 0 waiting for calls",
                ]),
                // A mount that fails stops no process: hello starts with a
                // grant of the failed mount it never calls; a storage
                // service over a failed raw mount answers `unavailable` and
                // why, and its client (bootcount) fails with that answer
                // (so its [FAIL] is expected: guest verdicts are not counted).
                Boot {
                    forbid: strings(&["userspace not started", "KERNEL PANIC", "EXCEPTION (unexpected)"]),
                    userspace: Some(("demos/missing-device.manifest", "exit_when_idle")),
                    guest_verdicts: false,
                    ..kernel_boot("missing-device", "exit_when_idle", Expect::Success, &[
                        "storage: mount db failed: caposst1 on nvme9n1: no block device nvme9n1 (found: none)",
                        "storage: mount disk failed: raw on nvme8n1: no block device nvme8n1 (found: none)",
                        "storage: 0 mounts ready, 2 failed (their capabilities answer unavailable)",
                        "[hello] [PASS] hello-console",
                        "process hello (pid 1) exited with status 0",
                        "[fs] cannot mount the disk: Unavailable: the disk: mount disk failed: no block device nvme8n1 (found: none); answering every call with it",
                        "[bootcount] [FAIL] bootcount: open /boots: Object(CapError { code: Unavailable, message: \"the disk: mount disk failed: no block device nvme8n1 (found: none)\" })",
                        "process bootcount (pid 3) exited with status 1",
                    ])
                },
            ],
        },
        Scenario {
            name: "shell",
            description: "the shell over the default system's disks: SHELL_SCRIPT typed line by line, every command's output checked (cp across mounts by sha256), exit hands the console back to the prompt; then the user's own FAT_IMAGE and STORE_IMAGE in place",
            capos_boot_only: false,
            boots: shell_boots(root),
        },
        Scenario {
            name: "default-system",
            description: "what make run boots: the storage services and the shell over the default disks; a file and a key written in one boot are read back in the next",
            capos_boot_only: false,
            boots: default_system_boots(),
        },
        Scenario {
            name: "storage-services",
            description: "storage-fs-service and store-service over Block capabilities: files and keys round trip, a subtree cannot be left, read-only grants are refused, 200 kills mid-workload are restarted with nothing synced lost and every frame given back, and the data survives a reboot",
            capos_boot_only: false,
            boots: storage_services_boots(),
        },
        Scenario {
            name: "storage-services-smp4",
            description: "storage-services with 4 CPUs: the services, the writer and chaos at once on different CPUs",
            capos_boot_only: false,
            boots: storage_services_boots().into_iter().map(|b| Boot { smp: Some("4"), ..b }).collect(),
        },
        Scenario {
            name: "storage-services-hostile",
            description: "File.read through storage-fs-service with a bulk buffer the service cannot write (a read-only page, an unmapped address, the caller's IPC receive area) fails with badAddress at once, as on the kernel's own File; another client is served throughout",
            capos_boot_only: false,
            boots: vec![storage_services_hostile_boot()],
        },
        Scenario {
            name: "storage-services-churn",
            description: "storage-fs-service frees objects nobody closes: 100,000 create/write/drop/remove cycles in one session, five lives of a restarted client each holding 1,500 new files, and none live at the end",
            capos_boot_only: false,
            boots: vec![storage_services_churn_boot()],
        },
        Scenario {
            name: "ipc",
            description: "userspace IPC: ping calls pong over an endpoint and the kernel's Ping; capabilities in results",
            capos_boot_only: false,
            boots: vec![user_boot("ping-pong", "demos/ipc.manifest", "exit_when_idle", &[
                "[ping] [PASS] ipc-ping-userspace",
                "[ping] [PASS] ipc-echo-userspace",
                "[ping] [PASS] ipc-capability-in-result",
                "[ping] [PASS] ipc-capability-in-params",
                "[pong] [PASS] ipc-capability-received",
                "[ping] [PASS] ipc-ping-kernel",
                "[ping] [PASS] kernel-capability-in-result",
                "[ping] [PASS] ipc-bulk-echo-userspace",
                "[ping] [PASS] kernel-bulk-echo",
                "process ping (pid 2) exited with status 0",
                "userspace idle: 1 exited, 0 killed, 1 waiting for calls",
            ])],
        },
        Scenario {
            name: "process-lifetime",
            description: "supervision: a server restarted 200 times (killed through ProcessControl, or faulting with a call in flight) keeps serving through the same capability and leaks no frame; a dropped receive handle fails calls with PeerGone; exit 0 is not restarted; a restart budget stops a crash loop",
            capos_boot_only: false,
            boots: vec![process_lifetime_boot()],
        },
        Scenario {
            name: "process-lifetime-smp4",
            description: "process-lifetime with 4 CPUs: the server and the driver on different CPUs, kills carried out where the process runs",
            capos_boot_only: false,
            boots: vec![Boot { smp: Some("4"), ..process_lifetime_boot() }],
        },
        Scenario {
            name: "cap-faults",
            description: "a hostile process: every bad handle, pointer, length and message is refused; its page fault ends only it",
            capos_boot_only: false,
            boots: vec![Boot {
                forbid: strings(&["KERNEL PANIC", "EXCEPTION (unexpected)"]),
                ..user_boot("hostile", "demos/cap-faults.manifest", "exit_when_idle", &[
                    "[hostile] [PASS] hostile-invalid-handle",
                    "[hostile] [PASS] hostile-null-handle",
                    "[hostile] [PASS] hostile-foreign-handle-number",
                    "[hostile] [PASS] hostile-call-own-endpoint",
                    "[hostile] [PASS] hostile-dropped-handle",
                    "[hostile] [PASS] hostile-double-drop",
                    "[hostile] [PASS] hostile-huge-message",
                    "[hostile] [PASS] hostile-too-many-caps",
                    "[hostile] [PASS] hostile-unknown-bulk-flag",
                    "[hostile] [PASS] hostile-bulk-length-without-flags",
                    "[hostile] [PASS] hostile-stale-cap-in-transfer",
                    "[hostile] [PASS] hostile-bulk-in-kernel-memory",
                    "[hostile] [PASS] hostile-bulk-in-direct-map",
                    "[hostile] [PASS] hostile-bulk-unmapped",
                    "[hostile] [PASS] hostile-bulk-null-page",
                    "[hostile] [PASS] hostile-bulk-overflowing-length",
                    "[hostile] [PASS] hostile-bulk-wrapping-pointer",
                    "[hostile] [PASS] hostile-bulk-too-large",
                    "[hostile] [PASS] hostile-bulk-write-into-read-only",
                    "[hostile] [PASS] hostile-bulk-over-own-send-area",
                    "[hostile] [PASS] hostile-bulk-reaching-into-ipc-area",
                    "[hostile] [PASS] hostile-truncated-message",
                    "[hostile] [PASS] hostile-garbage-message",
                    "[hostile] [PASS] hostile-unaligned-length",
                    "[hostile] [PASS] hostile-nesting-control",
                    "[hostile] [PASS] hostile-nested-past-limit",
                    "[hostile] [PASS] hostile-wrong-ordinal",
                    "[hostile] [PASS] hostile-wrong-interface",
                    "[hostile] [PASS] hostile-unknown-syscall-0",
                    "[hostile] [PASS] hostile-unknown-syscall-99",
                    "[hostile] [PASS] hostile-receive-on-non-endpoint",
                    "[hostile] [PASS] hostile-reply-with-bogus-token",
                    "[hostile] [PASS] hostile-reply-with-token-0",
                    "[hostile] [PASS] hostile-reply-word-high-bits",
                    "[hostile] [PASS] hostile-reply-receive-stale-token",
                    "[hostile] [PASS] hostile-reply-receive-on-non-endpoint",
                    "[hostile] [PASS] hostile-bulk-register-kernel-memory",
                    "[hostile] [PASS] hostile-bulk-register-too-large",
                    "[hostile] [PASS] hostile-bulk-register-read-only",
                    "[hostile] [PASS] hostile-bulk-register-own-send-area",
                    "[hostile] [PASS] hostile-only-granted-caps",
                    "[hostile] hostile: all cases refused correctly",
                    "EXCEPTION (in user mode): vector 14 (page fault)",
                    "process hostile (pid 1) killed: page fault at 0x10",
                    "[witness] [PASS] witness-peer-gone",
                    "[witness] [PASS] witness-kernel-still-serving",
                    "[hello] [PASS] hello-console",
                    "userspace idle: 2 exited, 1 killed, 0 waiting for calls",
                ])
            }],
        },
        Scenario {
            name: "bench-ipc",
            description: "benchmark (not a test): executed instructions per kernel null call, endpoint round trip and echo (icount plugin)",
            capos_boot_only: false,
            boots: vec![Boot {
                // What the guest must do is the icount protocol: at least
                // one `icount: <label> ops=<n>` line, each followed by a
                // counted region (report_icount checks the pairing).
                qemu_args: bench_icount_args(),
                timeout: Some(1200),
                smp: Some("1"),
                icount_plugin: true,
                profile: Some(bench_profile()),
                linux_pairs: IPC_VS_LINUX.to_vec(),
                ..user_boot("icount", "demos/bench-ipc.manifest", "exit_when_idle", &["[ping] icount: kernel null call", "[ping] icount: endpoint null round trip", "[ping] icount: echo 64 B", "[ping] icount: echo 4 KiB", "[ping] icount: echo 64 KiB", "[ping] icount: kernel echo 64 KiB"])
            }],
        },
        Scenario {
            name: "bench-blk",
            description: "benchmark (not a test): executed instructions per NVMe, virtio-blk and virtio-scsi read, trait and raw, irq and polled (icount plugin)",
            capos_boot_only: false,
            boots: vec![Boot {
                machine: Some("q35"),
                smp: Some("1"),
                qemu_args: [bench_icount_args(), null_disk("nvme0", "nvme"), null_disk("vblk0", "virtio"), null_disk("sda", "scsi")].concat(),
                guest_verdicts: false,
                timeout: Some(1200),
                icount_plugin: true,
                profile: Some(bench_profile()),
                linux_pairs: BLK_VS_LINUX.to_vec(),
                store_figures: Some("blk"),
                ..kernel_boot("icount", "bench=blk", Expect::Success, &[
                    "icount: nvme0n1 trait read 4 KiB qd1 irq",
                    "icount: nvme0n1 raw read 4 KiB qd1 irq",
                    "icount: vblk0 trait read 4 KiB qd1 polled",
                    "icount: sda trait read 4 KiB qd1 polled",
                    "bench: done",
                ])
            }],
        },
        Scenario {
            name: "bench-storage",
            description: "benchmark (not a test): executed instructions per File.read/write (4 KiB, 128 KiB) on CAPOSWF1 over NVMe, through the kernel's capabilities and through storage-fs-service, and per Store put/get (icount plugin)",
            capos_boot_only: false,
            boots: vec![Boot {
                machine: Some("q35"),
                smp: Some("1"),
                qemu_args: [
                    bench_icount_args(),
                    strings(&["-drive", "file={disk:bench},if=none,id=bench,format=raw", "-device", "nvme,serial=capos-bench,drive=bench"]),
                    strings(&["-drive", "file={disk:fat},if=none,id=fat,format=raw", "-device", "nvme,serial=capos-fat,drive=fat"]),
                    strings(&["-drive", "file={disk:svc},if=none,id=svc,format=raw", "-device", "nvme,serial=capos-svc,drive=svc"]),
                ]
                .concat(),
                store_images: vec![
                    ("bench", strings(&["--colocated", "--store-blocks", "4096", "--blocks", "65536"])),
                    ("svc", strings(&["--writable", "--blocks", "65536"])),
                ],
                script_images: vec![("fat", "tools/mkstorage-fat-read-image", vec![("FAT_BIG_MIB", "4")])],
                guest_verdicts: true,
                timeout: Some(1800),
                icount_plugin: true,
                profile: Some(bench_profile()),
                linux_pairs: STORAGE_VS_LINUX.to_vec(),
                stored_pairs: STORAGE_VS_BLK.to_vec(),
                ..user_boot("icount", "demos/bench-storage.manifest", "exit_when_idle", &[
                    "storage: mounted bench",
                    "[bench] icount: File.write 4 KiB",
                    "[bench] icount: File.read 128 KiB",
                    "[bench] icount: Store.get 100 B",
                    "[bench] icount: FAT File.read 128 KiB",
                    "[bench] icount: fs-service File.read 128 KiB",
                    "[bench] bench: done",
                    "process bench (pid 2) exited with status 0",
                ])
            }],
        },
        Scenario {
            name: "bench-boot",
            description: "benchmark (not a test): executed instructions from kernel entry to the first user process, to the default system's shell prompt and to its first idle (icount plugin milestones)",
            capos_boot_only: false,
            boots: vec![bench_boot()],
        },
        Scenario {
            name: "bench-linux",
            description: "benchmark (not a test): Debian's Linux 6.1 in the same QEMU with the same counter: getppid, pipe round trip, O_DIRECT NVMe reads",
            capos_boot_only: false,
            boots: vec![Boot {
                machine: Some("q35"),
                smp: Some("1"),
                qemu_args: [bench_icount_args(), null_disk("nvme0", "nvme")].concat(),
                timeout: Some(1200),
                icount_plugin: true,
                linux_guest: true,
                expect: strings(&["{other} bench-linux: nvme0n1 I/O scheduler: [none]", "{other} bench: done"]),
                forbid: strings(&["{other} FAILED", "{other} Kernel panic"]),
                ..Boot::new("linux", Box::new(|_| Volume::new()), Expect::Success)
            }],
        },
        Scenario {
            name: "boot-menu",
            description: "capos-boot's menu: a typed digit picks an entry; without one the default boots at the timeout",
            capos_boot_only: true,
            boots: vec![
                Boot {
                    script: vec![("press 1-2 to choose".into(), b"2".to_vec())],
                    forbid: strings(&["[PASS] smoke-heap", "KERNEL PANIC"]),
                    ..menu_boot("pick-second", &["{other} booting entry 'timer check'", "[PASS] lapic-timer-ticks"])
                },
                Boot {
                    forbid: strings(&["[PASS] lapic-timer-ticks", "KERNEL PANIC"]),
                    ..menu_boot("timeout", &["{other} capos-boot: timeout; booting entry 1", "{other} booting entry 'smoke'", "[PASS] smoke-heap"])
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("capos-run-input-{}-{}", std::process::id(), name));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn an_unreadable_script_is_a_failure_naming_the_file_never_a_default() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let missing = std::path::PathBuf::from("/nonexistent/capos-shell.script");
        let b = shell_boot_with(&root, Some(missing.clone()), &Default::default());
        let e = b.input_error.expect("a missing SHELL_SCRIPT fails the boot");
        assert!(e.starts_with("cannot read SHELL_SCRIPT /nonexistent/capos-shell.script: "), "{e}");
        assert!(e.contains("No such file"), "{e}");
        assert!(b.script.iter().all(|(_, l)| l != b"help\r"), "nothing is typed in its place");

        let latin1 = temp("latin1.script", b"help\necho caf\xe9\n");
        let e = shell_boot_with(&root, Some(latin1.clone()), &Default::default()).input_error.expect("non-UTF-8 fails");
        assert_eq!(e, format!("cannot use SHELL_SCRIPT {}: not UTF-8 text (byte 13 is 0xe9)", latin1.display()));
        let e = diag_boot_with(&latin1).input_error.expect("non-UTF-8 fails");
        assert!(e.starts_with("cannot use DIAG_SCRIPT "), "{e}");
        std::fs::remove_file(&latin1).unwrap();

        let e = diag_boot_with(std::path::Path::new("/nonexistent/diag.script")).input_error.expect("missing fails");
        assert!(e.starts_with("cannot read DIAG_SCRIPT /nonexistent/diag.script: "), "{e}");
        let e = read_text_input("SHELL_SCRIPT", &std::env::temp_dir()).unwrap_err();
        assert!(e.starts_with("cannot read SHELL_SCRIPT "), "a directory: {e}");

        // The scripts of the repository still load, and load what they say.
        let good = temp("good.script", b"# c\nls /\n");
        let b = shell_boot_with(&root, Some(good.clone()), &Default::default());
        assert!(b.input_error.is_none());
        assert_eq!(b.script[0].1, b"ls /\r");
        std::fs::remove_file(&good).unwrap();
        assert!(shell_boots(&root)[0].input_error.is_none() || std::env::var_os("SHELL_SCRIPT").is_some());
        assert!(diag_boot_with(&root.join("tools/diag.script")).input_error.is_none());
    }

    fn log(lines: &[&str]) -> Vec<String> {
        let mut v = vec!["capos kernel starting".to_string()];
        v.extend(lines.iter().map(|l| l.to_string()));
        v
    }

    /// The workspace file `path` (the runner's tests run from its crate).
    fn workspace_file(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    /// `(process, its arg lines and restart line)` of a manifest.
    fn process_lines(manifest: &str, process: &str) -> Vec<String> {
        let text = workspace_file(manifest);
        let mut lines = text.lines().map(str::trim).skip_while(|l| *l != format!("process {process}"));
        let _ = lines.next().expect("the process is in the manifest");
        lines.take_while(|l| !l.starts_with("process ")).filter(|l| l.starts_with("arg:") || l.starts_with("restart:")).map(String::from).collect()
    }

    fn announced(p: &str, check: &str) -> String {
        format!("[{p}] {check}: File.read with its bulk buffer at 0x41a000 (read-only-page), 4096 bytes")
    }

    #[test]
    fn every_bad_read_must_come_back_with_a_verdict() {
        let mut all = Vec::new();
        for (p, check) in [
            ("hostile-ro", "fs-service-read-into-read-only-page"),
            ("hostile-unmapped", "fs-service-read-into-unmapped"),
            ("hostile-recv", "fs-service-read-into-recv-area"),
            ("kernel-file", "kernel-file-read-into-read-only-page"),
            ("kernel-file", "kernel-file-read-into-unmapped"),
            ("kernel-file", "kernel-file-read-into-recv-area"),
        ] {
            all.push(announced(p, check));
            all.push(format!("[{p}] [PASS] {check}: badAddress after 0 ms"));
        }
        let lines: Vec<&str> = all.iter().map(String::as_str).collect();
        assert!(bad_reads_returned(&log(&lines)).is_ok());
        // A [FAIL] verdict also means the call came back (its check fails on its own).
        let failed: Vec<String> = all.iter().map(|l| l.replace("[PASS]", "[FAIL]")).collect();
        assert!(bad_reads_returned(&log(&failed.iter().map(String::as_str).collect::<Vec<_>>())).is_ok());
        // hostile-unmapped's verdict missing: its call never returned.
        let stuck: Vec<&str> = lines.iter().copied().filter(|l| !l.starts_with("[hostile-unmapped] [PASS]")).collect();
        let e = bad_reads_returned(&log(&stuck)).unwrap_err();
        assert!(e.contains("[hostile-unmapped] fs-service-read-into-unmapped: File.read"), "{e}");
        assert!(!e.contains("hostile-ro"), "{e}");
        // A verdict for another check, or from another process, answers nothing.
        let mut other = stuck.clone();
        other.push("[hostile-ro] [PASS] fs-service-read-into-unmapped: badAddress after 0 ms");
        other.push("[hostile-unmapped] [PASS] fs-service-read-into-unmapped-twice: x");
        assert!(bad_reads_returned(&log(&other)).is_err());
        // A verdict before the announcement does not count either.
        let mut early = vec!["[hostile-unmapped] [PASS] fs-service-read-into-unmapped: badAddress after 0 ms"];
        early.extend(stuck.iter().copied());
        assert!(bad_reads_returned(&log(&early)).is_err());
        // Fewer calls than the manifest makes: something did not run.
        assert!(bad_reads_returned(&log(&lines[2..])).unwrap_err().contains("5 bad File.read calls announced"));
        // A process's own line, not the kernel's or another's, is what counts.
        let foreign: Vec<String> = all.iter().map(|l| l.replace("[hostile-ro]", "[busy]")).collect();
        assert!(bad_reads_returned(&log(&foreign.iter().map(String::as_str).collect::<Vec<_>>())).is_err());
    }

    #[test]
    fn the_last_live_objects_line_must_say_none_live_and_enough_released() {
        let enough = format!("[fs] live objects: 0, released {CHURN_OBJECTS}");
        assert!(objects_released(&log(&["[fs] live objects: 12, released 1000", &enough])).is_ok());
        // The last line is the one that counts.
        assert!(objects_released(&log(&[&enough, "[fs] live objects: 1, released 106000"])).unwrap_err().contains("1 objects live"));
        let short = format!("[fs] live objects: 0, released {}", CHURN_OBJECTS - 1);
        assert!(objects_released(&log(&[&short])).is_err());
        assert!(objects_released(&log(&["[fs] CAPOSWF1 generation 0"])).unwrap_err().contains("never printed"));
        // Only storage-fs-service's line counts.
        assert!(objects_released(&log(&[&enough.replace("[fs]", "[churn]")])).is_err());
        assert!(objects_released(&log(&["[fs] live objects: zero, released many"])).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn the_churn_manifest_makes_what_the_runner_counts() {
        let m = "demos/storage-services-churn.manifest";
        assert_eq!(process_lines(m, "churn"), ["arg: churn".to_string(), format!("arg: {CHURN_CYCLES}")]);
        assert_eq!(
            process_lines(m, "holder"),
            ["arg: hold".to_string(), format!("arg: {HOLDER_FILES}"), format!("arg: {HOLDER_LIVES}"), format!("restart: on-failure max {}", HOLDER_LIVES - 1)]
        );
        // The lives together are over the service's 4,096 objects per
        // session; two lives fit (a release may lag a restart); one life
        // fits a process's capability table.
        assert!(HOLDER_LIVES * HOLDER_FILES > 4096 && 2 * (HOLDER_FILES + 1) < 4096);
        assert!(HOLDER_FILES + 8 <= capos_abi::limits::MAX_CAPS_PER_PROCESS as u64);
        assert!(CHURN_CYCLES > 4096);
    }

    #[test]
    fn the_hostile_manifest_starts_every_reader_the_check_counts() {
        let text = workspace_file("demos/storage-services-hostile.manifest");
        for p in HOSTILE_READERS {
            assert!(text.lines().any(|l| l.trim() == format!("process {p}")), "{p}");
        }
        let cases = ["read-only-page", "unmapped", "recv-area"];
        let service_reads = cases.iter().filter(|c| text.lines().any(|l| l.trim() == format!("arg: {c}"))).count();
        assert_eq!(service_reads + cases.len(), HOSTILE_READS, "three through the service, three on the kernel's File");
    }
}
