//! A process that misbehaves on purpose, one case at a time, and checks
//! that each gets the right error. It holds only a Console (and the
//! endpoint it exports); it ends with a deliberate page fault, which must
//! end only this process.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use capos_abi::helpers::console_write_line_call;
use capos_abi::syscall as nr;
use capos_abi::{Handle, SysError};
use capos_rt::syscall::{self, raw};
use capos_rt::{println, Server, StartInfo};

capos_rt::entry!(main);

fn status(rax: u64) -> Option<SysError> {
    SysError::from_u64(rax)
}

fn expect(name: &str, got: (u64, u64), want: SysError) -> bool {
    let ok = status(got.0) == Some(want);
    if ok {
        println!("[PASS] hostile-{}: refused with {:?}", name, want);
    } else {
        println!("[FAIL] hostile-{}: expected {:?}, got status {} ({:?})", name, want, got.0, status(got.0));
    }
    ok
}

/// cap_call with raw arguments.
fn call_raw(handle: u64, req: u64, req_len: u64, reply: u64, reply_len: u64) -> (u64, u64) {
    // SAFETY: the point is to hand the kernel bad arguments; it must refuse
    // them. Valid pointers here point at our own buffers.
    unsafe { raw(nr::CAP_CALL, [handle, req, req_len, reply, reply_len, 0]) }
}

/// A Call (to `interface`) whose params are a chain of `depth` nested
/// structs, encoded by hand.
fn nested_call(depth: usize, interface: u64) -> Vec<u8> {
    let mut words: Vec<u64> = Vec::new();
    words.push(0x0002_0002_0000_0000); // root: struct, offset 0, 2 data words, 2 pointers
    words.push(interface);
    words.push(0); // method 0
    words.push(0x0001_0000_0000_0004); // params: struct at +1 word, 0 data, 1 pointer
    words.push(0); // caps: null
    for i in 0..depth {
        words.push(if i + 1 == depth { 0 } else { 0x0001_0000_0000_0000 });
    }
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&(words.len() as u32).to_le_bytes());
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes
}

fn main(start: &StartInfo) -> i32 {
    let console = start.cap("console").expect("console").raw();
    let good = console_write_line_call("hostile: this call is well formed").expect("encode");
    let mut reply = [0u8; 4096];
    let rp = reply.as_mut_ptr() as u64;
    let mut ok = true;

    ok &= expect("invalid-handle", call_raw(Handle::new(99, 1).raw(), good.as_ptr() as u64, good.len() as u64, rp, 4096), SysError::InvalidHandle);
    ok &= expect("null-handle", call_raw(0, good.as_ptr() as u64, good.len() as u64, rp, 4096), SysError::InvalidHandle);
    // A number that is a live handle in other processes (slot 3, first
    // generation) but names nothing here.
    ok &= expect("foreign-handle-number", call_raw(Handle::new(3, 1).raw(), good.as_ptr() as u64, good.len() as u64, rp, 4096), SysError::InvalidHandle);

    // A dropped handle: mint a client of our own endpoint, drop it, use it.
    let server = Server::new(start.endpoint("last").expect("endpoint"));
    match server.mint(5) {
        Ok(h) => {
            let dropped = syscall::cap_drop(h);
            ok &= dropped.is_ok();
            ok &= expect("dropped-handle", call_raw(h.raw(), good.as_ptr() as u64, good.len() as u64, rp, 4096), SysError::StaleHandle);
            // SAFETY: a plain number.
            ok &= expect("double-drop", unsafe { raw(nr::CAP_DROP, [h.raw(), 0, 0, 0, 0, 0]) }, SysError::StaleHandle);
        }
        Err(e) => {
            println!("[FAIL] hostile-dropped-handle: mint failed: {:?}", e);
            ok = false;
        }
    }

    ok &= expect("kernel-pointer", call_raw(console, 0xffff_ffff_8000_0000, 64, rp, 4096), SysError::BadAddress);
    ok &= expect("kernel-reply-pointer", call_raw(console, good.as_ptr() as u64, good.len() as u64, 0xffff_8000_0000_1000, 4096), SysError::BadAddress);
    ok &= expect("unmapped-pointer", call_raw(console, 0x0000_1000_0000_0000, 64, rp, 4096), SysError::BadAddress);
    ok &= expect("null-page-pointer", call_raw(console, 0x10, 64, rp, 4096), SysError::BadAddress);
    ok &= expect("overflowing-length", call_raw(console, 0xffff_ffff_ffff_ff00, 0x200, rp, 4096), SysError::BadAddress);
    ok &= expect("overflowing-reply-length", call_raw(console, good.as_ptr() as u64, good.len() as u64, rp, u64::MAX), SysError::BadAddress);
    ok &= expect("huge-message", call_raw(console, good.as_ptr() as u64, 1 << 30, rp, 4096), SysError::MessageTooLarge);

    let truncated = &good[..good.len() / 2 & !7];
    ok &= expect("truncated-message", call_raw(console, truncated.as_ptr() as u64, truncated.len() as u64, rp, 4096), SysError::MalformedMessage);
    let garbage = [0xa5u8; 64];
    ok &= expect("garbage-message", call_raw(console, garbage.as_ptr() as u64, garbage.len() as u64, rp, 4096), SysError::MalformedMessage);
    // The same shape 4 deep passes message validation and is only refused
    // because the Console is not a Ping (UnknownInterface); 64 deep is
    // refused before that, by the nesting limit.
    let ping = capos_abi::interfaces::PING;
    let shallow = nested_call(4, ping);
    let deep = nested_call(64, ping);
    ok &= expect("nesting-control", call_raw(console, shallow.as_ptr() as u64, shallow.len() as u64, rp, 4096), SysError::UnknownInterface);
    ok &= expect("nested-past-limit", call_raw(console, deep.as_ptr() as u64, deep.len() as u64, rp, 4096), SysError::MalformedMessage);

    let wrong_method = capos_abi::message::encode_call::<capos_abi::capos_capnp::console::write_line_params::Owned>(
        capos_abi::interfaces::CONSOLE, 7, &[], |mut p| { p.set_line("x"); Ok(()) }).expect("encode");
    ok &= expect("wrong-ordinal", call_raw(console, wrong_method.as_ptr() as u64, wrong_method.len() as u64, rp, 4096), SysError::UnknownMethod);
    let wrong_iface = capos_abi::helpers::ping_call(1).expect("encode");
    ok &= expect("wrong-interface", call_raw(console, wrong_iface.as_ptr() as u64, wrong_iface.len() as u64, rp, 4096), SysError::UnknownInterface);
    ok &= expect("reply-too-small", call_raw(console, good.as_ptr() as u64, good.len() as u64, rp, 8), SysError::BufferTooSmall);
    // SAFETY: plain numbers.
    ok &= expect("unknown-syscall-0", unsafe { raw(0, [0; 6]) }, SysError::UnknownSyscall);
    ok &= expect("unknown-syscall-99", unsafe { raw(99, [0; 6]) }, SysError::UnknownSyscall);
    ok &= expect("receive-on-non-endpoint", unsafe { raw(nr::ENDPOINT_RECEIVE, [console, rp, 4096, 0, 0, 0]) }, SysError::NotAnEndpoint);
    ok &= expect("reply-with-bogus-token", unsafe { raw(nr::ENDPOINT_REPLY, [0xdead_beef, good.as_ptr() as u64, good.len() as u64, 0, 0, 0]) }, SysError::InvalidReplyToken);

    // Only what the manifest granted exists: try many handle values.
    let mut reachable = Vec::new();
    for index in 0..64u32 {
        for generation in 1..4u32 {
            let h = Handle::new(index, generation).raw();
            let r = call_raw(h, good.as_ptr() as u64, good.len() as u64, rp, 4096);
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

    println!("hostile: {}; now a deliberate page fault", if ok { "all cases refused correctly" } else { "SOME CASES FAILED" });
    // SAFETY: deliberately faults; the kernel must end this process only.
    unsafe { core::ptr::write_volatile(0x10 as *mut u64, 1) };
    println!("[FAIL] hostile-page-fault: the write to the null page did not fault");
    1
}
