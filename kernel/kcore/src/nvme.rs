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

/// How waiting for command `expected` ended, as the driver must act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOutcome {
    /// Its own completion (successful or with an error status): the command
    /// is over and the queue is in step.
    Complete(Completion),
    /// A completion for another command: the queue is out of step and the
    /// command waited for is still outstanding (it may still move data).
    Stranger { expected: u16, got: u16 },
    /// Nothing in time: the command may still be running and may still DMA.
    TimedOut,
}

impl IoOutcome {
    /// Judge what a wait for `expected` returned (`None`: it timed out).
    #[inline(always)]
    pub fn judge(expected: u16, waited: Option<Completion>) -> IoOutcome {
        match waited {
            Some(c) if c.cid == expected => IoOutcome::Complete(c),
            Some(c) => IoOutcome::Stranger { expected, got: c.cid },
            None => IoOutcome::TimedOut,
        }
    }

    /// Whether the command may still be outstanding, so the controller must
    /// be reset (stopping its DMA and emptying its queues) before the
    /// buffer is given back or another command is issued.
    pub fn needs_reset(&self) -> bool {
        !matches!(self, IoOutcome::Complete(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn outcomes_that_need_a_reset() {
        let mine = Completion::from_dwords([0, 0, 0, (1 << 16) | 7]);
        assert_eq!(IoOutcome::judge(7, Some(mine)), IoOutcome::Complete(mine));
        assert!(!IoOutcome::judge(7, Some(mine)).needs_reset());
        // An error status is still this command's completion: no reset.
        let failed = Completion::from_dwords([0, 0, 0, (0x80 << 17) | (1 << 16) | 7]);
        assert!(!IoOutcome::judge(7, Some(failed)).needs_reset());
        // Someone else's completion: one behind, reset.
        let other = IoOutcome::judge(8, Some(mine));
        assert_eq!(other, IoOutcome::Stranger { expected: 8, got: 7 });
        assert!(other.needs_reset());
        assert!(IoOutcome::judge(7, None).needs_reset());
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
