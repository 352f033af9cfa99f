//! `File` over a mounted filesystem: one node, until `close`. Thin, like
//! `directory.rs`.

use super::{CallMessage, Caller, KernelObject, KernelResponder, Reply};
use crate::storage::FsMount;
use alloc::sync::Arc;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::{CapError, Stat};
use capos_serve::file::{self, stat_of, FileServer};
use capos_serve::storage_error;
use capos_abi::{interfaces, SysError};
use capos_storage::NodeHandle;
use core::sync::atomic::{AtomicBool, Ordering};

pub struct File {
    mount: Arc<FsMount>,
    node: NodeHandle,
    closed: AtomicBool,
}

impl File {
    pub fn new(mount: Arc<FsMount>, node: NodeHandle) -> File {
        File { mount, node, closed: AtomicBool::new(false) }
    }

    fn open(&self) -> Result<(), CapError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(CapError::new(ErrorCode::Closed, "File.close was called on this capability"));
        }
        Ok(())
    }
}

impl FileServer for File {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, CapError> {
        self.open()?;
        self.mount.fs.lock().read(self.node, offset, buf).map_err(|e| storage_error(&e))
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<u64, CapError> {
        self.open()?;
        self.mount.fs.lock().write(self.node, offset, data).map(|n| n as u64).map_err(|e| storage_error(&e))
    }

    fn stat(&self) -> Result<Stat, CapError> {
        self.open()?;
        self.mount.fs.lock().stat(self.node).map(|s| stat_of(&s)).map_err(|e| storage_error(&e))
    }

    fn truncate(&self, size: u64) -> Result<(), CapError> {
        self.open()?;
        self.mount.fs.lock().truncate(self.node, size).map_err(|e| storage_error(&e))
    }

    fn sync(&self) -> Result<(), CapError> {
        self.open()?;
        self.mount.fs.lock().sync().map_err(|e| storage_error(&e))
    }

    fn close(&self) -> Result<(), CapError> {
        self.open()?;
        self.closed.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl KernelObject for File {
    fn runs_unlocked(&self) -> bool {
        true
    }

    fn interface_id(&self) -> u64 {
        interfaces::FILE
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        file::dispatch(self, call, &mut KernelResponder::new(caller, reply))
    }
}
