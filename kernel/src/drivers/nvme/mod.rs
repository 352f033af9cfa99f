//! NVMe, our own (no maintained no_std crate covers it).
//!
//! One admin queue pair and one I/O queue pair per controller, with a
//! configurable depth (default 64, capped by CAP.MQES). Completions arrive
//! by MSI-X (entry 0 admin, entry 1 I/O) or, when MSI-X is missing or
//! turned off with `nvme.msix=off`, by polling. Data moves through PRP1/PRP2
//! and PRP lists built from the buffer's own pages (kcore::nvme builds and
//! tests them); buffers that are not dword aligned are bounced. Every
//! command has a timeout, and a failed status is decoded into words.

mod queue;

use super::dma::{virt_to_phys, DmaBuffer};
use crate::mm::PAGE_SIZE;
use crate::pci::{self, msix::Msix, Device};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_kcore::nvme::{build_prps, opcode, parse_identify_namespace, status_text, Command, Completion, NamespaceInfo};
use capos_storage::{BlockDevice, BlockError};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use queue::QueuePair;
use spin::Mutex;

pub const DEFAULT_DEPTH: u16 = 64;
const ADMIN_DEPTH: u16 = 32;
const ADMIN_TIMEOUT_NS: u64 = 5_000_000_000;
const IO_TIMEOUT_NS: u64 = 10_000_000_000;
/// Largest transfer per command (further capped by MDTS).
const MAX_TRANSFER: u64 = 128 * 1024;
const MAX_CONTROLLERS: usize = 8;

/// Interrupts per controller, and which controller a vector belongs to.
static IRQS: [AtomicU64; MAX_CONTROLLERS] = [const { AtomicU64::new(0) }; MAX_CONTROLLERS];
static VECTOR_OWNER: [AtomicU8; 256] = [const { AtomicU8::new(0xff) }; 256];

fn on_interrupt(vector: u8) {
    let owner = VECTOR_OWNER[vector as usize].load(Ordering::Relaxed) as usize;
    if owner < MAX_CONTROLLERS {
        IRQS[owner].fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) struct Regs(u64);

impl Regs {
    pub(crate) fn r32(&self, off: u64) -> u32 {
        // SAFETY: `self.0` maps the controller's register BAR uncached and
        // `off` is a register offset inside the mapped range.
        unsafe { core::ptr::read_volatile((self.0 + off) as *const u32) }
    }
    pub(crate) fn w32(&self, off: u64, v: u32) {
        // SAFETY: as r32.
        unsafe { core::ptr::write_volatile((self.0 + off) as *mut u32, v) }
    }
    fn r64(&self, off: u64) -> u64 {
        self.r32(off) as u64 | (self.r32(off + 4) as u64) << 32
    }
    fn w64(&self, off: u64, v: u64) {
        self.w32(off, v as u32);
        self.w32(off + 4, (v >> 32) as u32);
    }
}

pub struct Controller {
    index: usize,
    pub address: String,
    regs: Regs,
    admin: QueuePair,
    io: QueuePair,
    pub msix: bool,
    pub model: String,
    pub serial: String,
    pub max_transfer: u64,
    pub depth: u16,
    next_cid: u16,
    /// One PRP list page per I/O queue slot.
    prp_lists: Vec<DmaBuffer>,
    _msix_table: Option<Msix>,
    /// The MSI-X table entry of the I/O completion queue.
    io_vector_index: u16,
    /// Poll iterations that found no completion (polled mode), for the
    /// benchmark's spin accounting.
    polls: u64,
    pub namespaces: Vec<Namespace>,
}

#[derive(Debug)]
pub struct NvmeError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, NvmeError> {
    Err(NvmeError(s.into()))
}

impl Controller {
    fn wait_ready(&self, ready: bool, timeout_ms: u64) -> Result<(), NvmeError> {
        let start = crate::time::uptime_ns();
        loop {
            let csts = self.regs.r32(0x1c);
            if csts & 2 != 0 {
                return err(format!("controller fatal status (CSTS={:#x})", csts));
            }
            if (csts & 1 != 0) == ready {
                return Ok(());
            }
            if crate::time::uptime_ns() - start > timeout_ms * 1_000_000 {
                return err(format!("CSTS.RDY did not become {} within {} ms", ready as u8, timeout_ms));
            }
            core::hint::spin_loop();
        }
    }

    fn cid(&mut self) -> u16 {
        self.next_cid = self.next_cid.wrapping_add(1);
        if self.next_cid == 0xffff {
            self.next_cid = 1;
        }
        self.next_cid
    }

    /// Wait for the next completion on `admin`/`io`: by interrupt (HLT until
    /// one arrives, so an idle wait costs nothing) or by polling.
    fn wait(&mut self, admin: bool, timeout_ns: u64) -> Result<Completion, BlockError> {
        self.wait_turns(admin, timeout_ns, u64::MAX).unwrap_or(Err(BlockError::Timeout))
    }

    /// [`wait`] for at most `turns` turns of its loop (None when they run
    /// out). Not inlined, so a benchmark's replay of the poll loop
    /// ([`replay_polls`]) executes exactly the instructions a real wait
    /// spins in.
    #[inline(never)]
    fn wait_turns(&mut self, admin: bool, timeout_ns: u64, turns: u64) -> Option<Result<Completion, BlockError>> {
        let start = crate::time::uptime_ns();
        let mut left = turns;
        while left > 0 {
            left -= 1;
            if let Some(r) = self.poll_once(admin, start, timeout_ns) {
                return Some(r);
            }
        }
        None
    }

    /// One turn of [`wait`]'s loop: a completion, a timeout, or (None)
    /// nothing yet, after halting (interrupts) or a spin hint (polling).
    #[inline(always)]
    fn poll_once(&mut self, admin: bool, start: u64, timeout_ns: u64) -> Option<Result<Completion, BlockError>> {
        crate::arch::x86_64::trap::set_interrupts(false);
        let q = if admin { &mut self.admin } else { &mut self.io };
        if let Some(c) = q.reap() {
            crate::arch::x86_64::trap::set_interrupts(true);
            return Some(Ok(c));
        }
        if crate::time::uptime_ns() - start > timeout_ns {
            crate::arch::x86_64::trap::set_interrupts(true);
            return Some(Err(BlockError::Timeout));
        }
        if self.msix {
            // Atomic STI;HLT: an interrupt between the check and the
            // halt still wakes us. The 100 Hz timer bounds the wait.
            crate::arch::x86_64::cpu::wait_for_interrupt();
        } else {
            self.polls += 1;
            crate::arch::x86_64::trap::set_interrupts(true);
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

    /// Poll iterations that found nothing, so far.
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// Benchmarks: run `n` turns of the polling loop on the idle I/O queue,
    /// the same code a polled wait spins in, to be subtracted from a
    /// polled measurement. Stops early (false) if a completion shows up.
    pub fn replay_polls(&mut self, n: u64) -> bool {
        let was = self.msix;
        self.msix = false;
        let ok = n == 0 || self.wait_turns(false, IO_TIMEOUT_NS, n).is_none();
        self.msix = was;
        ok
    }

    fn admin_command(&mut self, mut cmd: Command) -> Result<Completion, NvmeError> {
        cmd.cid = self.cid();
        self.admin.submit(&cmd);
        let c = self.wait(true, ADMIN_TIMEOUT_NS).map_err(|e| NvmeError(format!("admin opcode {:#x}: {}", cmd.opcode, e)))?;
        if c.cid != cmd.cid {
            return err(format!("admin completion for cid {} while waiting for {}", c.cid, cmd.cid));
        }
        if !c.ok() {
            return err(format!("admin opcode {:#x} failed: {} (status {:#x})", cmd.opcode, status_text(c.status), c.status));
        }
        Ok(c)
    }

    fn identify(&mut self, cns: u32, nsid: u32, page: &DmaBuffer) -> Result<(), NvmeError> {
        let cmd = Command { opcode: opcode::ADMIN_IDENTIFY, nsid, prp1: page.phys, cdw10: cns, ..Command::default() };
        self.admin_command(cmd).map(|_| ())
    }

    /// Read or write whole blocks of namespace `ns` with one command per
    /// `max_transfer` bytes, waiting for each (queue depth 1).
    #[inline(always)]
    fn transfer(&mut self, ns: &Namespace, write: bool, lba: u64, buf_va: u64, len: usize) -> Result<(), BlockError> {
        // One command when it fits (the common case: no chunk arithmetic).
        if len as u64 <= self.max_transfer as u64 {
            return self.one_command(ns, write, lba, buf_va, len);
        }
        let bs = ns.info.block_size as usize;
        let chunk = (self.max_transfer as usize / bs).max(1) * bs;
        let mut done = 0;
        while done < len {
            let n = chunk.min(len - done);
            self.one_command(ns, write, lba + (done / bs) as u64, buf_va + done as u64, n)?;
            done += n;
        }
        Ok(())
    }

    /// Submit one I/O command and wait for its completion, which must carry
    /// its command id (queue depth 1: anything else is a device fault).
    #[inline(always)]
    fn run_io(&mut self, cmd: &Command) -> Result<Completion, BlockError> {
        self.io.submit(cmd);
        let c = self.wait(false, IO_TIMEOUT_NS)?;
        if c.cid != cmd.cid {
            log::warn!("nvme {}: completion for cid {} while waiting for {}", self.address, c.cid, cmd.cid);
            return Err(BlockError::Device { status: 0xffff });
        }
        Ok(c)
    }

    /// One read or write command, waited for.
    #[inline(always)]
    fn one_command(&mut self, ns: &Namespace, write: bool, lba: u64, va: u64, len: usize) -> Result<(), BlockError> {
        let cmd = self.build_rw(ns, write, lba, va, len, 0)?;
        let c = self.run_io(&cmd)?;
        if !c.ok() {
            log::warn!("nvme {}: {} at LBA {} failed: {} (status {:#x})", self.address, if write { "write" } else { "read" }, lba, status_text(c.status), c.status);
            return Err(BlockError::Device { status: c.status as u32 });
        }
        Ok(())
    }

    /// Build a read/write command for `len` bytes at `va` (dword aligned,
    /// at most max_transfer), using PRP list slot `slot`.
    fn build_rw(&mut self, ns: &Namespace, write: bool, lba: u64, va: u64, len: usize, slot: usize) -> Result<Command, BlockError> {
        let first = virt_to_phys(va).ok_or(BlockError::Device { status: 0xfffe })?;
        // The pages after the first, on the stack: no allocation per request
        // (len <= max_transfer <= MAX_TRANSFER, plus one for an unaligned start).
        let mut rest = [0u64; (MAX_TRANSFER / PAGE_SIZE) as usize + 1];
        let mut pages = 0;
        let mut page_va = (va & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        while page_va < va + len as u64 {
            let entry = rest.get_mut(pages).ok_or(BlockError::BadLength)?;
            *entry = virt_to_phys(page_va).ok_or(BlockError::Device { status: 0xfffe })?;
            pages += 1;
            page_va += PAGE_SIZE;
        }
        let list = &mut self.prp_lists[slot];
        let prps = build_prps(first, &rest[..pages], len as u64, list.phys).map_err(|_| BlockError::BadLength)?;
        for (i, e) in prps.list.iter().enumerate() {
            list.as_mut_slice()[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
        }
        let mut cmd = Command::rw(write, ns.nsid, lba, (len / ns.info.block_size as usize) as u32, &prps);
        cmd.cid = self.cid();
        Ok(cmd)
    }

    fn flush(&mut self, nsid: u32) -> Result<(), BlockError> {
        let cmd = Command { opcode: opcode::IO_FLUSH, nsid, cid: self.cid(), ..Command::default() };
        let c = self.run_io(&cmd)?;
        if !c.ok() {
            return Err(BlockError::Device { status: c.status as u32 });
        }
        Ok(())
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
        let page = DmaBuffer::new(1).ok_or("out of memory")?;
        let before = self.interrupts();
        let cmd = Command { opcode: opcode::ADMIN_IDENTIFY, cid: self.cid(), prp1: page.phys, cdw10: 1, ..Command::default() };
        self.admin.submit(&cmd);
        let start = crate::time::uptime_ns();
        crate::arch::x86_64::trap::set_interrupts(true);
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

#[derive(Clone, Copy)]
pub struct Namespace {
    pub nsid: u32,
    pub info: NamespaceInfo,
}

/// One namespace as a block device.
pub struct NvmeDisk {
    pub ctrl: Arc<Mutex<Controller>>,
    pub ns: Namespace,
    /// For buffers that are not dword aligned.
    bounce: Option<DmaBuffer>,
}

impl NvmeDisk {
    /// The bounce buffer for unaligned requests, made on first use; no
    /// memory for it is an error for this request, not a panic.
    fn bounce(&mut self) -> Result<&mut DmaBuffer, BlockError> {
        if self.bounce.is_none() {
            self.bounce = DmaBuffer::new(MAX_TRANSFER / PAGE_SIZE);
        }
        self.bounce.as_mut().ok_or_else(|| {
            log::warn!("nvme: no memory for a bounce buffer");
            BlockError::Device { status: 0xfffd }
        })
    }

    #[inline(always)]
    fn io(&mut self, write: bool, lba: u64, va: u64, len: usize) -> Result<(), BlockError> {
        self.ctrl.lock().transfer(&self.ns, write, lba, va, len)
    }
}

impl BlockDevice for NvmeDisk {
    fn block_size(&self) -> usize {
        self.ns.info.block_size as usize
    }

    fn block_count(&self) -> u64 {
        self.ns.info.blocks
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(self.block_size(), self.block_count(), lba, buf.len())?;
        if buf.as_ptr() as u64 % 4 == 0 {
            return self.io(false, lba, buf.as_mut_ptr() as u64, buf.len());
        }
        let bs = self.block_size();
        let step = (MAX_TRANSFER as usize / bs).max(1) * bs;
        for (i, chunk) in buf.chunks_mut(step).enumerate() {
            let va = self.bounce()?.virt();
            self.io(false, lba + (i * step / bs) as u64, va, chunk.len())?;
            chunk.copy_from_slice(&self.bounce()?.as_slice()[..chunk.len()]);
        }
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(self.block_size(), self.block_count(), lba, buf.len())?;
        if buf.as_ptr() as u64 % 4 == 0 {
            return self.io(true, lba, buf.as_ptr() as u64, buf.len());
        }
        let bs = self.block_size();
        let step = (MAX_TRANSFER as usize / bs).max(1) * bs;
        for (i, chunk) in buf.chunks(step).enumerate() {
            let bounce = self.bounce()?;
            bounce.as_mut_slice()[..chunk.len()].copy_from_slice(chunk);
            let va = bounce.virt();
            self.io(true, lba + (i * step / bs) as u64, va, chunk.len())?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.ctrl.lock().flush(self.ns.nsid)
    }
}

static CONTROLLERS: Mutex<Vec<Arc<Mutex<Controller>>>> = Mutex::new(Vec::new());

pub fn controllers() -> Vec<Arc<Mutex<Controller>>> {
    CONTROLLERS.lock().clone()
}

fn init_controller(index: usize, dev: &Device, depth: u16, use_msix: bool) -> Result<(Controller, Vec<Namespace>), NvmeError> {
    let bar = dev.bar(0).ok_or(NvmeError("no BAR0".into()))?;
    let regs = Regs(pci::map_bar_region(dev, 0, 0, bar.size.min(0x4000)).map_err(|e| NvmeError(format!("mapping BAR0: {:?}", e)))?);
    pci::enable_bus_master(dev);
    let cap = regs.r64(0);
    let timeout_ms = ((cap >> 24) & 0xff).max(1) * 500;
    let dstrd = ((cap >> 32) & 0xf) as u32;
    let mqes = (cap & 0xffff) as u16 + 1;
    let mpsmin = 1u64 << (12 + ((cap >> 48) & 0xf));
    if mpsmin > PAGE_SIZE {
        return err(format!("minimum page size {} is larger than 4 KiB", mpsmin));
    }
    let vs = regs.r32(0x08);
    regs.w32(0x14, 0); // CC.EN = 0: reset
    let mut c = Controller {
        index,
        address: dev.address(),
        admin: QueuePair::new(0, ADMIN_DEPTH.min(mqes), dstrd, &regs)?,
        io: QueuePair::new(1, depth.min(mqes).max(2), dstrd, &regs)?,
        regs,
        msix: false,
        model: String::new(),
        serial: String::new(),
        max_transfer: MAX_TRANSFER,
        depth: depth.min(mqes).max(2),
        next_cid: 0,
        prp_lists: Vec::new(),
        _msix_table: None,
        io_vector_index: 0,
        polls: 0,
        namespaces: Vec::new(),
    };
    c.wait_ready(false, timeout_ms)?;
    for _ in 0..c.depth {
        c.prp_lists.push(DmaBuffer::new(1).ok_or(NvmeError("out of memory".into()))?);
    }
    c.regs.w32(0x24, ((c.admin.depth as u32 - 1) << 16) | (c.admin.depth as u32 - 1));
    c.regs.w64(0x28, c.admin.sq_phys());
    c.regs.w64(0x30, c.admin.cq_phys());

    // Interrupts: MSI-X entry 0 for admin, 1 (or 0 if the table is tiny) for I/O.
    let mut io_vector_index = 0u16;
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
                    io_vector_index = if m.info.table_size >= 2 { 1 } else { 0 };
                    c.io_vector_index = io_vector_index;
                    c.msix = true;
                    c._msix_table = Some(m);
                } else {
                    log::warn!("nvme {}: MSI-X setup failed; polling", c.address);
                }
            }
            Err(e) => log::info!("nvme {}: no MSI-X ({:?}); polling for completions", c.address, e),
        }
    }

    // Enable: 64-byte SQ entries, 16-byte CQ entries, 4 KiB pages, NVM command set.
    c.regs.w32(0x14, (4 << 20) | (6 << 16) | 1);
    c.wait_ready(true, timeout_ms)?;

    let page = DmaBuffer::new(1).ok_or(NvmeError("out of memory".into()))?;
    c.identify(1, 0, &page)?;
    let id = page.as_slice();
    let text = |r: core::ops::Range<usize>| String::from_utf8_lossy(&id[r]).trim().replace('\0', "");
    c.model = text(24..64);
    c.serial = text(4..24);
    let mdts = id[77];
    if mdts != 0 {
        c.max_transfer = c.max_transfer.min(mpsmin << mdts);
    }
    let nn = u32::from_le_bytes(id[516..520].try_into().unwrap_or([0; 4]));

    // I/O completion queue (physically contiguous, interrupts on) then the
    // submission queue bound to it.
    let iv = if c.msix { (io_vector_index as u32) << 16 | 1 << 1 } else { 0 };
    let cq = Command { opcode: opcode::ADMIN_CREATE_CQ, prp1: c.io.cq_phys(), cdw10: ((c.io.depth as u32 - 1) << 16) | 1, cdw11: iv | 1, ..Command::default() };
    c.admin_command(cq)?;
    let sq = Command { opcode: opcode::ADMIN_CREATE_SQ, prp1: c.io.sq_phys(), cdw10: ((c.io.depth as u32 - 1) << 16) | 1, cdw11: (1 << 16) | 1, ..Command::default() };
    c.admin_command(sq)?;

    // Active namespaces (CNS 2), at most 8 used; the rest are logged.
    let list = DmaBuffer::new(1).ok_or(NvmeError("out of memory".into()))?;
    c.identify(2, 0, &list)?;
    let ids: Vec<u32> = list.as_slice().chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).take_while(|n| *n != 0).collect();
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
        if c.msix { "MSI-X completions" } else { "polled completions" }
    );
    Ok((c, namespaces))
}

/// Bind every NVMe controller (class 01:08:02).
pub fn probe(depth: u16, use_msix: bool) {
    let Some(p) = pci::get() else { return };
    for dev in p.devices.iter().filter(|d| d.class == 0x01 && d.subclass == 0x08 && d.prog_if == 0x02) {
        let index = CONTROLLERS.lock().len();
        if index >= MAX_CONTROLLERS {
            log::warn!("nvme {}: more than {} controllers; ignored", dev.address(), MAX_CONTROLLERS);
            continue;
        }
        match init_controller(index, dev, depth, use_msix) {
            Ok((mut c, namespaces)) => {
                c.namespaces = namespaces.clone();
                let ctrl = Arc::new(Mutex::new(c));
                CONTROLLERS.lock().push(ctrl.clone());
                for ns in namespaces {
                    let name = format!("nvme{}n{}", index, ns.nsid);
                    let detail = {
                        let c = ctrl.lock();
                        format!("'{}' at {}, {} blocks of {} bytes ({} MiB), {}", c.model, c.address, ns.info.blocks, ns.info.block_size,
                            ns.info.blocks * ns.info.block_size as u64 >> 20, if c.msix { "MSI-X" } else { "polling" })
                    };
                    super::block::register(name, "nvme", detail, Box::new(NvmeDisk { ctrl: ctrl.clone(), ns, bounce: None }));
                }
            }
            Err(e) => log::error!("nvme {}: not bound: {}", dev.address(), e.0),
        }
    }
}

/// For benchmarks: queue up to `depth` reads or writes of `chunk` bytes,
/// covering `[lba, lba + total)` of namespace 1's geometry, reaping as they
/// complete. Returns the number of commands.
pub fn stream(ctrl: &Mutex<Controller>, ns: &Namespace, write: bool, lba: u64, total: usize, chunk: usize, depth: usize, buf: &DmaBuffer) -> Result<u64, BlockError> {
    let bs = ns.info.block_size as usize;
    let mut c = ctrl.lock();
    let depth = depth.clamp(1, c.depth as usize - 1).min(c.prp_lists.len());
    let mut submitted = 0usize;
    let mut completed = 0usize;
    let mut in_flight = 0usize;
    let n = total / chunk;
    while completed < n {
        while in_flight < depth && submitted < n {
            let slot = submitted % depth;
            let va = buf.virt() + (slot * chunk) as u64;
            let cmd = c.build_rw(ns, write, lba + (submitted * chunk / bs) as u64, va, chunk, slot)?;
            c.io.submit(&cmd);
            submitted += 1;
            in_flight += 1;
        }
        let done = c.wait(false, IO_TIMEOUT_NS)?;
        if !done.ok() {
            return Err(BlockError::Device { status: done.status as u32 });
        }
        completed += 1;
        in_flight -= 1;
    }
    Ok(n as u64)
}
