//! The read-only wrapper: attenuation as an object, not a rights bit.
//!
//! `ReadOnly(obj)` forwards reads to `obj` and wraps every kernel
//! capability a read returns (a File opened from a read-only Directory is
//! read-only too); mutations never reach `obj`: the wrapper answers them
//! with a `readOnly` error in the method's result shape. Which method is
//! which is `capos_serve::read_only`, host-tested. Interfaces the table
//! does not know are refused with `UnknownInterface` (fail closed).

use super::{CallMessage, Cap, Caller, KernelObject, KernelResponder, Reply};
use alloc::sync::Arc;
use capos_abi::SysError;
use capos_serve::read_only::{read_only, refusal, refuse, Access};

pub struct ReadOnly(pub Arc<dyn KernelObject>);

impl KernelObject for ReadOnly {
    fn interface_id(&self) -> u64 {
        self.0.interface_id()
    }

    fn kind(&self) -> &'static str {
        "read-only wrapper"
    }

    fn runs_unlocked(&self) -> bool {
        self.0.runs_unlocked()
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        match read_only(call.interface_id(), call.method_id()) {
            Access::Unknown => Err(SysError::UnknownInterface),
            Access::Mutation(kind) => {
                let e = refusal(call.interface_id(), call.method_id());
                refuse(&mut KernelResponder::new(caller, reply), kind, e)
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
