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
use crate::checksum::crc32c_append;
use alloc::vec::Vec;

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
    /// checksummed, a chain block's 128 entries walked). `track_caller`:
    /// the kernel's interrupts-off log names the engine line that paused.
    #[track_caller]
    fn pause(&mut self) {}
}

/// Bytes of an engine's own work (copied, checksummed, encoded) between
/// two [`BlockDevice::pause`]s, where its loops count bytes rather than
/// blocks: about what one metadata block's encoding costs.
pub const PAUSE_BYTES: usize = 4096;

/// What one entry of an engine loop costs beside its bytes (a key
/// allocated or freed, a map insert, a slot encoded), in [`Pacer`]'s byte
/// units: a loop over small entries pauses at least every 16 of them.
/// (A compaction of 8-byte values paced by bytes alone ran about 80
/// entries, some 300,000 instructions in the kernel, between pauses.)
pub const ITEM_BYTES: usize = PAUSE_BYTES / 16;

/// Counts an engine loop's work in bytes and pauses its device every
/// [`PAUSE_BYTES`].
#[derive(Default)]
pub struct Pacer {
    since: usize,
}

impl Pacer {
    /// `bytes` more of work done; pause if that makes [`PAUSE_BYTES`].
    #[track_caller]
    pub fn work<D: BlockDevice + ?Sized>(&mut self, device: &mut D, bytes: usize) {
        self.since += bytes;
        if self.since >= PAUSE_BYTES {
            self.since = 0;
            device.pause();
        }
    }

    /// One entry of a loop done, with `bytes` of its own work
    /// ([`ITEM_BYTES`] added).
    #[track_caller]
    pub fn item<D: BlockDevice + ?Sized>(&mut self, device: &mut D, bytes: usize) {
        self.work(device, ITEM_BYTES + bytes);
    }

    /// Hand `data` to `f` in pieces of at most [`PAUSE_BYTES`], each
    /// counted as work: one pass over a large value (a copy, a checksum)
    /// that the device may pause between pieces. A 64 KiB value's copy
    /// is otherwise one stretch of about 200,000 instructions.
    #[track_caller]
    pub fn pieces<D: BlockDevice + ?Sized>(&mut self, device: &mut D, data: &[u8], mut f: impl FnMut(&[u8])) {
        for piece in data.chunks(PAUSE_BYTES) {
            f(piece);
            self.work(device, piece.len());
        }
    }

    /// `out` extended by `data`, in pieces. Room is reserved first, so the
    /// bytes already in `out` move at most once, and only when `out` was
    /// too small (callers that build a large buffer size it up front).
    #[track_caller]
    pub fn extend<D: BlockDevice + ?Sized>(&mut self, device: &mut D, out: &mut Vec<u8>, data: &[u8]) {
        out.reserve(data.len());
        if data.len() <= PAUSE_BYTES {
            // One piece (most values): no loop.
            out.extend_from_slice(data);
            self.work(device, data.len());
        } else {
            self.pieces(device, data, |piece| out.extend_from_slice(piece));
        }
    }

    /// `src` copied over `dst` (as long), in pieces.
    #[track_caller]
    pub fn copy<D: BlockDevice + ?Sized>(&mut self, device: &mut D, dst: &mut [u8], src: &[u8]) {
        for (d, s) in dst.chunks_mut(PAUSE_BYTES).zip(src.chunks(PAUSE_BYTES)) {
            d.copy_from_slice(s);
            self.work(device, s.len());
        }
    }

    /// A copy of `data`, in pieces.
    #[track_caller]
    pub fn to_vec<D: BlockDevice + ?Sized>(&mut self, device: &mut D, data: &[u8]) -> Vec<u8> {
        if data.len() <= PAUSE_BYTES {
            self.work(device, data.len());
            return data.to_vec();
        }
        let mut out = Vec::new();
        self.extend(device, &mut out, data);
        out
    }

    /// CRC32C continued over `data` ([`crc32c_append`]), in pieces.
    #[track_caller]
    pub fn crc32c_append<D: BlockDevice + ?Sized>(&mut self, device: &mut D, crc: u32, data: &[u8]) -> u32 {
        if data.len() <= PAUSE_BYTES {
            self.work(device, data.len());
            return crc32c_append(crc, data);
        }
        let mut crc = crc;
        self.pieces(device, data, |piece| crc = crc32c_append(crc, piece));
        crc
    }

    /// `len` zero bytes, cleared in pieces.
    #[track_caller]
    pub fn zeroed<D: BlockDevice + ?Sized>(&mut self, device: &mut D, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let piece = (len - out.len()).min(PAUSE_BYTES);
            out.resize(out.len() + piece, 0);
            self.work(device, piece);
        }
        out
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
