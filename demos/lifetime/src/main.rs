//! Process lifetime and supervision (`make run-process-lifetime`). One
//! binary, several roles, chosen by the first argument:
//!
//! - `serve`: a `Ping` server meant to be restarted. `ping(0)` answers this
//!   instance's id (its start time, never 0), `ping(CRASH)` faults while
//!   holding the call, anything else is echoed.
//! - `drive ROUNDS`: holds the server's endpoint and its `control:`. Odd
//!   rounds kill the server through `ProcessControl.kill`, even rounds make
//!   it fault with a call in flight (which must fail with `PeerGone`); after
//!   each, the same capability must reach a new instance. It prints the
//!   kernel's free frames after round 1 and at the end, with the kernel
//!   heap's share of each apart (its growth is not a leak).
//!   First it waits until every process it holds a `wait-*` control for
//!   has ended, so their memory is not in either figure.
//! - `drop-handle`: serves nothing: lets its client queue a call, then
//!   drops its receive handle and exits 0.
//! - `drop-client`: calls the `drop-handle` server twice: the queued call
//!   and the later one must both fail with `PeerGone`.
//! - `exit0`: exits 0 (restart: on-failure must not restart it).
//! - `crash`: faults at once (restart: on-failure max N stops after N).
#![no_std]
#![no_main]

extern crate alloc;

use capos_abi::capos_capnp::ping;
use capos_abi::interfaces::{self, ping_method};
use capos_abi::small_struct::{self, u64_result};
use capos_abi::SysError;
use capos_rt::control::ProcessControl;
use capos_rt::syscall::{cap_drop, rdtsc, yield_now};
use capos_rt::{println, Answer, Incoming, PingClient, Server, StartInfo};

capos_rt::entry!(main);

/// `ping(CRASH)`: the server faults with the call in flight.
const CRASH: u64 = 0xdead;

fn main(start: &StartInfo) -> i32 {
    match start.args.first().map(|s| s.as_str()) {
        Some("serve") => serve(start),
        Some("drive") => drive(start),
        Some("drop-handle") => drop_handle(start),
        Some("drop-client") => drop_client(start),
        Some("exit0") => 0,
        Some("crash") => {
            overflow(1);
            1
        }
        other => {
            println!("unknown role {:?}", other);
            2
        }
    }
}

/// A deliberate fault without `unsafe`: recurse until the user stack's
/// guard page.
fn overflow(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    if frame[0] == 0 {
        return 0; // never: depth starts at 1 (keeps the recursion lint quiet)
    }
    overflow(frame[0] + 1).wrapping_add(frame[63])
}

fn answer(call: &Incoming, instance: u64) -> Result<Answer<'static>, capos_rt::CallError> {
    if (call.interface_id(), call.method_id()) != (interfaces::PING, ping_method::PING) {
        return Answer::small(&u64_result::ok(u64::MAX), u64_result::PTRS);
    }
    let v = match small_struct::read(call.raw()) {
        Some(s) => s.word(0),
        None => call.params::<ping::ping_params::Owned>()?.get_value(),
    };
    match v {
        0 => Answer::small(&u64_result::ok(instance), u64_result::PTRS),
        CRASH => {
            overflow(1);
            unreachable!()
        }
        v => Answer::small(&u64_result::ok(v), u64_result::PTRS),
    }
}

fn serve(start: &StartInfo) -> i32 {
    let Some(h) = start.endpoint("svc") else {
        println!("no endpoint 'svc'");
        return 1;
    };
    let instance = rdtsc() | 1;
    let mut server = Server::new(h);
    let mut next = server.receive();
    loop {
        let call = match next {
            Ok(c) => c,
            Err(e) => {
                println!("receive failed: {:?}", e);
                return 1;
            }
        };
        match answer(&call, instance) {
            Ok(a) => next = server.reply_receive(call.reply_token(), a),
            Err(e) => {
                println!("bad call: {:?}", e);
                return 1;
            }
        }
    }
}

fn verdict(ok: bool, name: &str, detail: &str) -> bool {
    if ok {
        println!("[PASS] {name}");
    } else {
        println!("[FAIL] {name}: {detail}");
    }
    ok
}

fn drive(start: &StartInfo) -> i32 {
    let (Some(srv), Some(ctl)) = (start.cap("server"), start.cap("srvctl")) else {
        println!("[FAIL] lifetime-driver: needs grants 'server' and 'srvctl'");
        return 1;
    };
    let rounds: u32 = start.args.get(1).and_then(|r| r.parse().ok()).unwrap_or(200);
    let (srv, ctl) = (PingClient(srv), ProcessControl(ctl));
    for (name, h) in start.caps.iter().filter(|(n, _)| n.starts_with("wait-")) {
        let other = ProcessControl(*h);
        let mut spins = 0u32;
        while other.status().is_ok_and(|s| s.running) {
            spins += 1;
            if spins > 1_000_000 {
                println!("[FAIL] lifetime-driver: {name} never ended");
                return 1;
            }
            yield_now();
        }
    }
    let mut instance = match srv.ping(0) {
        Ok(i) => i,
        Err(e) => {
            println!("[FAIL] lifetime-first-call: {:?}", e);
            return 1;
        }
    };
    let first = ctl.status();
    let (mut steady_frames, mut steady_heap) = (0, 0);
    let (mut peer_gone, mut killed) = (0u32, 0u32);
    let mut problem: Option<alloc::string::String> = None;
    for round in 1..=rounds {
        if round % 2 == 1 {
            match ctl.kill() {
                Ok(()) => killed += 1,
                Err(e) => problem = Some(alloc::format!("round {round}: kill failed: {:?}", e)),
            }
        } else {
            match srv.ping(CRASH) {
                Err(e) if e.sys() == Some(SysError::PeerGone) => peer_gone += 1,
                other => problem = Some(alloc::format!("round {round}: the call in flight at the crash answered {:?}, not PeerGone", other)),
            }
        }
        // The same capability reaches the new instance.
        match srv.ping(0) {
            Ok(id) if id != instance => instance = id,
            other => problem = Some(alloc::format!("round {round}: after the restart ping(0) answered {:?} (old instance {instance:#x})", other)),
        }
        match ctl.status() {
            Ok(s) if s.running && s.restarts == round => {
                if round == 1 {
                    steady_frames = s.free_frames;
                    steady_heap = s.heap_frames;
                }
            }
            other => problem = Some(alloc::format!("round {round}: status {:?}", other)),
        }
        if problem.is_some() {
            break;
        }
    }
    // On several CPUs the last dead instance's kernel stack is freed only
    // once the CPU that ran it has switched away, which may be after this
    // status (a clean-clone run with 4 CPUs and a build beside it saw
    // exactly one stack, 8 frames, short). So the end count is read until
    // it is back, for up to about a second (a few timer ticks of the
    // other CPUs): a leak (a frame or more per restart, about 200 short)
    // never gets back.
    let mut end = ctl.status();
    let since = rdtsc();
    while rdtsc().wrapping_sub(since) < 3_000_000_000 {
        match &end {
            Ok(s) if steady_frames != 0 && s.free_frames < steady_frames => {
                yield_now();
                end = ctl.status();
            }
            _ => break,
        }
    }
    let end_frames = end.as_ref().map(|s| s.free_frames).unwrap_or(0);
    let end_heap = end.as_ref().map(|s| s.heap_frames).unwrap_or(0);
    println!(
        "restarts: {} ({} killed, {} crashed with a call in flight); first status {:?}",
        end.as_ref().map(|s| s.restarts).unwrap_or(0),
        killed,
        peer_gone,
        first
    );
    println!("free frames: steady {} end {}", steady_frames, end_frames);
    println!("kernel heap frames (counted as free): after round 1 {} end {}", steady_heap, end_heap);
    let mut ok = verdict(problem.is_none(), "lifetime-restarts-serve-through-the-same-capability", problem.as_deref().unwrap_or(""));
    ok &= verdict(peer_gone == rounds / 2, "lifetime-call-in-flight-gets-peer-gone", "not every crash round saw PeerGone");
    // At least as many free at the end as after round 1: a leak of one
    // frame per restart would be ~199 short. More is not a leak: on several
    // CPUs round 1's count may catch the dead instance's kernel stack
    // before the CPU that ran it has switched away and freed it (a
    // clean-clone run with 4 CPUs saw 8 more free at the end than then).
    ok &= verdict(
        steady_frames != 0 && end_frames >= steady_frames,
        "lifetime-no-frame-leaks",
        &alloc::format!("{} frames after round 1, {} at the end", steady_frames, end_frames),
    );
    if ok {
        0
    } else {
        1
    }
}

fn drop_handle(start: &StartInfo) -> i32 {
    let Some(h) = start.endpoint("svc") else {
        println!("no endpoint 'svc'");
        return 1;
    };
    // Let the client run and queue its call (we are not receiving).
    for _ in 0..8 {
        yield_now();
    }
    match cap_drop(h) {
        Ok(()) => 0,
        Err(e) => {
            println!("cap_drop failed: {:?}", e);
            1
        }
    }
}

fn drop_client(start: &StartInfo) -> i32 {
    let Some(h) = start.cap("server") else {
        println!("[FAIL] drop-client: no grant 'server'");
        return 1;
    };
    let srv = PingClient(h);
    let queued = srv.ping(7);
    let mut ok = verdict(
        matches!(&queued, Err(e) if e.sys() == Some(SysError::PeerGone)),
        "dropped-receive-handle-fails-the-queued-call",
        &alloc::format!("{:?}", queued),
    );
    let later = srv.ping(8);
    ok &= verdict(
        matches!(&later, Err(e) if e.sys() == Some(SysError::PeerGone)),
        "dropped-receive-handle-fails-later-calls",
        &alloc::format!("{:?}", later),
    );
    if ok {
        0
    } else {
        1
    }
}
