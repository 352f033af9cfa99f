//! `Store` over a mounted CAPOSST1 store. Thin, like `fs.rs`; it
//! also logs the compactions a put or delete triggered.

use super::{CallMessage, Caller, KernelObject, KernelResponder, Reply};
use crate::storage::StoreMount;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::helpers::CapError;
use capos_serve::store::{self, on_caposst1, StoreServer};
use capos_abi::{interfaces, SysError};

pub struct KernelStore(pub Arc<StoreMount>);

impl StoreServer for KernelStore {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), CapError> {
        let mut s = self.0.store.lock();
        let r = on_caposst1::put(&mut s, key, value);
        self.0.log_compactions(&s);
        r
    }

    fn get(&self, key: &[u8]) -> Result<Vec<u8>, CapError> {
        on_caposst1::get(&mut self.0.store.lock(), key)
    }

    fn has(&self, key: &[u8]) -> Result<bool, CapError> {
        on_caposst1::has(&self.0.store.lock(), key)
    }

    fn delete(&self, key: &[u8]) -> Result<bool, CapError> {
        let mut s = self.0.store.lock();
        let r = on_caposst1::delete(&mut s, key);
        self.0.log_compactions(&s);
        r
    }

    fn list(&self, after: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> {
        on_caposst1::list(&self.0.store.lock(), after, limit)
    }
}

impl KernelObject for KernelStore {
    fn runs_unlocked(&self) -> bool {
        true
    }

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
