//! `block-cap`: the kernel's BlockDevice capability over a raw mount of a
//! GPT partition, driven by the guest `demos/block-check` and judged by
//! reading the disk image afterwards.
//!
//! The runner makes a 8 MiB disk whose every byte is a filler
//! (`filler`), then a GPT with sgdisk: partition 1 (blocks 2048..4096)
//! and partition 2 (blocks 4096..12288, type [`RAW_TYPE`]). Two boots:
//! `mount disk: raw on nvme0n1 partition 2`, then the same partition by
//! `partition type GUID`, each with a writable `block:disk` and a
//! `block-ro:disk` grant and its own pattern seed. After each boot the
//! image must hold the guest's pattern at exactly partition start + LBA
//! of every region it wrote, and every other byte (partition 1, the GPTs,
//! the rest of partition 2) as it was before the boot. A third boot mounts
//! partition 2 twice, once by number and once by type: mkmanifest cannot
//! see that they are one partition (the manifest does not say which type
//! entry 2 has), so the kernel must refuse it at mount time, once it has
//! read the GPT, naming both mounts and the blocks, start nothing and
//! leave the disk as it was.
//!
//! Two more boots put a raw mount on each of two disks of one controller
//! (two NVMe namespaces; two SCSI targets of one virtio-scsi controller),
//! the first throttled by QEMU to two reads a second, and run
//! `block-check --latency` on each, on two CPUs: the fast disk's reads,
//! made while the slow disk's wait in the device, must each take under
//! 150 ms (a few ms when nothing holds them up; 500 ms when a request
//! holds the controller across its wait, as both drivers did before,
//! which turns the boot red).

use super::{Run, BootOut};
use capos_kcore::gpt::{self, Guid};
use std::path::Path;
use std::process::Command;

/// What block-check writes where (the file the guest builds with).
#[allow(dead_code)]
#[path = "../../../../../demos/block-check/src/pattern.rs"]
mod pattern;

const GUEST: &str = "block-check";
const DISK_BLOCKS: u64 = 16384;
/// The partition type of the raw partition (made up for this test).
const RAW_TYPE: &str = "B10C0C4B-5A17-4E0D-9C3A-0000000000B1";

/// The byte a fresh disk holds at `offset`: not zero and not the
/// guest's pattern, so a stray write shows.
fn filler(offset: u64) -> u8 {
    0xA5 ^ (offset / 512) as u8 ^ (offset as u8 & 0xF0)
}

fn make_disk(path: &Path) -> Result<(), String> {
    let bytes: Vec<u8> = (0..DISK_BLOCKS * 512).map(filler).collect();
    std::fs::write(path, &bytes).map_err(|e| format!("{}: {}", path.display(), e))?;
    let out = Command::new("sgdisk")
        .args(["-o", "-n", "1:2048:4095", "-t", "1:8300", "-c", "1:other", "-n", "2:4096:12287"])
        .arg(format!("--typecode=2:{}", RAW_TYPE))
        .args(["-c", "2:capos-raw"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run sgdisk (Debian package gdisk; run tools/setup.sh): {}", e))?;
    if !out.status.success() {
        return Err(format!("sgdisk: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// Partition 2's (first block, block count) as the kernel's own GPT
/// parser reads it from the image.
fn raw_partition(img: &[u8]) -> Result<(u64, u64), String> {
    let table = gpt::parse(img.len() as u64 / 512, |lba, buf| {
        let at = lba as usize * 512;
        buf.copy_from_slice(img.get(at..at + 512).ok_or("past the end")?);
        Ok::<(), &str>(())
    })
    .map_err(|e| format!("GPT of the test disk: {}", e))?;
    let p = table.by_number(2).ok_or("the test disk has no partition 2")?;
    let want = Guid::parse(RAW_TYPE).ok_or("RAW_TYPE is not a GUID")?;
    if p.type_guid != want {
        return Err(format!("partition 2 is type {}, want {}", p.type_guid, RAW_TYPE));
    }
    Ok((p.first_lba, p.blocks()))
}

/// `after` must equal `before` except that every region the guest wrote
/// (relative to `start`) holds the pattern of `seed`.
fn compare(before: &[u8], after: &[u8], start: u64, count: u64, seed: u64) -> Result<String, String> {
    compare_all(before, after, &[(2, start, count, seed)])
}

/// [`compare`] for several partitions: (number, start, count, seed) each.
fn compare_all(before: &[u8], after: &[u8], parts: &[(u32, u64, u64, u64)]) -> Result<String, String> {
    if before.len() != after.len() {
        return Err(format!("the image changed size: {} -> {} bytes", before.len(), after.len()));
    }
    let mut want = before.to_vec();
    let mut said = Vec::new();
    for &(number, start, count, seed) in parts {
        let mut written = 0u64;
        for (lba, blocks) in pattern::regions(count) {
            let at = ((start + lba) * 512) as usize;
            pattern::fill(seed, lba, 512, &mut want[at..at + blocks as usize * 512]);
            written += blocks;
        }
        said.push(format!("the pattern of seed {} at {} blocks of partition {} (start {})", seed, written, number, start));
    }
    let diffs: Vec<usize> = (0..want.len()).filter(|&i| want[i] != after[i]).collect();
    match diffs.first() {
        None => Ok(format!("{}, every other byte of the {}-byte image unchanged", said.join("; "), after.len())),
        Some(&i) => {
            let block = i as u64 / 512;
            let inside = parts.iter().find(|p| block >= p.1 && block < p.1 + p.2).map_or("outside the partitions written".to_string(), |p| format!("inside partition {}", p.0));
            Err(format!("{} bytes differ; the first at byte {} (disk block {}, {}): {:#04x}, want {:#04x}", diffs.len(), i, block, inside, after[i], want[i]))
        }
    }
}

pub fn run(r: &mut Run) -> Result<(), String> {
    // block-check's 1 MiB BlockDevice calls: the interrupts-off bound.
    r.icount = true;
    let img = r.dir.join("block.img");
    make_disk(&img)?;
    let bytes = std::fs::read(&img).map_err(|e| e.to_string())?;
    let (start, count) = raw_partition(&bytes)?;
    r.pass("disk", &format!("{} blocks; partition 2 at blocks {}..{} ({} blocks, type {})", DISK_BLOCKS, start, start + count, count, RAW_TYPE));
    for (boot, seed, target) in [("by-number", 1u64, "nvme0n1 partition 2".to_string()), ("by-type", 2, format!("nvme0n1 partition type {}", RAW_TYPE))] {
        let before = std::fs::read(&img).map_err(|e| e.to_string())?;
        let manifest = format!(
            "# Generated by tools/runner/src/scenarios/storage/block_cap.rs: block-cap boot {boot}\n\
             mount disk: raw on {target}\n\n\
             process {GUEST}\n    binary: /boot/{GUEST}\n    arg: --expect-blocks\n    arg: {count}\n    arg: --seed\n    arg: {seed}\n\
             \x20   grant console: kernel:console\n    grant blk: kernel:block:disk\n    grant ro: kernel:block-ro:disk\n"
        );
        let out: BootOut = r.boot(boot, &manifest, &[super::Disk { path: img.clone(), bus: super::Bus::Nvme }], None, super::timeout(r, 120))?;
        let mounted = format!("storage: mounted disk: raw on {} (blocks {}..{})", target, start, start + count);
        r.judge(boot, &out, &[], &[GUEST], &[&mounted]);
        let after = std::fs::read(&img).map_err(|e| e.to_string())?;
        let verdict = compare(&before, &after, start, count, seed);
        r.check(&format!("{}-image", boot), verdict);
    }
    number_and_type(r, &img, start, count)?;
    // The same controller's two disks: NVMe namespaces, and SCSI targets
    // (how Compute Engine attaches disks on its common machine types).
    let nvme = ["-device", "nvme,id=nvme0,serial=capos-two-ns", "-device", "nvme-ns,drive=slow,bus=nvme0,nsid=1", "-device", "nvme-ns,drive=fast,bus=nvme0,nsid=2"];
    side_by_side(r, "two-namespaces", ("nvme0n1", "nvme0n2"), &nvme)?;
    let scsi = ["-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-hd,drive=slow,bus=scsi0.0,scsi-id=0", "-device", "scsi-hd,drive=fast,bus=scsi0.0,scsi-id=1"];
    side_by_side(r, "two-scsi-targets", ("sda", "sdb"), &scsi)?;
    reset_beside(r)?;
    two_partitions(r, &img)
}

/// The `reset-beside` boot's command deadline (`nvme.timeout_ms`): above
/// a read of the disk beside, below one of the slow disk.
const RESET_TIMEOUT_MS: u64 = 300;
/// Reads a second QEMU allows the disk beside the slow one: each waits
/// about 100 ms in QEMU, so one of them is in the device whenever the
/// slow disk's read times out.
const BESIDE_IOPS: u32 = 10;
/// About 1.2 s of them, around the slow read's timeout.
const BESIDE_READS: u64 = 12;

/// One NVMe controller, a slow namespace (2 reads a second) and one
/// beside it (10 a second), with commands' deadline shortened to
/// [`RESET_TIMEOUT_MS`]: the slow reader's second read times out, which
/// resets the controller and so ends the read in flight on the other
/// namespace too. The driver submits that one again: every read of the
/// disk beside must succeed, and the log must say the reset ended one
/// and that it was submitted again (else the boot showed nothing).
fn reset_beside(r: &mut Run) -> Result<(), String> {
    let boot = "reset-beside";
    let (slow, beside) = (r.dir.join(format!("{boot}-slow.img")), r.dir.join(format!("{boot}-beside.img")));
    for p in [&slow, &beside] {
        std::fs::write(p, vec![0x5au8; 1 << 20]).map_err(|e| format!("{}: {}", p.display(), e))?;
    }
    let manifest = format!(
        "# Generated by tools/runner/src/scenarios/storage/block_cap.rs: block-cap boot {boot}\n\
         mount slow: raw on nvme0n1\n\
         mount beside: raw on nvme0n2\n\n\
         process slow-reader\n    binary: /boot/{GUEST}\n    arg: --latency\n    arg: 3\n\
         \x20   grant console: kernel:console\n    grant clock: kernel:clock\n    grant blk: kernel:block-ro:slow\n\n\
         process beside-reader\n    binary: /boot/{GUEST}\n    arg: --latency\n    arg: {BESIDE_READS}\n\
         \x20   grant console: kernel:console\n    grant clock: kernel:clock\n    grant blk: kernel:block-ro:beside\n"
    );
    let args: Vec<String> = vec![
        "-drive".into(),
        format!("if=none,id=slow,format=raw,file={},throttling.iops-read={SLOW_IOPS}", slow.display()),
        "-drive".into(),
        format!("if=none,id=beside,format=raw,file={},throttling.iops-read={BESIDE_IOPS}", beside.display()),
        "-device".into(),
        "nvme,id=nvme0,serial=capos-reset-beside".into(),
        "-device".into(),
        "nvme-ns,drive=slow,bus=nvme0,nsid=1".into(),
        "-device".into(),
        "nvme-ns,drive=beside,bus=nvme0,nsid=2".into(),
    ];
    // Two CPUs and real time, as side_by_side: each reader waits in a
    // system call on its own CPU, and the throttle is host time.
    let icount = std::mem::replace(&mut r.icount, false);
    let cmdline = std::mem::replace(&mut r.cmdline, format!("nvme.timeout_ms={RESET_TIMEOUT_MS}"));
    let machine = crate::machine::Machine { smp: Some("2"), ..Default::default() };
    let out = r.boot_on(boot, &manifest, &machine, &args, None, super::timeout(r, 120));
    r.cmdline = cmdline;
    // Judged without -icount too (its spans are host time; the reset's
    // wait for the controller to stop is one, on this error path).
    if let Ok(out) = &out {
        let timed_out = format!("timed out after {RESET_TIMEOUT_MS} ms; controller reset");
        r.judge(
            boot,
            out,
            &[],
            &["beside-reader"],
            &["storage: mounted slow: raw on nvme0n1", "storage: mounted beside: raw on nvme0n2", &timed_out, "nvme0: a read ended by a controller reset (status 0xfffb); submitted again (1 of 3)"],
        );
    }
    r.icount = icount;
    let out = out?;
    let lines = crate::source::classify(&out.lines);
    for (check, want) in [("slow-timed-out", "[slow-reader] [FAIL] latency: read "), ("beside-all-read", &format!("[beside-reader] latency: {BESIDE_READS} reads from "))] {
        r.check(&format!("{boot}-{check}"), match crate::source::Pattern::parse(want).find(&lines) {
            Some(l) => Ok(format!("saw '{}'", l.raw)),
            None => Err(format!("never saw '{want}'")),
        });
    }
    Ok(())
}

/// Both partitions of one virtio-blk disk mounted raw, a block-check on
/// each at once on two CPUs, each writing its own pattern: the disk's
/// requests from two mounts go side by side (docs/drivers.md), and each
/// pattern must land in its own partition and nowhere else. (QEMU's
/// throttle holds a drive's requests in one queue, so unlike the
/// side-by-side boots this one shows the requests correct, not fast.)
fn two_partitions(r: &mut Run, img: &Path) -> Result<(), String> {
    let boot = "two-partitions";
    make_disk(img)?;
    let before = std::fs::read(img).map_err(|e| e.to_string())?;
    let table = gpt::parse(before.len() as u64 / 512, |lba, buf| {
        let at = lba as usize * 512;
        buf.copy_from_slice(before.get(at..at + 512).ok_or("past the end")?);
        Ok::<(), &str>(())
    })
    .map_err(|e| format!("GPT of the test disk: {}", e))?;
    let part = |n: u32| table.by_number(n).map(|p| (p.first_lba, p.blocks())).ok_or(format!("the test disk has no partition {n}"));
    let ((s1, c1), (s2, c2)) = (part(1)?, part(2)?);
    let manifest = format!(
        "# Generated by tools/runner/src/scenarios/storage/block_cap.rs: block-cap boot {boot}\n\
         mount one: raw on vblk0 partition 1\n\
         mount two: raw on vblk0 partition 2\n\n\
         process check-one\n    binary: /boot/{GUEST}\n    arg: --expect-blocks\n    arg: {c1}\n    arg: --seed\n    arg: 3\n\
         \x20   grant console: kernel:console\n    grant blk: kernel:block:one\n    grant ro: kernel:block-ro:one\n\n\
         process check-two\n    binary: /boot/{GUEST}\n    arg: --expect-blocks\n    arg: {c2}\n    arg: --seed\n    arg: 4\n\
         \x20   grant console: kernel:console\n    grant blk: kernel:block:two\n    grant ro: kernel:block-ro:two\n"
    );
    let args = super::disk_args(&[super::Disk { path: img.to_path_buf(), bus: super::Bus::Virtio }]);
    let machine = crate::machine::Machine { smp: Some("2"), ..Default::default() };
    // Real time, not -icount: under -icount the two vCPUs take turns on
    // one host thread, so one CPU's interrupts-off span, counted in
    // virtual time, holds the other's instructions too (11 million in a
    // run here, the other CPU spinning in a flush): not this CPU's work,
    // and not what the bound is about. Without it the vCPUs also truly
    // run at once.
    let icount = std::mem::replace(&mut r.icount, false);
    let out = r.boot_on(boot, &manifest, &machine, &args, None, super::timeout(r, 120));
    if let Ok(out) = &out {
        r.judge(boot, out, &[], &["check-one", "check-two"], &["storage: mounted one: raw on vblk0 partition 1", "storage: mounted two: raw on vblk0 partition 2"]);
    }
    r.icount = icount;
    out?;
    let after = std::fs::read(img).map_err(|e| e.to_string())?;
    let verdict = compare_all(&before, &after, &[(1, s1, c1, 3), (2, s2, c2, 4)]);
    r.check(&format!("{boot}-image"), verdict);
    Ok(())
}

/// Reads a second QEMU allows the slow disk: each read after the
/// first waits about 500 ms in QEMU before its data moves.
const SLOW_IOPS: u32 = 2;
/// The slow reader's reads: about 2 s of them.
const SLOW_READS: u64 = 5;
/// The fast reader's reads, begun [`FAST_DELAY_MS`] after it starts, so
/// they fall inside the slow reader's.
const FAST_READS: u64 = 40;
const FAST_DELAY_MS: u64 = 300;
/// The slowest fast read allowed: far above what a read of an idle fast
/// disk takes under TCG (a few ms), far below one slow read (500 ms),
/// which any fast read would wait for if a request held the controller
/// (or anything else the two share) across its wait for the device.
const FAST_SLOWEST_MS: u64 = 150;

/// One controller with two disks (`devices`: QEMU `-device` arguments
/// attaching the drives `slow` and `fast`, which the kernel names
/// `names`), the first throttled by QEMU: a raw mount on each, a reader
/// on each, on two CPUs. The fast reader's reads, made while the slow
/// reader's wait in the device, must all be fast: nothing a request holds
/// while it waits for the device (issue 20 item 4) stops a request on
/// another mount of the same controller.
fn side_by_side(r: &mut Run, boot: &str, names: (&str, &str), devices: &[&str]) -> Result<(), String> {
    let (slow, fast) = (r.dir.join(format!("{boot}-slow.img")), r.dir.join(format!("{boot}-fast.img")));
    for p in [&slow, &fast] {
        std::fs::write(p, vec![0x5au8; 1 << 20]).map_err(|e| format!("{}: {}", p.display(), e))?;
    }
    let manifest = format!(
        "# Generated by tools/runner/src/scenarios/storage/block_cap.rs: block-cap boot {boot}\n\
         mount slow: raw on {}\n\
         mount fast: raw on {}\n\n\
         process slow-reader\n    binary: /boot/{GUEST}\n    arg: --latency\n    arg: {SLOW_READS}\n\
         \x20   grant console: kernel:console\n    grant clock: kernel:clock\n    grant blk: kernel:block-ro:slow\n\n\
         process fast-reader\n    binary: /boot/{GUEST}\n    arg: --latency\n    arg: {FAST_READS}\n    arg: --delay-ms\n    arg: {FAST_DELAY_MS}\n\
         \x20   grant console: kernel:console\n    grant clock: kernel:clock\n    grant blk: kernel:block-ro:fast\n",
        names.0,
        names.1
    );
    let mut args: Vec<String> = vec![
        "-drive".to_string(),
        format!("if=none,id=slow,format=raw,file={},throttling.iops-read={SLOW_IOPS}", slow.display()),
        "-drive".to_string(),
        format!("if=none,id=fast,format=raw,file={}", fast.display()),
    ];
    args.extend(devices.iter().map(|d| d.to_string()));
    // Two CPUs whatever QEMU_SMP says: a request waits for the device
    // with interrupts off (a system call), so on one CPU nothing else runs
    // meanwhile and there is nothing to show. Real time, not -icount: the
    // throttle is host time.
    let icount = std::mem::replace(&mut r.icount, false);
    let machine = crate::machine::Machine { smp: Some("2"), ..Default::default() };
    let out = r.boot_on(boot, &manifest, &machine, &args, None, super::timeout(r, 120));
    // Judged without -icount too: its spans are host time, not the
    // instruction bound's executed instructions.
    if let Ok(out) = &out {
        let mounted = [format!("storage: mounted slow: raw on {}", names.0), format!("storage: mounted fast: raw on {}", names.1)];
        r.judge(boot, out, &[], &["slow-reader", "fast-reader"], &[&mounted[0], &mounted[1]]);
    }
    r.icount = icount;
    let out = out?;
    let lines = crate::source::classify(&out.lines);
    let window = |who: &str| -> Result<(u64, u64, u64), String> {
        let line = lines
            .iter()
            .find_map(|l| match &l.source {
                crate::source::Source::Process(p) if p == who => l.message.strip_prefix("latency: "),
                _ => None,
            })
            .ok_or_else(|| format!("{who} printed no 'latency:' line"))?;
        parse_latency(line).ok_or_else(|| format!("{who}: cannot read '{line}'"))
    };
    let verdict = window("slow-reader").and_then(|s| window("fast-reader").map(|f| (s, f))).and_then(|((s0, s1, _), (f0, f1, slowest))| {
        judge_overlap((s0, s1), (f0, f1), slowest)
    });
    r.check(&format!("{boot}-overlap"), verdict);
    Ok(())
}

/// `N reads from T0 to T1 ns, slowest S us` as (T0, T1, S).
fn parse_latency(line: &str) -> Option<(u64, u64, u64)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        [_, "reads", "from", t0, "to", t1, "ns,", "slowest", s, "us"] => Some((t0.parse().ok()?, t1.parse().ok()?, s.parse().ok()?)),
        _ => None,
    }
}

/// The fast reads must lie inside the slow ones (else the boot showed
/// nothing), the slow ones must have been slow (the throttle worked), and
/// the slowest fast read must be under [`FAST_SLOWEST_MS`].
fn judge_overlap(slow: (u64, u64), fast: (u64, u64), slowest_us: u64) -> Result<String, String> {
    let ms = |ns: u64| ns / 1_000_000;
    let slow_ms = ms(slow.1.saturating_sub(slow.0));
    if slow_ms < (SLOW_READS - 1) * 1000 / SLOW_IOPS as u64 / 2 {
        return Err(format!("the slow disk's {SLOW_READS} reads took {slow_ms} ms: not throttled, so the boot shows nothing"));
    }
    if !(slow.0 < fast.0 && fast.1 < slow.1) {
        return Err(format!(
            "the fast reads ({} to {} ms after the slow reads began, which took {slow_ms} ms) did not happen while the slow ones waited in the device",
            fast.0 as i128 / 1_000_000 - slow.0 as i128 / 1_000_000,
            fast.1 as i128 / 1_000_000 - slow.0 as i128 / 1_000_000,
        ));
    }
    if slowest_us >= FAST_SLOWEST_MS * 1000 {
        return Err(format!("a fast read took {} ms while the slow disk's reads waited (allowed: under {FAST_SLOWEST_MS} ms)", slowest_us / 1000));
    }
    Ok(format!(
        "{FAST_READS} reads of the fast disk in {} ms, the slowest {} us, all while the slow disk's {SLOW_READS} reads took {slow_ms} ms",
        ms(fast.1 - fast.0),
        slowest_us
    ))
}

/// `partition 2` and `partition type RAW_TYPE` on one device: refused by
/// the kernel's resolved-range check, nothing started, nothing written.
fn number_and_type(r: &mut Run, img: &Path, start: u64, count: u64) -> Result<(), String> {
    let boot = "number-and-type";
    // b names the partition a names, by type: the later mount fails, a
    // stands, and block-check is started with b's grant as its writable
    // `blk`, which must answer `unavailable` to its first call (so it
    // writes nothing) and a read-only grant of a.
    let manifest = format!(
        "# Generated by tools/runner/src/scenarios/storage/block_cap.rs: block-cap boot {boot}\n\
         mount a: raw on nvme0n1 partition 2\n\
         mount b: raw on nvme0n1 partition type {RAW_TYPE}\n\n\
         process {GUEST}\n    binary: /boot/{GUEST}\n    grant console: kernel:console\n    grant blk: kernel:block:b\n    grant ro: kernel:block-ro:a\n"
    );
    let before = std::fs::read(img).map_err(|e| e.to_string())?;
    let out: BootOut = r.boot(boot, &manifest, &[super::Disk { path: img.to_path_buf(), bus: super::Bus::Nvme }], None, super::timeout(r, 120))?;
    let refusal = format!(
        "storage: mount b failed: raw on nvme0n1 partition type {RAW_TYPE}: blocks {start}..{} of nvme0n1 are already claimed by mount a (blocks {start}..{}): a device serves one mount",
        start + count,
        start + count
    );
    r.check(&format!("{boot}-exit"), match (out.timed_out, out.exit) {
        (false, Some(crate::machine::EXIT_KERNEL_SUCCESS)) => Ok("exit status 33 (kernel success)".into()),
        (t, e) => Err(format!("exit status {e:?}{}, want 33", if t { " (timed out)" } else { "" })),
    });
    let lines = crate::source::classify(&out.lines);
    for (check, want) in [
        ("refused", refusal.as_str()),
        ("a-mounted", "storage: mounted a: raw on nvme0n1 partition 2"),
        ("b-unavailable", "[block-check] [FAIL] info: Object(CapError { code: Unavailable, message: \"mount b failed: blocks"),
    ] {
        r.check(&format!("{boot}-{check}"), match crate::source::Pattern::parse(want).find(&lines) {
            Some(_) => Ok(format!("saw '{want}'")),
            None => Err(format!("never saw '{want}'")),
        });
    }
    let bad: Vec<&str> = ["KERNEL PANIC", "userspace not started"].into_iter().filter(|bad| out.lines.iter().any(|l| l.contains(bad))).collect();
    r.check(&format!("{boot}-started"), if bad.is_empty() { Ok("the other mount and the process started, no panic".into()) } else { Err(format!("saw {:?}", bad)) });
    let after = std::fs::read(img).map_err(|e| e.to_string())?;
    r.check(&format!("{boot}-image"), if after == before { Ok("the disk is byte for byte as before".into()) } else { Err("the disk changed".into()) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlap_verdict_needs_slow_reads_around_fast_ones() {
        assert_eq!(parse_latency("40 reads from 100 to 200 ns, slowest 7 us"), Some((100, 200, 7)));
        assert_eq!(parse_latency("40 reads from x to 200 ns, slowest 7 us"), None);
        let s = 1_000_000_000u64;
        let slow = (s, s + 2_000_000_000);
        judge_overlap(slow, (s + 300_000_000, s + 400_000_000), 3_000).unwrap();
        // A fast read that waited for a slow one.
        assert!(judge_overlap(slow, (s + 300_000_000, s + 900_000_000), 480_000).unwrap_err().contains("took 480 ms"));
        // Fast reads outside the slow ones show nothing.
        assert!(judge_overlap(slow, (s + 1_900_000_000, s + 2_100_000_000), 3_000).unwrap_err().contains("did not happen while"));
        assert!(judge_overlap(slow, (s - 10, s + 100), 3_000).is_err());
        // Slow reads that were not slow show nothing either.
        assert!(judge_overlap((s, s + 100_000_000), (s + 1, s + 2), 1).unwrap_err().contains("not throttled"));
    }

    #[test]
    fn compare_finds_a_stray_byte_and_a_missing_pattern() {
        let (start, count) = (8u64, 64u64);
        let before: Vec<u8> = (0..128 * 512).map(filler).collect();
        let mut after = before.clone();
        for (lba, blocks) in pattern::regions(count) {
            let at = ((start + lba) * 512) as usize;
            pattern::fill(3, lba, 512, &mut after[at..at + blocks as usize * 512]);
        }
        compare(&before, &after, start, count, 3).unwrap();
        assert!(compare(&before, &after, start, count, 4).is_err(), "another seed's pattern");
        let mut stray = after.clone();
        stray[3] ^= 1;
        assert!(compare(&before, &stray, start, count, 3).unwrap_err().contains("outside the partitions written"));
        // The pattern one block off (the partition offset ignored) is caught.
        assert!(compare(&before, &after, start + 1, count, 3).is_err());
        assert!(compare(&before, &before, start, count, 3).is_err(), "nothing written");
    }
}
