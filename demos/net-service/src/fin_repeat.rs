//! A peer's repeated FIN, handed to smoltcp as the acknowledgment it is.
//!
//! Why: a BSD-derived TCP (QEMU's user network, libslirp, is one) that has
//! sent its FIN sets FIN again on every segment it sends until that FIN is
//! acknowledged, with the same sequence number, the FIN's, and no data:
//! also on the segments that acknowledge our data. smoltcp 0.12 takes a
//! data-less segment one below the next sequence number it expects for a
//! keep-alive and drops it unprocessed, its acknowledgment and window
//! included. When every acknowledgment of the data we have in flight
//! arrives that way, smoltcp never learns that the data arrived, its send
//! buffer stays full and a write waits until its time runs out. `make
//! run-net-service` showed it on a loaded host: the 300 KiB echo ended 11
//! to 15 KiB short ("write: the time given ran out" after 60 s); a capture
//! showed the peer acknowledging every byte, each time on a repeated FIN.
//!
//! What this does: once smoltcp has taken a connection's FIN (the socket
//! is in a state that follows one: the service says so with
//! [`FinRepeats::taken`]), a data-less segment of that connection with FIN
//! set at that FIN's sequence number is rewritten, before smoltcp sees
//! it, into the pure acknowledgment it carries: FIN cleared, sequence
//! number one higher (where the FIN left it), checksum recomputed. A
//! frame with a new FIN ends smoltcp's batch of frames ([`Filtered`]), so
//! the service asks its sockets before the frames behind it go in; a FIN
//! no socket took by then (out of order, say) is forgotten, and reaches
//! smoltcp as it came when repeated. Rules:
//! 1. A connection is its four-tuple as the peer sends (source first).
//! 2. A FIN is noted with its own sequence number (after any data the
//!    segment carries); a SYN or RST of the connection forgets it.
//! 3. Only a noted, taken FIN's repeats are rewritten, and only when they
//!    carry no data and acknowledge more than the peer had before: a
//!    repeat with nothing new is the FIN sent again because our
//!    acknowledgment of it was lost, and goes to smoltcp as it came, which
//!    answers it with that acknowledgment (rewritten, nothing would).
//! 4. At most [`MAX_NOTED`] connections are noted; past that all are
//!    forgotten (a repeat is then passed on as it came: the stall this
//!    works around, never a wrong rewrite).

use alloc::collections::BTreeMap;
use smoltcp::phy::{Device, DeviceCapabilities, RxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};
#[cfg(test)]
use smoltcp::wire::Ipv4Address;

/// Connections noted at once (rule 4): more than the service's sockets.
pub const MAX_NOTED: usize = 1024;

/// (peer address, peer port, our address, our port).
pub type Tuple = ([u8; 4], u16, [u8; 4], u16);

#[derive(Default)]
pub struct FinRepeats {
    /// The peer's FIN by connection.
    noted: BTreeMap<Tuple, Fin>,
    /// Noted FINs not yet taken (the service looks at its sockets only
    /// while there are some).
    untaken: usize,
    /// Segments rewritten so far.
    pub rewritten: u64,
    /// A FIN was just noted: [`Filtered`] hands smoltcp no more frames
    /// until the service has asked its sockets whether they took it (the
    /// peer's repeats may follow in the same batch of frames).
    pub hold: bool,
}

/// A peer's FIN: its sequence number, whether smoltcp has taken it, and
/// the highest acknowledgment the peer has sent since (rule 3).
#[derive(Clone, Copy)]
struct Fin {
    seq: u32,
    taken: bool,
    ack: Option<u32>,
}

/// Whether acknowledgment `ack` is beyond `last` (sequence numbers wrap).
fn newer(ack: Option<u32>, last: Option<u32>) -> bool {
    match (ack, last) {
        (Some(a), Some(l)) => (a.wrapping_sub(l) as i32) > 0,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// What a frame is, for this module.
enum Seen {
    Other,
    /// A TCP segment: its connection, sequence number, data length and
    /// flags (SYN, FIN, RST).
    Tcp { tuple: Tuple, seq: u32, ack: Option<u32>, len: usize, syn: bool, fin: bool, rst: bool },
}

fn look(frame: &[u8]) -> Seen {
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return Seen::Other };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return Seen::Other;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return Seen::Other };
    if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
        return Seen::Other;
    }
    let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else { return Seen::Other };
    let tuple = (ip.src_addr().octets(), tcp.src_port(), ip.dst_addr().octets(), tcp.dst_port());
    let ack = tcp.ack().then(|| tcp.ack_number().0 as u32);
    Seen::Tcp { tuple, seq: tcp.seq_number().0 as u32, ack, len: tcp.payload().len(), syn: tcp.syn(), fin: tcp.fin(), rst: tcp.rst() }
}

impl FinRepeats {
    /// Note what `frame` says (rules 2 and 4); true if it is a repeat of a
    /// taken FIN that [`rewrite`](Self::rewrite) must turn into an
    /// acknowledgment (rule 3).
    pub fn on_frame(&mut self, frame: &[u8]) -> bool {
        let Seen::Tcp { tuple, seq, ack, len, syn, fin, rst } = look(frame) else { return false };
        if syn || rst {
            self.forget(tuple);
            return false;
        }
        if self.noted.is_empty() && !fin {
            return false;
        }
        let fin_seq = seq.wrapping_add(len as u32);
        match self.noted.get_mut(&tuple) {
            // A repeat of a taken FIN that acknowledges more than the peer
            // had: rewritten. One that does not (the FIN sent again, our
            // acknowledgment of it lost) goes as it came: smoltcp answers
            // it with that acknowledgment.
            Some(f) if fin && f.seq == fin_seq => {
                let rewrite = f.taken && len == 0 && newer(ack, f.ack);
                if newer(ack, f.ack) {
                    f.ack = ack;
                }
                rewrite
            }
            Some(f) if !fin => {
                if newer(ack, f.ack) {
                    f.ack = ack;
                }
                false
            }
            None if !fin => false,
            _ => {
                if self.noted.len() >= MAX_NOTED {
                    self.noted.clear();
                    self.untaken = 0;
                }
                if let Some(Fin { taken: false, .. }) = self.noted.insert(tuple, Fin { seq: fin_seq, taken: false, ack }) {
                    self.untaken -= 1;
                }
                self.untaken += 1;
                self.hold = true;
                false
            }
        }
    }

    /// Whether a noted FIN waits to be taken (the service then tells which
    /// sockets took theirs).
    pub fn waiting(&self) -> bool {
        self.untaken > 0
    }

    /// smoltcp has taken the FIN of connection `tuple` (its socket is past
    /// one: CLOSE-WAIT, LAST-ACK, CLOSING or TIME-WAIT).
    pub fn taken(&mut self, tuple: Tuple) {
        if let Some(f) = self.noted.get_mut(&tuple) {
            if !f.taken {
                f.taken = true;
                self.untaken -= 1;
            }
        }
    }

    /// Forget every noted FIN smoltcp has not taken (called once the
    /// service has told which it took: one smoltcp did not take at once,
    /// out of order say, is noted afresh when repeated, and reaches
    /// smoltcp as it came).
    pub fn drop_untaken(&mut self) {
        self.noted.retain(|_, f| f.taken);
        self.untaken = 0;
    }

    /// Forget connection `tuple` (its socket is gone).
    pub fn forget(&mut self, tuple: Tuple) {
        if let Some(f) = self.noted.remove(&tuple) {
            self.untaken -= !f.taken as usize;
        }
    }

    /// Rewrite a frame [`on_frame`](Self::on_frame) picked: FIN cleared,
    /// sequence number one past the FIN, checksum recomputed.
    pub fn rewrite(&mut self, frame: &mut [u8]) {
        let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else { return };
        let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else { return };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let Ok(mut tcp) = TcpPacket::new_checked(ip.payload_mut()) else { return };
        let seq = tcp.seq_number();
        tcp.set_fin(false);
        tcp.set_seq_number(seq + 1);
        tcp.fill_checksum(&src.into(), &dst.into());
        self.rewritten += 1;
    }
}

/// The tuple of a connection as the peer sends (rule 1), from smoltcp's
/// endpoints of a socket.
pub fn tuple(remote: ([u8; 4], u16), local: ([u8; 4], u16)) -> Tuple {
    (remote.0, remote.1, local.0, local.1)
}

/// `inner` as smoltcp's device, every received frame passed through
/// [`FinRepeats`] (a rewritten one is copied; the rest go as they came).
pub struct Filtered<'a, D: Device + ?Sized> {
    pub inner: &'a mut D,
    pub fins: &'a mut FinRepeats,
}

pub struct FilteredRx<'a, R> {
    rx: R,
    fins: &'a mut FinRepeats,
}

impl<R: RxToken> RxToken for FilteredRx<'_, R> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        let fins = self.fins;
        self.rx.consume(|frame| {
            if fins.on_frame(frame) {
                let mut copy = frame.to_vec();
                fins.rewrite(&mut copy);
                f(&copy)
            } else {
                f(frame)
            }
        })
    }

    fn meta(&self) -> smoltcp::phy::PacketMeta {
        self.rx.meta()
    }
}

impl<D: Device + ?Sized> Device for Filtered<'_, D> {
    type RxToken<'b>
        = FilteredRx<'b, D::RxToken<'b>>
    where
        Self: 'b;
    type TxToken<'b>
        = D::TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.fins.hold {
            return None;
        }
        let (rx, tx) = self.inner.receive(timestamp)?;
        Some((FilteredRx { rx, fins: &mut *self.fins }, tx))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(timestamp)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

/// A TCP segment from `from` to `to` (address, port) in an Ethernet
/// frame, checksums filled: for this module's tests and the service's
/// scripted peer.
#[cfg(test)]
pub(crate) fn tcp_frame(from: ([u8; 4], u16), to: ([u8; 4], u16), seq: u32, ack: Option<u32>, control: smoltcp::wire::TcpControl, payload: &[u8]) -> alloc::vec::Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{EthernetAddress, EthernetRepr, IpAddress, Ipv4Repr, TcpRepr, TcpSeqNumber};
    let tcp = TcpRepr {
        src_port: from.1,
        dst_port: to.1,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 65535,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload,
    };
    let (src, dst) = (Ipv4Address::from(from.0), Ipv4Address::from(to.0));
    let ip = Ipv4Repr { src_addr: src, dst_addr: dst, next_header: IpProtocol::Tcp, payload_len: tcp.buffer_len(), hop_limit: 64 };
    let eth = EthernetRepr { src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]), dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]), ethertype: EthernetProtocol::Ipv4 };
    let mut buf = alloc::vec![0u8; eth.buffer_len() + ip.buffer_len() + tcp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &ChecksumCapabilities::default());
    tcp.emit(&mut TcpPacket::new_unchecked(p.payload_mut()), &IpAddress::from(src), &IpAddress::from(dst), &ChecksumCapabilities::default());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use smoltcp::wire::TcpControl;

    const PEER: [u8; 4] = [10, 0, 2, 2];
    const US: [u8; 4] = [10, 0, 2, 15];

    /// A frame from the peer (port 4000) to us (port 7).
    fn segment(seq: u32, ack: u32, control: TcpControl, payload: &[u8]) -> Vec<u8> {
        tcp_frame((PEER, 4000), (US, 7), seq, Some(ack), control, payload)
    }

    fn parsed(frame: &[u8]) -> (u32, u32, bool, bool) {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let ok = tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into());
        (tcp.seq_number().0 as u32, tcp.ack_number().0 as u32, tcp.fin(), ok)
    }

    const CONN: Tuple = (PEER, 4000, US, 7);

    #[test]
    fn a_repeat_of_a_taken_fin_becomes_the_acknowledgment_it_carries() {
        let mut r = FinRepeats::default();
        // The FIN, with its last 100 bytes: noted at 1100, not rewritten.
        assert!(!r.on_frame(&segment(1000, 50, TcpControl::Fin, &[7; 100])));
        assert!(r.waiting() && r.hold, "a new FIN holds the frames after it");
        r.hold = false;
        // Repeated before smoltcp took it: passed on as it came.
        let repeat = segment(1100, 60, TcpControl::Fin, &[]);
        assert!(!r.on_frame(&repeat));
        r.taken(CONN);
        assert!(!r.waiting());
        // Taken: each repeat (acknowledging more of our data) is rewritten.
        let mut later = segment(1100, 70, TcpControl::Fin, &[]);
        assert!(r.on_frame(&later));
        r.rewrite(&mut later);
        assert_eq!(parsed(&later), (1101, 70, false, true), "seq one past the FIN, the ack kept, FIN cleared, checksum right");
        assert_eq!(r.rewritten, 1);
        // The FIN again with nothing new acknowledged: the peer lost our
        // acknowledgment of it and needs smoltcp's answer; as it came.
        assert!(!r.on_frame(&segment(1100, 70, TcpControl::Fin, &[])));
        assert!(!r.on_frame(&segment(1100, 60, TcpControl::Fin, &[])), "an older acknowledgment is nothing new either");
    }

    #[test]
    fn nothing_else_is_rewritten() {
        let mut r = FinRepeats::default();
        assert!(!r.on_frame(&segment(1000, 1, TcpControl::Fin, &[])));
        r.taken(CONN);
        // A plain ACK, data, a FIN elsewhere in the sequence space, a
        // repeat that carries data, another connection's FIN.
        assert!(!r.on_frame(&segment(1001, 2, TcpControl::None, &[])));
        assert!(!r.on_frame(&segment(1001, 2, TcpControl::Psh, &[1, 2, 3])));
        assert!(!r.on_frame(&segment(900, 2, TcpControl::Fin, &[0; 100])), "data ending at the FIN: a retransmission smoltcp must see whole");
        assert!(!r.on_frame(&segment(2000, 2, TcpControl::Fin, &[])), "a FIN at another sequence number is noted afresh, untaken");
        assert!(r.waiting());
        // A SYN of the same four-tuple (a new connection) forgets it.
        r.taken(CONN);
        assert!(!r.on_frame(&segment(5000, 0, TcpControl::Syn, &[])));
        assert!(!r.on_frame(&segment(2000, 2, TcpControl::Fin, &[])));
        assert!(!r.on_frame(b"not a frame"));
    }

    #[test]
    fn the_table_is_bounded_and_forgetting_keeps_the_count() {
        let mut r = FinRepeats::default();
        for i in 0..MAX_NOTED + 5 {
            let mut f = segment(1000, 1, TcpControl::Fin, &[]);
            // Another peer port each time: a different connection.
            let port = (4000 + i as u16).to_be_bytes();
            f[34..36].copy_from_slice(&port);
            r.on_frame(&f);
            assert!(r.noted.len() <= MAX_NOTED);
        }
        assert_eq!(r.untaken, r.noted.len());
        let k = *r.noted.keys().next().unwrap();
        r.forget(k);
        assert_eq!(r.untaken, r.noted.len());
    }
}
