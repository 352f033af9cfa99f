//! Ethernet frames as the virtio-net driver and the `Nic` capability see
//! them, without hardware: which frames a holder may send, which frames
//! from the device are handed on, the MTU and link state the device's
//! configuration means, the counters, and the bookkeeping of the buffers
//! the driver has given the device (which `virtio-drivers`' raw net device
//! leaves to its caller). The driver in `kernel/src/drivers/virtio_net.rs`
//! moves bytes through the crate's queues and asks this module what they
//! mean.
//!
//! Rules:
//! 1. A frame is an Ethernet frame without its FCS: a 14-byte header
//!    (destination, source, EtherType) and a payload of at most the MTU.
//!    A holder's frame shorter than [`ETH_HEADER`] or longer than
//!    `mtu + ETH_HEADER` is refused before it reaches a ring
//!    ([`check_tx_frame`]) and counted as a transmit drop.
//! 2. The MTU is the device's (`VIRTIO_NET_F_MTU`) when it offers one,
//!    capped at [`DEFAULT_MTU`]: the crate negotiates neither the MTU
//!    feature nor large receive buffers, so the receive buffers are sized
//!    for 1500. An offered MTU below [`MIN_MTU`] (IPv4's 68) is a device
//!    we do not bind ([`effective_mtu`]).
//! 3. Everything the device writes is untrusted: a used length shorter
//!    than the virtio header plus [`ETH_HEADER`], or longer than the
//!    buffer or than `mtu + ETH_HEADER` after the header, is dropped and
//!    counted ([`check_rx_used`]); its buffer goes back to the device.
//! 4. Buffers given to the device are slots; a slot is given at most once
//!    at a time, under the token the queue returned, and a completion
//!    must name a token of a slot in flight. Anything else means the
//!    driver and the device disagree about the ring ([`SlotError`]); the
//!    driver stops using the device rather than guess which buffer holds
//!    what ([`Slots`]).
//! 5. Transmitting never waits: when every transmit slot is in the device,
//!    the frame is refused as busy ([`Slots::free`] is `None`); the
//!    holder tries again after the device has sent some.
//! 6. Link state: the `VIRTIO_NET_S_LINK_UP` bit when the device offers
//!    `VIRTIO_NET_F_STATUS`; a device without it is up (the virtio spec's
//!    rule, [`link_up`]).
//! 7. Devices are named `net0`, `net1`, ... in PCI order of the ones
//!    bound ([`nic_name`]).

use alloc::format;
use alloc::string::String;

/// Destination and source MAC, EtherType.
pub const ETH_HEADER: usize = 14;
/// The MTU when the device offers none, and the most this driver uses.
pub const DEFAULT_MTU: u16 = 1500;
/// The smallest MTU IPv4 allows (RFC 791).
pub const MIN_MTU: u16 = 68;
/// `VIRTIO_NET_F_MTU`: the device's config space holds `mtu`.
pub const FEATURE_MTU: u64 = 1 << 3;
/// `VIRTIO_NET_F_MAC`: the device's config space holds `mac`.
pub const FEATURE_MAC: u64 = 1 << 5;
/// `VIRTIO_NET_F_STATUS`: the device's config space holds `status`.
pub const FEATURE_STATUS: u64 = 1 << 16;
/// `VIRTIO_NET_S_LINK_UP` in the config `status` field.
pub const STATUS_LINK_UP: u16 = 1;

/// The longest frame for `mtu` (header included, no FCS).
pub fn max_frame(mtu: u16) -> usize {
    mtu as usize + ETH_HEADER
}

/// Why a frame a holder gave is refused (rule 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    TooShort { len: usize },
    TooLong { len: usize, max: usize },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::TooShort { len } => write!(f, "a frame of {len} bytes is shorter than the {ETH_HEADER}-byte Ethernet header"),
            FrameError::TooLong { len, max } => write!(f, "a frame of {len} bytes is longer than {max} (MTU + {ETH_HEADER}-byte header)"),
        }
    }
}

/// Rule 1.
pub fn check_tx_frame(len: usize, mtu: u16) -> Result<(), FrameError> {
    let max = max_frame(mtu);
    if len < ETH_HEADER {
        Err(FrameError::TooShort { len })
    } else if len > max {
        Err(FrameError::TooLong { len, max })
    } else {
        Ok(())
    }
}

/// Rule 2: the MTU to use, given the MTU the device offers (if it offers
/// the feature), or why the device is not bound.
pub fn effective_mtu(offered: Option<u16>) -> Result<u16, String> {
    match offered {
        None => Ok(DEFAULT_MTU),
        Some(m) if m < MIN_MTU => Err(format!("the device's MTU {m} is below IPv4's minimum of {MIN_MTU}")),
        Some(m) => Ok(m.min(DEFAULT_MTU)),
    }
}

/// Why a received buffer is not handed on (rule 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// Fewer bytes than the virtio header and an Ethernet header.
    Runt { used: usize },
    /// More bytes than the buffer holds: the device wrote past it, or lies.
    PastBuffer { used: usize, buffer: usize },
    /// A frame longer than the MTU allows.
    TooLong { frame: usize, max: usize },
}

impl core::fmt::Display for RxDrop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RxDrop::Runt { used } => write!(f, "the device used {used} bytes, less than the headers"),
            RxDrop::PastBuffer { used, buffer } => write!(f, "the device used {used} bytes of a {buffer}-byte buffer"),
            RxDrop::TooLong { frame, max } => write!(f, "a received frame of {frame} bytes is longer than {max}"),
        }
    }
}

/// Rule 3: the frame's length in a receive buffer of `buffer` bytes the
/// device says it used `used` bytes of, after a `header`-byte virtio
/// header.
pub fn check_rx_used(used: usize, header: usize, buffer: usize, mtu: u16) -> Result<usize, RxDrop> {
    if used > buffer {
        return Err(RxDrop::PastBuffer { used, buffer });
    }
    let frame = used.checked_sub(header).filter(|f| *f >= ETH_HEADER).ok_or(RxDrop::Runt { used })?;
    let max = max_frame(mtu);
    if frame > max {
        return Err(RxDrop::TooLong { frame, max });
    }
    Ok(frame)
}

/// Rule 6.
pub fn link_up(features: u64, status: u16) -> bool {
    features & FEATURE_STATUS == 0 || status & STATUS_LINK_UP != 0
}

/// Rule 7.
pub fn nic_name(index: usize) -> String {
    format!("net{index}")
}

/// `52:54:00:12:34:56`.
pub fn format_mac(mac: [u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
}

/// What a NIC has done since it was bound: the wire type of
/// `Nic.counters`. Drops are frames refused or discarded on purpose (a
/// holder's malformed frame, rule 1; a malformed frame from the device,
/// rule 3); errors are device failures (rule 4).
pub use capos_serve::nic::NicCounters as Counters;

/// Why the ring and the driver disagree (rule 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// The slot is already in the device.
    SlotBusy { slot: usize },
    /// No such slot.
    NoSuchSlot { slot: usize },
    /// Another slot in flight already has this token.
    TokenInUse { token: u16, slot: usize },
    /// A completion names a token no slot in flight has.
    UnknownToken { token: u16 },
}

impl core::fmt::Display for SlotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SlotError::SlotBusy { slot } => write!(f, "buffer slot {slot} is already in the device"),
            SlotError::NoSuchSlot { slot } => write!(f, "no buffer slot {slot}"),
            SlotError::TokenInUse { token, slot } => write!(f, "token {token} is already slot {slot}'s"),
            SlotError::UnknownToken { token } => write!(f, "the device completed token {token}, which no buffer in flight has"),
        }
    }
}

/// `N` buffers and which of them the device holds, under which token
/// (rule 4).
#[derive(Clone, Debug)]
pub struct Slots<const N: usize> {
    token: [Option<u16>; N],
}

impl<const N: usize> Default for Slots<N> {
    fn default() -> Self {
        Slots { token: [None; N] }
    }
}

impl<const N: usize> Slots<N> {
    /// A slot the device does not hold, if any (the lowest).
    pub fn free(&self) -> Option<usize> {
        self.token.iter().position(Option::is_none)
    }

    /// How many slots the device holds.
    pub fn in_flight(&self) -> usize {
        self.token.iter().filter(|t| t.is_some()).count()
    }

    /// `slot` was given to the device and the queue named it `token`.
    pub fn given(&mut self, slot: usize, token: u16) -> Result<(), SlotError> {
        match self.token.get(slot) {
            None => return Err(SlotError::NoSuchSlot { slot }),
            Some(Some(_)) => return Err(SlotError::SlotBusy { slot }),
            Some(None) => {}
        }
        if let Some(other) = self.slot_of(token) {
            return Err(SlotError::TokenInUse { token, slot: other });
        }
        self.token[slot] = Some(token);
        Ok(())
    }

    /// The slot in flight under `token`, without taking it back.
    pub fn slot_of(&self, token: u16) -> Option<usize> {
        self.token.iter().position(|t| *t == Some(token))
    }

    /// The device finished `token`: its slot, now free.
    pub fn completed(&mut self, token: u16) -> Result<usize, SlotError> {
        let slot = self.slot_of(token).ok_or(SlotError::UnknownToken { token })?;
        self.token[slot] = None;
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_lengths_are_header_to_mtu_plus_header() {
        assert_eq!(check_tx_frame(0, 1500), Err(FrameError::TooShort { len: 0 }));
        assert_eq!(check_tx_frame(13, 1500), Err(FrameError::TooShort { len: 13 }));
        assert_eq!(check_tx_frame(14, 1500), Ok(()));
        assert_eq!(check_tx_frame(1514, 1500), Ok(()));
        assert_eq!(check_tx_frame(1515, 1500), Err(FrameError::TooLong { len: 1515, max: 1514 }));
        assert_eq!(check_tx_frame(usize::MAX, 1500), Err(FrameError::TooLong { len: usize::MAX, max: 1514 }));
        // A smaller MTU moves the limit with it.
        assert_eq!(check_tx_frame(1414, 1400), Ok(()));
        assert_eq!(check_tx_frame(1415, 1400), Err(FrameError::TooLong { len: 1415, max: 1414 }));
        assert!(FrameError::TooLong { len: 1515, max: 1514 }.to_string().contains("1515 bytes is longer than 1514"));
    }

    #[test]
    fn the_mtu_is_the_devices_capped_and_never_below_ipv4s_minimum() {
        assert_eq!(effective_mtu(None), Ok(1500));
        assert_eq!(effective_mtu(Some(1400)), Ok(1400));
        assert_eq!(effective_mtu(Some(9000)), Ok(1500), "receive buffers are sized for 1500");
        assert_eq!(effective_mtu(Some(68)), Ok(68));
        assert!(effective_mtu(Some(67)).unwrap_err().contains("below IPv4's minimum of 68"));
        assert!(effective_mtu(Some(0)).is_err());
    }

    #[test]
    fn received_lengths_from_the_device_are_untrusted() {
        let hdr = 12;
        assert_eq!(check_rx_used(hdr + 60, hdr, 2048, 1500), Ok(60));
        assert_eq!(check_rx_used(hdr + 14, hdr, 2048, 1500), Ok(14));
        assert_eq!(check_rx_used(hdr + 13, hdr, 2048, 1500), Err(RxDrop::Runt { used: hdr + 13 }));
        assert_eq!(check_rx_used(0, hdr, 2048, 1500), Err(RxDrop::Runt { used: 0 }), "less than the virtio header");
        assert_eq!(check_rx_used(4, hdr, 2048, 1500), Err(RxDrop::Runt { used: 4 }));
        assert_eq!(check_rx_used(2049, hdr, 2048, 1500), Err(RxDrop::PastBuffer { used: 2049, buffer: 2048 }));
        assert_eq!(check_rx_used(u32::MAX as usize, hdr, 2048, 1500), Err(RxDrop::PastBuffer { used: u32::MAX as usize, buffer: 2048 }));
        assert_eq!(check_rx_used(hdr + 1514, hdr, 2048, 1500), Ok(1514));
        assert_eq!(check_rx_used(hdr + 1515, hdr, 2048, 1500), Err(RxDrop::TooLong { frame: 1515, max: 1514 }));
        assert_eq!(check_rx_used(hdr + 1415, hdr, 2048, 1400), Err(RxDrop::TooLong { frame: 1415, max: 1414 }));
    }

    #[test]
    fn link_is_the_status_bit_only_when_the_device_has_one() {
        assert!(link_up(0, 0), "no STATUS feature: up");
        assert!(link_up(FEATURE_STATUS, STATUS_LINK_UP));
        assert!(!link_up(FEATURE_STATUS, 0));
        assert!(!link_up(FEATURE_STATUS, 2), "ANNOUNCE alone is not link up");
        assert!(link_up(FEATURE_STATUS | FEATURE_MAC, 3));
    }

    #[test]
    fn names_and_macs() {
        assert_eq!(nic_name(0), "net0");
        assert_eq!(nic_name(12), "net12");
        assert_eq!(format_mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]), "52:54:00:12:34:56");
        assert_eq!(format_mac([0xff; 6]), "ff:ff:ff:ff:ff:ff");
    }

    #[test]
    fn counters_count_and_never_wrap() {
        let mut c = Counters::default();
        c.sent(42);
        c.sent(60);
        c.received(64);
        c.tx_dropped();
        c.rx_dropped();
        c.rx_failed();
        assert_eq!(c, Counters { tx_frames: 2, tx_bytes: 102, tx_drops: 1, tx_errors: 0, rx_frames: 1, rx_bytes: 64, rx_drops: 1, rx_errors: 1 });
        c.tx_bytes = u64::MAX - 1;
        c.sent(10);
        assert_eq!(c.tx_bytes, u64::MAX);
        c.tx_frames = u64::MAX;
        c.sent(1);
        assert_eq!(c.tx_frames, u64::MAX);
    }

    #[test]
    fn slots_are_given_once_and_taken_back_by_token() {
        let mut s: Slots<4> = Slots::default();
        assert_eq!(s.free(), Some(0));
        s.given(0, 7).unwrap();
        s.given(1, 3).unwrap();
        assert_eq!(s.free(), Some(2));
        assert_eq!(s.in_flight(), 2);
        // Completions in any order.
        assert_eq!(s.completed(3), Ok(1));
        assert_eq!(s.free(), Some(1));
        assert_eq!(s.completed(7), Ok(0));
        assert_eq!(s.in_flight(), 0);
        // A token reused after its completion is fine.
        s.given(2, 7).unwrap();
        assert_eq!(s.slot_of(7), Some(2));
    }

    #[test]
    fn the_ring_out_of_step_is_an_error_not_a_guess() {
        let mut s: Slots<2> = Slots::default();
        s.given(0, 5).unwrap();
        assert_eq!(s.given(0, 6), Err(SlotError::SlotBusy { slot: 0 }), "a slot already in the device");
        assert_eq!(s.given(1, 5), Err(SlotError::TokenInUse { token: 5, slot: 0 }), "two buffers under one token");
        assert_eq!(s.given(2, 9), Err(SlotError::NoSuchSlot { slot: 2 }));
        assert_eq!(s.completed(9), Err(SlotError::UnknownToken { token: 9 }), "a completion nobody is waiting for");
        assert_eq!(s.completed(5), Ok(0));
        assert_eq!(s.completed(5), Err(SlotError::UnknownToken { token: 5 }), "completed twice");
        // Full: no free slot, so a transmit is refused, never waits.
        s.given(0, 1).unwrap();
        s.given(1, 2).unwrap();
        assert_eq!(s.free(), None);
        assert!(SlotError::UnknownToken { token: 9 }.to_string().contains("token 9"));
    }
}
