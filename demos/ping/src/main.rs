//! A client of `pong` (a userspace server) and of the kernel's Ping. With
//! `--bench N` it also measures N null calls on each; `--stress N` and
//! `--round-trips N` are make run-smp's and make bench-smp's.
#![no_std]
#![no_main]

extern crate alloc;

use capos_rt::bench::measure;
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

/// `only`: run only the benchmarks whose label starts with it (`--only
/// PREFIX`, for profiling one of them).
fn bench(k: PingClient, server: PingClient, n: u64, only: Option<&str>) -> bool {
    let mut ok = true;
    ok &= measure("kernel null call", n, only, |i| matches!(k.ping(i), Ok(v) if v == i));
    ok &= measure("endpoint null round trip", n, only, |i| matches!(server.ping(i), Ok(v) if v == i));
    for (label, size) in [("echo 64 B", 64usize), ("echo 4 KiB", 4096), ("echo 64 KiB", 65536)] {
        let mut backing = alloc::vec![0u8; size + PAGE];
        let buf = page_aligned(&mut backing, size);
        for (j, b) in buf.iter_mut().enumerate() {
            *b = j as u8;
        }
        ok &= measure(label, n.min(500), only, |_| matches!(server.echo_bulk(buf), Ok(m) if m == size as u64));
        // The payload came back intact.
        ok &= check(&alloc::format!("bench-{}-intact", label.replace(' ', "-")), buf.iter().enumerate().all(|(j, b)| *b == j as u8), alloc::format!("{} bytes", size));
    }
    let mut backing = alloc::vec![7u8; 65536 + PAGE];
    let buf = page_aligned(&mut backing, 65536);
    ok &= measure("kernel echo 64 KiB", n.min(500), only, |_| matches!(k.echo_bulk(buf), Ok(65536)));
    ok
}

/// `--stress N` (`make run-smp`, `make bench-smp`): N calls to `server`,
/// null calls with a value of this client's own and, every 8th, a 512-byte
/// echo of a pattern of its own; every answer checked. Prints the TSC
/// cycles it took, so pairs running at once on several CPUs give a
/// throughput.
fn stress(name: &str, server: PingClient, n: u64) -> bool {
    let salt = name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)) << 20;
    let mut buf = alloc::vec![0u8; 512];
    let t0 = capos_rt::syscall::rdtsc();
    for i in 0..n {
        let v = salt ^ i;
        match server.ping(v) {
            Ok(got) if got == v => {}
            other => return check("stress", false, alloc::format!("call {} of {}: ping({:#x}) answered {:?}", i, n, v, other)),
        }
        if i % 8 == 7 {
            for (j, b) in buf.iter_mut().enumerate() {
                *b = (v as usize ^ j) as u8;
            }
            let r = server.echo_bulk(&mut buf);
            if !matches!(r, Ok(512)) || buf.iter().enumerate().any(|(j, b)| *b != (v as usize ^ j) as u8) {
                return check("stress", false, alloc::format!("call {} of {}: echo answered {:?} or came back changed", i, n, r));
            }
        }
    }
    let cycles = capos_rt::syscall::rdtsc() - t0;
    check("stress", true, alloc::format!("{} calls answered right in {} cycles", n + n / 8, cycles))
}

const PAGE: usize = 4096;

/// `len` bytes of `backing` starting on a page boundary (`backing` has a
/// page to spare). The echo benchmarks measure page-aligned buffers, as
/// Linux's O_DIRECT reads do: where a heap buffer happens to start
/// depends on the binary's layout (even on the directory it was built
/// in), and a buffer straddling one more page costs one more piece in
/// every check and copy.
fn page_aligned(backing: &mut [u8], len: usize) -> &mut [u8] {
    let off = backing.as_ptr().align_offset(PAGE);
    &mut backing[off..off + len]
}

/// `--round-trips N` (`make bench-smp`'s icount boot): N null round trips
/// to `same` (a pong pinned to this process's CPU) and N to `cross` (one
/// pinned to another CPU), each a counted region; every answer checked.
fn round_trips(same: PingClient, cross: PingClient, n: u64) -> bool {
    let mut ok = measure("same-CPU endpoint round trip", n, None, |i| matches!(same.ping(i), Ok(v) if v == i));
    ok &= measure("cross-CPU endpoint round trip", n, None, |i| matches!(cross.ping(i), Ok(v) if v == i));
    check("round-trips", ok, alloc::format!("{n} to each server, every answer right"))
}

fn main(start: &StartInfo) -> i32 {
    let mut ok = true;
    if let Some(i) = start.args.iter().position(|a| a == "--round-trips") {
        let n = start.args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1000u64);
        let (Some(same), Some(cross)) = (start.cap("same").map(PingClient), start.cap("cross").map(PingClient)) else {
            println!("[FAIL] round-trips: needs the capabilities 'same' and 'cross'");
            return 1;
        };
        return if round_trips(same, cross, n) { 0 } else { 1 };
    }
    let Some(server) = start.cap("server").map(PingClient) else {
        println!("[FAIL] ipc-setup: no capability 'server' granted");
        return 1;
    };
    if let Some(i) = start.args.iter().position(|a| a == "--stress") {
        let n = start.args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1000u64);
        return if stress(&start.name, server, n) { 0 } else { 1 };
    }
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
        let answered = server.ping_with_caps(77, &[console]).ok();
        ok &= check("ipc-capability-in-params", answered == Some(77), alloc::format!("sent the console handle {} with the call; pong answered {:?}", console, answered));
    }
    // Bulk data through the endpoint, both ways, checked byte for byte.
    let mut buf: alloc::vec::Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let r = server.echo_bulk(&mut buf);
    let intact = buf.iter().enumerate().all(|(i, b)| *b == (i as u32 * 7) as u8);
    ok &= check("ipc-bulk-echo-userspace", matches!(r, Ok(10_000)) && intact, alloc::format!("{:?}, payload intact: {}", r, intact));
    if let Some(k) = start.cap("kping").map(PingClient) {
        let r = k.ping(5);
        ok &= check("ipc-ping-kernel", matches!(r, Ok(5)), alloc::format!("kernel Ping answered {:?}", r));
        match k.session() {
            Ok(s) => ok &= check("kernel-capability-in-result", matches!(s.ping(9), Ok(9)), alloc::format!("kernel session handle {}", s.0)),
            Err(e) => ok &= check("kernel-capability-in-result", false, alloc::format!("{:?}", e)),
        }
        let mut buf = alloc::vec![3u8; 4096];
        let r = k.echo_bulk(&mut buf);
        ok &= check("kernel-bulk-echo", matches!(r, Ok(4096)) && buf.iter().all(|b| *b == 3), alloc::format!("{:?}", r));
        if let Some(i) = start.args.iter().position(|a| a == "--bench") {
            let n = start.args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1000u64);
            let only = start.args.iter().position(|a| a == "--only").and_then(|j| start.args.get(j + 1)).map(|s| s.as_str());
            ok &= bench(k, server, n, only);
        }
    }
    if ok { 0 } else { 1 }
}
