//! The `net-service` scenario: TCP and UDP handed out as capabilities
//! (docs/network.md, "The network service"). `demos/net-service` runs
//! smoltcp over the virtio-net card (QEMU's user network, `restrict=on`,
//! DHCP from QEMU); `demos/net-echo`, granted `network` with `terms
//! listen=7,8 udp`, serves TCP and UDP echo. The runner forwards three
//! ports from 127.0.0.1 only (ports it picks) and, once net-echo says it
//! is ready, checks from the host:
//!
//! - a 300 KiB echo over one connection, byte for byte, then the end of
//!   the stream after ours;
//! - 64 connections open at once, each echoing its own line;
//! - UDP datagrams reach the guest (net-echo counts them; the echo cannot
//!   come back: libslirp drops a restricted guest's UDP but DHCP's);
//! - a connection net-echo accepts on port 8 and drops unclosed ends
//!   (the host reads the end of the stream): a dropped capability closes
//!   its socket;
//!
//! then sends `quit` by UDP; net-echo prints its tally, kills the service
//! and exits, and the machine goes idle and exits. net-echo checks the
//! DHCP address and that its terms refuse `listen` on 9 and `connect`.

use super::{strings, user_boot, Boot, Scenario};
use crate::boot::{HostEnv, HostSide};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every check net-echo prints.
const GUEST_CHECKS: &[&str] = &[
    "net-dhcp",
    "net-refuses-listen-outside-terms",
    "net-refuses-connect-outside-terms",
    "net-info-open-sockets",
    "net-local",
    "net-echo-served",
    "net-udp-received",
];

/// Bytes of the large echo (more than 64 KiB: several calls and windows).
const LARGE: usize = 300 * 1024;
/// Connections open at once.
const CONCURRENT: usize = 64;
/// What one host-side step may wait (TCG is slow; a hang is a failure).
const STEP: Duration = Duration::from_secs(120);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&local(port), Duration::from_secs(10)).map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    s.set_read_timeout(Some(STEP)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(STEP)).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8).collect()
}

/// `want.len()` bytes from `s`, or why not.
fn read_exactly(s: &mut TcpStream, want: &[u8]) -> Result<(), String> {
    let mut got = vec![0u8; want.len()];
    let mut at = 0;
    while at < got.len() {
        match s.read(&mut got[at..]) {
            Ok(0) => return Err(format!("the stream ended after {at} of {} bytes", want.len())),
            Ok(n) => at += n,
            Err(e) => return Err(format!("after {at} of {} bytes: {e}", want.len())),
        }
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!("byte {i} differs: got {:#04x}, sent {:#04x}", got[i], want[i])),
    }
}

/// The end of the stream: `read` answers 0.
fn expect_eof(s: &mut TcpStream) -> Result<(), String> {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("{n} more bytes instead of the end of the stream")),
        Err(e) => Err(format!("no end of the stream: {e}")),
    }
}

fn large_echo(port: u16) -> Result<String, String> {
    let t = Instant::now();
    let mut s = connect(port)?;
    let data = pattern(LARGE, 1);
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let sent = data.clone();
    // Write while reading: the echo cannot send more than we take.
    let writer = std::thread::spawn(move || w.write_all(&sent).and_then(|()| w.shutdown(std::net::Shutdown::Write)));
    read_exactly(&mut s, &data)?;
    writer.join().map_err(|_| "the writer panicked".to_string())?.map_err(|e| format!("write: {e}"))?;
    expect_eof(&mut s).map_err(|e| format!("after the echo, with our side shut: {e}"))?;
    Ok(format!("{LARGE} bytes echoed byte for byte, then the end of the stream, in {} ms", t.elapsed().as_millis()))
}

fn concurrent(port: u16) -> Result<String, String> {
    let t = Instant::now();
    let mut conns = Vec::new();
    for i in 0..CONCURRENT {
        conns.push(connect(port).map_err(|e| format!("connection {i}: {e}"))?);
    }
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("connection {i} of {CONCURRENT}\n").as_bytes()).map_err(|e| format!("connection {i}: write: {e}"))?;
    }
    for (i, c) in conns.iter_mut().enumerate() {
        read_exactly(c, format!("connection {i} of {CONCURRENT}\n").as_bytes()).map_err(|e| format!("connection {i}: {e}"))?;
    }
    // Every one still open: a second round on all of them.
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("again {i}\n").as_bytes()).map_err(|e| format!("connection {i}: write: {e}"))?;
    }
    for (i, c) in conns.iter_mut().enumerate() {
        read_exactly(c, format!("again {i}\n").as_bytes()).map_err(|e| format!("connection {i}, second round: {e}"))?;
    }
    Ok(format!("{CONCURRENT} connections open at once, each echoed its own lines twice, in {} ms", t.elapsed().as_millis()))
}

fn udp_socket() -> Result<UdpSocket, String> {
    let u = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    u.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    Ok(u)
}

/// Datagrams to the guest's UDP echo. Only one way: libslirp drops every
/// UDP datagram a guest sends on a `restrict=on` network except DHCP's
/// (and TFTP's), forwarded port or not, so the echo never comes back;
/// net-echo checks they arrived (`net-udp-received`).
fn udp_to_guest(port: u16) -> Result<String, String> {
    let u = udp_socket()?;
    for i in 0..3 {
        u.send_to(format!("datagram {i} for net-echo").as_bytes(), local(port)).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok("3 datagrams sent (net-echo counts them: net-udp-received)".into())
}

fn dropped_closes(port: u16) -> Result<String, String> {
    let mut s = connect(port)?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let t = Instant::now();
    expect_eof(&mut s).map_err(|e| format!("net-echo dropped its capability of this stream, but: {e}"))?;
    Ok(format!("the end of the stream {} ms after connecting", t.elapsed().as_millis()))
}

fn quit(port: u16) -> Result<String, String> {
    let u = udp_socket()?;
    for _ in 0..3 {
        u.send_to(b"quit", local(port)).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok("sent".into())
}

/// The host side: ports are (TCP 7, TCP 8, UDP 7) forwarded.
fn host_checks(env: &HostEnv) -> Vec<(String, Result<String, String>)> {
    let ports = &env.ports;
    let (echo, drop, udp) = (ports[0], ports[1], ports[2]);
    let mut v: Vec<(String, Result<String, String>)> = vec![
        ("tcp-echo-large".into(), large_echo(echo)),
        ("tcp-64-concurrent".into(), concurrent(echo)),
        ("udp-to-guest".into(), udp_to_guest(udp)),
        ("dropped-stream-closes".into(), dropped_closes(drop)),
    ];
    // Whatever happened, let the guest end.
    v.push(("quit".into(), quit(udp)));
    v
}

fn boot() -> Boot {
    let pass: Vec<String> = GUEST_CHECKS.iter().map(|c| format!("[net-echo] [PASS] {c}")).collect();
    let tally = format!("[net-echo] net-echo: {} passed, 0 failed", GUEST_CHECKS.len());
    let mut expect: Vec<&str> = vec![
        // QEMU's DHCP names no router when the network is restricted.
        "[net] net: 10.0.2.15/24 (dhcp)",
        "[net-echo] net-echo: ready",
        &tally,
        "process net-echo (pid 2) exited with status 0",
    ];
    expect.extend(pass.iter().map(String::as_str));
    user_boot("echo", "demos/net-service.manifest", "log=info exit_when_idle", &expect)
        .machine("q35")
        .qemu_args(super::nic::nic_args_forwarding(",disable-legacy=on"))
        .forbid(strings(&["KERNEL PANIC", "EXCEPTION (unexpected)", "[net-echo] [FAIL]", "{any} panic: "]))
        .host_side(HostSide { trigger: "net-echo: ready", forwards: vec![("tcp", 7), ("tcp", 8), ("udp", 7)], run: Arc::new(host_checks) })
        .timeout(600)
}

pub(super) fn net_service() -> Scenario {
    Scenario {
        name: "net-service",
        description: "TCP and UDP as capabilities: net-service (smoltcp over the Nic, DHCP from QEMU's restricted user network) serves net-echo, granted with terms; from the host through 127.0.0.1-only forwards: a 300 KiB echo byte for byte, 64 connections at once, UDP datagrams in, a dropped stream capability closing its socket; the terms refuse listen on 9 and connect",
        capos_boot_only: false,
        boots: vec![boot()],
    }
}
