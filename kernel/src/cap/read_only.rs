//! The read-only wrapper: attenuation as an object, not a rights bit.
//!
//! `ReadOnly(obj)` forwards reads to `obj` and wraps every kernel
//! capability a read returns (a File opened from a read-only Directory is
//! read-only too); mutations never reach `obj`: the wrapper answers them
//! with a `readOnly` error in the method's result shape. Which method is
//! which is `capos_kcore::attenuation`, host-tested. Interfaces the table
//! does not know are refused with `UnknownInterface` (fail closed).

use super::{Cap, Caller, KernelObject, KernelReply};
use alloc::format;
use alloc::sync::Arc;
use capos_abi::capos_capnp::{bool_result, ErrorCode};
use capos_abi::helpers::{encode_cap_return, encode_u64_return, encode_void_return, CapError};
use capos_abi::message::{encode_return, CallMessage};
use capos_abi::{interfaces, SysError};
use capos_kcore::attenuation::{read_only, Access, ResultKind};

pub struct ReadOnly(pub Arc<dyn KernelObject>);

impl KernelObject for ReadOnly {
    fn interface_id(&self) -> u64 {
        self.0.interface_id()
    }

    fn kind(&self) -> &'static str {
        "read-only wrapper"
    }

    fn call(&self, caller: &Caller, call: &CallMessage) -> Result<KernelReply, SysError> {
        match read_only(call.interface_id(), call.method_id()) {
            Access::Unknown => Err(SysError::UnknownInterface),
            Access::Mutation(kind) => {
                let what = format!(
                    "read-only capability: {}.{} refused",
                    interfaces::name_of(call.interface_id()).unwrap_or("?"),
                    interfaces::method_name(call.interface_id(), call.method_id()).unwrap_or("?")
                );
                let e = CapError::new(ErrorCode::ReadOnly, &what);
                KernelReply::plain(match kind {
                    ResultKind::Void => encode_void_return(&Err(e)),
                    ResultKind::UInt64 => encode_u64_return(&Err(e)),
                    ResultKind::Cap => encode_cap_return(&Err(e)),
                    ResultKind::Bool => encode_return::<bool_result::Owned>(&[], |r| {
                        let mut err = r.init_err();
                        err.set_code(ErrorCode::ReadOnly);
                        err.set_message(what.as_str());
                        Ok(())
                    }),
                })
            }
            Access::Read => {
                let mut reply = self.0.call(caller, call)?;
                for cap in reply.caps.iter_mut() {
                    if let Cap::Kernel(obj) = cap {
                        *cap = Cap::Kernel(Arc::new(ReadOnly(obj.clone())));
                    }
                }
                Ok(reply)
            }
        }
    }
}
