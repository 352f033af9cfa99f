//! NVMe logic that needs no hardware: PRP construction, command and
//! completion encoding, status decoding. The driver in
//! `kernel/src/drivers/nvme` feeds it physical page addresses.

use alloc::vec::Vec;

pub const PAGE: u64 = 4096;

/// How a transfer is described to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prps {
    pub prp1: u64,
    /// Zero, the second page, or (when `list` is non-empty) where the caller
    /// placed the PRP list.
    pub prp2: u64,
    /// Entries of the PRP list, if the transfer spans more than two pages.
    pub list: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrpError {
    /// The first address is not dword aligned (the spec requires it).
    Misaligned,
    /// `pages` does not cover the transfer.
    NotEnoughPages,
    /// A page after the first is not page aligned.
    PageNotAligned(u64),
    Empty,
    /// More entries than one list page holds (we do not chain lists).
    TooLong,
}

/// Build PRPs for a transfer of `len` bytes whose first byte is at physical
/// `first` and whose later bytes are in the page-aligned physical pages
/// `rest` (in order). `list_addr` is where the caller will put the list.
pub fn build_prps(first: u64, rest: &[u64], len: u64, list_addr: u64) -> Result<Prps, PrpError> {
    if len == 0 {
        return Err(PrpError::Empty);
    }
    if first % 4 != 0 {
        return Err(PrpError::Misaligned);
    }
    let first_room = PAGE - (first % PAGE);
    if len <= first_room {
        return Ok(Prps { prp1: first, prp2: 0, list: Vec::new() });
    }
    let remaining = len - first_room;
    let pages_needed = remaining.div_ceil(PAGE) as usize;
    if rest.len() < pages_needed {
        return Err(PrpError::NotEnoughPages);
    }
    let rest = &rest[..pages_needed];
    if let Some(p) = rest.iter().find(|p| *p % PAGE != 0) {
        return Err(PrpError::PageNotAligned(*p));
    }
    if pages_needed == 1 {
        return Ok(Prps { prp1: first, prp2: rest[0], list: Vec::new() });
    }
    if pages_needed > (PAGE / 8) as usize {
        return Err(PrpError::TooLong);
    }
    Ok(Prps { prp1: first, prp2: list_addr, list: rest.to_vec() })
}

/// A 64-byte submission queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Command {
    pub opcode: u8,
    pub cid: u16,
    pub nsid: u32,
    pub prp1: u64,
    pub prp2: u64,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
}

pub mod opcode {
    pub const ADMIN_DELETE_SQ: u8 = 0x00;
    pub const ADMIN_CREATE_SQ: u8 = 0x01;
    pub const ADMIN_DELETE_CQ: u8 = 0x04;
    pub const ADMIN_CREATE_CQ: u8 = 0x05;
    pub const ADMIN_IDENTIFY: u8 = 0x06;
    pub const ADMIN_SET_FEATURES: u8 = 0x09;
    pub const IO_FLUSH: u8 = 0x00;
    pub const IO_WRITE: u8 = 0x01;
    pub const IO_READ: u8 = 0x02;
}

impl Command {
    pub fn to_dwords(&self) -> [u32; 16] {
        let mut d = [0u32; 16];
        d[0] = self.opcode as u32 | (self.cid as u32) << 16;
        d[1] = self.nsid;
        d[6] = self.prp1 as u32;
        d[7] = (self.prp1 >> 32) as u32;
        d[8] = self.prp2 as u32;
        d[9] = (self.prp2 >> 32) as u32;
        d[10] = self.cdw10;
        d[11] = self.cdw11;
        d[12] = self.cdw12;
        d[13] = self.cdw13;
        d[14] = self.cdw14;
        d[15] = self.cdw15;
        d
    }

    /// Read or write `blocks` (1..=65536) logical blocks at `lba`.
    pub fn rw(write: bool, nsid: u32, lba: u64, blocks: u32, prps: &Prps) -> Command {
        Command {
            opcode: if write { opcode::IO_WRITE } else { opcode::IO_READ },
            nsid,
            prp1: prps.prp1,
            prp2: prps.prp2,
            cdw10: lba as u32,
            cdw11: (lba >> 32) as u32,
            cdw12: blocks - 1,
            ..Command::default()
        }
    }
}

/// A completion queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub result: u32,
    pub sq_head: u16,
    pub sq_id: u16,
    pub cid: u16,
    pub phase: bool,
    /// Status field without the phase bit: SCT in bits 8..11, SC in 0..8,
    /// More and Do-Not-Retry above.
    pub status: u16,
}

impl Completion {
    pub fn from_dwords(d: [u32; 4]) -> Completion {
        Completion {
            result: d[0],
            sq_head: d[2] as u16,
            sq_id: (d[2] >> 16) as u16,
            cid: d[3] as u16,
            phase: (d[3] >> 16) & 1 == 1,
            status: (d[3] >> 17) as u16,
        }
    }

    pub fn ok(&self) -> bool {
        self.status & 0x7ff == 0
    }
}

/// A readable name for a status (`status` as in [`Completion::status`]).
pub fn status_text(status: u16) -> &'static str {
    let sct = (status >> 8) & 0x7;
    let sc = status & 0xff;
    match (sct, sc) {
        (0, 0x00) => "successful completion",
        (0, 0x01) => "invalid command opcode",
        (0, 0x02) => "invalid field in command",
        (0, 0x03) => "command ID conflict",
        (0, 0x04) => "data transfer error",
        (0, 0x05) => "commands aborted due to power loss",
        (0, 0x06) => "internal error",
        (0, 0x07) => "command abort requested",
        (0, 0x08) => "command aborted due to SQ deletion",
        (0, 0x0b) => "invalid namespace or format",
        (0, 0x0d) => "PRP offset invalid",
        (0, 0x13) => "invalid PRP offset",
        (0, 0x80) => "LBA out of range",
        (0, 0x81) => "capacity exceeded",
        (0, 0x82) => "namespace not ready",
        (1, 0x00) => "completion queue invalid",
        (1, 0x01) => "invalid queue identifier",
        (1, 0x02) => "invalid queue size",
        (1, 0x08) => "invalid interrupt vector",
        (1, 0x0b) => "invalid namespace or format",
        (2, 0x80) => "write fault",
        (2, 0x81) => "unrecovered read error",
        (2, 0x86) => "access denied",
        (2, 0x87) => "deallocated or unwritten logical block",
        (0, _) => "generic command status (other)",
        (1, _) => "command specific status (other)",
        (2, _) => "media or data integrity error",
        (3, _) => "path related status",
        (7, _) => "vendor specific status",
        _ => "reserved status type",
    }
}

/// Namespace geometry from an Identify Namespace page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub blocks: u64,
    pub block_size: u32,
}

pub fn parse_identify_namespace(page: &[u8]) -> Option<NamespaceInfo> {
    let nsze = u64::from_le_bytes(page.get(0..8)?.try_into().ok()?);
    let flbas = *page.get(26)? as usize & 0xf;
    let lbaf = u32::from_le_bytes(page.get(128 + 4 * flbas..132 + 4 * flbas)?.try_into().ok()?);
    let lbads = (lbaf >> 16) & 0xff;
    if nsze == 0 || !(9..=16).contains(&lbads) {
        return None;
    }
    Some(NamespaceInfo { blocks: nsze, block_size: 1 << lbads })
}

/// Queue index arithmetic with phase tracking for a completion queue.
#[derive(Debug, Clone, Copy)]
pub struct CqCursor {
    pub head: u16,
    pub phase: bool,
    pub size: u16,
}

impl CqCursor {
    pub fn new(size: u16) -> CqCursor {
        CqCursor { head: 0, phase: true, size }
    }

    /// Whether `c` (read at `head`) is a new completion.
    pub fn is_new(&self, c: &Completion) -> bool {
        c.phase == self.phase
    }

    pub fn advance(&mut self) {
        self.head += 1;
        if self.head == self.size {
            self.head = 0;
            self.phase = !self.phase;
        }
    }
}

/// Where the doorbells start in BAR0 (after the controller registers).
pub const DOORBELL_BASE: u64 = 0x1000;

/// Bytes between doorbells: `4 << CAP.DSTRD` (DSTRD is 4 bits).
pub fn doorbell_stride(dstrd: u32) -> u64 {
    4u64 << (dstrd & 0xf)
}

/// Offset of queue `qid`'s submission queue tail doorbell.
pub fn sq_doorbell(qid: u16, dstrd: u32) -> u64 {
    DOORBELL_BASE + 2 * qid as u64 * doorbell_stride(dstrd)
}

/// Offset of queue `qid`'s completion queue head doorbell.
pub fn cq_doorbell(qid: u16, dstrd: u32) -> u64 {
    DOORBELL_BASE + (2 * qid as u64 + 1) * doorbell_stride(dstrd)
}

/// Set Features' feature id for Number of Queues (NVMe base spec, 5.27.1.5).
pub const FEATURE_NUMBER_OF_QUEUES: u32 = 0x07;

/// Set Features (Number of Queues) asking for `pairs` I/O submission and
/// completion queues: both counts are zero-based in CDW11.
pub fn number_of_queues_command(pairs: u16) -> Command {
    let n = pairs.max(1) as u32 - 1;
    Command { opcode: opcode::ADMIN_SET_FEATURES, cdw10: FEATURE_NUMBER_OF_QUEUES, cdw11: n << 16 | n, ..Command::default() }
}

/// How many I/O queue pairs a Number of Queues completion grants: the
/// smaller of its zero-based submission (bits 0..16) and completion
/// (16..32) counts, plus one. A controller may grant more than asked;
/// the driver uses what it asked for at most.
pub fn queue_pairs_granted(result: u32) -> u32 {
    (result & 0xffff).min(result >> 16) + 1
}

/// BAR0 is too small for the doorbells the controller's stride puts in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterWindowError {
    pub dstrd: u32,
    pub stride: u64,
    pub queues: u16,
    /// Bytes of BAR0 the registers and doorbells need.
    pub needed: u64,
    pub bar_size: u64,
}

impl core::fmt::Display for RegisterWindowError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "CAP.DSTRD={} (doorbell stride {} bytes) puts the doorbells of {} queue pair(s) up to BAR0 offset {:#x}, but BAR0 is {:#x} bytes",
            self.dstrd, self.stride, self.queues, self.needed, self.bar_size
        )
    }
}

/// How much of BAR0 the driver maps for queue pairs `0..queues`: the
/// controller registers and every doorbell those queues use. Refused when
/// that runs past the BAR, so no register access can leave the mapping.
pub fn register_window(bar_size: u64, dstrd: u32, queues: u16) -> Result<u64, RegisterWindowError> {
    let stride = doorbell_stride(dstrd);
    // The last doorbell is queue (queues - 1)'s completion head.
    let needed = cq_doorbell(queues.saturating_sub(1), dstrd) + 4;
    if needed > bar_size {
        return Err(RegisterWindowError { dstrd: dstrd & 0xf, stride, queues, needed, bar_size });
    }
    Ok(needed)
}

/// The I/O commands a controller has in flight, by slot: which may be
/// submitted, whose a completion is, and what a reset does to the rest.
/// With it several requests (two namespaces' mounts, two partitions of one
/// disk) share one queue pair, each waiting for its own completion without
/// holding the controller while the device works. Rules:
///
/// 1. A command's id names its slot (the low 8 bits) and the slot's
///    generation (the high 8): a completion whose id is not that of a
///    command in flight is a stranger ([`Tags::complete`] says so) and the
///    queue is out of step.
/// 2. A slot is claimed before its command is submitted and freed only by
///    its owner, once it has taken the outcome ([`Tags::take`]): a slot in
///    flight is never given out again, and the next use of a slot carries
///    another generation, so a late completion of an abandoned command is
///    never taken for a newer one.
/// 3. A reset ends every command in flight ([`Tags::abort_all`]): each
///    owner takes [`Taken::Aborted`] and frees its slot; the controller
///    does no DMA once reset, so its buffer is the owner's again.
/// 4. At most 255 slots (the id 0xffff is never used: NVMe reserves it in
///    the error log), and never more than the queue holds at once (its
///    depth less one).
#[derive(Debug)]
pub struct Tags {
    slots: Vec<Tag>,
    /// The generation the next command in each slot carries.
    gens: Vec<u8>,
    in_flight: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Free,
    InFlight { cid: u16 },
    Done(Completion),
    Aborted,
}

/// What the owner of a slot finds there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Its completion (successful or with an error status).
    Done(Completion),
    /// A reset ended it before it completed.
    Aborted,
}

/// A completion no command in flight waits for (rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stranger {
    pub cid: u16,
}

impl Tags {
    /// Slots for a queue of `depth` entries (rule 4).
    pub fn new(depth: u16) -> Tags {
        let n = (depth.saturating_sub(1) as usize).clamp(1, 255);
        Tags { slots: alloc::vec![Tag::Free; n], gens: alloc::vec![0; n], in_flight: 0 }
    }

    /// How many slots there are.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Commands in flight or waiting for their owner to take the outcome.
    pub fn in_use(&self) -> usize {
        self.in_flight
    }

    /// A free slot and the id its command carries, or `None` when every
    /// slot is in use (the caller waits for one).
    pub fn claim(&mut self) -> Option<(usize, u16)> {
        let slot = self.slots.iter().position(|t| *t == Tag::Free)?;
        let gen = self.gens[slot];
        // Rule 4: slot 254 is the last, so (gen, slot) is never 0xffff.
        let cid = (gen as u16) << 8 | slot as u16;
        self.gens[slot] = gen.wrapping_add(1);
        self.slots[slot] = Tag::InFlight { cid };
        self.in_flight += 1;
        Some((slot, cid))
    }

    /// Give back a slot whose command was never submitted (building it
    /// failed): nothing of it can complete.
    pub fn unclaim(&mut self, slot: usize) {
        if let Some(t @ Tag::InFlight { .. }) = self.slots.get_mut(slot) {
            *t = Tag::Free;
            self.in_flight -= 1;
        }
    }

    /// Record completion `c` for its command (rule 1).
    pub fn complete(&mut self, c: Completion) -> Result<(), Stranger> {
        let slot = (c.cid & 0xff) as usize;
        match self.slots.get_mut(slot) {
            Some(t @ Tag::InFlight { .. }) if *t == (Tag::InFlight { cid: c.cid }) => {
                *t = Tag::Done(c);
                Ok(())
            }
            _ => Err(Stranger { cid: c.cid }),
        }
    }

    /// The outcome in `slot`, freeing it (rule 2); `None` while its command
    /// is still in flight, or when the slot is not in use.
    pub fn take(&mut self, slot: usize) -> Option<Taken> {
        let t = self.slots.get_mut(slot)?;
        let taken = match *t {
            Tag::Done(c) => Taken::Done(c),
            Tag::Aborted => Taken::Aborted,
            Tag::Free | Tag::InFlight { .. } => return None,
        };
        *t = Tag::Free;
        self.in_flight -= 1;
        Some(taken)
    }

    /// A reset ended every command still in flight (rule 3); returns how
    /// many. Completions already recorded stay for their owners.
    pub fn abort_all(&mut self) -> usize {
        let mut n = 0;
        for t in self.slots.iter_mut() {
            if let Tag::InFlight { .. } = t {
                *t = Tag::Aborted;
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_of_queues_is_zero_based_both_ways() {
        let c = number_of_queues_command(2);
        assert_eq!((c.opcode, c.cdw10, c.cdw11), (0x09, 0x07, 0x0001_0001));
        assert_eq!(number_of_queues_command(0).cdw11, 0, "asking for none asks for one");
        // A controller that grants 64 submission but 1 completion queue
        // grants one pair; 0xffff is 65536 (zero-based), not -1.
        assert_eq!(queue_pairs_granted(0x0000_003f), 1);
        assert_eq!(queue_pairs_granted(0x003f_0001), 2);
        assert_eq!(queue_pairs_granted(0xffff_ffff), 65536);
    }

    #[test]
    fn one_page_and_two_page_transfers() {
        let p = build_prps(0x10_0000, &[], 4096, 0xdead_0000).unwrap();
        assert_eq!((p.prp1, p.prp2, p.list.len()), (0x10_0000, 0, 0));
        // 512 bytes at an offset inside the page.
        let p = build_prps(0x10_0e00, &[], 512, 0).unwrap();
        assert_eq!((p.prp1, p.prp2), (0x10_0e00, 0));
        // 8 KiB page aligned: PRP2 is the second page.
        let p = build_prps(0x10_0000, &[0x20_0000], 8192, 0).unwrap();
        assert_eq!((p.prp1, p.prp2, p.list.len()), (0x10_0000, 0x20_0000, 0));
    }

    #[test]
    fn misaligned_start_spills_into_an_extra_page() {
        // 4 KiB starting 0x200 into a page touches two pages.
        let p = build_prps(0x10_0200, &[0x30_0000], 4096, 0).unwrap();
        assert_eq!((p.prp1, p.prp2), (0x10_0200, 0x30_0000));
        // 8 KiB starting at 0x200 needs three pages: a list of two.
        let p = build_prps(0x10_0200, &[0x30_0000, 0x50_0000], 8192, 0x7000).unwrap();
        assert_eq!((p.prp1, p.prp2, p.list.clone()), (0x10_0200, 0x7000, vec![0x30_0000, 0x50_0000]));
        assert_eq!(build_prps(0x10_0200, &[0x30_0000], 8192, 0), Err(PrpError::NotEnoughPages));
        assert_eq!(build_prps(0x10_0201, &[], 16, 0), Err(PrpError::Misaligned));
    }

    #[test]
    fn multi_page_lists() {
        let pages: Vec<u64> = (1..32).map(|i| i * 0x1_0000).collect();
        let p = build_prps(0x8000, &pages, 128 * 1024, 0x9000).unwrap();
        assert_eq!(p.prp2, 0x9000);
        assert_eq!(p.list.len(), 31);
        assert_eq!(p.list[0], 0x1_0000);
        // Extra pages beyond the transfer are not included.
        let p = build_prps(0x8000, &pages, 3 * 4096, 0x9000).unwrap();
        assert_eq!(p.list, vec![0x1_0000, 0x2_0000]);
        assert_eq!(build_prps(0x8000, &[0x1_0000, 0x2_0008], 3 * 4096, 0), Err(PrpError::PageNotAligned(0x2_0008)));
        assert_eq!(build_prps(0x8000, &[], 0, 0), Err(PrpError::Empty));
        let many: Vec<u64> = (1..=600).map(|i| i * 0x1000).collect();
        assert_eq!(build_prps(0x0, &many, 600 * 4096, 0), Err(PrpError::TooLong));
    }

    #[test]
    fn commands_and_completions() {
        let prps = Prps { prp1: 0x1_2345_6000, prp2: 0x7000, list: vec![] };
        let mut c = Command::rw(true, 1, 0x1_0000_0002, 8, &prps);
        c.cid = 0x77;
        let d = c.to_dwords();
        assert_eq!(d[0], 0x01 | 0x77 << 16);
        assert_eq!((d[1], d[6], d[7], d[8]), (1, 0x2345_6000, 0x1, 0x7000));
        assert_eq!((d[10], d[11], d[12]), (2, 1, 7));
        let done = Completion::from_dwords([5, 0, 0x0001_0003, 0x0001_0077]);
        assert!(done.phase && done.ok());
        assert_eq!((done.cid, done.sq_head, done.sq_id, done.result), (0x77, 3, 1, 5));
        // LBA out of range: SCT 0, SC 0x80, phase 1.
        let bad = Completion::from_dwords([0, 0, 0, (0x80 << 17) | (1 << 16) | 5]);
        assert!(!bad.ok());
        assert_eq!(status_text(bad.status), "LBA out of range");
        assert_eq!(status_text(0x0281), "unrecovered read error");
        assert_eq!(status_text(0x0102), "invalid queue size");
        assert_eq!(status_text(0), "successful completion");
    }

    #[test]
    fn phase_flips_on_wrap() {
        let mut c = CqCursor::new(2);
        let new = Completion::from_dwords([0, 0, 0, 1 << 16]);
        assert!(c.is_new(&new));
        c.advance();
        c.advance();
        assert_eq!((c.head, c.phase), (0, false));
        assert!(!c.is_new(&new), "an old entry from the previous pass is not new");
    }

    #[test]
    fn doorbells_follow_the_stride() {
        assert_eq!((sq_doorbell(0, 0), cq_doorbell(0, 0)), (0x1000, 0x1004));
        assert_eq!((sq_doorbell(1, 0), cq_doorbell(1, 0)), (0x1008, 0x100c));
        // DSTRD=2: 16-byte stride.
        assert_eq!((sq_doorbell(1, 2), cq_doorbell(1, 2)), (0x1020, 0x1030));
    }

    #[test]
    fn register_window_is_bounded_by_the_bar() {
        // QEMU's controller: DSTRD 0, a 16 KiB BAR: two queue pairs need 0x1010 bytes.
        assert_eq!(register_window(0x4000, 0, 2), Ok(0x1010));
        // A 4 KiB stride fits a 64 KiB BAR (the I/O CQ doorbell ends at
        // 0x4004) but not a 16 KiB one.
        assert_eq!(register_window(0x1_0000, 10, 2), Ok(0x4004));
        assert!(register_window(0x4000, 10, 2).is_err());
        // The largest stride (128 KiB) with a small BAR is refused, naming the numbers.
        let e = register_window(0x4000, 15, 2).unwrap_err();
        assert_eq!((e.stride, e.needed, e.bar_size), (0x2_0000, 0x6_1004, 0x4000));
        let text = format!("{}", e);
        assert!(text.contains("CAP.DSTRD=15") && text.contains("131072") && text.contains("0x61004") && text.contains("0x4000"), "{}", text);
        // Exactly fitting is fine; one byte short is not.
        assert_eq!(register_window(0x1010, 0, 2), Ok(0x1010));
        assert!(register_window(0x100f, 0, 2).is_err());
        // A BAR without room for the doorbell page at all.
        assert!(register_window(0x800, 0, 1).is_err());
    }

    fn done(cid: u16) -> Completion {
        Completion::from_dwords([0, 0, 0, (1 << 16) | cid as u32])
    }

    #[test]
    fn tags_route_completions_to_their_own_slot() {
        let mut t = Tags::new(64);
        assert_eq!(t.capacity(), 63);
        let (a, ca) = t.claim().unwrap();
        let (b, cb) = t.claim().unwrap();
        assert_ne!(a, b);
        assert_eq!(t.in_use(), 2);
        // b completes first: a still waits, b takes its own completion.
        t.complete(done(cb)).unwrap();
        assert_eq!(t.take(a), None);
        assert_eq!(t.take(b), Some(Taken::Done(done(cb))));
        // Taken once: the slot is free again.
        assert_eq!(t.take(b), None);
        t.complete(done(ca)).unwrap();
        assert_eq!(t.take(a), Some(Taken::Done(done(ca))));
        assert_eq!(t.in_use(), 0);
        // A slot claimed for a command that could not be built goes back.
        let (c, cc) = t.claim().unwrap();
        t.unclaim(c);
        assert_eq!(t.in_use(), 0);
        assert_eq!(t.complete(done(cc)), Err(Stranger { cid: cc }));
        t.unclaim(c);
        assert_eq!(t.in_use(), 0);
    }

    #[test]
    fn a_late_or_unknown_completion_is_a_stranger() {
        let mut t = Tags::new(4);
        let (a, ca) = t.claim().unwrap();
        // Nobody waits on slot 2, nor for a completion twice.
        assert_eq!(t.complete(done(2)), Err(Stranger { cid: 2 }));
        t.complete(done(ca)).unwrap();
        assert_eq!(t.complete(done(ca)), Err(Stranger { cid: ca }));
        assert!(t.take(a).is_some());
        // The slot's next command carries another generation: the old
        // command's completion, arriving late, is not taken for it.
        let (a2, ca2) = t.claim().unwrap();
        assert_eq!(a2, a);
        assert_ne!(ca2, ca);
        assert_eq!(t.complete(done(ca)), Err(Stranger { cid: ca }));
        assert_eq!(t.take(a2), None);
        // Out of range slots too.
        assert_eq!(t.complete(done(0x00fe)), Err(Stranger { cid: 0xfe }));
    }

    #[test]
    fn a_reset_aborts_what_is_in_flight_and_keeps_what_completed() {
        let mut t = Tags::new(8);
        let (a, ca) = t.claim().unwrap();
        let (b, _) = t.claim().unwrap();
        let (c, _) = t.claim().unwrap();
        t.complete(done(ca)).unwrap();
        assert_eq!(t.abort_all(), 2);
        assert_eq!(t.take(a), Some(Taken::Done(done(ca))));
        assert_eq!(t.take(b), Some(Taken::Aborted));
        assert_eq!(t.take(c), Some(Taken::Aborted));
        assert_eq!(t.in_use(), 0);
    }

    #[test]
    fn tags_run_out_and_never_use_id_ffff() {
        let mut t = Tags::new(u16::MAX);
        assert_eq!(t.capacity(), 255);
        let mut seen = alloc::vec::Vec::new();
        // Every generation of every slot.
        for _ in 0..256 {
            let claimed: alloc::vec::Vec<(usize, u16)> = core::iter::from_fn(|| t.claim()).collect();
            assert_eq!(claimed.len(), 255);
            assert!(t.claim().is_none(), "a full table gives no slot");
            for (slot, cid) in claimed {
                assert_ne!(cid, 0xffff);
                seen.push(cid);
                t.complete(done(cid)).unwrap();
                assert!(t.take(slot).is_some());
            }
        }
        assert!(!seen.contains(&0xffff));
        // A queue of depth 2 holds one command at a time.
        let mut small = Tags::new(2);
        assert!(small.claim().is_some());
        assert!(small.claim().is_none());
    }

    #[test]
    fn a_fresh_cursor_ignores_zeroed_entries() {
        // After a reset the rings are zeroed and the cursor starts over:
        // a zeroed entry (phase 0) must not look like a completion.
        let c = CqCursor::new(64);
        assert!(!c.is_new(&Completion::from_dwords([0; 4])));
        assert_eq!((c.head, c.phase), (0, true));
    }

    #[test]
    fn identify_namespace() {
        let mut page = vec![0u8; 4096];
        page[0..8].copy_from_slice(&32768u64.to_le_bytes());
        page[26] = 1; // format 1
        page[132..136].copy_from_slice(&(12u32 << 16).to_le_bytes());
        assert_eq!(parse_identify_namespace(&page), Some(NamespaceInfo { blocks: 32768, block_size: 4096 }));
        page[132..136].copy_from_slice(&(40u32 << 16).to_le_bytes());
        assert_eq!(parse_identify_namespace(&page), None, "absurd block size");
        assert_eq!(parse_identify_namespace(&page[..10]), None);
    }
}
