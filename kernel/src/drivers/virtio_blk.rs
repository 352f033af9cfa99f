//! virtio-blk over the modern PCI transport, using the `virtio-drivers`
//! crate with our HAL (`dma.rs`) and our PCI configuration access.
//!
//! The crate's driver asserts on malformed requests and knows nothing of
//! the device's size limits, so [`VirtioBlock`] validates every request
//! against the geometry first (errors, never panics) and splits large ones.
//!
//! Reads and writes wait for the device by polling, as the crate's
//! blocking calls do, but here: the wait is bracketed for the instruction
//! counter ([`capos_abi::icount::device_wait_begin`], as NVMe's polled
//! wait: how many turns it takes is host time, not this code,
//! docs/benchmarks.md), and each turn lets pending interrupts in
//! (`trap::interrupt_window`: a capability call waiting for the disk is
//! not one long interrupts-off span). A flush still waits inside the
//! crate (it has no non-blocking flush), with interrupts as it found them.

use super::dma::KernelHal;
use crate::pci;
use alloc::format;
use capos_storage::{BlockDevice, BlockError};
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use super::virtio::transport_of;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceType, Transport};

const SECTOR: usize = 512;
/// Largest request handed to the device at once.
const MAX_CHUNK: usize = 128 * 1024;

pub struct VirtioBlock {
    inner: VirtIOBlk<KernelHal, PciTransport>,
    blocks: u64,
    read_only: bool,
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

impl VirtioBlock {
    /// One read request: submitted, polled for (the counter leaves the
    /// polling out), completed. What `VirtIOBlk::read_blocks` does.
    fn read_chunk(&mut self, lba: u64, chunk: &mut [u8]) -> Result<(), BlockError> {
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        // SAFETY: `req`, `chunk` and `resp` stay alive and untouched until
        // the request is completed below (this function never returns
        // before that).
        let token = unsafe { self.inner.read_blocks_nb(lba as usize, &mut req, chunk, &mut resp) }.map_err(map_err)?;
        self.wait_for(token);
        // SAFETY: the buffers `read_blocks_nb` was given, its request done.
        unsafe { self.inner.complete_read_blocks(token, &req, chunk, &mut resp) }.map_err(map_err)
    }

    /// One write request, as [`read_chunk`](Self::read_chunk); what
    /// `VirtIOBlk::write_blocks` does.
    fn write_chunk(&mut self, lba: u64, chunk: &[u8]) -> Result<(), BlockError> {
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        // SAFETY: `req`, `chunk` and `resp` stay alive and untouched until
        // the request is completed below (this function never returns
        // before that).
        let token = unsafe { self.inner.write_blocks_nb(lba as usize, &mut req, chunk, &mut resp) }.map_err(map_err)?;
        self.wait_for(token);
        // SAFETY: the buffers `write_blocks_nb` was given, its request done.
        unsafe { self.inner.complete_write_blocks(token, &req, chunk, &mut resp) }.map_err(map_err)
    }

    /// Poll until the device has used request `token` (one request is in
    /// flight at a time: the device lock is held across it).
    fn wait_for(&mut self, token: u16) {
        capos_abi::icount::device_wait_begin();
        while self.inner.peek_used() != Some(token) {
            crate::arch::x86_64::trap::interrupt_window();
        }
        capos_abi::icount::device_wait_end();
    }
}

impl BlockDevice for VirtioBlock {
    fn block_size(&self) -> usize {
        SECTOR
    }

    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(SECTOR, self.blocks, lba, buf.len())?;
        let mut lba = lba;
        for chunk in buf.chunks_mut(MAX_CHUNK) {
            self.read_chunk(lba, chunk)?;
            lba += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
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

    fn flush(&mut self) -> Result<(), BlockError> {
        // virtio-drivers has no non-blocking flush: its own loop spins
        // until the host's disk has synced, which under a busy host was
        // 250,000 instructions of a Store call with interrupts off
        // (docs/interrupts-off.md). So interrupts stay on while it spins.
        crate::arch::x86_64::trap::with_interrupts_on(|| self.inner.flush()).map_err(map_err)
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
                super::block::register(name, "virtio-blk", detail, alloc::sync::Arc::new(super::block::OneAtATime::new(VirtioBlock { inner: blk, blocks, read_only })));
                super::claim(&dev.func);
            }
            Err(e) => log::warn!("virtio-blk {}: initialisation failed: {:?}", dev.address(), e),
        }
    }
}
