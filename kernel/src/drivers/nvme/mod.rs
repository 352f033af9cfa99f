//! NVMe, our own (no maintained no_std crate covers it).
//!
//! One admin queue pair and one I/O queue pair per controller, with a
//! configurable depth (default 64, capped by CAP.MQES). Completions arrive
//! by MSI-X (entry 0 admin, entry 1 I/O) or, when MSI-X is missing or
//! turned off with `nvme.msix=off`, by polling. Data moves through PRP1/PRP2
//! and PRP lists built from the buffer's own pages (kcore::nvme builds and
//! tests them); buffers that are not dword aligned are bounced. Every
//! command has a timeout, and a failed status is decoded into words.
//!
//! A wait leaves the interrupt flag as it found it: with interrupts on it
//! may halt for an MSI-X interrupt; with interrupts off (a system call) it
//! polls, with a moment of interrupts on between looks. An I/O command
//! that times out, or a completion that is not the one waited for, resets
//! the controller (CC.EN=0 until CSTS.RDY=0, which ends all DMA) and
//! brings its queues back up before the request returns its error, so the
//! queues are never one completion behind and no late DMA lands in a
//! buffer the caller has been given back. A controller that
//! cannot be brought back is marked failed (bus mastering off) and every
//! later request fails at once. Registers and doorbells are reached only
//! through a checked register window (`mm::mmio`), sized and checked
//! against BAR0 at bring-up.

mod queue;

use super::dma::{virt_to_phys, DmaBuffer};
use crate::arch::x86_64::cpu::{rdtsc, wait_for_interrupt};
use crate::arch::x86_64::trap::{interrupt_window, interrupts_enabled, set_interrupts};
use crate::mm::mmio::{MmioRegion, ReadOnly, ReadWrite, Ro32, Rw32, SplitReg64, Wo32};
use crate::mm::PAGE_SIZE;
use crate::pci::{self, config::Function, msix::Msix, Device};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_kcore::nvme::{
    build_prps, cq_doorbell, number_of_queues_command, opcode, parse_identify_namespace, queue_pairs_granted, register_window, sq_doorbell,
    status_text, Command, Completion, NamespaceInfo, Taken, Tags,
};
use super::block::SharedBlock;
use capos_storage::BlockError;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use queue::QueuePair;
use crate::sync::{classes, Lock};

pub const DEFAULT_DEPTH: u16 = 64;
const ADMIN_DEPTH: u16 = 32;
const ADMIN_TIMEOUT_NS: u64 = 5_000_000_000;
/// An I/O command's deadline by default, and the range `nvme.timeout_ms`
/// may set it in.
pub const IO_TIMEOUT_MS: u64 = 10_000;
pub const MIN_IO_TIMEOUT_MS: u64 = 10;
pub const MAX_IO_TIMEOUT_MS: u64 = 600_000;
/// How many times a command that a reset ended (another command timed
/// out, or the queue fell out of step) is submitted again before its
/// owner gets [`STATUS_ABORTED_BY_RESET`]: reads, writes and flushes may
/// all be repeated (the reset stopped the first attempt's DMA), and a
/// controller that keeps resetting still ends the request.
const RESET_RETRIES: u32 = 3;
/// Largest transfer per command (further capped by MDTS).
const MAX_TRANSFER: u64 = 128 * 1024;
const MAX_CONTROLLERS: usize = 8;
/// Queue pairs per controller: admin (0), the I/O queue (1) and, where
/// the controller grants it and MSI-X serves queue 1, the polled I/O queue
/// (2). Without the polled queue everything uses queue 1.
const QUEUE_PAIRS: u16 = 3;
/// The I/O queues a waiter may use ([`Watch`] has one ring each).
const IO_QUEUES: usize = 2;

/// Driver-specific `BlockError::Device` statuses, above every NVMe status
/// (which fits in 15 bits).
/// A completion for another command arrived: the queue was out of step
/// (the controller has been reset).
pub const STATUS_OUT_OF_STEP: u32 = 0xffff;
/// A buffer page has no physical address.
pub const STATUS_NO_TRANSLATION: u32 = 0xfffe;
/// No memory for the bounce buffer.
pub const STATUS_NO_BOUNCE: u32 = 0xfffd;
/// The controller failed and could not be reset; it takes no more requests.
pub const STATUS_CONTROLLER_FAILED: u32 = 0xfffc;
/// The controller was reset (another command timed out) while this one
/// was in flight: it was ended without completing.
pub const STATUS_ABORTED_BY_RESET: u32 = 0xfffb;

/// Interrupts per controller, and which controller a vector belongs to.
static IRQS: [AtomicU64; MAX_CONTROLLERS] = [const { AtomicU64::new(0) }; MAX_CONTROLLERS];
static VECTOR_OWNER: [AtomicU8; 256] = [const { AtomicU8::new(0xff) }; 256];

/// Each bound controller's I/O completion rings as a waiter sees them
/// without the controller's lock: where each ring is and where its head
/// stood at the last reap (`queue::posted_at`; index 0 the interrupting
/// queue, 1 the polled one, its ring 0 when there is none), and how many
/// reaps there have been (a waiter whose completion another reaped sees
/// the count move).
/// Written under the controller's lock, read by waiters spinning outside it.
/// Whatever reaps an I/O ring publishes where its head is after:
/// `Controller::reap_io`, `recover` (a reset restarts the rings) and the
/// raw `stream` (once, at its end); a stale head makes a waiter spin to
/// its deadline.
struct Watch {
    ring: [AtomicU64; IO_QUEUES],
    point: [AtomicU32; IO_QUEUES],
    reaps: AtomicU64,
}

static WATCH: [Watch; MAX_CONTROLLERS] = [const {
    Watch { ring: [const { AtomicU64::new(0) }; IO_QUEUES], point: [const { AtomicU32::new(0) }; IO_QUEUES], reaps: AtomicU64::new(0) }
}; MAX_CONTROLLERS];

impl Watch {
    /// Whether something a waiter on I/O queue `q` (an index into the
    /// rings) that last saw `reaps` reaps should look at has happened: a
    /// completion posted on its ring and not reaped, or a reap.
    #[inline(always)]
    fn moved(&self, q: usize, reaps: u64) -> bool {
        let ring = self.ring[q & 1].load(Ordering::Acquire);
        self.reaps.load(Ordering::Acquire) != reaps || (ring != 0 && queue::posted_at(ring, self.point[q & 1].load(Ordering::Acquire)))
    }
}

fn on_interrupt(vector: u8) {
    let owner = VECTOR_OWNER[vector as usize].load(Ordering::Relaxed) as usize;
    if owner < MAX_CONTROLLERS {
        IRQS[owner].fetch_add(1, Ordering::SeqCst);
    }
}

/// The controller registers the driver uses, each checked against the
/// register window once, at bring-up. (CAP is read once, before the
/// window is sized.)
struct Registers {
    vs: Ro32,
    cc: Rw32,
    csts: Ro32,
    aqa: Rw32,
    asq: SplitReg64<ReadWrite>,
    acq: SplitReg64<ReadWrite>,
}

impl Registers {
    fn new(w: &MmioRegion) -> Result<Registers, NvmeError> {
        let e = |e: crate::mm::mmio::OutOfWindow| NvmeError(format!("BAR0: {}", e));
        Ok(Registers {
            vs: w.reg(0x08).map_err(e)?,
            cc: w.reg(0x14).map_err(e)?,
            csts: w.reg(0x1c).map_err(e)?,
            aqa: w.reg(0x24).map_err(e)?,
            asq: w.split64(0x28).map_err(e)?,
            acq: w.split64(0x30).map_err(e)?,
        })
    }
}

/// Queue `qid`'s doorbells, refused when the window does not hold them.
fn doorbells(w: &MmioRegion, qid: u16, dstrd: u32) -> Result<(Wo32, Wo32), NvmeError> {
    let e = |e: crate::mm::mmio::OutOfWindow| NvmeError(format!("queue {} doorbell: {}", qid, e));
    Ok((w.reg(sq_doorbell(qid, dstrd)).map_err(e)?, w.reg(cq_doorbell(qid, dstrd)).map_err(e)?))
}

/// How a wait ended.
enum Waited {
    Completion(Completion),
    TimedOut,
    /// The turns a benchmark replay asked for ran out.
    TurnsUsed,
}

pub struct Controller {
    index: usize,
    pub address: String,
    func: Function,
    regs: Registers,
    /// CAP.TO: how long CSTS.RDY may take to follow CC.EN.
    ready_timeout_ms: u64,
    admin: QueuePair,
    /// The I/O queue: its completions interrupt when MSI-X serves it
    /// (`io_cq_interrupts`); halting waiters use it.
    io: QueuePair,
    /// The polled I/O queue (no interrupts), for waiters that spin:
    /// interrupts off (a system call) or not on the CPU the vectors
    /// target. Their completions would otherwise raise an interrupt that
    /// nobody waits for, handled wherever it lands. None without MSI-X
    /// (queue 1 is polled then) or when the controller grants one I/O
    /// queue pair.
    poll: Option<QueuePair>,
    pub msix: bool,
    pub model: String,
    pub serial: String,
    pub max_transfer: u64,
    pub depth: u16,
    next_cid: u16,
    /// The I/O commands in flight, by slot (`kcore::nvme::Tags`).
    tags: Tags,
    /// What a command ended by a reset gets ([`recover`](Self::recover)).
    abort_status: u32,
    /// One PRP list page per I/O queue slot.
    prp_lists: Vec<DmaBuffer>,
    _msix_table: Option<Msix>,
    /// The MSI-X table entry of the I/O completion queue.
    io_vector_index: u16,
    /// Whether the I/O completion queue is created with interrupts on.
    io_cq_interrupts: bool,
    /// Command timeouts in TSC ticks (a deadline is one addition).
    admin_timeout_ticks: u64,
    io_timeout_ticks: u64,
    /// Resets after a timeout or an out-of-step completion.
    resets: u64,
    /// The controller could not be reset: every request fails at once.
    failed: bool,
    /// Poll iterations that found no completion (polled mode, or any wait
    /// with interrupts off), for the benchmark's spin accounting.
    polls: u64,
    pub namespaces: Vec<Namespace>,
}

#[derive(Debug)]
pub struct NvmeError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, NvmeError> {
    Err(NvmeError(s.into()))
}

impl Controller {
    /// Wait until CSTS.RDY is `ready`, for at most CAP.TO. A fatal status
    /// (CSTS.CFS) is an error while waiting for ready; while waiting for
    /// not-ready (a reset, which is how a fatal status is cleared) it is not.
    fn wait_ready(&self, ready: bool) -> Result<(), NvmeError> {
        let start = rdtsc();
        let limit = crate::time::tsc_ticks(self.ready_timeout_ms.saturating_mul(1_000_000));
        loop {
            let csts = self.regs.csts.read();
            if ready && csts & 2 != 0 {
                return err(format!("controller fatal status (CSTS={:#x})", csts));
            }
            if (csts & 1 != 0) == ready {
                return Ok(());
            }
            if rdtsc().wrapping_sub(start) > limit {
                return err(format!("CSTS.RDY did not become {} within {} ms (CSTS={:#x})", ready as u8, self.ready_timeout_ms, csts));
            }
            interrupt_window();
        }
    }

    /// Point the controller at the admin queue and enable it: 64-byte SQ
    /// entries, 16-byte CQ entries, 4 KiB pages, NVM command set.
    fn enable(&mut self) -> Result<(), NvmeError> {
        let ad = self.admin.depth as u32 - 1;
        self.regs.aqa.write((ad << 16) | ad);
        self.regs.asq.write(self.admin.sq_phys());
        self.regs.acq.write(self.admin.cq_phys());
        self.regs.cc.write((4 << 20) | (6 << 16) | 1);
        self.wait_ready(true)
    }

    /// Create the I/O completion queues (physically contiguous; queue 1's
    /// interrupts on when MSI-X serves it, the polled queue's off) and the
    /// submission queue bound to each.
    fn create_io_queues(&mut self) -> Result<(), NvmeError> {
        let iv = if self.io_cq_interrupts { (self.io_vector_index as u32) << 16 | 1 << 1 } else { 0 };
        let (io, poll) = (Self::create_commands(&self.io, iv), self.poll.as_ref().map(|q| Self::create_commands(q, 0)));
        for cmd in io.into_iter().chain(poll.into_iter().flatten()) {
            self.admin_command(cmd)?;
        }
        Ok(())
    }

    /// Create I/O Completion Queue (interrupt bits `iv`) and Create I/O
    /// Submission Queue for queue pair `q`.
    fn create_commands(q: &QueuePair, iv: u32) -> [Command; 2] {
        let qd = (q.depth as u32 - 1) << 16;
        let qid = q.qid as u32;
        [
            Command { opcode: opcode::ADMIN_CREATE_CQ, prp1: q.cq_phys(), cdw10: qd | qid, cdw11: iv | 1, ..Command::default() },
            Command { opcode: opcode::ADMIN_CREATE_SQ, prp1: q.sq_phys(), cdw10: qd | qid, cdw11: (qid << 16) | 1, ..Command::default() },
        ]
    }

    /// Reset the controller and bring it back to where bring-up left it.
    /// CC.EN=0 and then CSTS.RDY=0 mean every outstanding command is
    /// aborted and the controller does no more DMA; only then are the rings
    /// emptied and reused.
    fn reset(&mut self) -> Result<(), NvmeError> {
        self.regs.cc.write(0);
        self.wait_ready(false)?;
        self.admin.reset();
        self.io.reset();
        if let Some(q) = self.poll.as_mut() {
            q.reset();
        }
        self.enable()?;
        self.create_io_queues()
    }

    /// After a command timed out or the queue fell out of step: reset, or,
    /// if that fails, stop the controller's DMA for good and fail every
    /// later request. Returns only once the controller can no longer write
    /// into the buffers of the abandoned commands.
    /// Every I/O command in flight ends: its owner gets `abort_status`
    /// (`kcore::nvme::Tags` rule 3).
    #[cold]
    #[inline(never)]
    fn recover(&mut self, why: &str, abort_status: u32) {
        self.resets += 1;
        let ended = self.tags.abort_all();
        self.abort_status = abort_status;
        if ended > 1 {
            log::warn!("nvme{}: the reset ends {} commands in flight", self.index, ended);
        }
        let r = self.reset();
        self.publish();
        match r {
            Ok(()) => log::warn!("nvme{}: {}; controller reset", self.index, why),
            Err(e) => {
                self.failed = true;
                self.regs.cc.write(0);
                pci::disable_bus_master(&self.func);
                log::error!(
                    "nvme{}: {}; controller reset failed: {}; bus mastering turned off, every further request fails",
                    self.index, why, e.0
                );
            }
        }
    }

    fn cid(&mut self) -> u16 {
        self.next_cid = self.next_cid.wrapping_add(1);
        if self.next_cid == 0xffff {
            self.next_cid = 1;
        }
        self.next_cid
    }

    /// Wait for the next completion on `admin`/`io`, at most `timeout_ticks`
    /// TSC ticks (None: timed out). Leaves the interrupt flag as it found it.
    #[inline(always)]
    fn wait(&mut self, admin: bool, timeout_ticks: u64) -> Option<Completion> {
        match self.wait_turns(admin, timeout_ticks, u64::MAX) {
            Waited::Completion(c) => Some(c),
            Waited::TimedOut | Waited::TurnsUsed => None,
        }
    }

    /// [`wait`] for at most `turns` turns of its loop. Not inlined, so a
    /// benchmark's replay of the poll loop ([`replay_polls`]) executes
    /// exactly the instructions a real wait spins in.
    ///
    /// With interrupts on and MSI-X in use it halts between looks (an idle
    /// wait costs nothing). With interrupts off it polls, letting pending
    /// interrupts in between looks (`trap::interrupt_window`: the wait is
    /// not one long interrupts-off span), and returns with them off.
    #[inline(never)]
    fn wait_turns(&mut self, admin: bool, timeout_ticks: u64, turns: u64) -> Waited {
        let irqs_on = interrupts_enabled();
        let deadline = rdtsc().saturating_add(timeout_ticks);
        let mut left = turns;
        if !(irqs_on && self.msix) {
            // A busy wait: how many turns it takes depends on how fast the
            // host finishes the emulated I/O, not on this code, so the
            // instruction counter leaves it out of a benchmark region (as
            // it leaves out a halted CPU); the look that finds the
            // completion below is counted.
            capos_abi::icount::device_wait_begin();
            let q = if admin { &self.admin } else { &self.io };
            while left > 0 && !q.pending() && rdtsc() <= deadline {
                left -= 1;
                self.polls += 1;
                interrupt_window();
            }
            capos_abi::icount::device_wait_end();
        }
        while left > 0 {
            left -= 1;
            if let Some(r) = self.poll_once(admin, deadline, irqs_on) {
                return r;
            }
        }
        Waited::TurnsUsed
    }

    /// One turn of [`wait`]'s loop: a completion, a timeout, or (None)
    /// nothing yet, after halting (MSI-X with interrupts on) or a spin hint.
    #[inline(always)]
    fn poll_once(&mut self, admin: bool, deadline: u64, irqs_on: bool) -> Option<Waited> {
        // Halt only with interrupts on (the caller's state, restored by
        // the halt's STI) and MSI-X to end it; look with them off, so an
        // interrupt between the look and the halt still wakes us.
        let halt = irqs_on && self.msix;
        if halt {
            set_interrupts(false);
        }
        let q = if admin { &mut self.admin } else { &mut self.io };
        let r = match q.reap() {
            Some(c) => Some(Waited::Completion(c)),
            None if rdtsc() > deadline => Some(Waited::TimedOut),
            None => None,
        };
        if r.is_some() {
            if halt {
                set_interrupts(true);
            }
            return r;
        }
        if halt {
            // Atomic STI;HLT. The 100 Hz timer bounds the wait.
            wait_for_interrupt();
        } else {
            self.polls += 1;
            core::hint::spin_loop();
        }
        None
    }

    /// Benchmarks: switch I/O completions between MSI-X (`false`) and
    /// polling with the I/O vector masked (`true`). Returns whether the
    /// controller now works that way (without MSI-X it can only poll).
    pub fn set_polled(&mut self, polled: bool) -> bool {
        let Some(m) = self._msix_table.as_ref() else { return polled };
        if m.set_masked(self.io_vector_index, polled).is_err() {
            return !self.msix == polled;
        }
        self.msix = !polled;
        true
    }

    /// Whether the controller has the polled I/O queue (spinning waiters'
    /// commands raise no interrupt).
    pub fn has_polled_queue(&self) -> bool {
        self.poll.is_some()
    }

    /// Poll iterations that found nothing, so far.
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// Controller resets after timeouts or out-of-step completions.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Whether the controller failed (a reset did not bring it back).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The I/O command timeout in TSC ticks; self-tests shorten it to
    /// provoke a timeout and put it back.
    pub fn io_timeout_ticks(&self) -> u64 {
        self.io_timeout_ticks
    }

    pub fn set_io_timeout_ticks(&mut self, ticks: u64) {
        self.io_timeout_ticks = ticks;
    }

    /// Benchmarks: run `n` turns of the polling loop on the idle I/O queue,
    /// the same code a polled wait spins in, to be subtracted from a
    /// polled measurement. Stops early (false) if a completion shows up.
    pub fn replay_polls(&mut self, n: u64) -> bool {
        let w = &WATCH[self.index];
        // Bracketed as a real wait's spin is ([`io_command`]).
        capos_abi::icount::device_wait_begin();
        let spun = spin_until_moved(w, self.queue_for(false), w.reaps.load(Ordering::Acquire), rdtsc().saturating_add(self.io_timeout_ticks), n);
        capos_abi::icount::device_wait_end();
        n == 0 || spun == n
    }

    /// One admin command, waited for. No reset on failure: admin commands
    /// run at bring-up (a failure leaves the controller unbound) and inside
    /// a reset (a failure fails the controller).
    fn admin_command(&mut self, mut cmd: Command) -> Result<Completion, NvmeError> {
        cmd.cid = self.cid();
        self.admin.submit(&cmd);
        let c = match self.wait(true, self.admin_timeout_ticks) {
            Some(c) => c,
            None => return err(format!("admin opcode {:#x}: {}", cmd.opcode, BlockError::Timeout)),
        };
        if c.cid != cmd.cid {
            return err(format!("admin completion for cid {} while waiting for {}", c.cid, cmd.cid));
        }
        if !c.ok() {
            return err(format!("admin opcode {:#x} failed: {} (status {:#x})", cmd.opcode, status_text(c.status), c.status));
        }
        Ok(c)
    }

    fn identify(&mut self, cns: u32, nsid: u32, page: &DmaBuffer) -> Result<(), NvmeError> {
        let cmd = Command { opcode: opcode::ADMIN_IDENTIFY, nsid, prp1: page.phys(), cdw10: cns, ..Command::default() };
        self.admin_command(cmd).map(|_| ())
    }

    /// Publish the I/O rings' heads for waiters outside the lock ([`Watch`]).
    fn publish(&self) {
        for q in 0..IO_QUEUES {
            self.publish_queue(q);
        }
    }

    /// Publish I/O queue `q`'s ring head, if the controller has that queue.
    #[inline(always)]
    fn publish_queue(&self, q: usize) {
        let pair = match (q, self.poll.as_ref()) {
            (1, Some(p)) => p,
            (1, None) => return,
            _ => &self.io,
        };
        let (ring, point) = pair.watch_point();
        let w = &WATCH[self.index];
        w.ring[q & 1].store(ring, Ordering::Relaxed);
        w.point[q & 1].store(point, Ordering::Release);
    }

    /// The I/O queue a waiter uses ([`Watch`] index): the polled one when
    /// there is one and the waiter does not halt for an interrupt.
    #[inline(always)]
    fn queue_for(&self, halt: bool) -> usize {
        (!halt && self.poll.is_some()) as usize
    }

    /// Take every I/O completion the controller posted on I/O queue `q`
    /// into its command's slot (the slots are the controller's, so a
    /// command id names one command whichever queue it went to). Each
    /// queue is reaped by its own waiters: every command's owner looks at
    /// the queue it submitted to until its completion is in its slot. A
    /// completion no command waits for means the queue is out of step: the
    /// controller is reset, which ends every command in flight.
    #[inline(always)]
    fn reap_io(&mut self, q: usize) {
        let Controller { io, poll, tags, index, .. } = self;
        let pair = match (q, poll.as_mut()) {
            (1, Some(p)) => p,
            _ => io,
        };
        let mut any = false;
        let mut stray = None;
        while let Some(c) = pair.reap() {
            any = true;
            if let Err(s) = tags.complete(c) {
                stray = Some(s.cid);
                break;
            }
        }
        if any {
            // publish_queue's stores, with the ring already in hand:
            // calling it (it picks the ring again) cost 9 to 10
            // instructions a read in bench-blk.
            let (ring, point) = pair.watch_point();
            let w = &WATCH[*index];
            w.ring[q & 1].store(ring, Ordering::Relaxed);
            w.point[q & 1].store(point, Ordering::Release);
            w.reaps.fetch_add(1, Ordering::Release);
        }
        if let Some(cid) = stray {
            self.recover(&format!("completion for cid {} that no command waits for", cid), STATUS_OUT_OF_STEP);
        }
    }

    /// I/O queue `q` ([`Watch`] index; [`queue_for`](Self::queue_for)
    /// names the polled one only when there is one).
    #[inline(always)]
    fn io_queue(&mut self, q: usize) -> &mut QueuePair {
        match (q, self.poll.as_mut()) {
            (1, Some(p)) => p,
            _ => &mut self.io,
        }
    }

    /// Build a read/write command for `len` bytes at `va` (dword aligned,
    /// whole blocks, at most max_transfer), using PRP list slot `slot`.
    fn build_rw(&mut self, ns: &Namespace, write: bool, lba: u64, va: u64, len: usize, slot: usize, cid: u16) -> Result<Command, BlockError> {
        let blocks = len.checked_div(ns.info.block_size as usize).filter(|b| *b > 0).ok_or(BlockError::BadLength)?;
        let first = virt_to_phys(va).ok_or(BlockError::Device { status: STATUS_NO_TRANSLATION })?;
        // The pages after the first, on the stack: no allocation per request
        // (len <= max_transfer <= MAX_TRANSFER, plus one for an unaligned start).
        let mut rest = [0u64; (MAX_TRANSFER / PAGE_SIZE) as usize + 1];
        let mut pages = 0;
        let end = va.checked_add(len as u64).ok_or(BlockError::BadLength)?;
        let mut page_va = (va & !(PAGE_SIZE - 1)).saturating_add(PAGE_SIZE);
        while page_va < end {
            let entry = rest.get_mut(pages).ok_or(BlockError::BadLength)?;
            *entry = virt_to_phys(page_va).ok_or(BlockError::Device { status: STATUS_NO_TRANSLATION })?;
            pages += 1;
            page_va = page_va.saturating_add(PAGE_SIZE);
        }
        let list = self.prp_lists.get_mut(slot).ok_or(BlockError::BadLength)?;
        let prps = build_prps(first, rest.get(..pages).ok_or(BlockError::BadLength)?, len as u64, list.phys()).map_err(|_| BlockError::BadLength)?;
        // build_prps keeps a list within one page (512 entries).
        for (e, out) in prps.list.iter().zip(list.as_mut_slice().chunks_exact_mut(8)) {
            out.copy_from_slice(&e.to_le_bytes());
        }
        let mut cmd = Command::rw(write, ns.nsid, lba, blocks as u32, &prps);
        cmd.cid = cid;
        Ok(cmd)
    }


    /// Interrupts counted for this controller so far.
    pub fn interrupts(&self) -> u64 {
        IRQS[self.index].load(Ordering::SeqCst)
    }

    /// Prove MSI-X delivery: submit Identify Controller and wait for the
    /// interrupt counter to move before looking at the completion queue.
    pub fn prove_msix(&mut self) -> Result<String, String> {
        if !self.msix {
            return Err(String::from("MSI-X is not in use on this controller"));
        }
        if !interrupts_enabled() {
            return Err(String::from("interrupts are off on this CPU; no MSI-X interrupt can arrive"));
        }
        let page = DmaBuffer::new(1).ok_or("out of memory")?;
        let before = self.interrupts();
        let cmd = Command { opcode: opcode::ADMIN_IDENTIFY, cid: self.cid(), prp1: page.phys(), cdw10: 1, ..Command::default() };
        self.admin.submit(&cmd);
        let start = crate::time::uptime_ns();
        while self.interrupts() == before {
            if crate::time::uptime_ns() - start > 2_000_000_000 {
                return Err(String::from("no MSI-X interrupt within 2 s of ringing the admin doorbell"));
            }
            core::hint::spin_loop();
        }
        let us = (crate::time::uptime_ns() - start) / 1000;
        let c = self.admin.reap().ok_or("interrupt arrived but no completion was posted")?;
        if c.cid != cmd.cid || !c.ok() {
            return Err(format!("completion cid {} status {:#x} ({})", c.cid, c.status, status_text(c.status)));
        }
        let model = String::from_utf8_lossy(&page.as_slice()[24..64]).trim().replace('\0', "");
        Ok(format!("MSI-X delivered {} interrupt(s) {} us after the doorbell; Identify ok: model '{}'", self.interrupts() - before, us, model))
    }
}

/// A controller that is let go of (bring-up failed part way) is stopped
/// before its rings and PRP list pages are freed: disabled, and its bus
/// mastering turned off, so no late completion or data lands in memory the
/// kernel hands out again. (Bound controllers are never dropped.)
impl Drop for Controller {
    fn drop(&mut self) {
        self.regs.cc.write(0);
        pci::disable_bus_master(&self.func);
    }
}

#[derive(Clone, Copy)]
pub struct Namespace {
    pub nsid: u32,
    pub info: NamespaceInfo,
}

/// One turn after another of a waiter's spin outside the controller's
/// lock, until [`Watch`] moves, `deadline` passes or `turns` are used;
/// returns the turns spun. Each turn is a spin hint and a moment of
/// interrupts on. Not inlined: a benchmark's replay
/// ([`Controller::replay_polls`]) runs exactly these instructions.
#[inline(never)]
fn spin_until_moved(w: &Watch, q: usize, reaps: u64, deadline: u64, turns: u64) -> u64 {
    let mut n = 0;
    while n < turns && !w.moved(q, reaps) && rdtsc() <= deadline {
        n += 1;
        core::hint::spin_loop();
        interrupt_window();
    }
    n
}

/// [`spin_until_moved`] with no turn limit, left out of the instruction
/// counter (how long it spins is host time); returns the turns spun.
fn spin_bracketed(w: &Watch, q: usize, reaps: u64, deadline: u64) -> u64 {
    capos_abi::icount::device_wait_begin();
    let spun = spin_until_moved(w, q, reaps, deadline, u64::MAX);
    capos_abi::icount::device_wait_end();
    spun
}

/// One I/O command of controller `index`, waited for without holding the
/// controller while the device works, so requests of other namespaces
/// (other mounts) and of other CPUs go on beside it: claim a slot and
/// submit under the lock; then look under it again, taking whatever
/// completions have arrived (anyone's, into their slots), until this
/// command's is in its slot. Between looks it halts for an interrupt
/// (interrupts on, MSI-X, on the CPU the vectors target: the command goes
/// to the interrupting queue) or spins outside the lock until a
/// completion is posted or reaped (the command goes to the polled queue
/// where there is one, so it raises no interrupt); the spin
/// leaves the interrupt flag as it found it and is left out of the
/// instruction counter (how long the device takes is host time). A
/// command that misses its deadline resets the controller before the
/// error returns, ending every command in flight (their owners get
/// [`STATUS_ABORTED_BY_RESET`]), so no late DMA lands in a buffer given
/// back; a command ended so is submitted again, up to [`RESET_RETRIES`]
/// times, so one request's timeout does not fail the others beside it.
/// `build` makes the command for a slot and id.
#[inline(always)]
fn io_command(ctrl: &Lock<Controller>, index: usize, what: &str, build: impl Fn(&mut Controller, usize, u16) -> Result<Command, BlockError>) -> Result<Completion, BlockError> {
    let w = &WATCH[index];
    let irqs_on = interrupts_enabled();
    let mut retries = 0;
    'attempt: loop {
        let (slot, cid, deadline, halt, q, mut reaps) = {
            let mut full_since = None;
            loop {
                let mut c = ctrl.lock();
                if c.failed {
                    return Err(BlockError::Device { status: STATUS_CONTROLLER_FAILED });
                }
                if let Some((slot, cid)) = c.tags.claim() {
                    match build(&mut c, slot, cid) {
                        Ok(cmd) => {
                            let halt = irqs_on && c.msix && crate::arch::x86_64::percpu::index() == 0;
                            if halt {
                                // Off before the doorbell: the completion's
                                // interrupt (QEMU may raise it at once) stays
                                // pending until the first halt, which it ends.
                                set_interrupts(false);
                            }
                            let q = c.queue_for(halt);
                            c.io_queue(q).submit(&cmd);
                            break (slot, cid, rdtsc().saturating_add(c.io_timeout_ticks), halt, q, w.reaps.load(Ordering::Acquire));
                        }
                        Err(e) => {
                            c.tags.unclaim(slot);
                            return Err(e);
                        }
                    }
                }
                // Every slot is in flight: wait for a reap (each owner's
                // deadline bounds its slot's time; this one bounds ours).
                let reaps = w.reaps.load(Ordering::Acquire);
                let deadline = *full_since.get_or_insert_with(|| rdtsc().saturating_add(c.io_timeout_ticks));
                let q = c.queue_for(false);
                drop(c);
                if rdtsc() > deadline {
                    return Err(BlockError::Timeout);
                }
                spin_bracketed(w, q, reaps, deadline);
            }
        };
        // Wait first: a command just submitted is not complete yet.
        let mut spun;
        loop {
            if halt {
                // Atomic STI;HLT. The 100 Hz timer bounds the wait.
                wait_for_interrupt();
                // Look with interrupts off, so one arriving between the look
                // and the next halt still ends that halt.
                set_interrupts(false);
                spun = 0;
            } else {
                spun = spin_bracketed(w, q, reaps, deadline);
            }
            let mut c = ctrl.lock();
            c.polls += spun;
            c.reap_io(q);
            let mut again = None;
            let taken = match c.tags.take(slot) {
                Some(Taken::Done(done)) => Some(Ok(done)),
                Some(Taken::Aborted) if retries < RESET_RETRIES && !c.failed => {
                    again = Some(c.abort_status);
                    None
                }
                Some(Taken::Aborted) => Some(Err(BlockError::Device { status: c.abort_status })),
                None if rdtsc() > deadline => {
                    let ms = crate::time::tsc_ticks_to_ms(c.io_timeout_ticks);
                    c.recover(&format!("command cid {} ({}) timed out after {} ms", cid, what, ms), STATUS_ABORTED_BY_RESET);
                    let _ = c.tags.take(slot);
                    Some(Err(BlockError::Timeout))
                }
                None => None,
            };
            // Read under the lock: a reap after this one moves it.
            reaps = w.reaps.load(Ordering::Acquire);
            drop(c);
            if let Some(status) = again {
                if halt {
                    set_interrupts(true);
                }
                retries += 1;
                submitted_again(index, what, status, retries);
                continue 'attempt;
            }
            if let Some(r) = taken {
                if halt {
                    set_interrupts(true);
                }
                return r;
            }
        }
    }
}

/// [`io_command`]'s note that a reset ended its command, submitted again.
#[cold]
#[inline(never)]
fn submitted_again(index: usize, what: &str, status: u32, retries: u32) {
    log::warn!("nvme{}: a {} ended by a controller reset (status {:#x}); submitted again ({} of {})", index, what, status, retries, RESET_RETRIES);
}

/// One namespace as a block device. Requests take the controller's lock
/// only to submit and to look for completions ([`io_command`]): two
/// mounts of one controller's namespaces, or of one namespace's
/// partitions, each wait for their own commands.
pub struct NvmeDisk {
    pub ctrl: Arc<Lock<Controller>>,
    pub ns: Namespace,
    /// The controller's index (its [`Watch`]) and largest transfer, fixed
    /// at bring-up.
    index: usize,
    max_transfer: u64,
}

impl NvmeDisk {
    /// Read or write whole blocks with one command per `max_transfer`
    /// bytes, each waited for.
    #[inline(always)]
    fn io(&self, write: bool, lba: u64, va: u64, len: usize) -> Result<(), BlockError> {
        // One command when it fits (the common case: no chunk arithmetic).
        if len as u64 <= self.max_transfer {
            return self.one_command(write, lba, va, len);
        }
        let bs = self.ns.info.block_size as usize;
        let chunk = (self.max_transfer as usize / bs).max(1) * bs;
        let mut done = 0;
        while done < len {
            let n = chunk.min(len - done);
            self.one_command(write, lba + (done / bs) as u64, va + done as u64, n)?;
            done += n;
        }
        Ok(())
    }

    #[inline(always)]
    fn one_command(&self, write: bool, lba: u64, va: u64, len: usize) -> Result<(), BlockError> {
        let ns = self.ns;
        let what = if write { "write" } else { "read" };
        let c = io_command(&self.ctrl, self.index, what, |c, slot, cid| c.build_rw(&ns, write, lba, va, len, slot, cid))?;
        if !c.ok() {
            log::warn!("nvme{}n{}: {} at LBA {} failed: {} (status {:#x})", self.index, ns.nsid, what, lba, status_text(c.status), c.status);
            return Err(BlockError::Device { status: c.status as u32 });
        }
        Ok(())
    }

    /// A bounce buffer for an unaligned request's piece of `len` bytes,
    /// its own (requests run side by side); no memory for it is an error
    /// for this request, not a panic.
    fn bounce(len: usize) -> Result<DmaBuffer, BlockError> {
        DmaBuffer::new((len as u64).div_ceil(PAGE_SIZE)).ok_or_else(|| {
            log::warn!("nvme: no memory for a bounce buffer");
            BlockError::Device { status: STATUS_NO_BOUNCE }
        })
    }
}

impl SharedBlock for NvmeDisk {
    fn block_size(&self) -> usize {
        self.ns.info.block_size as usize
    }

    fn block_count(&self) -> u64 {
        self.ns.info.blocks
    }

    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(self.block_size(), self.block_count(), lba, buf.len())?;
        if buf.as_ptr() as u64 % 4 == 0 {
            return self.io(false, lba, buf.as_mut_ptr() as u64, buf.len());
        }
        let bs = self.block_size();
        let step = (MAX_TRANSFER as usize / bs).max(1) * bs;
        let mut bounce = Self::bounce(step.min(buf.len()))?;
        for (i, chunk) in buf.chunks_mut(step).enumerate() {
            self.io(false, lba + (i * step / bs) as u64, bounce.virt(), chunk.len())?;
            chunk.copy_from_slice(bounce.as_mut_slice().get(..chunk.len()).ok_or(BlockError::BadLength)?);
        }
        Ok(())
    }

    fn write_blocks(&self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(self.block_size(), self.block_count(), lba, buf.len())?;
        if buf.as_ptr() as u64 % 4 == 0 {
            return self.io(true, lba, buf.as_ptr() as u64, buf.len());
        }
        let bs = self.block_size();
        let step = (MAX_TRANSFER as usize / bs).max(1) * bs;
        let mut bounce = Self::bounce(step.min(buf.len()))?;
        for (i, chunk) in buf.chunks(step).enumerate() {
            bounce.as_mut_slice().get_mut(..chunk.len()).ok_or(BlockError::BadLength)?.copy_from_slice(chunk);
            self.io(true, lba + (i * step / bs) as u64, bounce.virt(), chunk.len())?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), BlockError> {
        let nsid = self.ns.nsid;
        let c = io_command(&self.ctrl, self.index, "flush", |_, _, cid| Ok(Command { opcode: opcode::IO_FLUSH, nsid, cid, ..Command::default() }))?;
        if !c.ok() {
            return Err(BlockError::Device { status: c.status as u32 });
        }
        Ok(())
    }
}

static CONTROLLERS: Lock<Vec<Arc<Lock<Controller>>>> = Lock::new(&classes::NVME_CONTROLLERS, Vec::new());

pub fn controllers() -> Vec<Arc<Lock<Controller>>> {
    CONTROLLERS.lock().clone()
}

fn init_controller(index: usize, dev: &Device, depth: u16, use_msix: bool, io_timeout_ms: u64) -> Result<(Controller, Vec<Namespace>), NvmeError> {
    let bar = dev.bar(0).ok_or(NvmeError("no BAR0".into()))?;
    let map_err = |e: pci::BarMapError| NvmeError(format!("mapping BAR0 ({:#x} bytes): {:?}", bar.size, e));
    // CAP first, from the register page; its doorbell stride says how much
    // of the BAR the registers and doorbells need, which must fit in it.
    let head = pci::map_bar_mmio(dev, 0, 0, bar.size.min(0x1000)).map_err(map_err)?;
    let cap = head.split64::<ReadOnly>(0).map_err(|e| NvmeError(format!("BAR0 too small for CAP: {}", e)))?.read();
    let dstrd = ((cap >> 32) & 0xf) as u32;
    // Room for the polled queue's doorbells too, if BAR0 has it.
    let (window_len, pairs) = match register_window(bar.size, dstrd, QUEUE_PAIRS) {
        Ok(len) => (len, QUEUE_PAIRS),
        Err(_) => (register_window(bar.size, dstrd, QUEUE_PAIRS - 1).map_err(|e| NvmeError(format!("{}", e)))?, QUEUE_PAIRS - 1),
    };
    let window = pci::map_bar_mmio(dev, 0, 0, window_len).map_err(map_err)?;
    let regs = Registers::new(&window)?;
    let (asq_db, acq_db) = doorbells(&window, 0, dstrd)?;
    let (iosq_db, iocq_db) = doorbells(&window, 1, dstrd)?;
    let poll_doorbells = if pairs == QUEUE_PAIRS { Some(doorbells(&window, 2, dstrd)?) } else { None };
    pci::enable_bus_master(dev);
    let ready_timeout_ms = ((cap >> 24) & 0xff).max(1) * 500;
    let mqes = (cap & 0xffff) as u16 + 1;
    let mpsmin = 1u64 << (12 + ((cap >> 48) & 0xf));
    if mpsmin > PAGE_SIZE {
        return err(format!("minimum page size {} is larger than 4 KiB", mpsmin));
    }
    let vs = regs.vs.read();
    regs.cc.write(0); // CC.EN = 0: reset
    let io_depth = depth.min(mqes).max(2);
    // Identify pages, made before the controller so that on an error they
    // are freed after it (its Drop stops the device first).
    let page = DmaBuffer::new(1).ok_or(NvmeError("out of memory".into()))?;
    let list = DmaBuffer::new(1).ok_or(NvmeError("out of memory".into()))?;
    let mut c = Controller {
        index,
        address: dev.address(),
        func: dev.func.clone(),
        admin: QueuePair::new(0, ADMIN_DEPTH.min(mqes), asq_db, acq_db)?,
        io: QueuePair::new(1, io_depth, iosq_db, iocq_db)?,
        poll: None,
        regs,
        ready_timeout_ms,
        msix: false,
        model: String::new(),
        serial: String::new(),
        max_transfer: MAX_TRANSFER,
        depth: io_depth,
        next_cid: 0,
        tags: Tags::new(io_depth),
        abort_status: STATUS_ABORTED_BY_RESET,
        prp_lists: Vec::new(),
        _msix_table: None,
        io_vector_index: 0,
        io_cq_interrupts: false,
        admin_timeout_ticks: crate::time::tsc_ticks(ADMIN_TIMEOUT_NS),
        io_timeout_ticks: crate::time::tsc_ticks(io_timeout_ms.saturating_mul(1_000_000)),
        resets: 0,
        failed: false,
        polls: 0,
        namespaces: Vec::new(),
    };
    c.wait_ready(false)?;
    for _ in 0..c.depth {
        c.prp_lists.push(DmaBuffer::new(1).ok_or(NvmeError("out of memory".into()))?);
    }

    // Interrupts: MSI-X entry 0 for admin, 1 (or 0 if the table is tiny) for I/O.
    if use_msix {
        match Msix::new(dev) {
            Ok(m) => {
                let mut ok = true;
                for entry in 0..m.info.table_size.min(2) {
                    match crate::irq::alloc_vector() {
                        Ok(v) => {
                            VECTOR_OWNER[v as usize].store(index as u8, Ordering::Relaxed);
                            crate::arch::x86_64::trap::set_irq_handler(v, Some(on_interrupt));
                            if m.program(entry, crate::irq::lapic::id(), v).is_err() {
                                ok = false;
                            }
                        }
                        Err(_) => ok = false,
                    }
                }
                if ok {
                    m.set_function_mask(dev, false);
                    c.io_vector_index = if m.info.table_size >= 2 { 1 } else { 0 };
                    c.io_cq_interrupts = true;
                    c.msix = true;
                    c._msix_table = Some(m);
                } else {
                    log::warn!("nvme {}: MSI-X setup failed; polling", c.address);
                }
            }
            Err(e) => log::info!("nvme {}: no MSI-X ({:?}); polling for completions", c.address, e),
        }
    }

    c.enable()?;

    c.identify(1, 0, &page)?;
    let id = page.as_slice();
    let text = |r: core::ops::Range<usize>| String::from_utf8_lossy(&id[r]).trim().replace('\0', "");
    c.model = text(24..64);
    c.serial = text(4..24);
    let mdts = id[77];
    if mdts != 0 {
        c.max_transfer = c.max_transfer.min(mpsmin << mdts);
    }
    let nn = u32::from_le_bytes([id[516], id[517], id[518], id[519]]);

    // A second, polled I/O queue where MSI-X serves the first (without
    // MSI-X the first is polled already) and the controller grants two
    // (Set Features, Number of Queues: asked once, before any I/O queue
    // exists; the grant holds across resets).
    if let (true, Some((sq_db, cq_db))) = (c.msix, poll_doorbells) {
        match c.admin_command(number_of_queues_command(2)) {
            Ok(done) if queue_pairs_granted(done.result) >= 2 => c.poll = Some(QueuePair::new(2, io_depth, sq_db, cq_db)?),
            Ok(done) => log::info!("nvme {}: {} I/O queue pair granted; spinning waiters share the interrupting queue", c.address, queue_pairs_granted(done.result)),
            Err(e) => log::info!("nvme {}: Number of Queues refused ({}); spinning waiters share the interrupting queue", c.address, e.0),
        }
    }
    c.create_io_queues()?;

    // Active namespaces (CNS 2), at most 8 used; the rest are logged.
    c.identify(2, 0, &list)?;
    let ids: Vec<u32> = list.as_slice().chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).take_while(|n| *n != 0).collect();
    let mut namespaces = Vec::new();
    for nsid in ids.iter().copied() {
        if namespaces.len() == 8 {
            log::info!("nvme {}: namespace {} not used (at most 8 per controller)", c.address, nsid);
            continue;
        }
        c.identify(0, nsid, &page)?;
        match parse_identify_namespace(page.as_slice()) {
            Some(info) => namespaces.push(Namespace { nsid, info }),
            None => log::warn!("nvme {}: namespace {} has an unusable format; skipped", c.address, nsid),
        }
    }
    log::info!(
        "nvme {}: '{}' serial '{}' NVMe {}.{}, {} namespace(s) of {}, queue depth {}, max transfer {} KiB, {}",
        c.address, c.model, c.serial, vs >> 16, (vs >> 8) & 0xff, namespaces.len(), nn, c.depth, c.max_transfer / 1024,
        match (c.msix, c.poll.is_some()) {
            (true, true) => "MSI-X completions (and a polled I/O queue for spinning waits)",
            (true, false) => "MSI-X completions",
            (false, _) => "polled completions",
        }
    );
    Ok((c, namespaces))
}

/// Bind every NVMe controller (class 01:08:02).
pub fn probe(depth: u16, use_msix: bool, io_timeout_ms: u64) {
    let Some(p) = pci::get() else { return };
    for dev in p.devices.iter().filter(|d| d.class == 0x01 && d.subclass == 0x08 && d.prog_if == 0x02) {
        let index = CONTROLLERS.lock().len();
        if index >= MAX_CONTROLLERS {
            log::warn!("nvme {}: more than {} controllers; ignored", dev.address(), MAX_CONTROLLERS);
            continue;
        }
        match init_controller(index, dev, depth, use_msix, io_timeout_ms) {
            Ok((mut c, namespaces)) => {
                c.namespaces = namespaces.clone();
                c.publish();
                super::claim(&dev.func);
                let ctrl = Arc::new(Lock::new(&classes::NVME_CONTROLLER, c));
                CONTROLLERS.lock().push(ctrl.clone());
                for ns in namespaces {
                    let name = format!("nvme{}n{}", index, ns.nsid);
                    let detail = {
                        let c = ctrl.lock();
                        format!("'{}' at {}, {} blocks of {} bytes ({} MiB), {}", c.model, c.address, ns.info.blocks, ns.info.block_size,
                            ns.info.blocks * ns.info.block_size as u64 >> 20, if c.msix { "MSI-X" } else { "polling" })
                    };
                    let max_transfer = ctrl.lock().max_transfer;
                    super::block::register(name, "nvme", detail, Arc::new(NvmeDisk { ctrl: ctrl.clone(), ns, index, max_transfer }));
                }
            }
            Err(e) => log::error!("nvme {}: not bound: {}", dev.address(), e.0),
        }
    }
}

/// For benchmarks: queue up to `depth` reads or writes of `chunk` bytes,
/// covering `[lba, lba + total)` of namespace 1's geometry, reaping as they
/// complete. Returns the number of commands.
pub fn stream(ctrl: &Lock<Controller>, ns: &Namespace, write: bool, lba: u64, total: usize, chunk: usize, depth: usize, buf: &DmaBuffer) -> Result<u64, BlockError> {
    let mut c = ctrl.lock();
    if c.failed {
        return Err(BlockError::Device { status: STATUS_CONTROLLER_FAILED });
    }
    // Its commands bypass the slots (`Tags`), so none may be in flight:
    // the benchmark runs at boot, alone on the controller.
    if c.tags.in_use() > 0 {
        log::warn!("nvme{}: a raw stream while {} command(s) are in flight; refused", c.index, c.tags.in_use());
        return Err(BlockError::Device { status: STATUS_OUT_OF_STEP });
    }
    let depth = depth.min(c.depth as usize - 1).min(c.prp_lists.len()).max(1);
    let mut in_flight = 0usize;
    let r = stream_locked(&mut c, ns, write, lba, total, chunk, depth, buf, &mut in_flight);
    // It reaped the I/O ring itself: the next waiter's look without the
    // lock must start from where the head is now.
    c.publish();
    // Leaving with commands outstanding (an error, a timeout) would leave
    // the queue behind and `buf` still the device's: reset first.
    if in_flight > 0 {
        c.recover(&format!("raw stream stopped with {} command(s) outstanding ({})", in_flight, r.as_ref().err().copied().unwrap_or(BlockError::Timeout)), STATUS_ABORTED_BY_RESET);
    }
    r
}

fn stream_locked(c: &mut Controller, ns: &Namespace, write: bool, lba: u64, total: usize, chunk: usize, depth: usize, buf: &DmaBuffer, in_flight: &mut usize) -> Result<u64, BlockError> {
    let bs = ns.info.block_size as usize;
    let mut submitted = 0usize;
    let mut completed = 0usize;
    let n = total.checked_div(chunk).ok_or(BlockError::BadLength)?;
    while completed < n {
        while *in_flight < depth && submitted < n {
            let slot = submitted % depth;
            let va = buf.virt() + (slot * chunk) as u64;
            let cid = c.cid();
            let cmd = c.build_rw(ns, write, lba + (submitted * chunk / bs) as u64, va, chunk, slot, cid)?;
            c.io.submit(&cmd);
            submitted += 1;
            *in_flight += 1;
        }
        let done = c.wait(false, c.io_timeout_ticks).ok_or(BlockError::Timeout)?;
        *in_flight -= 1;
        completed += 1;
        if !done.ok() {
            return Err(BlockError::Device { status: done.status as u32 });
        }
    }
    Ok(n as u64)
}
