//! The endpoint state machine: how a call finds its server and how a reply
//! finds its client, with no allocation after the endpoint is made.
//!
//! Rules:
//! 1. An endpoint is **bound** to one server process (its pid) and
//!    **open** until that server dies or drops its last receive handle;
//!    then it is **closed**: every queued call and every later call fails
//!    with `PeerGone`. A closed endpoint reopens only by [`rebind`](EndpointCore::rebind): the
//!    kernel's supervisor binds it to a new instance of the same program
//!    from the same manifest entry (`restart: on-failure`), so clients'
//!    capabilities reach the restarted service. Nothing else reopens it,
//!    so a client never reaches a different server by accident.
//!    [`close_for`](EndpointCore::close_for) names the server it closes for: a receive handle of an
//!    earlier instance (a copy that outlived it) closes nothing once the
//!    endpoint is bound to a new one.
//!    A call the server has already *received* is not queued here: when
//!    the server dies it fails (the process table knows who waits on it);
//!    when the server only drops its receive handle it can still answer it
//!    (it holds the reply token).
//! 2. A call on an open endpoint whose server is waiting in receive is
//!    **delivered now** (the kernel switches straight to the server); else
//!    it is **queued**, oldest first, up to [`MAX_QUEUED`]; past that the
//!    caller gets `OutOfMemory` and nothing is queued.
//! 3. A receive takes the oldest queued call, or marks the server waiting.
//!    Only one server waits on an endpoint at a time.
//! 4. A queued client that dies is removed from the queue (it must never be
//!    delivered afterwards).
//! 5. A reply names a token: the client's pid and the sequence number of
//!    the call it waits on. The reply is accepted only while that client
//!    waits on a call to *this* server with *that* sequence number
//!    ([`reply_target`]) and the server has received that call: a stale,
//!    replayed, forged, guessed-ahead or someone else's token is
//!    `InvalidReplyToken`, and answering twice is impossible.
//!
//! The queue is reserved at full capacity when the endpoint is made, so
//! calls and receives never allocate.

use alloc::collections::VecDeque;
use capos_abi::ipc::ReplyToken;
use capos_abi::SysError;

/// Most calls that may wait on one endpoint.
pub const MAX_QUEUED: usize = 256;

/// A call waiting for its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub client: u32,
    pub badge: u64,
}

/// What happened to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The server was waiting: deliver now (it is no longer waiting).
    Deliver,
    /// Queued for the next receive.
    Queued,
}

#[derive(Debug)]
pub struct EndpointCore {
    queue: VecDeque<Pending>,
    server_waiting: bool,
    closed: bool,
    server: u32,
}

impl EndpointCore {
    /// An open endpoint served by `server`.
    pub fn new(server: u32) -> EndpointCore {
        EndpointCore { queue: VecDeque::with_capacity(MAX_QUEUED), server_waiting: false, closed: false, server }
    }

    /// The process it is bound to (rule 1).
    pub fn server(&self) -> u32 {
        self.server
    }

    /// Rule 2.
    pub fn call(&mut self, client: u32, badge: u64) -> Result<CallOutcome, SysError> {
        if self.closed {
            return Err(SysError::PeerGone);
        }
        if self.server_waiting {
            self.server_waiting = false;
            return Ok(CallOutcome::Deliver);
        }
        if self.queue.len() >= MAX_QUEUED {
            return Err(SysError::OutOfMemory);
        }
        self.queue.push_back(Pending { client, badge });
        Ok(CallOutcome::Queued)
    }

    /// Rule 3: the oldest queued call, or `None` and the server now waits.
    pub fn receive(&mut self) -> Result<Option<Pending>, SysError> {
        if self.closed {
            return Err(SysError::PeerGone);
        }
        match self.queue.pop_front() {
            Some(p) => Ok(Some(p)),
            None => {
                self.server_waiting = true;
                Ok(None)
            }
        }
    }

    /// Put a call taken by [`receive`](Self::receive) back at the front
    /// (its delivery failed on the server's side, e.g. a full capability
    /// table; the client keeps waiting and the next receive retries it).
    pub fn requeue_front(&mut self, p: Pending) {
        if !self.closed {
            self.queue.push_front(p);
        }
    }

    /// Whether the server is blocked in receive on this endpoint.
    pub fn server_waiting(&self) -> bool {
        self.server_waiting
    }

    /// The server stopped waiting without a call (it died, or was woken
    /// for something else).
    pub fn stop_waiting(&mut self) {
        self.server_waiting = false;
    }

    /// Rule 4: drop a dying client's queued call. Returns whether it had one.
    pub fn cancel(&mut self, client: u32) -> bool {
        let before = self.queue.len();
        self.queue.retain(|p| p.client != client);
        before != self.queue.len()
    }

    /// Rule 1: close for good; returns the clients whose queued calls must
    /// now fail with `PeerGone`.
    pub fn close(&mut self) -> VecDeque<Pending> {
        self.closed = true;
        self.server_waiting = false;
        core::mem::take(&mut self.queue)
    }

    /// Rule 1: close if still bound to `server` (the process whose last
    /// receive handle went away). `None` when bound to another process: a
    /// stale receive handle of an earlier instance closes nothing.
    pub fn close_for(&mut self, server: u32) -> Option<VecDeque<Pending>> {
        (self.server == server).then(|| self.close())
    }

    /// Rule 1: bind a closed endpoint to `server` and reopen it, with its
    /// queue reserved again at full capacity. An open endpoint is refused
    /// (`InvalidArgument`): it still has a live server.
    pub fn rebind(&mut self, server: u32) -> Result<(), SysError> {
        if !self.closed {
            return Err(SysError::InvalidArgument);
        }
        self.queue = VecDeque::with_capacity(MAX_QUEUED);
        self.closed = false;
        self.server_waiting = false;
        self.server = server;
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// What a blocked client waits for: a reply from `server` to its call
/// number `seq`, which the server has `received` (a call still queued
/// cannot be answered: the server has not seen it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub server: u32,
    pub seq: u32,
    pub received: bool,
}

/// Rule 5: the client a reply from `server` with `token` goes to.
/// `waiting(pid)` says what that process waits for, if it waits for a reply.
pub fn reply_target(token: u64, server: u32, waiting: impl FnOnce(u32) -> Option<Waiting>) -> Result<u32, SysError> {
    let t = ReplyToken::unpack(token);
    if t.seq == 0 {
        return Err(SysError::InvalidReplyToken);
    }
    match waiting(t.client) {
        Some(w) if w.received && w.server == server && w.seq == t.seq => Ok(t.client),
        _ => Err(SysError::InvalidReplyToken),
    }
}

/// The next call sequence number after `seq` (never 0, so token 0 is never
/// valid).
pub fn next_seq(seq: u32) -> u32 {
    match seq.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_server_gets_the_call_now_otherwise_it_queues_in_order() {
        let mut ep = EndpointCore::new(0);
        assert_eq!(ep.receive(), Ok(None));
        assert!(ep.server_waiting());
        assert_eq!(ep.call(7, 1), Ok(CallOutcome::Deliver));
        assert!(!ep.server_waiting(), "one delivery per wait");
        assert_eq!(ep.call(8, 2), Ok(CallOutcome::Queued));
        assert_eq!(ep.call(9, 3), Ok(CallOutcome::Queued));
        assert_eq!(ep.receive(), Ok(Some(Pending { client: 8, badge: 2 })));
        assert_eq!(ep.receive(), Ok(Some(Pending { client: 9, badge: 3 })));
        assert_eq!(ep.receive(), Ok(None));
    }

    #[test]
    fn the_queue_is_bounded_and_never_grows() {
        let mut ep = EndpointCore::new(0);
        let cap = ep.queue.capacity();
        for i in 0..MAX_QUEUED as u32 {
            assert_eq!(ep.call(i, 0), Ok(CallOutcome::Queued));
        }
        assert_eq!(ep.call(999, 0), Err(SysError::OutOfMemory));
        assert_eq!(ep.queued(), MAX_QUEUED);
        assert_eq!(ep.queue.capacity(), cap, "no reallocation on the call path");
    }

    #[test]
    fn closing_fails_queued_and_later_calls_for_good() {
        let mut ep = EndpointCore::new(0);
        ep.call(1, 0).unwrap();
        ep.call(2, 0).unwrap();
        let failed: alloc::vec::Vec<u32> = ep.close().into_iter().map(|p| p.client).collect();
        assert_eq!(failed, [1, 2]);
        assert_eq!(ep.call(3, 0), Err(SysError::PeerGone));
        assert_eq!(ep.receive(), Err(SysError::PeerGone));
        ep.requeue_front(Pending { client: 4, badge: 0 });
        assert_eq!(ep.queued(), 0, "nothing queues on a closed endpoint");
        // A server that was waiting when it died is no longer waiting.
        let mut ep = EndpointCore::new(0);
        ep.receive().unwrap();
        ep.close();
        assert!(!ep.server_waiting());
    }

    #[test]
    fn a_rebound_endpoint_serves_the_new_instance_and_only_it() {
        let mut ep = EndpointCore::new(7);
        ep.call(1, 0).unwrap();
        assert_eq!(ep.rebind(12), Err(SysError::InvalidArgument), "an open endpoint keeps its server");
        let failed: alloc::vec::Vec<u32> = ep.close_for(7).unwrap().into_iter().map(|p| p.client).collect();
        assert_eq!(failed, [1], "the call queued for the dead instance fails");
        assert_eq!(ep.call(2, 0), Err(SysError::PeerGone));
        ep.rebind(12).unwrap();
        assert_eq!(ep.server(), 12);
        assert_eq!(ep.queued(), 0, "nothing of the old instance's queue survives");
        assert!(ep.queue.capacity() >= MAX_QUEUED, "the new queue is reserved, calls never allocate");
        assert_eq!(ep.call(3, 9), Ok(CallOutcome::Queued));
        // A leftover receive handle of instance 7 closes nothing now.
        assert!(ep.close_for(7).is_none());
        assert!(!ep.is_closed());
        assert_eq!(ep.receive(), Ok(Some(Pending { client: 3, badge: 9 })));
        // The new instance's own last handle does.
        assert!(ep.close_for(12).is_some());
        assert_eq!(ep.receive(), Err(SysError::PeerGone));
    }

    #[test]
    fn a_dead_client_is_never_delivered() {
        let mut ep = EndpointCore::new(0);
        ep.call(1, 0).unwrap();
        ep.call(2, 0).unwrap();
        ep.call(1, 5).unwrap();
        assert!(ep.cancel(1));
        assert!(!ep.cancel(1));
        assert_eq!(ep.receive(), Ok(Some(Pending { client: 2, badge: 0 })));
        assert_eq!(ep.receive(), Ok(None));
    }

    #[test]
    fn a_requeued_call_is_next() {
        let mut ep = EndpointCore::new(0);
        ep.call(1, 0).unwrap();
        ep.call(2, 0).unwrap();
        let p = ep.receive().unwrap().unwrap();
        ep.requeue_front(p);
        assert_eq!(ep.receive(), Ok(Some(Pending { client: 1, badge: 0 })));
    }

    #[test]
    fn only_the_exact_outstanding_token_is_accepted() {
        let token = |client, seq| ReplyToken { client, seq }.pack();
        let waits = |pid: u32| if pid == 5 { Some(Waiting { server: 2, seq: 41, received: true }) } else { None };
        assert_eq!(reply_target(token(5, 41), 2, waits), Ok(5));
        // Another server, an older call, a process not waiting, token 0.
        assert_eq!(reply_target(token(5, 41), 3, waits), Err(SysError::InvalidReplyToken));
        assert_eq!(reply_target(token(5, 40), 2, waits), Err(SysError::InvalidReplyToken));
        assert_eq!(reply_target(token(6, 41), 2, waits), Err(SysError::InvalidReplyToken));
        assert_eq!(reply_target(0, 2, |_| Some(Waiting { server: 2, seq: 0, received: true })), Err(SysError::InvalidReplyToken));
        // A call still queued (not received) cannot be answered by guessing its token.
        assert_eq!(reply_target(token(5, 41), 2, |_| Some(Waiting { server: 2, seq: 41, received: false })), Err(SysError::InvalidReplyToken));
        // Random tokens essentially never hit.
        let mut x = 88172645463325252u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x != token(5, 41) {
                assert!(reply_target(x, 2, waits).is_err());
            }
        }
    }

    #[test]
    fn sequence_numbers_skip_zero() {
        assert_eq!(next_seq(0), 1);
        assert_eq!(next_seq(41), 42);
        assert_eq!(next_seq(u32::MAX), 1);
    }
}
