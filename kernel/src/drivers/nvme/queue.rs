//! One submission/completion queue pair: ring memory, tail and head
//! doorbells, phase tracking.

use super::{NvmeError, Regs};
use crate::drivers::dma::DmaBuffer;
use capos_kcore::nvme::{Command, Completion, CqCursor};

pub struct QueuePair {
    pub qid: u16,
    pub depth: u16,
    sq: DmaBuffer,
    cq: DmaBuffer,
    sq_tail: u16,
    cq_cursor: CqCursor,
    sq_doorbell: u64,
    cq_doorbell: u64,
    regs_base: u64,
}

impl QueuePair {
    pub fn new(qid: u16, depth: u16, dstrd: u32, regs: &Regs) -> Result<QueuePair, NvmeError> {
        let sq_pages = (depth as u64 * 64).div_ceil(4096);
        let cq_pages = (depth as u64 * 16).div_ceil(4096);
        let sq = DmaBuffer::new(sq_pages).ok_or(NvmeError("out of memory for a submission queue".into()))?;
        let cq = DmaBuffer::new(cq_pages).ok_or(NvmeError("out of memory for a completion queue".into()))?;
        let stride = 4u64 << dstrd;
        Ok(QueuePair {
            qid,
            depth,
            sq,
            cq,
            sq_tail: 0,
            cq_cursor: CqCursor::new(depth),
            sq_doorbell: 0x1000 + (2 * qid as u64) * stride,
            cq_doorbell: 0x1000 + (2 * qid as u64 + 1) * stride,
            regs_base: regs.0,
        })
    }

    fn regs(&self) -> Regs {
        Regs(self.regs_base)
    }

    pub fn sq_phys(&self) -> u64 {
        self.sq.phys
    }

    pub fn cq_phys(&self) -> u64 {
        self.cq.phys
    }

    pub fn submit(&mut self, cmd: &Command) {
        let d = cmd.to_dwords();
        let entry = (self.sq.virt() + self.sq_tail as u64 * 64) as *mut u32;
        for (i, w) in d.iter().enumerate() {
            // SAFETY: `entry` is inside our submission queue (tail < depth).
            unsafe { entry.add(i).write_volatile(*w) };
        }
        self.sq_tail = (self.sq_tail + 1) % self.depth;
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.regs().w32(self.sq_doorbell, self.sq_tail as u32);
    }

    /// The next completion, if the controller posted one.
    pub fn reap(&mut self) -> Option<Completion> {
        let entry = (self.cq.virt() + self.cq_cursor.head as u64 * 16) as *const u32;
        let mut d = [0u32; 4];
        for (i, w) in d.iter_mut().enumerate() {
            // SAFETY: `entry` is inside our completion queue (head < depth).
            *w = unsafe { entry.add(i).read_volatile() };
        }
        let c = Completion::from_dwords(d);
        if !self.cq_cursor.is_new(&c) {
            return None;
        }
        self.cq_cursor.advance();
        self.regs().w32(self.cq_doorbell, self.cq_cursor.head as u32);
        Some(c)
    }
}
