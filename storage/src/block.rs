//! The block device contract between storage engines and drivers.
//!
//! Why so small: the kernel's virtio-blk and NVMe drivers, the host tool's
//! file-backed image and the crash simulator all implement it, and every
//! extra method is one more thing each of them can get subtly wrong. Reads
//! and writes move whole blocks; `flush` is the only ordering primitive: a
//! write is durable only once a later `flush` has returned `Ok`. Writes that
//! were not flushed may be lost, reordered against each other, or land in
//! part (a multi-block write may be torn at block boundaries; a single block
//! is assumed to be written atomically, as NVMe and virtio-blk guarantee for
//! one logical block).

use core::fmt;

/// The block size every capOS format is laid out in. Devices with another
/// logical block size are refused by the formats (see
/// [`crate::StorageError::UnsupportedBlockSize`]).
pub const SECTOR_SIZE: usize = 512;

/// Why a block device operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The request touched blocks at or past `block_count`.
    OutOfRange,
    /// The buffer length is zero or not a multiple of `block_size`.
    BadLength,
    /// The device reported an error status (driver-specific code).
    Device { status: u32 },
    /// The device did not answer in time.
    Timeout,
    /// The device (or this view of it) does not accept writes.
    ReadOnly,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::OutOfRange => write!(f, "block request out of range"),
            BlockError::BadLength => {
                write!(f, "buffer length is not a non-zero multiple of the block size")
            }
            BlockError::Device { status } => write!(f, "device error status {status:#x}"),
            BlockError::Timeout => write!(f, "device timed out"),
            BlockError::ReadOnly => write!(f, "device is read-only"),
        }
    }
}

/// A random-access device of fixed-size blocks.
///
/// `buf.len()` must be a non-zero multiple of [`block_size`](Self::block_size);
/// a request may cover several consecutive blocks starting at `lba`.
pub trait BlockDevice {
    /// Bytes per block.
    fn block_size(&self) -> usize;
    /// Number of addressable blocks.
    fn block_count(&self) -> u64;
    /// Read `buf.len() / block_size()` blocks starting at `lba`.
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Write `buf.len() / block_size()` blocks starting at `lba`. Not durable
    /// until a later [`flush`](Self::flush) returns `Ok`.
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError>;
    /// Make every write that completed before this call durable.
    fn flush(&mut self) -> Result<(), BlockError>;
    /// A point between two units of an engine's own CPU work (a metadata
    /// block encoded, a run of chain entries released) where no request
    /// is made. Nothing to do for most devices. The kernel's lets pending
    /// interrupts in here: it runs a capability call's engine work with
    /// interrupts off, and a loop whose length grows with the volume or
    /// the request would otherwise keep them off for all of it
    /// (docs/interrupts-off.md). Engines call it in every such loop, once
    /// per metadata block's worth of work (a 512-byte block encoded or
    /// checksummed, a chain block's 128 entries walked).
    fn pause(&mut self) {}
}

/// Bytes of an engine's own work (copied, checksummed, encoded) between
/// two [`BlockDevice::pause`]s, where its loops count bytes rather than
/// blocks: about what one metadata block's encoding costs.
pub const PAUSE_BYTES: usize = 4096;

/// Counts an engine loop's work in bytes and pauses its device every
/// [`PAUSE_BYTES`].
#[derive(Default)]
pub struct Pacer {
    since: usize,
}

impl Pacer {
    /// `bytes` more of work done; pause if that makes [`PAUSE_BYTES`].
    pub fn work<D: BlockDevice + ?Sized>(&mut self, device: &mut D, bytes: usize) {
        self.since += bytes;
        if self.since >= PAUSE_BYTES {
            self.since = 0;
            device.pause();
        }
    }
}

/// Check a request against a device's geometry; shared by the in-tree
/// devices so they all reject the same malformed requests.
pub fn check_request(
    block_size: usize,
    block_count: u64,
    lba: u64,
    len: usize,
) -> Result<u64, BlockError> {
    if block_size == 0 || len == 0 || !len.is_multiple_of(block_size) {
        return Err(BlockError::BadLength);
    }
    let blocks = (len / block_size) as u64;
    match lba.checked_add(blocks) {
        Some(end) if end <= block_count => Ok(blocks),
        _ => Err(BlockError::OutOfRange),
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn block_size(&self) -> usize {
        (**self).block_size()
    }
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        (**self).read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        (**self).write_blocks(lba, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        (**self).flush()
    }
    fn pause(&mut self) {
        (**self).pause()
    }
}
