//! The `Nic` client (`kernel:nic:NAME`): whole Ethernet frames in and out
//! through the bulk buffer, one method per schema method.

use crate::client::{call_no_params, object, BulkArg, CallError};
use capos_abi::capos_capnp::{nic_counters_result, nic_info_result, nic_receive_result, void_result};
use capos_abi::helpers;
use capos_abi::interfaces::{self, nic_method as nm};
use capos_serve::nic::{read_counters, read_info, read_received};
use capos_abi::Handle;

pub use capos_serve::nic::{NicCounters, NicInfo, Received};

/// A `Nic` capability.
#[derive(Debug)]
pub struct Nic(Handle);
owned_handle!(Nic);

impl Nic {
    /// MAC, MTU, link state, largest frame.
    pub fn info(&self) -> Result<NicInfo, CallError> {
        call_no_params(self.0, interfaces::NIC, nm::INFO, &[], BulkArg::NONE, |r| object(read_info(r.get::<nic_info_result::Owned>()?)))
    }

    /// Send `frame` (14 to `max_frame` bytes; other lengths are sent as
    /// given, so tests can probe the refusal).
    pub fn transmit(&self, frame: &[u8]) -> Result<(), CallError> {
        self.transmit_with(BulkArg::out(frame))
    }

    /// A transmit with any bulk argument (for tests: none, the wrong
    /// direction, a bad address).
    pub fn transmit_with(&self, bulk: BulkArg) -> Result<(), CallError> {
        call_no_params(self.0, interfaces::NIC, nm::TRANSMIT, &[], bulk, |r| object(helpers::read_void(r.get::<void_result::Owned>()?)))
    }

    /// The oldest pending frame into `buf` (at least `max_frame` bytes),
    /// or `Empty` at once.
    pub fn receive(&self, buf: &mut [u8]) -> Result<Received, CallError> {
        let capacity = buf.len();
        let got = self.receive_with(BulkArg::into(buf))?;
        match got {
            Received::Frame(n) if n > capacity => Err(CallError::Message(capos_abi::message::MessageError::FieldTooLarge { field: "frame length", len: n, max: capacity })),
            other => Ok(other),
        }
    }

    /// A receive with any bulk argument (for tests).
    pub fn receive_with(&self, bulk: BulkArg) -> Result<Received, CallError> {
        call_no_params(self.0, interfaces::NIC, nm::RECEIVE, &[], bulk, |r| object(read_received(r.get::<nic_receive_result::Owned>()?)))
    }

    pub fn counters(&self) -> Result<NicCounters, CallError> {
        call_no_params(self.0, interfaces::NIC, nm::COUNTERS, &[], BulkArg::NONE, |r| object(read_counters(r.get::<nic_counters_result::Owned>()?)))
    }
}

// ---------------------------------------------------------------------------
// The network service's capabilities (demos/net-service, docs/network.md)
// ---------------------------------------------------------------------------

use crate::client::call;
use capos_abi::capos_capnp::{cap_result, net_address_result, network, network_info_result, tcp_listener, tcp_stream, u_int64_result, udp_receive_result, udp_socket};
use capos_abi::interfaces::{network_method as netm, tcp_listener_method as lm, tcp_stream_method as sm, udp_socket_method as um};
use capos_serve::net::{fill_address, read_address_result, read_datagram};

pub use capos_serve::net::{NetworkInfo, SocketAddr};

fn cap(r: &crate::client::Results) -> Result<Handle, CallError> {
    object(helpers::read_cap(r.get::<cap_result::Owned>()?, r.caps()))
}

fn address(r: &crate::client::Results) -> Result<SocketAddr, CallError> {
    object(read_address_result(r.get::<net_address_result::Owned>()?))
}

fn no_params<R>(h: Handle, interface: u64, method: u16, read: impl FnOnce(&crate::client::Results) -> Result<R, CallError>) -> Result<R, CallError> {
    call_no_params(h, interface, method, &[], BulkArg::NONE, read)
}

/// A `Network` capability (a grant of the network service's endpoint):
/// what it may do is its grant's terms.
#[derive(Debug)]
pub struct Network(Handle);
owned_handle!(Network);

impl Network {
    /// Our address (once DHCP configured it), the card, open sockets.
    pub fn info(&self) -> Result<NetworkInfo, CallError> {
        no_params(self.0, interfaces::NETWORK, netm::INFO, |r| object(capos_serve::net::read_info(r.get::<network_info_result::Owned>()?)))
    }

    /// A listener on TCP `port` with room for `backlog` connections not
    /// yet accepted.
    pub fn listen(&self, port: u16, backlog: u16) -> Result<TcpListener, CallError> {
        call::<network::listen_params::Owned, _>(
            self.0,
            interfaces::NETWORK,
            netm::LISTEN,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_port(port);
                p.set_backlog(backlog);
                Ok(())
            },
            |r| cap(r).map(TcpListener),
        )
    }

    /// A TCP connection to `peer`, once established (0 = wait as long as
    /// the service allows).
    pub fn connect(&self, peer: SocketAddr, timeout_ms: u32) -> Result<TcpStream, CallError> {
        call::<network::connect_params::Owned, _>(
            self.0,
            interfaces::NETWORK,
            netm::CONNECT,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_timeout_ms(timeout_ms);
                fill_address(p.init_peer(), &peer);
                Ok(())
            },
            |r| cap(r).map(TcpStream),
        )
    }

    /// A UDP socket on `port` (0: an ephemeral one).
    pub fn udp_bind(&self, port: u16) -> Result<UdpSocket, CallError> {
        call::<network::udp_bind_params::Owned, _>(
            self.0,
            interfaces::NETWORK,
            netm::UDP_BIND,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_port(port);
                Ok(())
            },
            |r| cap(r).map(UdpSocket),
        )
    }
}

/// A `TcpListener`; dropping the last copy stops listening.
#[derive(Debug)]
pub struct TcpListener(Handle);
owned_handle!(TcpListener);

impl TcpListener {
    /// The next connection; waits up to `timeout_ms` (0 = forever).
    pub fn accept(&self, timeout_ms: u32) -> Result<TcpStream, CallError> {
        call::<tcp_listener::accept_params::Owned, _>(
            self.0,
            interfaces::TCP_LISTENER,
            lm::ACCEPT,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_timeout_ms(timeout_ms);
                Ok(())
            },
            |r| cap(r).map(TcpStream),
        )
    }

    pub fn local(&self) -> Result<SocketAddr, CallError> {
        no_params(self.0, interfaces::TCP_LISTENER, lm::LOCAL, address)
    }

    pub fn close(&self) -> Result<(), CallError> {
        no_params(self.0, interfaces::TCP_LISTENER, lm::CLOSE, |r| object(helpers::read_void(r.get::<void_result::Owned>()?)))
    }
}

/// A `TcpStream`; dropping the last copy closes the connection.
#[derive(Debug)]
pub struct TcpStream(Handle);
owned_handle!(TcpStream);

impl TcpStream {
    /// Received bytes into `buf`: at least one, or 0 when the peer closed
    /// its side; waits up to `timeout_ms` (0 = forever).
    pub fn read(&self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, CallError> {
        let room = buf.len();
        let n = self.read_with(BulkArg::into(buf), timeout_ms)? as usize;
        if n > room {
            return Err(CallError::Message(capos_abi::message::MessageError::FieldTooLarge { field: "read length", len: n, max: room }));
        }
        Ok(n)
    }

    /// A read with any bulk argument (for tests).
    pub fn read_with(&self, bulk: BulkArg, timeout_ms: u32) -> Result<u64, CallError> {
        self.timed(sm::READ, bulk, timeout_ms)
    }

    /// Queue `data` (at most `capos_abi::limits::MAX_NET_IO_BYTES`);
    /// the count queued (fewer only when the time ran out).
    pub fn write(&self, data: &[u8], timeout_ms: u32) -> Result<usize, CallError> {
        self.write_with(BulkArg::out(data), timeout_ms).map(|n| n as usize)
    }

    /// A write with any bulk argument (for tests).
    pub fn write_with(&self, bulk: BulkArg, timeout_ms: u32) -> Result<u64, CallError> {
        self.timed(sm::WRITE, bulk, timeout_ms)
    }

    /// All of `data`, in calls of at most `MAX_NET_IO_BYTES`.
    pub fn write_all(&self, data: &[u8], timeout_ms: u32) -> Result<(), CallError> {
        let mut at = 0;
        while at < data.len() {
            let end = data.len().min(at + capos_abi::limits::MAX_NET_IO_BYTES);
            at += self.write(&data[at..end], timeout_ms)?;
        }
        Ok(())
    }

    fn timed(&self, method: u16, bulk: BulkArg, timeout_ms: u32) -> Result<u64, CallError> {
        // read and write take the same params (timeoutMs @0).
        call::<tcp_stream::read_params::Owned, _>(
            self.0,
            interfaces::TCP_STREAM,
            method,
            &[],
            bulk,
            |mut p| {
                p.set_timeout_ms(timeout_ms);
                Ok(())
            },
            |r| object(helpers::read_u64(r.get::<u_int64_result::Owned>()?)),
        )
    }

    /// FIN after what is queued; reading goes on.
    pub fn shutdown(&self) -> Result<(), CallError> {
        no_params(self.0, interfaces::TCP_STREAM, sm::SHUTDOWN, |r| object(helpers::read_void(r.get::<void_result::Owned>()?)))
    }

    pub fn close(&self) -> Result<(), CallError> {
        no_params(self.0, interfaces::TCP_STREAM, sm::CLOSE, |r| object(helpers::read_void(r.get::<void_result::Owned>()?)))
    }

    pub fn peer(&self) -> Result<SocketAddr, CallError> {
        no_params(self.0, interfaces::TCP_STREAM, sm::PEER, address)
    }

    pub fn local(&self) -> Result<SocketAddr, CallError> {
        no_params(self.0, interfaces::TCP_STREAM, sm::LOCAL, address)
    }
}

/// A `UdpSocket`; dropping the last copy closes it.
#[derive(Debug)]
pub struct UdpSocket(Handle);
owned_handle!(UdpSocket);

impl UdpSocket {
    /// `datagram` to `peer`.
    pub fn send(&self, peer: SocketAddr, datagram: &[u8]) -> Result<(), CallError> {
        call::<udp_socket::send_params::Owned, _>(
            self.0,
            interfaces::UDP_SOCKET,
            um::SEND,
            &[],
            BulkArg::out(datagram),
            |p| {
                fill_address(p.init_peer(), &peer);
                Ok(())
            },
            |r| object(helpers::read_void(r.get::<void_result::Owned>()?)),
        )
    }

    /// The oldest datagram into `buf` (cut to it) and its sender; waits up
    /// to `timeout_ms` (0 = forever).
    pub fn receive(&self, buf: &mut [u8], timeout_ms: u32) -> Result<(usize, SocketAddr), CallError> {
        let room = buf.len();
        let (n, peer) = call::<udp_socket::receive_params::Owned, _>(
            self.0,
            interfaces::UDP_SOCKET,
            um::RECEIVE,
            &[],
            BulkArg::into(buf),
            |mut p| {
                p.set_timeout_ms(timeout_ms);
                Ok(())
            },
            |r| object(read_datagram(r.get::<udp_receive_result::Owned>()?)),
        )?;
        if n > room {
            return Err(CallError::Message(capos_abi::message::MessageError::FieldTooLarge { field: "datagram length", len: n, max: room }));
        }
        Ok((n, peer))
    }

    pub fn local(&self) -> Result<SocketAddr, CallError> {
        no_params(self.0, interfaces::UDP_SOCKET, um::LOCAL, address)
    }

    pub fn close(&self) -> Result<(), CallError> {
        no_params(self.0, interfaces::UDP_SOCKET, um::CLOSE, |r| object(helpers::read_void(r.get::<void_result::Owned>()?)))
    }
}
