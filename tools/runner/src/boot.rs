//! Running one boot: its volume written, its disks made, QEMU started on
//! the machine it names, the serial log streamed and the outcome judged.
//! Also `make run` / `make debug` (an interactive boot of the default
//! system).

use crate::build::{build_all, Artifacts};
use crate::judge::figures::{report_icount, Figures};
use crate::judge::{judge, Expect, Judgement, LogCheck, Outcome, Tally};
use crate::machine::serial::{spawn_reader, stream_serial_watching, strip_ansi};
use crate::machine::{describe_exit, find_firmware, qemu_command, serial_on_stdio, Firmware, Machine, EXIT_KERNEL_SUCCESS};
use crate::machine::tpm;
use crate::settings::Settings;
use crate::source::Source;
use crate::volumes::blk::BlkDisk;
use crate::volumes::system::{self, DefaultDisksUse};
use crate::volumes::{default_volume, BootVolume, Disks};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One boot of a scenario, in parts: the machine it runs on, what its boot
/// volume holds (built with `profile`), the disks it attaches, what is
/// typed on its console, how it is judged and the figures it reports.
/// Scenarios start from [`Boot::new`] (or a helper of theirs) and set what
/// differs with the builder methods below.
pub struct Boot {
    pub name: &'static str,
    pub machine: Machine,
    pub volume: BootVolume,
    /// Cargo profile for this boot's kernel, loader and userspace instead
    /// of KERNEL_PROFILE (the benchmarks use BENCH_PROFILE).
    pub profile: Option<String>,
    pub disks: Disks,
    /// When `.0` appears in the serial output (after the previous step's
    /// input was sent), type `.1` on the serial console.
    pub script: Vec<(String, Vec<u8>)>,
    pub judgement: Judgement,
    pub figures: Figures,
    /// A runner input this boot needs could not be read (SHELL_SCRIPT
    /// missing, not UTF-8, ...): the boot is a failure with this message,
    /// and QEMU is not started. Never a silent default.
    pub input_error: Option<String>,
    /// Checks the runner makes from the host while the guest runs.
    pub host: Option<HostSide>,
    /// Boot a second, identical machine at the same moment ([`Boot::twin`]).
    pub twin: bool,
}

/// Checks made from the host, through ports QEMU forwards from 127.0.0.1
/// only (its user network stays `restrict=on`: the guest reaches nothing
/// outside). The runner picks a free host port for each forward and puts
/// `,hostfwd=PROTO:127.0.0.1:PORT-:GUEST_PORT` for all of them where the
/// machine's arguments say [`HOSTFWD`]; once `trigger` appears on the
/// serial console, `run` gets the host ports (in `forwards` order) and
/// the boot's disks ([`HostEnv`]) on a thread of its own and returns its
/// verdicts, each counted as a check of the boot. A boot whose trigger
/// never came fails. When `run` returns, the runner writes
/// [`HOST_SIDE_DONE`] into the serial transcript (and the log), so a
/// script step can wait for it (the shell's `exit` after the checks).
pub struct HostSide {
    pub trigger: &'static str,
    /// (protocol "tcp" or "udp", guest port).
    pub forwards: Vec<(&'static str, u16)>,
    pub run: std::sync::Arc<dyn Fn(&HostEnv) -> Vec<(String, Result<String, String>)> + Send + Sync>,
}

/// What a host side works with.
pub struct HostEnv {
    /// The host ports, in the order of [`HostSide::forwards`].
    pub ports: Vec<u16>,
    /// (`{disk:NAME}`, path) of the boot's disks (the default system's as
    /// `{disk:data}`, `{disk:store}`, `{disk:fat}`).
    pub disks: Vec<(String, String)>,
    /// The serial console as it arrives, and how far [`HostEnv::wait_for`]
    /// has read it.
    console: std::sync::Mutex<ConsoleTap>,
    /// Into the serial transcript ([`HostEnv::say`]).
    inject: mpsc::Sender<Option<Vec<u8>>>,
}

struct ConsoleTap {
    rx: mpsc::Receiver<String>,
    text: String,
    cursor: usize,
}

/// What [`HostEnv::say`] puts before its line.
pub const RUNNER_PREFIX: &str = "[runner] ";

impl HostEnv {
    /// Wait until `text` appears on the serial console after what the
    /// previous wait found; an error after `limit`, or when the boot ends.
    /// A host side that takes turns with the guest waits for its lines.
    pub fn wait_for(&self, text: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut tap = self.console.lock().unwrap();
        loop {
            let from = tap.cursor;
            if let Some(at) = tap.text[from..].find(text) {
                tap.cursor = from + at + text.len();
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tap.rx.recv_timeout(left) {
                Ok(chunk) => tap.text.push_str(&chunk),
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(format!("'{text}' did not appear on the console within {} s", limit.as_secs())),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(format!("the boot ended before '{text}' appeared on the console")),
            }
        }
    }

    /// Put `[runner] LINE` into the serial transcript (and the log), for a
    /// script step to wait for: how the host side tells the script to go on.
    pub fn say(&self, line: &str) {
        let _ = self.inject.send(Some(format!("{RUNNER_PREFIX}{line}\n").into_bytes()));
    }

    /// The path of disk `name`.
    pub fn disk(&self, name: &str) -> Option<std::path::PathBuf> {
        let key = format!("{{disk:{name}}}");
        self.disks.iter().find(|(k, _)| *k == key).map(|(_, p)| std::path::PathBuf::from(p))
    }
}

/// The line the runner adds to a boot's serial transcript when its host
/// side is done (marked as the runner's: no guest prints it).
pub const HOST_SIDE_DONE: &str = "[runner] host-side checks done";

/// Where the host forwards go in a boot's QEMU arguments (see [`HostSide`]).
pub const HOSTFWD: &str = "{hostfwd}";

/// A free port on 127.0.0.1 for `proto` (the OS's choice; released at
/// once for QEMU to take).
fn free_port(proto: &str) -> Result<u16, String> {
    let port = match proto {
        "udp" => std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()),
        _ => std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()),
    };
    port.map(|a| a.port()).map_err(|e| format!("no free {proto} port on 127.0.0.1: {e}"))
}

impl Boot {
    /// A boot of `volume` expecting `exit`, with every check and setting at
    /// its default (no lines required, the machine settings from the
    /// environment).
    pub fn new(name: &'static str, volume: BootVolume, exit: Expect) -> Boot {
        Boot {
            name,
            machine: Machine::default(),
            volume,
            profile: None,
            disks: Disks::default(),
            script: Vec::new(),
            judgement: Judgement::new(exit),
            figures: Figures::default(),
            input_error: None,
            host: None,
            twin: false,
        }
    }

    // The machine.
    pub fn machine(mut self, kind: &'static str) -> Boot {
        self.machine.kind = Some(kind);
        self
    }
    pub fn mem(mut self, mem: &'static str) -> Boot {
        self.machine.mem = Some(mem);
        self
    }
    pub fn smp(mut self, cpus: &'static str) -> Boot {
        self.machine.smp = Some(cpus);
        self
    }
    pub fn qemu_args(mut self, args: Vec<String>) -> Boot {
        self.machine.args = args;
        self
    }

    // The boot volume.
    pub fn volume(mut self, volume: BootVolume) -> Boot {
        self.volume = volume;
        self
    }
    pub fn default_system(self) -> Boot {
        self.volume(BootVolume::DefaultSystem)
    }
    pub fn profile(mut self, profile: impl Into<String>) -> Boot {
        self.profile = Some(profile.into());
        self
    }

    // The disks.
    pub fn scratch_disks(mut self, disks: Vec<(&'static str, u64)>) -> Boot {
        self.disks.scratch = disks;
        self
    }
    pub fn store_images(mut self, images: Vec<(&'static str, Vec<String>)>) -> Boot {
        self.disks.store_images = images;
        self
    }
    pub fn script_images(mut self, images: Vec<(&'static str, &'static str, Vec<(&'static str, &'static str)>)>) -> Boot {
        self.disks.script_images = images;
        self
    }
    /// Disks of known content, the guest hashing `read_bytes` of each (0: all).
    pub fn blk_disks(mut self, disks: Vec<BlkDisk>, read_bytes: u64) -> Boot {
        self.disks.blk = disks;
        self.disks.blk_read_bytes = read_bytes;
        self
    }
    pub fn default_disks(mut self, usage: DefaultDisksUse) -> Boot {
        self.disks.default_disks = Some(usage);
        self
    }

    // The console.
    pub fn script(mut self, script: Vec<(String, Vec<u8>)>) -> Boot {
        self.script = script;
        self
    }

    // The judgement.
    pub fn expect(mut self, lines: Vec<String>) -> Boot {
        self.judgement.expect = lines;
        self
    }
    pub fn forbid(mut self, lines: Vec<String>) -> Boot {
        self.judgement.forbid = lines;
        self
    }
    pub fn guest_verdicts(mut self, count: bool) -> Boot {
        self.judgement.guest_verdicts = count;
        self
    }
    pub fn checks(mut self, checks: Vec<(&'static str, LogCheck)>) -> Boot {
        self.judgement.checks = checks;
        self
    }
    pub fn timeout(mut self, secs: u64) -> Boot {
        self.judgement.timeout = Some(secs);
        self
    }

    // The figures.
    pub fn icount_plugin(mut self) -> Boot {
        self.figures.icount = true;
        self
    }
    pub fn milestones(mut self, milestones: Vec<&'static str>) -> Boot {
        self.figures.milestones = milestones;
        self
    }
    pub fn linux_pairs(mut self, pairs: Vec<(&'static str, &'static str)>) -> Boot {
        self.figures.linux_pairs = pairs;
        self
    }
    /// See [`Figures::not_budgeted`].
    pub fn not_budgeted(mut self) -> Boot {
        self.figures.not_budgeted = true;
        self
    }
    pub fn store_figures(mut self, name: &'static str) -> Boot {
        self.figures.store_figures = Some(name);
        self
    }
    pub fn stored_pairs(mut self, pairs: Vec<(&'static str, &'static str, &'static str)>) -> Boot {
        self.figures.stored_pairs = pairs;
        self
    }

    /// Checks from the host while the guest runs ([`HostSide`]).
    pub fn host_side(mut self, host: HostSide) -> Boot {
        self.host = Some(host);
        self
    }

    /// Start a second machine like this one at the same moment, on its
    /// own copies of the boot volume and firmware variables (`NAME-twin.*`),
    /// and judge the two as one boot: both must end as expected, and the
    /// twin's serial lines follow the first machine's in the transcript,
    /// after the line [`TWIN_FOLLOWS`] (its log: `NAME-twin.log`). For
    /// what two independent machines get from the host at once (make
    /// bench-smp's ceiling); so a twin boot has no disks, console script,
    /// host side or instruction counting.
    pub fn twin(mut self) -> Boot {
        self.twin = true;
        self
    }

    pub fn input_error(mut self, error: Option<String>) -> Boot {
        self.input_error = error;
        self
    }
}

/// Run `boot` of a scenario whose files go to `dir` and judge it, its
/// verdicts counted in `t` under `label`.
pub fn run(s: &Settings, dir: &Path, label: &str, boot: &Boot, art: &Artifacts, fw: &Firmware, t: &mut Tally) {
    match run_boot(s, dir, boot, art, fw) {
        Ok(out) => {
            let failed_before = t.failed;
            judge(label, &boot.judgement, &verdict_sources(&boot.volume), &out, t);
            let judged_ok = t.failed == failed_before;
            report_icount(s, label, &boot.figures, &boot.machine, matches!(boot.volume, BootVolume::Linux(_)), &s.profile, &out, t, judged_ok);
        }
        Err(e) => t.fail(label, &e),
    }
}

fn run_boot(s: &Settings, dir: &Path, boot: &Boot, art: &Artifacts, fw: &Firmware) -> Result<Outcome, String> {
    if let Some(e) = &boot.input_error {
        return Err(e.clone());
    }
    let image = dir.join(format!("{}.img", boot.name));
    boot.volume.write(s, art, &image)?;
    let vars = dir.join(format!("{}.vars.fd", boot.name));
    let disks = boot.disks.make(s, dir, boot.name)?;
    let mut args: Vec<String> = boot
        .machine
        .args
        .iter()
        .map(|a| disks.names.iter().fold(a.clone(), |acc, (k, v)| acc.replace(k.as_str(), v)))
        .collect();
    args.extend(disks.args);
    let mut host_ports = Vec::new();
    if let Some(h) = &boot.host {
        let mut fwd = String::new();
        for (proto, guest) in &h.forwards {
            let port = free_port(proto)?;
            fwd.push_str(&format!(",hostfwd={proto}:127.0.0.1:{port}-:{guest}"));
            host_ports.push(port);
        }
        if !args.iter().any(|a| a.contains(HOSTFWD)) {
            return Err(format!("the boot has host-side checks but no '{HOSTFWD}' in its QEMU arguments"));
        }
        for a in args.iter_mut() {
            *a = a.replace(HOSTFWD, &fwd);
        }
    }
    let mut linux_description = None;
    if let BootVolume::Linux(extra) = boot.volume {
        let g = crate::build::linux::prepare(&s.root)?;
        let cmdline = format!("{} {}", LINUX_CMDLINE, extra).trim().to_string();
        args.extend(["-kernel".to_string(), g.kernel.display().to_string(), "-initrd".into(), g.initrd.display().to_string()]);
        args.extend(["-append".to_string(), cmdline.clone()]);
        linux_description = Some(format!("{}; kernel command line '{}'", g.description, cmdline));
    }
    let icount_file = dir.join(format!("{}.icount.txt", boot.name));
    if boot.figures.icount {
        let plugin = crate::judge::icount::build_plugin(&s.root)?;
        let _ = std::fs::remove_file(&icount_file);
        if icount_file.display().to_string().contains(',') || plugin.display().to_string().contains(',') {
            return Err("the workspace path contains a comma, which QEMU's -plugin option cannot take".into());
        }
        // Several vCPUs share the plugin's counter: they must run in one
        // thread, in turn (the plugin's rr=on).
        let rr = boot.machine.smp.unwrap_or(&s.smp) != "1";
        if rr {
            args.extend(["-accel".to_string(), "tcg,thread=single".into()]);
        }
        args.extend(["-plugin".to_string(), format!("{},outfile={}{}", plugin.display(), icount_file.display(), if rr { ",rr=on" } else { "" })]);
    }
    // Started first: the twin's command is made (its image copied) before
    // either machine runs, so the two start together.
    let twin = if boot.twin { Some(Twin::start(s, dir, boot, fw, &image, &args)?) } else { None };
    let mut cmd = qemu_command(s, &boot.machine, fw, &image, &vars, &args)?;
    // Held until QEMU has exited: dropping it stops swtpm.
    let _tpm = software_tpm(boot, &mut cmd)?;
    serial_on_stdio(&mut cmd);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let log_path = dir.join(format!("{}.log", boot.name));
    let mut log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {}", log_path.display(), e))?;
    println!("== {}: qemu {} (log: {})", boot.name, shell_words(&cmd), log_path.display());
    let mut child: Child = cmd.spawn().map_err(|e| format!("cannot start qemu-system-x86_64: {} (run tools/setup.sh)", e))?;
    let (tx, rx) = mpsc::channel();
    let done_tx = tx.clone();
    spawn_reader(child.stdout.take().unwrap(), tx);
    let (etx, erx) = mpsc::channel();
    spawn_reader(child.stderr.take().unwrap(), etx);
    let mut stdin = child.stdin.take();

    let timeout = Duration::from_secs(boot.judgement.timeout.unwrap_or(s.timeout_secs));
    let steps: Vec<(&str, &[u8])> = boot.script.iter().map(|(a, b)| (a.as_str(), b.as_slice())).collect();
    let (tap_tx, tap_rx) = mpsc::channel();
    let host = boot.host.as_ref().map(|h| {
        let (run, trigger) = (h.run.clone(), h.trigger);
        let env = HostEnv {
            ports: host_ports.clone(),
            disks: disks.names.clone(),
            console: std::sync::Mutex::new(ConsoleTap { rx: tap_rx, text: String::new(), cursor: 0 }),
            inject: done_tx.clone(),
        };
        std::thread::spawn(move || {
            let verdicts = env.wait_for(trigger, timeout).ok().map(|()| run(&env));
            let _ = done_tx.send(Some(format!("{HOST_SIDE_DONE}\n").into_bytes()));
            verdicts
        })
    });
    let tap = boot.host.as_ref().map(|_| tap_tx);
    let deadline = Instant::now() + timeout;
    let serial = stream_serial_watching(&rx, stdin.as_mut(), &mut log, &steps, deadline, strip_ansi, tap);
    let (mut lines, mut stamps, timed_out) = (serial.lines, serial.stamps, serial.timed_out);
    if timed_out {
        let _ = child.kill();
    }
    // The host side's checks all have time limits of their own.
    let host = match (host, &boot.host) {
        (Some(thread), Some(h)) => match thread.join() {
            Ok(Some(verdicts)) => verdicts,
            Ok(None) => vec![("side".to_string(), Err(format!("never started: '{}' never appeared", h.trigger)))],
            Err(_) => vec![("side".to_string(), Err("the host-side checks panicked".to_string()))],
        },
        _ => Vec::new(),
    };
    for (name, v) in &host {
        let _ = match v {
            Ok(w) => writeln!(log, "host: [PASS] {name}: {w}"),
            Err(w) => writeln!(log, "host: [FAIL] {name}: {w}"),
        };
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
    if let Some(twin) = twin {
        let (tlines, texit) = twin.finish(dir, boot.name, deadline)?;
        if !timed_out && texit != status.code() {
            return Err(format!("its twin (a second machine booted beside it) ended with {} where the first ended with {} (log: {}-twin.log)", describe_exit(texit), describe_exit(status.code()), boot.name));
        }
        let end = stamps.last().copied().unwrap_or(0);
        lines.push(TWIN_FOLLOWS.to_string());
        lines.extend(tlines);
        stamps.resize(lines.len(), end);
    }
    let icount = boot.figures.icount.then(|| {
        std::fs::read_to_string(&icount_file).map_err(|e| format!("the icount plugin left no output {}: {}", icount_file.display(), e))
    });
    Ok(Outcome {
        disks: disks.blk,
        timeout_secs: timeout.as_secs(),
        lines,
        stamps,
        exit: if timed_out { None } else { status.code() },
        timed_out,
        icount,
        linux_description,
        host,
    })
}

/// A capOS boot gets a software TPM, or OVMF's probe for one costs it
/// 1.5 s (a minute under -icount; machine/tpm.rs); Linux's comparison
/// boots keep the machine they were measured on. A twin gets what its
/// first machine gets.
fn software_tpm(boot: &Boot, cmd: &mut Command) -> Result<Option<tpm::SoftwareTpm>, String> {
    if matches!(boot.volume, BootVolume::Linux(_)) {
        Ok(None)
    } else {
        tpm::attach(cmd)
    }
}

/// The line between a boot's serial lines and its twin's ([`Boot::twin`]).
pub const TWIN_FOLLOWS: &str = "[runner] the twin's serial output follows";

/// The second machine of a [`Boot::twin`] boot: its QEMU, the thread
/// collecting its serial output, and its software TPM (stopped when
/// dropped, after QEMU). Dropped without [`Twin::finish`] (the first
/// machine's boot failed), its QEMU is killed, never left running.
struct Twin {
    child: Child,
    output: Option<std::thread::JoinHandle<Vec<u8>>>,
    _tpm: Option<tpm::SoftwareTpm>,
}

impl Drop for Twin {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Twin {
    fn start(s: &Settings, dir: &Path, boot: &Boot, fw: &Firmware, image: &Path, args: &[String]) -> Result<Twin, String> {
        if !boot.disks.is_empty() || !boot.script.is_empty() || boot.host.is_some() || boot.figures.icount {
            return Err("a twin boot has no disks, console script, host side or instruction counting (Boot::twin)".into());
        }
        let copy = dir.join(format!("{}-twin.img", boot.name));
        std::fs::copy(image, &copy).map_err(|e| format!("copying {} to {}: {}", image.display(), copy.display(), e))?;
        let vars = dir.join(format!("{}-twin.vars.fd", boot.name));
        let mut cmd = qemu_command(s, &boot.machine, fw, &copy, &vars, args)?;
        let tpm = software_tpm(boot, &mut cmd)?;
        serial_on_stdio(&mut cmd);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        println!("== {}-twin: qemu {}", boot.name, shell_words(&cmd));
        let mut child = cmd.spawn().map_err(|e| format!("cannot start the twin's qemu-system-x86_64: {} (run tools/setup.sh)", e))?;
        let mut out = child.stdout.take().ok_or("the twin's QEMU has no output pipe")?;
        let output = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut bytes);
            bytes
        });
        Ok(Twin { child, output: Some(output), _tpm: tpm })
    }

    /// Wait for the twin until `deadline` (then kill it): its serial lines
    /// (also written to `NAME-twin.log`) and exit status, None if killed.
    fn finish(mut self, dir: &Path, name: &str, deadline: Instant) -> Result<(Vec<String>, Option<i32>), String> {
        let status = loop {
            match self.child.try_wait().map_err(|e| e.to_string())? {
                Some(st) => break st.code(),
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let bytes = self.output.take().map(|h| h.join()).transpose().map_err(|_| "the twin's output reader panicked".to_string())?.unwrap_or_default();
        let log = dir.join(format!("{name}-twin.log"));
        std::fs::write(&log, &bytes).map_err(|e| format!("{}: {}", log.display(), e))?;
        let lines = String::from_utf8_lossy(&bytes).lines().map(strip_ansi).collect();
        Ok((lines, status))
    }
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
fn verdict_sources(volume: &BootVolume) -> Vec<Source> {
    let mut v = vec![Source::Kernel];
    let root = crate::settings::workspace_root().unwrap_or_default();
    if let Some(m) = volume.manifest() {
        v.extend(manifest_processes(&root.join(m)).into_iter().map(Source::Process));
    }
    v
}

/// The Linux benchmark guest's kernel command line.
const LINUX_CMDLINE: &str = "console=ttyS0 loglevel=4 panic=-1";

/// `make run` / `make debug`: the repository's limine.conf, serial and the
/// QEMU monitor multiplexed on this terminal (Ctrl-A X quits, Ctrl-A C
/// toggles the monitor).
/// How `capos-run` boots the default system for a person.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Interactive {
    /// `make run`: the serial console on the terminal.
    Console,
    /// `make debug`: the same, QEMU waiting for gdb.
    Debug,
    /// `make run-http`: no console input, the log on stdout, serving
    /// until killed.
    Serve,
}

/// HTTP_PORT (default 8080): the port on 127.0.0.1 forwarded to the web
/// server's port 80; checked free before QEMU starts, so a taken port is
/// a clear error rather than a QEMU failure.
fn http_port() -> Result<u16, String> {
    let port = match std::env::var("HTTP_PORT") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("HTTP_PORT={v}: not a port (1 to 65535)"))?,
        _ => 8080,
    };
    std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("HTTP_PORT {port}: 127.0.0.1:{port} cannot be used ({e}); pick another with HTTP_PORT=N"))?;
    Ok(port)
}

pub fn interactive(s: &Settings, how: Interactive) -> Result<u8, String> {
    let debug = how == Interactive::Debug;
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
    if system::is_default_manifest(system::manifest_env()?.as_deref()) {
        let (d, made) = system::ensure(&s.root, &s.root.join("target/disks"), &system::user_images_env())?;
        for m in made {
            eprintln!("capos-run: made {}", m);
        }
        eprintln!("capos-run: /data is {}, the store {}, /fat {} (in place)", d.data.display(), d.store.display(), d.fat.display());
        disks = system::qemu_args(&d);
        // The network: the card on QEMU's user network (restrict=on: the
        // guest reaches nothing outside this host), one forward from
        // 127.0.0.1 to the web server.
        let port = http_port()?;
        disks.extend(crate::machine::user_nic(&format!(",hostfwd=tcp:127.0.0.1:{port}-:80"), ""));
        eprintln!("capos-run: /data is served read-only at http://127.0.0.1:{port}/ (the web process; the guest reaches nothing outside this host)");
    } else if how == Interactive::Serve {
        return Err("make run-http serves the default system; MANIFEST names another".into());
    }
    let mut cmd = qemu_command(s, &Machine::default(), &fw, &image, &dir.join("vars.fd"), &disks)?;
    if how == Interactive::Serve {
        // Nothing reads a console: the log goes to stdout, and the
        // system serves until it is killed.
        serial_on_stdio(&mut cmd);
        cmd.stdin(Stdio::null());
    } else {
        cmd.args(["-serial", "mon:stdio"]);
    }
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
    use crate::volumes::esp::Volume;

    #[test]
    fn a_host_side_waits_for_console_text_in_turn_and_says_lines() {
        let (tap, rx) = mpsc::channel();
        let (inject, said) = mpsc::channel();
        let env = HostEnv { ports: vec![], disks: vec![], console: std::sync::Mutex::new(ConsoleTap { rx, text: String::new(), cursor: 0 }), inject };
        // Text split across chunks is found; each wait starts after what
        // the previous one found.
        for c in ["bench> ic", "ount: a ops=1\nbench> ", "x"] {
            tap.send(c.to_string()).unwrap();
        }
        env.wait_for("icount: a ops=1", Duration::from_secs(5)).unwrap();
        env.wait_for("bench> ", Duration::from_secs(5)).unwrap();
        let e = env.wait_for("bench> ", Duration::from_millis(50)).unwrap_err();
        assert!(e.contains("did not appear"), "{e}");
        tap.send("bench> ".into()).unwrap();
        env.wait_for("bench> ", Duration::from_secs(5)).unwrap();
        drop(tap);
        let e = env.wait_for("never", Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("the boot ended"), "{e}");
        env.say("bench: stop");
        assert_eq!(said.recv().unwrap(), Some(b"[runner] bench: stop\n".to_vec()));
    }

    fn boot(expect_exit: Expect) -> Boot {
        Boot::new("t", BootVolume::Made(Box::new(|_| Volume::new())), expect_exit)
            .expect(vec!["capos kernel starting".into()])
            .forbid(vec!["KERNEL PANIC".into()])
            .guest_verdicts(true)
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
            host: Vec::new(),
        }
    }

    fn tally(b: &Boot, o: &Outcome) -> (u32, u32) {
        let mut t = Tally::default();
        judge("t", &b.judgement, &verdict_sources(&b.volume), o, &mut t);
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
        let named = boot(Expect::Success).volume(BootVolume::Manifest("demos/ipc.manifest", ""));
        assert_eq!(tally(&named, &outcome(&[BOOTED, "[ping] [PASS] a", "[pong] [FAIL] b", "[evil] [FAIL] c"], Some(33), false)), (3, 1));
    }
}
