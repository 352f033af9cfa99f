//! fs-churn: clients that make storage-fs-service objects and never close
//! them, for `make run-storage-services-churn`. The service must free an
//! object when the last capability to it is dropped or its holder dies;
//! `File.close` is never called here. Two roles, by the first argument:
//!
//! - `churn N`: in one session, N cycles of `Directory.create` of a file,
//!   `File.write` of a few bytes, `cap_drop` of the File (no close), and
//!   `Directory.remove`. Every cycle must succeed (a service that keeps
//!   every object runs into its per-session limit, `tooLarge`, after about
//!   4,096). It works in a subdirectory `churn` whose capability it holds
//!   to the end, so the service's live count does not touch 0 on every
//!   cycle. Progress every 10,000 cycles: the time taken (kernel clock)
//!   and how it splits between the four steps (TSC).
//! - `hold FILES LIVES`: a `restart: on-failure` client. Each life (which
//!   one, it learns from its own `control:` grant `me`: restarts + 1)
//!   creates FILES new files `hold/lK-I` and keeps every capability, then
//!   ends by exiting 1 without dropping anything (the kernel drops them at
//!   its death); life LIVES does the same with exit status 0, which ends
//!   the restarts. Every life must get all
//!   FILES. A process holds at most `MAX_CAPS_PER_PROCESS` (1,024)
//!   capabilities, so FILES stays below that; LIVES * FILES must be over
//!   the service's 4,096 objects per session for the test to mean anything
//!   (each life is the same manifest grant, so the same session).
//!
//! Each check prints `[PASS] name: ...` or `[FAIL] name: why`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::control::ProcessControl;
use capos_rt::{println, CallError, Clock, Directory, File, StartInfo};
use capos_rt::verdict::{fail, pass};

capos_rt::entry!(main);

/// Progress is printed every this many cycles.
const PROGRESS_EVERY: u64 = 10_000;

fn why(e: &CallError) -> String {
    match e {
        CallError::Object(o) => format!("{:?}: {}", o.code, o.message),
        other => format!("{other:?}"),
    }
}

fn arg(start: &StartInfo, i: usize) -> Option<u64> {
    start.args.get(i).and_then(|a| a.parse().ok())
}

/// Time stamps of one churn run: the TSC at each step (no syscall), made
/// nanoseconds by the kernel clock's reading over the same span.
struct Phases {
    /// TSC ticks spent in create, write, drop and remove.
    ticks: [u64; 4],
    tsc0: u64,
    ns0: u64,
}

impl Phases {
    const NAMES: [&'static str; 4] = ["create", "write", "drop", "remove"];

    /// The wall time since the start (kernel clock) and, per cycle over
    /// `cycles`, in all and in each step (its share of the TSC).
    fn per_cycle(&self, clock: &Clock, cycles: u64) -> String {
        let ns = clock.now().unwrap_or(0).saturating_sub(self.ns0);
        let tsc = capos_rt::syscall::rdtsc().saturating_sub(self.tsc0).max(1);
        let us = |t: u64| (t as u128 * ns as u128 / tsc as u128 / 1000 / cycles.max(1) as u128) as u64;
        let parts: Vec<String> = Self::NAMES.iter().zip(self.ticks).map(|(n, t)| format!("{n} {}", us(t))).collect();
        format!("{} ms ({} us/cycle: {} us)", ns / 1_000_000, ns / 1000 / cycles.max(1), parts.join(", "))
    }
}

/// `churn N`.
fn churn(start: &StartInfo, cycles: u64) -> bool {
    const NAME: &str = "churn-create-drop-remove";
    let (Some(fs), Some(clock)) = (start.cap("fs").map(Directory::new), start.cap("clock").map(Clock)) else {
        return fail(NAME, "needs fs and clock");
    };
    let dir = match fs.mkdir("churn").and_then(|()| fs.sub("churn")) {
        Ok(d) => d,
        Err(e) => return fail(NAME, &format!("mkdir/sub churn: {}", why(&e))),
    };
    let mut p = Phases { ticks: [0; 4], tsc0: capos_rt::syscall::rdtsc(), ns0: clock.now().unwrap_or(0) };
    let mut at = p.tsc0;
    // The TSC since the last mark, added to phase `i`.
    let mut mark = |p: &mut Phases, i: usize| {
        let now = capos_rt::syscall::rdtsc();
        p.ticks[i] += now.wrapping_sub(at);
        at = now;
    };
    for i in 0..cycles {
        let step = |p: &Phases, what: &str, e: CallError| {
            fail(NAME, &format!("cycle {} of {cycles}: {what}: {}; {i} cycles done in {}", i + 1, why(&e), p.per_cycle(&clock, i)))
        };
        let file: File = match dir.create("f") {
            Ok(f) => f,
            Err(e) => return step(&p, "create", e),
        };
        mark(&mut p, 0);
        if let Err(e) = file.write(0, b"churn") {
            return step(&p, "write", e);
        }
        mark(&mut p, 1);
        // The File is dropped here: cap_drop, never File.close.
        drop(file);
        mark(&mut p, 2);
        if let Err(e) = dir.remove("f") {
            return step(&p, "remove", e);
        }
        mark(&mut p, 3);
        if (i + 1) % PROGRESS_EVERY == 0 {
            println!("churn: {} cycles, {}", i + 1, p.per_cycle(&clock, i + 1));
        }
    }
    pass(NAME, &format!("{cycles} cycles in {}", p.per_cycle(&clock, cycles)))
}

/// `hold FILES LIVES`: a life that gets as far as its files never
/// returns: it exits with every capability still held.
fn hold(start: &StartInfo, files: u64, lives: u64) -> i32 {
    let (Some(fs), Some(me)) = (start.cap("fs").map(Directory::new), start.cap("me").map(ProcessControl)) else {
        fail("holder", "needs fs and me (its own control:)");
        return 0;
    };
    let life = match me.status() {
        Ok(s) => s.restarts as u64 + 1,
        Err(e) => {
            fail("holder", &format!("status: {}", why(&e)));
            return 0;
        }
    };
    let name = format!("holder-life-{life}");
    if life > lives {
        fail(&name, &format!("started {life} times, {lives} lives were planned"));
        return 0;
    }
    let dir = match fs.mkdir("hold") {
        Ok(()) => fs.sub("hold"),
        Err(e) if e.code() == Some(ErrorCode::AlreadyExists) => fs.sub("hold"),
        Err(e) => Err(e),
    };
    let dir = match dir {
        Ok(d) => d,
        Err(e) => {
            fail(&name, &format!("mkdir/sub hold: {}", why(&e)));
            return 0;
        }
    };
    let mut kept: Vec<File> = Vec::with_capacity(files as usize);
    let mut failed = None;
    for i in 0..files {
        match dir.create(&format!("l{life}-{i}")) {
            Ok(f) => kept.push(f),
            Err(e) => {
                failed = Some(format!("file {} of {files}: create: {}", i + 1, why(&e)));
                break;
            }
        }
    }
    println!("life {life}: {} files", kept.len());
    match failed {
        None => pass(&name, &format!("{files} new files held")),
        Some(w) => fail(&name, &w),
    };
    let status = if life == lives { 0 } else { 1 };
    println!("life {life} of {lives}: exiting {status} with {} files held", kept.len());
    // Exit without dropping anything (no destructor runs): the kernel
    // drops every capability this life holds.
    capos_rt::syscall::exit(status)
}

fn main(start: &StartInfo) -> i32 {
    match (start.args.first().map(String::as_str), arg(start, 1), arg(start, 2)) {
        (Some("churn"), Some(n), _) => i32::from(!churn(start, n)),
        (Some("hold"), Some(files), Some(lives)) => hold(start, files, lives),
        other => {
            fail("fs-churn", &format!("unknown role {other:?} (churn N, hold FILES LIVES)"));
            2
        }
    }
}
