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
//!    Only one server waits on an endpoint at a time. A call the kernel
//!    then cannot deliver (its bulk data does not fit the server's buffer,
//!    the server's table is full) fails for its client; it is never put
//!    back, so a call that cannot be delivered cannot wedge the queue.
//! 4. A queued client that dies is removed from the queue
//!    ([`cancel`](EndpointCore::cancel)): it must never be delivered
//!    afterwards, and it no longer counts against [`MAX_QUEUED`].
//! 5. A reply names a token: the client's pid and the sequence number of
//!    the call it waits on. The reply is accepted only while that client
//!    waits on a call to *this* server with *that* sequence number
//!    ([`reply_target`]) and the server has received that call: a stale,
//!    replayed, forged, guessed-ahead or someone else's token is
//!    `InvalidReplyToken`, and answering twice is impossible.
//!
//! 6. A call from the endpoint's own server is refused (`InvalidArgument`):
//!    it would wait for itself for ever.
//! 7. **No senders.** A client capability minted with notification
//!    ([`notify`](EndpointCore::notify)) tells its server when its last copy
//!    is gone (dropped, or its holder died): the badge is queued and a
//!    receive hands it over *before* any queued call (the server frees the
//!    object before new calls can ask for more). A server waiting in
//!    receive is woken for it. Notifications of a closed endpoint are
//!    dropped: nobody serves the objects any more, and a restarted
//!    instance never minted them.
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

/// What a receive hands the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// The oldest queued call.
    Call(Pending),
    /// The last capability with this badge is gone (rule 7).
    NoSenders(u64),
}

/// What a notification did (rule 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notified {
    /// The server was waiting in receive: wake it (it is no longer waiting).
    WakeServer,
    /// Queued for the server's next receive.
    Queued,
    /// The endpoint is closed: nobody to tell.
    Dropped,
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
    notifications: VecDeque<u64>,
    server_waiting: bool,
    closed: bool,
    server: u32,
}

impl EndpointCore {
    /// An open endpoint served by `server`.
    pub fn new(server: u32) -> EndpointCore {
        EndpointCore { queue: VecDeque::with_capacity(MAX_QUEUED), notifications: VecDeque::new(), server_waiting: false, closed: false, server }
    }

    /// The process it is bound to (rule 1).
    pub fn server(&self) -> u32 {
        self.server
    }

    /// Rules 2 and 6.
    pub fn call(&mut self, client: u32, badge: u64) -> Result<CallOutcome, SysError> {
        if self.closed {
            return Err(SysError::PeerGone);
        }
        if client == self.server {
            return Err(SysError::InvalidArgument);
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

    /// Rules 3 and 7: a notification, else the oldest queued call, else
    /// `None` and the server now waits.
    pub fn receive(&mut self) -> Result<Option<Incoming>, SysError> {
        if self.closed {
            return Err(SysError::PeerGone);
        }
        if let Some(badge) = self.notifications.pop_front() {
            return Ok(Some(Incoming::NoSenders(badge)));
        }
        match self.queue.pop_front() {
            Some(p) => Ok(Some(Incoming::Call(p))),
            None => {
                self.server_waiting = true;
                Ok(None)
            }
        }
    }

    /// A call was handed to the waiting server ([`CallOutcome::Deliver`])
    /// but could not be delivered: the server still waits. True when it is
    /// marked waiting again; false when something was queued meanwhile
    /// (the server must then be woken to receive it). Nothing queued is
    /// taken or dropped.
    pub fn still_waiting(&mut self) -> bool {
        if self.closed {
            return false;
        }
        if self.queue.is_empty() && self.notifications.is_empty() {
            self.server_waiting = true;
            true
        } else {
            false
        }
    }

    /// The waiting server gave up (its receive deadline passed): later
    /// calls queue until it receives again (rule 2 delivers only to a
    /// server that waits).
    pub fn stop_waiting(&mut self) {
        self.server_waiting = false;
    }

    /// Rule 7: the last capability minted with `badge` (and notification)
    /// is gone.
    pub fn notify(&mut self, badge: u64) -> Notified {
        if self.closed {
            return Notified::Dropped;
        }
        self.notifications.push_back(badge);
        if self.server_waiting {
            self.server_waiting = false;
            Notified::WakeServer
        } else {
            Notified::Queued
        }
    }

    /// Notifications not yet received.
    pub fn notifications(&self) -> usize {
        self.notifications.len()
    }

    /// Whether the server is blocked in receive on this endpoint.
    pub fn server_waiting(&self) -> bool {
        self.server_waiting
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
        self.notifications.clear();
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
        assert_eq!(ep.receive(), Ok(Some(Incoming::Call(Pending { client: 8, badge: 2 }))));
        assert_eq!(ep.receive(), Ok(Some(Incoming::Call(Pending { client: 9, badge: 3 }))));
        assert_eq!(ep.receive(), Ok(None));
    }

    #[test]
    fn the_queue_is_bounded_and_never_grows() {
        let mut ep = EndpointCore::new(0);
        let cap = ep.queue.capacity();
        for i in 1..=MAX_QUEUED as u32 {
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
        assert_eq!(ep.notify(5), Notified::Dropped);
        assert_eq!(ep.queued() + ep.notifications(), 0, "nothing queues on a closed endpoint");
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
        ep.notify(44);
        assert_eq!(ep.rebind(12), Err(SysError::InvalidArgument), "an open endpoint keeps its server");
        let failed: alloc::vec::Vec<u32> = ep.close_for(7).unwrap().into_iter().map(|p| p.client).collect();
        assert_eq!(failed, [1], "the call queued for the dead instance fails");
        assert_eq!(ep.call(2, 0), Err(SysError::PeerGone));
        ep.rebind(12).unwrap();
        assert_eq!(ep.server(), 12);
        assert_eq!(ep.queued() + ep.notifications(), 0, "nothing of the old instance's queue survives");
        assert!(ep.queue.capacity() >= MAX_QUEUED, "the new queue is reserved, calls never allocate");
        assert_eq!(ep.call(3, 9), Ok(CallOutcome::Queued));
        // A leftover receive handle of instance 7 closes nothing now.
        assert!(ep.close_for(7).is_none());
        assert!(!ep.is_closed());
        assert_eq!(ep.receive(), Ok(Some(Incoming::Call(Pending { client: 3, badge: 9 }))));
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
        assert_eq!(ep.receive(), Ok(Some(Incoming::Call(Pending { client: 2, badge: 0 }))));
        assert_eq!(ep.receive(), Ok(None));
    }

    #[test]
    fn cancelled_calls_free_their_queue_places() {
        let mut ep = EndpointCore::new(0);
        for i in 1..=MAX_QUEUED as u32 {
            ep.call(i, 0).unwrap();
        }
        assert_eq!(ep.call(999, 0), Err(SysError::OutOfMemory));
        assert!(ep.cancel(3));
        assert_eq!(ep.call(999, 0), Ok(CallOutcome::Queued), "a dead client's place is free again");
    }

    #[test]
    fn a_failed_delivery_leaves_the_server_waiting_and_loses_nothing() {
        let mut ep = EndpointCore::new(0);
        ep.receive().unwrap();
        assert_eq!(ep.call(5, 1), Ok(CallOutcome::Deliver));
        assert!(ep.still_waiting(), "nothing queued: waiting again");
        assert_eq!(ep.call(6, 1), Ok(CallOutcome::Deliver), "the next call finds it waiting");
        // Something arrived between the hand-over and its failure.
        assert_eq!(ep.notify(9), Notified::Queued);
        assert!(!ep.still_waiting(), "the server must be woken instead");
        assert_eq!(ep.receive(), Ok(Some(Incoming::NoSenders(9))), "and nothing was taken");
    }

    #[test]
    fn a_server_cannot_call_itself() {
        let mut ep = EndpointCore::new(4);
        assert_eq!(ep.call(4, 0), Err(SysError::InvalidArgument));
        assert_eq!(ep.queued(), 0);
        ep.receive().unwrap();
        assert_eq!(ep.call(4, 0), Err(SysError::InvalidArgument), "not even when it waits");
        assert!(ep.server_waiting(), "the refused call took nothing from the waiting server");
    }

    #[test]
    fn a_server_that_gave_up_waiting_gets_its_calls_queued() {
        let mut ep = EndpointCore::new(1);
        assert!(matches!(ep.receive(), Ok(None)), "nothing queued: the server waits");
        ep.stop_waiting();
        assert_eq!(ep.call(7, 0), Ok(CallOutcome::Queued), "not delivered to a server no longer waiting");
        assert!(matches!(ep.receive(), Ok(Some(Incoming::Call(Pending { client: 7, .. })))));
    }

    #[test]
    fn notifications_come_before_calls_and_wake_a_waiting_server() {
        let mut ep = EndpointCore::new(0);
        assert_eq!(ep.receive(), Ok(None));
        assert_eq!(ep.notify(0x8000_0000_0000_0001), Notified::WakeServer);
        assert!(!ep.server_waiting(), "one wake per wait");
        assert_eq!(ep.call(5, 1), Ok(CallOutcome::Queued), "the woken server has not received yet");
        assert_eq!(ep.notify(0x8000_0000_0000_0002), Notified::Queued);
        assert_eq!(ep.receive(), Ok(Some(Incoming::NoSenders(0x8000_0000_0000_0001))));
        assert_eq!(ep.receive(), Ok(Some(Incoming::NoSenders(0x8000_0000_0000_0002))));
        assert_eq!(ep.receive(), Ok(Some(Incoming::Call(Pending { client: 5, badge: 1 }))));
        assert_eq!(ep.receive(), Ok(None));
        // A call arriving while the server waits is delivered, not a notification.
        assert_eq!(ep.call(6, 1), Ok(CallOutcome::Deliver));
        assert_eq!(ep.notifications(), 0);
    }

    #[test]
    fn no_notification_is_lost_or_invented() {
        // Any interleaving of notifications and receives hands every badge
        // over exactly once, in order, and a waiting server is always woken.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut ep = EndpointCore::new(0);
        let (mut sent, mut got) = (alloc::vec::Vec::new(), alloc::vec::Vec::new());
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 3 == 0 {
                match ep.receive().unwrap() {
                    Some(Incoming::NoSenders(b)) => got.push(b),
                    Some(Incoming::Call(_)) => unreachable!("no calls were made"),
                    None => assert!(ep.server_waiting()),
                }
            } else {
                let was_waiting = ep.server_waiting();
                let n = ep.notify(i);
                assert_eq!(n == Notified::WakeServer, was_waiting);
                sent.push(i);
            }
        }
        while let Some(Incoming::NoSenders(b)) = ep.receive().unwrap() {
            got.push(b);
        }
        assert_eq!(sent, got);
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
