//! One submission/completion queue pair: ring memory, tail and head
//! doorbells, phase tracking. The rings outlive a controller reset:
//! [`QueuePair::reset`] empties them and starts the indices over.

use super::NvmeError;
use crate::drivers::dma::DmaBuffer;
use crate::mm::mmio::Wo32;
use capos_kcore::nvme::{Command, Completion, CqCursor};

/// A completion ring seen from outside the controller's lock: its address
/// and the head and phase it had when last published ([`QueuePair::watch_point`]).
/// A look may be out of date (the head moved since): that is a wake-up
/// too many, never one too few, as the waiter looks again under the lock.
pub fn posted_at(ring: u64, point: u32) -> bool {
    let (head, phase) = (point & 0xffff, point >> 16 != 0);
    // SAFETY: `ring` is a live completion ring (controllers are never
    // freed once bound) and `head` is below its depth; one dword read.
    let dw3 = unsafe { ((ring + head as u64 * 16 + 12) as *const u32).read_volatile() };
    ((dw3 >> 16) & 1 != 0) == phase
}

pub struct QueuePair {
    pub qid: u16,
    pub depth: u16,
    sq: DmaBuffer,
    cq: DmaBuffer,
    sq_tail: u16,
    cq_cursor: CqCursor,
    sq_doorbell: Wo32,
    cq_doorbell: Wo32,
}

impl QueuePair {
    /// A queue pair of `depth` (at least 2) entries with the given doorbells
    /// (checked against the register window by the caller).
    pub fn new(qid: u16, depth: u16, sq_doorbell: Wo32, cq_doorbell: Wo32) -> Result<QueuePair, NvmeError> {
        let depth = depth.max(2);
        let sq_pages = (depth as u64 * 64).div_ceil(4096);
        let cq_pages = (depth as u64 * 16).div_ceil(4096);
        let sq = DmaBuffer::new(sq_pages).ok_or(NvmeError("out of memory for a submission queue".into()))?;
        let cq = DmaBuffer::new(cq_pages).ok_or(NvmeError("out of memory for a completion queue".into()))?;
        Ok(QueuePair { qid, depth, sq, cq, sq_tail: 0, cq_cursor: CqCursor::new(depth), sq_doorbell, cq_doorbell })
    }

    /// Start over after a controller reset (CC.EN=0 and CSTS.RDY=0, so the
    /// controller no longer reads or writes the rings): zero both rings, so
    /// no entry of the old pass looks new under the restarted phase, and
    /// put the tail, head and phase back where a new queue has them.
    pub fn reset(&mut self) {
        self.sq.as_mut_slice().fill(0);
        self.cq.as_mut_slice().fill(0);
        self.sq_tail = 0;
        self.cq_cursor = CqCursor::new(self.depth);
    }

    pub fn sq_phys(&self) -> u64 {
        self.sq.phys()
    }

    pub fn cq_phys(&self) -> u64 {
        self.cq.phys()
    }

    pub fn submit(&mut self, cmd: &Command) {
        let d = cmd.to_dwords();
        let entry = (self.sq.virt() + self.sq_tail as u64 * 64) as *mut u32;
        for (i, w) in d.iter().enumerate() {
            // SAFETY: `entry` is inside our submission queue (tail < depth,
            // and the ring holds depth 64-byte entries).
            unsafe { entry.add(i).write_volatile(*w) };
        }
        self.sq_tail = (self.sq_tail + 1) % self.depth;
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.sq_doorbell.write(self.sq_tail as u32);
    }

    /// The completion entry at the head, as the controller last wrote it.
    fn head_entry(&self) -> Completion {
        let entry = (self.cq.virt() + self.cq_cursor.head as u64 * 16) as *const u32;
        let mut d = [0u32; 4];
        for (i, w) in d.iter_mut().enumerate() {
            // SAFETY: `entry` is inside our completion queue (head < depth,
            // and the ring holds depth 16-byte entries).
            *w = unsafe { entry.add(i).read_volatile() };
        }
        Completion::from_dwords(d)
    }

    /// Whether the controller posted a completion not reaped yet (looks,
    /// consumes nothing).
    pub fn pending(&self) -> bool {
        self.cq_cursor.is_new(&self.head_entry())
    }

    /// Where the completion ring is and where its head stands, for a look
    /// without the controller's lock ([`Watch`]).
    pub fn watch_point(&self) -> (u64, u32) {
        (self.cq.virt(), self.cq_cursor.head as u32 | (self.cq_cursor.phase as u32) << 16)
    }

    /// The next completion, if the controller posted one.
    pub fn reap(&mut self) -> Option<Completion> {
        let c = self.head_entry();
        if !self.cq_cursor.is_new(&c) {
            return None;
        }
        self.cq_cursor.advance();
        self.cq_doorbell.write(self.cq_cursor.head as u32);
        Some(c)
    }
}
