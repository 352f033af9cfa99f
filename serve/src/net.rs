//! `Network`, `TcpListener`, `TcpStream`, `UdpSocket`: the traits a
//! network service implements and the capnp dispatchers in front of them
//! (one per interface), plus the result readers and writers client and
//! server share.
//!
//! Rules the dispatchers keep, so a server only sees calls it can answer:
//! - Bytes move through the bulk buffer only: `TcpStream.write` and
//!   `UdpSocket.send` need a readable bulk buffer of 1 to
//!   [`MAX_NET_IO_BYTES`] bytes (more is `tooLarge`), `TcpStream.read` and
//!   `UdpSocket.receive` a writable one; none, or the wrong direction, is
//!   `invalidArgument` and never reaches the server. A read is offered at
//!   most `min(the buffer, MAX_NET_IO_BYTES)` bytes.
//! - An address is 4 bytes of IPv4 (`invalidArgument` otherwise); a port
//!   to listen on or connect to is 1..=65535, a backlog at least 1.
//! - Calls that wait (`connect`, `accept`, `read`, `write`, `receive`)
//!   may be answered later: the server answers [`Wait::Pending`] with
//!   what it needs to finish the call, the dispatcher builds no results
//!   and returns [`Dispatched::Kept`] with it, and whoever holds the reply
//!   token answers later through [`answer_cap`], [`answer_read`],
//!   [`answer_write`] or [`answer_datagram`], the same writers the
//!   dispatchers use for an answer given at once.
//! - Every method gets the badge of the capability it came through: the
//!   server decides by it (which socket, which grant's terms).

use super::{cap_reply, u64_reply, void_reply, Responder};
use capos_abi::capos_capnp::{net_address, net_address_result, network, network_info_result, tcp_listener, tcp_stream, udp_socket, udp_receive_result, ErrorCode};
use capos_abi::helpers::{fill_error, read_error, which_err, CapError};
use capos_abi::interfaces::{network_method as nm, tcp_listener_method as lm, tcp_stream_method as sm, udp_socket_method as um};
use capos_abi::limits::MAX_NET_IO_BYTES;
use capos_abi::message::{CallMessage, MessageError};
use crate::bad_params;
use crate::nic::NicCounters;
use capos_abi::SysError;
use alloc::format;
use alloc::vec::Vec;

/// An IPv4 address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SocketAddr {
    pub ip: [u8; 4],
    pub port: u16,
}

impl core::fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.ip;
        write!(f, "{a}.{b}.{c}.{d}:{}", self.port)
    }
}

/// What `Network.info` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NetworkInfo {
    /// Our address and its prefix length, once configured.
    pub address: Option<([u8; 4], u8)>,
    pub gateway: Option<[u8; 4]>,
    pub dhcp: bool,
    pub mac: [u8; 6],
    pub link_up: bool,
    pub counters: NicCounters,
    pub open_sockets: u32,
}

/// What a server says about a call that may wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait<T, P> {
    /// Answer now.
    Done(Result<T, CapError>),
    /// Not yet: the server keeps `P` (what it needs to finish the call)
    /// and the call is answered later.
    Pending(P),
}

/// What a dispatcher did with a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatched<P> {
    /// Results are built: reply now.
    Answered,
    /// No results: keep the reply token and answer when `P` completes.
    Kept(P),
}

/// `Network`: the service's front door (one per manifest grant).
pub trait NetworkServer {
    type Cap;
    type Pending;
    fn info(&mut self, badge: u64) -> Result<NetworkInfo, CapError>;
    fn listen(&mut self, badge: u64, port: u16, backlog: u16) -> Result<Self::Cap, CapError>;
    fn connect(&mut self, badge: u64, peer: SocketAddr, timeout_ms: u32) -> Wait<Self::Cap, Self::Pending>;
    fn udp_bind(&mut self, badge: u64, port: u16) -> Result<Self::Cap, CapError>;
}

/// `TcpListener`.
pub trait TcpListenerServer {
    type Cap;
    type Pending;
    fn accept(&mut self, badge: u64, timeout_ms: u32) -> Wait<Self::Cap, Self::Pending>;
    fn local(&mut self, badge: u64) -> Result<SocketAddr, CapError>;
    fn close(&mut self, badge: u64) -> Result<(), CapError>;
}

/// `TcpStream`.
pub trait TcpStreamServer {
    type Pending;
    /// At least one byte, up to `room` (0 bytes: the peer closed its side).
    fn read(&mut self, badge: u64, room: usize, timeout_ms: u32) -> Wait<Vec<u8>, Self::Pending>;
    /// Queue all of `data` (1..=MAX_NET_IO_BYTES bytes); the count queued.
    fn write(&mut self, badge: u64, data: Vec<u8>, timeout_ms: u32) -> Wait<u64, Self::Pending>;
    fn shutdown(&mut self, badge: u64) -> Result<(), CapError>;
    fn close(&mut self, badge: u64) -> Result<(), CapError>;
    fn peer(&mut self, badge: u64) -> Result<SocketAddr, CapError>;
    fn local(&mut self, badge: u64) -> Result<SocketAddr, CapError>;
}

/// `UdpSocket`.
pub trait UdpSocketServer {
    type Pending;
    fn send(&mut self, badge: u64, peer: SocketAddr, datagram: &[u8]) -> Result<(), CapError>;
    /// The oldest datagram, cut to `room` bytes, and its sender.
    fn receive(&mut self, badge: u64, room: usize, timeout_ms: u32) -> Wait<(Vec<u8>, SocketAddr), Self::Pending>;
    fn local(&mut self, badge: u64) -> Result<SocketAddr, CapError>;
    fn close(&mut self, badge: u64) -> Result<(), CapError>;
}

fn invalid(message: &str) -> CapError {
    CapError::new(ErrorCode::InvalidArgument, message)
}

/// Read a `NetAddress` (params or results).
pub fn read_address(a: net_address::Reader<'_>) -> Result<Result<SocketAddr, CapError>, MessageError> {
    let ip = a.get_ip()?;
    Ok(match <[u8; 4]>::try_from(ip) {
        Ok(ip) => Ok(SocketAddr { ip, port: a.get_port() }),
        Err(_) => Err(invalid(&format!("an IPv4 address is 4 bytes, not {}", ip.len()))),
    })
}

pub fn fill_address(mut b: net_address::Builder<'_>, a: &SocketAddr) {
    b.set_ip(&a.ip);
    b.set_port(a.port);
}

/// Answer with a `NetAddressResult`.
pub fn answer_address<R: Responder>(r: &mut R, result: Result<SocketAddr, CapError>) -> Result<(), SysError> {
    r.results::<net_address_result::Owned>(|b| {
        match &result {
            Ok(a) => fill_address(b.init_ok(), a),
            Err(e) => fill_error(b.init_err(), e),
        }
        Ok(())
    })
}

/// Answer a call that hands out a capability (`listen`, `connect`,
/// `udpBind`, `accept`), now or later.
pub fn answer_cap<R: Responder>(r: &mut R, result: Result<R::Cap, CapError>) -> Result<(), SysError> {
    cap_reply(r, result)
}

/// Answer `TcpStream.read`: the bytes go to the caller's writable bulk
/// buffer and their count in the result. More than the buffer holds is
/// the server's bug, answered as `io`.
pub fn answer_read<R: Responder>(r: &mut R, result: Result<Vec<u8>, CapError>) -> Result<(), SysError> {
    let result = match result {
        Ok(data) if data.is_empty() => Ok(0),
        Ok(data) => match r.bulk_out_capacity() {
            Some(room) if data.len() <= room => {
                r.bulk_out(&data)?;
                Ok(data.len() as u64)
            }
            room => Err(CapError::new(ErrorCode::Io, &format!("the service read {} bytes for a buffer of {}", data.len(), room.unwrap_or(0)))),
        },
        Err(e) => Err(e),
    };
    u64_reply(r, result)
}

/// Answer `TcpStream.write` (the count queued).
pub fn answer_write<R: Responder>(r: &mut R, result: Result<u64, CapError>) -> Result<(), SysError> {
    u64_reply(r, result)
}

/// Answer `UdpSocket.receive`: the datagram (cut to the buffer) to the
/// caller's bulk buffer, its length and sender in the result.
pub fn answer_datagram<R: Responder>(r: &mut R, result: Result<(Vec<u8>, SocketAddr), CapError>) -> Result<(), SysError> {
    let result = match result {
        Ok((data, peer)) => {
            let room = r.bulk_out_capacity().unwrap_or(0);
            let n = data.len().min(room);
            if n > 0 {
                r.bulk_out(&data[..n])?;
            }
            Ok((n as u32, peer))
        }
        Err(e) => Err(e),
    };
    r.results::<udp_receive_result::Owned>(|b| {
        match &result {
            Ok((n, peer)) => {
                let mut ok = b.init_ok();
                ok.set_length(*n);
                fill_address(ok.init_peer(), peer);
            }
            Err(e) => fill_error(b.init_err(), e),
        }
        Ok(())
    })
}

/// A port to listen on or connect to: 1..=65535.
fn nonzero_port(port: u16, what: &str) -> Result<(), CapError> {
    if port == 0 {
        Err(invalid(&format!("{what}: port 0 is not a port")))
    } else {
        Ok(())
    }
}

/// The readable bulk buffer of a call that sends bytes, checked before it
/// is copied.
fn outgoing<R: Responder>(r: &R, what: &str) -> Result<Result<Vec<u8>, CapError>, SysError> {
    match r.bulk_in_len() {
        None | Some(0) => Ok(Err(invalid(&format!("{what} takes its bytes from a readable bulk buffer; the call has none")))),
        Some(n) if n > MAX_NET_IO_BYTES => Ok(Err(CapError::new(ErrorCode::TooLarge, &format!("{what}: {n} bytes, more than {MAX_NET_IO_BYTES} per call")))),
        Some(_) => Ok(Ok(r.bulk_in()?.unwrap_or_default())),
    }
}

/// The room of the writable bulk buffer of a call that receives bytes.
fn incoming<R: Responder>(r: &R, what: &str) -> Result<usize, CapError> {
    match r.bulk_out_capacity() {
        None | Some(0) => Err(invalid(&format!("{what} answers through a writable bulk buffer; the call has none"))),
        Some(n) => Ok(n.min(MAX_NET_IO_BYTES)),
    }
}

/// Answer a `Wait` through `answer`, or keep it.
fn waited<T, P, R: Responder>(r: &mut R, w: Wait<T, P>, answer: impl FnOnce(&mut R, Result<T, CapError>) -> Result<(), SysError>) -> Result<Dispatched<P>, SysError> {
    match w {
        Wait::Done(result) => answer(r, result).map(|()| Dispatched::Answered),
        Wait::Pending(p) => Ok(Dispatched::Kept(p)),
    }
}

fn answered(r: Result<(), SysError>) -> Result<Dispatched<core::convert::Infallible>, SysError> {
    r.map(|()| Dispatched::Answered)
}

fn widen<P>(d: Dispatched<core::convert::Infallible>) -> Dispatched<P> {
    match d {
        Dispatched::Answered => Dispatched::Answered,
        Dispatched::Kept(never) => match never {},
    }
}

/// Answer (or keep) one `Network` call that came with `badge`.
pub fn dispatch_network<S, R>(server: &mut S, badge: u64, call: &CallMessage, r: &mut R) -> Result<Dispatched<S::Pending>, SysError>
where
    S: NetworkServer + ?Sized,
    R: Responder<Cap = S::Cap>,
{
    match call.method_id() {
        nm::INFO => {
            let result = server.info(badge);
            answered(r.results::<network_info_result::Owned>(|b| {
                match &result {
                    Ok(i) => fill_info(b.init_ok(), i),
                    Err(e) => fill_error(b.init_err(), e),
                }
                Ok(())
            }))
            .map(widen)
        }
        nm::LISTEN => {
            let p = call.params::<network::listen_params::Owned>().map_err(bad_params)?;
            let (port, backlog) = (p.get_port(), p.get_backlog());
            let result = match (nonzero_port(port, "listen"), backlog) {
                (Err(e), _) => Err(e),
                (Ok(()), 0) => Err(invalid("listen: a backlog of 0 could never accept")),
                (Ok(()), _) => server.listen(badge, port, backlog),
            };
            answered(cap_reply(r, result)).map(widen)
        }
        nm::CONNECT => {
            let p = call.params::<network::connect_params::Owned>().map_err(bad_params)?;
            let timeout = p.get_timeout_ms();
            let peer = match p.has_peer() {
                false => Err(invalid("connect needs a peer")),
                true => read_address(p.get_peer().map_err(bad_params)?).map_err(bad_params)?,
            };
            match peer.and_then(|a| nonzero_port(a.port, "connect").map(|()| a)) {
                Err(e) => answered(cap_reply(r, Err(e))).map(widen),
                Ok(peer) => waited(r, server.connect(badge, peer, timeout), cap_reply),
            }
        }
        nm::UDP_BIND => {
            let p = call.params::<network::udp_bind_params::Owned>().map_err(bad_params)?;
            let result = server.udp_bind(badge, p.get_port());
            answered(cap_reply(r, result)).map(widen)
        }
        _ => Err(SysError::UnknownMethod),
    }
}

fn fill_info(mut b: capos_abi::capos_capnp::network_info::Builder<'_>, i: &NetworkInfo) {
    if let Some((ip, prefix)) = i.address {
        b.set_address(&ip);
        b.set_prefix_length(prefix);
    }
    if let Some(gw) = i.gateway {
        b.set_gateway(&gw);
    }
    b.set_dhcp(i.dhcp);
    b.set_mac(&i.mac);
    b.set_link_up(i.link_up);
    b.set_open_sockets(i.open_sockets);
    crate::nic::fill_counters(b.init_counters(), &i.counters);
}

/// Answer (or keep) one `TcpListener` call.
pub fn dispatch_listener<S, R>(server: &mut S, badge: u64, call: &CallMessage, r: &mut R) -> Result<Dispatched<S::Pending>, SysError>
where
    S: TcpListenerServer + ?Sized,
    R: Responder<Cap = S::Cap>,
{
    match call.method_id() {
        lm::ACCEPT => {
            let p = call.params::<tcp_listener::accept_params::Owned>().map_err(bad_params)?;
            waited(r, server.accept(badge, p.get_timeout_ms()), cap_reply)
        }
        lm::LOCAL => answered(answer_address(r, server.local(badge))).map(widen),
        lm::CLOSE => answered(void_reply(r, server.close(badge))).map(widen),
        _ => Err(SysError::UnknownMethod),
    }
}

/// Answer (or keep) one `TcpStream` call.
pub fn dispatch_stream<S, R>(server: &mut S, badge: u64, call: &CallMessage, r: &mut R) -> Result<Dispatched<S::Pending>, SysError>
where
    S: TcpStreamServer + ?Sized,
    R: Responder,
{
    match call.method_id() {
        sm::READ => {
            let p = call.params::<tcp_stream::read_params::Owned>().map_err(bad_params)?;
            match incoming(r, "TcpStream.read") {
                Err(e) => answered(u64_reply(r, Err(e))).map(widen),
                Ok(room) => waited(r, server.read(badge, room, p.get_timeout_ms()), answer_read),
            }
        }
        sm::WRITE => {
            let p = call.params::<tcp_stream::write_params::Owned>().map_err(bad_params)?;
            match outgoing(r, "TcpStream.write")? {
                Err(e) => answered(u64_reply(r, Err(e))).map(widen),
                Ok(data) => waited(r, server.write(badge, data, p.get_timeout_ms()), answer_write),
            }
        }
        sm::SHUTDOWN => answered(void_reply(r, server.shutdown(badge))).map(widen),
        sm::CLOSE => answered(void_reply(r, server.close(badge))).map(widen),
        sm::PEER => answered(answer_address(r, server.peer(badge))).map(widen),
        sm::LOCAL => answered(answer_address(r, server.local(badge))).map(widen),
        _ => Err(SysError::UnknownMethod),
    }
}

/// Answer (or keep) one `UdpSocket` call.
pub fn dispatch_udp<S, R>(server: &mut S, badge: u64, call: &CallMessage, r: &mut R) -> Result<Dispatched<S::Pending>, SysError>
where
    S: UdpSocketServer + ?Sized,
    R: Responder,
{
    match call.method_id() {
        um::SEND => {
            let p = call.params::<udp_socket::send_params::Owned>().map_err(bad_params)?;
            let peer = match p.has_peer() {
                false => Err(invalid("send needs a peer")),
                true => read_address(p.get_peer().map_err(bad_params)?).map_err(bad_params)?,
            };
            let result = match peer.and_then(|a| nonzero_port(a.port, "UdpSocket.send").map(|()| a)) {
                Err(e) => Err(e),
                Ok(peer) => match outgoing(r, "UdpSocket.send")? {
                    Err(e) => Err(e),
                    Ok(data) => server.send(badge, peer, &data),
                },
            };
            answered(void_reply(r, result)).map(widen)
        }
        um::RECEIVE => {
            let p = call.params::<udp_socket::receive_params::Owned>().map_err(bad_params)?;
            match incoming(r, "UdpSocket.receive") {
                Err(e) => answered(answer_datagram(r, Err(e))).map(widen),
                Ok(room) => waited(r, server.receive(badge, room, p.get_timeout_ms()), answer_datagram),
            }
        }
        um::LOCAL => answered(answer_address(r, server.local(badge))).map(widen),
        um::CLOSE => answered(void_reply(r, server.close(badge))).map(widen),
        _ => Err(SysError::UnknownMethod),
    }
}

/// Read a `NetworkInfoResult` (the client side).
pub fn read_info(r: network_info_result::Reader<'_>) -> Result<Result<NetworkInfo, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("NetworkInfoResult"))? {
        network_info_result::Ok(i) => {
            let i = i?;
            let four = |d: &[u8]| <[u8; 4]>::try_from(d).ok();
            let mac = <[u8; 6]>::try_from(i.get_mac()?).unwrap_or_default();
            let counters = crate::nic::counters_of(i.get_counters()?);
            Ok(NetworkInfo {
                address: four(i.get_address()?).map(|ip| (ip, i.get_prefix_length())),
                gateway: four(i.get_gateway()?),
                dhcp: i.get_dhcp(),
                mac,
                link_up: i.get_link_up(),
                open_sockets: i.get_open_sockets(),
                counters,
            })
        }
        network_info_result::Err(e) => Err(read_error(e?)?),
    })
}

/// Read a `NetAddressResult` (the client side).
pub fn read_address_result(r: net_address_result::Reader<'_>) -> Result<Result<SocketAddr, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("NetAddressResult"))? {
        net_address_result::Ok(a) => read_address(a?)?,
        net_address_result::Err(e) => Err(read_error(e?)?),
    })
}

/// Read a `UdpReceiveResult` (the client side): the length written to the
/// bulk buffer and the sender.
pub fn read_datagram(r: udp_receive_result::Reader<'_>) -> Result<Result<(usize, SocketAddr), CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("UdpReceiveResult"))? {
        udp_receive_result::Ok(d) => {
            let d = d?;
            read_address(d.get_peer()?)?.map(|peer| (d.get_length() as usize, peer))
        }
        udp_receive_result::Err(e) => Err(read_error(e?)?),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use capos_abi::capos_capnp::{cap_result, u_int64_result, void_result};
    use capos_abi::helpers::{read_u64, read_void};
    use capos_abi::interfaces::{NETWORK, TCP_LISTENER, TCP_STREAM, UDP_SOCKET};
    use alloc::collections::VecDeque;
    use alloc::vec;

    /// A fake service: one listener (badge 2) whose accept waits until a
    /// connection is queued, one stream (badge 3) that echoes, one UDP
    /// socket (badge 4). Counts the calls that reached it.
    #[derive(Default)]
    struct Fake {
        calls: u32,
        queued: VecDeque<u64>,
        echo: Vec<u8>,
        datagrams: VecDeque<(Vec<u8>, SocketAddr)>,
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Kept {
        Accept(u32),
        Read(usize),
        Receive(usize),
        Connect(SocketAddr),
    }

    impl NetworkServer for Fake {
        type Cap = u32;
        type Pending = Kept;
        fn info(&mut self, _: u64) -> Result<NetworkInfo, CapError> {
            self.calls += 1;
            Ok(NetworkInfo { address: Some(([10, 0, 2, 15], 24)), gateway: Some([10, 0, 2, 2]), dhcp: true, mac: [2; 6], link_up: true, open_sockets: 3, ..Default::default() })
        }
        fn listen(&mut self, badge: u64, port: u16, _: u16) -> Result<u32, CapError> {
            self.calls += 1;
            if badge != 1 || port != 80 {
                return Err(CapError::new(ErrorCode::PermissionDenied, &format!("port {port}")));
            }
            Ok(2)
        }
        fn connect(&mut self, _: u64, peer: SocketAddr, _: u32) -> Wait<u32, Kept> {
            self.calls += 1;
            Wait::Pending(Kept::Connect(peer))
        }
        fn udp_bind(&mut self, _: u64, _: u16) -> Result<u32, CapError> {
            self.calls += 1;
            Ok(4)
        }
    }

    impl TcpListenerServer for Fake {
        type Cap = u32;
        type Pending = Kept;
        fn accept(&mut self, _: u64, timeout: u32) -> Wait<u32, Kept> {
            self.calls += 1;
            match self.queued.pop_front() {
                Some(_) => Wait::Done(Ok(3)),
                None => Wait::Pending(Kept::Accept(timeout)),
            }
        }
        fn local(&mut self, _: u64) -> Result<SocketAddr, CapError> {
            self.calls += 1;
            Ok(SocketAddr { ip: [10, 0, 2, 15], port: 80 })
        }
        fn close(&mut self, _: u64) -> Result<(), CapError> {
            self.calls += 1;
            Ok(())
        }
    }

    impl TcpStreamServer for Fake {
        type Pending = Kept;
        fn read(&mut self, _: u64, room: usize, _: u32) -> Wait<Vec<u8>, Kept> {
            self.calls += 1;
            if self.echo.is_empty() {
                return Wait::Pending(Kept::Read(room));
            }
            let n = room.min(self.echo.len());
            Wait::Done(Ok(self.echo.drain(..n).collect()))
        }
        fn write(&mut self, _: u64, data: Vec<u8>, _: u32) -> Wait<u64, Kept> {
            self.calls += 1;
            self.echo.extend_from_slice(&data);
            Wait::Done(Ok(data.len() as u64))
        }
        fn shutdown(&mut self, _: u64) -> Result<(), CapError> {
            self.calls += 1;
            Ok(())
        }
        fn close(&mut self, _: u64) -> Result<(), CapError> {
            self.calls += 1;
            Err(CapError::new(ErrorCode::Closed, "closed"))
        }
        fn peer(&mut self, _: u64) -> Result<SocketAddr, CapError> {
            self.calls += 1;
            Ok(SocketAddr { ip: [10, 0, 2, 2], port: 5555 })
        }
        fn local(&mut self, _: u64) -> Result<SocketAddr, CapError> {
            self.calls += 1;
            Ok(SocketAddr { ip: [10, 0, 2, 15], port: 80 })
        }
    }

    impl UdpSocketServer for Fake {
        type Pending = Kept;
        fn send(&mut self, _: u64, peer: SocketAddr, d: &[u8]) -> Result<(), CapError> {
            self.calls += 1;
            self.datagrams.push_back((d.to_vec(), peer));
            Ok(())
        }
        fn receive(&mut self, _: u64, room: usize, _: u32) -> Wait<(Vec<u8>, SocketAddr), Kept> {
            self.calls += 1;
            match self.datagrams.pop_front() {
                Some(d) => Wait::Done(Ok(d)),
                None => Wait::Pending(Kept::Receive(room)),
            }
        }
        fn local(&mut self, _: u64) -> Result<SocketAddr, CapError> {
            self.calls += 1;
            Ok(SocketAddr { ip: [10, 0, 2, 15], port: 7 })
        }
        fn close(&mut self, _: u64) -> Result<(), CapError> {
            self.calls += 1;
            Ok(())
        }
    }

    fn addr_params<T: capnp::traits::Owned>(fill: impl FnOnce(T::Builder<'_>)) -> Vec<u64> {
        params::<T>(fill)
    }

    fn cap_of(r: &TestResponder) -> Result<u32, CapError> {
        r.get::<cap_result::Owned, _>(|res| match res.which().unwrap() {
            cap_result::Ok(slot) => Ok(r.caps[slot as usize]),
            cap_result::Err(e) => Err(read_error(e.unwrap()).unwrap()),
        })
    }

    fn u64_of(r: &TestResponder) -> Result<u64, CapError> {
        r.get::<u_int64_result::Owned, _>(|res| read_u64(res).unwrap())
    }

    fn stream_call(s: &mut Fake, method: u16, words: &[u64], bulk_in: Option<Vec<u8>>, bulk_cap: Option<usize>) -> (Dispatched<Kept>, TestResponder) {
        let mut r = TestResponder::new();
        r.bulk_in = bulk_in;
        r.bulk_cap = bulk_cap;
        let d = dispatch_stream(s, 3, &call(TCP_STREAM, method, words), &mut r).unwrap();
        (d, r)
    }

    fn timeout_params(ms: u32) -> Vec<u64> {
        params::<tcp_stream::read_params::Owned>(|mut p| p.set_timeout_ms(ms))
    }

    #[test]
    fn info_listen_and_an_echo_round_trip() {
        let mut s = Fake::default();
        let mut r = TestResponder::new();
        assert_eq!(dispatch_network(&mut s, 1, &call(NETWORK, nm::INFO, &[]), &mut r).unwrap(), Dispatched::Answered);
        let info = r.get::<network_info_result::Owned, _>(|x| read_info(x).unwrap()).unwrap();
        assert_eq!(info.address, Some(([10, 0, 2, 15], 24)));
        assert_eq!((info.gateway, info.dhcp, info.open_sockets, info.mac), (Some([10, 0, 2, 2]), true, 3, [2; 6]));

        let listen = params::<network::listen_params::Owned>(|mut p| {
            p.set_port(80);
            p.set_backlog(8);
        });
        let mut r = TestResponder::new();
        dispatch_network(&mut s, 1, &call(NETWORK, nm::LISTEN, &listen), &mut r).unwrap();
        assert_eq!(cap_of(&r), Ok(2));
        let mut r = TestResponder::new();
        dispatch_network(&mut s, 9, &call(NETWORK, nm::LISTEN, &listen), &mut r).unwrap();
        assert_eq!(cap_of(&r).unwrap_err().code, ErrorCode::PermissionDenied, "the server's refusal reaches the caller");

        let (d, r) = stream_call(&mut s, sm::WRITE, &timeout_params(0), Some(b"hello".to_vec()), None);
        assert_eq!(d, Dispatched::Answered);
        assert_eq!(u64_of(&r), Ok(5));
        let (d, r) = stream_call(&mut s, sm::READ, &timeout_params(0), None, Some(3));
        assert_eq!(d, Dispatched::Answered);
        assert_eq!((u64_of(&r), r.bulk_out.as_deref()), (Ok(3), Some(&b"hel"[..])), "a read fills at most the buffer");
        let (_, r) = stream_call(&mut s, sm::READ, &timeout_params(0), None, Some(100));
        assert_eq!((u64_of(&r), r.bulk_out.as_deref()), (Ok(2), Some(&b"lo"[..])));
        let mut r = TestResponder::new();
        dispatch_stream(&mut s, 3, &call(TCP_STREAM, sm::PEER, &[]), &mut r).unwrap();
        assert_eq!(r.get::<net_address_result::Owned, _>(|x| read_address_result(x).unwrap()), Ok(SocketAddr { ip: [10, 0, 2, 2], port: 5555 }));
    }

    #[test]
    fn waiting_calls_are_kept_and_answered_later_by_the_same_writers() {
        let mut s = Fake::default();
        let (d, r) = stream_call(&mut s, sm::READ, &timeout_params(250), None, Some(64));
        assert_eq!(d, Dispatched::Kept(Kept::Read(64)));
        assert!(r.results.is_empty(), "a kept call has no results yet");
        // Later: bytes arrived.
        let mut later = TestResponder::new();
        later.bulk_cap = Some(64);
        answer_read(&mut later, Ok(b"late".to_vec())).unwrap();
        assert_eq!((u64_of(&later), later.bulk_out.as_deref()), (Ok(4), Some(&b"late"[..])));
        // Or the time ran out.
        let mut later = TestResponder::new();
        answer_read(&mut later, Err(CapError::new(ErrorCode::TimedOut, "no data in 250 ms"))).unwrap();
        assert_eq!(u64_of(&later).unwrap_err().code, ErrorCode::TimedOut);
        // A server that read more than the buffer holds is caught.
        let mut later = TestResponder::new();
        later.bulk_cap = Some(2);
        answer_read(&mut later, Ok(b"four".to_vec())).unwrap();
        assert_eq!(u64_of(&later).unwrap_err().code, ErrorCode::Io);
        assert_eq!(later.bulk_out, None);

        let accept = params::<tcp_listener::accept_params::Owned>(|mut p| p.set_timeout_ms(0));
        let mut r = TestResponder::new();
        assert_eq!(dispatch_listener(&mut s, 2, &call(TCP_LISTENER, lm::ACCEPT, &accept), &mut r).unwrap(), Dispatched::Kept(Kept::Accept(0)));
        let mut later = TestResponder::new();
        answer_cap(&mut later, Ok(3)).unwrap();
        assert_eq!(cap_of(&later), Ok(3), "the accepted stream is handed over with the late answer");
        s.queued.push_back(1);
        let mut r = TestResponder::new();
        assert_eq!(dispatch_listener(&mut s, 2, &call(TCP_LISTENER, lm::ACCEPT, &accept), &mut r).unwrap(), Dispatched::Answered);
        assert_eq!(cap_of(&r), Ok(3));

        let connect = params::<network::connect_params::Owned>(|mut p| {
            p.set_timeout_ms(1000);
            let mut a = p.init_peer();
            a.set_ip(&[10, 0, 2, 2]);
            a.set_port(22);
        });
        let mut r = TestResponder::new();
        assert_eq!(
            dispatch_network(&mut s, 1, &call(NETWORK, nm::CONNECT, &connect), &mut r).unwrap(),
            Dispatched::Kept(Kept::Connect(SocketAddr { ip: [10, 0, 2, 2], port: 22 }))
        );
    }

    #[test]
    fn bulk_misuse_never_reaches_the_server() {
        let mut s = Fake::default();
        // write: none, the wrong direction, too much.
        let (_, r) = stream_call(&mut s, sm::WRITE, &timeout_params(0), None, None);
        assert_eq!(u64_of(&r).unwrap_err().code, ErrorCode::InvalidArgument);
        let (_, r) = stream_call(&mut s, sm::WRITE, &timeout_params(0), None, Some(100));
        assert_eq!(u64_of(&r).unwrap_err().code, ErrorCode::InvalidArgument, "a writable buffer is not data to send");
        let (_, r) = stream_call(&mut s, sm::WRITE, &timeout_params(0), Some(vec![0; MAX_NET_IO_BYTES + 1]), None);
        let e = u64_of(&r).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        assert!(e.message.contains("65537 bytes"), "{}", e.message);
        let (_, r) = stream_call(&mut s, sm::WRITE, &timeout_params(0), Some(vec![0; MAX_NET_IO_BYTES + 1]), None);
        assert_eq!(r.bulk_copies.get(), 0, "an oversize write is refused before it is copied");
        // read: none, or the wrong direction.
        let (_, r) = stream_call(&mut s, sm::READ, &timeout_params(0), None, None);
        assert_eq!(u64_of(&r).unwrap_err().code, ErrorCode::InvalidArgument);
        let (_, r) = stream_call(&mut s, sm::READ, &timeout_params(0), Some(vec![1; 10]), None);
        assert_eq!(u64_of(&r).unwrap_err().code, ErrorCode::InvalidArgument, "a readable buffer cannot take bytes back");
        assert_eq!(r.bulk_out, None);
        // UDP alike.
        let send = params::<udp_socket::send_params::Owned>(|p| {
            let mut a = p.init_peer();
            a.set_ip(&[10, 0, 2, 2]);
            a.set_port(7);
        });
        let mut r = TestResponder::new();
        dispatch_udp(&mut s, 4, &call(UDP_SOCKET, um::SEND, &send), &mut r).unwrap();
        assert_eq!(r.get::<void_result::Owned, _>(|x| read_void(x).unwrap()).unwrap_err().code, ErrorCode::InvalidArgument);
        let recv = params::<udp_socket::receive_params::Owned>(|mut p| p.set_timeout_ms(5));
        let mut r = TestResponder::new();
        r.bulk_in = Some(vec![0; 4]);
        dispatch_udp(&mut s, 4, &call(UDP_SOCKET, um::RECEIVE, &recv), &mut r).unwrap();
        assert_eq!(r.get::<udp_receive_result::Owned, _>(|x| read_datagram(x).unwrap()).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(s.calls, 0, "none of these reached the server");
    }

    #[test]
    fn bad_addresses_ports_and_backlogs_never_reach_the_server() {
        let mut s = Fake::default();
        let listen = |port, backlog| {
            params::<network::listen_params::Owned>(|mut p| {
                p.set_port(port);
                p.set_backlog(backlog);
            })
        };
        for (port, backlog, says) in [(0u16, 4u16, "port 0"), (80, 0, "backlog of 0")] {
            let mut r = TestResponder::new();
            dispatch_network(&mut s, 1, &call(NETWORK, nm::LISTEN, &listen(port, backlog)), &mut r).unwrap();
            let e = cap_of(&r).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.message.contains(says), "{}", e.message);
        }
        for ip in [&[10u8, 0, 2][..], &[1, 2, 3, 4, 5][..], &[][..]] {
            let connect = addr_params::<network::connect_params::Owned>(|p| {
                let mut a = p.init_peer();
                a.set_ip(ip);
                a.set_port(80);
            });
            let mut r = TestResponder::new();
            assert_eq!(dispatch_network(&mut s, 1, &call(NETWORK, nm::CONNECT, &connect), &mut r).unwrap(), Dispatched::Answered);
            assert_eq!(cap_of(&r).unwrap_err().code, ErrorCode::InvalidArgument, "{ip:?}");
        }
        let no_peer = params::<network::connect_params::Owned>(|mut p| p.set_timeout_ms(1));
        let mut r = TestResponder::new();
        dispatch_network(&mut s, 1, &call(NETWORK, nm::CONNECT, &no_peer), &mut r).unwrap();
        assert_eq!(cap_of(&r).unwrap_err().code, ErrorCode::InvalidArgument);
        let port0 = params::<network::connect_params::Owned>(|p| {
            let mut a = p.init_peer();
            a.set_ip(&[10, 0, 2, 2]);
        });
        let mut r = TestResponder::new();
        dispatch_network(&mut s, 1, &call(NETWORK, nm::CONNECT, &port0), &mut r).unwrap();
        assert_eq!(cap_of(&r).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(s.calls, 0);
    }

    #[test]
    fn datagrams_are_cut_to_the_buffer_and_say_their_sender() {
        let mut s = Fake::default();
        let peer = SocketAddr { ip: [10, 0, 2, 2], port: 9 };
        s.datagrams.push_back((vec![7; 100], peer));
        let recv = params::<udp_socket::receive_params::Owned>(|mut p| p.set_timeout_ms(5));
        let mut r = TestResponder::new();
        r.bulk_cap = Some(40);
        assert_eq!(dispatch_udp(&mut s, 4, &call(UDP_SOCKET, um::RECEIVE, &recv), &mut r).unwrap(), Dispatched::Answered);
        assert_eq!(r.get::<udp_receive_result::Owned, _>(|x| read_datagram(x).unwrap()), Ok((40, peer)));
        assert_eq!(r.bulk_out.unwrap().len(), 40);
        let mut r = TestResponder::new();
        r.bulk_cap = Some(40);
        assert_eq!(dispatch_udp(&mut s, 4, &call(UDP_SOCKET, um::RECEIVE, &recv), &mut r).unwrap(), Dispatched::Kept(Kept::Receive(40)));
    }

    #[test]
    fn unknown_methods_and_bad_params_are_call_errors() {
        let mut s = Fake::default();
        let mut r = TestResponder::new();
        assert_eq!(dispatch_network(&mut s, 1, &call(NETWORK, 4, &[]), &mut r), Err(SysError::UnknownMethod));
        assert_eq!(dispatch_listener(&mut s, 1, &call(TCP_LISTENER, 3, &[]), &mut r), Err(SysError::UnknownMethod));
        assert_eq!(dispatch_stream(&mut s, 1, &call(TCP_STREAM, 6, &[]), &mut r), Err(SysError::UnknownMethod));
        assert_eq!(dispatch_udp(&mut s, 1, &call(UDP_SOCKET, 4, &[]), &mut r), Err(SysError::UnknownMethod));
        // Params that are not a message at all.
        let garbage = [u64::MAX; 3];
        assert!(dispatch_network(&mut s, 1, &call(NETWORK, nm::LISTEN, &garbage), &mut r).is_err());
        assert!(dispatch_stream(&mut s, 1, &call(TCP_STREAM, sm::READ, &garbage), &mut r).is_err());
        assert_eq!(s.calls, 0);
    }
}
