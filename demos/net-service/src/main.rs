//! net-service: TCP/IP (smoltcp) over the `Nic` capability, handing out
//! TCP listeners, TCP streams and UDP sockets as capabilities.
//!
//! It holds `nic` (`kernel:nic:net0`), `clock` (`kernel:clock`, the time
//! smoltcp's timers run on) and `console`, and serves `Network` on the
//! endpoint it exports as `network`; what each grant of it may do is that
//! grant's terms (`StartInfo.grantTerms`, docs/network.md). The address
//! comes from DHCP (QEMU's user network: 10.0.2.15/24 via 10.0.2.2);
//! smoltcp answers ARP and pings itself.
//!
//! The loop (docs/network.md, "The serving loop"): `rt::serve::serve`
//! replies to every call at once, but accept, connect, read, write and
//! receive must wait for the network. So this loop keeps the reply token
//! of a call that cannot finish yet (at most `Limits::kept` of them),
//! polls smoltcp, answers the kept calls that can now finish (or whose
//! time ran out) with `endpoint_reply`, and waits for the next call with
//! `endpoint_receive_timeout` for at most the smaller of smoltcp's next
//! timer and [`POLL_MS`]: the card raises no receive interrupt
//! (docs/network.md, "Polled, not interrupts"), so frames are looked for
//! at least that often.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_serve::net::Dispatched;
use capos_serve::nic::Received;
use capos_abi::SysError;
use capos_demo_net_service::policy::Policy;
use capos_demo_net_service::service::{Limits, Service};
use capos_demo_net_service::{answer, finish};
use capos_rt::serve::{Call, Mints, ServeResponder};
use capos_rt::{println, syscall, Clock, Incoming, Nic, Server, StartInfo};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use core::sync::atomic::{AtomicBool, Ordering};
use smoltcp::time::Instant;

// 160 TCP sockets of 32 KiB of buffers, UDP sockets, kept writes.
capos_rt::entry!(main, heap = 24 << 20);

/// Longest wait between two looks at the card (no receive interrupt).
const POLL_MS: u64 = 10;
/// How often a transmit the card refuses as busy is tried again.
const TRANSMIT_TRIES: u32 = 64;

/// A look at the card that a timed-out wait started and that has found
/// nothing yet (no frame in or out, no kept call to finish).
///
/// Such looks happen every [`POLL_MS`] while the network is quiet, as
/// many as the host's time allows, so their number does not repeat; with
/// a receive interrupt they would be halts. They are bracketed with the
/// instruction counter's device-wait markers (abi/src/icount.rs), which
/// leave them out of a counted region as the NVMe driver's polled waits
/// are (docs/benchmarks.md, make bench-net); the look that finds work is
/// counted from the moment it finds it. Without the counter the markers
/// are no-ops.
static IDLE_LOOK: AtomicBool = AtomicBool::new(false);

fn idle_look_begin() {
    IDLE_LOOK.store(true, Ordering::Relaxed);
    capos_abi::icount::device_wait_begin();
}

/// The look found work, or gives up: count again.
fn idle_look_end() {
    if IDLE_LOOK.swap(false, Ordering::Relaxed) {
        capos_abi::icount::device_wait_end();
    }
}

/// The `Nic` capability as smoltcp's device: a frame per call, through
/// the bulk buffer.
struct NicDevice {
    nic: Nic,
    rx: Vec<u8>,
    max_frame: usize,
    /// Frames the card never took (busy for every try, or refused).
    lost: u64,
}

struct NicRx<'a>(&'a [u8]);
struct NicTx<'a> {
    nic: &'a Nic,
    lost: &'a mut u64,
}

impl RxToken for NicRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for NicTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        idle_look_end();
        for _ in 0..TRANSMIT_TRIES {
            match self.nic.transmit(&frame) {
                Ok(()) => return r,
                // Every transmit buffer is in the device: they come back
                // as it sends; let it.
                Err(e) if e.code() == Some(ErrorCode::Busy) => syscall::yield_now(),
                Err(_) => break,
            }
        }
        *self.lost += 1;
        r
    }
}

impl Device for NicDevice {
    type RxToken<'a> = NicRx<'a>;
    type TxToken<'a> = NicTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(NicRx<'_>, NicTx<'_>)> {
        match self.nic.receive(&mut self.rx) {
            Ok(Received::Frame(n)) => {
                idle_look_end();
                Some((NicRx(&self.rx[..n]), NicTx { nic: &self.nic, lost: &mut self.lost }))
            }
            _ => None,
        }
    }

    fn transmit(&mut self, _: Instant) -> Option<NicTx<'_>> {
        Some(NicTx { nic: &self.nic, lost: &mut self.lost })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = self.max_frame;
        c
    }
}

/// The time for smoltcp, from the kernel's clock.
fn now(clock: &Clock) -> Instant {
    Instant::from_micros((clock.now().unwrap_or(0) / 1000) as i64)
}

fn main(start: &StartInfo) -> i32 {
    let (Some(nic), Some(clock), Some(ep)) = (start.cap("nic"), start.cap("clock"), start.endpoint("network")) else {
        println!("needs 'nic' (kernel:nic:NAME), 'clock' (kernel:clock) and an exported endpoint 'network'");
        return 2;
    };
    let (nic, clock, mut server) = (Nic::new(nic), Clock(clock), Server::new(ep));
    let bulk = match server.register_bulk(capos_abi::limits::MAX_NET_IO_BYTES) {
        Ok(b) => b,
        Err(e) => {
            println!("cannot register a bulk buffer: {e:?}");
            return 1;
        }
    };
    let info = match nic.info() {
        Ok(i) => i,
        // No such card on this machine (the kernel's grant says so): no
        // network, which is no reason to restart. Every call is answered
        // with why, and the service waits for calls only (no timers), so
        // the rest of the system runs as before.
        Err(capos_rt::CallError::Object(why)) if why.code == ErrorCode::Unavailable => {
            println!("no network card: {}; answering every call with it", why.message);
            let e = capos_abi::helpers::CapError::new(ErrorCode::Unavailable, &alloc::format!("no network: {}", why.message));
            let gone = capos_rt::serve::serve(&mut server, bulk, &mut (), |_, call, r| capos_serve::refuse::refuse_call(r, call.interface_id, call.method, e.clone()), |_, _| {});
            println!("the endpoint is gone: {gone:?}");
            return 1;
        }
        Err(e) => {
            println!("the card does not answer: {e:?}");
            return 1;
        }
    };
    let (policy, problems) = Policy::from_start(&start.grant_terms, "network");
    for p in &problems {
        println!("{p}");
    }
    let grants = policy.grants();
    let limits = Limits { udp_max_datagram: info.mtu as usize - 28, ..Limits::default() };
    let mut dev = NicDevice { nic, rx: vec![0; info.max_frame as usize], max_frame: info.max_frame as usize, lost: 0 };
    let mut svc = Service::new(&mut dev, info.mac, syscall::rdtsc(), now(&clock), policy, limits, true);
    let m = info.mac;
    println!(
        "serving 'network' over mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} (mtu {}), {} grants with terms; {} TCP sockets, {} UDP, {} waiting calls at most; asking DHCP",
        m[0], m[1], m[2], m[3], m[4], m[5], info.mtu, grants, limits.tcp_sockets, limits.udp_sockets, limits.kept
    );
    let mut mints = Mints::default();
    // Kept calls: the service's id -> (reply token, the call).
    let mut kept: BTreeMap<u64, (u64, Call)> = BTreeMap::new();
    loop {
        svc.now = now(&clock);
        svc.poll(&mut dev);
        for line in svc.log.drain(..) {
            println!("{line}");
        }
        for (id, done) in svc.completions() {
            idle_look_end();
            let Some((token, call)) = kept.remove(&id) else { continue };
            let mut r = ServeResponder::new(&server, &mut mints, &call, &mut *bulk);
            let answered = finish(&mut r, done);
            let prepared = r.prepare(answered);
            let out = prepared.bulk_len();
            // A caller that died meanwhile: nothing to do (its sockets
            // close by their own no-senders notifications).
            let _ = prepared.send(|word| syscall::endpoint_reply(token, word, &bulk[..out]));
        }
        let wait_ms = svc.poll_delay().map(|d| d.total_millis()).unwrap_or(POLL_MS).min(POLL_MS);
        idle_look_end();
        let incoming = match server.receive_timeout(wait_ms * 1_000_000) {
            Ok(i) => i,
            Err(e) if e.sys() == Some(SysError::TimedOut) => {
                idle_look_begin();
                continue;
            }
            Err(e) => {
                println!("the endpoint is gone: {e:?}");
                return 1;
            }
        };
        handle(&mut svc, &server, &mut mints, &mut kept, &mut dev, &clock, bulk, incoming);
    }
}

/// One received call (or no-senders notification).
#[allow(clippy::too_many_arguments)]
fn handle(svc: &mut Service, server: &Server, mints: &mut Mints, kept: &mut BTreeMap<u64, (u64, Call)>, dev: &mut NicDevice, clock: &Clock, bulk: &mut [u8], incoming: Incoming) {
    if incoming.is_no_senders() {
        let b = incoming.badge();
        if mints.gone(b) {
            svc.released(b);
        }
        return;
    }
    // Copied before any call of ours overwrites the receive buffer.
    let token = incoming.reply_token();
    let call = Call::copy(&incoming);
    drop(incoming);
    svc.now = now(clock);
    if call.interface_id == capos_abi::interfaces::NETWORK && call.method == capos_abi::interfaces::network_method::INFO {
        if let Ok(c) = dev.nic.counters() {
            svc.counters = c;
        }
    }
    let mut r = ServeResponder::new(server, mints, &call, &mut *bulk);
    let answered = match call.message() {
        Ok(msg) => answer(svc, call.badge, &msg, &mut r),
        Err(e) => Err(e),
    };
    let answered = match answered {
        Ok(Dispatched::Kept(id)) => {
            // No results were built: nothing to send or clear now.
            drop(r);
            kept.insert(id, (token, call));
            return;
        }
        Ok(Dispatched::Answered) => Ok(()),
        Err(e) => {
            let iface = capos_abi::interfaces::name_of(call.interface_id).unwrap_or("?");
            println!("a call of {iface} method {} (badge {:#x}) refused at the call level: {e:?}", call.method, call.badge);
            Err(e)
        }
    };
    let prepared = r.prepare(answered);
    let out = prepared.bulk_len();
    let _ = prepared.send(|word| syscall::endpoint_reply(token, word, &bulk[..out]));
}
