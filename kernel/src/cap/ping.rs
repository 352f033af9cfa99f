//! The kernel's `Ping`: the same interface a userspace server can serve, so
//! a client (and the IPC benchmark) can compare a kernel capability with an
//! endpoint one.

use super::{Caller, KernelObject, KernelReply};
use alloc::sync::Arc;
use capos_abi::capos_capnp::{cap_result, data_result, ping};
use capos_abi::helpers::{encode_u64_return, ping_param};
use capos_abi::message::{encode_return, CallMessage};
use capos_abi::{interfaces, SysError};

pub struct KernelPing;

impl KernelObject for KernelPing {
    fn interface_id(&self) -> u64 {
        interfaces::PING
    }

    fn kind(&self) -> &'static str {
        "ping"
    }

    fn call(&self, _caller: &Caller, call: &CallMessage) -> Result<KernelReply, SysError> {
        match call.method_id() {
            0 => {
                let v = ping_param(call).map_err(|e| e.sys_error())?;
                KernelReply::plain(encode_u64_return(&Ok(v)))
            }
            1 => {
                let data = call
                    .params::<ping::echo_params::Owned>()
                    .and_then(|p| Ok(p.get_data()?.to_vec()))
                    .map_err(|e| e.sys_error())?;
                KernelReply::plain(encode_return::<data_result::Owned>(&[], |mut r| {
                    r.set_ok(&data);
                    Ok(())
                }))
            }
            2 => Ok(KernelReply {
                caps: alloc::vec![super::Cap::Kernel(Arc::new(KernelPing))],
                encode: alloc::boxed::Box::new(|handles| {
                    encode_return::<cap_result::Owned>(handles, |mut r| {
                        r.set_ok(0);
                        Ok(())
                    })
                }),
            }),
            _ => Err(SysError::UnknownMethod),
        }
    }
}
