//! The network service's objects over smoltcp: listeners, streams and UDP
//! sockets behind the four server traits of `capos_serve::net`, the
//! socket table and its bounds, and the calls kept until they can finish.
//!
//! Rules:
//! - **Objects** are handed out as capabilities of the service's endpoint
//!   badged `server_minted(id)`; ids are never reused. A call whose badge
//!   names no object (a capability of an earlier instance) is
//!   `staleHandle`; one of the wrong kind is `invalidArgument`. `close`
//!   leaves a `Closed` object that answers `closed` until the last
//!   capability is gone ([`Service::released`]), which also closes an
//!   object not closed yet: a dropped capability closes its socket.
//! - **Bounds** ([`Limits`]): TCP sockets (listening ones, streams, and
//!   closing ones not yet gone) and UDP sockets each have a fixed table;
//!   a listener takes `min(backlog, Limits::backlog)` sockets at once; a
//!   call that needs a socket when the table is full is refused with
//!   `noSpace` and logged, and nothing else changes. At most
//!   [`Limits::kept`] calls wait at once, and one of each kind per object
//!   (a second `read` on a stream while one waits is `busy`).
//! - **Waiting** calls ([`Op`]) are tried at once; what cannot finish is
//!   kept with its deadline and tried again after every poll of the stack
//!   ([`Service::completions`]); when its deadline passes it finishes with
//!   `timedOut` (a write with what it queued so far). A kept call on an
//!   object that goes away finishes with `closed`.
//! - **Listening**: a listener is `backlog` smoltcp sockets listening on
//!   its port; `accept` takes one that is established (or already
//!   half-closed by the peer) and a new one takes its place when the table
//!   has room ([`Service::maintain`]).
//! - **Closing**: a closed or released stream's socket is closed (FIN
//!   after what is queued) and kept until smoltcp is done with it, or
//!   [`Limits::linger_ms`] passed (then aborted), so the peer sees the end
//!   of the stream.

use crate::fin_repeat::{tuple, FinRepeats, Filtered};
use crate::policy::Policy;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use capos_abi::badge;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_serve::net::{NetworkInfo, NetworkServer, SocketAddr, TcpListenerServer, TcpStreamServer, UdpSocketServer, Wait};
use capos_serve::nic::NicCounters;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Address, Ipv4Cidr};

/// The service's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// TCP sockets in all: listening, streams, closing.
    pub tcp_sockets: usize,
    /// Most sockets one listener holds (a larger backlog is cut to this).
    pub backlog: u16,
    pub udp_sockets: usize,
    /// Calls waiting at once.
    pub kept: usize,
    pub tcp_rx_bytes: usize,
    pub tcp_tx_bytes: usize,
    pub udp_packets: usize,
    pub udp_bytes: usize,
    /// The largest datagram `send` takes (MTU - 28: no fragmentation).
    pub udp_max_datagram: usize,
    /// What `connect` with timeout 0 waits at most.
    pub connect_ms: u32,
    /// How long a closed socket may take to say goodbye before it is aborted.
    pub linger_ms: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            tcp_sockets: 200,
            backlog: 64,
            udp_sockets: 16,
            kept: 256,
            tcp_rx_bytes: 16 * 1024,
            tcp_tx_bytes: 16 * 1024,
            udp_packets: 16,
            udp_bytes: 16 * 1024,
            udp_max_datagram: 1472,
            connect_ms: 30_000,
            linger_ms: 10_000,
        }
    }
}

#[derive(Debug)]
enum Object {
    /// `backlog`: how many listening sockets it keeps.
    Listener { port: u16, backlog: usize, waiting: Vec<SocketHandle> },
    Stream { handle: SocketHandle },
    Udp { handle: SocketHandle },
    Closed,
}

/// A call that waits, and what it needs to finish.
#[derive(Debug)]
pub enum Op {
    Accept { listener: u64 },
    Connect { stream: u64 },
    Read { stream: u64, room: usize },
    Write { stream: u64, data: Vec<u8>, queued: usize },
    Receive { socket: u64, room: usize },
}

impl Op {
    fn object(&self) -> u64 {
        match self {
            Op::Accept { listener } => *listener,
            Op::Connect { stream } | Op::Read { stream, .. } | Op::Write { stream, .. } => *stream,
            Op::Receive { socket, .. } => *socket,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Op::Accept { .. } => 0,
            Op::Connect { .. } => 1,
            Op::Read { .. } => 2,
            Op::Write { .. } => 3,
            Op::Receive { .. } => 4,
        }
    }

    fn name(&self) -> &'static str {
        ["accept", "connect", "read", "write", "receive"][self.kind() as usize]
    }
}

#[derive(Debug)]
struct Kept {
    op: Op,
    deadline: Option<Instant>,
}

/// How a kept call finished: the result for its method's writer
/// (`capos_serve::net::answer_*`).
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// `connect`, `accept`: the new stream's badge.
    Cap(Result<u64, CapError>),
    /// `read`.
    Bytes(Result<Vec<u8>, CapError>),
    /// `write`.
    Count(Result<u64, CapError>),
    /// `receive`.
    Datagram(Result<(Vec<u8>, SocketAddr), CapError>),
}

/// Our address, as DHCP (or a test) set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Configured {
    address: Option<([u8; 4], u8)>,
    gateway: Option<[u8; 4]>,
    dhcp: bool,
}

pub struct Service {
    iface: Interface,
    sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    policy: Policy,
    limits: Limits,
    objects: BTreeMap<u64, Object>,
    next_id: u64,
    kept: BTreeMap<u64, Kept>,
    next_kept: u64,
    /// Closed streams' sockets still saying goodbye, and until when.
    closing: Vec<(SocketHandle, Instant)>,
    tcp_used: usize,
    udp_used: usize,
    next_ephemeral: u16,
    configured: Configured,
    /// Listeners short of sockets because the table was full.
    starved: bool,
    /// The time now (the main loop sets it before each round).
    pub now: Instant,
    pub mac: [u8; 6],
    pub link_up: bool,
    pub counters: NicCounters,
    /// Lines for the console (the main loop prints and clears them).
    pub log: Vec<String>,
    /// Peers' repeated FINs, rewritten before smoltcp sees them.
    pub fins: FinRepeats,
}

fn err(code: ErrorCode, message: &str) -> CapError {
    CapError::new(code, message)
}

fn closed() -> CapError {
    err(ErrorCode::Closed, "closed")
}

fn ip4(a: IpAddress) -> [u8; 4] {
    match a {
        IpAddress::Ipv4(v) => v.octets(),
    }
}

fn addr(e: IpEndpoint) -> SocketAddr {
    SocketAddr { ip: ip4(e.addr), port: e.port }
}

impl Service {
    /// A service on `device` with `mac`; with `dhcp` it asks for an
    /// address, else it has none until [`set_address`](Self::set_address).
    pub fn new<D: Device + ?Sized>(device: &mut D, mac: [u8; 6], seed: u64, now: Instant, policy: Policy, limits: Limits, dhcp: bool) -> Service {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let iface = Interface::new(config, device, now);
        let mut sockets = SocketSet::new(vec![]);
        let dhcp = dhcp.then(|| sockets.add(dhcpv4::Socket::new()));
        Service {
            iface,
            sockets,
            dhcp,
            policy,
            limits,
            objects: BTreeMap::new(),
            next_id: 1,
            kept: BTreeMap::new(),
            next_kept: 1,
            closing: Vec::new(),
            tcp_used: 0,
            udp_used: 0,
            next_ephemeral: 49152 + (seed % 16384) as u16,
            configured: Configured::default(),
            starved: false,
            now,
            mac,
            link_up: true,
            counters: NicCounters::default(),
            log: Vec::new(),
            fins: FinRepeats::default(),
        }
    }

    /// A fixed address (tests, or a manifest that names one).
    pub fn set_address(&mut self, ip: [u8; 4], prefix: u8, gateway: Option<[u8; 4]>) {
        self.configure(Some((ip, prefix)), gateway, false);
    }

    fn configure(&mut self, address: Option<([u8; 4], u8)>, gateway: Option<[u8; 4]>, dhcp: bool) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some((ip, prefix)) = address {
                let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::from(ip), prefix)));
            }
        });
        match gateway {
            Some(gw) => {
                let _ = self.iface.routes_mut().add_default_ipv4_route(Ipv4Address::from(gw));
            }
            None => {
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
        self.configured = Configured { address, gateway, dhcp };
    }

    /// Run the stack once: frames in and out, timers; then DHCP's news,
    /// listeners refilled, closed sockets reaped.
    pub fn poll<D: Device + ?Sized>(&mut self, device: &mut D) {
        // A peer's FIN stops the batch of frames (fin_repeat), so that
        // its repeats behind it are seen knowing whether smoltcp took it.
        for _ in 0..64 {
            self.fins.hold = false;
            let mut device = Filtered { inner: &mut *device, fins: &mut self.fins };
            self.iface.poll(self.now, &mut device, &mut self.sockets);
            if self.fins.waiting() {
                self.fins_taken();
            }
            if !self.fins.hold {
                break;
            }
        }
        self.fins.hold = false;
        if let Some(h) = self.dhcp {
            match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
                Some(dhcpv4::Event::Configured(c)) => {
                    let ip = c.address.address().octets();
                    let prefix = c.address.prefix_len();
                    let gw = c.router.map(|r| r.octets());
                    self.configure(Some((ip, prefix)), gw, true);
                    let via = gw.map(|[a, b, c, d]| format!(" via {a}.{b}.{c}.{d}")).unwrap_or_default();
                    let [a, b, c2, d] = ip;
                    self.log.push(format!("net: {a}.{b}.{c2}.{d}/{prefix}{via} (dhcp)"));
                }
                // (smoltcp reports one at the start, before any lease.)
                Some(dhcpv4::Event::Deconfigured) if self.configured.dhcp => {
                    self.configure(None, None, false);
                    self.log.push(String::from("net: the DHCP lease is gone; no address"));
                }
                Some(dhcpv4::Event::Deconfigured) => {}
                None => {}
            }
        }
        self.maintain();
    }

    /// Tell [`FinRepeats`] which connections' FINs smoltcp has taken (their
    /// sockets are past one).
    fn fins_taken(&mut self) {
        for (_, socket) in self.sockets.iter() {
            if !self.fins.waiting() {
                break;
            }
            let smoltcp::socket::Socket::Tcp(s) = socket else { continue };
            if !matches!(s.state(), tcp::State::CloseWait | tcp::State::LastAck | tcp::State::Closing | tcp::State::TimeWait) {
                continue;
            }
            if let (Some(r), Some(l)) = (s.remote_endpoint(), s.local_endpoint()) {
                self.fins.taken(tuple((ip4(r.addr), r.port), (ip4(l.addr), l.port)));
            }
        }
        self.fins.drop_untaken();
    }

    /// How long the stack can wait before it must be polled again: smoltcp's
    /// own timers and the nearest deadline of a kept call.
    pub fn poll_delay(&mut self) -> Option<Duration> {
        let stack = self.iface.poll_delay(self.now, &self.sockets);
        let kept = self.kept.values().filter_map(|k| k.deadline).min().map(|d| if d > self.now { d - self.now } else { Duration::ZERO });
        match (stack, kept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Listeners topped up to their backlog, closed sockets gone.
    pub fn maintain(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.closing.len() {
            let (h, deadline) = self.closing[i];
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            let gone = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait);
            if gone || now >= deadline {
                if !gone {
                    s.abort();
                }
                self.sockets.remove(h);
                self.tcp_used -= 1;
                self.closing.swap_remove(i);
            } else {
                i += 1;
            }
        }
        // A handshake that failed leaves its socket closed: listen again.
        let mut relisten = Vec::new();
        for obj in self.objects.values() {
            if let Object::Listener { port, waiting, .. } = obj {
                for h in waiting {
                    if self.sockets.get::<tcp::Socket>(*h).state() == tcp::State::Closed {
                        relisten.push((*h, *port));
                    }
                }
            }
        }
        for (h, port) in relisten {
            let _ = self.sockets.get_mut::<tcp::Socket>(h).listen(port);
        }
        // Listeners topped up as connections arrive, so a burst of up to
        // `backlog` more finds sockets listening.
        let ids: Vec<u64> = self.objects.iter().filter(|(_, o)| matches!(o, Object::Listener { .. })).map(|(b, _)| *b).collect();
        let mut starved = false;
        for id in ids {
            starved |= !self.refill(id);
        }
        if starved && !self.starved {
            self.log.push(format!("net: the TCP socket table is full ({} sockets): listeners are short of listening sockets", self.limits.tcp_sockets));
        }
        self.starved = starved;
    }

    /// Keep listener `id` at `backlog` sockets listening, while it holds
    /// fewer than twice that (the rest established, waiting for accept)
    /// and the table has room; false when the table stopped it.
    fn refill(&mut self, id: u64) -> bool {
        let Some(Object::Listener { port, backlog, waiting }) = self.objects.get(&id) else { return true };
        let listening = waiting.iter().filter(|h| self.sockets.get::<tcp::Socket>(**h).state() == tcp::State::Listen).count();
        let want = backlog.saturating_sub(listening).min((2 * backlog).saturating_sub(waiting.len()));
        let port = *port;
        for _ in 0..want {
            if self.tcp_used >= self.limits.tcp_sockets {
                return false;
            }
            let h = self.new_tcp_socket();
            let _ = self.sockets.get_mut::<tcp::Socket>(h).listen(port);
            if let Some(Object::Listener { waiting, .. }) = self.objects.get_mut(&id) {
                waiting.push(h);
            }
        }
        true
    }

    /// A new TCP socket, or `noSpace` (logged) when the table is full.
    fn new_tcp(&mut self, what: &str) -> Result<SocketHandle, CapError> {
        if self.tcp_used >= self.limits.tcp_sockets {
            let m = format!("the TCP socket table is full ({} sockets): {what} refused", self.limits.tcp_sockets);
            self.log.push(format!("net: {m}"));
            return Err(err(ErrorCode::NoSpace, &m));
        }
        Ok(self.new_tcp_socket())
    }

    /// A new TCP socket (the caller checked the table has room).
    fn new_tcp_socket(&mut self) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; self.limits.tcp_rx_bytes]);
        let tx = tcp::SocketBuffer::new(vec![0; self.limits.tcp_tx_bytes]);
        let mut s = tcp::Socket::new(rx, tx);
        s.set_nagle_enabled(false);
        self.tcp_used += 1;
        self.sockets.add(s)
    }

    fn add_object(&mut self, o: Object) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let b = badge::server_minted(id);
        self.objects.insert(b, o);
        b
    }

    fn object(&self, b: u64) -> Result<&Object, CapError> {
        match self.objects.get(&b) {
            Some(Object::Closed) => Err(closed()),
            Some(o) => Ok(o),
            None => Err(err(ErrorCode::StaleHandle, "no such socket (a capability of an earlier instance of the service?)")),
        }
    }

    fn stream_handle(&self, b: u64) -> Result<SocketHandle, CapError> {
        match self.object(b)? {
            Object::Stream { handle } => Ok(*handle),
            _ => Err(err(ErrorCode::InvalidArgument, "this capability is not a TcpStream")),
        }
    }

    fn udp_handle(&self, b: u64) -> Result<SocketHandle, CapError> {
        match self.object(b)? {
            Object::Udp { handle } => Ok(*handle),
            _ => Err(err(ErrorCode::InvalidArgument, "this capability is not a UdpSocket")),
        }
    }

    fn ephemeral(&mut self) -> u16 {
        loop {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p >= 65535 { 49152 } else { p + 1 };
            let used = self.objects.values().any(|o| match o {
                Object::Listener { port, .. } => *port == p,
                Object::Udp { handle } => self.sockets.get::<udp::Socket>(*handle).endpoint().port == p,
                _ => false,
            });
            if !used {
                return p;
            }
        }
    }

    /// Open sockets now (listeners, streams, UDP sockets; not closed ones).
    pub fn open_sockets(&self) -> usize {
        self.objects.values().filter(|o| !matches!(o, Object::Closed)).count()
    }

    /// Calls waiting now.
    pub fn kept_calls(&self) -> usize {
        self.kept.len()
    }

    /// TCP sockets in use (listening, streams, closing).
    pub fn tcp_sockets(&self) -> usize {
        self.tcp_used
    }

    /// Try `op` now; keep it (its id) if it must wait and may.
    fn wait(&mut self, op: Op, timeout_ms: u32) -> Wait<Done, u64> {
        let mut k = Kept { op, deadline: (timeout_ms > 0).then(|| self.now + Duration::from_millis(timeout_ms as u64)) };
        if let Some(done) = self.try_finish(&mut k) {
            return Wait::Done(Ok(done));
        }
        let refuse = if self.kept.len() >= self.limits.kept {
            let m = format!("{} calls are waiting already, the most the service keeps", self.limits.kept);
            self.log.push(format!("net: {m}: {} refused", k.op.name()));
            Some(err(ErrorCode::Busy, &m))
        } else if self.kept.values().any(|o| o.op.object() == k.op.object() && o.op.kind() == k.op.kind()) {
            Some(err(ErrorCode::Busy, &format!("another {} on this socket is waiting", k.op.name())))
        } else {
            None
        };
        if let Some(e) = refuse {
            // A connect that may not wait leaves nothing behind.
            if let Op::Connect { stream } = k.op {
                self.drop_object(stream);
            }
            return Wait::Done(Err(e));
        }
        let id = self.next_kept;
        self.next_kept += 1;
        self.kept.insert(id, k);
        Wait::Pending(id)
    }

    /// Kept calls that finished (or ran out of time) since last asked.
    pub fn completions(&mut self) -> Vec<(u64, Done)> {
        let ids: Vec<u64> = self.kept.keys().copied().collect();
        let mut out = Vec::new();
        for id in ids {
            let mut k = self.kept.remove(&id).expect("listed");
            match self.try_finish(&mut k) {
                Some(done) => out.push((id, done)),
                None => {
                    self.kept.insert(id, k);
                }
            }
        }
        out
    }

    /// Finish `k` if it can, or if its time ran out.
    fn try_finish(&mut self, k: &mut Kept) -> Option<Done> {
        let expired = k.deadline.is_some_and(|d| self.now >= d);
        let timed_out = |what: &str| err(ErrorCode::TimedOut, &format!("{what}: the time given ran out"));
        match &mut k.op {
            Op::Accept { listener } => {
                let listener = *listener;
                let found = match self.object(listener) {
                    Err(e) => return Some(Done::Cap(Err(e))),
                    Ok(Object::Listener { waiting, .. }) => waiting.iter().position(|h| {
                        let s = self.sockets.get::<tcp::Socket>(*h);
                        matches!(s.state(), tcp::State::Established | tcp::State::CloseWait)
                    }),
                    Ok(_) => return Some(Done::Cap(Err(err(ErrorCode::InvalidArgument, "not a TcpListener")))),
                };
                match found {
                    Some(i) => {
                        let h = match self.objects.get_mut(&listener) {
                            Some(Object::Listener { waiting, .. }) => waiting.remove(i),
                            _ => unreachable!("looked up above"),
                        };
                        let b = self.add_object(Object::Stream { handle: h });
                        Some(Done::Cap(Ok(b)))
                    }
                    None if expired => Some(Done::Cap(Err(timed_out("accept")))),
                    None => None,
                }
            }
            Op::Connect { stream } => {
                let stream = *stream;
                let h = match self.stream_handle(stream) {
                    Ok(h) => h,
                    Err(e) => return Some(Done::Cap(Err(e))),
                };
                match self.sockets.get::<tcp::Socket>(h).state() {
                    tcp::State::Established | tcp::State::CloseWait => Some(Done::Cap(Ok(stream))),
                    tcp::State::Closed => {
                        self.drop_object(stream);
                        Some(Done::Cap(Err(err(ErrorCode::ConnectionRefused, "the peer refused the connection"))))
                    }
                    _ if expired => {
                        self.drop_object(stream);
                        Some(Done::Cap(Err(timed_out("connect"))))
                    }
                    _ => None,
                }
            }
            Op::Read { stream, room } => {
                let h = match self.stream_handle(*stream) {
                    Ok(h) => h,
                    Err(e) => return Some(Done::Bytes(Err(e))),
                };
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                if s.can_recv() {
                    let mut buf = vec![0u8; (*room).min(s.recv_queue())];
                    let n = s.recv_slice(&mut buf).unwrap_or(0);
                    buf.truncate(n);
                    return Some(Done::Bytes(Ok(buf)));
                }
                if !s.may_recv() {
                    // The peer closed its side (or the connection is gone).
                    return Some(Done::Bytes(Ok(Vec::new())));
                }
                expired.then(|| Done::Bytes(Err(timed_out("read"))))
            }
            Op::Write { stream, data, queued } => {
                let h = match self.stream_handle(*stream) {
                    Ok(h) => h,
                    Err(e) => return Some(Done::Count(Err(e))),
                };
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                if !s.may_send() {
                    if *queued > 0 {
                        return Some(Done::Count(Ok(*queued as u64)));
                    }
                    let e = match s.state() {
                        tcp::State::Closed => err(ErrorCode::ConnectionReset, "the connection is gone"),
                        _ => err(ErrorCode::Closed, "this stream was shut down for sending"),
                    };
                    return Some(Done::Count(Err(e)));
                }
                *queued += s.send_slice(&data[*queued..]).unwrap_or(0);
                if *queued == data.len() {
                    return Some(Done::Count(Ok(*queued as u64)));
                }
                match (expired, *queued) {
                    (false, _) => None,
                    (true, 0) => Some(Done::Count(Err(timed_out("write")))),
                    (true, n) => Some(Done::Count(Ok(n as u64))),
                }
            }
            Op::Receive { socket, room } => {
                let h = match self.udp_handle(*socket) {
                    Ok(h) => h,
                    Err(e) => return Some(Done::Datagram(Err(e))),
                };
                let s = self.sockets.get_mut::<udp::Socket>(h);
                match s.recv() {
                    Ok((data, meta)) => {
                        let n = data.len().min(*room);
                        Some(Done::Datagram(Ok((data[..n].to_vec(), addr(meta.endpoint)))))
                    }
                    Err(_) if expired => Some(Done::Datagram(Err(timed_out("receive")))),
                    Err(_) => None,
                }
            }
        }
    }

    /// Close object `b` now and forget it entirely (no capability of it
    /// was handed out: a failed connect).
    fn drop_object(&mut self, b: u64) {
        self.close_object(b);
        self.objects.remove(&b);
    }

    /// Close what `b` holds; it answers `closed` from now on.
    fn close_object(&mut self, b: u64) {
        let Some(o) = self.objects.insert(b, Object::Closed) else {
            self.objects.remove(&b);
            return;
        };
        match o {
            Object::Listener { waiting, .. } => {
                for h in waiting {
                    self.sockets.get_mut::<tcp::Socket>(h).abort();
                    self.sockets.remove(h);
                    self.tcp_used -= 1;
                }
            }
            Object::Stream { handle } => {
                self.sockets.get_mut::<tcp::Socket>(handle).close();
                self.closing.push((handle, self.now + Duration::from_millis(self.limits.linger_ms as u64)));
            }
            Object::Udp { handle } => {
                self.sockets.remove(handle);
                self.udp_used -= 1;
            }
            Object::Closed => {}
        }
    }

    /// The last capability of `b` is gone: close it (if it was not) and
    /// forget it. Calls kept on it finish with `closed` at the next
    /// [`completions`](Self::completions).
    pub fn released(&mut self, b: u64) -> bool {
        if !self.objects.contains_key(&b) {
            return false;
        }
        self.close_object(b);
        self.objects.remove(&b);
        true
    }

    fn deadline_ms(&self, timeout_ms: u32, default: u32) -> u32 {
        if timeout_ms == 0 {
            default
        } else {
            timeout_ms
        }
    }
}

/// A waiting op's outcome as its method's: `pick` takes the one kind of
/// [`Done`] the op finishes with.
fn narrow<T>(w: Wait<Done, u64>, pick: fn(Done) -> Option<Result<T, CapError>>) -> Wait<T, u64> {
    match w {
        Wait::Done(Ok(d)) => Wait::Done(pick(d).expect("an op finishes as its own kind")),
        Wait::Done(Err(e)) => Wait::Done(Err(e)),
        Wait::Pending(id) => Wait::Pending(id),
    }
}

fn cap(w: Wait<Done, u64>) -> Wait<u64, u64> {
    narrow(w, |d| if let Done::Cap(r) = d { Some(r) } else { None })
}

impl NetworkServer for Service {
    type Cap = u64;
    type Pending = u64;

    fn info(&mut self, b: u64) -> Result<NetworkInfo, CapError> {
        self.policy.check_info(b)?;
        Ok(NetworkInfo {
            address: self.configured.address,
            gateway: self.configured.gateway,
            dhcp: self.configured.dhcp,
            mac: self.mac,
            link_up: self.link_up,
            counters: self.counters,
            open_sockets: self.open_sockets() as u32,
        })
    }

    fn listen(&mut self, b: u64, port: u16, backlog: u16) -> Result<u64, CapError> {
        self.policy.check_listen(b, port)?;
        if self.objects.values().any(|o| matches!(o, Object::Listener { port: p, .. } if *p == port)) {
            return Err(err(ErrorCode::AlreadyExists, &format!("port {port} has a listener already")));
        }
        let backlog = backlog.min(self.limits.backlog) as usize;
        if self.tcp_used + backlog > self.limits.tcp_sockets {
            let m = format!("the TCP socket table is full ({} sockets): listen on port {port} with backlog {backlog} refused", self.limits.tcp_sockets);
            self.log.push(format!("net: {m}"));
            return Err(err(ErrorCode::NoSpace, &m));
        }
        let mut waiting = Vec::new();
        for _ in 0..backlog {
            let h = self.new_tcp("listen")?;
            self.sockets.get_mut::<tcp::Socket>(h).listen(port).map_err(|e| err(ErrorCode::InvalidArgument, &format!("listen on {port}: {e:?}")))?;
            waiting.push(h);
        }
        Ok(self.add_object(Object::Listener { port, backlog, waiting }))
    }

    fn connect(&mut self, b: u64, peer: SocketAddr, timeout_ms: u32) -> Wait<u64, u64> {
        if let Err(e) = self.policy.check_connect(b) {
            return Wait::Done(Err(e));
        }
        if self.configured.address.is_none() {
            return Wait::Done(Err(err(ErrorCode::Unavailable, "no address yet (DHCP has not answered)")));
        }
        let h = match self.new_tcp("connect") {
            Ok(h) => h,
            Err(e) => return Wait::Done(Err(e)),
        };
        let local = self.ephemeral();
        let remote = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::from(peer.ip)), peer.port);
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        if let Err(e) = s.connect(self.iface.context(), remote, IpListenEndpoint { addr: None, port: local }) {
            self.sockets.remove(h);
            self.tcp_used -= 1;
            return Wait::Done(Err(err(ErrorCode::InvalidArgument, &format!("connect to {peer}: {e:?}"))));
        }
        let stream = self.add_object(Object::Stream { handle: h });
        let ms = self.deadline_ms(timeout_ms, self.limits.connect_ms);
        cap(self.wait(Op::Connect { stream }, ms))
    }

    fn udp_bind(&mut self, b: u64, port: u16) -> Result<u64, CapError> {
        self.policy.check_udp(b, port)?;
        if self.udp_used >= self.limits.udp_sockets {
            let m = format!("the UDP socket table is full ({} sockets): bind refused", self.limits.udp_sockets);
            self.log.push(format!("net: {m}"));
            return Err(err(ErrorCode::NoSpace, &m));
        }
        let port = if port == 0 { self.ephemeral() } else { port };
        let in_use = self.objects.values().any(|o| matches!(o, Object::Udp { handle } if self.sockets.get::<udp::Socket>(*handle).endpoint().port == port));
        if in_use {
            return Err(err(ErrorCode::AlreadyExists, &format!("UDP port {port} is bound already")));
        }
        let l = &self.limits;
        let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; l.udp_packets], vec![0; l.udp_bytes]);
        let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; l.udp_packets], vec![0; l.udp_bytes]);
        let mut s = udp::Socket::new(rx, tx);
        s.bind(port).map_err(|e| err(ErrorCode::InvalidArgument, &format!("bind {port}: {e:?}")))?;
        self.udp_used += 1;
        let h = self.sockets.add(s);
        Ok(self.add_object(Object::Udp { handle: h }))
    }
}

impl TcpListenerServer for Service {
    type Cap = u64;
    type Pending = u64;

    fn accept(&mut self, b: u64, timeout_ms: u32) -> Wait<u64, u64> {
        match self.object(b) {
            Ok(Object::Listener { .. }) => cap(self.wait(Op::Accept { listener: b }, timeout_ms)),
            Ok(_) => Wait::Done(Err(err(ErrorCode::InvalidArgument, "this capability is not a TcpListener"))),
            Err(e) => Wait::Done(Err(e)),
        }
    }

    fn local(&mut self, b: u64) -> Result<SocketAddr, CapError> {
        match self.object(b)? {
            Object::Listener { port, .. } => Ok(SocketAddr { ip: self.configured.address.map(|a| a.0).unwrap_or_default(), port: *port }),
            _ => Err(err(ErrorCode::InvalidArgument, "this capability is not a TcpListener")),
        }
    }

    fn close(&mut self, b: u64) -> Result<(), CapError> {
        match self.object(b)? {
            Object::Listener { .. } => {
                self.close_object(b);
                Ok(())
            }
            _ => Err(err(ErrorCode::InvalidArgument, "this capability is not a TcpListener")),
        }
    }
}

impl TcpStreamServer for Service {
    type Pending = u64;

    fn read(&mut self, b: u64, room: usize, timeout_ms: u32) -> Wait<Vec<u8>, u64> {
        if let Err(e) = self.stream_handle(b) {
            return Wait::Done(Err(e));
        }
        narrow(self.wait(Op::Read { stream: b, room }, timeout_ms), |d| if let Done::Bytes(r) = d { Some(r) } else { None })
    }

    fn write(&mut self, b: u64, data: Vec<u8>, timeout_ms: u32) -> Wait<u64, u64> {
        if let Err(e) = self.stream_handle(b) {
            return Wait::Done(Err(e));
        }
        narrow(self.wait(Op::Write { stream: b, data, queued: 0 }, timeout_ms), |d| if let Done::Count(r) = d { Some(r) } else { None })
    }

    fn shutdown(&mut self, b: u64) -> Result<(), CapError> {
        let h = self.stream_handle(b)?;
        self.sockets.get_mut::<tcp::Socket>(h).close();
        Ok(())
    }

    fn close(&mut self, b: u64) -> Result<(), CapError> {
        self.stream_handle(b)?;
        self.close_object(b);
        Ok(())
    }

    fn peer(&mut self, b: u64) -> Result<SocketAddr, CapError> {
        let h = self.stream_handle(b)?;
        self.sockets.get::<tcp::Socket>(h).remote_endpoint().map(addr).ok_or_else(|| err(ErrorCode::ConnectionReset, "the connection is gone"))
    }

    fn local(&mut self, b: u64) -> Result<SocketAddr, CapError> {
        let h = self.stream_handle(b)?;
        self.sockets.get::<tcp::Socket>(h).local_endpoint().map(addr).ok_or_else(|| err(ErrorCode::ConnectionReset, "the connection is gone"))
    }
}

impl UdpSocketServer for Service {
    type Pending = u64;

    fn send(&mut self, b: u64, peer: SocketAddr, datagram: &[u8]) -> Result<(), CapError> {
        let h = self.udp_handle(b)?;
        if datagram.len() > self.limits.udp_max_datagram {
            return Err(err(ErrorCode::TooLarge, &format!("a datagram of {} bytes; at most {} (no fragmentation)", datagram.len(), self.limits.udp_max_datagram)));
        }
        let to = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::from(peer.ip)), peer.port);
        self.sockets.get_mut::<udp::Socket>(h).send_slice(datagram, to).map_err(|e| match e {
            udp::SendError::BufferFull => err(ErrorCode::Busy, "the socket's send queue is full; try again"),
            udp::SendError::Unaddressable => err(ErrorCode::Unavailable, &format!("cannot send to {peer} (no address yet?)")),
        })
    }

    fn receive(&mut self, b: u64, room: usize, timeout_ms: u32) -> Wait<(Vec<u8>, SocketAddr), u64> {
        if let Err(e) = self.udp_handle(b) {
            return Wait::Done(Err(e));
        }
        narrow(self.wait(Op::Receive { socket: b, room }, timeout_ms), |d| if let Done::Datagram(r) = d { Some(r) } else { None })
    }

    fn local(&mut self, b: u64) -> Result<SocketAddr, CapError> {
        let h = self.udp_handle(b)?;
        let port = self.sockets.get::<udp::Socket>(h).endpoint().port;
        Ok(SocketAddr { ip: self.configured.address.map(|a| a.0).unwrap_or_default(), port })
    }

    fn close(&mut self, b: u64) -> Result<(), CapError> {
        self.udp_handle(b)?;
        self.close_object(b);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{Loopback, Medium};
    use std::collections::HashMap;

    const HOME: [u8; 4] = [127, 0, 0, 1];

    struct Net {
        svc: Service,
        dev: Loopback,
        done: HashMap<u64, Done>,
    }

    fn grant(p: usize) -> u64 {
        badge::manifest_grant(p, 0, false).unwrap()
    }

    fn net(limits: Limits) -> Net {
        let mut dev = Loopback::new(Medium::Ethernet);
        let policy = Policy::of(&[(grant(0), "listen=80,8080 connect udp"), (grant(1), "udp")]);
        let mut svc = Service::new(&mut dev, [2, 0, 0, 0, 0, 1], 7, Instant::from_millis(1000), policy, limits, false);
        svc.set_address(HOME, 8, None);
        Net { svc, dev, done: HashMap::new() }
    }

    impl Net {
        /// Poll for `ms` milliseconds of stack time, a millisecond a step.
        fn run(&mut self, ms: u64) {
            for _ in 0..ms {
                self.svc.now += Duration::from_millis(1);
                self.svc.poll(&mut self.dev);
                for (id, d) in self.svc.completions() {
                    assert!(self.done.insert(id, d).is_none(), "kept call {id} finished twice");
                }
            }
        }

        /// Run until kept call `id` finished (at most 5 s of stack time).
        fn wait(&mut self, id: u64) -> Done {
            for _ in 0..5000 {
                if let Some(d) = self.done.remove(&id) {
                    return d;
                }
                self.run(1);
            }
            panic!("kept call {id} never finished");
        }

        fn cap(&mut self, w: Wait<u64, u64>) -> Result<u64, CapError> {
            match w {
                Wait::Done(r) => r,
                Wait::Pending(id) => match self.wait(id) {
                    Done::Cap(r) => r,
                    other => panic!("{other:?}"),
                },
            }
        }

        /// A listener on 80 and a connection to it: (client, server) streams.
        fn pair(&mut self, listener: u64) -> (u64, u64) {
            let accept = TcpListenerServer::accept(&mut self.svc, listener, 0);
            let client = self.svc.connect(grant(0), SocketAddr { ip: HOME, port: 80 }, 2000);
            let client = self.cap(client).expect("connected");
            let server = self.cap(accept).expect("accepted");
            (client, server)
        }

        fn write_all(&mut self, s: u64, data: &[u8]) {
            for chunk in data.chunks(capos_abi::limits::MAX_NET_IO_BYTES) {
                match TcpStreamServer::write(&mut self.svc, s, chunk.to_vec(), 5000) {
                    Wait::Done(r) => assert_eq!(r, Ok(chunk.len() as u64)),
                    Wait::Pending(id) => assert_eq!(self.wait(id), Done::Count(Ok(chunk.len() as u64))),
                }
            }
        }

        fn read(&mut self, s: u64, room: usize, timeout: u32) -> Result<Vec<u8>, CapError> {
            match TcpStreamServer::read(&mut self.svc, s, room, timeout) {
                Wait::Done(r) => r,
                Wait::Pending(id) => match self.wait(id) {
                    Done::Bytes(r) => r,
                    other => panic!("{other:?}"),
                },
            }
        }

        fn listen(&mut self, port: u16, backlog: u16) -> Result<u64, CapError> {
            self.svc.listen(grant(0), port, backlog)
        }
    }

    #[test]
    fn a_connection_carries_more_than_a_window_both_ways_and_ends_with_eof() {
        let mut n = net(Limits::default());
        let l = n.listen(80, 4).unwrap();
        assert_eq!(n.svc.tcp_sockets(), 4, "a listener holds its backlog of sockets");
        let (client, server) = n.pair(l);
        assert_eq!(n.svc.tcp_sockets(), 6, "the accepted socket was replaced: 4 listening, the client, the accepted stream");
        assert_eq!(TcpStreamServer::peer(&mut n.svc, server).unwrap().ip, HOME);
        assert_eq!(TcpStreamServer::local(&mut n.svc, server).unwrap().port, 80);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        // Write from one side while reading the other: the windows are 16 KiB.
        let mut got = Vec::new();
        let mut at = 0;
        while got.len() < data.len() {
            if at < data.len() {
                let end = (at + 8192).min(data.len());
                if let Wait::Done(Ok(k)) = TcpStreamServer::write(&mut n.svc, client, data[at..end].to_vec(), 1) {
                    at += k as usize;
                }
            }
            n.run(1);
            if let Wait::Done(Ok(bytes)) = TcpStreamServer::read(&mut n.svc, server, 65536, 1) {
                got.extend_from_slice(&bytes);
            }
            for (_, d) in n.done.drain() {
                match d {
                    Done::Count(Ok(k)) => at += k as usize,
                    Done::Bytes(Ok(b)) => got.extend_from_slice(&b),
                    Done::Count(Err(e)) | Done::Bytes(Err(e)) => assert_eq!(e.code, ErrorCode::TimedOut),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(got == data, "the bytes arrive in order, unchanged");
        // The last 1 ms read may still be waiting: let it time out.
        n.run(5);
        assert!(n.done.drain().all(|(_, d)| matches!(d, Done::Bytes(Err(e)) if e.code == ErrorCode::TimedOut)));
        // The client closes: the server reads the end of the stream.
        TcpStreamServer::close(&mut n.svc, client).unwrap();
        assert_eq!(n.read(server, 100, 2000), Ok(Vec::new()), "0 bytes: the peer closed its side");
        assert_eq!(TcpStreamServer::read(&mut n.svc, client, 10, 0), Wait::Done(Err(closed())), "a closed stream answers closed");
        n.svc.released(client);
        assert_eq!(TcpStreamServer::read(&mut n.svc, client, 10, 0), Wait::Done(Err(err(ErrorCode::StaleHandle, "no such socket (a capability of an earlier instance of the service?)"))));
    }

    #[test]
    fn dropping_the_last_capability_closes_the_socket() {
        let mut n = net(Limits::default());
        let l = n.listen(80, 2).unwrap();
        let (client, server) = n.pair(l);
        let reading = TcpStreamServer::read(&mut n.svc, client, 100, 0);
        let Wait::Pending(id) = reading else { panic!("nothing to read yet") };
        assert!(n.svc.released(server), "the server side's capability is gone");
        assert_eq!(n.wait(id), Done::Bytes(Ok(Vec::new())), "the client sees the end of the stream");
        assert_eq!(n.svc.open_sockets(), 2, "the listener and the client");
        // A released listener frees its sockets; its waiting accept ends.
        let Wait::Pending(acc) = TcpListenerServer::accept(&mut n.svc, l, 0) else { panic!() };
        n.svc.released(l);
        assert!(matches!(n.wait(acc), Done::Cap(Err(e)) if e.code == ErrorCode::StaleHandle));
        n.run(50);
        n.svc.released(client);
        n.run(50);
        assert_eq!(n.svc.open_sockets(), 0);
        assert_eq!(n.svc.tcp_sockets(), 0, "every socket is gone once closed");
    }

    #[test]
    fn terms_decide_and_a_refusal_names_the_port() {
        let mut n = net(Limits::default());
        let e = n.listen(81, 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert!(e.message.contains("port 81"), "{}", e.message);
        let e = n.svc.listen(grant(1), 80, 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied, "udp-only grant");
        assert!(matches!(n.svc.connect(grant(1), SocketAddr { ip: HOME, port: 80 }, 10), Wait::Done(Err(e)) if e.code == ErrorCode::PermissionDenied));
        let l = n.listen(80, 1).unwrap();
        assert_eq!(n.listen(80, 1).unwrap_err().code, ErrorCode::AlreadyExists);
        // A socket's own capability is not a Network.
        assert_eq!(n.svc.listen(l, 80, 1).unwrap_err().code, ErrorCode::PermissionDenied);
        assert_eq!(TcpStreamServer::close(&mut n.svc, l).unwrap_err().code, ErrorCode::InvalidArgument, "a listener is not a stream");
        assert_eq!(n.svc.open_sockets(), 1);
    }

    #[test]
    fn a_full_table_refuses_with_no_space_says_so_and_the_service_goes_on() {
        let mut n = net(Limits { tcp_sockets: 4, ..Limits::default() });
        let l = n.listen(80, 2).unwrap();
        let e = n.listen(8080, 3).unwrap_err();
        assert_eq!(e.code, ErrorCode::NoSpace);
        assert!(e.message.contains("table is full (4 sockets)"), "{}", e.message);
        assert_eq!(n.svc.log.len(), 1, "one line per refusal: {:?}", n.svc.log);
        let (c1, s1) = n.pair(l);
        // Listener 2 + client 1 + the refill 1 = 4: the table is full.
        assert_eq!(n.svc.tcp_sockets(), 4);
        assert!(matches!(n.svc.connect(grant(0), SocketAddr { ip: HOME, port: 80 }, 100), Wait::Done(Err(e)) if e.code == ErrorCode::NoSpace));
        // Still serving the connection it has.
        n.write_all(c1, b"still here");
        assert_eq!(n.read(s1, 100, 1000).unwrap(), b"still here");
        // Room again once a stream is gone: the listener is topped up later.
        n.svc.released(c1);
        n.svc.released(s1);
        n.run(100);
        let (c2, _s2) = n.pair(l);
        n.write_all(c2, b"again");
    }

    #[test]
    fn sixty_four_connections_at_once() {
        let mut n = net(Limits::default());
        let l = n.listen(80, 16).unwrap();
        let mut pairs = Vec::new();
        for _ in 0..64 {
            pairs.push(n.pair(l));
        }
        for (i, (c, s)) in pairs.iter().enumerate() {
            n.write_all(*c, format!("connection {i}").as_bytes());
            let _ = s;
        }
        for (i, (_, s)) in pairs.iter().enumerate() {
            assert_eq!(n.read(*s, 100, 1000).unwrap(), format!("connection {i}").as_bytes());
        }
        assert_eq!(n.svc.open_sockets(), 129);
    }

    #[test]
    fn a_burst_of_backlog_connections_after_earlier_ones_all_connect() {
        let mut n = net(Limits::default());
        let l = n.listen(80, 64).unwrap();
        for _ in 0..16 {
            let (c, s) = n.pair(l);
            assert!(n.svc.released(c) && n.svc.released(s));
            n.run(5);
        }
        n.run(50);
        // 64 connects at once, before anyone accepts: each must find a
        // socket listening.
        let pending: Vec<_> = (0..64).map(|_| n.svc.connect(grant(0), SocketAddr { ip: HOME, port: 80 }, 3000)).collect();
        let mut refused = 0;
        for w in pending {
            if n.cap(w).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 0, "connections refused in a burst of the backlog's size");
    }

    #[test]
    fn waiting_calls_are_bounded_one_of_a_kind_per_socket_and_time_out() {
        let mut n = net(Limits { kept: 2, ..Limits::default() });
        let l = n.listen(80, 2).unwrap();
        let (c, s) = n.pair(l);
        let Wait::Pending(r1) = TcpStreamServer::read(&mut n.svc, s, 10, 50) else { panic!() };
        assert!(matches!(TcpStreamServer::read(&mut n.svc, s, 10, 50), Wait::Done(Err(e)) if e.code == ErrorCode::Busy && e.message.contains("another read")));
        let Wait::Pending(_r2) = TcpStreamServer::read(&mut n.svc, c, 10, 0) else { panic!() };
        assert!(matches!(TcpListenerServer::accept(&mut n.svc, l, 10), Wait::Done(Err(e)) if e.code == ErrorCode::Busy));
        assert_eq!(n.svc.kept_calls(), 2);
        // The time runs out for the first read only.
        assert!(matches!(n.wait(r1), Done::Bytes(Err(e)) if e.code == ErrorCode::TimedOut));
        assert_eq!(n.svc.kept_calls(), 1, "forever is forever");
        let Wait::Pending(a) = TcpListenerServer::accept(&mut n.svc, l, 20) else { panic!() };
        assert!(matches!(n.wait(a), Done::Cap(Err(e)) if e.code == ErrorCode::TimedOut));
    }

    #[test]
    fn a_connect_to_a_closed_port_is_refused_and_leaves_nothing() {
        let mut n = net(Limits::default());
        let w = n.svc.connect(grant(0), SocketAddr { ip: HOME, port: 8080 }, 2000);
        assert_eq!(n.cap(w).unwrap_err().code, ErrorCode::ConnectionRefused);
        assert_eq!(n.svc.open_sockets(), 0);
        n.run(10);
        assert_eq!(n.svc.tcp_sockets(), 0);
    }

    #[test]
    fn udp_datagrams_go_both_ways_and_oversize_ones_are_refused() {
        let mut n = net(Limits::default());
        let a = n.svc.udp_bind(grant(1), 7).unwrap();
        let b = n.svc.udp_bind(grant(0), 0).unwrap();
        assert_eq!(n.svc.udp_bind(grant(0), 7).unwrap_err().code, ErrorCode::AlreadyExists);
        let bport = UdpSocketServer::local(&mut n.svc, b).unwrap().port;
        assert!(bport >= 49152);
        let Wait::Pending(id) = UdpSocketServer::receive(&mut n.svc, a, 4, 0) else { panic!() };
        UdpSocketServer::send(&mut n.svc, b, SocketAddr { ip: HOME, port: 7 }, b"ping!").unwrap();
        assert_eq!(n.wait(id), Done::Datagram(Ok((b"ping".to_vec(), SocketAddr { ip: HOME, port: bport }))), "cut to the buffer");
        let e = UdpSocketServer::send(&mut n.svc, b, SocketAddr { ip: HOME, port: 7 }, &[0; 1473]).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        assert!(matches!(UdpSocketServer::receive(&mut n.svc, a, 10, 0), Wait::Pending(_)));
        UdpSocketServer::close(&mut n.svc, a).unwrap();
        n.run(1);
        assert!(n.done.values().any(|d| matches!(d, Done::Datagram(Err(e)) if e.code == ErrorCode::Closed)), "a receive on a closed socket ends");
    }

    /// A peer on the wire, scripted: frames it sends wait in `rx` for the
    /// service, frames the service sends land in `tx`.
    #[derive(Default)]
    struct Scripted {
        rx: std::collections::VecDeque<Vec<u8>>,
        tx: Vec<Vec<u8>>,
    }

    struct Frame(Vec<u8>);
    struct Sent<'a>(&'a mut Vec<Vec<u8>>);

    impl smoltcp::phy::RxToken for Frame {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl smoltcp::phy::TxToken for Sent<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut frame = vec![0u8; len];
            let r = f(&mut frame);
            self.0.push(frame);
            r
        }
    }

    impl Device for Scripted {
        type RxToken<'a> = Frame;
        type TxToken<'a> = Sent<'a>;
        fn receive(&mut self, _: Instant) -> Option<(Frame, Sent<'_>)> {
            let f = self.rx.pop_front()?;
            Some((Frame(f), Sent(&mut self.tx)))
        }
        fn transmit(&mut self, _: Instant) -> Option<Sent<'_>> {
            Some(Sent(&mut self.tx))
        }
        fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
            let mut c = smoltcp::phy::DeviceCapabilities::default();
            c.medium = Medium::Ethernet;
            c.max_transmission_unit = 1514;
            c
        }
    }

    const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER_IP: [u8; 4] = [10, 0, 2, 2];
    const OUR_IP: [u8; 4] = [10, 0, 2, 15];

    fn ethernet(ethertype: smoltcp::wire::EthernetProtocol, payload_len: usize, fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
        use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetRepr};
        let eth = EthernetRepr { src_addr: EthernetAddress(PEER_MAC), dst_addr: EthernetAddress(OUR_MAC), ethertype };
        let mut buf = vec![0u8; eth.buffer_len() + payload_len];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut f);
        fill(f.payload_mut());
        buf
    }

    /// The peer asking who has our address (smoltcp learns its MAC).
    fn arp_request() -> Vec<u8> {
        use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress};
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(PEER_MAC),
            source_protocol_addr: Ipv4Address::from(PEER_IP),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Address::from(OUR_IP),
        };
        ethernet(smoltcp::wire::EthernetProtocol::Arp, arp.buffer_len(), |b| arp.emit(&mut ArpPacket::new_unchecked(b)))
    }

    /// A TCP segment from the peer's port 5000 to our port 80.
    fn from_peer(seq: u32, ack: Option<u32>, control: smoltcp::wire::TcpControl, payload: &[u8]) -> Vec<u8> {
        crate::fin_repeat::tcp_frame((PEER_IP, 5000), (OUR_IP, 80), seq, ack, control, payload)
    }

    /// (seq, payload length) of the last TCP segment the service sent.
    fn last_sent(tx: &[Vec<u8>]) -> (u32, usize) {
        use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpPacket};
        tx.iter()
            .rev()
            .find_map(|f| {
                let ip = Ipv4Packet::new_checked(EthernetFrame::new_checked(&f[..]).ok()?.payload()).ok()?;
                let t = TcpPacket::new_checked(ip.payload()).ok()?;
                Some((t.seq_number().0 as u32, t.payload().len()))
            })
            .expect("a TCP segment was sent")
    }

    /// QEMU's user network (libslirp, BSD's TCP) sets FIN on every segment
    /// after its own until that FIN is acknowledged, acknowledgments of
    /// our data included; smoltcp alone takes those for keep-alives and
    /// drops their acknowledgment, so data in flight when the peer's FIN
    /// came is never acknowledged and the send buffer never drains
    /// (fin_repeat). With the rewrite the acknowledgment counts.
    #[test]
    fn data_acknowledged_on_a_repeated_fin_leaves_the_send_buffer() {
        use smoltcp::wire::TcpControl;
        let mut dev = Scripted::default();
        let policy = Policy::of(&[(grant(0), "listen=80")]);
        let mut svc = Service::new(&mut dev, OUR_MAC, 7, Instant::from_millis(1000), policy, Limits::default(), false);
        svc.set_address(OUR_IP, 24, None);
        let l = svc.listen(grant(0), 80, 1).unwrap();
        let Wait::Pending(accept) = TcpListenerServer::accept(&mut svc, l, 0) else { panic!("nothing to accept yet") };
        let step = |svc: &mut Service, dev: &mut Scripted, frame: Option<Vec<u8>>| {
            dev.rx.extend(frame);
            svc.now += Duration::from_millis(1);
            svc.poll(dev);
            svc.completions()
        };
        step(&mut svc, &mut dev, Some(arp_request()));
        step(&mut svc, &mut dev, Some(from_peer(1000, None, TcpControl::Syn, &[])));
        let (isn, _) = last_sent(&dev.tx);
        let done = step(&mut svc, &mut dev, Some(from_peer(1001, Some(isn + 1), TcpControl::None, &[])));
        let stream = match done.as_slice() {
            [(id, Done::Cap(Ok(s)))] if *id == accept => *s,
            other => panic!("the connection was not accepted: {other:?}"),
        };
        // 100 bytes out; the peer's FIN comes before it acknowledges them,
        // then the acknowledgment, on a repeat of the FIN.
        assert!(matches!(TcpStreamServer::write(&mut svc, stream, vec![9u8; 100], 0), Wait::Done(Ok(100))));
        step(&mut svc, &mut dev, None);
        assert_eq!(last_sent(&dev.tx), (isn + 1, 100));
        // Both in one batch of frames, as they came in the failing runs:
        // the FIN holds the frames behind it until the sockets are asked.
        dev.rx.push_back(from_peer(1001, Some(isn + 1), TcpControl::Fin, &[]));
        step(&mut svc, &mut dev, Some(from_peer(1001, Some(isn + 101), TcpControl::Fin, &[])));
        assert!(dev.rx.is_empty(), "both frames were taken in one poll");
        let h = svc.stream_handle(stream).unwrap();
        let s = svc.sockets.get::<tcp::Socket>(h);
        assert_eq!(s.state(), tcp::State::CloseWait);
        assert_eq!(s.send_queue(), 0, "the 100 bytes were acknowledged (on the repeated FIN)");
        assert_eq!(svc.fins.rewritten, 1);
        // The FIN once more, nothing new acknowledged (our acknowledgment
        // of it lost): it reaches smoltcp as it came, and smoltcp answers.
        let sent = dev.tx.len();
        step(&mut svc, &mut dev, Some(from_peer(1001, Some(isn + 101), TcpControl::Fin, &[])));
        assert_eq!(svc.fins.rewritten, 1);
        assert!(dev.tx.len() > sent, "smoltcp acknowledged the repeated FIN");
    }
}
