//! A client of `pong` (a userspace server) and of the kernel's Ping. With
//! `--bench N` it also measures N null calls on each.
#![no_std]
#![no_main]

extern crate alloc;

use capos_rt::syscall::rdtsc;
use capos_rt::{println, PingClient, StartInfo};

capos_rt::entry!(main);

fn check(name: &str, ok: bool, detail: alloc::string::String) -> bool {
    if ok {
        println!("[PASS] {}: {}", name, detail);
    } else {
        println!("[FAIL] {}: {}", name, detail);
    }
    ok
}

fn bench(label: &str, p: PingClient, n: u64) -> bool {
    // Warm up, then time n round trips in TSC cycles.
    for i in 0..16 {
        if p.ping(i).is_err() {
            return false;
        }
    }
    let t0 = rdtsc();
    for i in 0..n {
        match p.ping(i) {
            Ok(v) if v == i => {}
            other => {
                println!("bench: {} failed at call {}: {:?}", label, i, other);
                return false;
            }
        }
    }
    let cycles = rdtsc() - t0;
    println!("bench: {} null call: {} TSC cycles per round trip ({} calls, {} cycles)", label, cycles / n, n, cycles);
    true
}

fn main(start: &StartInfo) -> i32 {
    let mut ok = true;
    let Some(server) = start.cap("server").map(PingClient) else {
        println!("[FAIL] ipc-setup: no capability 'server' granted");
        return 1;
    };
    let r = server.ping(42);
    ok &= check("ipc-ping-userspace", matches!(r, Ok(42)), alloc::format!("pong answered {:?}", r));
    let r = server.echo(b"capOS over an endpoint");
    ok &= check("ipc-echo-userspace", matches!(&r, Ok(d) if d == b"capOS over an endpoint"), alloc::format!("{} bytes back", r.as_ref().map(|d| d.len()).unwrap_or(0)));
    match server.session() {
        Ok(s) => {
            let r = s.ping(7);
            ok &= check("ipc-capability-in-result", matches!(r, Ok(7)), alloc::format!("session handle {} answered {:?}", s.0, r));
        }
        Err(e) => ok &= check("ipc-capability-in-result", false, alloc::format!("session failed: {:?}", e)),
    }
    // A capability passed in params: send our Console along with a ping;
    // pong must receive it installed in its own table and write through it.
    if let Some(console) = start.cap("console") {
        let req = capos_abi::message::encode_call::<capos_abi::capos_capnp::ping::ping_params::Owned>(
            capos_abi::interfaces::PING, 0, &[console], |mut p| {
                p.set_value(77);
                Ok(())
            });
        let r = req.map_err(capos_rt::client::CallError::from).and_then(|req| capos_rt::client::call(server.0, &req));
        let answered = r.as_ref().ok().and_then(|b| capos_abi::helpers::read_u64_return(b).ok()).and_then(|v| v.ok());
        ok &= check("ipc-capability-in-params", answered == Some(77), alloc::format!("sent the console handle {} with the call; pong answered {:?}", console, answered));
    }
    if let Some(k) = start.cap("kping").map(PingClient) {
        let r = k.ping(5);
        ok &= check("ipc-ping-kernel", matches!(r, Ok(5)), alloc::format!("kernel Ping answered {:?}", r));
        match k.session() {
            Ok(s) => ok &= check("kernel-capability-in-result", matches!(s.ping(9), Ok(9)), alloc::format!("kernel session handle {}", s.0)),
            Err(e) => ok &= check("kernel-capability-in-result", false, alloc::format!("{:?}", e)),
        }
        if let Some(i) = start.args.iter().position(|a| a == "--bench") {
            let n = start.args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1000u64);
            ok &= bench("kernel Ping", k, n);
            ok &= bench("userspace endpoint Ping", server, n);
        }
    }
    if ok { 0 } else { 1 }
}
