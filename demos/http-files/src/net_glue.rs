//! The socket glue: the only file of http-files that knows the network
//! service's client API. Everything else sees [`Listener`] and [`Stream`]
//! through this interface:
//!
//! ```text
//! listen(start, port, backlog) -> Result<Listener, NetError>
//! Listener::accept(&self, timeout_ms: u32) -> Result<Stream, NetError>   // TimedOut: none waiting
//! Stream::read(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, NetError>  // Ok(0): end of stream
//! Stream::write(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, NetError>   // bytes queued
//! Stream::shutdown(&mut self)   // no more writes (FIN)
//! Stream::close(&mut self)      // release the socket (dropping it must too)
//! ```
//!
//! Over the network service's clients (`capos_rt::net`): the listener
//! comes from a `listener` grant if there is one, else from `net` (a
//! `Network` whose grant terms allow listening on the port). A timeout
//! is the object error `timedOut`; `closed`, `connectionReset` and the
//! peer's end of stream end the connection.
//!
//! Every timeout the server passes is at least 1 ms (it never asks for
//! "do not wait" as 0, in case the service reads 0 as "no limit").
//!
//! The server needs nothing else of the network: no connect, no UDP, no
//! other port. `main.rs` maps `NetError::TimedOut` to "try again" and
//! every other error to "this connection is over".

use alloc::format;
use alloc::string::String;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::net::{Network, TcpListener, TcpStream};
use capos_rt::{CallError, StartInfo};

/// Why `listen` found nothing to listen with.
pub const NO_NETWORK: &str = "no network capability: grant 'net' (a Network with terms listen=PORT) or 'listener'";

#[derive(Debug)]
pub enum NetError {
    /// Nothing happened within the timeout.
    TimedOut,
    /// The peer or the service closed the socket.
    Closed,
    /// No network to listen on.
    Unavailable(String),
    Failed(String),
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::TimedOut => f.write_str("timed out"),
            NetError::Closed => f.write_str("closed"),
            NetError::Unavailable(why) => f.write_str(why),
            NetError::Failed(why) => f.write_str(why),
        }
    }
}

fn net_error(e: CallError) -> NetError {
    match e.code() {
        Some(ErrorCode::TimedOut) => NetError::TimedOut,
        Some(ErrorCode::Closed | ErrorCode::ConnectionReset) => NetError::Closed,
        // The network service has no network (no card on this machine).
        Some(ErrorCode::Unavailable) => match e {
            CallError::Object(o) => NetError::Unavailable(o.message),
            e => NetError::Unavailable(format!("{e:?}")),
        },
        _ => match e {
            CallError::Object(o) => NetError::Failed(format!("{:?}: {}", o.code, o.message)),
            e => NetError::Failed(format!("{e:?}")),
        },
    }
}

/// A listening socket.
pub struct Listener(TcpListener);

/// One accepted connection (dropping it drops the capability, which
/// closes the socket).
pub struct Stream(TcpStream);

/// Listen on `port` with `backlog` pending connections, through what
/// `start` granted.
pub fn listen(start: &StartInfo, port: u16, backlog: u16) -> Result<Listener, NetError> {
    if let Some(h) = start.cap("listener") {
        return Ok(Listener(TcpListener::new(h)));
    }
    let net = start.cap("net").map(Network::new).ok_or(NetError::Unavailable(NO_NETWORK.into()))?;
    net.listen(port, backlog).map(Listener).map_err(net_error)
}

impl Listener {
    /// The next connection, waiting at most `timeout_ms` (`TimedOut`: none).
    pub fn accept(&self, timeout_ms: u32) -> Result<Stream, NetError> {
        self.0.accept(timeout_ms).map(Stream).map_err(net_error)
    }
}

impl Stream {
    pub fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, NetError> {
        self.0.read(buf, timeout_ms).map_err(net_error)
    }

    pub fn write(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, NetError> {
        self.0.write(data, timeout_ms).map_err(net_error)
    }

    pub fn shutdown(&mut self) {
        let _ = self.0.shutdown();
    }

    pub fn close(&mut self) {
        let _ = self.0.close();
    }
}
