//! Endpoints: how a userspace process serves an interface.
//!
//! The state machine (queueing, delivery, closing, rebinding, which reply
//! goes to whom) is `capos_kcore::endpoint`, host-tested; this is the
//! kernel object that holds it. The data path is in `proc::ipc`: a
//! client's call is delivered straight from its IPC area into the server's
//! (and its bulk buffer into the server's registered one) when the server
//! takes it, and the reply the same way back.
//!
//! The receive side is a [`ServerHandle`]: every copy of a server's receive
//! capability shares one, and when the last copy goes (`cap_drop`, or the
//! process's table emptied at death) its `Drop` closes the endpoint, so
//! queued and later calls fail with `PeerGone`. If the server dies, every
//! queued and every outstanding call fails the same way. A supervised
//! server's endpoint is then re-bound to its next instance (`proc::supervisor`).
//!
//! The client side is a [`Client`]: every copy of one client capability
//! shares one. A client the server minted with notification
//! (`Endpoint.mint` with `notify`) tells the server when its last copy is
//! gone (dropped, or its holder's table emptied at death): the badge is
//! queued on the endpoint and handed to the server's next receive before
//! any call (kcore endpoint rule 7), so the server frees the object. Copies
//! cost a reference count; only the last drop does any work.
//!
//! Waking the callers of a closed endpoint, or a server waiting for a
//! notification, needs the process table, which may be locked where a
//! capability is dropped; so these hand the work to the process layer
//! ([`super::waiters`]), which does it before the kernel returns to user mode.

use super::waiters::waiters;
use alloc::sync::Arc;
use capos_kcore::endpoint::{EndpointCore, Notified};
use crate::sync::{classes, Lock};

pub struct Endpoint {
    pub core: Lock<EndpointCore>,
}

impl Endpoint {
    /// An open endpoint served by `server` (`endpoint_create`).
    pub fn new(server: u32) -> Endpoint {
        Endpoint { core: Lock::new(&classes::ENDPOINT, EndpointCore::new(server)) }
    }

    /// A closed endpoint bound to no process yet: a manifest export before
    /// its server starts (calls fail with `PeerGone` until [`bind`](Self::bind)).
    pub fn unbound() -> Endpoint {
        let ep = Endpoint::new(u32::MAX);
        ep.core.lock().close();
        ep
    }

    /// Bind a closed endpoint to `server` (its first or next instance).
    pub fn bind(&self, server: u32) -> Result<(), capos_abi::SysError> {
        self.core.lock().rebind(server)
    }

    /// Close it if it is still bound to `server`; its queued callers fail
    /// with `PeerGone` before the kernel returns to user mode.
    pub fn close_for(&self, server: u32) {
        let queued = self.core.lock().close_for(server);
        if let Some(q) = queued {
            waiters().orphaned(server, &mut q.into_iter().map(|p| p.client));
        }
    }

    /// The last copy of a client minted with notification is gone.
    fn no_senders(&self, badge: u64) {
        let (notified, server) = {
            let mut core = self.core.lock();
            (core.notify(badge), core.server())
        };
        if notified == Notified::WakeServer {
            waiters().kick_receiver(server);
        }
    }
}

/// One client capability of an endpoint, shared by all its copies.
pub struct Client {
    endpoint: Arc<Endpoint>,
    badge: u64,
    notify: bool,
}

impl Client {
    /// A client calling with `badge`; `notify`: tell the server when the
    /// last copy is gone.
    pub fn new(endpoint: Arc<Endpoint>, badge: u64, notify: bool) -> Arc<Client> {
        Arc::new(Client { endpoint, badge, notify })
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    pub fn badge(&self) -> u64 {
        self.badge
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.notify {
            self.endpoint.no_senders(self.badge);
        }
    }
}

/// The receive side of an endpoint, shared by every copy of the server's
/// receive capability; the last copy's drop closes the endpoint for the
/// process it was made for (a copy that outlives that process closes
/// nothing once the endpoint serves a new instance).
pub struct ServerHandle {
    endpoint: Arc<Endpoint>,
    server: u32,
}

impl ServerHandle {
    pub fn new(endpoint: Arc<Endpoint>, server: u32) -> Arc<ServerHandle> {
        Arc::new(ServerHandle { endpoint, server })
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// The process this receive handle was made for.
    pub fn server(&self) -> u32 {
        self.server
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.endpoint.close_for(self.server);
    }
}
