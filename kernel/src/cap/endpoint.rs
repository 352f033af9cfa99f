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
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

pub struct Endpoint {
    pub id: u64,
    /// The process that receives on it.
    pub server: u32,
    pub core: Mutex<EndpointCore>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Endpoint {
    pub fn new(server: u32) -> Endpoint {
        Endpoint { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), server, core: Mutex::new(EndpointCore::new()) }
    }
}
