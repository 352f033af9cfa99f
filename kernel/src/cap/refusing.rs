//! The refusing object: a capability that answers every call with one
//! error code and reason, in each method's own result shape.
//!
//! It stands in for an object that cannot serve, so a process holding the
//! capability learns why on its first call and a process that never calls
//! it never notices: today the grant of a manifest mount that failed at
//! boot, or of a network card that is not there (`unavailable`,
//! `cap/sources.rs`). It implements whichever interface it stands in for;
//! what it answers is `capos_serve::refuse::Refusal`, the one refusing
//! object, which storage-fs-service and a closed File (`cap/fs.rs`) use
//! too. A method the interface does not have is `UnknownMethod`, as from
//! the real object.

use super::{CallMessage, Caller, KernelObject, KernelResponder, Reply};
use alloc::string::String;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::SysError;
use capos_serve::refuse::Refusal;

pub struct Refusing {
    interface_id: u64,
    refusal: Refusal,
}

impl Refusing {
    /// An object of interface `interface_id` refusing every call with
    /// `code` and `reason`.
    pub fn new(interface_id: u64, code: ErrorCode, reason: String) -> Refusing {
        Refusing { interface_id, refusal: Refusal(CapError { code, message: reason }) }
    }
}

impl KernelObject for Refusing {
    fn interface_id(&self) -> u64 {
        self.interface_id
    }

    fn kind(&self) -> &'static str {
        "refusing"
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        self.refusal.answer(&[self.interface_id], call, &mut KernelResponder::new(caller, reply))
    }
}
