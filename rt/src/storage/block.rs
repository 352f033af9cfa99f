//! The `BlockDevice` client, and [`CapBlockDevice`]: the
//! `capos_storage::BlockDevice` trait over a Block capability, so a
//! userspace process runs the capos-storage engines (CAPOSWF1, CAPOSST1)
//! on blocks the kernel granted it (`kernel:block:NAME`).
//!
//! Data always moves through the bulk buffer, straight between the
//! caller's slice and the device: a `read_blocks`/`write_blocks` of up to
//! `capos_abi::ipc::MAX_BULK_BYTES` is one call, a larger one is split
//! into calls of at most that many bytes (whole blocks each).
//!
//! Wiring it in a process (the grant is `grant blk: kernel:block:disk`
//! of a `mount disk: raw on nvme0n1 partition 2`):
//!
//! ```ignore
//! use capos_rt::storage::{Block, CapBlockDevice};
//! use capos_storage::writable_fs::{MountOptions, WritableFs};
//!
//! let handle = start.cap("blk").expect("granted blk");
//! let dev = CapBlockDevice::new(Block::new(handle)).expect("BlockDevice.info");
//! // Any engine over any BlockDevice: here CAPOSWF1, with a clock of yours.
//! let fs = WritableFs::mount(dev, clock, MountOptions { read_only: false })?;
//! ```

use super::{bulk_count, object, void_of};
use crate::client::{call, call_no_params, BulkArg, CallError};
use capos_abi::capos_capnp::{block_device, block_info_result, ErrorCode};
use capos_abi::interfaces::{self, block_method as bm};
use capos_abi::ipc::MAX_BULK_BYTES;
use capos_abi::Handle;
use capos_storage::block::check_request;
use capos_storage::{BlockDevice, BlockError};

pub use capos_serve::block::BlockInfo;

/// A `BlockDevice` capability.
#[derive(Debug)]
pub struct Block(Handle);
owned_handle!(Block);

impl Block {
    /// Block size, block count, and whether write and flush are refused.
    pub fn info(&self) -> Result<BlockInfo, CallError> {
        call_no_params(self.0, interfaces::BLOCK_DEVICE, bm::INFO, &[], BulkArg::NONE, |r| {
            object(capos_serve::block::read_info(r.get::<block_info_result::Owned>()?))
        })
    }

    /// `blocks` blocks from `lba` into `buf` through the bulk buffer;
    /// returns the byte count the server wrote. `blocks` and `buf` are
    /// sent as given (the server refuses a mismatch), so tests can probe
    /// its checks.
    pub fn read(&self, lba: u64, blocks: u32, buf: &mut [u8]) -> Result<usize, CallError> {
        let capacity = buf.len();
        self.read_with(lba, blocks, BulkArg::into(buf), capacity)
    }

    /// A read with no bulk buffer at all (for tests: the server must refuse it).
    pub fn read_without_buffer(&self, lba: u64, blocks: u32) -> Result<usize, CallError> {
        self.read_with(lba, blocks, BulkArg::NONE, 0)
    }

    /// A read offering `data` for reading only, the wrong direction (for tests).
    pub fn read_into_readable(&self, lba: u64, blocks: u32, data: &[u8]) -> Result<usize, CallError> {
        self.read_with(lba, blocks, BulkArg::out(data), 0)
    }

    fn read_with(&self, lba: u64, blocks: u32, bulk: BulkArg, capacity: usize) -> Result<usize, CallError> {
        call::<block_device::read_params::Owned, _>(
            self.0,
            interfaces::BLOCK_DEVICE,
            bm::READ,
            &[],
            bulk,
            |mut p| {
                p.set_lba(lba);
                p.set_blocks(blocks);
                Ok(())
            },
            |r| bulk_count(r, capacity),
        )
    }

    /// Write `data` (whole blocks) at `lba` through the bulk buffer; durable
    /// after a later [`flush`](Self::flush).
    pub fn write(&self, lba: u64, data: &[u8]) -> Result<(), CallError> {
        self.write_with(lba, BulkArg::out(data))
    }

    /// A write with no bulk buffer (for tests: the server must refuse it).
    pub fn write_without_buffer(&self, lba: u64) -> Result<(), CallError> {
        self.write_with(lba, BulkArg::NONE)
    }

    fn write_with(&self, lba: u64, bulk: BulkArg) -> Result<(), CallError> {
        call::<block_device::write_params::Owned, _>(
            self.0,
            interfaces::BLOCK_DEVICE,
            bm::WRITE,
            &[],
            bulk,
            |mut p| {
                p.set_lba(lba);
                Ok(())
            },
            void_of,
        )
    }

    /// Make every completed write durable.
    pub fn flush(&self) -> Result<(), CallError> {
        call_no_params(self.0, interfaces::BLOCK_DEVICE, bm::FLUSH, &[], BulkArg::NONE, void_of)
    }
}

/// A Block capability as a `capos_storage::BlockDevice`. The geometry is
/// read once (`info`) and every request is checked against it with
/// `capos_storage::check_request` before a call is made, so the server's
/// `invalidArgument` never stands for a caller's mistake here.
///
/// Errors: `readOnly` is [`BlockError::ReadOnly`]; anything else the
/// server or the kernel answers is [`BlockError::Device`] with `status`
/// the capnp `ErrorCode` (an object error), `0x100 +` the `SysError`
/// number (a call-level failure), or `0x200` (a malformed answer).
pub struct CapBlockDevice {
    block: Block,
    info: BlockInfo,
    /// Bytes per call: the most whole blocks within MAX_BULK_BYTES.
    chunk: usize,
}

impl CapBlockDevice {
    /// Ask `block` for its geometry; refuses a zero block size.
    pub fn new(block: Block) -> Result<CapBlockDevice, CallError> {
        Self::with_call_limit(block, MAX_BULK_BYTES as usize)
    }

    /// Like [`new`](Self::new), with at most `max_bytes` (rounded down to
    /// whole blocks, at least one, at most MAX_BULK_BYTES) per call: for
    /// tests of the splitting, and for a caller whose buffers are smaller.
    pub fn with_call_limit(block: Block, max_bytes: usize) -> Result<CapBlockDevice, CallError> {
        let info = block.info()?;
        let bs = info.block_size as usize;
        if bs == 0 || bs as u64 > MAX_BULK_BYTES {
            return Err(CallError::Object(capos_abi::helpers::CapError::new(ErrorCode::Unsupported, "block size 0 or larger than a bulk buffer")));
        }
        let chunk = (max_bytes.min(MAX_BULK_BYTES as usize) / bs).max(1) * bs;
        Ok(CapBlockDevice { block, info, chunk })
    }

    /// Bytes per call.
    pub fn call_limit(&self) -> usize {
        self.chunk
    }

    pub fn info(&self) -> BlockInfo {
        self.info
    }

    /// The capability back.
    pub fn into_block(self) -> Block {
        self.block
    }
}

/// How a failed call reads to a storage engine.
pub fn device_error(e: &CallError) -> BlockError {
    match e {
        CallError::Object(o) if o.code == ErrorCode::ReadOnly => BlockError::ReadOnly,
        CallError::Object(o) => BlockError::Device { status: o.code as u32 },
        CallError::Sys(_) => BlockError::Device { status: 0x100 + e.sys().map_or(0, |s| s as u32) },
        CallError::Message(_) => BlockError::Device { status: 0x200 },
    }
}

impl BlockDevice for CapBlockDevice {
    fn block_size(&self) -> usize {
        self.info.block_size as usize
    }

    fn block_count(&self) -> u64 {
        self.info.block_count
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(self.block_size(), self.info.block_count, lba, buf.len())?;
        let bs = self.block_size();
        let mut at = lba;
        for piece in buf.chunks_mut(self.chunk) {
            let blocks = (piece.len() / bs) as u32;
            let n = self.block.read(at, blocks, piece).map_err(|e| device_error(&e))?;
            if n != piece.len() {
                return Err(BlockError::Device { status: 0x200 });
            }
            at += blocks as u64;
        }
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        check_request(self.block_size(), self.info.block_count, lba, buf.len())?;
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        let mut at = lba;
        for piece in buf.chunks(self.chunk) {
            self.block.write(at, piece).map_err(|e| device_error(&e))?;
            at += (piece.len() / self.block_size()) as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.block.flush().map_err(|e| device_error(&e))
    }
}
