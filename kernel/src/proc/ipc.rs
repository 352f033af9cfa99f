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
//! What a call does is decided by `capos_kcore::call` (route, bulk rules,
//! what next) and `capos_kcore::endpoint` (deliver, queue or refuse; which
//! reply is valid), both host-tested; process states change only through
//! the table's transitions (`table`). This module moves the bytes.

use super::table::{Delivery, Parts, Process, State, Switch, Table, Wait};
use super::{run_switch, schedule, with};
use crate::arch::x86_64::trap::TrapFrame;
use crate::cap::endpoint::{Client, Endpoint};
use crate::cap::{Bulk, CallMessage, Cap, CapList, Caller, KernelCap, Reply};
use crate::mm::address_space::AddressSpace;
use crate::mm::ipc_area::IpcView;
use crate::mm::usermem::{copy_user, UserSlice};
use alloc::sync::Arc;
use capos_abi::capos_capnp::{cap_result, endpoint, u_int64_result};
use capos_abi::helpers::{fill_cap, fill_u64, CapError};
use capos_abi::ipc::{CallWord, Received, ReplyToken, ReplyWord};
use capos_abi::limits::MAX_CAPS_PER_MESSAGE;
use capos_abi::{Handle, SysError};
use capos_kcore::call::{bulk_arg, next_after, route, BulkArg, Held, Next, Route};
use capos_kcore::cap_table::CapTable;
use capos_kcore::endpoint::{reply_target, Incoming};

type SysResult = Result<u64, (SysError, u64)>;

/// What a call transferring nothing hands a kernel object.
static NO_CAPS: CapList = CapList::new();

fn err(e: SysError) -> (SysError, u64) {
    (e, 0)
}

/// What `cap_call` does once the table is unlocked.
enum After {
    /// Return now: the reply word, and bulk bytes written back.
    Return(u64, u64),
    /// Wait for the answer: a kernel object answers later
    /// (`Reply::park`), or the call is queued; the scheduler runs.
    Block,
    /// Wait for the answer on the server, switched to now (prepared in
    /// the call's own lock section).
    Switch(Option<Switch>),
    /// Call a kernel object with the table unlocked (boxed: the other
    /// variants stay a few words, returned in registers).
    Unlocked(alloc::boxed::Box<Unlocked>),
}

/// A kernel-object call that runs with the process table unlocked
/// (`KernelObject::runs_unlocked`: it may wait for a device). What it
/// needs of the caller is taken here: the caller is running on this CPU,
/// so nothing else changes its IPC area, receive buffer or capabilities
/// until it is back (table rule 7: even a kill waits for this CPU).
struct Unlocked {
    obj: KernelCap,
    pid: u32,
    name: Arc<str>,
    space: Arc<AddressSpace>,
    view: IpcView,
    dirty: usize,
    iface: u64,
    w: CallWord,
    transferred: CapList,
    bulk: Option<(UserSlice, u8)>,
}

// ---- cap_call ----

/// `cap_call(handle, interface, CallWord, bulk ptr, bulk len)`.
pub fn cap_call(f: &mut TrapFrame) -> SysResult {
    let (handle, iface) = (Handle::from_raw(f.rdi), f.rsi);
    let w = CallWord::unpack(f.rdx).map_err(err)?;
    let bulk = bulk_arg(w.bulk, f.r10, f.r8).map_err(err)?;
    let after = with(|t| -> Result<After, SysError> {
        let Parts { caps, view, recv_dirty, .. } = t.current().parts();
        let cap = caps.get(handle).map_err(|e| e.sys_error())?;
        let held = match cap {
            Cap::Kernel(k) => Held::Kernel { interface: k.interface_id() },
            Cap::EndpointServer(_) => Held::Receive,
            Cap::EndpointClient(_) => Held::Client,
        };
        let route = route(held, iface, w.method)?;
        // The common case first: a tiny call to a kernel object, answered
        // in place with the object borrowed from the table.
        if let (Route::Kernel, Cap::Kernel(obj), None, 0, Some(view)) = (route, cap, &bulk, w.caps, view) {
            if let Some(n) = obj.call_tiny(w.method, view.send(w.len as usize), view.recv_mut()) {
                *recv_dirty = (*recv_dirty).max(n);
                return Ok(After::Return(ReplyWord::new(n as u32, 0).pack(), 0));
            }
        }
        match route {
            Route::Kernel if matches!(cap, Cap::Kernel(obj) if obj.runs_unlocked()) => unlocked(t.current(), handle, iface, w, bulk),
            Route::Kernel => {
                let after = call_kernel(t.current().parts(), handle, iface, w, bulk)?;
                if let After::Block = after {
                    // The object completes the call later and wakes us.
                    t.park();
                }
                Ok(after)
            }
            Route::Mint => mint(t.current().parts(), handle, w),
            Route::BadgeOf => badge_of(t.current().parts(), handle, w),
            Route::Endpoint => call_endpoint(t, handle, iface, w, bulk),
        }
    })
    .map_err(err)?;
    match after {
        After::Return(word, bulk_out) => {
            f.rsi = bulk_out;
            Ok(word)
        }
        After::Block => {
            schedule();
            take_reply(f)
        }
        After::Switch(s) => {
            run_switch(s);
            take_reply(f)
        }
        After::Unlocked(u) => {
            let (word, bulk_out) = call_unlocked(u).map_err(err)?;
            f.rsi = bulk_out;
            Ok(word)
        }
    }
}

/// Take what a call of a kernel object that runs unlocked needs of the
/// caller: the object, transferred capabilities (resolved now) and the
/// bulk buffer (checked now).
#[inline(never)]
fn unlocked(p: &mut Process, handle: Handle, iface: u64, w: CallWord, bulk: Option<BulkArg>) -> Result<After, SysError> {
    let (space, name) = p.shared();
    let space = space.ok_or(SysError::BadAddress)?;
    let Parts { pid, caps: table, view, recv_dirty, .. } = p.parts();
    let view = view.ok_or(SysError::InvalidArgument)?;
    let mut transferred = CapList::new();
    if w.caps > 0 {
        resolve(table, view, w.caps, &mut transferred)?;
    }
    let Ok(Cap::Kernel(obj)) = table.get(handle) else { return Err(SysError::InvalidHandle) };
    let bulk = match bulk {
        Some(b) => Some((check_bulk(Some(&space), &b)?, b.flags)),
        None => None,
    };
    Ok(After::Unlocked(alloc::boxed::Box::new(Unlocked { obj: obj.clone(), pid, name, space, view, dirty: *recv_dirty, iface, w, transferred, bulk })))
}

/// Run a kernel object's call with the table unlocked; then, locked
/// again, record how much of the receive buffer it wrote and install the
/// capabilities it handed back.
#[inline(never)]
fn call_unlocked(mut u: alloc::boxed::Box<Unlocked>) -> Result<(u64, u64), SysError> {
    // Used in place (the capability lists are a few hundred bytes each:
    // moving them out would copy them).
    let mut scratch = CapList::new();
    // With interrupts off, as every call: running these with them on
    // (trap::with_interrupts) bounds the kernel's interrupts-off spans to
    // a few thousand instructions, but lost a synced write under kills on
    // several CPUs (docs/interrupts-off.md, "What is still long").
    let answered = {
        let u = &mut *u;
        (|| {
            let call = CallMessage::new(u.iface, u.w.method, u.view.send(u.w.len as usize)).map_err(|e| e.sys_error())?;
            let bulk = u.bulk.take().map(|(slice, flags)| Bulk::new(&u.space, slice, flags));
            let mut reply = Reply::new(u.view, &mut u.dirty, &mut scratch, bulk);
            u.obj.call(&Caller { pid: u.pid, name: &u.name, caps: &u.transferred }, &call, &mut reply)?;
            if reply.parked() {
                // KernelObject::runs_unlocked: such an object never parks.
                log::error!("{} (pid {}): a {} parked a call made without the table lock; refused", u.name, u.pid, u.obj.kind());
                return Err(SysError::InvalidArgument);
            }
            Ok(reply.finish())
        })()
    };
    let (view, dirty) = (u.view, u.dirty);
    drop(u);
    let installed = with(|t| {
        let p = t.current();
        *p.recv_dirty_mut() = dirty;
        let (len, out) = answered?;
        let n = if scratch.is_empty() { 0 } else { install(p.caps_mut(), &mut scratch, view, None)? };
        Ok((ReplyWord::new(len as u32, n).pack(), out))
    });
    // Capabilities not installed (an error) drop with the table unlocked.
    drop(scratch);
    installed
}

/// Rule 2 of `kcore::call`: every page of the buffer mapped for the user
/// (writable when the callee may write it), at call time.
fn check_bulk(space: Option<&AddressSpace>, b: &BulkArg) -> Result<UserSlice, SysError> {
    let s = UserSlice::new(b.addr, b.len)?;
    s.check(space.ok_or(SysError::BadAddress)?, b.writable())?;
    Ok(s)
}

/// The general kernel-object path: transferred capabilities, a bulk
/// buffer, results that are not a tiny struct (out of line: the tiny path
/// in `cap_call` is the common one).
#[inline(never)]
fn call_kernel(p: Parts, handle: Handle, iface: u64, w: CallWord, bulk: Option<BulkArg>) -> Result<After, SysError> {
    let Parts { pid, name, caps: table, space, view, recv_dirty, scratch } = p;
    let view = view.ok_or(SysError::InvalidArgument)?;
    let transferred;
    let caps = if w.caps > 0 {
        let mut list = CapList::new();
        resolve(table, view, w.caps, &mut list)?;
        transferred = list;
        &transferred
    } else {
        &NO_CAPS
    };
    let Ok(Cap::Kernel(obj)) = table.get(handle) else { return Err(SysError::InvalidHandle) };
    let call = CallMessage::new(iface, w.method, view.send(w.len as usize)).map_err(|e| e.sys_error())?;
    let space = space.ok_or(SysError::BadAddress)?;
    let bulk = match bulk {
        Some(b) => Some(Bulk::new(space, check_bulk(Some(space), &b)?, b.flags)),
        None => None,
    };
    // The caller is running, so its call list is free: the reply's
    // capabilities gather there.
    let mut reply = Reply::new(view, recv_dirty, scratch, bulk);
    obj.call(&Caller { pid, name, caps }, &call, &mut reply)?;
    if reply.parked() {
        return Ok(After::Block);
    }
    let (len, out) = reply.finish();
    let n = if scratch.is_empty() { 0 } else { install(table, scratch, view, None)? };
    Ok(After::Return(ReplyWord::new(len as u32, n).pack(), out))
}

/// `Endpoint.mint`: a new client capability of the endpoint this receive
/// handle serves.
fn mint(p: Parts, handle: Handle, w: CallWord) -> Result<After, SysError> {
    let Parts { caps: table, view, recv_dirty, scratch, .. } = p;
    let view = view.ok_or(SysError::InvalidArgument)?;
    let Ok(Cap::EndpointServer(ep)) = table.get(handle) else { return Err(SysError::InvalidHandle) };
    let call = CallMessage::new(capos_abi::interfaces::ENDPOINT, w.method, view.send(w.len as usize)).map_err(|e| e.sys_error())?;
    let params = call.params::<endpoint::mint_params::Owned>().map_err(|e| e.sys_error())?;
    let client = Client::new(ep.endpoint().clone(), params.get_badge(), params.get_notify());
    let mut reply = Reply::new(view, recv_dirty, scratch, None);
    let slot = reply.add_cap(Cap::EndpointClient(client))?;
    reply.results::<cap_result::Owned, _>(|r| {
        fill_cap(r, &Ok(slot));
        Ok(())
    })?;
    let (len, _) = reply.finish();
    let n = install(table, scratch, view, None)?;
    Ok(After::Return(ReplyWord::new(len as u32, n).pack(), 0))
}

/// `Endpoint.badgeOf`: the badge of the one capability the call
/// transfers, when it is a client of the endpoint this receive handle
/// serves. Nothing is installed; the answer is a `UInt64Result`.
fn badge_of(p: Parts, handle: Handle, w: CallWord) -> Result<After, SysError> {
    let Parts { caps: table, view, recv_dirty, scratch, .. } = p;
    let view = view.ok_or(SysError::InvalidArgument)?;
    let Ok(Cap::EndpointServer(ep)) = table.get(handle) else { return Err(SysError::InvalidHandle) };
    let result = if w.caps != 1 {
        Err(CapError::new(capos_abi::capos_capnp::ErrorCode::InvalidArgument, "badgeOf takes exactly one capability"))
    } else {
        match badge_if_ours(table.get(Handle::from_raw(view.caps_out(1)[0])).map_err(|e| e.sys_error())?, ep.endpoint()) {
            Some(b) => Ok(b),
            None => Err(CapError::new(capos_abi::capos_capnp::ErrorCode::InvalidArgument, "not a client capability of this endpoint")),
        }
    };
    let mut reply = Reply::new(view, recv_dirty, scratch, None);
    reply.results::<u_int64_result::Owned, _>(|r| {
        fill_u64(r, &result);
        Ok(())
    })?;
    let (len, _) = reply.finish();
    Ok(After::Return(ReplyWord::new(len as u32, 0).pack(), 0))
}

/// The badge of `cap` if it is a client of `ep`.
fn badge_if_ours(cap: &Cap, ep: &Arc<Endpoint>) -> Option<u64> {
    match cap {
        Cap::EndpointClient(c) if Arc::ptr_eq(c.endpoint(), ep) => Some(c.badge()),
        _ => None,
    }
}

/// A call through a client capability: checked whole now, then delivered
/// to a waiting server (and switched to, prepared in this same lock
/// section) or queued (`kcore::endpoint` rule 2).
fn call_endpoint(t: &mut Table, handle: Handle, iface: u64, w: CallWord, bulk: Option<BulkArg>) -> Result<After, SysError> {
    let cur = t.current_pid();
    let p = t.current();
    let Ok(Cap::EndpointClient(client)) = p.caps().get(handle) else { return Err(SysError::InvalidHandle) };
    let (ep, badge) = (client.endpoint().clone(), client.badge());
    // Rule 2 of kcore::call: the bulk buffer is checked now, before the
    // call is queued or delivered. A buffer the server reads is checked
    // by the copy itself when the call is delivered in this same syscall
    // (with writability too, when the server may answer into it), so it
    // is walked once, not twice.
    let copy_checks = match &bulk {
        Some(b) if b.readable() && b.len > 0 => true,
        Some(b) => {
            check_bulk(p.space(), b)?;
            false
        }
        None => false,
    };
    if w.caps > 0 {
        let parts = p.parts();
        resolve(parts.caps, parts.view.ok_or(SysError::InvalidArgument)?, w.caps, parts.scratch)?;
    }
    // The endpoint's lock is released before any capability drops
    // (dropping a receive handle closes an endpoint).
    let called = {
        let mut core = ep.core.lock();
        core.call(cur, badge).map(|o| (o, core.server()))
    };
    let (outcome, server) = match called {
        Ok(o) => o,
        Err(e) => {
            p.call_caps_mut().clear();
            return Err(e);
        }
    };
    let b = bulk.map_or((0, 0), |b| (b.addr, b.len));
    match next_after(outcome, server) {
        Next::Block => {
            if let (true, Some(b)) = (copy_checks, &bulk) {
                if let Err(e) = check_bulk(p.space(), b) {
                    // Not queued after all.
                    ep.core.lock().cancel(cur);
                    p.call_caps_mut().clear();
                    return Err(e);
                }
            }
            p.begin_call(server, handle.raw(), iface, w, badge, b, false);
            Ok(After::Block)
        }
        Next::SwitchTo(server) => {
            let delivered = match t.current_and(server) {
                // The endpoint said its server waits; a server that has
                // just died (ended on another CPU, its endpoints not yet
                // closed) is not delivered to: the call fails as if it
                // had found the endpoint closed.
                Some((c, s)) if s.state() == State::Blocked(Wait::Call) => {
                    c.begin_call(server, handle.raw(), iface, w, badge, b, true);
                    match deliver_call(c, s, &ep, cur) {
                        Ok(r) => {
                            s.hand_call(r);
                            Ok(s.pinned_away())
                        }
                        Err(e) => {
                            c.abandon_call();
                            Err(e)
                        }
                    }
                }
                _ => {
                    t.current().call_caps_mut().clear();
                    Err(SysError::PeerGone)
                }
            };
            let away = match delivered {
                Ok(away) => away,
                Err(e) => return Err(delivery_failed(t, &ep, server, e)),
            };
            if away {
                // Its CPU runs it (a `cpu:` pin): queued there, and this
                // caller waits for the reply like any other.
                t.queue(server);
                return Ok(After::Block);
            }
            Ok(After::Switch(t.prepare_switch(server)))
        }
    }
}

/// A call handed to its waiting server could not be delivered: the
/// server keeps waiting and the caller gets `e`; if something was queued
/// meanwhile, the server receives again instead.
#[cold]
#[inline(never)]
fn delivery_failed(t: &mut Table, ep: &Arc<Endpoint>, server: u32, e: SysError) -> SysError {
    if !ep.core.lock().still_waiting() {
        t.wake(server, Some(Wait::Call), Ok(Delivery::Retry));
    }
    e
}

/// What a woken client returns: the reply the server delivered, or why not.
fn take_reply(f: &mut TrapFrame) -> SysResult {
    match with(|t| t.take_delivery()) {
        Some(Ok(Delivery::Reply { word, bulk })) => {
            f.rsi = bulk;
            Ok(word.pack())
        }
        Some(Ok(_)) | None => Err(err(SysError::PeerGone)),
        Some(Err(e)) => Err(err(e)),
    }
}

// ---- Moving capabilities ----

/// Install `caps` in `table` and write their handles to `view`'s CAPS_IN
/// (and, for a received call, each one's badge if it is a client of
/// `ep`); all or nothing (`caps` is empty afterwards either way). Returns
/// how many.
fn install(table: &mut CapTable<Cap>, caps: &mut CapList, view: IpcView, ep: Option<&Arc<Endpoint>>) -> Result<u8, SysError> {
    if caps.is_empty() {
        return Ok(0);
    }
    let mut handles = [0u64; MAX_CAPS_PER_MESSAGE];
    let mut badges = [0u64; MAX_CAPS_PER_MESSAGE];
    let mut n = 0;
    for cap in caps.drain() {
        if let Some(ep) = ep {
            badges[n] = badge_if_ours(&cap, ep).unwrap_or(0);
        }
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
    view.set_caps_in(&handles[..n]);
    if ep.is_some() {
        view.set_badges_in(&badges[..n]);
    }
    Ok(n as u8)
}

/// Resolve the first `n` handles of `view`'s CAPS_OUT in `table` into
/// `list` (cleared first; left empty on error): copies.
fn resolve(table: &CapTable<Cap>, view: IpcView, n: u8, list: &mut CapList) -> Result<(), SysError> {
    list.clear();
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

/// Like [`resolve`], but the handles leave `table` (a reply that moves):
/// all are checked first (a handle named twice is `InvalidArgument`), so
/// on error nothing has moved.
fn take_out(table: &mut CapTable<Cap>, view: IpcView, n: u8, list: &mut CapList) -> Result<(), SysError> {
    list.clear();
    let raw = view.caps_out(n as usize);
    let raw = &raw[..n as usize];
    for (i, h) in raw.iter().enumerate() {
        table.get(Handle::from_raw(*h)).map_err(|e| e.sys_error())?;
        if raw[..i].contains(h) {
            return Err(SysError::InvalidArgument);
        }
    }
    for h in raw {
        if let Ok(cap) = table.remove(Handle::from_raw(*h)) {
            list.push(cap)?;
        }
    }
    Ok(())
}

// ---- Receiving ----

/// Move the call client `c` (pid `client`) is blocked on into server `s`:
/// the message from area to area, the bulk buffer into the server's
/// registered one, the capabilities (with their badges) into the server's
/// table; returns the envelope for the server. On error nothing reached
/// the server's table and the client still waits. The caller has
/// checked that `c` waits on a call to `s`.
fn deliver_call(c: &mut Process, s: &mut Process, ep: &Arc<Endpoint>, client: u32) -> Result<Received, SysError> {
    let cview = c.view().ok_or(SysError::PeerGone)?;
    let sview = s.view().ok_or(SysError::PeerGone)?;
    let pc = c.call();
    let (iface, word, badge, bulk_addr, bulk_len, seq) = (pc.iface, pc.word, pc.badge, pc.bulk_addr, pc.bulk_len, c.seq());
    let bulk_in = if word.bulk & capos_abi::ipc::BULK_READ != 0 && bulk_len > 0 {
        let (raddr, rlen) = s.bulk_recv().ok_or(SysError::BufferTooSmall)?;
        if bulk_len > rlen {
            return Err(SysError::BufferTooSmall);
        }
        let (cs, ss) = (c.space().ok_or(SysError::BadAddress)?, s.space().ok_or(SysError::PeerGone)?);
        // A buffer the server may answer into must be writable as well:
        // checked as it is read (`call_endpoint` skipped its own pass).
        copy_user(cs, bulk_addr, ss, raddr, bulk_len as usize, word.bulk & capos_abi::ipc::BULK_WRITE != 0)?;
        bulk_len
    } else {
        0
    };
    let n = if c.call().caps.is_empty() { 0 } else { install(s.caps_mut(), c.call_caps_mut(), sview, Some(ep))? };
    cview.copy_message(&sview, word.len as usize);
    let dirty = s.recv_dirty_mut();
    *dirty = (*dirty).max(word.len as usize);
    Ok(Received {
        word: CallWord { caps: n, ..word },
        interface_id: iface,
        token: ReplyToken { client, seq }.pack(),
        badge,
        bulk_in,
        bulk_out_capacity: if word.bulk & capos_abi::ipc::BULK_WRITE != 0 { bulk_len } else { 0 },
    })
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
    let cur = t.current_pid();
    match t.current().caps().get(handle) {
        Ok(Cap::EndpointServer(h)) if h.server() == cur => Ok(h.endpoint().clone()),
        Ok(_) => Err(SysError::NotAnEndpoint),
        Err(e) => Err(e.sys_error()),
    }
}

/// How long a receive waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// For ever (`endpoint_receive`).
    Ever,
    /// Until this uptime in ns (`endpoint_receive_timeout`).
    Deadline(u64),
    /// Not at all: `TimedOut` at once when nothing is there.
    Now,
}

/// Take the next notification or call on `ep` for the current process,
/// or block it in receive (`Ok(None)`).
#[inline(always)]
fn try_receive(t: &mut Table, ep: &Arc<Endpoint>, until: Until) -> Result<Option<Received>, SysError> {
    let cur = t.current_pid();
    loop {
        let incoming = ep.core.lock().receive()?;
        match incoming {
            Some(Incoming::NoSenders(badge)) => return Ok(Some(Received::no_senders(badge))),
            Some(Incoming::Call(p)) => match t.current_and(p.client).ok_or(SysError::PeerGone).and_then(|(s, c)| {
                // A queued client waits on this server (a dead one was
                // taken off the queue); checked all the same.
                if !c.waiting().is_some_and(|w| w.server == cur && !w.received) {
                    return Err(SysError::PeerGone);
                }
                let mut r = deliver_call(c, s, ep, p.client)?;
                c.mark_received();
                // Whether others wait behind it (the MORE_WAITING hint);
                // only a queued call can have any.
                if ep.core.lock().queued() > 0 {
                    r.word.bulk |= capos_abi::ipc::MORE_WAITING;
                }
                Ok(r)
            }) {
                Ok(r) => return Ok(Some(r)),
                // This call cannot be delivered (e.g. its bulk buffer is
                // larger than ours): it fails (kcore endpoint rule 3) and
                // the next is taken.
                Err(e) => {
                    if let Some(c) = t.get(p.client) {
                        c.call_caps_mut().clear();
                    }
                    t.wake(p.client, Some(Wait::Reply { server: cur, seq: 0, received: false }), Err(e));
                }
            },
            None => {
                match until {
                    Until::Ever => t.block_receive(),
                    Until::Deadline(d) => t.block_receive_until(d, ep, &super::NEXT_DEADLINE),
                    // `receive` marked us waiting; we are not (under the
                    // table lock, so no call saw the mark).
                    Until::Now => {
                        ep.core.lock().stop_waiting();
                        return Err(SysError::TimedOut);
                    }
                }
                return Ok(None);
            }
        }
    }
}

/// Block until a call or notification is delivered to the current process
/// on `ep` (woken to receive again when a notification arrives); `first`:
/// the switch to make now (back to a client just answered), else the
/// scheduler runs.
#[inline(always)]
fn wait_for_call(f: &mut TrapFrame, ep: &Arc<Endpoint>, first: Option<Switch>, until: Until) -> SysResult {
    run_switch(first);
    loop {
        match with(|t| t.take_delivery()) {
            Some(Ok(Delivery::Call(r))) => return Ok(set_received(f, r)),
            // Woken to look again: the same deadline holds.
            Some(Ok(Delivery::Retry)) => match with(|t| try_receive(t, ep, until)).map_err(err)? {
                Some(r) => return Ok(set_received(f, r)),
                None => schedule(),
            },
            Some(Err(e)) => return Err(err(e)),
            _ => return Err(err(SysError::PeerGone)),
        }
    }
}

/// `endpoint_receive(endpoint handle)`.
pub fn endpoint_receive(f: &mut TrapFrame) -> SysResult {
    receive_until(f, Until::Ever)
}

/// `endpoint_receive_timeout(endpoint handle, ns)`.
pub fn endpoint_receive_timeout(f: &mut TrapFrame) -> SysResult {
    let until = match f.rsi {
        0 => Until::Now,
        // At least 1: 0 means no deadline to the table.
        ns => Until::Deadline(crate::time::uptime_ns().saturating_add(ns).max(1)),
    };
    let r = receive_until(f, until);
    // Whatever ended the wait, the deadline is over (a later plain
    // receive must not inherit it).
    if let Until::Deadline(_) = until {
        with(|t| t.clear_deadline());
    }
    r
}

fn receive_until(f: &mut TrapFrame, until: Until) -> SysResult {
    let handle = Handle::from_raw(f.rdi);
    let (got, ep) = with(|t| {
        let ep = server_endpoint(t, handle)?;
        try_receive(t, &ep, until).map(|r| (r, ep))
    })
    .map_err(err)?;
    match got {
        Some(r) => Ok(set_received(f, r)),
        None => wait_for_call(f, &ep, None, until),
    }
}


// ---- Replying ----

/// Deliver the current process's reply for `token`; returns the client,
/// resumed (ready for a direct switch, not queued), and whether it is
/// pinned to another CPU (then it is queued there instead). Once the token is
/// accepted, a reply that cannot be delivered fails the client too
/// (`kcore::call` rule 4): nobody is left waiting.
fn reply(t: &mut Table, token: u64, word: ReplyWord, bulk_addr: u64, bulk_len: u64) -> Result<(u32, bool), SysError> {
    let cur = t.current_pid();
    let named = ReplyToken::unpack(token).client;
    let (s, c) = t.current_and(named).ok_or(SysError::InvalidReplyToken)?;
    let client = reply_target(token, cur, |pid| if pid == named { c.waiting() } else { None })?;
    match deliver_reply(s, c, word, bulk_addr, bulk_len) {
        Ok(()) => Ok((client, c.pinned_away())),
        Err(e) => {
            c.call_caps_mut().clear();
            c.resume(Some(Wait::Reply { server: cur, seq: 0, received: true }), Err(e));
            t.queue(client);
            Err(e)
        }
    }
}

/// The bytes and capabilities of server `s`'s reply to client `c`, and
/// the client resumed with it.
fn deliver_reply(s: &mut Process, c: &mut Process, word: ReplyWord, bulk_addr: u64, bulk_len: u64) -> Result<(), SysError> {
    let sview = s.view().ok_or(SysError::InvalidArgument)?;
    let cview = c.view().ok_or(SysError::InvalidReplyToken)?;
    if bulk_len > 0 {
        let pc = c.call();
        let capacity = if pc.word.bulk & capos_abi::ipc::BULK_WRITE != 0 { pc.bulk_len } else { 0 };
        if bulk_len > capacity {
            return Err(SysError::BufferTooSmall);
        }
        let (ss, cs) = (s.space().ok_or(SysError::BadAddress)?, c.space().ok_or(SysError::BadAddress)?);
        // The client's buffer was checked writable at call time; the
        // server's is checked as it copies.
        copy_user(ss, bulk_addr, cs, pc.bulk_addr, bulk_len as usize, false)?;
    }
    // The server's handles go through its own scratch list (it is not
    // blocked in a call while it serves).
    let n = if word.caps > 0 {
        let sp = s.parts();
        if word.moves {
            take_out(sp.caps, sview, word.caps, sp.scratch)?;
        } else {
            resolve(sp.caps, sview, word.caps, sp.scratch)?;
        }
        install(c.caps_mut(), s.call_caps_mut(), cview, None)?
    } else {
        0
    };
    sview.copy_message(&cview, word.len as usize);
    let dirty = c.recv_dirty_mut();
    *dirty = (*dirty).max(word.len as usize);
    c.hand_reply(ReplyWord::new(word.len, n), bulk_len);
    Ok(())
}

/// `endpoint_reply(token, ReplyWord, bulk ptr, bulk len)`.
pub fn endpoint_reply(f: &mut TrapFrame) -> SysResult {
    let word = ReplyWord::unpack(f.rdx).map_err(err)?;
    with(|t| {
        let (client, _) = reply(t, f.rdi, word, f.r10, f.r8)?;
        t.queue(client);
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
    let (got, ep) = with(|t| {
        let ep = server_endpoint(t, handle)?;
        let (client, away) = reply(t, f.rdi, word, f.r10, f.r8)?;
        match try_receive(t, &ep, Until::Ever) {
            Ok(Some(r)) => {
                t.queue(client);
                Ok((Ok(r), ep))
            }
            // Nothing queued: straight back to the client (on its own
            // CPU if it is pinned to another).
            Ok(None) if away => {
                t.queue(client);
                Ok((Err(None), ep))
            }
            Ok(None) => Ok((Err(t.prepare_switch(client)), ep)),
            Err(e) => {
                t.queue(client);
                Err(e)
            }
        }
    })
    .map_err(err)?;
    match got {
        Ok(r) => Ok(set_received(f, r)),
        Err(switch) => wait_for_call(f, &ep, switch, Until::Ever),
    }
}

/// `bulk_register(ptr, len)`: the buffer calls' bulk data lands in when
/// this process serves an endpoint (len 0 unregisters).
pub fn bulk_register(f: &mut TrapFrame) -> SysResult {
    let (addr, len) = (f.rdi, f.rsi);
    with(|t| {
        if len == 0 {
            t.current().set_bulk_recv(None);
            return Ok(0);
        }
        // The rules of a call's bulk buffer (kcore::call rule 2): at most
        // MAX_BULK_BYTES, in the user half, off the IPC area (calls'
        // bytes landing in this process's own messages).
        bulk_arg(capos_abi::ipc::BULK_WRITE, addr, len)?;
        let slice = UserSlice::new(addr, len)?;
        let p = t.current();
        slice.check(p.space().ok_or(SysError::BadAddress)?, true)?;
        p.set_bulk_recv(Some((addr, len)));
        Ok(0)
    })
    .map_err(err)
}
