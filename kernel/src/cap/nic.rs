//! `Nic` over a network device from `drivers::net`. Thin, like `block.rs`:
//! the dispatcher (`capos_serve::nic`) checks the bulk buffers, the
//! driver judges frames (`capos_kcore::net`) and never waits, so the call
//! runs without the process table and holds only the device's lock.
//!
//! One holder per device is the manifest's rule (`Manifest::validate`,
//! run by mkmanifest and by the kernel at boot): the kernel grants
//! `nic:NAME` to one process.

use super::{CallMessage, Caller, KernelObject, KernelResponder, Reply};
use crate::drivers::virtio_net::VirtioNic;
use alloc::sync::Arc;
use capos_serve::nic;
use capos_abi::{interfaces, SysError};

pub struct Nic(pub Arc<VirtioNic>);

impl KernelObject for Nic {
    fn runs_unlocked(&self) -> bool {
        true
    }

    fn interface_id(&self) -> u64 {
        interfaces::NIC
    }

    fn kind(&self) -> &'static str {
        "network device"
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        nic::dispatch(&*self.0, call, &mut KernelResponder::new(caller, reply))
    }
}
