//! Judging a boot: the exit it must end with, the lines it must (and must
//! not) print, checks over its whole log, the disks the guest must have
//! read and written, and the guest's own verdicts; each verdict printed
//! (`[PASS] label: what`, `[FAIL] label: what`) and counted in a [`Tally`].
//! A timeout is always a failure.

pub mod figures;
pub mod icount;

use crate::machine::{describe_exit, EXIT_KERNEL_FAILURE, EXIT_KERNEL_SUCCESS, EXIT_LOADER_ERROR};
use crate::source::{classify, count_verdicts, Line, Pattern, Source};
use crate::volumes::blk::PreparedDisk;

/// How a boot is judged: the exit it must end with, the lines it must and
/// must not print, checks over its whole log, and its time limit.
pub struct Judgement {
    pub exit: Expect,
    /// Lines that must appear, each naming its source (crate::source::Pattern).
    pub expect: Vec<String>,
    /// Lines that must not appear.
    pub forbid: Vec<String>,
    /// Count the guest's own `[PASS]`/`[FAIL]` lines (and check the disks
    /// of known content it read and wrote).
    pub guest_verdicts: bool,
    /// Checks over the whole serial log (name, check): a count of lines,
    /// two figures that must agree. `Ok` says what was seen.
    pub checks: Vec<(&'static str, LogCheck)>,
    /// Check the `timers` wall clock against the host's UTC time.
    pub wall_clock: bool,
    /// Seconds the boot may take (`None`: SCENARIO_TIMEOUT).
    pub timeout: Option<u64>,
}

impl Judgement {
    /// Expecting `exit` and nothing else.
    pub fn new(exit: Expect) -> Judgement {
        Judgement { exit, expect: Vec::new(), forbid: Vec::new(), guest_verdicts: false, checks: Vec::new(), wall_clock: false, timeout: None }
    }
}

/// Verdicts collected while judging.
#[derive(Default)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
}

impl Tally {
    pub fn pass(&mut self, label: &str, what: &str) {
        self.passed += 1;
        println!("[PASS] {}: {}", label, what);
    }
    pub fn fail(&mut self, label: &str, what: &str) {
        self.failed += 1;
        println!("[FAIL] {}: {}", label, what);
    }
}

/// What a boot left: its serial log, how it ended, what it made.
pub struct Outcome {
    pub disks: Vec<PreparedDisk>,
    pub timeout_secs: u64,
    pub lines: Vec<String>,
    /// Host Unix time when each line arrived.
    pub stamps: Vec<i64>,
    pub exit: Option<i32>,
    pub timed_out: bool,
    /// The icount plugin's output file, if the boot loaded it.
    pub icount: Option<Result<String, String>>,
    /// What the Linux benchmark guest was made of.
    pub linux_description: Option<String>,
    /// Verdicts of the boot's host side (crate::boot::HostSide), by name.
    pub host: Vec<(String, Result<String, String>)>,
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

/// Judge `out` by `j`; the guest's verdicts count from `sources` only.
pub fn judge(label: &str, j: &Judgement, sources: &[Source], out: &Outcome, t: &mut Tally) {
    if out.timed_out {
        t.fail(label, &format!("timed out after {} s (a timeout is a failure)", out.timeout_secs));
    } else {
        let want = match j.exit {
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
    for (name, verdict) in &out.host {
        match verdict {
            Ok(what) => t.pass(label, &format!("host {name}: {what}")),
            Err(why) => t.fail(label, &format!("host {name}: {why}")),
        }
    }
    let lines = classify(&out.lines);
    for pattern in &j.expect {
        if Pattern::parse(pattern).find(&lines).is_some() {
            t.pass(label, &format!("saw '{}'", pattern));
        } else {
            t.fail(label, &format!("never saw '{}'", pattern));
        }
    }
    for pattern in &j.forbid {
        if let Some(l) = Pattern::parse(pattern).find(&lines) {
            t.fail(label, &format!("saw forbidden '{}' in: {}", pattern, l.raw));
        }
    }
    for (name, check) in &j.checks {
        match check(&out.lines) {
            Ok(seen) => t.pass(label, &format!("{name}: {seen}")),
            Err(why) => t.fail(label, &format!("{name}: {why}")),
        }
    }
    if j.guest_verdicts {
        check_disks(label, out, &lines, t);
    }
    if j.wall_clock {
        check_wall_clock(label, out, &lines, t);
    }
    if j.guest_verdicts {
        let v = count_verdicts(&lines, sources);
        if v.ignored > 0 {
            println!("-- {}: {} verdict lines from sources this scenario does not name were not counted", label, v.ignored);
        }
        t.passed += v.passed;
        t.failed += v.failed;
        println!("-- {}: guest reported {} passed, {} failed", label, v.passed, v.failed);
    }
}

/// The exit a boot must end with.
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

/// A check over every line of a boot's serial log.
pub type LogCheck = fn(&[String]) -> Result<String, String>;
