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
//! **Placeholder.** The TcpListener/TcpStream capabilities and their rt
//! clients are built on another branch, so on this one [`listen`] answers
//! "no network capability" and the types have no values. To wire the
//! real clients (intended API: `capos_rt::net::Network::listen(port: u16,
//! backlog: u16) -> Result<TcpListener, CallError>`,
//! `TcpListener::accept(timeout_ms: u32) -> Result<TcpStream, CallError>`,
//! `TcpStream::read(&mut [u8], timeout_ms: u32) -> Result<usize,
//! CallError>` (0 = end of stream, a timeout is an object error with code
//! `timedOut`), `TcpStream::write(&[u8], timeout_ms: u32) ->
//! Result<usize, CallError>`, `shutdown()`, `close()`), replace the
//! bodies below:
//!
//! ```text
//! pub struct Listener(capos_rt::net::TcpListener);
//! pub struct Stream(capos_rt::net::TcpStream);
//!
//! pub fn listen(start: &StartInfo, port: u16, backlog: u16) -> Result<Listener, NetError> {
//!     // A listener granted as such, or a Network allowed to listen on `port`.
//!     if let Some(h) = start.cap("listener") {
//!         return Ok(Listener(capos_rt::net::TcpListener::new(h)));
//!     }
//!     let net = start.cap("net").map(capos_rt::net::Network::new).ok_or(NetError::Unavailable(NO_NETWORK))?;
//!     net.listen(port, backlog).map(Listener).map_err(net_error)
//! }
//! fn net_error(e: CallError) -> NetError {
//!     match e.code() {
//!         Some(ErrorCode::TimedOut) => NetError::TimedOut,
//!         Some(ErrorCode::Closed) => NetError::Closed,
//!         _ => NetError::Failed(format!("{e:?}")),
//!     }
//! }
//! // accept/read/write: self.0.accept(timeout_ms).map(Stream).map_err(net_error), ...
//! // shutdown: let _ = self.0.shutdown();  close: let _ = self.0.close();
//! ```
//!
//! Every timeout the server passes is at least 1 ms (it never asks for
//! "do not wait" as 0, in case the service reads 0 as "no limit").
//!
//! The server needs nothing else of the network: no connect, no UDP, no
//! other port. `main.rs` maps `NetError::TimedOut` to "try again" and
//! every other error to "this connection is over".

use alloc::string::String;
use capos_rt::StartInfo;

/// Why `listen` cannot work on this branch.
pub const NO_NETWORK: &str = "no network capability: the TcpListener client is not built into this binary yet (src/net_glue.rs)";

// TimedOut, Closed and Failed come from the real client (see above).
#[allow(dead_code)]
#[derive(Debug)]
pub enum NetError {
    /// Nothing happened within the timeout.
    TimedOut,
    /// The peer or the service closed the socket.
    Closed,
    /// No network to listen on.
    Unavailable(&'static str),
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

/// No value: there is no socket on this branch.
enum Never {}

/// A listening socket.
pub struct Listener(Never);

/// One accepted connection.
pub struct Stream(Never);

/// Listen on `port` with `backlog` pending connections, through what
/// `start` granted.
pub fn listen(start: &StartInfo, port: u16, backlog: u16) -> Result<Listener, NetError> {
    let _ = (start, port, backlog);
    Err(NetError::Unavailable(NO_NETWORK))
}

impl Listener {
    /// The next connection, waiting at most `timeout_ms` (`TimedOut`: none).
    pub fn accept(&self, timeout_ms: u32) -> Result<Stream, NetError> {
        let _ = timeout_ms;
        match self.0 {}
    }
}

impl Stream {
    pub fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, NetError> {
        let _ = (buf, timeout_ms);
        match self.0 {}
    }

    pub fn write(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, NetError> {
        let _ = (data, timeout_ms);
        match self.0 {}
    }

    pub fn shutdown(&mut self) {
        match self.0 {}
    }

    pub fn close(&mut self) {
        match self.0 {}
    }
}
