//! The kernel's `Clock`: the wall clock `time` keeps (RTC at boot plus
//! the monotonic clock since), so a userspace storage service stamps
//! files with the same times the kernel's own backers do.

use super::{CallMessage, Caller, KernelObject, Reply};
use capos_abi::capos_capnp::{u_int64_result, ErrorCode};
use capos_abi::helpers::{fill_u64, CapError};
use capos_abi::interfaces::clock_method;
use capos_abi::{interfaces, SysError};

pub struct Clock;

impl KernelObject for Clock {
    fn interface_id(&self) -> u64 {
        interfaces::CLOCK
    }

    fn kind(&self) -> &'static str {
        "clock"
    }

    fn call(&self, _caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        if call.method_id() != clock_method::NOW {
            return Err(SysError::UnknownMethod);
        }
        let now = match crate::time::wall_now_ns() {
            Some(ns) if ns >= 0 => Ok(ns as u64),
            _ => Err(CapError::new(ErrorCode::Unsupported, "the kernel found no wall clock")),
        };
        reply.results::<u_int64_result::Owned, _>(|r| {
            fill_u64(r, &now);
            Ok(())
        })
    }
}
