//! `Directory` over a mounted filesystem: a node of one mount. Thin: the
//! capnp side is `capos_serve::directory`, the meaning is the
//! engine's (`storage::FileSystem`); this file only joins them.

use super::file::File;
use super::{CallMessage, Cap, Caller, KernelObject, KernelResponder, Reply};
use crate::storage::FsMount;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_serve::directory::{self, DirectoryServer};
use capos_serve::storage_error;
use capos_abi::{interfaces, SysError};
use capos_storage::{DirEntry, NodeHandle};

pub struct Directory {
    mount: Arc<FsMount>,
    node: NodeHandle,
}

impl Directory {
    /// The root directory of `mount`.
    pub fn root(mount: Arc<FsMount>) -> Directory {
        let node = mount.fs.lock().root();
        Directory { mount, node }
    }

    fn cap(&self, node: NodeHandle) -> Cap {
        Cap::kernel(Arc::new(Directory { mount: self.mount.clone(), node }))
    }
}

impl DirectoryServer for Directory {
    type Cap = Cap;

    fn open(&self, name: &str) -> Result<Cap, CapError> {
        let node = self.mount.fs.lock().open(self.node, name).map_err(|e| storage_error(&e))?;
        Ok(Cap::kernel(Arc::new(File::new(self.mount.clone(), node))))
    }

    fn list(&self) -> Result<Vec<DirEntry>, CapError> {
        self.mount.fs.lock().list(self.node).map_err(|e| storage_error(&e))
    }

    fn mkdir(&self, name: &str) -> Result<(), CapError> {
        self.mount.fs.lock().mkdir(self.node, name).map(|_| ()).map_err(|e| storage_error(&e))
    }

    fn remove(&self, name: &str) -> Result<(), CapError> {
        self.mount.fs.lock().remove(self.node, name).map_err(|e| storage_error(&e))
    }

    fn sub(&self, name: &str) -> Result<Cap, CapError> {
        let node = self.mount.fs.lock().sub(self.node, name).map_err(|e| storage_error(&e))?;
        Ok(self.cap(node))
    }

    fn create(&self, name: &str) -> Result<Cap, CapError> {
        let node = self.mount.fs.lock().create(self.node, name).map_err(|e| storage_error(&e))?;
        Ok(Cap::kernel(Arc::new(File::new(self.mount.clone(), node))))
    }

    fn rename(&self, from: &str, to: &str, target: Option<&Cap>) -> Result<(), CapError> {
        let to_node = match target {
            None => self.node,
            // Fail closed: the target must be this kind of object, not a
            // wrapper around one, and of the same mount.
            Some(cap) => match cap_directory(cap) {
                Some(d) if d.mount.id == self.mount.id => d.node,
                Some(d) => {
                    return Err(CapError::new(
                        ErrorCode::PermissionDenied,
                        &format!("rename target is a directory of mount {}, not of {}", d.mount.name, self.mount.name),
                    ))
                }
                None => {
                    return Err(CapError::new(
                        ErrorCode::PermissionDenied,
                        "rename target is not a writable Directory of this filesystem (a read-only wrapper or another object)",
                    ))
                }
            },
        };
        self.mount.fs.lock().rename(self.node, from, to_node, to).map_err(|e| storage_error(&e))
    }
}

fn cap_directory(cap: &Cap) -> Option<&Directory> {
    match cap {
        Cap::Kernel(k) => k.object().as_any()?.downcast_ref::<Directory>(),
        _ => None,
    }
}

impl KernelObject for Directory {
    fn runs_unlocked(&self) -> bool {
        true
    }

    fn interface_id(&self) -> u64 {
        interfaces::DIRECTORY
    }

    fn kind(&self) -> &'static str {
        "directory"
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        directory::dispatch(self, call, &mut KernelResponder::new(caller, reply))
    }

    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }
}
