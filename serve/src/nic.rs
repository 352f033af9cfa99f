//! `Nic`: the trait a network device server implements and the capnp
//! dispatcher in front of it.
//!
//! Rules the dispatcher keeps, so a server only sees calls it can answer:
//! - Frames move through the bulk buffer only: `transmit` needs a readable
//!   bulk buffer (the frame is all of it), `receive` a writable one of at
//!   least `maxFrame` bytes, so any frame the device delivers fits. The
//!   wrong direction, none, or a receive buffer too small is
//!   `invalidArgument` and never reaches the server.
//! - Whether a frame's length is acceptable is the server's to judge
//!   (`capos_kcore::net` rule 1 in the kernel), so that it can count the
//!   refusal.
//! - `receive` never waits: `empty` is the answer when nothing is pending.

use super::{void_reply, Responder};
use capos_abi::capos_capnp::{nic_counters_result, nic_info_result, nic_receive_result, ErrorCode};
use capos_abi::helpers::{fill_error, CapError};
use capos_abi::interfaces::nic_method as m;
use capos_abi::message::CallMessage;
use capos_abi::SysError;
use alloc::format;
use alloc::vec;

/// What `Nic.info` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicInfo {
    pub mac: [u8; 6],
    pub mtu: u16,
    pub link_up: bool,
    /// `mtu` + the 14-byte Ethernet header.
    pub max_frame: u32,
}

/// What `Nic.counters` answers (see the schema's `NicCounters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicCounters {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_drops: u64,
    pub tx_errors: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_drops: u64,
    pub rx_errors: u64,
}

/// What the counters count (`capos_kcore::net` decides when): never
/// wrapping, saturating at `u64::MAX`.
impl NicCounters {
    /// A frame of `len` bytes handed to the device.
    pub fn sent(&mut self, len: usize) {
        self.tx_frames = self.tx_frames.saturating_add(1);
        self.tx_bytes = self.tx_bytes.saturating_add(len as u64);
    }

    /// A frame of `len` bytes handed to a holder.
    pub fn received(&mut self, len: usize) {
        self.rx_frames = self.rx_frames.saturating_add(1);
        self.rx_bytes = self.rx_bytes.saturating_add(len as u64);
    }

    pub fn tx_dropped(&mut self) {
        self.tx_drops = self.tx_drops.saturating_add(1);
    }

    pub fn rx_dropped(&mut self) {
        self.rx_drops = self.rx_drops.saturating_add(1);
    }

    pub fn tx_failed(&mut self) {
        self.tx_errors = self.tx_errors.saturating_add(1);
    }

    pub fn rx_failed(&mut self) {
        self.rx_errors = self.rx_errors.saturating_add(1);
    }
}

/// What `Nic.receive` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A frame of this many bytes, at the start of the buffer.
    Frame(usize),
    /// Nothing pending.
    Empty,
}

/// A network device, in plain Rust.
pub trait NicServer {
    fn info(&self) -> NicInfo;
    /// Hand `frame` (the whole readable bulk buffer) to the device, or
    /// refuse it; never waits for the wire.
    fn transmit(&self, frame: &[u8]) -> Result<(), CapError>;
    /// The oldest pending frame into `buf` (`info().max_frame` bytes), or
    /// `Empty` at once.
    fn receive(&self, buf: &mut [u8]) -> Result<Received, CapError>;
    fn counters(&self) -> NicCounters;
}

fn invalid(message: &str) -> CapError {
    CapError::new(ErrorCode::InvalidArgument, message)
}

fn receive_reply<R: Responder>(r: &mut R, result: Result<Received, CapError>) -> Result<(), SysError> {
    r.results::<nic_receive_result::Owned>(|mut b| {
        match &result {
            Ok(Received::Frame(n)) => b.set_frame(*n as u32),
            Ok(Received::Empty) => b.set_empty(()),
            Err(e) => fill_error(b.init_err(), e),
        }
        Ok(())
    })
}

/// Answer one `Nic` call.
pub fn dispatch<S: NicServer + ?Sized, R: Responder>(server: &S, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
    match call.method_id() {
        m::INFO => {
            let i = server.info();
            r.results::<nic_info_result::Owned>(|b| {
                let mut ok = b.init_ok();
                ok.set_mac(&i.mac);
                ok.set_mtu(i.mtu);
                ok.set_link_up(i.link_up);
                ok.set_max_frame(i.max_frame);
                Ok(())
            })
        }
        m::TRANSMIT => {
            let result = match r.bulk_in_len() {
                None => Err(invalid("Nic.transmit takes its frame from a readable bulk buffer; the call has none")),
                Some(_) => r.bulk_in_with(|frame| server.transmit(frame))?,
            };
            void_reply(r, result)
        }
        m::RECEIVE => {
            let max = server.info().max_frame as usize;
            let Some(room) = r.bulk_out_capacity() else {
                return receive_reply(r, Err(invalid("Nic.receive answers through a writable bulk buffer; the call has none")));
            };
            if room < max {
                return receive_reply(r, Err(invalid(&format!("a receive buffer of {room} bytes is smaller than the largest frame ({max} bytes)"))));
            }
            let mut buf = vec![0u8; max];
            match server.receive(&mut buf) {
                Ok(Received::Frame(n)) if n <= buf.len() => {
                    r.bulk_out(&buf[..n])?;
                    receive_reply(r, Ok(Received::Frame(n)))
                }
                Ok(Received::Frame(n)) => receive_reply(r, Err(CapError::new(ErrorCode::Io, &format!("the device gave a frame of {n} bytes, more than {max}")))),
                other => receive_reply(r, other),
            }
        }
        m::COUNTERS => {
            let c = server.counters();
            r.results::<nic_counters_result::Owned>(|b| {
                fill_counters(b.init_ok(), &c);
                Ok(())
            })
        }
        _ => Err(SysError::UnknownMethod),
    }
}

/// Read a `NicInfoResult` (the client side).
pub fn read_info(r: nic_info_result::Reader<'_>) -> Result<Result<NicInfo, CapError>, capos_abi::message::MessageError> {
    use capos_abi::helpers::{read_error, which_err};
    Ok(match r.which().map_err(which_err("NicInfoResult"))? {
        nic_info_result::Ok(i) => {
            let i = i?;
            let mac_bytes = i.get_mac()?;
            let Ok(mac) = <[u8; 6]>::try_from(mac_bytes) else {
                return Ok(Err(CapError::new(ErrorCode::Corrupted, &format!("a MAC of {} bytes", mac_bytes.len()))));
            };
            Ok(NicInfo { mac, mtu: i.get_mtu(), link_up: i.get_link_up(), max_frame: i.get_max_frame() })
        }
        nic_info_result::Err(e) => Err(read_error(e?)?),
    })
}

/// Read a `NicReceiveResult` (the client side).
pub fn read_received(r: nic_receive_result::Reader<'_>) -> Result<Result<Received, CapError>, capos_abi::message::MessageError> {
    use capos_abi::helpers::{read_error, which_err};
    Ok(match r.which().map_err(which_err("NicReceiveResult"))? {
        nic_receive_result::Frame(n) => Ok(Received::Frame(n as usize)),
        nic_receive_result::Empty(()) => Ok(Received::Empty),
        nic_receive_result::Err(e) => Err(read_error(e?)?),
    })
}

/// Write `c` as a `NicCounters` (Nic.counters, Network.info).
pub fn fill_counters(mut b: capos_abi::capos_capnp::nic_counters::Builder<'_>, c: &NicCounters) {
    b.set_tx_frames(c.tx_frames);
    b.set_tx_bytes(c.tx_bytes);
    b.set_tx_drops(c.tx_drops);
    b.set_tx_errors(c.tx_errors);
    b.set_rx_frames(c.rx_frames);
    b.set_rx_bytes(c.rx_bytes);
    b.set_rx_drops(c.rx_drops);
    b.set_rx_errors(c.rx_errors);
}

/// Read a `NicCounters`.
pub fn counters_of(c: capos_abi::capos_capnp::nic_counters::Reader<'_>) -> NicCounters {
    NicCounters {
        tx_frames: c.get_tx_frames(),
        tx_bytes: c.get_tx_bytes(),
        tx_drops: c.get_tx_drops(),
        tx_errors: c.get_tx_errors(),
        rx_frames: c.get_rx_frames(),
        rx_bytes: c.get_rx_bytes(),
        rx_drops: c.get_rx_drops(),
        rx_errors: c.get_rx_errors(),
    }
}

/// Read a `NicCountersResult` (the client side).
pub fn read_counters(r: nic_counters_result::Reader<'_>) -> Result<Result<NicCounters, CapError>, capos_abi::message::MessageError> {
    use capos_abi::helpers::{read_error, which_err};
    Ok(match r.which().map_err(which_err("NicCountersResult"))? {
        nic_counters_result::Ok(c) => Ok(counters_of(c?)),
        nic_counters_result::Err(e) => Err(read_error(e?)?),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use capos_abi::capos_capnp::void_result;
    use capos_abi::helpers::read_void;
    use capos_abi::interfaces::NIC;
    use alloc::collections::VecDeque;
    use alloc::vec::Vec;
    use core::cell::{Cell, RefCell};

    /// A loopback device: what is transmitted comes back on receive.
    /// Refuses frames outside 14..=max_frame itself, as the kernel does.
    struct Loop {
        queue: RefCell<VecDeque<Vec<u8>>>,
        calls: Cell<u32>,
        counters: Cell<NicCounters>,
    }

    impl Loop {
        fn new() -> Loop {
            Loop { queue: RefCell::new(VecDeque::new()), calls: Cell::new(0), counters: Cell::new(NicCounters::default()) }
        }
    }

    impl NicServer for Loop {
        fn info(&self) -> NicInfo {
            NicInfo { mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], mtu: 1500, link_up: true, max_frame: 1514 }
        }
        fn transmit(&self, frame: &[u8]) -> Result<(), CapError> {
            self.calls.set(self.calls.get() + 1);
            let mut c = self.counters.get();
            if frame.len() < 14 || frame.len() > 1514 {
                c.tx_drops += 1;
                self.counters.set(c);
                return Err(invalid("bad length"));
            }
            c.tx_frames += 1;
            self.counters.set(c);
            self.queue.borrow_mut().push_back(frame.to_vec());
            Ok(())
        }
        fn receive(&self, buf: &mut [u8]) -> Result<Received, CapError> {
            self.calls.set(self.calls.get() + 1);
            assert_eq!(buf.len(), 1514, "the server is always given room for the largest frame");
            match self.queue.borrow_mut().pop_front() {
                None => Ok(Received::Empty),
                Some(f) => {
                    buf[..f.len()].copy_from_slice(&f);
                    Ok(Received::Frame(f.len()))
                }
            }
        }
        fn counters(&self) -> NicCounters {
            self.counters.get()
        }
    }

    fn transmit(s: &Loop, bulk: Option<Vec<u8>>) -> Result<(), CapError> {
        let mut r = TestResponder::new();
        r.bulk_in = bulk;
        dispatch(s, &call(NIC, m::TRANSMIT, &[]), &mut r).unwrap();
        r.get::<void_result::Owned, _>(|res| read_void(res).unwrap())
    }

    fn receive(s: &Loop, room: Option<usize>) -> (Result<Received, CapError>, Option<Vec<u8>>) {
        let mut r = TestResponder::new();
        r.bulk_cap = room;
        dispatch(s, &call(NIC, m::RECEIVE, &[]), &mut r).unwrap();
        (r.get::<nic_receive_result::Owned, _>(|res| read_received(res).unwrap()), r.bulk_out)
    }

    #[test]
    fn info_counters_and_a_frame_round_trip() {
        let s = Loop::new();
        let mut r = TestResponder::new();
        dispatch(&s, &call(NIC, m::INFO, &[]), &mut r).unwrap();
        let info = r.get::<nic_info_result::Owned, _>(|res| read_info(res).unwrap()).unwrap();
        assert_eq!(info, s.info());
        let frame: Vec<u8> = (0..60u8).collect();
        transmit(&s, Some(frame.clone())).unwrap();
        let (got, bulk) = receive(&s, Some(2048));
        assert_eq!(got, Ok(Received::Frame(60)));
        assert_eq!(bulk.unwrap(), frame, "the frame and only the frame is written");
        let (got, bulk) = receive(&s, Some(1514));
        assert_eq!(got, Ok(Received::Empty), "nothing pending is an answer, not a wait");
        assert_eq!(bulk, None);
        let mut r = TestResponder::new();
        dispatch(&s, &call(NIC, m::COUNTERS, &[]), &mut r).unwrap();
        let c = r.get::<nic_counters_result::Owned, _>(|res| read_counters(res).unwrap()).unwrap();
        assert_eq!(c.tx_frames, 1);
    }

    #[test]
    fn the_wrong_bulk_direction_or_a_small_buffer_never_reaches_the_server() {
        let s = Loop::new();
        assert_eq!(transmit(&s, None).unwrap_err().code, ErrorCode::InvalidArgument, "transmit without a readable buffer");
        assert_eq!(receive(&s, None).0.unwrap_err().code, ErrorCode::InvalidArgument, "receive without a writable buffer");
        let (got, _) = receive(&s, Some(1513));
        assert!(got.unwrap_err().message.contains("smaller than the largest frame (1514 bytes)"));
        assert_eq!(s.calls.get(), 0);
    }

    #[test]
    fn bad_lengths_are_the_servers_refusal_and_it_keeps_working() {
        let s = Loop::new();
        assert_eq!(transmit(&s, Some(vec![0; 13])).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(transmit(&s, Some(vec![0; 1515])).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(s.counters().tx_drops, 2);
        transmit(&s, Some(vec![7; 14])).unwrap();
        assert_eq!(receive(&s, Some(1514)).0, Ok(Received::Frame(14)));
    }

    #[test]
    fn unknown_methods_are_call_errors() {
        let s = Loop::new();
        assert_eq!(dispatch(&s, &call(NIC, 4, &[]), &mut TestResponder::new()), Err(SysError::UnknownMethod));
        assert_eq!(s.calls.get(), 0);
    }
}
