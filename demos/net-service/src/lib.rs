//! net-service's core: the `Network` capability and the sockets it hands
//! out, over smoltcp, host-tested here (over smoltcp's loopback device);
//! `main.rs` wires it to the `Nic` capability, the clock and the endpoint,
//! and runs the loop that answers waiting calls later.
//!
//! - [`policy`]: which grant may do what (the manifest's grant terms);
//! - [`service`]: the socket table and its bounds, the calls kept until
//!   they can finish, smoltcp behind `capos_abi::serve::net`'s traits;
//! - [`answer`]: one received call to the right dispatcher.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod policy;
pub mod service;

use capos_abi::interfaces::{NETWORK, TCP_LISTENER, TCP_STREAM, UDP_SOCKET};
use capos_abi::message::CallMessage;
use capos_abi::serve::net::{dispatch_listener, dispatch_network, dispatch_stream, dispatch_udp, Dispatched};
use capos_abi::serve::Responder;
use capos_abi::SysError;

/// Answer (or keep: the kept call's id) one call through the dispatcher
/// of its interface; another interface is a call-level error.
pub fn answer<R: Responder<Cap = u64>>(svc: &mut service::Service, badge: u64, call: &CallMessage, r: &mut R) -> Result<Dispatched<u64>, SysError> {
    match call.interface_id() {
        NETWORK => dispatch_network(svc, badge, call, r),
        TCP_LISTENER => dispatch_listener(svc, badge, call, r),
        TCP_STREAM => dispatch_stream(svc, badge, call, r),
        UDP_SOCKET => dispatch_udp(svc, badge, call, r),
        _ => Err(SysError::UnknownInterface),
    }
}

/// Answer a kept call that finished, through its method's writer.
pub fn finish<R: Responder<Cap = u64>>(r: &mut R, done: service::Done) -> Result<(), SysError> {
    use capos_abi::serve::net::{answer_cap, answer_datagram, answer_read, answer_write};
    match done {
        service::Done::Cap(result) => answer_cap(r, result),
        service::Done::Bytes(result) => answer_read(r, result),
        service::Done::Count(result) => answer_write(r, result),
        service::Done::Datagram(result) => answer_datagram(r, result),
    }
}
