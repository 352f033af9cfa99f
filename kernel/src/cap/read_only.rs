//! The read-only wrapper: attenuation as an object, not a rights bit.
//!
//! `ReadOnly(obj)` forwards reads to `obj` and wraps every kernel
//! capability a read returns (a File opened from a read-only Directory is
//! read-only too); mutations never reach `obj`: the wrapper answers them
//! with a `readOnly` error in the method's result shape. Which method is
//! which is `capos_kcore::attenuation`, host-tested. Interfaces the table
//! does not know are refused with `UnknownInterface` (fail closed).

use super::{CallMessage, Cap, Caller, KernelObject, Reply};
use alloc::format;
use alloc::sync::Arc;
use capos_abi::capos_capnp::{bool_result, cap_result, u_int64_result, void_result, ErrorCode};
use capos_abi::helpers::{fill_bool, fill_cap, fill_u64, fill_void, CapError};
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

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        match read_only(call.interface_id(), call.method_id()) {
            Access::Unknown => Err(SysError::UnknownInterface),
            Access::Mutation(kind) => {
                let what = format!(
                    "read-only capability: {}.{} refused",
                    interfaces::name_of(call.interface_id()).unwrap_or("?"),
                    interfaces::method_name(call.interface_id(), call.method_id()).unwrap_or("?")
                );
                let e = CapError::new(ErrorCode::ReadOnly, &what);
                match kind {
                    ResultKind::Void => reply.results::<void_result::Owned, _>(|r| Ok(fill_void(r, &Err(e)))),
                    ResultKind::UInt64 => reply.results::<u_int64_result::Owned, _>(|r| Ok(fill_u64(r, &Err(e)))),
                    ResultKind::Cap => reply.results::<cap_result::Owned, _>(|r| Ok(fill_cap(r, &Err(e)))),
                    ResultKind::Bool => reply.results::<bool_result::Owned, _>(|r| Ok(fill_bool(r, &Err(e)))),
                }
            }
            Access::Read => {
                // A transferred capability reaches the wrapped object only
                // for reads; the wrapper itself is what the caller holds.
                self.0.call(caller, call, reply)?;
                for cap in reply.caps_mut().iter_mut() {
                    if let Cap::Kernel(obj) = cap {
                        *cap = Cap::kernel(Arc::new(ReadOnly(obj.object().clone())));
                    }
                }
                Ok(())
            }
        }
    }
}
