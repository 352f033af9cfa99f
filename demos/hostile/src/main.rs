//! A process that misbehaves on purpose, one case at a time, and checks
//! that each gets the right error. It holds only a Console (and the
//! endpoint it exports); it ends with a deliberate page fault, which must
//! end only this process.
//!
//! Every argument of the call ABI is tried: handles, the packed call and
//! reply words, the params in the send buffer, bulk buffer pointers,
//! lengths and flags, reply tokens, the bulk registration.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use capos_abi::capos_capnp::console;
use capos_abi::interfaces;
use capos_abi::ipc::{CallWord, ReplyWord, BULK_READ, BULK_WRITE, IPC_AREA_ADDR, MAX_BULK_BYTES, RECV_OFFSET, SEND_OFFSET};
use capos_abi::message::{build_flat, clear};
use capos_abi::syscall as nr;
use capos_abi::{Handle, SysError};
use capos_rt::syscall::{self, raw};
use capos_rt::{println, Server, StartInfo};

capos_rt::entry!(main);

fn status(rax: u64) -> Option<SysError> {
    SysError::from_u64(rax)
}

fn expect(name: &str, got: (u64, u64), want: SysError) -> bool {
    // The send buffer may hold garbage we put there on purpose; the
    // runtime builds the println below in it and needs it zeroed.
    clear(&mut capos_rt::ipc::send_buffer(), capos_abi::limits::MAX_MESSAGE_BYTES);
    let ok = status(got.0) == Some(want);
    if ok {
        println!("[PASS] hostile-{}: refused with {:?}", name, want);
    } else {
        println!("[FAIL] hostile-{}: expected {:?}, got status {} ({:?})", name, want, got.0, status(got.0));
    }
    ok
}

/// Put a well-formed Console.writeLine params message in the send buffer;
/// its length.
fn good_params() -> usize {
    let mut send = capos_rt::ipc::send_buffer();
    clear(&mut send, capos_abi::limits::MAX_MESSAGE_BYTES);
    build_flat::<console::write_line_params::Owned, ()>(&mut send, |mut p| {
        p.set_line("hostile: this call is well formed");
        Ok(())
    })
    .expect("encode")
    .0
}

/// Put raw words in the send buffer (after clearing it).
fn raw_params(words: &[u64]) -> usize {
    let mut send = capos_rt::ipc::send_buffer();
    clear(&mut send, capos_abi::limits::MAX_MESSAGE_BYTES);
    for (i, w) in words.iter().enumerate() {
        send[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    words.len() * 8
}

/// cap_call with raw arguments.
fn call_raw(handle: u64, iface: u64, word: u64, bulk: u64, bulk_len: u64) -> (u64, u64) {
    // SAFETY: the point is to hand the kernel bad arguments; it must refuse
    // them. Valid pointers here point at our own buffers.
    unsafe { raw(nr::CAP_CALL, [handle, iface, word, bulk, bulk_len, 0]) }
}

fn word(method: u16, len: usize) -> u64 {
    CallWord { method, caps: 0, bulk: 0, len: len as u32 }.pack()
}

/// Params whose root is a chain of `depth` nested structs, by hand.
fn nested(depth: usize) -> Vec<u64> {
    let mut words = alloc::vec![(depth as u64 + 1) << 32];
    for i in 0..depth {
        words.push(if i + 1 == depth { 0 } else { 0x0001_0000_0000_0000 });
    }
    words.push(0);
    words
}

fn pass(name: &str, ok: bool, detail: core::fmt::Arguments) -> bool {
    clear(&mut capos_rt::ipc::send_buffer(), capos_abi::limits::MAX_MESSAGE_BYTES);
    println!("[{}] hostile-{}: {}", if ok { "PASS" } else { "FAIL" }, name, detail);
    ok
}

/// `endpoint_receive_timeout` on an endpoint of our own that nobody else
/// holds: nothing comes, so it must give up, and not before its time; a
/// notification that is there is taken at once; a deadline that passes
/// while nothing arrives is not lost (the kernel wakes us).
fn receive_timeouts(start: &StartInfo) -> bool {
    let Some(clock) = start.cap("clock").map(capos_rt::Clock) else {
        return pass("receive-timeout", false, format_args!("no clock granted"));
    };
    let now = || clock.now().unwrap_or(0);
    let ep = match syscall::endpoint_create() {
        Ok(h) => h,
        Err(e) => return pass("receive-timeout", false, format_args!("endpoint_create: {:?}", e)),
    };
    let mut ok = true;
    let mut server = Server::new(ep);
    // SAFETY (raw): plain numbers.
    ok &= expect("receive-timeout-on-non-endpoint", unsafe { raw(nr::ENDPOINT_RECEIVE_TIMEOUT, [Handle::new(99, 1).raw(), 1000, 0, 0, 0, 0]) }, SysError::InvalidHandle);
    let t0 = now();
    let r = server.receive_timeout(0);
    let spent = now().saturating_sub(t0);
    ok &= pass("receive-timeout-zero", r.as_ref().err().and_then(|e| e.sys()) == Some(SysError::TimedOut), format_args!("nothing queued: {:?} after {} us", r.err().map(|e| e.sys()), spent / 1000));
    for ms in [30u64, 120] {
        let t0 = now();
        let r = server.receive_timeout(ms * 1_000_000);
        let waited = now().saturating_sub(t0) / 1_000_000;
        // Never early; late by at most a few ticks (10 ms each) on a busy
        // host.
        let timed_out = r.as_ref().err().and_then(|e| e.sys()) == Some(SysError::TimedOut);
        ok &= pass("receive-timeout-waits", timed_out && waited >= ms && waited < ms + 1000, format_args!("{} ms asked, gave up after {} ms ({:?})", ms, waited, r.err().map(|e| e.sys())));
    }
    // A notification already there is taken, whatever the timeout.
    match server.mint_notified(9) {
        Ok(h) => {
            let _ = syscall::cap_drop(h);
            let r = server.receive_timeout(5_000_000_000);
            let got = r.as_ref().map(|c| c.envelope.is_no_senders() && c.badge() == 9).unwrap_or(false);
            ok &= pass("receive-timeout-takes-notification", got, format_args!("a dropped client's no-senders came first"));
        }
        Err(e) => ok &= pass("receive-timeout-takes-notification", false, format_args!("mint: {:?}", e)),
    }
    let _ = syscall::cap_drop(ep);
    ok
}

fn main(start: &StartInfo) -> i32 {
    let console = start.cap("console").expect("console").raw();
    let con = interfaces::CONSOLE;
    let mut ok = true;
    let len = good_params();
    let good = word(0, len);

    ok &= expect("invalid-handle", call_raw(Handle::new(99, 1).raw(), con, good, 0, 0), SysError::InvalidHandle);
    ok &= expect("null-handle", call_raw(0, con, good, 0, 0), SysError::InvalidHandle);
    // A number that is a live handle in other processes (slot 3, first
    // generation) but names nothing here.
    ok &= expect("foreign-handle-number", call_raw(Handle::new(3, 1).raw(), con, good, 0, 0), SysError::InvalidHandle);

    // A dropped handle: mint a client of our own endpoint, drop it, use it.
    let server = Server::new(start.endpoint("last").expect("endpoint"));
    match server.mint(5) {
        Ok(h) => {
            // Calling our own endpoint would wait for ourselves forever.
            ok &= expect("call-own-endpoint", call_raw(h.raw(), interfaces::PING, word(0, 0), 0, 0), SysError::InvalidArgument);
            ok &= syscall::cap_drop(h).is_ok();
            let len = good_params();
            ok &= expect("dropped-handle", call_raw(h.raw(), con, word(0, len), 0, 0), SysError::StaleHandle);
            // SAFETY: a plain number.
            ok &= expect("double-drop", unsafe { raw(nr::CAP_DROP, [h.raw(), 0, 0, 0, 0, 0]) }, SysError::StaleHandle);
        }
        Err(e) => {
            println!("[FAIL] hostile-dropped-handle: mint failed: {:?}", e);
            ok = false;
        }
    }

    // The packed call word.
    let len = good_params();
    ok &= expect("huge-message", call_raw(console, con, word(0, 1 << 30), 0, 0), SysError::MessageTooLarge);
    ok &= expect("too-many-caps", call_raw(console, con, good | 17 << 16, 0, 0), SysError::TooManyCaps);
    ok &= expect("unknown-bulk-flag", call_raw(console, con, good | 4 << 24, 0, 0), SysError::InvalidArgument);
    ok &= expect("bulk-length-without-flags", call_raw(console, con, good, 0x1000, 16), SysError::InvalidArgument);
    ok &= expect("stale-cap-in-transfer", {
        // SAFETY: writes our own header page.
        unsafe { ((IPC_AREA_ADDR) as *mut u64).write(Handle::new(77, 3).raw()) };
        call_raw(console, con, good | 1 << 16, 0, 0)
    }, SysError::InvalidHandle);

    // Bulk buffers: pointers and lengths.
    let rd = |flags: u8| CallWord { method: 0, caps: 0, bulk: flags, len: len as u32 }.pack();
    ok &= expect("bulk-in-kernel-memory", call_raw(console, con, rd(BULK_READ), 0xffff_ffff_8000_0000, 64), SysError::BadAddress);
    ok &= expect("bulk-in-direct-map", call_raw(console, con, rd(BULK_READ), 0xffff_8000_0000_1000, 64), SysError::BadAddress);
    ok &= expect("bulk-unmapped", call_raw(console, con, rd(BULK_READ), 0x0000_1000_0000_0000, 64), SysError::BadAddress);
    ok &= expect("bulk-null-page", call_raw(console, con, rd(BULK_READ), 0x10, 64), SysError::BadAddress);
    ok &= expect("bulk-overflowing-length", call_raw(console, con, rd(BULK_READ), 0xffff_ffff_ffff_ff00, 0x200), SysError::BadAddress);
    ok &= expect("bulk-wrapping-pointer", call_raw(console, con, rd(BULK_READ), 0x0000_7fff_ffff_f000, 0x2000), SysError::BadAddress);
    ok &= expect("bulk-too-large", call_raw(console, con, rd(BULK_READ), 0x1000, MAX_BULK_BYTES + 1), SysError::InvalidArgument);
    // The receive buffer is read-only to us: the kernel must not write it on our behalf.
    ok &= expect("bulk-write-into-read-only", call_raw(console, con, rd(BULK_WRITE), IPC_AREA_ADDR + RECV_OFFSET as u64, 64), SysError::BadAddress);
    // Our own send buffer is writable to us, but a bulk buffer there would
    // let the answer land in the message being built: refused like the
    // receive buffer, also when the buffer only reaches into the area.
    ok &= expect("bulk-over-own-send-area", call_raw(console, con, rd(BULK_WRITE), IPC_AREA_ADDR + SEND_OFFSET as u64, 64), SysError::BadAddress);
    ok &= expect("bulk-reaching-into-ipc-area", call_raw(console, con, rd(BULK_READ), IPC_AREA_ADDR - 4096, 4097), SysError::BadAddress);

    // Params in the send buffer.
    let len = good_params();
    ok &= expect("truncated-message", call_raw(console, con, word(0, len / 2 & !7), 0, 0), SysError::MalformedMessage);
    let n = raw_params(&[0xa5a5_a5a5_a5a5_a5a5; 8]);
    ok &= expect("garbage-message", call_raw(console, con, word(0, n), 0, 0), SysError::MalformedMessage);
    let n = raw_params(&[0xa5a5_a5a5_a5a5_a5a5; 8]);
    ok &= expect("unaligned-length", call_raw(console, con, word(0, n - 3), 0, 0), SysError::MalformedMessage);
    // The same deep chain is only refused because the Console is not a Ping
    // (control), and refused as malformed when it reaches the reader.
    let n = raw_params(&nested(64));
    ok &= expect("nesting-control", call_raw(console, interfaces::PING, word(0, n), 0, 0), SysError::UnknownInterface);
    ok &= expect("nested-past-limit", call_raw(console, con, word(0, n), 0, 0), SysError::MalformedMessage);
    let len = good_params();
    ok &= expect("wrong-ordinal", call_raw(console, con, word(7, len), 0, 0), SysError::UnknownMethod);
    ok &= expect("wrong-interface", call_raw(console, interfaces::PING, word(0, len), 0, 0), SysError::UnknownInterface);

    // SAFETY (all raw calls below): plain numbers.
    ok &= expect("unknown-syscall-0", unsafe { raw(0, [0; 6]) }, SysError::UnknownSyscall);
    ok &= expect("unknown-syscall-99", unsafe { raw(99, [0; 6]) }, SysError::UnknownSyscall);
    ok &= expect("receive-on-non-endpoint", unsafe { raw(nr::ENDPOINT_RECEIVE, [console, 0, 0, 0, 0, 0]) }, SysError::NotAnEndpoint);
    let rw = ReplyWord::new(0, 0).pack();
    ok &= expect("reply-with-bogus-token", unsafe { raw(nr::ENDPOINT_REPLY, [0xdead_beef, 0, rw, 0, 0, 0]) }, SysError::InvalidReplyToken);
    ok &= expect("reply-with-token-0", unsafe { raw(nr::ENDPOINT_REPLY, [0, 0, rw, 0, 0, 0]) }, SysError::InvalidReplyToken);
    ok &= expect("reply-word-high-bits", unsafe { raw(nr::ENDPOINT_REPLY, [1, 0, 1 << 50, 0, 0, 0]) }, SysError::InvalidArgument);
    // A plausible token: the witness (pid 2) is waiting on our endpoint,
    // but with a call we never received; its first call has sequence 1.
    let stale = capos_abi::ipc::ReplyToken { client: 2, seq: 1 }.pack();
    let ep = start.endpoint("last").expect("endpoint").raw();
    ok &= expect("reply-receive-stale-token", unsafe { raw(nr::ENDPOINT_REPLY_RECEIVE, [stale, ep, rw, 0, 0, 0]) }, SysError::InvalidReplyToken);
    ok &= expect("reply-receive-on-non-endpoint", unsafe { raw(nr::ENDPOINT_REPLY_RECEIVE, [stale, console, rw, 0, 0, 0]) }, SysError::NotAnEndpoint);
    ok &= expect("bulk-register-kernel-memory", unsafe { raw(nr::BULK_REGISTER, [0xffff_ffff_8000_0000, 4096, 0, 0, 0, 0]) }, SysError::BadAddress);
    ok &= expect("bulk-register-too-large", unsafe { raw(nr::BULK_REGISTER, [0x1000, MAX_BULK_BYTES + 1, 0, 0, 0, 0]) }, SysError::InvalidArgument);
    ok &= expect("bulk-register-read-only", unsafe { raw(nr::BULK_REGISTER, [IPC_AREA_ADDR + RECV_OFFSET as u64, 4096, 0, 0, 0, 0]) }, SysError::BadAddress);
    ok &= expect("bulk-register-own-send-area", unsafe { raw(nr::BULK_REGISTER, [IPC_AREA_ADDR + SEND_OFFSET as u64, 4096, 0, 0, 0, 0]) }, SysError::BadAddress);

    ok &= receive_timeouts(start);

    // Only what the manifest granted exists: try many handle values.
    let len = good_params();
    let mut reachable = Vec::new();
    for index in 0..64u32 {
        for generation in 1..4u32 {
            let h = Handle::new(index, generation).raw();
            let r = call_raw(h, con, word(0, len), 0, 0);
            if !matches!(status(r.0), Some(SysError::InvalidHandle) | Some(SysError::StaleHandle)) {
                reachable.push(h);
            }
        }
    }
    let own: Vec<u64> = start.caps.iter().chain(start.endpoints.iter()).map(|(_, h)| h.raw()).collect();
    if reachable.iter().all(|h| own.contains(h)) {
        println!("[PASS] hostile-only-granted-caps: of 192 handle values only its own {} answer", reachable.len());
    } else {
        println!("[FAIL] hostile-only-granted-caps: reached {:?}, owns {:?}", reachable, own);
        ok = false;
    }
    clear(&mut capos_rt::ipc::send_buffer(), capos_abi::limits::MAX_MESSAGE_BYTES);

    println!("hostile: {}; now a deliberate page fault", if ok { "all cases refused correctly" } else { "SOME CASES FAILED" });
    // SAFETY: deliberately faults; the kernel must end this process only.
    unsafe { core::ptr::write_volatile(0x10 as *mut u64, 1) };
    println!("[FAIL] hostile-page-fault: the write to the null page did not fault");
    1
}
