//! fs-hostile: `File.read` calls whose bulk buffer the server cannot write
//! into, for `make run-storage-services-hostile`. One binary, three roles,
//! chosen by the first argument:
//!
//! - `service CASE`: through its own session of storage-fs-service (`fs`),
//!   create a file with [`CONTENT_BYTES`] bytes, read them back into a good
//!   buffer (the control: the file has bytes to send), then call
//!   `File.read` with a bulk buffer (`BULK_WRITE`, [`BAD_LEN`] bytes) that
//!   is CASE:
//!   - `read-only-page`: a page of this program's `.rodata` ([`RO_PAGE`]),
//!     mapped read-only;
//!   - `unmapped`: [`UNMAPPED`], an address in the user half that nothing
//!     maps;
//!   - `recv-area`: this process's own IPC receive buffer
//!     (`IPC_AREA_ADDR + RECV_OFFSET`), mapped read-only to it.
//!
//!   The call must fail with the syscall error `badAddress`, within
//!   [`PROMPT_MS`] of the kernel's clock, and the session must still answer
//!   a good read afterwards. Each case runs in a process of its own, so a
//!   case whose call never returns does not hide the others.
//! - `kernel`: the same three buffers on `File.read` of the kernel's own
//!   File (`fs` is a `kernel:fs:` grant), which must give the same error.
//! - `busy`: a second client of storage-fs-service that writes and reads
//!   back its own file in a loop while the hostile clients run, until every
//!   process it holds a `wait-*` control for has ended (and it has done at
//!   least [`BUSY_MIN_ROUNDS`] rounds), or [`BUSY_LIMIT_MS`] pass. Every call
//!   must be answered, with the bytes written.
//!
//! Each check prints `[PASS] name: ...` or `[FAIL] name: why`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::capos_capnp::file;
use capos_abi::interfaces::{self, file_method};
use capos_abi::ipc::{CallWord, BULK_WRITE, IPC_AREA_ADDR, RECV_OFFSET};
use capos_abi::message::{build_flat, clear};
use capos_rt::control::ProcessControl;
use capos_rt::syscall::{self, Failure};
use capos_rt::{println, Clock, Directory, File, StartInfo, SysError};
use capos_rt::verdict::{fail, pass};

capos_rt::entry!(main);

/// Bytes of the file each client reads (the server would send them all).
const CONTENT_BYTES: usize = 1000;
/// Bytes of the bad bulk buffer offered.
const BAD_LEN: u64 = 4096;
/// An address in the user half that no program, stack, IPC area or
/// StartInfo mapping comes near (programs link at 0x400000, the IPC area
/// is at 0x7ffd_0000_0000 and the stack and StartInfo above it).
const UNMAPPED: u64 = 0x0000_1000_0000_0000;
/// How long a refused call may take, by the kernel's wall clock. The
/// refusal is expected at call time (microseconds); this bound leaves room
/// for a loaded host under TCG, and a call that never returns never meets it.
const PROMPT_MS: u64 = 5_000;
/// Rounds the busy client completes at least.
const BUSY_MIN_ROUNDS: u32 = 100;
/// How long the busy client waits for the hostile clients to end.
const BUSY_LIMIT_MS: u64 = 30_000;
/// What every byte of [`RO_PAGE`] holds (and must still hold).
const RO_BYTE: u8 = 0xa5;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// A page of `.rodata`: the loader maps it read-only (demos/user.ld puts
/// `.rodata` in its own R segment).
static RO_PAGE: Page = Page([RO_BYTE; 4096]);

/// The three bad buffers: (case name, address).
fn cases() -> [(&'static str, u64); 3] {
    [
        ("read-only-page", RO_PAGE.0.as_ptr() as u64),
        ("unmapped", UNMAPPED),
        ("recv-area", IPC_AREA_ADDR + RECV_OFFSET as u64),
    ]
}

fn content(seed: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| ((j as u32).wrapping_mul(31).wrapping_add(seed.wrapping_mul(7)) % 251) as u8).collect()
}

fn now_ns(clock: &Clock) -> u64 {
    clock.now().unwrap_or(0)
}

/// `File.read(0, BAD_LEN)` with the bulk buffer `(addr, BAD_LEN)` offered
/// for the answer, through the raw syscall (the typed client takes only a
/// buffer of our own).
fn read_into(file: &File, addr: u64) -> Result<(u32, u64), Failure> {
    let mut send = capos_rt::ipc::send_buffer();
    let len = build_flat::<file::read_params::Owned, ()>(&mut send, |mut p| {
        p.set_offset(0);
        p.set_length(BAD_LEN as u32);
        Ok(())
    })
    .map(|(n, ())| n)
    .unwrap_or(0);
    let word = CallWord { method: file_method::READ, caps: 0, bulk: BULK_WRITE, len: len as u32 };
    let r = syscall::cap_call(file.handle(), interfaces::FILE, word, (addr, BAD_LEN));
    clear(&mut send, len);
    drop(send);
    r.map(|(reply, bulk)| (reply.len, bulk))
}

/// A file `name` in `dir` holding `data`, read back through a good bulk
/// buffer (the control).
fn prepared(dir: &Directory, name: &str, data: &[u8]) -> Result<File, String> {
    let f = match dir.create(name) {
        Ok(f) => f,
        Err(_) => dir.open(name).map_err(|e| format!("open {name}: {e:?}"))?,
    };
    f.write_bulk(0, data).map_err(|e| format!("write {name}: {e:?}"))?;
    good_read(&f, data)?;
    Ok(f)
}

fn good_read(f: &File, data: &[u8]) -> Result<(), String> {
    let mut buf = alloc::vec![0u8; BAD_LEN as usize];
    let n = f.read_bulk(0, &mut buf).map_err(|e| format!("a good read failed: {e:?}"))?;
    if buf[..n] != *data {
        return Err(format!("a good read returned {n} bytes, not the {} written", data.len()));
    }
    Ok(())
}

/// One bad read on `f`: badAddress, promptly, nothing written, and the
/// file still answers a good read.
fn bad_read(verdict: &str, clock: &Clock, f: &File, case: &str, addr: u64, data: &[u8]) -> bool {
    println!("{verdict}: File.read with its bulk buffer at {addr:#x} ({case}), {BAD_LEN} bytes");
    let t0 = now_ns(clock);
    let r = read_into(f, addr);
    let ms = now_ns(clock).saturating_sub(t0) / 1_000_000;
    let mut wrong = Vec::new();
    match r {
        Err(e) if e.is(SysError::BadAddress) => {}
        other => wrong.push(format!("expected the syscall to fail with BadAddress, got {other:?}")),
    }
    if ms > PROMPT_MS {
        wrong.push(format!("it took {ms} ms (at most {PROMPT_MS})"));
    }
    // SAFETY: reads a static through a volatile pointer (the kernel must
    // not have written it; the compiler may not assume it did not).
    let ro_intact = (0..RO_PAGE.0.len()).all(|i| unsafe { core::ptr::read_volatile(RO_PAGE.0.as_ptr().add(i)) } == RO_BYTE);
    if !ro_intact {
        wrong.push("the read-only page was written".into());
    }
    if let Err(e) = good_read(f, data) {
        wrong.push(format!("afterwards: {e}"));
    }
    if wrong.is_empty() {
        pass(verdict, &format!("badAddress after {ms} ms"))
    } else {
        fail(verdict, &wrong.join("; "))
    }
}

/// `service CASE`: one bad read through storage-fs-service.
fn service(start: &StartInfo, clock: &Clock, case: &str) -> bool {
    let verdict = format!("fs-service-read-into-{case}");
    let Some(&(_, addr)) = cases().iter().find(|(c, _)| *c == case) else {
        return fail(&verdict, &format!("unknown case {case:?} (read-only-page, unmapped, recv-area)"));
    };
    let Some(fs) = start.cap("fs").map(Directory::new) else { return fail(&verdict, "needs fs") };
    let data = content(case.len() as u32, CONTENT_BYTES);
    match prepared(&fs, &format!("hostile-{case}.txt"), &data) {
        Ok(f) => bad_read(&verdict, clock, &f, case, addr, &data),
        Err(why) => fail(&verdict, &why),
    }
}

/// `kernel`: the three bad reads on the kernel's own File.
fn kernel(start: &StartInfo, clock: &Clock) -> bool {
    let Some(fs) = start.cap("fs").map(Directory::new) else { return fail("kernel-file", "needs fs") };
    let data = content(3, CONTENT_BYTES);
    let f = match prepared(&fs, "hostile-kernel.txt", &data) {
        Ok(f) => f,
        Err(why) => return fail("kernel-file", &why),
    };
    let mut ok = true;
    for (case, addr) in cases() {
        ok &= bad_read(&format!("kernel-file-read-into-{case}"), clock, &f, case, addr, &data);
    }
    ok
}

/// `busy`: keep being served while the hostile clients run.
fn busy(start: &StartInfo, clock: &Clock) -> bool {
    let Some(fs) = start.cap("fs").map(Directory::new) else { return fail("busy-served-throughout", "needs fs") };
    let watched: Vec<(&str, ProcessControl)> =
        start.caps.iter().filter_map(|(n, h)| n.strip_prefix("wait-").map(|p| (p, ProcessControl(*h)))).collect();
    let f = match fs.create("busy.txt") {
        Ok(f) => f,
        Err(e) => return fail("busy-served-throughout", &format!("create busy.txt: {e:?}")),
    };
    let t0 = now_ns(clock);
    let (mut rounds, mut answered) = (0u32, 0u64);
    let mut buf = alloc::vec![0u8; 4096];
    let still_running = |watched: &[(&str, ProcessControl)]| -> Vec<String> {
        watched.iter().filter(|(_, c)| c.status().map(|s| s.running).unwrap_or(true)).map(|(n, _)| String::from(*n)).collect()
    };
    loop {
        let data = content(rounds, 64 + (rounds as usize * 97) % 4000);
        let r = f.write_bulk(0, &data).and_then(|_| f.read_bulk(0, &mut buf[..data.len()]));
        match r {
            Ok(n) if buf[..n] == data[..] => answered += 2,
            Ok(n) => return fail("busy-served-throughout", &format!("round {rounds}: read back {n} bytes that differ from the {} written", data.len())),
            Err(e) => return fail("busy-served-throughout", &format!("round {rounds}: {e:?}")),
        }
        rounds += 1;
        if rounds < BUSY_MIN_ROUNDS {
            continue;
        }
        let ms = now_ns(clock).saturating_sub(t0) / 1_000_000;
        let running = still_running(&watched);
        if running.is_empty() || ms > BUSY_LIMIT_MS {
            println!("busy: {rounds} write/read rounds in {ms} ms; hostile clients still running: {running:?}");
            let served = pass("busy-served-throughout", &format!("{answered} calls answered, every write read back"));
            let ended = if running.is_empty() {
                pass("hostile-clients-ended", &format!("all {} ended while busy was served", watched.len()))
            } else {
                fail("hostile-clients-ended", &format!("{} still blocked after {ms} ms: {}", running.len(), running.join(", ")))
            };
            return served && ended;
        }
    }
}

fn main(start: &StartInfo) -> i32 {
    let Some(clock) = start.cap("clock").map(Clock) else {
        println!("[FAIL] fs-hostile: needs clock");
        return 2;
    };
    let ok = match (start.args.first().map(String::as_str), start.args.get(1).map(String::as_str)) {
        (Some("service"), Some(case)) => service(start, &clock, case),
        (Some("kernel"), _) => kernel(start, &clock),
        (Some("busy"), _) => busy(start, &clock),
        other => fail("fs-hostile", &format!("unknown role {other:?} (service CASE, kernel, busy)")),
    };
    if ok {
        0
    } else {
        1
    }
}
