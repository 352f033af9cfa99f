//! virtio-blk over the modern PCI transport, using the `virtio-drivers`
//! crate with our HAL (`dma.rs`) and our PCI configuration access.
//!
//! The crate's driver asserts on malformed requests and knows nothing of
//! the device's size limits, so [`SharedVirtioBlock`] validates every request
//! against the geometry first (errors, never panics) and splits large ones.
//!
//! Reads and writes wait for the device by polling, as the crate's
//! blocking calls do, but here: the wait is bracketed for the instruction
//! counter ([`capos_abi::icount::device_wait_begin`], as NVMe's polled
//! wait: how many turns it takes is host time, not this code,
//! docs/benchmarks.md), and each turn lets pending interrupts in
//! (`trap::interrupt_window`: a capability call waiting for the disk is
//! not one long interrupts-off span).
//!
//! Requests of several mounts (partitions of one disk) go side by side
//! ([`SharedVirtioBlock`]): the device's lock is taken to add a request
//! and to take its completion, not while the device works. The used ring
//! is popped in order by the request whose buffers an entry names (the
//! crate's `complete_*` needs them), so one whose completion is behind
//! another's waits for that one's next look, which comes: every waiter
//! polls on a CPU of its own. A flush still waits inside the crate (it has
//! no non-blocking flush), with the lock held and interrupts on.

use super::dma::KernelHal;
use crate::pci;
use alloc::format;
use super::block::SharedBlock;
use crate::sync::{classes, Lock};
use capos_storage::BlockError;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use super::virtio::transport_of;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceType, Transport};

const SECTOR: usize = 512;
/// Largest request handed to the device at once.
const MAX_CHUNK: usize = 128 * 1024;

/// The crate's device, behind [`SharedVirtioBlock`]'s lock.
pub struct VirtioBlock {
    inner: VirtIOBlk<KernelHal, PciTransport>,
    /// Reads and writes added and not yet completed. The crate's flush
    /// pops whatever used entry comes next, so it runs only when this is
    /// 0 (and, holding the lock, lets none be added meanwhile).
    in_flight: usize,
}

fn map_err(e: virtio_drivers::Error) -> BlockError {
    use virtio_drivers::Error as E;
    match e {
        E::IoError => BlockError::Device { status: 1 },
        E::Unsupported => BlockError::Device { status: 2 },
        E::NotReady => BlockError::Timeout,
        _ => BlockError::Device { status: 0xff },
    }
}

/// A virtio-blk disk as the kernel shares it (`drivers::block::SharedBlock`).
pub struct SharedVirtioBlock {
    dev: Lock<VirtioBlock>,
    blocks: u64,
    read_only: bool,
}

impl SharedVirtioBlock {
    /// The device's lock, spun for with interrupt windows: another CPU may
    /// hold it for a whole flush (the crate's flush waits inside), and a
    /// system call waiting for it has interrupts off. (Spinning on it
    /// plainly kept them off for 2.7 million instructions in block-cap's
    /// `two-partitions` boot.)
    fn dev(&self) -> crate::sync::LockGuard<'_, VirtioBlock> {
        loop {
            if let Some(d) = self.dev.try_lock() {
                return d;
            }
            crate::arch::x86_64::trap::interrupt_window();
            core::hint::spin_loop();
        }
    }

    /// One request: added under the lock (waiting for room when the queue
    /// is full of other requests), polled for outside it (the counter
    /// leaves the polling out), completed under it. `add` hands the crate
    /// the request's buffers; `complete` takes them back.
    fn request(
        &self,
        add: impl Fn(&mut VirtIOBlk<KernelHal, PciTransport>) -> Result<u16, virtio_drivers::Error>,
        complete: impl FnOnce(&mut VirtIOBlk<KernelHal, PciTransport>, u16) -> Result<(), virtio_drivers::Error>,
    ) -> Result<(), BlockError> {
        let token = loop {
            let mut d = self.dev();
            match add(&mut d.inner) {
                Ok(t) => {
                    d.in_flight += 1;
                    break t;
                }
                Err(virtio_drivers::Error::QueueFull) => {
                    drop(d);
                    crate::arch::x86_64::trap::interrupt_window();
                    core::hint::spin_loop();
                }
                Err(e) => return Err(map_err(e)),
            }
        };
        capos_abi::icount::device_wait_begin();
        while self.dev().inner.peek_used() != Some(token) {
            crate::arch::x86_64::trap::interrupt_window();
        }
        capos_abi::icount::device_wait_end();
        // Only this request pops `token` (nobody else has its buffers).
        let mut d = self.dev();
        d.in_flight -= 1;
        complete(&mut d.inner, token).map_err(map_err)
    }

    fn read_chunk(&self, lba: u64, chunk: &mut [u8]) -> Result<(), BlockError> {
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        let (req_p, chunk_p, resp_p) = (&mut req as *mut BlkReq, chunk as *mut [u8], &mut resp as *mut BlkResp);
        self.request(
            // SAFETY: `req`, `chunk` and `resp` stay alive and are not
            // touched until `complete` takes them back: `request` returns
            // only after that, and nothing else reaches them meanwhile
            // (the raw pointers stand in for the borrows the crate's
            // contract asks for across the two calls).
            |blk| unsafe { blk.read_blocks_nb(lba as usize, &mut *req_p, &mut *chunk_p, &mut *resp_p) },
            // SAFETY: the buffers `read_blocks_nb` was given, its request done.
            |blk, token| unsafe { blk.complete_read_blocks(token, &*req_p, &mut *chunk_p, &mut *resp_p) },
        )
    }

    fn write_chunk(&self, lba: u64, chunk: &[u8]) -> Result<(), BlockError> {
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        let (req_p, resp_p) = (&mut req as *mut BlkReq, &mut resp as *mut BlkResp);
        self.request(
            // SAFETY: as in `read_chunk`.
            |blk| unsafe { blk.write_blocks_nb(lba as usize, &mut *req_p, chunk, &mut *resp_p) },
            // SAFETY: the buffers `write_blocks_nb` was given, its request done.
            |blk, token| unsafe { blk.complete_write_blocks(token, &*req_p, chunk, &mut *resp_p) },
        )
    }
}

impl SharedBlock for SharedVirtioBlock {
    fn block_size(&self) -> usize {
        SECTOR
    }

    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(SECTOR, self.blocks, lba, buf.len())?;
        let mut lba = lba;
        for chunk in buf.chunks_mut(MAX_CHUNK) {
            self.read_chunk(lba, chunk)?;
            lba += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    fn write_blocks(&self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(SECTOR, self.blocks, lba, buf.len())?;
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let mut lba = lba;
        for chunk in buf.chunks(MAX_CHUNK) {
            self.write_chunk(lba, chunk)?;
            lba += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), BlockError> {
        // virtio-drivers has no non-blocking flush: its own loop spins
        // until the host's disk has synced, which under a busy host was
        // 250,000 instructions of a Store call with interrupts off
        // (docs/interrupts-off.md). So interrupts stay on while it spins,
        // and the device's lock stays held. The crate's loop pops the
        // next used entry whatever it is, so it must be the flush's own:
        // it waits until no read or write is in the device (another
        // mount's; with the lock held none is added meanwhile). Found by
        // block-cap's two-partitions boot: a flush beside another
        // partition's writes popped one of them and both failed.
        let mut d = loop {
            let d = self.dev();
            if d.in_flight == 0 {
                break d;
            }
            drop(d);
            crate::arch::x86_64::trap::interrupt_window();
            core::hint::spin_loop();
        };
        crate::arch::x86_64::trap::with_interrupts_on(|| d.inner.flush()).map_err(map_err)
    }
}

/// Bind every virtio-blk function (modern 1af4:1042, transitional 1af4:1001).
pub fn probe() {
    let Some(p) = pci::get() else { return };
    let mut index = 0;
    for dev in p.devices.iter().filter(|d| d.vendor == 0x1af4 && (d.device == 0x1042 || d.device == 0x1001)) {
        let Some(mut transport) = transport_of(dev, "virtio-blk") else { continue };
        if transport.device_type() != DeviceType::Block {
            continue;
        }
        let offered = transport.read_device_features();
        match VirtIOBlk::<KernelHal, _>::new(transport) {
            Ok(blk) => {
                let blocks = blk.capacity();
                let read_only = blk.readonly();
                let name = format!("vblk{}", index);
                index += 1;
                log::info!(
                    "virtio-blk {}: device features {:#x} (flush {}, read-only {})",
                    dev.address(), offered, offered & (1 << 9) != 0, read_only
                );
                let detail = format!("{} at {}, {} sectors ({} MiB){}", "virtio-blk", dev.address(), blocks, blocks / 2048, if read_only { ", read-only" } else { "" });
                let shared = SharedVirtioBlock { dev: Lock::new(&classes::BLOCK_DEVICE, VirtioBlock { inner: blk, in_flight: 0 }), blocks, read_only };
                super::block::register(name, "virtio-blk", detail, alloc::sync::Arc::new(shared));
                super::claim(&dev.func);
            }
            Err(e) => log::warn!("virtio-blk {}: initialisation failed: {:?}", dev.address(), e),
        }
    }
}
