//! `BlockDevice` over a raw mount: the mount's claimed range, LBA 0 at its
//! first block. Thin, like `fs.rs`: the dispatcher
//! (`capos_serve::block`) has checked every request against the
//! geometry before it gets here, and the `Partition` below checks the
//! range once more before the driver sees it.
//!
//! Read-only is `ReadOnlyBlock` around this object (`sources::grant` puts
//! it there for `block-ro:` and for a mount that said `read-only`).

use super::{CallMessage, Caller, KernelObject, KernelResponder, Reply};
use crate::storage::RawMount;
use alloc::sync::Arc;
use capos_abi::helpers::CapError;
use capos_serve::block::{self, block_error, BlockInfo, BlockServer};
use capos_abi::{interfaces, SysError};
use capos_storage::BlockDevice;

/// The blocks of one raw mount.
pub struct RawBlock(pub Arc<RawMount>);

impl BlockServer for RawBlock {
    fn geometry(&self) -> BlockInfo {
        let d = self.0.dev.lock();
        BlockInfo { block_size: d.block_size() as u32, block_count: d.block_count(), read_only: false }
    }

    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), CapError> {
        self.0.dev.lock().read_blocks(lba, buf).map_err(|e| block_error(&e))
    }

    fn write(&self, lba: u64, data: &[u8]) -> Result<(), CapError> {
        self.0.dev.lock().write_blocks(lba, data).map_err(|e| block_error(&e))
    }

    fn flush(&self) -> Result<(), CapError> {
        self.0.dev.lock().flush().map_err(|e| block_error(&e))
    }
}

/// Any block server as a kernel capability.
pub struct Block<S>(pub S);

impl<S: BlockServer + Send + Sync> KernelObject for Block<S> {
    fn runs_unlocked(&self) -> bool {
        true
    }

    fn interface_id(&self) -> u64 {
        interfaces::BLOCK_DEVICE
    }

    fn kind(&self) -> &'static str {
        "block device"
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        block::dispatch(&self.0, call, &mut KernelResponder::new(caller, reply))
    }
}
