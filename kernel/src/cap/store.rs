//! `Store` over a mounted CAPOSST1 store. Thin, like `directory.rs`; it
//! also logs the compactions a put or delete triggered.

use super::{CallMessage, Caller, KernelObject, KernelResponder, Reply};
use crate::storage::StoreMount;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::serve::store::{self, StoreServer};
use capos_abi::serve::storage_error;
use capos_abi::{interfaces, SysError};

pub struct KernelStore(pub Arc<StoreMount>);

impl StoreServer for KernelStore {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), CapError> {
        let mut s = self.0.store.lock();
        let r = s.put(key, value).map_err(|e| storage_error(&e));
        self.0.log_compactions(&s);
        r
    }

    fn get(&self, key: &[u8]) -> Result<Vec<u8>, CapError> {
        match self.0.store.lock().get(key) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(CapError::new(ErrorCode::NotFound, "no value under that key")),
            Err(e) => Err(storage_error(&e)),
        }
    }

    fn has(&self, key: &[u8]) -> Result<bool, CapError> {
        self.0.store.lock().has(key).map_err(|e| storage_error(&e))
    }

    fn delete(&self, key: &[u8]) -> Result<bool, CapError> {
        let mut s = self.0.store.lock();
        let r = s.delete(key).map_err(|e| storage_error(&e));
        self.0.log_compactions(&s);
        r
    }

    fn list(&self, after: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> {
        let after = if after.is_empty() { None } else { Some(after) };
        self.0.store.lock().keys_after(after, limit).map_err(|e| storage_error(&e))
    }
}

impl KernelObject for KernelStore {
    fn interface_id(&self) -> u64 {
        interfaces::STORE
    }

    fn kind(&self) -> &'static str {
        "store"
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        store::dispatch(self, call, &mut KernelResponder::new(caller, reply))
    }
}
