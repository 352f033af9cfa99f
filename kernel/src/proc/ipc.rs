//! The call path: `cap_call`, `endpoint_receive`, `endpoint_reply`,
//! `endpoint_reply_receive` and `bulk_register` (ABI: `capos_abi::ipc` and
//! `capos_abi::syscall`).
//!
//! Costs are the design: the envelope is in registers and the IPC area's
//! header, params are read in place in the caller's send buffer, results
//! are built in place in the caller's receive buffer, a message between
//! processes is one copy from one area to the other, a bulk buffer is one
//! copy from one address space to the other (or none, for a kernel object
//! that reads or fills it in place), and nothing here allocates. When a
//! call finds its server waiting, the kernel switches straight to the
//! server, and a reply-and-receive switches straight back to the client,
//! without a pass through the scheduler.
//!
//! Which call goes to whom, and which reply is valid, is decided by
//! `capos_kcore::endpoint` (host-tested); this module moves the bytes.

use super::usermem::{copy_user, UserSlice};
use super::{schedule, switch_to, with, Delivery, State, Table};
use crate::arch::x86_64::trap::TrapFrame;
use crate::cap::endpoint::Endpoint;
use crate::cap::{Bulk, CallMessage, Cap, CapList, Caller, Reply};
use crate::mm::ipc_area::IpcView;
use alloc::sync::Arc;
use capos_abi::capos_capnp::{cap_result, endpoint, u_int64_result};
use capos_abi::helpers::{fill_cap, fill_u64, CapError};
use capos_abi::interfaces::endpoint_method;
use capos_abi::ipc::{CallWord, Received, ReplyToken, ReplyWord, BULK_READ, BULK_WRITE, MAX_BULK_BYTES};
use capos_abi::{interfaces, Handle, SysError};
use capos_kcore::cap_table::CapTable;
use capos_kcore::endpoint::{next_seq, reply_target, CallOutcome, Waiting};

type SysResult = Result<u64, (SysError, u64)>;

/// What a call transferring nothing hands a kernel object.
static NO_CAPS: CapList = CapList::new();

fn err(e: SysError) -> (SysError, u64) {
    (e, 0)
}

/// Install `caps` in `table` and write their handles to `view`'s CAPS_IN;
/// all or nothing (`caps` is empty afterwards either way). Returns how many.
fn install(table: &mut CapTable<Cap>, caps: &mut CapList, view: IpcView) -> Result<u8, SysError> {
    if caps.is_empty() {
        return Ok(0);
    }
    let mut handles = [0u64; capos_abi::limits::MAX_CAPS_PER_MESSAGE];
    let mut n = 0;
    for cap in caps.drain() {
        match table.insert(cap) {
            Ok(h) => {
                handles[n] = h.raw();
                n += 1;
            }
            Err(e) => {
                for h in &handles[..n] {
                    let _ = table.remove(Handle::from_raw(*h));
                }
                return Err(e.sys_error());
            }
        }
    }
    if n > 0 {
        view.set_caps_in(&handles[..n]);
    }
    Ok(n as u8)
}

/// Resolve the first `n` handles of `view`'s CAPS_OUT in `table` into
/// `list` (cleared first; left empty on error).
fn resolve(table: &CapTable<Cap>, view: IpcView, n: u8, list: &mut CapList) -> Result<(), SysError> {
    list.clear();
    if n == 0 {
        return Ok(());
    }
    let raw = view.caps_out(n as usize);
    for h in &raw[..n as usize] {
        match table.get(Handle::from_raw(*h)) {
            Ok(cap) => {
                list.push(cap.clone())?;
            }
            Err(e) => {
                list.clear();
                return Err(e.sys_error());
            }
        }
    }
    Ok(())
}

/// Check a bulk buffer's arithmetic: flags and length agree, at most
/// `MAX_BULK_BYTES`, inside the user half without overflow. Whether its
/// pages are mapped is checked before a kernel object gets it (which may
/// use it in place), and page by page as an endpoint call copies it (a
/// call whose buffer is not mapped fails before the server sees it).
fn bulk_range(flags: u8, addr: u64, len: u64) -> Result<Option<UserSlice>, SysError> {
    if flags == 0 {
        return if len == 0 { Ok(None) } else { Err(SysError::InvalidArgument) };
    }
    if len > MAX_BULK_BYTES {
        return Err(SysError::InvalidArgument);
    }
    Ok(Some(UserSlice::new(addr, len)?))
}

/// `Endpoint.badgeOf`: the badge of the one capability the call
/// transfers, when it is a client of `ep` (the endpoint this server holds
/// the receive side of). Nothing is installed; the answer is a
/// `UInt64Result` in the caller's receive buffer.
fn badge_of(p: &mut super::Process, ep: &Arc<Endpoint>, view: IpcView, ncaps: u8) -> Result<u64, SysError> {
    let result = if ncaps != 1 {
        Err(CapError::new(capos_abi::capos_capnp::ErrorCode::InvalidArgument, "badgeOf takes exactly one capability"))
    } else {
        let h = Handle::from_raw(view.caps_out(1)[0]);
        match p.caps.get(h).map_err(|e| e.sys_error())? {
            Cap::EndpointClient { endpoint, badge } if Arc::ptr_eq(endpoint, ep) => Ok(*badge),
            _ => Err(CapError::new(capos_abi::capos_capnp::ErrorCode::InvalidArgument, "not a client capability of this endpoint")),
        }
    };
    let mut reply = Reply::new(view, &mut p.recv_dirty, &mut p.pending.caps, None);
    reply.results::<u_int64_result::Owned, _>(|r| {
        fill_u64(r, &result);
        Ok(())
    })?;
    let (len, _) = reply.finish();
    Ok(ReplyWord { len: len as u32, caps: 0 }.pack())
}

enum Next {
    Return(u64),
    Block,
    SwitchTo(u32),
}

/// `cap_call(handle, interface, CallWord, bulk ptr, bulk len)`.
pub fn cap_call(f: &mut TrapFrame) -> SysResult {
    let (handle, iface) = (Handle::from_raw(f.rdi), f.rsi);
    let w = CallWord::unpack(f.rdx).map_err(err)?;
    let (bulk_addr, bulk_len) = (f.r10, f.r8);
    let mut bulk_out = 0u64;
    let next = with(|t| -> Result<Next, SysError> {
        let cur = t.current;
        let bulk = bulk_range(w.bulk, bulk_addr, bulk_len)?;
        let p = t.current();
        let view = p.ipc.as_ref().ok_or(SysError::InvalidArgument)?.view();
        // Kernel objects: the common case, served without even a reference
        // count change on the object (it is borrowed from the table).
        if let Ok(Cap::Kernel(_)) = p.caps.get(handle) {
            let super::Process { caps: table, recv_dirty, pending, name, space, state, delivery, .. } = p;
            let Ok(Cap::Kernel(obj)) = table.get(handle) else { return Err(SysError::InvalidHandle) };
            if iface != obj.interface_id() {
                return Err(SysError::UnknownInterface);
            }
            if w.caps == 0 && bulk.is_none() {
                if let Some(n) = obj.call_tiny(w.method, view.send(w.len as usize), view.recv_mut()) {
                    *recv_dirty = (*recv_dirty).max(n);
                    return Ok(Next::Return(ReplyWord { len: n as u32, caps: 0 }.pack()));
                }
            }
            let transferred;
            let caps = if w.caps > 0 {
                let mut list = CapList::new();
                resolve(table, view, w.caps, &mut list)?;
                transferred = list;
                &transferred
            } else {
                &NO_CAPS
            };
            let call = CallMessage::new(iface, w.method, view.send(w.len as usize)).map_err(|e| e.sys_error())?;
            let space = space.as_ref().ok_or(SysError::BadAddress)?;
            let bulk = match bulk {
                Some(s) => {
                    s.check(space, w.bulk & BULK_WRITE != 0)?;
                    Some(Bulk::new(space, s, w.bulk))
                }
                None => None,
            };
            // The caller is running, so its pending list is free: the
            // reply's capabilities gather there.
            let mut reply = Reply::new(view, recv_dirty, &mut pending.caps, bulk);
            obj.call(&Caller { pid: cur, name, caps }, &call, &mut reply)?;
            if reply.parked() {
                // The object answers later (Console.readLine) and wakes us.
                *delivery = None;
                *state = State::AwaitingInput;
                return Ok(Next::Block);
            }
            let (len, out) = reply.finish();
            let n = if pending.caps.is_empty() { 0 } else { install(table, &mut pending.caps, view)? };
            bulk_out = out;
            return Ok(Next::Return(ReplyWord { len: len as u32, caps: n }.pack()));
        }
        let target = p.caps.get(handle).map_err(|e| e.sys_error())?.clone();
        match target {
            Cap::Kernel(_) => Err(SysError::InvalidHandle),
            Cap::EndpointServer(ep) => {
                if iface != interfaces::ENDPOINT {
                    return Err(SysError::UnknownInterface);
                }
                if w.method == endpoint_method::BADGE_OF {
                    return badge_of(p, ep.endpoint(), view, w.caps).map(Next::Return);
                }
                if w.method != endpoint_method::MINT {
                    return Err(SysError::UnknownMethod);
                }
                let call = CallMessage::new(iface, w.method, view.send(w.len as usize)).map_err(|e| e.sys_error())?;
                let badge = call.params::<endpoint::mint_params::Owned>().map_err(|e| e.sys_error())?.get_badge();
                let mut reply = Reply::new(view, &mut p.recv_dirty, &mut p.pending.caps, None);
                let slot = reply.add_cap(Cap::EndpointClient { endpoint: ep.endpoint().clone(), badge })?;
                reply.results::<cap_result::Owned, _>(|r| {
                    fill_cap(r, &Ok(slot));
                    Ok(())
                })?;
                let (len, _) = reply.finish();
                let n = install(&mut p.caps, &mut p.pending.caps, view)?;
                Ok(Next::Return(ReplyWord { len: len as u32, caps: n }.pack()))
            }
            Cap::EndpointClient { endpoint: ep, badge } => {
                if w.caps > 0 {
                    resolve(&p.caps, view, w.caps, &mut p.pending.caps)?;
                }
                // One lock for the server it is bound to and the call; it is
                // released before any capability is dropped (dropping a
                // receive handle closes an endpoint).
                let called = {
                    let mut core = ep.core.lock();
                    let server = core.server();
                    if server == cur {
                        // It would wait for itself forever.
                        Err(SysError::InvalidArgument)
                    } else {
                        core.call(cur, badge).map(|o| (o, server))
                    }
                };
                let (outcome, server) = match called {
                    Ok(o) => o,
                    Err(e) => {
                        p.pending.caps.clear();
                        return Err(e);
                    }
                };
                p.seq = next_seq(p.seq);
                p.waiting = Some(Waiting { server, seq: p.seq, received: false });
                let pc = &mut p.pending;
                (pc.iface, pc.word, pc.badge, pc.bulk_addr, pc.bulk_len) = (iface, w, badge, bulk_addr, bulk_len);
                p.delivery = None;
                p.state = State::AwaitingReply;
                match outcome {
                    CallOutcome::Queued => Ok(Next::Block),
                    CallOutcome::Deliver => match deliver_call(t, cur, server) {
                        Ok(()) => Ok(Next::SwitchTo(server)),
                        Err(e) => {
                            // The server stays waiting (its queue is empty, so
                            // receive only marks it waiting again); the caller
                            // gets the error.
                            let _ = ep.core.lock().receive();
                            let p = t.current();
                            p.waiting = None;
                            p.pending.caps.clear();
                            p.state = State::Running;
                            Err(e)
                        }
                    },
                }
            }
        }
    })
    .map_err(err)?;
    match next {
        Next::Return(word) => {
            f.rsi = bulk_out;
            Ok(word)
        }
        Next::Block => {
            schedule();
            take_reply(f)
        }
        Next::SwitchTo(server) => {
            switch_to(server);
            take_reply(f)
        }
    }
}

/// What a woken client returns: the reply the server delivered, or why not.
fn take_reply(f: &mut TrapFrame) -> SysResult {
    match with(|t| {
        let p = t.current();
        p.waiting = None;
        p.delivery.take()
    }) {
        Some(Ok(Delivery::Reply { word, bulk })) => {
            f.rsi = bulk;
            Ok(word.pack())
        }
        Some(Ok(Delivery::Call(_))) | None => Err(err(SysError::PeerGone)),
        Some(Err(e)) => Err(err(e)),
    }
}

/// Move the call `client` is blocked on into `server`: the message from
/// area to area, the bulk buffer into the server's registered one, the
/// capabilities into the server's table. On error nothing reached the
/// server's table and the client still waits.
fn deliver_call(t: &mut Table, client: u32, server: u32) -> Result<(), SysError> {
    let (c, s) = t.two(client, server).ok_or(SysError::PeerGone)?;
    if c.state != State::AwaitingReply {
        // Killed while its call was queued: nobody waits for the answer.
        return Err(SysError::PeerGone);
    }
    let cview = c.ipc.as_ref().ok_or(SysError::PeerGone)?.view();
    let sview = s.ipc.as_ref().ok_or(SysError::PeerGone)?.view();
    let (iface, word, badge, bulk_addr, bulk_len, seq) = (c.pending.iface, c.pending.word, c.pending.badge, c.pending.bulk_addr, c.pending.bulk_len, c.seq);
    let bulk_in = if word.bulk & BULK_READ != 0 && bulk_len > 0 {
        let (raddr, rlen) = s.bulk_recv.ok_or(SysError::BufferTooSmall)?;
        if bulk_len > rlen {
            return Err(SysError::BufferTooSmall);
        }
        let (cs, ss) = (c.space.as_ref().ok_or(SysError::BadAddress)?, s.space.as_ref().ok_or(SysError::PeerGone)?);
        copy_user(cs, bulk_addr, ss, raddr, bulk_len as usize)?;
        bulk_len
    } else {
        0
    };
    let n = if c.pending.caps.is_empty() { 0 } else { install(&mut s.caps, &mut c.pending.caps, sview)? };
    if let Some(w) = c.waiting.as_mut() {
        w.received = true;
    }
    cview.copy_message(&sview, word.len as usize);
    s.recv_dirty = s.recv_dirty.max(word.len as usize);
    s.delivery = Some(Ok(Delivery::Call(Received {
        word: CallWord { caps: n, ..word },
        interface_id: iface,
        token: ReplyToken { client, seq }.pack(),
        badge,
        bulk_in,
        bulk_out_capacity: if word.bulk & BULK_WRITE != 0 { bulk_len } else { 0 },
    })));
    Ok(())
}

/// Fail the call `client` waits on and make it runnable.
pub(super) fn fail_client(t: &mut Table, client: u32, e: SysError) {
    if let Some(c) = t.get(client) {
        if c.state == State::AwaitingReply {
            c.delivery = Some(Err(e));
            c.waiting = None;
            t.wake(client);
        }
    }
}

fn set_received(f: &mut TrapFrame, r: Received) -> u64 {
    f.rsi = r.interface_id;
    f.rdi = r.token;
    f.r10 = r.badge;
    f.r8 = r.bulk_in;
    f.r9 = r.bulk_out_capacity;
    r.word.pack()
}

fn server_endpoint(t: &mut Table, handle: Handle) -> Result<Arc<Endpoint>, SysError> {
    let cur = t.current;
    match t.current().caps.get(handle) {
        Ok(Cap::EndpointServer(h)) if h.server() == cur => Ok(h.endpoint().clone()),
        Ok(_) => Err(SysError::NotAnEndpoint),
        Err(e) => Err(e.sys_error()),
    }
}

/// Take the next call on `ep` for the current process, or mark it waiting.
/// `Ok(None)`: block (state already set).
fn try_receive(t: &mut Table, ep: &Arc<Endpoint>) -> Result<Option<Received>, SysError> {
    let cur = t.current;
    loop {
        let pending = ep.core.lock().receive()?;
        match pending {
            Some(p) => match deliver_call(t, p.client, cur) {
                Ok(()) => {
                    return match t.current().delivery.take() {
                        Some(Ok(Delivery::Call(r))) => Ok(Some(r)),
                        _ => Err(SysError::PeerGone),
                    }
                }
                // This call cannot be delivered (e.g. its bulk buffer is
                // larger than ours): fail it and take the next.
                Err(e) => fail_client(t, p.client, e),
            },
            None => {
                let p = t.current();
                p.delivery = None;
                p.state = State::AwaitingCall;
                return Ok(None);
            }
        }
    }
}

/// Block until a call is delivered to the current process.
fn wait_for_call(f: &mut TrapFrame, first: Option<u32>) -> SysResult {
    match first {
        Some(client) => switch_to(client),
        None => schedule(),
    }
    match with(|t| t.current().delivery.take()) {
        Some(Ok(Delivery::Call(r))) => Ok(set_received(f, r)),
        Some(Err(e)) => Err(err(e)),
        _ => Err(err(SysError::PeerGone)),
    }
}

/// `endpoint_receive(endpoint handle)`.
pub fn endpoint_receive(f: &mut TrapFrame) -> SysResult {
    let handle = Handle::from_raw(f.rdi);
    let got = with(|t| {
        let ep = server_endpoint(t, handle)?;
        try_receive(t, &ep)
    })
    .map_err(err)?;
    match got {
        Some(r) => Ok(set_received(f, r)),
        None => wait_for_call(f, None),
    }
}

/// Deliver the current process's reply for `token`; returns the client.
fn reply(t: &mut Table, token: u64, word: ReplyWord, bulk_addr: u64, bulk_len: u64) -> Result<u32, SysError> {
    let cur = t.current;
    let client = reply_target(token, cur, |pid| match t.procs.get(pid) {
        Some(c) if c.state == State::AwaitingReply => c.waiting,
        _ => None,
    })?;
    let (s, c) = t.two(cur, client).ok_or(SysError::InvalidReplyToken)?;
    let sview = s.ipc.as_ref().ok_or(SysError::InvalidArgument)?.view();
    let cview = c.ipc.as_ref().ok_or(SysError::InvalidReplyToken)?.view();
    if bulk_len > 0 {
        let capacity = if c.pending.word.bulk & BULK_WRITE != 0 { c.pending.bulk_len } else { 0 };
        if bulk_len > capacity {
            return Err(SysError::BufferTooSmall);
        }
        let (ss, cs) = (s.space.as_ref().ok_or(SysError::BadAddress)?, c.space.as_ref().ok_or(SysError::BadAddress)?);
        // Checked as it copies: a bad server pointer fails this reply (the
        // client still waits) after writing only into the buffer the
        // client offered for the answer.
        copy_user(ss, bulk_addr, cs, c.pending.bulk_addr, bulk_len as usize)?;
    }
    // The server's handles go through its own scratch list (its pending
    // list is empty while it serves: it is not blocked in a call).
    let n = if word.caps > 0 {
        resolve(&s.caps, sview, word.caps, &mut s.pending.caps)?;
        install(&mut c.caps, &mut s.pending.caps, cview)?
    } else {
        0
    };
    sview.copy_message(&cview, word.len as usize);
    c.recv_dirty = c.recv_dirty.max(word.len as usize);
    c.waiting = None;
    c.delivery = Some(Ok(Delivery::Reply { word: ReplyWord { len: word.len, caps: n }, bulk: bulk_len }));
    Ok(client)
}

/// `endpoint_reply(token, ReplyWord, bulk ptr, bulk len)`.
pub fn endpoint_reply(f: &mut TrapFrame) -> SysResult {
    let word = ReplyWord::unpack(f.rdx).map_err(err)?;
    with(|t| {
        let client = reply(t, f.rdi, word, f.r10, f.r8)?;
        t.wake(client);
        Ok(0)
    })
    .map_err(err)
}

/// `endpoint_reply_receive(token, endpoint handle, ReplyWord, bulk ptr,
/// bulk len)`: reply, then wait for the next call; when none is queued the
/// CPU goes straight back to the client.
pub fn endpoint_reply_receive(f: &mut TrapFrame) -> SysResult {
    let word = ReplyWord::unpack(f.rdx).map_err(err)?;
    let handle = Handle::from_raw(f.rsi);
    let (got, client) = with(|t| {
        let ep = server_endpoint(t, handle)?;
        let client = reply(t, f.rdi, word, f.r10, f.r8)?;
        match try_receive(t, &ep) {
            Ok(Some(r)) => {
                t.wake(client);
                Ok((Some(r), client))
            }
            Ok(None) => Ok((None, client)),
            Err(e) => {
                t.wake(client);
                Err(e)
            }
        }
    })
    .map_err(err)?;
    match got {
        Some(r) => Ok(set_received(f, r)),
        None => wait_for_call(f, Some(client)),
    }
}

/// `bulk_register(ptr, len)`: the buffer calls' bulk data lands in when
/// this process serves an endpoint (len 0 unregisters).
pub fn bulk_register(f: &mut TrapFrame) -> SysResult {
    let (addr, len) = (f.rdi, f.rsi);
    with(|t| {
        if len == 0 {
            t.current().bulk_recv = None;
            return Ok(0);
        }
        if len > MAX_BULK_BYTES {
            return Err(SysError::InvalidArgument);
        }
        let slice = UserSlice::new(addr, len)?;
        let p = t.current();
        slice.check(p.space.as_ref().ok_or(SysError::BadAddress)?, true)?;
        p.bulk_recv = Some((addr, len));
        Ok(0)
    })
    .map_err(err)
}
