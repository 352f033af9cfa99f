//! The cloud disk booted: `make run-disk` (DISK over DISK_BUS,
//! interactively), the `cloud-disk` scenario (`capos-run disk-test`: the
//! disk booted over NVMe, virtio-blk and virtio-scsi, its boot count kept
//! across boots, and a disk without its data partition), and the disk
//! commands of main.rs. The disk itself is built and checked in
//! crate::volumes::disk.

use crate::machine::bus::Bus;
use crate::settings::Settings;
use crate::source::{classify, Pattern, Source};
use crate::volumes::disk::*;
use capos_kcore::gpt::CAPOS_DATA_PARTITION;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

// ---------------------------------------------------------------- booting

/// QEMU booting `disk` alone under OVMF: no other drive, no network.
fn disk_qemu(s: &Settings, disk: &Path, bus: Bus, vars_copy: &Path) -> Result<Command, String> {
    let fw = crate::machine::find_firmware()?;
    let mut boot = vec!["-drive".to_string(), format!("if=none,id=boot,format=raw,file={}", disk.display())];
    boot.extend(bus.device_args("boot", "disk", true));
    crate::machine::qemu_booting(s, &crate::machine::Machine::default(), &fw, vars_copy, &boot, &[])
}

/// `make run-disk`: boot DISK (default target/disk.raw) interactively.
fn run_disk(s: &Settings) -> Result<u8, String> {
    let disk = crate::settings::input_path("DISK").unwrap_or_else(|| s.root.join("target/disk.raw"));
    if !disk.is_file() {
        return Err(format!("{} does not exist (make capos-cloudboot-image builds it, or set DISK=)", disk.display()));
    }
    let bus = Bus::from_env(Bus::Nvme)?;
    let dir = s.out_dir.join("run-disk");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut cmd = disk_qemu(s, &disk, bus, &dir.join("vars.fd"))?;
    cmd.args(["-serial", "mon:stdio"]);
    eprintln!("capos-run: booting {} over {} (it is written in place; quit: Ctrl-A X)", disk.display(), bus.name());
    let status = cmd.status().map_err(|e| format!("cannot start qemu-system-x86_64: {}", e))?;
    Ok(match status.code() {
        Some(crate::machine::EXIT_KERNEL_SUCCESS) | Some(0) => 0,
        _ => 1,
    })
}

struct BootLog {
    lines: Vec<String>,
    exit: Option<i32>,
    timed_out: bool,
}

/// Boot `disk`, type `script` steps (after trigger text, send input) and
/// collect the serial lines until QEMU exits or `timeout` passes.
/// `name` names the boot's log and firmware variables in `dir`.
fn boot_scripted(s: &Settings, disk: &Path, bus: Bus, dir: &Path, name: &str, script: &[(&str, &str)]) -> Result<BootLog, String> {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    let mut cmd = disk_qemu(s, disk, bus, &dir.join(format!("{}.vars.fd", name)))?;
    crate::machine::serial_on_stdio(&mut cmd);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let log_path = dir.join(format!("{}.log", name));
    let mut log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {}", log_path.display(), e))?;
    println!("== cloud-disk/{}: {} (log: {})", name, describe(&cmd), log_path.display());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start qemu-system-x86_64: {}", e))?;
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    crate::machine::serial::spawn_reader(child.stdout.take().ok_or("qemu has no stdout")?, tx);
    let mut stdin = child.stdin.take();
    let steps: Vec<(&str, &[u8])> = script.iter().map(|(a, b)| (*a, b.as_bytes())).collect();
    let deadline = Instant::now() + Duration::from_secs(s.timeout_secs);
    let serial = crate::machine::serial::stream_serial(&rx, stdin.as_mut(), &mut log, &steps, deadline, clean);
    let (lines, timed_out) = (serial.lines, serial.timed_out);
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    for l in err.lines() {
        println!("qemu: {}", l);
        let _ = writeln!(log, "qemu: {}", l);
    }
    Ok(BootLog { lines, exit: if timed_out { None } else { status.code() }, timed_out })
}

/// Serial text without terminal escapes and control characters.
fn clean(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if !(c.is_control() && c != '\t') {
            out.push(c);
        }
    }
    out
}

/// The lines a boot of the cloud disk over `bus` must show (patterns of
/// crate::source: `{other}` is the firmware's or the loader's line,
/// `[name]` process name's). The prompt answers `devices` with the boot
/// disk itself, of the disk's size.
fn required_lines(bus: Bus) -> Vec<String> {
    vec![
        // OVMF started the loader from the disk on this bus (the only drive).
        match bus {
            Bus::Nvme => "{other} BdsDxe: starting Boot0001 \"UEFI QEMU NVMe Ctrl capos-disk 1\"".to_string(),
            Bus::Virtio => "{other} BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)".to_string(),
            Bus::Scsi => "{other} BdsDxe: starting Boot0001 \"UEFI QEMU QEMU HARDDISK \" from PciRoot(0x0)/Pci(0x2,0x0)/Scsi(0x0,0x0)".to_string(),
        },
        "{other} capos-boot: /limine.conf: booting entry 'capOS'".to_string(),
        "capos kernel starting".to_string(),
        "storage: mounted data: colocated on any partition type A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890".to_string(),
        "userspace: 5 processes started".to_string(),
        "[bootcount] [PASS] bootcount".to_string(),
        "[shell] bye".to_string(),
        "capos> devices".to_string(),
        format!("{}: {}", bus.guest_name(), bus.driver()),
        "halting".to_string(),
    ]
}

/// N of bootcount's `boot N of this disk` line.
fn boot_count(lines: &[String]) -> Option<u64> {
    crate::source::messages_of(lines, "bootcount").find_map(|m| m.strip_prefix("boot ")?.split_whitespace().next()?.parse().ok())
}

/// PASS/FAIL lines of one boot, counted.
struct Verdicts<'a> {
    label: &'a str,
    passed: u32,
    failed: u32,
}

impl<'a> Verdicts<'a> {
    fn new(label: &'a str) -> Self {
        Verdicts { label, passed: 0, failed: 0 }
    }

    fn check(&mut self, ok: bool, what: String) {
        if ok {
            self.passed += 1;
            println!("[PASS] {}: {}", self.label, what);
        } else {
            self.failed += 1;
            println!("[FAIL] {}: {}", self.label, what);
        }
    }

    /// A timeout is a failure; otherwise the kernel must exit with success
    /// (after `halt`).
    fn exit(&mut self, log: &BootLog) {
        if log.timed_out {
            self.check(false, "timed out (a timeout is a failure)".into());
        } else {
            self.check(log.exit == Some(crate::machine::EXIT_KERNEL_SUCCESS), format!("exit status {:?}, want 33 (kernel success after halt)", log.exit));
        }
    }
}

/// Judge one boot; returns (passed, failed).
fn judge(label: &str, bus: Bus, disk_bytes: u64, log: &BootLog) -> (u32, u32) {
    let mut v = Verdicts::new(label);
    v.exit(log);
    let mut verdict = |ok: bool, what: String| v.check(ok, what);
    let lines = classify(&log.lines);
    for want in required_lines(bus) {
        let seen = Pattern::parse(&want).find(&lines).is_some();
        verdict(seen, format!("{} '{}'", if seen { "saw" } else { "never saw" }, want));
    }
    // The devices line naming the boot disk must also carry its size.
    let size = bus.size_text(disk_bytes / SECTOR);
    let disk_line = lines.iter().any(|l| l.source == Source::Kernel && l.raw.contains(bus.guest_name()) && l.raw.contains(&size));
    verdict(disk_line, format!("the kernel lists its boot disk {} with {}", bus.guest_name(), size));
    for bad in ["KERNEL PANIC", "EXCEPTION (unexpected)", "{other} capos-boot: error"] {
        if let Some(l) = Pattern::parse(bad).find(&lines) {
            verdict(false, format!("forbidden '{}' in: {}", bad, l.raw));
        }
    }
    (v.passed, v.failed)
}

/// The `cloud-disk` scenario: build the cloud disk the way
/// `make capos-cloudboot-image` does, check it, boot it over NVMe and over
/// virtio-blk, and at the prompt ask for the devices and halt.
fn disk_test(s: &Settings) -> Result<bool, String> {
    let dir = s.out_dir.join("cloud-disk");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    println!("== scenario cloud-disk: the cloud GPT disk booted alone under OVMF over virtio-scsi, NVMe and virtio-blk");
    let disk = match crate::settings::input_path("DISK") {
        Some(d) => {
            std::fs::File::open(&d).map_err(|e| format!("cannot read DISK {}: {}", d.display(), e))?;
            // A user's disk: boot a copy, never the original.
            let copy = dir.join(TARBALL_MEMBER);
            run(Command::new("cp").arg("--sparse=always").arg(&d).arg(&copy))?;
            copy
        }
        None => build_disk(s, &dir.join(TARBALL_MEMBER), &dir.join("work"))?.disk,
    };
    let (mut passed, mut failed) = (0u32, 0u32);
    let findings = check_disk(&disk, None)?;
    for ok in &findings.ok {
        println!("[PASS] cloud-disk/check: {}", ok);
    }
    for bad in &findings.problems {
        println!("[FAIL] cloud-disk/check: {}", bad);
    }
    passed += findings.ok.len() as u32;
    failed += findings.problems.len() as u32;
    let size = std::fs::metadata(&disk).map_err(|e| e.to_string())?.len();
    // The same disk twice: what the first boot synced (bootcount's count)
    // must be there for the second.
    // The shell writes a note in the first boot and reads it in the second.
    let mut counts: Vec<u64> = Vec::new();
    const NOTE: &str = "written by the first boot of this disk";
    let first_cmd = format!("write /data/note.txt {}\r", NOTE);
    // virtio-scsi first: what it writes is read back over NVMe and then
    // virtio-blk, the same image on the next boots.
    for (i, bus) in [Bus::Scsi, Bus::Nvme, Bus::Virtio].into_iter().enumerate() {
        let mut script: Vec<(&str, &str)> = Vec::new();
        if i == 0 {
            script.push(("capos$ ", &first_cmd));
        }
        script.extend([("capos$ ", "cat /data/note.txt\r"), ("capos$ ", "exit\r"), ("capos> ", "devices\r"), ("capos> ", "halt\r")]);
        let log = boot_scripted(s, &disk, bus, &dir, bus.name(), &script)?;
        let label = format!("cloud-disk/{}", bus.name());
        let (p, f) = judge(&label, bus, size, &log);
        passed += p;
        failed += f;
        let want = format!("[shell] {}", NOTE);
        let seen = Pattern::parse(&want).find(&classify(&log.lines)).is_some();
        println!("[{}] {}: the shell's cat /data/note.txt printed '{}'{}", if seen { "PASS" } else { "FAIL" }, label, NOTE, if i > 0 { " (written by the first boot, over virtio-scsi)" } else { "" });
        if seen {
            passed += 1;
        } else {
            failed += 1;
        }
        match boot_count(&log.lines) {
            Some(n) => counts.push(n),
            None => {
                failed += 1;
                println!("[FAIL] {}: no '[bootcount] boot N of this disk' line", label);
            }
        }
    }
    if counts.len() == 3 {
        let ok = counts.windows(2).all(|w| w[1] == w[0] + 1);
        println!(
            "[{}] cloud-disk/persistence: boots {:?} of the same disk over scsi, nvme, virtio (each count the boot before synced was read by the next)",
            if ok { "PASS" } else { "FAIL" },
            counts
        );
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    let (p, f) = no_data_boot(s, &disk, &dir)?;
    passed += p;
    failed += f;
    println!("{} passed, {} failed", passed, failed);
    Ok(failed == 0 && passed > 0)
}

/// The mount the cloud disk's manifest declares (demos/disk.manifest), as
/// the kernel states it.
const DATA_MOUNT: &str = "data: colocated on any partition type A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890";

/// A system that starts without its data: a copy of the disk with the
/// data partition zeroed, booted over NVMe. The mount fails, and
/// everything else must still run: the shell starts, `ls /data` and its
/// `mounts` say /data is unavailable and why (the reason the kernel
/// logged), the kernel prompt's `mounts` says the mount failed and why,
/// and its `devices` names the storage controller nothing drives (q35's
/// AHCI, pc's IDE) but not the NVMe controller that was bound.
fn no_data_boot(s: &Settings, disk: &Path, dir: &Path) -> Result<(u32, u32), String> {
    let copy = dir.join("no-data.raw");
    let _ = std::fs::remove_file(&copy);
    run(Command::new("cp").arg("--sparse=always").arg(disk).arg(&copy))?;
    let part = partition_info(&copy, 2)?.ok_or("the disk has no partition 2")?;
    if part.type_guid != CAPOS_DATA_PARTITION.to_string() {
        return Err(format!("partition 2 has type {}, not capOS data", part.type_guid));
    }
    {
        let f = std::fs::OpenOptions::new().write(true).open(&copy).map_err(|e| format!("{}: {}", copy.display(), e))?;
        let zero = vec![0u8; MIB as usize];
        let (mut at, end) = (part.first_lba * SECTOR, (part.last_lba + 1) * SECTOR);
        while at < end {
            let n = (end - at).min(MIB) as usize;
            f.write_all_at(&zero[..n], at).map_err(|e| format!("{}: {}", copy.display(), e))?;
            at += n as u64;
        }
        f.sync_all().map_err(|e| e.to_string())?;
    }
    println!("== cloud-disk/no-data: {} with partition 2 (LBA {}..={}) zeroed", copy.display(), part.first_lba, part.last_lba);
    let script = [
        ("capos$ ", "ls /data\r"),
        ("capos$ ", "mounts\r"),
        ("capos$ ", "exit\r"),
        ("capos> ", "mounts\r"),
        ("capos> ", "devices\r"),
        ("capos> ", "halt\r"),
    ];
    let log = boot_scripted(s, &copy, Bus::Nvme, dir, "no-data", &script)?;
    let _ = std::fs::remove_file(&copy);
    Ok(judge_no_data(&log))
}

fn judge_no_data(log: &BootLog) -> (u32, u32) {
    let label = "cloud-disk/no-data";
    let mut v = Verdicts::new(label);
    v.exit(log);
    let mut verdict = |ok: bool, what: String| v.check(ok, what);
    let lines = classify(&log.lines);
    let (mount, declared) = DATA_MOUNT.split_once(": ").unwrap_or((DATA_MOUNT, ""));
    let failed_line = format!("storage: mount {} failed: {}: ", mount, declared);
    let reason = lines
        .iter()
        .filter(|l| l.source == Source::Kernel)
        .find_map(|l| l.raw.split_once(failed_line.as_str()).map(|(_, r)| r.trim().to_string()))
        .filter(|r| !r.is_empty());
    verdict(reason.is_some(), format!("the kernel logs '{}<reason>'", failed_line));
    let reason = reason.unwrap_or_else(|| "<no reason logged>".into());
    let unavailable = format!("unavailable: mount data failed: {}", reason);
    let wants = [
        "userspace: 5 processes started".to_string(),
        format!("[shell] error: unavailable: /data: mount data failed: {}", reason),
        format!("[shell] /data  filesystem (grant fs-data): {}", unavailable),
        format!("[shell] store  key/value store (grant store): {}", unavailable),
        "[shell] bye".to_string(),
        "capos> mounts".to_string(),
        format!("failed: {}: {} (its grants answer unavailable)", DATA_MOUNT, reason),
        "capos> devices".to_string(),
        "halting".to_string(),
    ];
    for want in wants {
        let seen = Pattern::parse(&want).find(&lines).is_some();
        verdict(seen, format!("{} '{}'", if seen { "saw" } else { "never saw" }, want));
    }
    // bootcount uses the mount: it must fail, naming unavailable.
    let bootcount = crate::source::messages_of(&log.lines, "bootcount").any(|m| m.starts_with("[FAIL] bootcount") && m.contains("Unavailable"));
    verdict(bootcount, "bootcount, which uses /data, fails with Unavailable".into());
    let unclaimed: Vec<&str> = lines.iter().filter(|l| l.source == Source::Kernel && l.raw.contains("unclaimed: ")).map(|l| l.raw).collect();
    let storage = unclaimed.iter().any(|l| l.contains(" class 01.") && l.contains("): no driver bound"));
    verdict(storage, format!("devices names a storage controller no driver took: {:?}", unclaimed));
    let nvme = unclaimed.iter().any(|l| l.contains("class 01.08.02"));
    verdict(!nvme, "the NVMe controller the disk is on is not listed as unclaimed".into());
    for bad in ["KERNEL PANIC", "EXCEPTION (unexpected)", "{other} capos-boot: error", "userspace not started"] {
        if let Some(l) = Pattern::parse(bad).find(&lines) {
            verdict(false, format!("forbidden '{}' in: {}", bad, l.raw));
        }
    }
    (v.passed, v.failed)
}

// ---------------------------------------------------------------- commands

pub const COMMANDS: &[&str] = &["esp-tree", "disk-image", "cloudboot-image", "check-disk", "run-disk", "disk-test", "sha256"];

fn arg_path(args: &[String], i: usize, default: PathBuf) -> PathBuf {
    args.get(i).map(PathBuf::from).unwrap_or(default)
}

/// Run one of [`COMMANDS`]; `args` follow the command name.
pub fn command(s: &Settings, cmd: &str, args: &[String]) -> ExitCode {
    let result: Result<bool, String> = (|| match cmd {
        "esp-tree" => {
            let dir = arg_path(args, 0, s.root.join("target/esp"));
            let art = crate::build::build_all(s)?;
            let files = write_tree(&crate::volumes::default_volume(s, &art)?, &dir)?;
            for (p, h) in &files {
                println!("{}  {}", sha256_file(h)?, p);
            }
            println!("wrote {} files under {}", files.len(), dir.display());
            Ok(true)
        }
        "disk-image" => {
            let out = arg_path(args, 0, s.root.join("target/capos.img"));
            let b = build_disk(s, &out, &s.root.join("target/cloudboot-work"))?;
            let r = check_disk(&b.disk, None)?;
            print_findings(&r);
            println!("wrote {} ({} GiB, SOURCE_DATE_EPOCH={})", out.display(), b.layout.disk_bytes / GIB, b.sde);
            Ok(r.problems.is_empty())
        }
        "cloudboot-image" => {
            let dir = arg_path(args, 0, s.root.join("target"));
            let disk = dir.join(TARBALL_MEMBER);
            let tarball = dir.join("capos-disk.tar.gz");
            let prov = dir.join("disk.raw.provenance.json");
            let _ = std::fs::remove_file(&prov);
            let b = build_disk(s, &disk, &dir.join("cloudboot-work"))?;
            make_tarball(&disk, &tarball, b.sde)?;
            let r = check_disk(&disk, Some(&tarball))?;
            print_findings(&r);
            if !r.problems.is_empty() {
                return Ok(false);
            }
            let disk_sha256 = sha256_file(&disk)?;
            let record = provenance(s, &b, &tarball, &disk_sha256)?;
            std::fs::write(&prov, &record).map_err(|e| format!("{}: {}", prov.display(), e))?;
            println!("wrote {}, {} and {}", disk.display(), tarball.display(), prov.display());
            println!("disk.raw sha256 {}", disk_sha256);
            Ok(true)
        }
        "check-disk" => {
            let Some(disk) = args.first() else { return Err("usage: capos-run check-disk DISK [TARBALL]".into()) };
            let r = check_disk(Path::new(disk), args.get(1).map(Path::new))?;
            print_findings(&r);
            Ok(r.problems.is_empty())
        }
        "sha256" => {
            // sha256sum's output format, reading sparse files fast.
            for f in args {
                println!("{}  {}", sha256_file(Path::new(f))?, f);
            }
            Ok(!args.is_empty())
        }
        "run-disk" => run_disk(s).map(|c| c == 0),
        "disk-test" => disk_test(s),
        _ => Err(format!("unknown command {}", cmd)),
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("capos-run {}: {}", cmd, e);
            ExitCode::FAILURE
        }
    }
}

