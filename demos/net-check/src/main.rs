//! net-check: the guest side of the `net-nic` scenario. It holds `nic`
//! (`kernel:nic:net0`, a virtio-net card on QEMU's user network with
//! `restrict=on`), `clock` and `console`, and prints one verdict line per
//! check: `[PASS] NAME: detail` or `[FAIL] NAME: reason`; it exits 1 if any
//! check failed.
//!
//! ```text
//! net-check --mac 52:54:00:12:34:56
//! ```
//!
//! It reads `info` (the MAC must be the one QEMU was given), asks QEMU's
//! gateway 10.0.2.2 for its MAC with an ARP request it builds by hand (a
//! TCP/IP stack comes later, in a service) and polls `receive` until the
//! reply comes, for at most [`WAIT_MS`]; checks the counters moved; then
//! sends frames that are too short and too long, calls with no buffer,
//! the wrong buffer direction, a receive buffer too small and buffers in
//! its own IPC area or unmapped memory, and checks each is refused with
//! its error while the card keeps working (a second ARP exchange).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::interfaces::{self, nic_method};
use capos_abi::ipc::{CallWord, BULK_READ, BULK_WRITE, IPC_AREA_ADDR, RECV_OFFSET};
use capos_abi::SysError;
use capos_rt::net::{NicInfo, Received};
use capos_rt::verdict::Report;
use capos_rt::{println, syscall, BulkArg, Clock, Nic, StartInfo};

capos_rt::entry!(main);

/// How long one exchange may wait for its answer (guest wall time).
const WAIT_MS: u64 = 10_000;
/// How often the request is sent again while waiting.
const RESEND_MS: u64 = 1_000;
/// Our address on QEMU's user network (what its DHCP would hand out).
const OUR_IP: [u8; 4] = [10, 0, 2, 15];
/// QEMU's user-network gateway.
const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];
/// An address nothing maps in this process (its binary, heap and stack
/// are far from here).
const UNMAPPED: u64 = 0x0000_5000_0000_0000;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// A page of `.rodata`: the loader maps it read-only (demos/user.ld), so a
/// receive into it must be refused before anything is written.
static RO_PAGE: Page = Page([0xa5; 4096]);

/// The call must fail at the syscall with `want`.
fn refused_sys(report: &mut Report, name: &str, r: Result<u64, syscall::Failure>, want: SysError) {
    report.check(
        name,
        match r {
            Err(f) if f.error == Some(want) => Ok(format!("refused at the call with {:?}", want)),
            Err(f) => Err(format!("refused with {:?}, want {:?}", f, want)),
            Ok(n) => Err(format!("accepted ({n} bulk bytes), want {:?}", want)),
        },
    );
}

/// `--mac aa:bb:cc:dd:ee:ff`.
fn mac_arg(start: &StartInfo) -> Option<[u8; 6]> {
    let i = start.args.iter().position(|a| a == "--mac")?;
    let text = start.args.get(i + 1)?;
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn mac_text(m: &[u8]) -> String {
    m.iter().map(|b| format!("{:02x}", b)).collect::<Vec<_>>().join(":")
}

/// An ARP request (RFC 826) from `mac`/[`OUR_IP`] for `target`, broadcast,
/// padded to Ethernet's 60-byte minimum.
fn arp_request(mac: [u8; 6], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]); // EtherType ARP
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&OUR_IP);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

/// The sender MAC of `frame` if it is an ARP reply from `from` to us.
fn arp_reply_from(frame: &[u8], mac: [u8; 6], from: [u8; 4]) -> Option<[u8; 6]> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[14..22] != [0, 1, 0x08, 0x00, 6, 4, 0, 2] {
        return None;
    }
    let (sha, spa, tha, tpa) = (&frame[22..28], &frame[28..32], &frame[32..38], &frame[38..42]);
    (spa == from && tha == mac && tpa == OUR_IP && frame[0..6] == mac).then(|| sha.try_into().ok()).flatten()
}

struct Exchange {
    gateway_mac: [u8; 6],
    polls: u32,
    empties: u32,
    others: u32,
    sent: u32,
}

/// Send an ARP request for the gateway and poll until its reply, resending
/// every [`RESEND_MS`], for at most [`WAIT_MS`].
fn arp_exchange(nic: &Nic, clock: &Clock, info: &NicInfo) -> Result<Exchange, String> {
    let request = arp_request(info.mac, GATEWAY_IP);
    let mut buf = vec![0u8; info.max_frame as usize];
    let now = || clock.now().map_err(|e| format!("clock: {:?}", e));
    let start = now()?;
    let mut last_sent = 0;
    let mut x = Exchange { gateway_mac: [0; 6], polls: 0, empties: 0, others: 0, sent: 0 };
    loop {
        let t = now()?;
        let elapsed_ms = t.saturating_sub(start) / 1_000_000;
        if elapsed_ms > WAIT_MS {
            return Err(format!("no ARP reply from 10.0.2.2 within {WAIT_MS} ms ({} requests sent, {} polls, {} other frames)", x.sent, x.polls, x.others));
        }
        if x.sent == 0 || t.saturating_sub(last_sent) / 1_000_000 >= RESEND_MS {
            match nic.transmit(&request) {
                Ok(()) => {}
                Err(e) if e.code() == Some(ErrorCode::Busy) => {}
                Err(e) => return Err(format!("transmit: {:?}", e)),
            }
            x.sent += 1;
            last_sent = t;
        }
        x.polls += 1;
        match nic.receive(&mut buf).map_err(|e| format!("receive: {:?}", e))? {
            Received::Empty => {
                x.empties += 1;
                syscall::yield_now();
            }
            Received::Frame(n) => match arp_reply_from(&buf[..n], info.mac, GATEWAY_IP) {
                Some(m) => {
                    x.gateway_mac = m;
                    return Ok(x);
                }
                None => x.others += 1,
            },
        }
    }
}

/// A Nic call with no params through the raw syscall, with any bulk
/// address (the typed client takes only buffers of our own).
fn raw_call(nic: &Nic, method: u16, flags: u8, addr: u64, len: u64) -> Result<u64, syscall::Failure> {
    let word = CallWord { method, caps: 0, bulk: flags, len: 0 };
    syscall::cap_call(nic.handle(), interfaces::NIC, word, (addr, len)).map(|(_, bulk)| bulk)
}

fn main(start: &StartInfo) -> i32 {
    let mut r = Report::default();
    let (Some(nic), Some(clock)) = (start.cap("nic").map(Nic::new), start.cap("clock").map(Clock)) else {
        println!("[FAIL] grants: net-check needs 'nic' (kernel:nic:NAME) and 'clock'");
        return 1;
    };
    let Some(want_mac) = mac_arg(start) else {
        println!("[FAIL] args: net-check needs --mac aa:bb:cc:dd:ee:ff");
        return 1;
    };
    let info = match nic.info() {
        Ok(i) => i,
        Err(e) => {
            println!("[FAIL] nic-info: {:?}", e);
            return 1;
        }
    };
    r.check(
        "nic-info",
        if info.mac == want_mac && info.link_up && info.mtu >= 68 && info.max_frame == info.mtu as u32 + 14 {
            Ok(format!("mac {}, mtu {}, link up, frames up to {} bytes", mac_text(&info.mac), info.mtu, info.max_frame))
        } else {
            Err(format!("{:?}; want mac {}, link up, max_frame = mtu + 14", info, mac_text(&want_mac)))
        },
    );
    let before = nic.counters();
    r.check("nic-counters-start", match &before {
        Ok(c) if c.tx_frames == 0 && c.tx_drops == 0 && c.rx_errors == 0 && c.tx_errors == 0 => Ok(format!("{:?}", c)),
        other => Err(format!("{:?}, want nothing sent, dropped or failed yet", other)),
    });
    let before = before.unwrap_or_default();
    // Nothing was sent, and QEMU's user network sends nothing unasked:
    // receive answers empty at once (QEMU answers an ARP request while it
    // takes the frame, so the exchange below may never see it).
    let mut buf = vec![0u8; info.max_frame as usize];
    r.check("nic-receive-empty", match nic.receive(&mut buf) {
        Ok(Received::Empty) => Ok("nothing pending before anything was sent: answered empty at once".into()),
        other => Err(format!("{:?}, want Empty", other)),
    });

    // An ARP exchange with QEMU's gateway.
    let first = arp_exchange(&nic, &clock, &info);
    r.check("nic-arp", first.as_ref().map(|x| {
        format!("10.0.2.2 is at {} ({} request(s), {} polls, {} answered empty, {} other frames)", mac_text(&x.gateway_mac), x.sent, x.polls, x.empties, x.others)
    }).map_err(String::clone));
    let sent = first.as_ref().map(|x| x.sent as u64).unwrap_or(0);
    let after = nic.counters();
    r.check("nic-counters", match &after {
        Ok(c) if c.tx_frames == before.tx_frames + sent && c.tx_bytes == before.tx_bytes + 60 * sent && c.rx_frames > before.rx_frames && c.rx_bytes >= before.rx_bytes + 42 && c.tx_errors == 0 && c.rx_errors == 0 => {
            Ok(format!("tx {} frames / {} bytes, rx {} frames / {} bytes, drops {}/{}", c.tx_frames, c.tx_bytes, c.rx_frames, c.rx_bytes, c.tx_drops, c.rx_drops))
        }
        other => Err(format!("{:?}; want {} more frames ({} bytes) sent, at least one received, no errors", other, sent, 60 * sent)),
    });
    let after = after.unwrap_or_default();

    // Bad frames: refused, counted as drops, nothing sent.
    r.refused("nic-refuses-runt", nic.transmit(&[0u8; 13]), ErrorCode::InvalidArgument);
    r.refused("nic-refuses-empty-frame", nic.transmit(&[]), ErrorCode::InvalidArgument);
    let mut long = arp_request(info.mac, GATEWAY_IP);
    long.resize(info.max_frame as usize + 1, 0);
    r.refused("nic-refuses-too-long", nic.transmit(&long), ErrorCode::InvalidArgument);
    long.truncate(info.max_frame as usize);
    // Bad buffers.
    r.refused("nic-refuses-transmit-without-buffer", nic.transmit_with(BulkArg::NONE), ErrorCode::InvalidArgument);
    r.refused("nic-refuses-receive-without-buffer", nic.receive_with(BulkArg::NONE), ErrorCode::InvalidArgument);
    let mut small = vec![0u8; info.max_frame as usize - 1];
    r.refused("nic-refuses-small-receive-buffer", nic.receive(&mut small), ErrorCode::InvalidArgument);
    let frame = arp_request(info.mac, GATEWAY_IP);
    r.refused("nic-refuses-receive-into-readable-buffer", nic.receive_with(BulkArg::out(&frame)), ErrorCode::InvalidArgument);
    let recv_area = IPC_AREA_ADDR + RECV_OFFSET as u64;
    refused_sys(&mut r, "nic-refuses-transmit-from-ipc-area", raw_call(&nic, nic_method::TRANSMIT, BULK_READ, recv_area, 60), SysError::BadAddress);
    refused_sys(&mut r, "nic-refuses-receive-into-ipc-area", raw_call(&nic, nic_method::RECEIVE, BULK_WRITE, recv_area, 2048), SysError::BadAddress);
    refused_sys(&mut r, "nic-refuses-receive-into-read-only-page", raw_call(&nic, nic_method::RECEIVE, BULK_WRITE, RO_PAGE.0.as_ptr() as u64, 2048), SysError::BadAddress);
    r.check("nic-read-only-page-untouched", match RO_PAGE.0.iter().all(|b| core::hint::black_box(*b) == 0xa5) {
        true => Ok("the read-only page still holds its bytes".into()),
        false => Err("a refused receive wrote into a read-only page".into()),
    });
    refused_sys(&mut r, "nic-refuses-unmapped-buffer", raw_call(&nic, nic_method::RECEIVE, BULK_WRITE, UNMAPPED, 2048), SysError::BadAddress);
    r.check("nic-drops-counted", match nic.counters() {
        Ok(c) if c.tx_drops == after.tx_drops + 3 && c.tx_frames == after.tx_frames && c.tx_bytes == after.tx_bytes => {
            Ok(format!("3 bad frames counted as transmit drops ({} in all), nothing sent", c.tx_drops))
        }
        other => Err(format!("{:?}; want tx_drops {} and tx_frames {} (unchanged)", other, after.tx_drops + 3, after.tx_frames)),
    });

    // The largest frame is accepted; the card still works.
    r.check("nic-max-frame", nic.transmit(&long).map(|()| format!("a {}-byte frame accepted", long.len())).map_err(|e| format!("{:?}", e)));
    let again = arp_exchange(&nic, &clock, &info);
    r.check("nic-still-works", match (&again, &first) {
        (Ok(x), Ok(f)) if x.gateway_mac == f.gateway_mac => Ok(format!("10.0.2.2 answered again from {} after the refusals", mac_text(&x.gateway_mac))),
        (Ok(x), _) => Err(format!("10.0.2.2 answered from {}, first from {:?}", mac_text(&x.gateway_mac), first.as_ref().map(|f| mac_text(&f.gateway_mac)))),
        (Err(e), _) => Err(e.clone()),
    });
    println!("net-check: {} passed, {} failed", r.passed, r.failed);
    if r.failed == 0 { 0 } else { 1 }
}
