//! Starting QEMU, streaming its serial log, typing scripted input, and
//! judging a boot by explicit lines, the guest's exit code and a time
//! limit. A timeout is always a failure.

use crate::build::{build_all, Artifacts};
use crate::esp::{Content, Volume};
use crate::scenarios::{Boot, Expect, Scenario};
use crate::source::{classify, count_verdicts, Line, Pattern, Source};
use crate::Settings;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// QEMU's exit status for a value written to isa-debug-exit: (v << 1) | 1.
pub const EXIT_KERNEL_SUCCESS: i32 = 33;
pub const EXIT_KERNEL_FAILURE: i32 = 35;
pub const EXIT_LOADER_ERROR: i32 = 37;

fn describe_exit(code: Option<i32>) -> String {
    match code {
        Some(EXIT_KERNEL_SUCCESS) => "33 (kernel success)".into(),
        Some(EXIT_KERNEL_FAILURE) => "35 (kernel failure)".into(),
        Some(EXIT_LOADER_ERROR) => "37 (loader error)".into(),
        Some(0) => "0 (guest powered off or reset without reporting)".into(),
        Some(c) => format!("{} (QEMU error or unknown)", c),
        None => "killed by a signal".into(),
    }
}

pub(crate) struct Firmware {
    pub(crate) code: PathBuf,
    pub(crate) vars: Option<PathBuf>,
}

pub(crate) fn find_firmware() -> Result<Firmware, String> {
    if let Ok(code) = std::env::var("OVMF_CODE") {
        if !code.is_empty() {
            let vars = std::env::var("OVMF_VARS").ok().filter(|v| !v.is_empty()).map(PathBuf::from);
            return Ok(Firmware { code: code.into(), vars });
        }
    }
    let pairs = [
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", Some("/usr/share/OVMF/OVMF_VARS_4M.fd")),
        ("/usr/share/OVMF/OVMF_CODE.fd", Some("/usr/share/OVMF/OVMF_VARS.fd")),
        ("/usr/share/ovmf/OVMF.fd", None),
        ("/usr/share/qemu/OVMF.fd", None),
    ];
    for (code, vars) in pairs {
        if Path::new(code).is_file() && vars.map_or(true, |v| Path::new(v).is_file()) {
            return Ok(Firmware { code: code.into(), vars: vars.map(PathBuf::from) });
        }
    }
    Err("no OVMF firmware found (install the Debian package ovmf via tools/setup.sh, or set OVMF_CODE/OVMF_VARS)".into())
}

/// Per-boot replacements for the machine settings.
#[derive(Default)]
pub(crate) struct MachineOverride<'a> {
    pub(crate) machine: Option<&'a str>,
    pub(crate) mem: Option<&'a str>,
    pub(crate) smp: Option<&'a str>,
}

pub(crate) fn qemu_command(s: &Settings, o: &MachineOverride, fw: &Firmware, image: &Path, vars_copy: &Path, extra: &[String]) -> Result<Command, String> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        o.machine.unwrap_or(&s.machine),
        "-cpu",
        &s.cpu,
        "-m",
        o.mem.unwrap_or(&s.mem),
        "-smp",
        o.smp.unwrap_or(&s.smp),
    ]);
    match &fw.vars {
        Some(vars) => {
            std::fs::copy(vars, vars_copy).map_err(|e| format!("copying {}: {}", vars.display(), e))?;
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={}", fw.code.display()));
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=1,file={}", vars_copy.display()));
        }
        None => {
            cmd.arg("-bios").arg(&fw.code);
        }
    }
    cmd.arg("-drive").arg(format!("format=raw,file={}", image.display()));
    cmd.args(["-nic", "none", "-display", "none", "-no-reboot"]);
    cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    cmd.args(extra);
    cmd.args(&s.extra);
    Ok(cmd)
}

/// Remove terminal escape sequences (OVMF clears the screen on serial).
pub(crate) fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\r' || (c.is_control() && c != '\t') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Verdicts collected while judging.
#[derive(Default)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
}

impl Tally {
    pub(crate) fn pass(&mut self, label: &str, what: &str) {
        self.passed += 1;
        println!("[PASS] {}: {}", label, what);
    }
    pub(crate) fn fail(&mut self, label: &str, what: &str) {
        self.failed += 1;
        println!("[FAIL] {}: {}", label, what);
    }
}

pub fn volume_for(boot: &Boot, art: &Artifacts) -> Volume {
    (boot.volume)(art)
}

/// The standard volume: loader, kernel, a generated limine.conf.
pub fn standard_volume(art: &Artifacts, cmdline: &str) -> Volume {
    let mut v = Volume::new();
    v.add("/EFI/BOOT/BOOTX64.EFI", Content::File(art.loader.clone()));
    v.add("/boot/capos-kernel", Content::File(art.kernel.clone()));
    v.add("/limine.conf", Content::Bytes(crate::esp::limine_conf(cmdline, &[]).into_bytes()));
    v
}

/// Generated block-device disks larger than this are sparse past the bytes
/// the guest reads.
const SPARSE_FROM: u64 = 1 << 30;

/// A disk prepared for a boot: where it is and what the guest must report.
struct PreparedDisk {
    guest_name: String,
    path: PathBuf,
    read_len: u64,
    sha256: String,
    size: u64,
}

struct Outcome {
    disks: Vec<PreparedDisk>,
    timeout_secs: u64,
    lines: Vec<String>,
    /// Host Unix time when each line arrived.
    stamps: Vec<i64>,
    exit: Option<i32>,
    timed_out: bool,
    /// The icount plugin's output file, if the boot loaded it.
    icount: Option<Result<String, String>>,
    /// What the Linux benchmark guest was made of.
    linux_description: Option<String>,
}

/// Forward raw chunks from a pipe (serial output can end without a newline,
/// e.g. the prompt, so we cannot wait for lines).
/// What [`stream_serial`] collected.
pub(crate) struct Serial {
    pub lines: Vec<String>,
    /// Host time (Unix seconds) each line arrived.
    pub stamps: Vec<i64>,
    pub timed_out: bool,
}

/// Read a guest's serial output from `rx` (fed by [`spawn_reader`]) until it
/// ends or `deadline` passes: print and log each line (through `clean`),
/// and type each script step's input once its trigger text has arrived
/// after the previous input was sent. A trailing partial line is kept.
pub(crate) fn stream_serial(
    rx: &mpsc::Receiver<Option<Vec<u8>>>,
    mut stdin: Option<&mut std::process::ChildStdin>,
    log: &mut std::fs::File,
    script: &[(&str, &[u8])],
    deadline: Instant,
    clean: fn(&str) -> String,
) -> Serial {
    let (mut lines, mut stamps, mut partial) = (Vec::new(), Vec::new(), Vec::<u8>::new());
    // Everything received, for script triggers; triggers only match text
    // that arrived after the previous input was sent.
    let mut transcript = String::new();
    let mut cursor = 0;
    let mut steps = script.iter();
    let mut next_step = steps.next();
    let mut timed_out = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(Some(chunk)) => {
                transcript.push_str(&String::from_utf8_lossy(&chunk));
                partial.extend_from_slice(&chunk);
                while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                    let raw: Vec<u8> = partial.drain(..=pos).collect();
                    let line = clean(&String::from_utf8_lossy(&raw[..raw.len() - 1]));
                    println!("{}", line);
                    let _ = writeln!(log, "{}", line);
                    lines.push(line);
                    stamps.push(host_unix());
                }
                while let Some((after, send)) = next_step {
                    match transcript[cursor..].find(after) {
                        Some(at) => {
                            if let Some(w) = stdin.as_mut() {
                                let _ = w.write_all(send);
                                let _ = w.flush();
                            }
                            cursor = transcript.len().max(cursor + at + after.len());
                            next_step = steps.next();
                        }
                        None => break,
                    }
                }
            }
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    if !partial.is_empty() {
        let line = clean(&String::from_utf8_lossy(&partial));
        println!("{}", line);
        let _ = writeln!(log, "{}", line);
        lines.push(line);
        stamps.push(host_unix());
    }
    Serial { lines, stamps, timed_out }
}

pub(crate) fn spawn_reader<R: Read + Send + 'static>(mut r: R, tx: mpsc::Sender<Option<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(None);
    });
}

fn run_boot(s: &Settings, dir: &Path, boot: &Boot, art: &Artifacts, fw: &Firmware) -> Result<Outcome, String> {
    if let Some(e) = &boot.input_error {
        return Err(e.clone());
    }
    let image = dir.join(format!("{}.img", boot.name));
    match boot.userspace {
        _ if boot.default_system => default_volume(s, art)?.write(&image)?,
        Some((manifest, cmdline)) => crate::userspace::volume(s, art, manifest, cmdline)?.write(&image)?,
        None => volume_for(boot, art).write(&image)?,
    }
    let vars = dir.join(format!("{}.vars.fd", boot.name));
    let mut extra = Vec::new();
    for (name, size) in &boot.scratch_disks {
        let path = dir.join(format!("{}-{}.raw", boot.name, name));
        let f = std::fs::File::create(&path).map_err(|e| format!("{}: {}", path.display(), e))?;
        f.set_len(*size).map_err(|e| e.to_string())?;
        extra.push((format!("{{disk:{}}}", name), path.display().to_string()));
    }
    for (name, args) in &boot.store_images {
        let path = dir.join(format!("{}-{}.img", boot.name, name));
        let _ = std::fs::remove_file(&path);
        let tool = crate::disk::build_mkstore_image(&s.root)?;
        let out = std::process::Command::new(&tool).args(args).arg("-o").arg(&path).output().map_err(|e| format!("mkstore-image: {}", e))?;
        if !out.status.success() {
            return Err(format!("mkstore-image {} -o {}: {}", args.join(" "), path.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        extra.push((format!("{{disk:{}}}", name), path.display().to_string()));
    }
    for (name, script, env) in &boot.script_images {
        let path = dir.join(format!("{}-{}.img", boot.name, name));
        let _ = std::fs::remove_file(&path);
        let out = std::process::Command::new(s.root.join(script)).arg(&path).envs(env.iter().copied()).output().map_err(|e| format!("{}: {}", script, e))?;
        if !out.status.success() {
            return Err(format!("{} {}: {}", script, path.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        extra.push((format!("{{disk:{}}}", name), path.display().to_string()));
    }
    let mut disks = Vec::new();
    let mut disk_args: Vec<String> = Vec::new();
    if let Some(usage) = boot.default_disks {
        let ddir = dir.join("disks");
        if usage == crate::scenarios::DefaultDisksUse::Fresh {
            let _ = std::fs::remove_dir_all(&ddir);
        }
        let (d, made) = crate::system::ensure(&s.root, &ddir, &crate::system::boot_images(&extra))?;
        for m in made {
            println!("== {}: made {}", boot.name, m);
        }
        disk_args.extend(crate::system::qemu_args(&d));
    }
    let mut scsi_controller = false;
    for (i, d) in boot.blk_disks.iter().enumerate() {
        let path = dir.join(format!("{}-{}.img", boot.name, d.guest_name));
        // A disk larger than SPARSE_FROM gets pseudo-random bytes only where
        // the guest reads them (the first blk_read_bytes) and is sparse
        // past them, so a 3 TiB disk costs what its written blocks do.
        let sparse = d.source.is_none() && d.size > SPARSE_FROM;
        if sparse && (boot.blk_read_bytes == 0 || boot.blk_read_bytes > SPARSE_FROM) {
            return Err(format!("disk {} is {} bytes: a disk that large is made sparse, and the guest may read at most its first {} bytes (BLK_READ_MIB)", d.guest_name, d.size, SPARSE_FROM));
        }
        let bytes = match &d.source {
            Some(src) => std::fs::read(src).map_err(|e| format!("BLK_IMAGE {}: {}", src.display(), e))?,
            None if sparse => pseudo_random(d.seed, boot.blk_read_bytes),
            None => pseudo_random(d.seed, d.size),
        };
        let size = if sparse { d.size } else { bytes.len() as u64 };
        if size < 64 * 512 || size % 512 != 0 {
            return Err(format!("disk image for {} is {} bytes; it must be a multiple of 512 and at least 32 KiB", d.guest_name, size));
        }
        let read_len = if boot.blk_read_bytes == 0 { size } else { boot.blk_read_bytes.min(size) };
        let sha256 = sha256_hex(&bytes[..read_len as usize]);
        std::fs::write(&path, &bytes).map_err(|e| format!("{}: {}", path.display(), e))?;
        if sparse {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(size))
                .map_err(|e| format!("{}: making it {} bytes (sparse): {}", path.display(), size, e))?;
        }
        let id = format!("disk{}", i);
        disk_args.push("-drive".into());
        disk_args.push(format!("if=none,id={},format=raw,file={}", id, path.display()));
        if let (crate::scenarios::DiskKind::Scsi { controller, .. }, false) = (d.kind, scsi_controller) {
            // One virtio-scsi controller carries every SCSI disk of a boot.
            disk_args.extend(["-device".to_string(), format!("virtio-scsi-pci,id=scsi0{}", controller)]);
            scsi_controller = true;
        }
        disk_args.push("-device".into());
        disk_args.push(match d.kind {
            crate::scenarios::DiskKind::Nvme => format!("nvme,serial=capos-{},drive={}", d.guest_name, id),
            crate::scenarios::DiskKind::Virtio => format!("virtio-blk-pci,drive={}", id),
            crate::scenarios::DiskKind::Scsi { target, .. } => format!("scsi-hd,drive={},bus=scsi0.0,channel=0,scsi-id={},lun=0", id, target),
        });
        disks.push(PreparedDisk { guest_name: d.guest_name.to_string(), path, read_len, sha256, size });
    }
    let mut args: Vec<String> = boot
        .qemu_args
        .iter()
        .map(|a| extra.iter().fold(a.clone(), |acc, (k, v)| acc.replace(k.as_str(), v)))
        .collect();
    args.extend(disk_args);
    let mut linux_description = None;
    if boot.linux_guest {
        let g = crate::linux::prepare(&s.root)?;
        args.extend(["-kernel".to_string(), g.kernel.display().to_string(), "-initrd".into(), g.initrd.display().to_string()]);
        args.extend(["-append".to_string(), LINUX_CMDLINE.to_string()]);
        linux_description = Some(format!("{}; kernel command line '{}'", g.description, LINUX_CMDLINE));
    }
    let icount_file = dir.join(format!("{}.icount.txt", boot.name));
    if boot.icount_plugin {
        let plugin = crate::icount::build_plugin(&s.root)?;
        let _ = std::fs::remove_file(&icount_file);
        if icount_file.display().to_string().contains(',') || plugin.display().to_string().contains(',') {
            return Err("the workspace path contains a comma, which QEMU's -plugin option cannot take".into());
        }
        args.extend(["-plugin".to_string(), format!("{},outfile={}", plugin.display(), icount_file.display())]);
    }
    let o = MachineOverride { machine: boot.machine, mem: boot.mem, smp: boot.smp };
    let mut cmd = qemu_command(s, &o, fw, &image, &vars, &args)?;
    // signal=off: scripted input may contain Ctrl-C bytes meant for the guest.
    cmd.args(["-chardev", "stdio,id=serial0,signal=off", "-serial", "chardev:serial0", "-monitor", "none"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let log_path = dir.join(format!("{}.log", boot.name));
    let mut log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {}", log_path.display(), e))?;
    println!("== {}: qemu {} (log: {})", boot.name, shell_words(&cmd), log_path.display());
    let mut child: Child = cmd.spawn().map_err(|e| format!("cannot start qemu-system-x86_64: {} (run tools/setup.sh)", e))?;
    let (tx, rx) = mpsc::channel();
    spawn_reader(child.stdout.take().unwrap(), tx);
    let (etx, erx) = mpsc::channel();
    spawn_reader(child.stderr.take().unwrap(), etx);
    let mut stdin = child.stdin.take();

    let timeout = Duration::from_secs(boot.timeout.unwrap_or(s.timeout_secs));
    let steps: Vec<(&str, &[u8])> = boot.script.iter().map(|(a, b)| (a.as_str(), b.as_slice())).collect();
    let serial = stream_serial(&rx, stdin.as_mut(), &mut log, &steps, Instant::now() + timeout, strip_ansi);
    let (lines, stamps, timed_out) = (serial.lines, serial.stamps, serial.timed_out);
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut err = Vec::new();
    while let Ok(Some(chunk)) = erx.try_recv() {
        err.extend_from_slice(&chunk);
    }
    for l in String::from_utf8_lossy(&err).lines() {
        println!("qemu: {}", l);
        let _ = writeln!(log, "qemu: {}", l);
    }
    let icount = boot.icount_plugin.then(|| {
        std::fs::read_to_string(&icount_file).map_err(|e| format!("the icount plugin left no output {}: {}", icount_file.display(), e))
    });
    Ok(Outcome {
        disks,
        timeout_secs: timeout.as_secs(),
        lines,
        stamps,
        exit: if timed_out { None } else { status.code() },
        timed_out,
        icount,
        linux_description,
    })
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing run can be
/// reproduced with the same image.
pub fn pseudo_random(seed: u64, len: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{:02x}", b)).collect()
}

/// The guest's hash of each disk against the host's, then the pattern the
/// guest wrote to the last 64 blocks, read from the image file.
fn check_disks(label: &str, out: &Outcome, lines: &[Line], t: &mut Tally) {
    for d in &out.disks {
        let want = format!("blk: {} read {} bytes sha256=", d.guest_name, d.read_len);
        match lines.iter().filter(|l| l.source == Source::Kernel).find_map(|l| l.raw.split(&want).nth(1).map(|h| h.trim().to_string())) {
            Some(h) if h == d.sha256 => t.pass(label, &format!("{}: guest sha256 of {} bytes matches the host's ({})", d.guest_name, d.read_len, &h[..16])),
            Some(h) => t.fail(label, &format!("{}: guest sha256 {} but the image's is {}", d.guest_name, h, d.sha256)),
            None => t.fail(label, &format!("{}: no line '{}...'", d.guest_name, want)),
        }
        let blocks = d.size / 512;
        let first = blocks - 64;
        // Only the scratch range is read back: the image may be sparse and
        // terabytes long.
        let scratch = (|| -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(&d.path)?;
            f.seek(SeekFrom::Start(first * 512))?;
            let mut b = vec![0u8; 64 * 512];
            f.read_exact(&mut b)?;
            Ok(b)
        })();
        let scratch = match scratch {
            Ok(b) => b,
            Err(e) => {
                t.fail(label, &format!("{}: cannot read the image back: {}", d.guest_name, e));
                continue;
            }
        };
        let bad = (0..64 * 512usize).find(|&i| scratch[i] != capos_kcore::blk_test_pattern(first + (i / 512) as u64, i % 512));
        match bad {
            None => t.pass(label, &format!("{}: the image holds the guest's pattern at LBA {}..{} after exit", d.guest_name, first, blocks)),
            Some(i) => t.fail(label, &format!("{}: image byte {} of the scratch range does not hold the pattern", d.guest_name, i)),
        }
    }
}

fn host_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The wall clock the kernel printed (`... (unix N) source: ...`) against
/// the host clock when that line arrived.
fn check_wall_clock(label: &str, out: &Outcome, lines: &[Line], t: &mut Tally) {
    const TOLERANCE: i64 = 5;
    for (line, stamp) in lines.iter().zip(&out.stamps).filter(|(l, _)| l.source == Source::Kernel) {
        if let Some(rest) = line.raw.split("(unix ").nth(1) {
            if let Some(n) = rest.split(')').next().and_then(|n| n.trim().parse::<i64>().ok()) {
                let diff = (n - stamp).abs();
                if diff <= TOLERANCE {
                    t.pass(label, &format!("guest wall clock {} is within {} s of the host's ({} s off)", n, TOLERANCE, diff));
                } else {
                    t.fail(label, &format!("guest wall clock {} is {} s away from the host's {}", n, diff, stamp));
                }
                return;
            }
        }
    }
    t.fail(label, "no wall clock line '(unix N)' printed");
}

fn shell_words(cmd: &Command) -> String {
    cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

/// The process names a manifest file starts (`process NAME` lines).
fn manifest_processes(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("process ").map(|n| n.trim().to_string()))
        .collect()
}

/// Whose `[PASS]`/`[FAIL]` lines count for `boot`: the kernel's always,
/// and those of the processes its manifest starts (a boot names its
/// manifest; its manifest names its processes). Firmware and loader lines
/// never count.
fn verdict_sources(boot: &Boot) -> Vec<Source> {
    let mut v = vec![Source::Kernel];
    let root = crate::workspace_root().unwrap_or_default();
    let manifest = match (&boot.userspace, boot.default_system) {
        (Some((m, _)), _) => Some(root.join(m)),
        (None, true) => Some(root.join(crate::system::manifest_env().ok().flatten().unwrap_or_else(|| "demos/default.manifest".into()))),
        _ => None,
    };
    if let Some(m) = manifest {
        v.extend(manifest_processes(&m).into_iter().map(Source::Process));
    }
    v
}

fn judge(label: &str, boot: &Boot, out: &Outcome, t: &mut Tally) {
    if out.timed_out {
        t.fail(label, &format!("timed out after {} s (a timeout is a failure)", out.timeout_secs));
    } else {
        let want = match boot.expect_exit {
            Expect::Success => EXIT_KERNEL_SUCCESS,
            Expect::KernelFailure => EXIT_KERNEL_FAILURE,
            Expect::LoaderError => EXIT_LOADER_ERROR,
            Expect::Reset => 0,
        };
        let what = format!("exit status {}", describe_exit(out.exit));
        if out.exit == Some(want) {
            t.pass(label, &what);
        } else {
            t.fail(label, &format!("{}, expected {}", what, describe_exit(Some(want))));
        }
    }
    let lines = classify(&out.lines);
    for pattern in &boot.expect {
        if Pattern::parse(pattern).find(&lines).is_some() {
            t.pass(label, &format!("saw '{}'", pattern));
        } else {
            t.fail(label, &format!("never saw '{}'", pattern));
        }
    }
    for pattern in &boot.forbid {
        if let Some(l) = Pattern::parse(pattern).find(&lines) {
            t.fail(label, &format!("saw forbidden '{}' in: {}", pattern, l.raw));
        }
    }
    for (name, check) in &boot.checks {
        match check(&out.lines) {
            Ok(seen) => t.pass(label, &format!("{name}: {seen}")),
            Err(why) => t.fail(label, &format!("{name}: {why}")),
        }
    }
    if boot.guest_verdicts {
        check_disks(label, out, &lines, t);
    }
    if boot.check_wall_clock {
        check_wall_clock(label, out, &lines, t);
    }
    if boot.guest_verdicts {
        let v = count_verdicts(&lines, &verdict_sources(boot));
        if v.ignored > 0 {
            println!("-- {}: {} verdict lines from sources this scenario does not name were not counted", label, v.ignored);
        }
        t.passed += v.passed;
        t.failed += v.failed;
        println!("-- {}: guest reported {} passed, {} failed", label, v.passed, v.failed);
    }
}

/// The Linux benchmark guest's kernel command line.
const LINUX_CMDLINE: &str = "console=ttyS0 loglevel=4 panic=-1";

/// What a cargo profile means, printed beside the figures.
fn describe_profile(p: &str) -> String {
    match p {
        "bench-opt" => "bench-opt (Cargo.toml: release + opt-level 3, fat LTO, 1 codegen unit, no debug info)".into(),
        "dev" => "dev (opt-level 1, debug assertions: not a figure to compare)".into(),
        other => other.to_string(),
    }
}

/// Print the executed-instruction figures of a boot that loaded the plugin;
/// a protocol error is a failed check. The Linux boot stores its figures.
fn report_icount(s: &Settings, label: &str, boot: &Boot, profile: &str, out: &Outcome, t: &mut Tally, judged_ok: bool) {
    let Some(text) = &out.icount else { return };
    let figs = text.clone().and_then(|text| {
        let mut figs = crate::icount::pair(&crate::icount::guest_regions(&out.lines)?, &crate::icount::plugin_regions(&text)?)?;
        let regions = figs.len();
        figs.extend(crate::icount::milestone_figures(&boot.milestones, &crate::icount::plugin_milestones(&text)?)?);
        Ok((figs, regions))
    });
    let figs = match figs {
        Ok((f, _)) if f.is_empty() => return t.fail(label, "no icount regions measured"),
        Ok((f, regions)) => {
            if regions > 0 || boot.milestones.is_empty() {
                t.pass(label, &format!("{} icount regions paired with the guest's lines", regions));
            }
            if !boot.milestones.is_empty() {
                t.pass(label, &format!("the {} milestones reported in order: {}", boot.milestones.len(), boot.milestones.join(", ")));
            }
            f
        }
        Err(e) => return t.fail(label, &format!("icount: {}", e)),
    };
    println!("-- {}: executed instructions (QEMU plugin tools/icount, markers abi/src/icount.rs)", label);
    match &out.linux_description {
        Some(d) => println!("   guest: {}", d),
        None => println!("   profile: {}", describe_profile(profile)),
    }
    let rendered: Vec<String> = figs.iter().map(crate::icount::render).collect();
    let all = crate::icount::render_all(&figs);
    for r in &all {
        println!("   {}", r);
    }
    // make bench-check reads the figures from here (budget.rs).
    if let Some(path) = std::env::var_os(crate::budget::FIGURES_ENV) {
        let text: String = all.iter().map(|r| format!("{}\n", r)).collect();
        let written = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            t.fail(label, &format!("cannot write {}: {}", std::path::Path::new(&path).display(), e));
        }
    }
    let reference = crate::icount::reference_path(&s.root);
    if boot.linux_guest && !judged_ok {
        println!("   (not stored in {}: the run failed)", reference.display());
    } else if boot.linux_guest {
        let mut text = format!(
            "# Linux figures written by `make bench-linux` (tools/runner/src/linux.rs): {}\n# QEMU {} machine, -cpu {}, -m {}, -smp 1, OVMF, -nic none, {}; null-co NVMe drive, latency-ns={}; I/O scheduler none\n",
            out.linux_description.as_deref().unwrap_or("?"),
            boot.machine.unwrap_or(&s.machine),
            s.cpu,
            boot.mem.unwrap_or(&s.mem),
            if boot.qemu_args.iter().any(|a| a == "-icount") { "-icount shift=0" } else { "no -icount" },
            crate::scenarios::BENCH_LATENCY_NS
        );
        for r in &rendered {
            text.push_str(r);
            text.push('\n');
        }
        let _ = std::fs::create_dir_all(reference.parent().unwrap());
        match std::fs::write(&reference, text) {
            Ok(()) => println!("   (stored in {})", reference.display()),
            Err(e) => t.fail(label, &format!("cannot write {}: {}", reference.display(), e)),
        }
    } else if !boot.linux_pairs.is_empty() {
        compare_with(&reference, "linux", "make bench-linux", &figs, &boot.linux_pairs);
    }
    if let Some(name) = boot.store_figures {
        let path = crate::icount::stored_path(&s.root, name);
        if judged_ok {
            let text = format!("# figures written by the {} benchmark ({})\n{}\n", name, describe_profile(profile), rendered.join("\n"));
            let _ = std::fs::create_dir_all(path.parent().unwrap());
            match std::fs::write(&path, text) {
                Ok(()) => println!("   (stored in {})", path.display()),
                Err(e) => t.fail(label, &format!("cannot write {}: {}", path.display(), e)),
            }
        }
    }
    let mut files: Vec<&str> = boot.stored_pairs.iter().map(|(f, _, _)| *f).collect();
    files.dedup();
    for name in files {
        let pairs: Vec<(&str, &str)> = boot.stored_pairs.iter().filter(|(f, _, _)| *f == name).map(|(_, a, b)| (*a, *b)).collect();
        compare_with(&crate::icount::stored_path(&s.root, name), &format!("bench-{name}"), &format!("make bench-{name}"), &figs, &pairs);
    }
}

/// Print the figures of `reference` named in `pairs` beside ours.
fn compare_with(reference: &std::path::Path, who: &str, how: &str, figs: &[crate::icount::Figure], pairs: &[(&str, &str)]) {
    {
        match std::fs::read_to_string(reference) {
            Ok(text) => match crate::icount::parse_reference(&text) {
                Ok(r) => {
                    for l in crate::icount::comparison(figs, &r, pairs, who) {
                        println!("   {}", l);
                    }
                }
                Err(e) => println!("   {}: {} (run {} again)", reference.display(), e, how),
            },
            Err(_) => println!("   run {} for the figures of {}", how, reference.display()),
        }
    }
}

/// The boot scenarios, then the storage scenarios (storage.rs, which drive
/// their own boots), with one tally and one final line.
pub fn run_all(s: &Settings, scenarios: &[Scenario], storage: &[crate::storage::StorageScenario]) -> Result<bool, String> {
    // Artifacts per cargo profile, built when a boot first needs them.
    let mut built: Vec<(String, Artifacts)> = Vec::new();
    let fw = find_firmware()?;
    let mut t = Tally::default();
    for sc in scenarios {
        if s.limine_dir.is_some() && sc.capos_boot_only {
            println!("== {}: skipped, it tests capos-boot itself and LIMINE_DIR is set", sc.name);
            continue;
        }
        let dir = s.out_dir.join(sc.name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        println!("== scenario {}: {}", sc.name, sc.description);
        for boot in &sc.boots {
            let label = format!("{}/{}", sc.name, boot.name);
            let bs = Settings { profile: boot.profile.clone().unwrap_or_else(|| s.profile.clone()), ..s.clone() };
            let art = if boot.linux_guest {
                // Nothing of capOS is booted.
                Artifacts { kernel: PathBuf::new(), kernel_symbols: PathBuf::new(), loader: PathBuf::new() }
            } else {
                match built.iter().position(|(p, _)| *p == bs.profile) {
                    Some(i) => built[i].1.clone(),
                    None => {
                        let a = build_all(&bs)?;
                        built.push((bs.profile.clone(), a.clone()));
                        a
                    }
                }
            };
            match run_boot(&bs, &dir, boot, &art, &fw) {
                Ok(out) => {
                    let failed_before = t.failed;
                    judge(&label, boot, &out, &mut t);
                    let judged_ok = t.failed == failed_before;
                    report_icount(&bs, &label, boot, &bs.profile, &out, &mut t, judged_ok);
                }
                Err(e) => t.fail(&label, &e),
            }
        }
    }
    for sc in storage {
        let art = match built.iter().position(|(p, _)| *p == s.profile) {
            Some(i) => built[i].1.clone(),
            None => {
                let a = build_all(s)?;
                built.push((s.profile.clone(), a.clone()));
                a
            }
        };
        crate::storage::run_scenario(s, &art, &fw, sc, &mut t);
    }
    println!("{} passed, {} failed", t.passed, t.failed);
    Ok(t.failed == 0 && t.passed > 0)
}

/// A boot volume for `manifest` and every binary it names, with the kernel
/// command line of limine.conf (or CMDLINE).
pub fn manifest_volume(s: &Settings, art: &Artifacts, manifest: &str) -> Result<Volume, String> {
    let conf_path = s.root.join("limine.conf");
    let conf = std::fs::read_to_string(&conf_path).map_err(|e| format!("{}: {}", conf_path.display(), e))?;
    let conf_cmdline = conf.lines().find_map(|l| l.trim().strip_prefix("cmdline:")).unwrap_or("").trim().to_string();
    let cmdline = std::env::var("CMDLINE").ok().filter(|c| !c.is_empty()).unwrap_or(conf_cmdline);
    crate::userspace::volume(s, art, manifest, &cmdline)
}

/// The volume `make run` boots: the repository's limine.conf (its cmdline
/// replaced by CMDLINE if set) and the modules it names; or, when MANIFEST
/// names a manifest, that manifest and every binary it names (so a user's
/// own manifest boots without editing limine.conf).
pub fn default_volume(s: &Settings, art: &Artifacts) -> Result<Volume, String> {
    let conf_path = s.root.join("limine.conf");
    let mut conf = std::fs::read_to_string(&conf_path).map_err(|e| format!("{}: {}", conf_path.display(), e))?;
    if let Some(manifest) = crate::system::manifest_env()? {
        return manifest_volume(s, art, &manifest).map_err(|e| format!("MANIFEST={}: {}", manifest, e));
    }
    if let Ok(cmdline) = std::env::var("CMDLINE") {
        if !cmdline.is_empty() {
            conf = conf
                .lines()
                .map(|l| if l.trim_start().starts_with("cmdline:") { format!("    cmdline: {}", cmdline) } else { l.to_string() })
                .collect::<Vec<_>>()
                .join("\n");
            conf.push('\n');
        }
    }
    let mut v = Volume::new();
    v.add("/EFI/BOOT/BOOTX64.EFI", Content::File(art.loader.clone()));
    v.add("/boot/capos-kernel", Content::File(art.kernel.clone()));
    // Modules limine.conf names: /boot/manifest is compiled from MANIFEST
    // (default demos/default.manifest), /boot/NAME is the demo NAME.
    for line in conf.lines() {
        let Some(path) = line.trim().strip_prefix("module_path:").map(|p| p.trim()) else { continue };
        let Some(file) = path.strip_prefix("boot():").or_else(|| path.strip_prefix("boot://")) else { continue };
        if file == "/boot/manifest" {
            let manifest = crate::system::manifest_env()?.unwrap_or_else(|| "demos/default.manifest".into());
            v.add(file, Content::Bytes(crate::userspace::compile_manifest(s, &manifest)?));
        } else if let Some(name) = file.strip_prefix("/boot/") {
            v.add(file, Content::File(crate::userspace::build_demo(s, name)?));
        }
    }
    v.add("/limine.conf", Content::Bytes(conf.into_bytes()));
    Ok(v)
}

/// `make run` / `make debug`: the repository's limine.conf, serial and the
/// QEMU monitor multiplexed on this terminal (Ctrl-A X quits, Ctrl-A C
/// toggles the monitor).
pub fn interactive(s: &Settings, debug: bool) -> Result<u8, String> {
    let art = build_all(s)?;
    let fw = find_firmware()?;
    let v = default_volume(s, &art)?;
    let dir = s.out_dir.join("interactive");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let image = dir.join("esp.img");
    v.write(&image)?;
    // The default system's disks (not for a MANIFEST of the user's own,
    // which attaches what it needs through QEMU_EXTRA).
    let mut disks = Vec::new();
    if crate::system::is_default_manifest(crate::system::manifest_env()?.as_deref()) {
        let (d, made) = crate::system::ensure(&s.root, &s.root.join("target/disks"), &crate::system::user_images_env())?;
        for m in made {
            eprintln!("capos-run: made {}", m);
        }
        eprintln!("capos-run: /data is {}, the store {}, /fat {} (in place)", d.data.display(), d.store.display(), d.fat.display());
        disks = crate::system::qemu_args(&d);
    }
    let mut cmd = qemu_command(s, &MachineOverride::default(), &fw, &image, &dir.join("vars.fd"), &disks)?;
    cmd.args(["-serial", "mon:stdio"]);
    if debug {
        cmd.args(["-s", "-S"]);
        let kernel = art.kernel_symbols.display();
        eprintln!("capos-run: QEMU is waiting for gdb on localhost:1234. In another terminal:");
        // The build names the checkout /capos in debug info (build::remaps).
        eprintln!(
            "  gdb {} -ex 'set substitute-path {} {}' -ex 'target remote localhost:1234' -ex 'break kernel_entry' -ex continue",
            kernel,
            crate::build::REMAP_ROOT,
            s.root.display()
        );
    }
    eprintln!("capos-run: booting {} (quit: Ctrl-A X)", image.display());
    let status = cmd.status().map_err(|e| format!("cannot start qemu-system-x86_64: {}", e))?;
    Ok(match status.code() {
        Some(EXIT_KERNEL_SUCCESS) | Some(0) => 0,
        _ => 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::Boot;

    fn boot(expect_exit: Expect) -> Boot {
        Boot {
            expect: vec!["capos kernel starting".into()],
            forbid: vec!["KERNEL PANIC".into()],
            guest_verdicts: true,
            ..Boot::new("t", Box::new(|_| Volume::new()), expect_exit)
        }
    }

    fn outcome(lines: &[&str], exit: Option<i32>, timed_out: bool) -> Outcome {
        Outcome {
            disks: Vec::new(),
            timeout_secs: 5,
            lines: lines.iter().map(|s| s.to_string()).collect(),
            stamps: lines.iter().map(|_| 0).collect(),
            exit,
            timed_out,
            icount: None,
            linux_description: None,
        }
    }

    fn tally(b: &Boot, o: &Outcome) -> (u32, u32) {
        let mut t = Tally::default();
        judge("t", b, o, &mut t);
        (t.passed, t.failed)
    }

    const FIRMWARE: &str = "BdsDxe: starting Boot0002";
    const BOOTED: &str = crate::source::KERNEL_FIRST_LINE;

    #[test]
    fn a_clean_run_passes() {
        let o = outcome(&[FIRMWARE, BOOTED, "[    0.100000] INFO  [PASS] x: fine"], Some(33), false);
        assert_eq!(tally(&boot(Expect::Success), &o), (3, 0));
    }

    #[test]
    fn a_timeout_is_a_failure_even_with_every_line_present() {
        let o = outcome(&[BOOTED, "[PASS] x"], None, true);
        let (_, failed) = tally(&boot(Expect::Success), &o);
        assert!(failed >= 1);
    }

    #[test]
    fn wrong_exit_missing_line_forbidden_line_and_guest_failures_fail() {
        assert_eq!(tally(&boot(Expect::Success), &outcome(&[BOOTED], Some(35), false)).1, 1);
        assert_eq!(tally(&boot(Expect::Success), &outcome(&["nothing"], Some(33), false)).1, 1);
        assert_eq!(tally(&boot(Expect::Success), &outcome(&[BOOTED, "KERNEL PANIC at x"], Some(33), false)).1, 1);
        assert_eq!(tally(&boot(Expect::Success), &outcome(&[BOOTED, "[FAIL] y: broke"], Some(33), false)).1, 1);
        // The loader-error code is not success.
        assert_eq!(tally(&boot(Expect::Success), &outcome(&[BOOTED], Some(37), false)).1, 1);
        assert_eq!(tally(&boot(Expect::LoaderError), &outcome(&[BOOTED], Some(37), false)).1, 0);
    }

    #[test]
    fn the_judge_takes_each_line_from_its_source() {
        // A process cannot start the kernel, nor print its panic, nor its verdicts.
        let b = boot(Expect::Success);
        assert_eq!(tally(&b, &outcome(&[FIRMWARE, "[evil] capos kernel starting"], Some(33), false)), (1, 1));
        assert_eq!(tally(&b, &outcome(&[BOOTED, "[evil] KERNEL PANIC at x"], Some(33), false)), (2, 0));
        let (p, f) = tally(&b, &outcome(&[BOOTED, "[evil] [PASS] forged", "[evil] [FAIL] forged"], Some(33), false));
        assert_eq!((p, f), (2, 0), "only the exit status and the expected line count");
        // Nor can the firmware or the loader.
        assert_eq!(tally(&b, &outcome(&["[PASS] early", "[FAIL] early", "KERNEL PANIC early", BOOTED], Some(33), false)), (2, 0));
        // A process the boot's manifest starts is counted.
        let named = Boot { userspace: Some(("demos/ipc.manifest", "")), ..boot(Expect::Success) };
        assert_eq!(tally(&named, &outcome(&[BOOTED, "[ping] [PASS] a", "[pong] [FAIL] b", "[evil] [FAIL] c"], Some(33), false)), (3, 1));
    }

    #[test]
    fn ansi_sequences_are_stripped() {
        assert_eq!(strip_ansi("\x1b[2J\x1b[01;01Hcapos-boot: x\r"), "capos-boot: x");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
