//! `Directory` and `File` over a mounted filesystem: one kernel object
//! per capability, standing for one node of one mount.
//!
//! Thin: what a call means is `capos_serve::fs` (the one adapter from the
//! storage crate's `FileSystem` to the Directory and File server traits,
//! which storage-fs-service uses too, with its rules: read-only through
//! the typed wrapper, confinement, rename targets). This file is the
//! kernel's side of it, [`FsHost`]: a capability is an `Arc` of an
//! [`FsCap`] in the caller's capability table (the table is the kernel's
//! object table: an object lives while a capability to it does), the
//! filesystem is the mount's lock, and a rename target is found again by
//! downcasting the transferred capability. A closed File answers every
//! call with `closed`, through the refusing object.

use super::{CallMessage, Cap, Caller, KernelObject, KernelResponder, Reply};
use crate::storage::FsMount;
use alloc::format;
use alloc::sync::Arc;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::SysError;
use capos_serve::fs::{self, FsHost, FsObject};
use capos_serve::refuse::Refusal;
use capos_storage::FileSystem;
use core::sync::atomic::{AtomicBool, Ordering};

pub struct FsCap {
    mount: Arc<FsMount>,
    obj: FsObject,
    /// `File.close` was called on this capability.
    closed: AtomicBool,
}

impl FsCap {
    /// The root directory of `mount`, read-only or not.
    pub fn root(mount: Arc<FsMount>, read_only: bool) -> FsCap {
        let root = mount.fs.lock().root();
        FsCap::new(mount, FsObject::root(root, read_only))
    }

    fn new(mount: Arc<FsMount>, obj: FsObject) -> FsCap {
        FsCap { mount, obj, closed: AtomicBool::new(false) }
    }
}

impl FsHost for FsCap {
    type Cap = Cap;
    type Fs = dyn FileSystem + Send;

    fn with_fs<T>(&self, op: impl FnOnce(&mut Self::Fs) -> T) -> T {
        op(&mut **self.mount.fs.lock())
    }

    fn hand_out(&self, obj: FsObject) -> Result<Cap, CapError> {
        Ok(Cap::kernel(Arc::new(FsCap::new(self.mount.clone(), obj))))
    }

    fn object_of(&self, cap: &Cap) -> Result<FsObject, CapError> {
        // Fail closed: the target must be this kind of object (not a
        // wrapper around one), live, and of the same mount.
        let target = match cap {
            Cap::Kernel(k) => k.object().as_any().and_then(|a| a.downcast_ref::<FsCap>()),
            _ => None,
        };
        match target {
            Some(t) if t.mount.id != self.mount.id => Err(CapError::new(
                ErrorCode::PermissionDenied,
                &format!("rename target is a directory of mount {}, not of {}", t.mount.name, self.mount.name),
            )),
            Some(t) if !t.closed.load(Ordering::Relaxed) => Ok(t.obj),
            _ => Err(CapError::new(ErrorCode::PermissionDenied, "rename target is not a Directory of this filesystem")),
        }
    }

    fn close(&self, _obj: &FsObject) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl KernelObject for FsCap {
    fn runs_unlocked(&self) -> bool {
        true
    }

    fn interface_id(&self) -> u64 {
        self.obj.kind.interface()
    }

    fn kind(&self) -> &'static str {
        match (self.obj.kind, self.obj.read_only) {
            (fs::Kind::Directory, false) => "directory",
            (fs::Kind::Directory, true) => "read-only directory",
            (fs::Kind::File, false) => "file",
            (fs::Kind::File, true) => "read-only file",
        }
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        let r = &mut KernelResponder::new(caller, reply);
        if self.closed.load(Ordering::Relaxed) {
            return Refusal(fs::closed()).answer(&[self.obj.kind.interface()], call, r);
        }
        fs::answer(self, self.obj, call, r)
    }

    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }
}
