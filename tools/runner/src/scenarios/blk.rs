//! Block devices: disks of known content over virtio-blk, NVMe and
//! virtio-scsi hashed, written and checked on the host; timeouts.

use super::*;

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
    kernel_boot_owned(name, cmdline, Expect::Success, &e)
        .machine(machine)
        .blk_disks(disks, read_mib << 20)
        .timeout(180)
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
    kernel_boot(name, cmdline, Expect::Success, expect)
        .machine("q35")
        .qemu_args(qemu_args)
        .scratch_disks(vec![("slow", 1 << 20)])
        .timeout(60)
}

/// Reads a second the throttled disk allows: 200 ms a read in a row, ten
/// times the self-test's 20 ms timeout.
const NVME_SLOW_IOPS: u32 = 5;

pub(super) fn blk_virtio() -> Scenario {
    let b = blk_settings();
    let disk = |kind, name| BlkDisk { guest_name: name, kind, size: b.size, seed: 1, source: b.image.clone() };
    Scenario {
        name: "blk-virtio",
        description: "virtio-blk: hash the disk (BLK_IMAGE or BLK_IMAGE_SIZE of random data), write, flush, verify on the host",
        capos_boot_only: false,
        boots: vec![b.checked(blk_boot("q35", "q35", "", "", vec![disk(DiskKind::Virtio, "vblk0")], b.read_mib, &["virtio-blk 0000:", "flush true"]))],
    }
}

pub(super) fn blk_nvme() -> Scenario {
    let b = blk_settings();
    let disk = |name| BlkDisk { guest_name: name, kind: DiskKind::Nvme, size: b.size, seed: 2, source: b.image.clone() };
    // After the checksums: requests with interrupts off, as from a
    // system call. With MSI-X, a spinning waiter's commands go to a
    // second, polled queue (QEMU grants it): none of them interrupts.
    const MSIX: &[&str] = &["MSI-X completions (and a polled I/O queue for spinning waits)", "[PASS] nvme-irqs-off", "on the polled queue, 0 interrupts"];
    Scenario {
        name: "blk-nvme",
        description: "NVMe: hash, write, flush, verify; q35 and pc with MSI-X, and the polling path; requests with interrupts off; a timed-out read resets the controller",
        capos_boot_only: false,
        boots: vec![
            b.checked(blk_boot("q35-msix", "q35", "", "nvme-irqs-off", vec![disk("nvme0n1")], b.read_mib, MSIX)),
            b.checked(blk_boot("pc-msix", "pc", "", "nvme-irqs-off", vec![disk("nvme0n1")], b.read_mib, MSIX)),
            // Also a deadline out of range: refused aloud, the default kept.
            b.checked(blk_boot(
                "q35-polling",
                "q35",
                "nvme.msix=off nvme.timeout_ms=5",
                "nvme-irqs-off",
                vec![disk("nvme0n1")],
                b.read_mib,
                &["polled completions", "[PASS] nvme-irqs-off", "nvme.timeout_ms=5: not a number of ms in 10..=600000; the default 10000 ms holds"],
            )),
            nvme_timeout_boot("q35-msix-timeout", "test=nvme-timeout", "MSI-X completions"),
            nvme_timeout_boot("q35-polling-timeout", "test=nvme-timeout nvme.msix=off", "polled completions"),
        ],
    }
}

pub(super) fn blk_scsi() -> Scenario {
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
            kernel_boot("pc-legacy-only", "test=smoke", Expect::Success, &[
                "PCI 1af4:1004 (transitional)",
                "no modern virtio PCI transport",
                "[PASS] smoke",
            ])
                .machine("pc")
                .qemu_args(qemu_args(&[
                    "-device", "virtio-scsi-pci,id=scsi0,disable-modern=on",
                    "-drive", "if=none,id=legacy,format=raw,file={disk:legacy}",
                    "-device", "scsi-hd,drive=legacy,bus=scsi0.0,scsi-id=0",
                ]))
                .scratch_disks(vec![("legacy", 1 << 20)])
                .forbid(strings(&["bound to virtio-scsi", "KERNEL PANIC"])),
        ],
    }
}

pub(super) fn blk_multi() -> Scenario {
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
    }
}
