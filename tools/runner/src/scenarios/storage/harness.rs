//! Running a storage scenario: its images built or copied, mkstore-image
//! fsck and extract, boots of the checker streamed (and cut, for the
//! recovery scenario), and their judgement.

use super::*;

/// How the recovery scenario cuts a boot: when the guest prints `step K
/// MARK` for K the `steps`-th step past the one it resumed from (MARK
/// `begin`: the step's writes start; `sync`: its commit starts), wait
/// `delay_ms`, SIGKILL.
#[derive(Clone, Copy, Debug)]
pub(super) struct KillPlan {
    pub(super) steps: u64,
    pub(super) mark: &'static str,
    pub(super) delay_ms: u64,
}

pub(super) struct BootOut {
    pub(super) lines: Vec<String>,
    /// Seconds since QEMU started, per line.
    pub(super) stamps: Vec<f64>,
    pub(super) exit: Option<i32>,
    pub(super) timed_out: bool,
    /// SIGKILLed as planned.
    pub(super) killed: bool,
}

pub(super) struct Run<'a> {
    pub(super) s: &'a Settings,
    pub(super) art: &'a Artifacts,
    pub(super) fw: &'a Firmware,
    pub(super) dir: PathBuf,
    pub(super) t: &'a mut Tally,
    pub(super) name: &'static str,
    pub(super) tool: Option<PathBuf>,
    /// Boot volumes already written, by manifest text.
    pub(super) volumes: HashMap<String, PathBuf>,
    /// Boot with `-icount shift=ICOUNT_SHIFT` (time follows executed
    /// instructions, whatever the host's load) and hold the kernel's
    /// longest interrupts-off span in a capability call to
    /// [`CAP_CALL_IRQ_OFF_BOUND`].
    pub(super) icount: bool,
    /// Kernel command-line words the next boots add to `exit_when_idle`
    /// (block-cap's `nvme.timeout_ms=`).
    pub(super) cmdline: String,
}

/// Under `-icount shift=5` every executed instruction advances the
/// guest's clock by 2^5 ns, and the TSC (1 GHz there) by 32 ticks: a span
/// in ticks is 32 times the instructions executed in it. (shift=0 would
/// make ticks instructions, but firmware's delay loops then take 35 s.)
pub(super) const ICOUNT_SHIFT: u32 = 5;

/// The bound on the kernel's longest interrupts-off span in a capability
/// call, in executed instructions: 100,000 (about 30 us on a 3 GHz core),
/// about twice what the 1 MiB BlockDevice calls of block-cap and the
/// 1 MiB File calls of storage-writable keep interrupts off for now that
/// device requests, device waits, the engine's long loops and the
/// kernel's bulk copies let them in (30,000 to 52,000), and a fortieth of
/// what they took when a device wait was one span (1.8 to 4.7 million;
/// docs/interrupts-off.md has the figures).
pub(super) const CAP_CALL_IRQ_OFF_BOUND: u64 = 100_000;

/// The kernel's `interrupts off, capability calls: longest span N TSC
/// ticks ...` line: N, or why not.
pub(super) fn cap_call_irq_off_span(lines: &[String]) -> Result<u64, String> {
    let prefix = "interrupts off, capability calls: longest span ";
    let Some(rest) = lines.iter().rev().find_map(|l| l.split_once(prefix).map(|(_, r)| r.to_string())) else {
        return Err(format!("the kernel never printed '{prefix}N TSC ticks ...'"));
    };
    rest.split(' ').next().and_then(|n| n.parse().ok()).ok_or_else(|| format!("cannot read the figure in '{prefix}{rest}'"))
}

pub(super) fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl Run<'_> {
    pub(super) fn label(&self, what: &str) -> String {
        format!("{}/{}", self.name, what)
    }

    pub(super) fn pass(&mut self, what: &str, detail: &str) {
        let l = self.label(what);
        self.t.pass(&l, detail);
    }

    pub(super) fn fail(&mut self, what: &str, detail: &str) {
        let l = self.label(what);
        self.t.fail(&l, detail);
    }

    pub(super) fn check(&mut self, what: &str, r: Result<String, String>) -> bool {
        match r {
            Ok(d) => {
                self.pass(what, &d);
                true
            }
            Err(e) => {
                self.fail(what, &e);
                false
            }
        }
    }

    pub(super) fn tool(&mut self) -> Result<PathBuf, String> {
        if let Some(t) = &self.tool {
            return Ok(t.clone());
        }
        let t = crate::build::build_mkstore_image(&self.s.root)?;
        self.tool = Some(t.clone());
        Ok(t)
    }

    /// Run mkstore-image with `args`: (success, stdout + stderr).
    pub(super) fn mkstore(&mut self, args: &[&str]) -> Result<(bool, String), String> {
        let tool = self.tool()?;
        let out = Command::new(&tool)
            .args(args)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .map_err(|e| format!("{}: {}", tool.display(), e))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }

    /// A disk image: the user's (from `var`, copied unless
    /// STORAGE_IN_PLACE=1) or one built by `mkstore-image ARGS -o FILE`
    /// (always built when `var` is empty).
    pub(super) fn image(&mut self, var: &str, file: &str, build: &[&str]) -> Result<PathBuf, String> {
        let out = self.dir.join(file);
        if let Some(user) = if var.is_empty() { None } else { crate::settings::input_path(var) } {
            // Opened here, so a missing or unreadable image is named with
            // the reason, before anything is built or booted.
            match std::fs::File::open(&user).and_then(|f| f.metadata()) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(format!("cannot use {} {}: not a regular file", var, user.display())),
                Err(e) => return Err(format!("cannot read {} {}: {}", var, user.display(), e)),
            }
            if env("STORAGE_IN_PLACE").as_deref() == Some("1") {
                println!("-- {}: {}={} booted in place (STORAGE_IN_PLACE=1)", self.name, var, user.display());
                return Ok(user);
            }
            std::fs::copy(&user, &out).map_err(|e| format!("copying {}: {}", user.display(), e))?;
            println!("-- {}: {}={} copied to {}", self.name, var, user.display(), out.display());
            return Ok(out);
        }
        let _ = std::fs::remove_file(&out);
        let o = out.to_str().ok_or("non-UTF-8 path")?.to_string();
        let mut args: Vec<&str> = build.to_vec();
        args.extend(["-o", &o]);
        let (ok, text) = self.mkstore(&args)?;
        if !ok {
            return Err(format!("mkstore-image {}: {}", args.join(" "), text.trim()));
        }
        println!("-- {}: built {} with mkstore-image {}", self.name, out.display(), build.join(" "));
        Ok(out)
    }

    pub(super) fn path_str(&self, p: &Path) -> Result<String, String> {
        p.to_str().map(String::from).ok_or_else(|| format!("{}: not UTF-8", p.display()))
    }

    /// `mkstore-image fsck IMG` must be clean: a verdict line.
    pub(super) fn fsck(&mut self, what: &str, img: &Path) -> bool {
        let p = match self.path_str(img) {
            Ok(p) => p,
            Err(e) => {
                self.fail(what, &e);
                return false;
            }
        };
        let r = self.mkstore(&["fsck", &p]).and_then(|(ok, text)| if ok { Ok(format!("mkstore-image fsck clean: {}", first_line(&text))) } else { Err(format!("mkstore-image fsck: {}", text.trim().replace('\n', " | "))) });
        self.check(what, r)
    }

    /// `mkstore-image extract IMG OUT` into a fresh OUT named `tag`.
    pub(super) fn extract(&mut self, img: &Path, tag: &str) -> Result<Extracted, String> {
        let out = self.dir.join(format!("extract-{}", tag));
        if out.is_dir() {
            std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {}", out.display(), e))?;
        } else if out.exists() {
            std::fs::remove_file(&out).map_err(|e| format!("{}: {}", out.display(), e))?;
        }
        let (i, o) = (self.path_str(img)?, self.path_str(&out)?);
        let (ok, text) = self.mkstore(&["extract", &i, &o])?;
        if !ok {
            return Err(format!("mkstore-image extract {}: {}", i, text.trim().replace('\n', " | ")));
        }
        Ok(Extracted::at(&out))
    }

    /// fsck and extract `img` after a boot, and the host's walk of the
    /// parts the guest holds.
    pub(super) fn host_state(&mut self, what: &str, img: &Path, fs: bool, kv: bool) -> Option<(Extracted, BTreeSet<String>)> {
        self.fsck(&format!("{}-fsck", what), img);
        match self.extract(img, what).and_then(|x| x.walk(fs, kv).map(|w| (x, w))) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(&format!("{}-extract", what), &e);
                None
            }
        }
    }

    /// Boot the checker processes of `manifest` with `disks`, streaming
    /// the serial log; with `kill`, SIGKILL QEMU at the planned point.
    pub(super) fn boot(&mut self, name: &str, manifest: &str, disks: &[Disk], kill: Option<KillPlan>, timeout_secs: u64) -> Result<BootOut, String> {
        self.boot_on(name, manifest, &Machine::default(), &disk_args(disks), kill, timeout_secs)
    }

    /// [`boot`](Self::boot) on `machine`, with `disk_args` (QEMU arguments)
    /// attaching its disks.
    pub(super) fn boot_on(&mut self, name: &str, manifest: &str, machine: &Machine, disk_args: &[String], kill: Option<KillPlan>, timeout_secs: u64) -> Result<BootOut, String> {
        let mpath = self.dir.join(format!("{}.manifest", name));
        std::fs::write(&mpath, manifest).map_err(|e| format!("{}: {}", mpath.display(), e))?;
        // Boots with the same manifest and command line share one boot
        // volume (the recovery scenario boots the same one twenty times).
        let cmdline = format!("exit_when_idle {}", self.cmdline);
        let key = format!("{}\n{}", cmdline, manifest);
        let esp = match self.volumes.get(&key) {
            Some(p) => p.clone(),
            None => {
                let mstr = self.path_str(&mpath)?;
                let volume = crate::volumes::userspace::volume(self.s, self.art, &mstr, cmdline.trim())?;
                let esp = self.dir.join(format!("{}.esp.img", name));
                volume.write(&esp)?;
                self.volumes.insert(key, esp.clone());
                esp
            }
        };
        let vars = self.dir.join(format!("{}.vars.fd", name));
        let mut cmd = qemu_command(self.s, machine, self.fw, &esp, &vars, disk_args)?;
        if self.icount {
            cmd.args(["-icount".to_string(), format!("shift={ICOUNT_SHIFT}")]);
        }
        // Kept until QEMU has exited (machine/tpm.rs: why a TPM at all).
        let _tpm = crate::machine::tpm::attach(&mut cmd)?;
        cmd.args(["-chardev", "stdio,id=serial0,signal=off", "-serial", "chardev:serial0", "-monitor", "none"]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let log_path = self.dir.join(format!("{}.log", name));
        let mut log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {}", log_path.display(), e))?;
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        println!("== {}/{}: qemu {} (log: {})", self.name, name, args.join(" "), log_path.display());
        let mut child = cmd.spawn().map_err(|e| format!("cannot start qemu-system-x86_64: {}", e))?;
        let _stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        spawn_reader(child.stdout.take().ok_or("qemu has no stdout")?, tx);
        let (etx, erx) = mpsc::channel();
        spawn_reader(child.stderr.take().ok_or("qemu has no stderr")?, etx);

        let started = Instant::now();
        let deadline = started + Duration::from_secs(timeout_secs);
        let mut lines = Vec::new();
        let mut stamps = Vec::new();
        let mut partial: Vec<u8> = Vec::new();
        let mut target: Option<u64> = None;
        let mut kill_at: Option<Instant> = None;
        let (mut killed, mut timed_out) = (false, false);
        let mut drain_until: Option<Instant> = None;
        let mut classifier = Classifier::default();
        loop {
            let now = Instant::now();
            let mut wake = drain_until.unwrap_or(deadline);
            if let Some(k) = kill_at {
                wake = wake.min(k);
            }
            if now >= wake {
                if let (Some(k), false) = (kill_at, killed) {
                    if now >= k {
                        // The power cut: SIGKILL, no clean exit.
                        let _ = child.kill();
                        killed = true;
                        drain_until = Some(now + Duration::from_secs(5));
                        let _ = writeln!(log, "runner: SIGKILL sent to QEMU");
                        continue;
                    }
                }
                if drain_until.is_none() {
                    timed_out = true;
                    let _ = child.kill();
                }
                break;
            }
            match rx.recv_timeout(wake - now) {
                Ok(Some(chunk)) => {
                    partial.extend_from_slice(&chunk);
                    while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                        let raw: Vec<u8> = partial.drain(..=pos).collect();
                        let line = strip_ansi(&String::from_utf8_lossy(&raw[..raw.len() - 1]));
                        println!("{}", line);
                        let _ = writeln!(log, "{}", line);
                        if let (Some(plan), false) = (kill, killed) {
                            if let Line { source: Source::Process(p), message: body, .. } = classifier.line(&line) {
                                if p == CHECKER {
                                    if let Some(r) = body.strip_prefix("recovery: resume after step ").and_then(|r| r.trim().parse::<u64>().ok()) {
                                        target = Some(r + plan.steps);
                                    }
                                    if target.is_some_and(|t| body == format!("step {} {}", t, plan.mark)) && kill_at.is_none() {
                                        kill_at = Some(Instant::now() + Duration::from_millis(plan.delay_ms));
                                    }
                                }
                            }
                        }
                        lines.push(line);
                        stamps.push(started.elapsed().as_secs_f64());
                    }
                }
                Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        if !partial.is_empty() {
            let line = strip_ansi(&String::from_utf8_lossy(&partial));
            println!("{}", line);
            let _ = writeln!(log, "{}", line);
            lines.push(line);
            stamps.push(started.elapsed().as_secs_f64());
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        let mut err = Vec::new();
        while let Ok(Some(chunk)) = erx.recv_timeout(Duration::from_millis(200)) {
            err.extend_from_slice(&chunk);
        }
        for l in String::from_utf8_lossy(&err).lines() {
            println!("qemu: {}", l);
            let _ = writeln!(log, "qemu: {}", l);
        }
        let exit = if timed_out || killed { None } else { status.code() };
        println!("-- {}/{}: {:.1} s{}", self.name, name, started.elapsed().as_secs_f64(), when(&lines, &stamps));
        Ok(BootOut { lines, stamps, exit, timed_out, killed })
    }

    /// The judgement of a boot that ran to its end: exit, mounts, each
    /// process exiting 0, the guest's own verdicts, nothing forbidden.
    pub(super) fn judge(&mut self, boot: &str, out: &BootOut, mounts: &[Mount], procs: &[&str], kernel_expect: &[&str]) {
        let what = format!("{}-exit", boot);
        if out.timed_out {
            self.fail(&what, "timed out (a timeout is a failure)");
        } else if out.exit == Some(EXIT_KERNEL_SUCCESS) {
            self.pass(&what, "exit status 33 (kernel success)");
        } else {
            self.fail(&what, &format!("exit status {:?}, want 33 (kernel success)", out.exit));
        }
        self.judge_lines(boot, out, mounts, procs, kernel_expect, true);
    }

    pub(super) fn judge_lines(&mut self, boot: &str, out: &BootOut, mounts: &[Mount], procs: &[&str], kernel_expect: &[&str], exits: bool) {
        let lines = classify(&out.lines);
        for m in mounts {
            let want = format!("storage: mounted {}: {} on {}", m.name, m.format.word(), m.device);
            let seen = Pattern::parse(&want).find(&lines).is_some();
            let w = format!("{}-mount-{}", boot, m.name);
            if seen {
                self.pass(&w, &format!("saw '{}'", want));
            } else {
                self.fail(&w, &format!("never saw '{}'", want));
            }
        }
        for k in kernel_expect {
            let seen = Pattern::parse(k).find(&lines).is_some();
            let w = format!("{}-kernel-line", boot);
            if seen {
                self.pass(&w, &format!("saw '{}'", k));
            } else {
                self.fail(&w, &format!("never saw '{}'", k));
            }
        }
        for bad in ["KERNEL PANIC", "EXCEPTION (unexpected)", "userspace not started", "EXCEPTION (in user mode)"] {
            if let Some(l) = Pattern::parse(bad).find(&lines) {
                let l = l.raw.to_string();
                self.fail(&format!("{}-forbidden", boot), &format!("saw '{}' in: {}", bad, l));
            }
        }
        if exits && self.icount {
            let w = format!("{}-interrupts-off", boot);
            match cap_call_irq_off_span(&out.lines).map(|ticks| ticks >> ICOUNT_SHIFT) {
                Ok(n) if n <= CAP_CALL_IRQ_OFF_BOUND => self.pass(&w, &format!("longest interrupts-off span in a capability call: {n} instructions, within the bound of {CAP_CALL_IRQ_OFF_BOUND}")),
                Ok(n) => self.fail(&w, &format!("longest interrupts-off span in a capability call: {n} instructions, over the bound of {CAP_CALL_IRQ_OFF_BOUND} (the kernel's 'interrupts off, capability calls' line names the call)")),
                Err(e) => self.fail(&w, &e),
            }
        }
        for p in procs {
            let v = count_verdicts(&lines, &[Source::Process(p.to_string())]);
            let (gp, gf) = (v.passed, v.failed);
            self.t.passed += gp;
            self.t.failed += gf;
            println!("-- {}/{}: {} reported {} passed, {} failed", self.name, boot, p, gp, gf);
            if exits {
                let w = format!("{}-{}-status", boot, p);
                let prefix = format!("process {} (pid ", p);
                match lines.iter().find(|l| l.source == Source::Kernel && l.raw.contains(&prefix) && (l.raw.contains(" exited with status ") || l.raw.contains(" killed"))) {
                    Some(l) if l.raw.ends_with("exited with status 0") => {
                        let l = l.raw.to_string();
                        self.pass(&w, &l)
                    }
                    Some(l) => {
                        let l = l.raw.to_string();
                        self.fail(&w, &l)
                    }
                    None => self.fail(&w, &format!("no line '{}N) exited with status 0'", prefix)),
                }
            }
        }
    }

    /// The walk `label` of `process` must equal the host's lines.
    pub(super) fn check_walk(&mut self, what: &str, out: &BootOut, process: &str, label: &str, host: &BTreeSet<String>) -> bool {
        let walks = guest_walks(&out.lines);
        let Some(w) = walks.iter().find(|w| w.process == process && w.label == label) else {
            self.fail(what, &format!("no walk '{}' from {} in the serial log", label, process));
            return false;
        };
        if !w.problems.is_empty() {
            let p = w.problems.join("; ");
            self.fail(what, &format!("walk '{}' is incomplete: {}", label, p));
            return false;
        }
        match compare(&w.lines, host) {
            Ok(n) => {
                self.pass(what, &format!("the guest's walk '{}' equals the host's extract ({} lines)", label, n));
                true
            }
            Err(diff) => {
                for d in &diff {
                    println!("   {}", d);
                }
                self.fail(what, &format!("the guest's walk '{}' differs from the host's extract (lines above)", label));
                false
            }
        }
    }
}

/// When the kernel started and the checker first spoke (host seconds).
pub(super) fn when(lines: &[String], stamps: &[f64]) -> String {
    let classified = classify(lines);
    let at = |f: &dyn Fn(&Line) -> bool| classified.iter().position(f).map(|i| stamps[i]);
    let kernel = at(&|l| l.source == Source::Kernel);
    let checker = at(&|l| l.source == Source::Process(CHECKER.to_string()));
    match (kernel, checker) {
        (Some(k), Some(c)) => format!(" (kernel at {:.1} s, storage-check at {:.1} s)", k, c),
        (Some(k), None) => format!(" (kernel at {:.1} s)", k),
        _ => String::new(),
    }
}

pub(super) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

pub(super) fn sha_file(p: &Path) -> Result<String, String> {
    std::fs::read(p).map(|b| sha_hex(&b)).map_err(|e| format!("{}: {}", p.display(), e))
}

/// A boot's timeout: SCENARIO_TIMEOUT, at least `min` seconds.
pub(super) fn timeout(r: &Run, min: u64) -> u64 {
    r.s.timeout_secs.max(min)
}
