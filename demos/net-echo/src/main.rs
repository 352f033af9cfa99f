//! net-echo: the guest side of the `net-service` scenario. It holds `net`
//! (a grant of net-service's `network` with `terms listen=7,8 udp`),
//! `clock`, `console` and `netctl` (kill / status of the service), and:
//!
//! 1. waits for the service's DHCP address and checks `info`;
//! 2. checks what its terms forbid is refused (`listen` on 9, `connect`)
//!    with `permissionDenied` naming the port;
//! 3. listens on 7 (TCP echo, backlog 64: the host opens 64 at once) and 8, binds UDP 7, checks the
//!    open-socket count, and prints `net-echo: ready`;
//! 4. serves until a UDP datagram `quit` arrives (the runner's last step):
//!    TCP echo on every connection of port 7 (at most [`MAX_CONNS`] at
//!    once), UDP echo on 7 (QEMU's restricted network drops the echo on
//!    its way out; the datagrams received are counted and checked), and a connection on 8 is accepted and its
//!    capability dropped unclosed (the host must then see the end of the
//!    stream: a dropped capability closes its socket);
//! 5. prints its tally, kills the service (so the machine goes idle and
//!    the boot ends) and exits 0 if every check passed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::control::ProcessControl;
use capos_rt::net::SocketAddr;
use capos_rt::verdict::Report;
use capos_rt::{println, syscall, CallError, Clock, Network, StartInfo, TcpStream};

capos_rt::entry!(main, heap = 4 << 20);

/// How long DHCP may take (guest time).
const DHCP_WAIT_MS: u64 = 30_000;
/// Connections served at once; more wait in the service's backlog.
const MAX_CONNS: usize = 80;

/// How long one echo write may take (see where it is used).
const ECHO_WRITE_MS: u32 = 60_000;

fn timed_out(e: &CallError) -> bool {
    e.code() == Some(ErrorCode::TimedOut)
}

fn main(start: &StartInfo) -> i32 {
    let (Some(net), Some(clock), Some(ctl)) = (start.cap("net"), start.cap("clock"), start.cap("netctl")) else {
        println!("needs 'net' (a Network), 'clock' and 'netctl' (control of the service)");
        return 2;
    };
    let (net, clock, ctl) = (Network::new(net), Clock(clock), ProcessControl(ctl));
    let ms = || clock.now().unwrap_or(0) / 1_000_000;
    let mut report = Report::default();

    // 1. DHCP.
    let t0 = ms();
    let info = loop {
        match net.info() {
            Ok(i) if i.address.is_some() => break Ok(i),
            Ok(_) if ms() - t0 < DHCP_WAIT_MS => syscall::yield_now(),
            Ok(_) => break Err(format!("no address after {DHCP_WAIT_MS} ms")),
            Err(e) => break Err(format!("info: {e:?}")),
        }
    };
    report.check(
        "net-dhcp",
        info.and_then(|i| {
            let ([a, b, c, d], prefix) = i.address.unwrap();
            // QEMU's DHCP names no router on a restricted network.
            let gw = i.gateway.map(|[a, b, c, d]| format!("via {a}.{b}.{c}.{d}")).unwrap_or_else(|| "no gateway".into());
            let text = format!("{a}.{b}.{c}.{d}/{prefix} {gw}, dhcp {}, link up {}", i.dhcp, i.link_up);
            if ([a, b, c, d], prefix, i.dhcp, i.link_up) == ([10, 0, 2, 15], 24, true, true) {
                Ok(text)
            } else {
                Err(format!("{text}; want 10.0.2.15/24 from DHCP, link up"))
            }
        }),
    );

    // 2. What the terms forbid.
    report.check(
        "net-refuses-listen-outside-terms",
        match net.listen(9, 1) {
            Err(CallError::Object(e)) if e.code == ErrorCode::PermissionDenied && e.message.contains("port 9") => Ok(format!("permissionDenied: {}", e.message)),
            Err(e) => Err(format!("refused with {e:?}, want permissionDenied naming port 9")),
            Ok(_) => Err("listening on 9 was allowed".into()),
        },
    );
    report.refused("net-refuses-connect-outside-terms", net.connect(SocketAddr { ip: [10, 0, 2, 2], port: 80 }, 100), ErrorCode::PermissionDenied);

    // 3. The echo services.
    let (echo, drop_port, udp) = match (net.listen(7, 64), net.listen(8, 4), net.udp_bind(7)) {
        (Ok(e), Ok(d), Ok(u)) => (e, d, u),
        (e, d, u) => {
            report.check("net-listen", Err(format!("listen 7: {:?}, listen 8: {:?}, udp 7: {:?}", e.err(), d.err(), u.err())));
            // The service never goes idle: stop it, so the boot ends.
            let _ = ctl.kill();
            return 1;
        }
    };
    report.check(
        "net-info-open-sockets",
        match net.info() {
            Ok(i) if i.open_sockets == 3 => Ok(format!("3 open sockets; tx {} frames, rx {} frames", i.counters.tx_frames, i.counters.rx_frames)),
            Ok(i) => Err(format!("{} open sockets, want 3", i.open_sockets)),
            Err(e) => Err(format!("{e:?}")),
        },
    );
    report.check(
        "net-local",
        match (echo.local(), udp.local()) {
            (Ok(a), Ok(b)) if a.port == 7 && b.port == 7 && a.ip == [10, 0, 2, 15] => Ok(format!("listener {a}, udp {b}")),
            other => Err(format!("{other:?}")),
        },
    );
    println!("net-echo: ready");

    // 4. Serve until the host says quit.
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut buf = vec![0u8; capos_abi::limits::MAX_NET_IO_BYTES];
    let (mut served, mut most, mut dropped, mut bytes, mut datagrams) = (0u32, 0usize, 0u32, 0u64, 0u32);
    let mut last_peer = None;
    let mut trouble: Vec<alloc::string::String> = Vec::new();
    'serve: loop {
        while conns.len() < MAX_CONNS {
            match echo.accept(1) {
                Ok(s) => {
                    conns.push(s);
                    served += 1;
                    most = most.max(conns.len());
                }
                Err(e) if timed_out(&e) => break,
                Err(e) => {
                    trouble.push(format!("accept: {e:?}"));
                    break;
                }
            }
        }
        match drop_port.accept(1) {
            // Dropped without close: the service must close the socket.
            Ok(s) => {
                drop(s);
                dropped += 1;
            }
            Err(e) if timed_out(&e) => {}
            Err(e) => trouble.push(format!("accept on 8: {e:?}")),
        }
        match udp.receive(&mut buf, 1) {
            Ok((n, _)) if &buf[..n] == b"quit" => break 'serve,
            Ok((n, peer)) => {
                datagrams += 1;
                last_peer = Some(peer);
                if let Err(e) = udp.send(peer, &buf[..n]) {
                    trouble.push(format!("udp send: {e:?}"));
                }
            }
            Err(e) if timed_out(&e) => {}
            Err(e) => trouble.push(format!("udp receive: {e:?}")),
        }
        let mut i = 0;
        while i < conns.len() {
            let keep = match conns[i].read(&mut buf, 1) {
                Ok(0) => false,
                Ok(n) => {
                    bytes += n as u64;
                    // 60 s: two clean-clone CI runs of 307,200 bytes
                    // stalled over 10 s near the end (296,048 bytes
                    // through), as TCP retransmission backoff would;
                    // every byte is still checked by the host.
                    match conns[i].write_all(&buf[..n], ECHO_WRITE_MS) {
                        Ok(()) => true,
                        Err(e) => {
                            trouble.push(format!("write: {e:?}"));
                            false
                        }
                    }
                }
                Err(e) if timed_out(&e) => true,
                Err(e) => {
                    trouble.push(format!("read: {e:?}"));
                    false
                }
            };
            if keep {
                i += 1;
            } else {
                // The peer is done: close ours (dropping it would too).
                let s = conns.swap_remove(i);
                let _ = s.close();
            }
        }
        trouble.truncate(16);
    }
    report.check(
        "net-echo-served",
        if trouble.is_empty() {
            Ok(format!("{served} connections ({most} at once), {bytes} bytes echoed, {dropped} dropped unclosed, {datagrams} datagrams echoed (the last from {last_peer:?})"))
        } else {
            Err(format!("{} problems, first: {}", trouble.len(), trouble[0]))
        },
    );
    // QEMU's restricted user network drops every UDP datagram the guest
    // sends but DHCP's, so the echo never reaches the host: that the
    // host's datagrams arrived is checked here.
    report.check(
        "net-udp-received",
        match last_peer {
            Some(p) if datagrams > 0 && p.ip == [10, 0, 2, 2] => Ok(format!("{datagrams} datagrams from the host (as {p}), each sent back")),
            _ => Err(format!("{datagrams} datagrams received (last from {last_peer:?}), want the host's through 10.0.2.2")),
        },
    );
    println!("net-echo: {} passed, {} failed", report.passed, report.failed);
    drop(conns);
    if let Err(e) = ctl.kill() {
        println!("cannot stop the service: {e:?}");
        return 1;
    }
    if report.failed == 0 {
        0
    } else {
        1
    }
}
