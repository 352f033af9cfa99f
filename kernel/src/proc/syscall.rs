//! The syscall dispatcher: decode `rax`, validate every argument, do the
//! call, and put the status in `rax` and the value in `rdx` (the ABI is
//! documented in `capos_abi::syscall`).

use super::usermem::UserSlice;
use super::{schedule, terminate, with, Exit, State};
use crate::arch::x86_64::trap::TrapFrame;
use crate::cap::endpoint::{next_token, Endpoint, PendingCall, MAX_QUEUED};
use crate::cap::{Cap, Caller};
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::capos_capnp::{cap_result, endpoint};
use capos_abi::limits::MAX_MESSAGE_BYTES;
use capos_abi::message::{encode_incoming_call, encode_return, reencode_return, CallMessage, ReturnMessage};
use capos_abi::syscall::Syscall;
use capos_abi::{interfaces, Handle, SysError};
use capos_kcore::cap_table::CapTableError;

type SysResult = Result<u64, (SysError, u64)>;

fn err(e: SysError) -> (SysError, u64) {
    (e, 0)
}

fn table_err(e: CapTableError) -> (SysError, u64) {
    (e.sys_error(), 0)
}

pub fn dispatch(frame: &mut TrapFrame) {
    let args = [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9];
    let result = match Syscall::try_from(frame.rax) {
        Err(e) => Err(err(e)),
        Ok(Syscall::CapCall) => cap_call(args[0], args[1], args[2], args[3], args[4]),
        Ok(Syscall::CapDrop) => cap_drop(args[0]),
        Ok(Syscall::EndpointCreate) => endpoint_create(),
        Ok(Syscall::EndpointReceive) => endpoint_receive(args[0], args[1], args[2]),
        Ok(Syscall::EndpointReply) => endpoint_reply(args[0], args[1], args[2]),
        Ok(Syscall::Exit) => exit(args[0]),
        Ok(Syscall::Yield) => {
            schedule();
            Ok(0)
        }
    };
    let (rax, rdx) = capos_abi::error::encode_status(result);
    frame.rax = rax;
    frame.rdx = rdx;
}

fn read_user(ptr: u64, len: u64) -> Result<Vec<u8>, (SysError, u64)> {
    if len > MAX_MESSAGE_BYTES as u64 {
        return Err(err(SysError::MessageTooLarge));
    }
    let slice = UserSlice::new(ptr, len).map_err(err)?;
    with(|t| slice.read(t.current().space.as_ref().expect("a process has an address space"))).map_err(err)
}

fn check_output(ptr: u64, cap: u64) -> Result<UserSlice, (SysError, u64)> {
    let slice = UserSlice::new(ptr, cap.min(MAX_MESSAGE_BYTES as u64 * 2)).map_err(err)?;
    with(|t| slice.check(t.current().space.as_ref().expect("a process has an address space"), true)).map_err(err)?;
    Ok(slice)
}

/// Install `caps` in the current process; on failure remove what was added.
fn install(caps: Vec<Cap>) -> Result<Vec<Handle>, (SysError, u64)> {
    with(|t| {
        let p = t.current();
        let mut handles = Vec::new();
        for c in caps {
            match p.caps.insert(c) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    for h in &handles {
                        let _ = p.caps.remove(*h);
                    }
                    return Err(table_err(e));
                }
            }
        }
        Ok(handles)
    })
}

fn uninstall(handles: &[Handle]) {
    with(|t| {
        let p = t.current();
        for h in handles {
            let _ = p.caps.remove(*h);
        }
    });
}

/// Deliver `bytes` to `out`, or report the length needed and undo the caps.
fn deliver(out: &UserSlice, bytes: &[u8], installed: &[Handle]) -> SysResult {
    if bytes.len() > out.len() {
        uninstall(installed);
        return Err((SysError::BufferTooSmall, bytes.len() as u64));
    }
    let r = with(|t| out.write(t.current().space.as_ref().expect("a process has an address space"), bytes));
    if let Err(e) = r {
        uninstall(installed);
        return Err(err(e));
    }
    Ok(bytes.len() as u64)
}

fn cap_call(handle: u64, req_ptr: u64, req_len: u64, reply_ptr: u64, reply_cap: u64) -> SysResult {
    let request = read_user(req_ptr, req_len)?;
    let out = check_output(reply_ptr, reply_cap)?;
    let call = CallMessage::read(&request).map_err(|e| err(e.sys_error()))?;
    let (target, transferred, pid, name) = with(|t| {
        let p = t.current();
        let target = p.caps.get(Handle::from_raw(handle)).map_err(table_err)?.clone();
        let mut transferred = Vec::new();
        for h in call.caps() {
            transferred.push(p.caps.get(*h).map_err(table_err)?.clone());
        }
        Ok::<_, (SysError, u64)>((target, transferred, p.pid, p.name.clone()))
    })?;
    match target {
        Cap::Kernel(obj) => {
            if call.interface_id() != obj.interface_id() {
                return Err(err(SysError::UnknownInterface));
            }
            let reply = obj.call(&Caller { pid, name: &name }, &call).map_err(err)?;
            let handles = install(reply.caps)?;
            let bytes = (reply.encode)(&handles).map_err(|e| {
                uninstall(&handles);
                err(e.sys_error())
            })?;
            deliver(&out, &bytes, &handles)
        }
        Cap::EndpointServer(ep) => {
            if call.interface_id() != interfaces::ENDPOINT {
                return Err(err(SysError::UnknownInterface));
            }
            if call.method_id() != crate::cap::endpoint::METHOD_MINT {
                return Err(err(SysError::UnknownMethod));
            }
            let badge = call.params::<endpoint::mint_params::Owned>().map_err(|e| err(e.sys_error()))?.get_badge();
            let handles = install(alloc::vec![Cap::EndpointClient { endpoint: ep, badge }])?;
            let bytes = encode_return::<cap_result::Owned>(&handles, |mut r| {
                r.set_ok(0);
                Ok(())
            })
            .map_err(|e| err(e.sys_error()))?;
            deliver(&out, &bytes, &handles)
        }
        Cap::EndpointClient { endpoint: ep, badge } => call_endpoint(ep, badge, pid, request, transferred, &out),
    }
}

/// Queue the call on the endpoint, block until the server replies (or dies).
fn call_endpoint(ep: Arc<Endpoint>, badge: u64, pid: u32, request: Vec<u8>, caps: Vec<Cap>, out: &UserSlice) -> SysResult {
    let waiting_server = {
        let mut st = ep.state.lock();
        if st.dead {
            return Err(err(SysError::PeerGone));
        }
        if st.queue.len() >= MAX_QUEUED {
            return Err(err(SysError::OutOfMemory));
        }
        st.queue.push_back(PendingCall { token: next_token(), client: pid, badge, call_bytes: request, caps });
        st.waiting.take()
    };
    with(|t| {
        if let Some(server) = waiting_server {
            t.wake(server);
        }
        let p = t.current();
        p.reply = None;
        p.state = State::AwaitingReply;
    });
    schedule();
    let reply = with(|t| t.current().reply.take());
    let (bytes, caps) = match reply {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(err(e)),
        None => return Err(err(SysError::PeerGone)),
    };
    let ret = ReturnMessage::read(&bytes).map_err(|e| err(e.sys_error()))?;
    let handles = install(caps)?;
    let bytes = reencode_return(&ret, &handles).map_err(|e| {
        uninstall(&handles);
        err(e.sys_error())
    })?;
    deliver(out, &bytes, &handles)
}

fn cap_drop(handle: u64) -> SysResult {
    let dropped = with(|t| t.current().caps.remove(Handle::from_raw(handle))).map_err(table_err)?;
    drop(dropped);
    Ok(0)
}

fn endpoint_create() -> SysResult {
    let ep = with(|t| {
        let p = t.current();
        let ep = Arc::new(Endpoint::new(p.pid));
        p.serves.push(ep.clone());
        ep
    });
    let handles = install(alloc::vec![Cap::EndpointServer(ep)])?;
    Ok(handles[0].raw())
}

fn endpoint_receive(handle: u64, buf_ptr: u64, buf_cap: u64) -> SysResult {
    let out = check_output(buf_ptr, buf_cap)?;
    let ep = with(|t| match t.current().caps.get(Handle::from_raw(handle)) {
        Ok(Cap::EndpointServer(ep)) => Ok(ep.clone()),
        Ok(_) => Err(err(SysError::NotAnEndpoint)),
        Err(e) => Err(table_err(e)),
    })?;
    loop {
        let pid = with(|t| t.current);
        let next = {
            let mut st = ep.state.lock();
            match st.queue.front() {
                Some(c) => Some((c.token, c.client, c.badge, c.call_bytes.clone(), c.caps.clone())),
                None => {
                    st.waiting = Some(pid);
                    None
                }
            }
        };
        let Some((token, client, badge, call_bytes, caps)) = next else {
            with(|t| t.current().state = State::AwaitingCall);
            schedule();
            continue;
        };
        let call = CallMessage::read(&call_bytes).map_err(|e| err(e.sys_error()))?;
        let handles = install(caps)?;
        let bytes = encode_incoming_call(token, badge, &call, &handles).map_err(|e| {
            uninstall(&handles);
            err(e.sys_error())
        })?;
        let n = deliver(&out, &bytes, &handles)?;
        ep.state.lock().queue.pop_front();
        with(|t| {
            t.current().outstanding.insert(token, client);
        });
        return Ok(n);
    }
}

fn endpoint_reply(token: u64, ptr: u64, len: u64) -> SysResult {
    let client = with(|t| t.current().outstanding.get(&token).copied()).ok_or(err(SysError::InvalidReplyToken))?;
    let bytes = read_user(ptr, len)?;
    let ret = ReturnMessage::read(&bytes).map_err(|e| err(e.sys_error()))?;
    let caps = with(|t| {
        let p = t.current();
        let mut caps = Vec::new();
        for h in ret.caps() {
            caps.push(p.caps.get(*h).map_err(table_err)?.clone());
        }
        p.outstanding.remove(&token);
        Ok::<_, (SysError, u64)>(caps)
    })?;
    with(|t| {
        if let Some(c) = t.get(client) {
            if c.state == State::AwaitingReply {
                c.reply = Some(Ok((bytes, caps)));
                t.wake(client);
            }
        }
    });
    Ok(0)
}

fn exit(status: u64) -> SysResult {
    let pid = with(|t| t.current);
    terminate(pid, Exit::Status(status));
    schedule();
    unreachable!("a dead process was scheduled again")
}
