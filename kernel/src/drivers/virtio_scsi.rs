//! virtio-scsi: the disks Compute Engine attaches on its E2, N1, N2, N2D,
//! C2 and T2D machine types, each behind `BlockDevice` as `sda`, `sdb`, ...
//!
//! `virtio-drivers` has no SCSI device, so this driver is ours, built on
//! the crate's public PCI transport and `VirtQueue` (DESIGN.md decision 8).
//! What the bytes mean (CDBs, the request and response headers, sense
//! data, INQUIRY and READ CAPACITY, when to retry) is decided in
//! `capos_kcore::scsi` and tested on the host; this file moves them.
//!
//! - **Devices**: the modern function (1af4:1048) and the transitional one
//!   (1af4:1004) where it offers the modern capabilities; a legacy-only
//!   function is logged and left unclaimed. The PCI ids found are logged.
//! - **Discovery**: targets `0..=max_target` (at most 255), LUN 0. INQUIRY
//!   binds peripheral qualifier 0, type 0 (a disk) only; TEST UNIT READY
//!   clears the UNIT ATTENTION a fresh target reports; READ CAPACITY(10),
//!   and (16) when (10) says the disk is larger; MODE SENSE(6) for the
//!   write-protect bit. Disks are named `sda`, `sdb`, ... in PCI and then
//!   target order.
//! - **Requests**: one request queue (virtqueue 2) per controller, shared
//!   by its disks. A transfer is split into commands of at most
//!   [`MAX_TRANSFER`] bytes (and the device's `max_sectors`), and up to
//!   [`IN_FLIGHT`] of them are in the device at once; completions are
//!   taken in the order the device finishes them. READ/WRITE(10) where they
//!   fit, (16) past 2 TiB; SYNCHRONIZE CACHE is `flush`.
//! - **Completions are polled**, as virtio-blk's are: the crate's PCI
//!   transport has no way to program a queue's MSI-X vector
//!   (`queue_msix_vector` is private to it), and writing the common
//!   configuration behind its back would be a second owner of it. The wait
//!   is bracketed for the instruction counter like the other drivers'.
//! - **Errors**: every command has a deadline ([`IO_TIMEOUT_NS`]). A
//!   command that misses it resets the device (status 0, which ends all
//!   DMA) and marks the controller failed: every later request fails at
//!   once, and no late DMA lands in a buffer its caller got back. Failures
//!   are logged with the command, target and decoded sense data, and
//!   reach the caller as `BlockError::Device` with
//!   [`capos_kcore::scsi::ScsiFailure::status`].

use super::dma::{DmaBuffer, KernelHal};
use super::virtio::transport_of;
use crate::arch::x86_64::cpu::rdtsc;
use crate::pci;
use crate::sync::{classes, Lock};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use capos_kcore::scsi::{self, Capacity, Cdb, Outcome, ScsiFailure};
use super::block::SharedBlock;
use capos_storage::BlockError;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

/// Descriptors in the request queue: three per command (header, data,
/// response) for [`IN_FLIGHT`] commands.
const QUEUE_SIZE: usize = 64;
/// The first request queue (0 is the control queue, 1 the event queue).
const REQUEST_QUEUE: u16 = 2;
/// Commands in the device at once, at most (further capped by the
/// device's `cmd_per_lun`).
const IN_FLIGHT: usize = 16;
/// Largest transfer per command (further capped by `max_sectors`).
const MAX_TRANSFER: usize = 128 * 1024;
const IO_TIMEOUT_NS: u64 = 10_000_000_000;
/// Driver-specific `BlockError::Device` statuses (layer byte 5).
pub const STATUS_CONTROLLER_FAILED: u32 = 0x0500_0001;
pub const STATUS_QUEUE: u32 = 0x0500_0002;

bitflags::bitflags! {
    /// The feature bits this driver accepts: VIRTIO_F_VERSION_1 only (no
    /// hot-plug events, no T10 protection information, no indirect
    /// descriptors).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        const VERSION_1 = 1 << 32;
    }
}

/// `struct virtio_scsi_config` fields, by byte offset.
mod config {
    pub const NUM_QUEUES: usize = 0;
    pub const SEG_MAX: usize = 4;
    pub const MAX_SECTORS: usize = 8;
    pub const CMD_PER_LUN: usize = 12;
    pub const SENSE_SIZE: usize = 20;
    pub const CDB_SIZE: usize = 24;
    pub const MAX_TARGET: usize = 30;
}

#[derive(Debug, Clone, Copy)]
pub enum ScsiError {
    Failed(ScsiFailure),
    /// The command missed its deadline; the controller has been reset and
    /// failed.
    Timeout,
    /// The controller failed earlier and takes no more requests.
    ControllerFailed,
    /// The virtqueue refused the command (it cannot, with our sizes).
    Queue,
}

impl core::fmt::Display for ScsiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ScsiError::Failed(e) => write!(f, "{}", e),
            ScsiError::Timeout => write!(f, "timed out; controller reset and failed"),
            ScsiError::ControllerFailed => write!(f, "controller failed earlier"),
            ScsiError::Queue => write!(f, "the request queue refused the command"),
        }
    }
}

impl From<ScsiError> for BlockError {
    fn from(e: ScsiError) -> BlockError {
        match e {
            ScsiError::Failed(f) => BlockError::Device { status: f.status() },
            ScsiError::Timeout => BlockError::Timeout,
            ScsiError::ControllerFailed => BlockError::Device { status: STATUS_CONTROLLER_FAILED },
            ScsiError::Queue => BlockError::Device { status: STATUS_QUEUE },
        }
    }
}

/// The data a command moves.
pub enum Data<'a> {
    None,
    /// Device to memory.
    In(&'a mut [u8]),
    /// Memory to device.
    Out(&'a [u8]),
}

pub struct Command<'a> {
    pub target: u16,
    pub cdb: Cdb,
    pub data: Data<'a>,
    /// Every byte of `data` must move (reads and writes); INQUIRY and the
    /// like may answer less than they were given room for.
    pub exact: bool,
}

/// A command in the device: its index in the batch, its token, and the
/// slot of [`Slots`] holding the header and response buffers the device
/// reads and writes until it is popped.
struct InFlight {
    command: usize,
    token: u16,
    slot: usize,
    deadline: u64,
}

/// The request headers and response buffers of the commands in the
/// device, one slot each, in one DMA buffer made at bring-up: in the
/// direct map, so the HAL hands the device their addresses as they are
/// (heap buffers would be bounced through a fresh page per buffer per
/// command, which the first measurement showed cost 20,000 instructions
/// a read).
struct Slots {
    buf: DmaBuffer,
    header_len: usize,
    response_len: usize,
    free: Vec<usize>,
}

impl Slots {
    fn new(count: usize, header_len: usize, response_len: usize) -> Option<Slots> {
        let bytes = count * (header_len + response_len);
        let buf = DmaBuffer::new(bytes.div_ceil(crate::mm::PAGE_SIZE as usize) as u64)?;
        Some(Slots { buf, header_len, response_len, free: (0..count).rev().collect() })
    }

    /// Slot `k`'s header and response.
    fn get(&mut self, k: usize) -> (&mut [u8], &mut [u8]) {
        let (h, r) = (self.header_len, self.response_len);
        let at = k * (h + r);
        let (header, response) = self.buf.as_mut_slice()[at..at + h + r].split_at_mut(h);
        (header, response)
    }
}

pub struct Controller {
    pub address: String,
    transport: PciTransport,
    queue: VirtQueue<KernelHal, QUEUE_SIZE>,
    slots: Slots,
    sense_size: usize,
    in_flight_max: usize,
    /// Largest transfer per command, in bytes.
    max_transfer: usize,
    next_tag: u64,
    /// Descriptor tokens of every caller's commands in the device (bit
    /// per token; tokens are below QUEUE_SIZE): a completion whose token
    /// is not here is unknown, one that is another caller's is left for
    /// that caller to pop ([`run`]).
    tokens: u64,
    failed: bool,
    timeout_ticks: u64,
    pub retries: u64,
}

impl Controller {
    /// Add command `i` of `cmds` to the queue.
    fn submit(&mut self, cmds: &mut [Command], i: usize) -> Result<InFlight, ScsiError> {
        let c = &mut cmds[i];
        let lun = scsi::lun_address(c.target, 0).ok_or(ScsiError::Queue)?;
        let slot = self.slots.free.pop().ok_or(ScsiError::Queue)?;
        self.next_tag = self.next_tag.wrapping_add(1);
        let (header, response) = self.slots.get(slot);
        if scsi::encode_request(header, lun, self.next_tag, &c.cdb).is_err() {
            self.slots.free.push(slot);
            return Err(ScsiError::Queue);
        }
        response.fill(0);
        // SAFETY: the slot's header and response (a DMA buffer the
        // controller owns, not handed to another command until this one
        // is popped) and the command's data (borrowed by the batch for the
        // whole of `run`) stay valid and untouched until `complete` pops
        // this token, or the device is reset.
        let added = unsafe {
            match &mut c.data {
                Data::None => self.queue.add(&[header], &mut [response]),
                Data::In(buf) => self.queue.add(&[header], &mut [response, buf]),
                Data::Out(buf) => self.queue.add(&[header, buf], &mut [response]),
            }
        };
        let token = match added {
            Ok(t) => t,
            Err(_) => {
                self.slots.free.push(slot);
                return Err(ScsiError::Queue);
            }
        };
        self.tokens |= token_bit(token);
        if self.queue.should_notify() {
            self.transport.notify(REQUEST_QUEUE);
        }
        let timeout = match TEST_TIMEOUT_TICKS.load(Ordering::Relaxed) {
            0 => self.timeout_ticks,
            t => t,
        };
        Ok(InFlight { command: i, token, slot, deadline: rdtsc().saturating_add(timeout) })
    }

    /// Whether `token` is a command some caller has in the device.
    fn knows(&self, token: u16) -> bool {
        self.tokens & token_bit(token) != 0
    }

    /// Pop `f`, which the device has finished, and judge it.
    fn complete(&mut self, cmds: &mut [Command], f: &mut InFlight) -> Result<Outcome, ScsiError> {
        let c = &mut cmds[f.command];
        let (header, response) = self.slots.get(f.slot);
        // SAFETY: the same buffers `submit` added under this token.
        let popped = unsafe {
            match &mut c.data {
                Data::None => self.queue.pop_used(f.token, &[header], &mut [response]),
                Data::In(buf) => self.queue.pop_used(f.token, &[header], &mut [response, buf]),
                Data::Out(buf) => self.queue.pop_used(f.token, &[header, buf], &mut [response]),
            }
        };
        popped.map_err(|_| ScsiError::Queue)?;
        // Popped: the device is done with the slot.
        self.tokens &= !token_bit(f.token);
        self.slots.free.push(f.slot);
        let (_, response) = self.slots.get(f.slot);
        let exact = c.exact;
        match scsi::decode_response(response, self.sense_size) {
            Ok(r) if exact => Ok(scsi::outcome_exact(&r)),
            Ok(r) => Ok(scsi::outcome(&r)),
            Err(_) => Ok(Outcome::Fail(ScsiFailure::Malformed)),
        }
    }

    /// Reset the device: it stops all DMA and forgets the queue. The
    /// controller takes no more requests.
    fn fail(&mut self, why: &str) {
        log::error!("virtio-scsi {}: {}; device reset, controller failed (its disks fail every request from now on)", self.address, why);
        self.transport.set_status(DeviceStatus::empty());
        self.failed = true;
    }

}

/// Run every command of `cmds` (one caller's batch) on `ctrl`, up to its
/// `in_flight_max` at once, retrying the passing conditions; one result
/// per command. Returns only when the device holds none of their
/// buffers.
///
/// The controller's lock is taken to submit and to pop, not while the
/// device works: two callers (two disks of one controller, two mounts on
/// partitions of one disk) each wait for their own commands. The used
/// ring is popped in order and only by the caller whose buffers a
/// completion names (`VirtQueue::pop_used` needs them), so a caller whose
/// completion is behind another's waits for that caller's next look:
/// every caller waits on a CPU of its own (with interrupts off, in a
/// system call, or at boot), so that look comes. A command that misses
/// its deadline fails the controller (the device is reset, so no late
/// DMA): every caller's commands then fail.
pub fn run(ctrl: &Lock<Controller>, cmds: &mut [Command]) -> Vec<Result<(), ScsiError>> {
    let n = cmds.len();
    let mut results: Vec<Option<Result<(), ScsiError>>> = (0..n).map(|_| None).collect();
    let mut attempts = vec![0u32; n];
    let mut waiting: Vec<usize> = (0..n).rev().collect();
    let max = ctrl.lock().in_flight_max;
    let mut in_flight: Vec<InFlight> = Vec::with_capacity(max);
    // When this caller found no free slot and had nothing in flight.
    let mut starved_since: Option<u64> = None;
    loop {
        let mut c = ctrl.lock();
        if c.failed {
            // The device was reset: it holds none of our buffers and
            // will complete nothing.
            for f in in_flight.drain(..) {
                results[f.command] = Some(Err(ScsiError::ControllerFailed));
            }
            break;
        }
        while in_flight.len() < max && !c.slots.free.is_empty() {
            let Some(i) = waiting.pop() else { break };
            match c.submit(cmds, i) {
                Ok(f) => in_flight.push(f),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if in_flight.is_empty() {
            if waiting.is_empty() {
                break;
            }
            // Every slot is another caller's: wait for one to come back.
            let now = rdtsc();
            let since = *starved_since.get_or_insert(now);
            let limit = c.timeout_ticks;
            drop(c);
            if now.saturating_sub(since) > limit {
                for i in waiting.drain(..) {
                    results[i] = Some(Err(ScsiError::Timeout));
                }
                break;
            }
            crate::arch::x86_64::trap::interrupt_window();
            core::hint::spin_loop();
            continue;
        }
        starved_since = None;
        PEAK_IN_FLIGHT.fetch_max(in_flight.len(), Ordering::Relaxed);
        drop(c);
        // Wait until the next completion is one of ours (or a deadline
        // passes, or the controller failed); the counter leaves the
        // turns out (how many there are is host time).
        let deadline = in_flight.iter().map(|f| f.deadline).min().unwrap_or(0);
        capos_abi::icount::device_wait_begin();
        loop {
            {
                let c = ctrl.lock();
                if c.failed || c.queue.peek_used().is_some_and(|t| in_flight.iter().any(|f| f.token == t) || !c.knows(t)) {
                    break;
                }
            }
            if rdtsc() > deadline {
                break;
            }
            crate::arch::x86_64::trap::interrupt_window();
            core::hint::spin_loop();
        }
        capos_abi::icount::device_wait_end();
        let mut c = ctrl.lock();
        if c.failed {
            continue;
        }
        let head = c.queue.peek_used();
        let Some(at) = head.and_then(|t| in_flight.iter().position(|f| f.token == t)) else {
            if let Some(t) = head.filter(|t| !c.knows(*t)) {
                c.fail(&format!("completion for unknown descriptor {}", t));
            } else if rdtsc() > deadline {
                // Name the command whose deadline passed first.
                let late = in_flight.iter().min_by_key(|f| f.deadline).unwrap_or(&in_flight[0]);
                let what = format!("{} to target {} timed out", cmds[late.command].cdb.name(), cmds[late.command].target);
                c.fail(&what);
                for f in in_flight.drain(..) {
                    results[f.command] = Some(Err(ScsiError::Timeout));
                }
            }
            // Failed (the next turn says so to every command left), or
            // another caller's completion is ahead of ours: look again.
            continue;
        };
        let mut f = in_flight.swap_remove(at);
        let i = f.command;
        match c.complete(cmds, &mut f) {
            Ok(Outcome::Done) => results[i] = Some(Ok(())),
            Ok(Outcome::Retry(why)) if attempts[i] < scsi::MAX_RETRIES => {
                attempts[i] += 1;
                c.retries += 1;
                log::debug!("virtio-scsi {}: {} to target {}: {}; retry {}", c.address, cmds[i].cdb.name(), cmds[i].target, why, attempts[i]);
                drop(c);
                if !matches!(why, ScsiFailure::Sense(s) if s.key == scsi::key::UNIT_ATTENTION) {
                    // BUSY or becoming ready: give it a moment.
                    crate::time::spin_ns(1_000_000 << attempts[i].min(6));
                }
                waiting.push(i);
            }
            Ok(Outcome::Retry(why)) | Ok(Outcome::Fail(why)) => results[i] = Some(Err(ScsiError::Failed(why))),
            Err(e) => {
                c.fail("the queue would not give back a finished command");
                results[i] = Some(Err(e));
            }
        }
    }
    results.into_iter().map(|r| r.unwrap_or(Err(ScsiError::ControllerFailed))).collect()
}

/// `token`'s bit in [`Controller::tokens`].
fn token_bit(token: u16) -> u64 {
    1 << (token as usize % QUEUE_SIZE)
}

/// One command on `ctrl`, its data in `data`.
fn one(ctrl: &Lock<Controller>, target: u16, cdb: Cdb, data: Data) -> Result<(), ScsiError> {
    run(ctrl, &mut [Command { target, cdb, data, exact: false }]).pop().unwrap_or(Err(ScsiError::Queue))
}

/// One disk: a target of a shared controller.
pub struct ScsiDisk {
    controller: Arc<Lock<Controller>>,
    target: u16,
    capacity: Capacity,
    read_only: bool,
    name: String,
    /// Blocks per command, at most.
    max_blocks: u32,
}

impl ScsiDisk {
    fn transfer(&self, write: bool, lba: u64, pieces: Vec<scsi::Piece>, data: Data) -> Result<(), BlockError> {
        let bl = self.capacity.block_len as usize;
        let mut cmds: Vec<Command> = Vec::with_capacity(pieces.len());
        match data {
            Data::In(buf) => {
                for (p, chunk) in pieces.iter().zip(buf.chunks_mut(self.max_blocks as usize * bl)) {
                    cmds.push(Command { target: self.target, cdb: Cdb::rw(false, p.lba, p.blocks).ok_or(BlockError::OutOfRange)?, data: Data::In(chunk), exact: true });
                }
            }
            Data::Out(buf) => {
                for (p, chunk) in pieces.iter().zip(buf.chunks(self.max_blocks as usize * bl)) {
                    cmds.push(Command { target: self.target, cdb: Cdb::rw(true, p.lba, p.blocks).ok_or(BlockError::OutOfRange)?, data: Data::Out(chunk), exact: true });
                }
            }
            Data::None => return Ok(()),
        }
        let results = run(&self.controller, &mut cmds);
        for (c, r) in cmds.iter().zip(results) {
            if let Err(e) = r {
                log::warn!("{}: {} of the {} at LBA {}: {}", self.name, c.cdb.name(), if write { "write" } else { "read" }, lba, e);
                return Err(e.into());
            }
        }
        Ok(())
    }

}

/// Its requests share the controller's one request queue under the
/// controller's lock, held for a request's whole wait (docs/locks.md): two
/// disks of one controller, or two partitions of one disk, take turns.
impl SharedBlock for ScsiDisk {
    fn block_size(&self) -> usize {
        self.capacity.block_len as usize
    }

    fn block_count(&self) -> u64 {
        self.capacity.blocks
    }

    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let blocks = capos_storage::block::check_request(self.block_size(), self.capacity.blocks, lba, buf.len())?;
        let pieces = scsi::split(lba, blocks, self.block_size(), self.max_blocks);
        self.transfer(false, lba, pieces, Data::In(buf))
    }

    fn write_blocks(&self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let blocks = capos_storage::block::check_request(self.block_size(), self.capacity.blocks, lba, buf.len())?;
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let pieces = scsi::split(lba, blocks, self.block_size(), self.max_blocks);
        self.transfer(true, lba, pieces, Data::Out(buf))
    }

    fn flush(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Ok(());
        }
        one(&self.controller, self.target, Cdb::synchronize_cache(), Data::None).map_err(|e| {
            log::warn!("{}: SYNCHRONIZE CACHE: {}", self.name, e);
            BlockError::from(e)
        })
    }
}

/// A command deadline in TSC ticks that replaces every controller's own
/// when non-zero: the `scsi-timeout` self-test shortens it to provoke a
/// timeout on a throttled disk.
static TEST_TIMEOUT_TICKS: AtomicU64 = AtomicU64::new(0);

pub fn set_test_timeout_ticks(ticks: u64) {
    TEST_TIMEOUT_TICKS.store(ticks, Ordering::Relaxed);
}

/// The most commands any controller has had in the device at once, for
/// the self-test that proves requests overlap.
static PEAK_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The peak since the last call, which starts a new one.
pub fn take_peak_in_flight() -> usize {
    PEAK_IN_FLIGHT.swap(0, Ordering::Relaxed)
}

/// Disks named so far, across controllers.
static DISKS: AtomicUsize = AtomicUsize::new(0);

/// Bring up one controller; `None` (logged) if it cannot be driven.
fn controller(dev: &pci::Device) -> Option<Controller> {
    let mut transport = transport_of(dev, "virtio-scsi")?;
    if transport.device_type() != DeviceType::ScsiHost {
        log::warn!("virtio-scsi {}: the transport says device type {:?}", dev.address(), transport.device_type());
        return None;
    }
    let offered = transport.read_device_features();
    let features = transport.begin_init(Features::VERSION_1);
    let cfg = |off: usize| transport.read_config_space::<u32>(off).unwrap_or(0);
    let (num_queues, seg_max, max_sectors, cmd_per_lun) = (cfg(config::NUM_QUEUES), cfg(config::SEG_MAX), cfg(config::MAX_SECTORS), cfg(config::CMD_PER_LUN));
    let (sense_size, cdb_size) = (cfg(config::SENSE_SIZE) as usize, cfg(config::CDB_SIZE) as usize);
    let max_target = transport.read_config_space::<u16>(config::MAX_TARGET).unwrap_or(0).min(255);
    log::info!(
        "virtio-scsi {}: features offered {:#x} accepted {:#x}; {} request queues, seg_max {}, max_sectors {}, cmd_per_lun {}, sense {} bytes, CDB {} bytes, targets 0..={}",
        dev.address(), offered, features.bits(), num_queues, seg_max, max_sectors, cmd_per_lun, sense_size, cdb_size, max_target
    );
    // The device writes sense_size bytes of sense and reads cdb_size bytes
    // of CDB: our buffers must match what it says, within sane bounds.
    if !(16..=256).contains(&cdb_size) || !(18..=256).contains(&sense_size) || num_queues == 0 {
        log::warn!("virtio-scsi {}: configuration out of range (CDB {} bytes, sense {} bytes, {} queues); not bound", dev.address(), cdb_size, sense_size, num_queues);
        transport.set_status(DeviceStatus::FAILED);
        return None;
    }
    let queue = match VirtQueue::<KernelHal, QUEUE_SIZE>::new(&mut transport, REQUEST_QUEUE, false, false) {
        Ok(q) => q,
        Err(e) => {
            log::warn!("virtio-scsi {}: request queue of {} descriptors: {:?} (the device offers {}); not bound", dev.address(), QUEUE_SIZE, e, transport.max_queue_size(REQUEST_QUEUE));
            transport.set_status(DeviceStatus::FAILED);
            return None;
        }
    };
    let in_flight_max = IN_FLIGHT.min(if cmd_per_lun == 0 { IN_FLIGHT } else { cmd_per_lun as usize }).min(QUEUE_SIZE / 3).max(1);
    let Some(slots) = Slots::new(in_flight_max, scsi::request_header_len(cdb_size), scsi::response_len(sense_size)) else {
        log::warn!("virtio-scsi {}: no memory for the request slots; not bound", dev.address());
        transport.set_status(DeviceStatus::FAILED);
        return None;
    };
    transport.finish_init();
    let sector_cap = if max_sectors == 0 { MAX_TRANSFER } else { (max_sectors as usize).saturating_mul(512) };
    Some(Controller {
        address: dev.address(),
        transport,
        queue,
        slots,
        sense_size,
        in_flight_max,
        max_transfer: MAX_TRANSFER.min(sector_cap).max(512),
        next_tag: 0,
        tokens: 0,
        failed: false,
        timeout_ticks: crate::time::tsc_ticks(IO_TIMEOUT_NS),
        retries: 0,
    })
}

/// Which targets answer INQUIRY as a disk: `(target, inquiry)`. All
/// targets are asked at once (a batch), so an empty bus costs one round.
fn scan(c: &Lock<Controller>, address: &str, max_target: u16) -> Vec<(u16, scsi::Inquiry)> {
    let mut bufs: Vec<[u8; 36]> = vec![[0u8; 36]; max_target as usize + 1];
    let mut cmds: Vec<Command> = bufs.iter_mut().enumerate().map(|(t, b)| Command { target: t as u16, cdb: Cdb::inquiry(36), data: Data::In(b), exact: false }).collect();
    let results = run(c, &mut cmds);
    drop(cmds);
    let mut found = Vec::new();
    for (t, r) in results.into_iter().enumerate() {
        match r {
            Ok(()) => match scsi::parse_inquiry(&bufs[t]) {
                Ok(i) if i.is_disk() => found.push((t as u16, i)),
                Ok(i) if i.qualifier == 0 => {
                    log::info!("virtio-scsi {}: target {}: device type {:#04x} ({} {}), not a disk; skipped", address, t, i.device_type, i.vendor, i.product)
                }
                Ok(_) => {}
                Err(e) => log::warn!("virtio-scsi {}: target {}: {}", address, t, e),
            },
            Err(ScsiError::Failed(ScsiFailure::Transport(scsi::response::BAD_TARGET))) => {}
            Err(e) => log::warn!("virtio-scsi {}: target {}: INQUIRY: {}", address, t, e),
        }
    }
    found
}

/// Size a disk: READ CAPACITY(10), then (16) when (10) says it is larger.
fn capacity(c: &Lock<Controller>, target: u16) -> Result<(Capacity, bool), String> {
    let mut d10 = [0u8; 8];
    one(c, target, Cdb::read_capacity_10(), Data::In(&mut d10)).map_err(|e| format!("READ CAPACITY(10): {}", e))?;
    if let Some(cap) = scsi::parse_capacity_10(&d10)? {
        return Ok((cap, false));
    }
    let mut d16 = [0u8; 32];
    one(c, target, Cdb::read_capacity_16(32), Data::In(&mut d16)).map_err(|e| format!("READ CAPACITY(16): {}", e))?;
    Ok((scsi::parse_capacity_16(&d16)?, true))
}

/// Bind every virtio-scsi controller and its disks.
pub fn probe() {
    let Some(p) = pci::get() else { return };
    for dev in p.devices.iter().filter(|d| d.vendor == 0x1af4 && (d.device == 0x1048 || d.device == 0x1004)) {
        log::info!("virtio-scsi {}: PCI {:04x}:{:04x} ({})", dev.address(), dev.vendor, dev.device, if dev.device == 0x1048 { "modern" } else { "transitional" });
        let Some(c) = controller(dev) else { continue };
        super::claim(&dev.func);
        let max_target = c.transport.read_config_space::<u16>(config::MAX_TARGET).unwrap_or(0).min(255);
        let address = c.address.clone();
        let shared = Arc::new(Lock::new(&classes::SCSI_CONTROLLER, c));
        let c = &*shared;
        let found = scan(c, &address, max_target);
        if found.is_empty() {
            log::info!("virtio-scsi {}: no disks on targets 0..={}", address, max_target);
        }
        let mut disks = Vec::new();
        for (target, inq) in found {
            // Clears the UNIT ATTENTION a fresh target reports (retried).
            if let Err(e) = one(c, target, Cdb::test_unit_ready(), Data::None) {
                log::warn!("virtio-scsi {}: target {}: TEST UNIT READY: {}; not bound", address, target, e);
                continue;
            }
            let (cap, sixteen) = match capacity(c, target) {
                Ok(x) => x,
                Err(e) => {
                    log::warn!("virtio-scsi {}: target {}: {}; not bound", address, target, e);
                    continue;
                }
            };
            let mut mode = [0u8; 4];
            let read_only = match one(c, target, Cdb::mode_sense_6(4), Data::In(&mut mode)) {
                Ok(()) => scsi::mode_sense_write_protected(&mode).unwrap_or(false),
                Err(e) => {
                    log::info!("virtio-scsi {}: target {}: MODE SENSE(6): {}; taken as writable", address, target, e);
                    false
                }
            };
            disks.push((target, inq, cap, sixteen, read_only));
        }
        let (retries, max_transfer) = {
            let c = c.lock();
            (c.retries, c.max_transfer)
        };
        for (target, inq, cap, sixteen, read_only) in disks {
            let name = scsi::disk_name(DISKS.fetch_add(1, Ordering::Relaxed));
            let bytes = cap.blocks as u128 * cap.block_len as u128;
            let detail = format!(
                "virtio-scsi at {} target {} LUN 0, {} {} {}, {} blocks of {} bytes ({} MiB){}{}",
                dev.address(),
                target,
                inq.vendor,
                inq.product,
                inq.revision,
                cap.blocks,
                cap.block_len,
                bytes >> 20,
                if sixteen { ", sized by READ CAPACITY(16)" } else { "" },
                if read_only { ", read-only" } else { "" }
            );
            let max_blocks = (max_transfer / cap.block_len as usize).max(1) as u32;
            let disk = ScsiDisk { controller: shared.clone(), target, capacity: cap, read_only, name: name.clone(), max_blocks };
            super::block::register(name, "virtio-scsi", detail, Arc::new(disk));
        }
        if retries > 0 {
            log::info!("virtio-scsi {}: {} commands retried during discovery (UNIT ATTENTION or not ready)", dev.address(), retries);
        }
    }
}
