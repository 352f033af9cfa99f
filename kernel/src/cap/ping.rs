//! The kernel's `Ping`: the same interface a userspace server can serve, so
//! a client (and the IPC benchmark) can compare a kernel capability with an
//! endpoint one.

use super::{CallMessage, Caller, KernelObject, Reply};
use alloc::sync::Arc;
use capos_abi::capos_capnp::{cap_result, data_result, ping};
use capos_abi::helpers::fill_cap;
use capos_abi::interfaces::ping_method;
use capos_abi::small_struct::{self, u64_result};
use capos_abi::{interfaces, SysError};

pub struct KernelPing;

impl KernelObject for KernelPing {
    fn interface_id(&self) -> u64 {
        interfaces::PING
    }

    fn kind(&self) -> &'static str {
        "ping"
    }

    /// The null call: tiny messages both ways.
    fn call_tiny(&self, method: u16, params: &[u8], results: &mut [u8]) -> Option<usize> {
        if method != ping_method::PING {
            return None;
        }
        let value = small_struct::read_as::<1, 0>(params)?.word(0);
        small_struct::write(results, &u64_result::ok(value), u64_result::PTRS)
    }

    fn call(&self, _caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        match call.method_id() {
            ping_method::PING => {
                let v = call.params::<ping::ping_params::Owned>().map_err(|e| e.sys_error())?.get_value();
                reply.small_results(&u64_result::ok(v), u64_result::PTRS)
            }
            ping_method::ECHO => {
                // Params are read in the caller's send buffer and the
                // results written in its receive buffer: one copy.
                let params = call.params::<ping::echo_params::Owned>().map_err(|e| e.sys_error())?;
                let data = params.get_data().map_err(|e| capos_abi::message::MessageError::from(e).sys_error())?;
                reply.results::<data_result::Owned, _>(|mut r| {
                    r.set_ok(data);
                    Ok(())
                })
            }
            ping_method::SESSION => {
                let slot = reply.add_cap(super::Cap::kernel(Arc::new(KernelPing)))?;
                reply.results::<cap_result::Owned, _>(|r| {
                    fill_cap(r, &Ok(slot));
                    Ok(())
                })
            }
            ping_method::ECHO_BULK => {
                // The bytes are already where the answer goes: the caller's
                // own buffer, which it let us read and write.
                let n = match reply.bulk() {
                    Some(b) if b.readable() && b.writable() => b.len() as u64,
                    _ => return Err(SysError::InvalidArgument),
                };
                reply.set_bulk_out(n);
                reply.small_results(&u64_result::ok(n), u64_result::PTRS)
            }
            _ => Err(SysError::UnknownMethod),
        }
    }
}
