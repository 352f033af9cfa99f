//! `ProcessControl` (kernel source `control:NAME`): kill a manifest
//! process (its `restart:` policy applies) and read its status.

use crate::client::{call_no_params, object, BulkArg, CallError};
use capos_abi::capos_capnp::{process_status_result, void_result};
use capos_abi::helpers::{self, read_error, which_err};
use capos_abi::interfaces::{self, process_control_method};
use capos_abi::Handle;

/// What `status` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessStatus {
    /// The current (or last) instance's pid.
    pub pid: u32,
    pub running: bool,
    /// Restarts in this boot.
    pub restarts: u32,
    /// Frames free at the time of the call, counting those the kernel heap
    /// and in-flight transfers hold (they do not come and go with processes).
    pub free_frames: u64,
    /// Of `free_frames`, those the kernel heap holds: its growth, apart.
    pub heap_frames: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct ProcessControl(pub Handle);

impl ProcessControl {
    /// Kill the process now, as if it faulted. When this returns it is
    /// dead, and running again if its policy restarts it.
    pub fn kill(&self) -> Result<(), CallError> {
        call_no_params(self.0, interfaces::PROCESS_CONTROL, process_control_method::KILL, &[], BulkArg::NONE, |r| {
            object(helpers::read_void(r.get::<void_result::Owned>()?))
        })
    }

    pub fn status(&self) -> Result<ProcessStatus, CallError> {
        call_no_params(self.0, interfaces::PROCESS_CONTROL, process_control_method::STATUS, &[], BulkArg::NONE, |r| {
            let result = r.get::<process_status_result::Owned>()?;
            match result.which().map_err(which_err("ProcessStatusResult"))? {
                process_status_result::Ok(s) => {
                    let s = s?;
                    Ok(ProcessStatus { pid: s.get_pid(), running: s.get_running(), restarts: s.get_restarts(), free_frames: s.get_free_frames(), heap_frames: s.get_heap_frames() })
                }
                process_status_result::Err(e) => Err(CallError::Object(read_error(e?)?)),
            }
        })
    }
}
