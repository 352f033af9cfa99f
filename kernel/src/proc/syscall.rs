//! The syscall dispatcher: decode `rax`, validate every argument, do the
//! call, and put the status in `rax` and the value in `rdx` (the ABI is
//! documented in `capos_abi::syscall`; the call path is `proc::ipc`).

use super::{schedule, terminate, with, Exit};
use crate::arch::x86_64::trap::TrapFrame;
use crate::cap::endpoint::{Endpoint, ServerHandle};
use crate::cap::Cap;
use alloc::sync::Arc;
use capos_abi::syscall::Syscall;
use capos_abi::{Handle, SysError};

type SysResult = Result<u64, (SysError, u64)>;

fn err(e: SysError) -> (SysError, u64) {
    (e, 0)
}

pub fn dispatch(frame: &mut TrapFrame) {
    let result = if frame.rax == capos_abi::syscall::CAP_CALL {
        // The call path first: nearly every syscall is one.
        super::ipc::cap_call(frame)
    } else {
        match Syscall::try_from(frame.rax) {
            Err(e) => Err(err(e)),
            Ok(Syscall::CapCall) => super::ipc::cap_call(frame),
            Ok(Syscall::CapDrop) => cap_drop(frame.rdi),
            Ok(Syscall::EndpointCreate) => endpoint_create(),
            Ok(Syscall::EndpointReceive) => super::ipc::endpoint_receive(frame),
            Ok(Syscall::EndpointReply) => super::ipc::endpoint_reply(frame),
            Ok(Syscall::EndpointReplyReceive) => super::ipc::endpoint_reply_receive(frame),
            Ok(Syscall::BulkRegister) => super::ipc::bulk_register(frame),
            Ok(Syscall::EndpointReceiveTimeout) => super::ipc::endpoint_receive_timeout(frame),
            Ok(Syscall::Exit) => exit(frame.rdi),
            Ok(Syscall::Yield) => {
                schedule();
                Ok(0)
            }
        }
    };
    // Callers of endpoints closed during this call, and processes killed
    // through ProcessControl, are dealt with before user mode resumes.
    super::settle_before_user();
    let (rax, rdx) = capos_abi::error::encode_status(result);
    frame.rax = rax;
    frame.rdx = rdx;
}

fn cap_drop(handle: u64) -> SysResult {
    let dropped = with(|t| t.current().caps_mut().remove(Handle::from_raw(handle))).map_err(|e| err(e.sys_error()))?;
    drop(dropped);
    Ok(0)
}

fn endpoint_create() -> SysResult {
    with(|t| {
        let p = t.current();
        let pid = p.pid();
        let ep = Arc::new(Endpoint::new(pid));
        let h = p.caps_mut().insert(Cap::EndpointServer(ServerHandle::new(ep.clone(), pid))).map_err(|e| err(e.sys_error()))?;
        p.serve(ep);
        Ok(h.raw())
    })
}

fn exit(status: u64) -> SysResult {
    let pid = with(|t| t.current_pid());
    let _ = terminate(pid, Exit::Status(status));
    schedule();
    unreachable!("a dead process was scheduled again")
}
