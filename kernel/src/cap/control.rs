//! `ProcessControl` (kernel source `control:NAME`): kill the manifest
//! process NAME, or read its status. The process is named, not a pid, so
//! the capability keeps working across restarts; what NAME currently is
//! lives in the process layer's supervisor, asked through [`super::waiters`].
//!
//! `kill` runs inside the caller's `cap_call`, where the process table is
//! locked, so it only asks (`Waiters::kill`); the kernel carries the
//! kill out before the caller returns to user mode, so when `kill` returns
//! the process is dead (and, under `restart: on-failure`, running again).

use super::waiters::waiters;
use super::{CallMessage, Caller, KernelObject, Reply};
use alloc::string::String;
use capos_abi::capos_capnp::{process_status_result, void_result, ErrorCode};
use capos_abi::helpers::{fill_void, CapError};
use capos_abi::interfaces::{self, process_control_method};
use capos_abi::SysError;

pub struct ProcessControl {
    pub name: String,
}

impl KernelObject for ProcessControl {
    fn interface_id(&self) -> u64 {
        interfaces::PROCESS_CONTROL
    }

    fn kind(&self) -> &'static str {
        "control"
    }

    /// A kill waits until its process has ended, which on another CPU
    /// takes that CPU's time: never with the process table held.
    fn runs_unlocked(&self) -> bool {
        true
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        let status = waiters().status(&self.name).ok_or(SysError::PeerGone)?;
        match call.method_id() {
            process_control_method::KILL => {
                let result = if !status.running {
                    Err(CapError::new(ErrorCode::NotFound, "the process is not running"))
                } else if status.pid == caller.pid {
                    Err(CapError::new(ErrorCode::InvalidArgument, "a process cannot kill itself through control (exit instead)"))
                } else {
                    waiters().kill(status.pid, alloc::format!("by ProcessControl from {} (pid {})", caller.name, caller.pid));
                    Ok(())
                };
                reply.results::<void_result::Owned, _>(|r| {
                    fill_void(r, &result);
                    Ok(())
                })
            }
            process_control_method::STATUS => {
                // What processes come and go with: free frames, counting
                // as free those of transfers in flight (on other CPUs; back
                // when the transfer ends) and those the kernel heap holds
                // (it grows on demand, by doubling, and keeps what it grew:
                // when it grows depends on what the CPUs allocate at once,
                // not on what a process left behind).
                let heap_pages = crate::mm::heap::size() / crate::mm::PAGE_SIZE;
                let free = crate::mm::frames::stats().free + crate::drivers::dma::bounce_pages() + heap_pages;
                reply.results::<process_status_result::Owned, _>(|r| {
                    let mut ok = r.init_ok();
                    ok.set_pid(status.pid);
                    ok.set_running(status.running);
                    ok.set_restarts(status.restarts);
                    ok.set_free_frames(free);
                    ok.set_heap_frames(heap_pages);
                    Ok(())
                })
            }
            _ => Err(SysError::UnknownMethod),
        }
    }
}
