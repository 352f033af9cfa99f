//! Endpoints: how a userspace process serves an interface.
//!
//! A client's `cap_call` on an endpoint capability queues a pending call
//! (the request bytes, the capabilities it transfers, a reply token) and
//! blocks; the server's `endpoint_receive` takes the oldest pending call,
//! installs the transferred capabilities in its own table and gets an
//! `IncomingCall`; its `endpoint_reply` names the token, and the kernel
//! hands the `Return` (with the server's capabilities re-installed in the
//! client's table) back to the blocked client. If the server dies, every
//! queued and every outstanding call fails with `PeerGone`.

use super::Cap;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

pub struct PendingCall {
    pub token: u64,
    pub client: u32,
    pub badge: u64,
    /// The client's `Call` message, already validated.
    pub call_bytes: Vec<u8>,
    pub caps: Vec<Cap>,
}

pub struct EndpointState {
    pub queue: VecDeque<PendingCall>,
    /// The server, if it is blocked in `endpoint_receive` on this endpoint.
    pub waiting: Option<u32>,
    pub dead: bool,
}

pub struct Endpoint {
    pub id: u64,
    pub server: u32,
    pub state: Mutex<EndpointState>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Most calls that may wait on one endpoint.
pub const MAX_QUEUED: usize = 256;

impl Endpoint {
    pub fn new(server: u32) -> Endpoint {
        Endpoint {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            server,
            state: Mutex::new(EndpointState { queue: VecDeque::new(), waiting: None, dead: false }),
        }
    }
}

pub fn next_token() -> u64 {
    NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
}

// The Endpoint interface (cap_call on the receive side): mint(badge).
pub const METHOD_MINT: u16 = 0;
