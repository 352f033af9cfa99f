//! net-service's core: the `Network` capability and the sockets it hands
//! out, over smoltcp, host-tested here (over smoltcp's loopback device);
//! `main.rs` wires it to the `Nic` capability, the clock and the endpoint,
//! and runs the loop that answers waiting calls later.
//!
//! - [`fin_repeat`]: a peer's repeated FIN handed to smoltcp as the
//!   acknowledgment it carries (a workaround, said why there);
//! - [`policy`]: which grant may do what (the manifest's grant terms);
//! - [`service`]: the socket table and its bounds, the calls kept until
//!   they can finish, smoltcp behind `capos_serve::net`'s traits;
//! - [`answer`]: one received call to the right dispatcher.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod fin_repeat;
pub mod policy;
pub mod service;

use capos_abi::interfaces::{NETWORK, TCP_LISTENER, TCP_STREAM, UDP_SOCKET};
use capos_abi::message::CallMessage;
use capos_serve::net::{dispatch_listener, dispatch_network, dispatch_stream, dispatch_udp, Dispatched};
use capos_serve::Responder;
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
    use capos_serve::net::{answer_cap, answer_datagram, answer_read, answer_write};
    match done {
        service::Done::Cap(result) => answer_cap(r, result),
        service::Done::Bytes(result) => answer_read(r, result),
        service::Done::Count(result) => answer_write(r, result),
        service::Done::Datagram(result) => answer_datagram(r, result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_abi::capos_capnp::{cap_result, network, ErrorCode};
    use capos_abi::interfaces::network_method as nm;
    use capos_serve::testing::{call, params, TestResponder};
    use policy::Policy;
    use service::{Limits, Service};
    use smoltcp::phy::{Loopback, Medium};
    use smoltcp::time::Instant;

    fn svc() -> Service {
        let mut dev = Loopback::new(Medium::Ethernet);
        let b = capos_abi::badge::manifest_grant(1, 3, false).unwrap();
        Service::new(&mut dev, [2, 0, 0, 0, 0, 1], 1, Instant::from_millis(0), Policy::of(&[(b, "listen=7,8 udp")]), Limits::default(), false)
    }

    fn listen(s: &mut Service, badge: u64, port: u16) -> (Result<Dispatched<u64>, SysError>, TestResponder<u64>) {
        let p = params::<network::listen_params::Owned>(|mut p| {
            p.set_port(port);
            p.set_backlog(4);
        });
        let mut r = TestResponder::<u64>::empty();
        let d = answer(s, badge, &call(NETWORK, nm::LISTEN, &p), &mut r);
        (d, r)
    }

    #[test]
    fn calls_reach_their_dispatcher_and_answer_in_their_shape() {
        let mut s = svc();
        let b = capos_abi::badge::manifest_grant(1, 3, false).unwrap();
        let (d, r) = listen(&mut s, b, 9);
        assert_eq!(d, Ok(Dispatched::Answered));
        let e = r.get::<cap_result::Owned, _>(|x| match x.which().unwrap() {
            cap_result::Err(e) => capos_abi::helpers::read_error(e.unwrap()).unwrap(),
            cap_result::Ok(_) => panic!("listen on 9 allowed"),
        });
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert!(e.message.contains("port 9"));
        let (d, r) = listen(&mut s, b, 7);
        assert_eq!(d, Ok(Dispatched::Answered));
        assert_eq!(r.caps.len(), 1, "a listener handed back");
        let mut r = TestResponder::<u64>::empty();
        assert_eq!(answer(&mut s, b, &call(capos_abi::interfaces::FILE, 0, &[]), &mut r), Err(SysError::UnknownInterface));
    }
}
