//! Endpoints: how a userspace process serves an interface.
//!
//! The state machine (queueing, delivery, closing, which reply goes to
//! whom) is `capos_kcore::endpoint`, host-tested; this is the kernel object
//! that holds it. The data path is in `proc::ipc`: a client's call is
//! delivered straight from its IPC area into the server's (and its bulk
//! buffer into the server's registered one) when the server takes it, and
//! the reply the same way back. If the server dies, every queued and every
//! outstanding call fails with `PeerGone`.

use capos_kcore::endpoint::EndpointCore;
use spin::Mutex;

pub struct Endpoint {
    /// The process that receives on it.
    pub server: u32,
    pub core: Mutex<EndpointCore>,
}

impl Endpoint {
    pub fn new(server: u32) -> Endpoint {
        Endpoint { server, core: Mutex::new(EndpointCore::new()) }
    }
}

// The Endpoint interface (cap_call on the receive side): mint(badge).
pub const METHOD_MINT: u16 = 0;
