//! The `Nic` client (`kernel:nic:NAME`): whole Ethernet frames in and out
//! through the bulk buffer, one method per schema method.

use crate::client::{call_no_params, object, BulkArg, CallError};
use capos_abi::capos_capnp::{nic_counters_result, nic_info_result, nic_receive_result, void_result};
use capos_abi::helpers;
use capos_abi::interfaces::{self, nic_method as nm};
use capos_abi::serve::nic::{read_counters, read_info, read_received};
use capos_abi::Handle;

pub use capos_abi::serve::nic::{NicCounters, NicInfo, Received};

/// A `Nic` capability.
#[derive(Debug)]
pub struct Nic(Handle);
owned_handle!(Nic);

impl Nic {
    /// MAC, MTU, link state, largest frame.
    pub fn info(&self) -> Result<NicInfo, CallError> {
        call_no_params(self.0, interfaces::NIC, nm::INFO, &[], BulkArg::NONE, |r| object(read_info(r.get::<nic_info_result::Owned>()?)))
    }

    /// Send `frame` (14 to `max_frame` bytes; other lengths are sent as
    /// given, so tests can probe the refusal).
    pub fn transmit(&self, frame: &[u8]) -> Result<(), CallError> {
        self.transmit_with(BulkArg::out(frame))
    }

    /// A transmit with any bulk argument (for tests: none, the wrong
    /// direction, a bad address).
    pub fn transmit_with(&self, bulk: BulkArg) -> Result<(), CallError> {
        call_no_params(self.0, interfaces::NIC, nm::TRANSMIT, &[], bulk, |r| object(helpers::read_void(r.get::<void_result::Owned>()?)))
    }

    /// The oldest pending frame into `buf` (at least `max_frame` bytes),
    /// or `Empty` at once.
    pub fn receive(&self, buf: &mut [u8]) -> Result<Received, CallError> {
        let capacity = buf.len();
        let got = self.receive_with(BulkArg::into(buf))?;
        match got {
            Received::Frame(n) if n > capacity => Err(CallError::Message(capos_abi::message::MessageError::FieldTooLarge { field: "frame length", len: n, max: capacity })),
            other => Ok(other),
        }
    }

    /// A receive with any bulk argument (for tests).
    pub fn receive_with(&self, bulk: BulkArg) -> Result<Received, CallError> {
        call_no_params(self.0, interfaces::NIC, nm::RECEIVE, &[], bulk, |r| object(read_received(r.get::<nic_receive_result::Owned>()?)))
    }

    pub fn counters(&self) -> Result<NicCounters, CallError> {
        call_no_params(self.0, interfaces::NIC, nm::COUNTERS, &[], BulkArg::NONE, |r| object(read_counters(r.get::<nic_counters_result::Owned>()?)))
    }
}
